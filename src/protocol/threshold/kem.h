// ElGamal KEM to a joint public key Y (docs/protocol.md, "Envelope").
//   R = r*G, S = r*Y, KEK = HKDF(ikm = S, salt = R || Y, info = "custos/v1/kem" || context)
// with points SEC1-compressed. The holder(s) of y recover S = y*R (threshold: from partials).
#pragma once

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/p256.h"

namespace custos::threshold {

struct KemEncapsulation {
  crypto::Point r_point;  // R, public, stored in the envelope
  SecretBytes kek;        // 32-byte key-encryption key
};

// Encapsulate picks a fresh r and derives the KEK for `y`.
StatusOr<KemEncapsulation> Encapsulate(const crypto::Point& y, ByteSpan context);
// DeriveKek recomputes the KEK from the shared point S = y*R.
StatusOr<SecretBytes> DeriveKek(const crypto::Point& s, const crypto::Point& r_point,
                                const crypto::Point& y, ByteSpan context);

}  // namespace custos::threshold
