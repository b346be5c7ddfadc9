#include "protocol/threshold/dleq.h"

#include <array>

#include "crypto/hash.h"

namespace custos::threshold {

using crypto::Point;
using crypto::Scalar;

namespace {

// Challenge hashes the transcript over the six points' SEC1 encodings.
Scalar Challenge(ByteSpan context, const std::array<ByteSpan, 6>& points) {
  ByteWriter t;
  t.Raw(AsBytes("custos/v1/dleq")).Var(context);
  for (ByteSpan p : points) t.Var(p);
  Bytes wide;
  for (uint8_t counter : {0, 1}) {
    Bytes block = t.bytes();
    block.push_back(counter);
    crypto::Digest d = crypto::Sha256(block);
    wide.insert(wide.end(), d.begin(), d.end());
  }
  return Scalar::FromBytesReduced(wide);
}

// EncodeCached returns the encoding of the generator from a table made once (every partial's
// transcript starts with G) and encodes any other point.
Bytes EncodeCached(const Point& p) {
  static const Point kG = Point::Generator();
  static const Bytes kGEncoded = kG.Encode();
  return p == kG ? kGEncoded : p.Encode();
}

}  // namespace

Bytes DleqProof::Encode() const { return Concat({c.ToPublicBytes(), z.ToPublicBytes()}); }

StatusOr<DleqProof> DleqProof::Decode(ByteSpan b) {
  if (b.size() != 64) return InvalidArgument("DLEQ proof must be 64 bytes");
  DleqProof p;
  ASSIGN_OR_RETURN(p.c, Scalar::FromBytes(b.subspan(0, 32)));
  ASSIGN_OR_RETURN(p.z, Scalar::FromBytes(b.subspan(32, 32)));
  return p;
}

DleqProof ProveDleq(const Scalar& x, const Point& g1, const Point& x1, const Point& g2,
                    const Point& x2, ByteSpan context) {
  Bytes x1_sec1 = x1.Encode(), g2_sec1 = g2.Encode();
  return ProveDleq(x, g1, x1_sec1, g2, g2_sec1, x2, context);
}

DleqProof ProveDleq(const Scalar& x, const Point& g1, ByteSpan x1_sec1, const Point& g2,
                    ByteSpan g2_sec1, const Point& x2, ByteSpan context) {
  Scalar k = Scalar::Random();
  // k*G uses OpenSSL's precomputed generator table, about three times cheaper than k*P.
  Point a1 = g1 == Point::Generator() ? Point::BaseMul(k) : g1 * k;
  Point a2 = g2 * k;
  DleqProof p;
  Bytes g1_sec1 = EncodeCached(g1), x2_sec1 = x2.Encode(), a1_sec1 = a1.Encode(),
        a2_sec1 = a2.Encode();
  p.c = Challenge(context, {g1_sec1, x1_sec1, g2_sec1, x2_sec1, a1_sec1, a2_sec1});
  p.z = k - p.c * x;
  return p;
}

Status VerifyDleq(const DleqProof& proof, const Point& g1, const Point& x1, const Point& g2,
                  const Point& x2, ByteSpan context) {
  if (x1.IsIdentity() || x2.IsIdentity() || g2.IsIdentity())
    return IntegrityError("DLEQ proof refers to the identity point");
  Point a1 =
      g1 == Point::Generator() ? crypto::MulAdd(proof.z, proof.c, x1) : g1 * proof.z + x1 * proof.c;
  // A proof of possession (g1 = g2, x1 = x2) has a2 = a1: skip two multiplications.
  Point a2 = (g2 == g1 && x2 == x1) ? a1 : g2 * proof.z + x2 * proof.c;
  if (!(Challenge(context, {EncodeCached(g1), x1.Encode(), g2.Encode(), x2.Encode(), a1.Encode(),
                            a2.Encode()}) == proof.c))
    return IntegrityError("DLEQ proof does not verify");
  return Status::Ok();
}

}  // namespace custos::threshold
