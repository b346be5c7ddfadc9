// Chaum-Pedersen proof that log_G1(X1) == log_G2(X2), made non-interactive with Fiat-Shamir
// over a domain-separated SHA-256 transcript (docs/protocol.md, "DLEQ proof").
//
// Transcript T = "custos/v1/dleq" || var(context) || G1 || X1 || G2 || X2 || A1 || A2
// (points SEC1-compressed, var = u32 length prefix); c = (SHA-256(T||0x00) || SHA-256(T||0x01))
// mod n; z = k - c*x. Wire form: c (32) || z (32).
#pragma once

#include "common/bytes.h"
#include "crypto/p256.h"

namespace custos::threshold {

struct DleqProof {
  crypto::Scalar c;
  crypto::Scalar z;
  Bytes Encode() const;
  static StatusOr<DleqProof> Decode(ByteSpan b);
};

// ProveDleq proves knowledge of x with X1 = x*G1 and X2 = x*G2.
DleqProof ProveDleq(const crypto::Scalar& x, const crypto::Point& g1, const crypto::Point& x1,
                    const crypto::Point& g2, const crypto::Point& x2, ByteSpan context);
// This ProveDleq is the same proof for a caller that holds the SEC1-compressed encodings of X1
// and G2 already (x1_sec1 == x1.Encode(), g2_sec1 == g2.Encode(): a keeper's own X_i never
// changes, a request's R arrives encoded), so the transcript does not encode them again. X1
// itself is not needed to prove.
DleqProof ProveDleq(const crypto::Scalar& x, const crypto::Point& g1, ByteSpan x1_sec1,
                    const crypto::Point& g2, ByteSpan g2_sec1, const crypto::Point& x2,
                    ByteSpan context);
// VerifyDleq returns kIntegrity if the proof does not verify.
Status VerifyDleq(const DleqProof& proof, const crypto::Point& g1, const crypto::Point& x1,
                  const crypto::Point& g2, const crypto::Point& x2, ByteSpan context);

}  // namespace custos::threshold
