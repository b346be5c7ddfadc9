#include "protocol/threshold/partial.h"

namespace custos::threshold {

using crypto::Point;

Bytes PartialDecryption::Encode() const {
  ByteWriter w;
  w.U32(index).Raw(d.Encode()).Raw(proof.Encode());
  return w.Take();
}

StatusOr<PartialDecryption> PartialDecryption::Decode(ByteSpan b) {
  ByteReader r(b);
  PartialDecryption p;
  ASSIGN_OR_RETURN(p.index, r.U32("partial index"));
  ASSIGN_OR_RETURN(ByteSpan d, r.Raw(crypto::kPointSize, "partial D"));
  ASSIGN_OR_RETURN(p.d, Point::Decode(d));
  ASSIGN_OR_RETURN(ByteSpan proof, r.Raw(64, "partial proof"));
  ASSIGN_OR_RETURN(p.proof, DleqProof::Decode(proof));
  RETURN_IF_ERROR(r.ExpectEnd("partial decryption"));
  return p;
}

PartialDecryption ComputePartial(uint32_t index, const crypto::Scalar& share,
                                 const Point& verification_key, const Point& r, ByteSpan context) {
  return ComputePartial(index, share, verification_key.Encode(), r, r.Encode(), context);
}

PartialDecryption ComputePartial(uint32_t index, const crypto::Scalar& share,
                                 ByteSpan verification_key_sec1, const Point& r, ByteSpan r_sec1,
                                 ByteSpan context) {
  PartialDecryption p;
  p.index = index;
  p.d = r * share;
  p.proof = ProveDleq(share, Point::Generator(), verification_key_sec1, r, r_sec1, p.d, context);
  return p;
}

Status VerifyPartial(const PartialDecryption& p, const Point& verification_key, const Point& r,
                     ByteSpan context) {
  Status st = VerifyDleq(p.proof, Point::Generator(), verification_key, r, p.d, context);
  if (!st.ok()) return IntegrityError("partial decryption proof does not verify");
  return Status::Ok();
}

}  // namespace custos::threshold
