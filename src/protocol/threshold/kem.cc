#include "protocol/threshold/kem.h"

#include "crypto/hash.h"

namespace custos::threshold {

using crypto::Point;
using crypto::Scalar;

StatusOr<SecretBytes> DeriveKek(const Point& s, const Point& r_point, const Point& y,
                                ByteSpan context) {
  if (s.IsIdentity() || r_point.IsIdentity() || y.IsIdentity())
    return IntegrityError("KEM input is the identity point");
  Bytes ikm = s.Encode();
  Bytes salt = Concat({r_point.Encode(), y.Encode()});
  Bytes info = Concat({AsBytes("custos/v1/kem"), context});
  auto kek = crypto::Hkdf(ikm, salt, info, 32);
  WipeBytes(ikm);
  return kek;
}

StatusOr<KemEncapsulation> Encapsulate(const Point& y, ByteSpan context) {
  if (y.IsIdentity()) return InvalidArgument("public key is the identity point");
  Scalar r = Scalar::Random();
  KemEncapsulation e;
  e.r_point = Point::BaseMul(r);
  ASSIGN_OR_RETURN(e.kek, DeriveKek(y * r, e.r_point, y, context));
  return e;
}

}  // namespace custos::threshold
