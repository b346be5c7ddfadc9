// Partial decryption of an ElGamal KEM ciphertext by one keeper, with a DLEQ proof that it used
// the share behind its published verification key: D_i = x_i*R, proof log_G(X_i) = log_R(D_i).
// (docs/protocol.md, "Partial decryption".)
#pragma once

#include "common/bytes.h"
#include "crypto/p256.h"
#include "protocol/threshold/dleq.h"

namespace custos::threshold {

struct PartialDecryption {
  uint32_t index = 0;  // share index within the keeper's domain
  crypto::Point d;     // D_i = x_i * R
  DleqProof proof;
  // Wire form: u32 index || D (33) || proof (64).
  Bytes Encode() const;
  static StatusOr<PartialDecryption> Decode(ByteSpan b);
};

// ComputePartial computes D_i and its proof. `context` binds the proof to the request.
PartialDecryption ComputePartial(uint32_t index, const crypto::Scalar& share,
                                 const crypto::Point& verification_key, const crypto::Point& r,
                                 ByteSpan context);
// This ComputePartial is the same for a keeper that holds the SEC1-compressed encodings of its
// X_i and of R (verification_key_sec1 == X_i.Encode(), r_sec1 == r.Encode()).
PartialDecryption ComputePartial(uint32_t index, const crypto::Scalar& share,
                                 ByteSpan verification_key_sec1, const crypto::Point& r,
                                 ByteSpan r_sec1, ByteSpan context);
// VerifyPartial checks the proof against X_i; kIntegrity names the failed check.
Status VerifyPartial(const PartialDecryption& p, const crypto::Point& verification_key,
                     const crypto::Point& r, ByteSpan context);

}  // namespace custos::threshold
