// The one KEM-to-Y envelope: a data key wrapped so that only the joint key's holders (a quorum of
// both domains, DESIGN.md "Co-custody") can unwrap it. Dual-control files, dual-control objects
// and the appliance's root-key envelope (which is a dual-control file) all wrap their key here;
// only where the pieces sit in each format's header differs.
//
//   r random, R = r·G
//   prefix   = the format's header bytes through R (the caller builds it from R)
//   KEK      = threshold::DeriveKek(S = r·Y, R, Y, context = label || SHA-256(prefix))
//   sealed   = AES-256-GCM(KEK, nonce (12, random), DEK, aad = prefix)     (ciphertext || tag)
// Unwrapping needs S = y·R, which the keepers' partials combine to (threshold/kem.h); a wrong S,
// another prefix (any header byte changed) or another label is kIntegrity.
#pragma once

#include <functional>
#include <string_view>

#include "common/bytes.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/p256.h"

namespace custos::envelope {

struct KemWrapped {
  crypto::Point r;  // R = r·G, stored in the header
  Bytes nonce;      // 12
  Bytes sealed;     // AES-256-GCM ciphertext || tag
};

// WrapToY wraps `dek` to `y`. `prefix_for` gives the header bytes through R once R is drawn (the
// KEM context hashes them, so R comes first); `label` is the format's ("custos/v1/file",
// "custos/v1/object").
StatusOr<KemWrapped> WrapToY(const crypto::Point& y, const SecretBytes& dek, std::string_view label,
                             const std::function<Bytes(const crypto::Point& r)>& prefix_for);

// UnwrapWithS opens what WrapToY made, given S = y·R (combined from the keepers' partials).
StatusOr<SecretBytes> UnwrapWithS(const crypto::Point& s, const crypto::Point& r, const crypto::Point& y,
                                  std::string_view label, ByteSpan prefix, ByteSpan nonce, ByteSpan sealed);

// KemContext is label || SHA-256(prefix): what a keeper's partial decryption is bound to.
Bytes KemContext(std::string_view label, ByteSpan prefix);

}  // namespace custos::envelope
