#include "crypto/p256.h"

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>

#include <cstdlib>

#include "crypto/random.h"

namespace custos::crypto {

namespace {

[[noreturn]] void Fatal() { std::abort(); }

struct CtxHolder {
  BN_CTX* ctx = BN_CTX_secure_new();
  ~CtxHolder() { BN_CTX_free(ctx); }
};

BN_CTX* Ctx() {
  thread_local CtxHolder holder;
  if (holder.ctx == nullptr) Fatal();
  return holder.ctx;
}

BIGNUM* NewBn() {
  BIGNUM* b = BN_secure_new();
  if (b == nullptr) Fatal();
  BN_set_flags(b, BN_FLG_CONSTTIME);
  return b;
}

}  // namespace

const EC_GROUP* P256Group() {
  static const EC_GROUP* group = [] {
    EC_GROUP* g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    if (g == nullptr) Fatal();
    return g;
  }();
  return group;
}

const BIGNUM* P256Order() { return EC_GROUP_get0_order(P256Group()); }

// ---- Scalar ----

Scalar::Scalar() : bn_(NewBn()) { BN_zero(bn_); }
Scalar::~Scalar() { BN_clear_free(bn_); }
Scalar::Scalar(const Scalar& other) : bn_(NewBn()) {
  if (BN_copy(bn_, other.bn_) == nullptr) Fatal();
}
Scalar& Scalar::operator=(const Scalar& other) {
  if (this != &other && BN_copy(bn_, other.bn_) == nullptr) Fatal();
  return *this;
}
Scalar::Scalar(Scalar&& other) noexcept : bn_(other.bn_) { other.bn_ = NewBn(); }
Scalar& Scalar::operator=(Scalar&& other) noexcept {
  std::swap(bn_, other.bn_);
  BN_zero(other.bn_);
  return *this;
}

Scalar Scalar::FromUint(uint64_t v) {
  Scalar s;
  if (BN_set_word(s.bn_, v) != 1) Fatal();
  return s;
}

Scalar Scalar::Random() {
  Scalar s;
  do {
    if (BN_priv_rand_range(s.bn_, P256Order()) != 1) Fatal();
  } while (BN_is_zero(s.bn_));
  return s;
}

StatusOr<Scalar> Scalar::FromBytes(ByteSpan be32) {
  if (be32.size() != kScalarSize) return InvalidArgument("scalar must be 32 bytes");
  Scalar s;
  if (BN_bin2bn(be32.data(), 32, s.bn_) == nullptr) Fatal();
  if (BN_cmp(s.bn_, P256Order()) >= 0) return InvalidArgument("scalar is not reduced mod n");
  return s;
}

Scalar Scalar::FromBytesReduced(ByteSpan be) {
  Scalar s;
  BIGNUM* t = NewBn();
  if (BN_bin2bn(be.data(), static_cast<int>(be.size()), t) == nullptr ||
      BN_nnmod(s.bn_, t, P256Order(), Ctx()) != 1)
    Fatal();
  BN_clear_free(t);
  return s;
}

SecretBytes Scalar::ToSecretBytes() const {
  SecretBytes out(kScalarSize);
  if (BN_bn2binpad(bn_, out.ExposeMutable().data(), kScalarSize) != kScalarSize) Fatal();
  return out;
}

Bytes Scalar::ToPublicBytes() const {
  Bytes out(kScalarSize);
  if (BN_bn2binpad(bn_, out.data(), kScalarSize) != kScalarSize) Fatal();
  return out;
}

Scalar Scalar::operator+(const Scalar& o) const {
  Scalar r;
  if (BN_mod_add(r.bn_, bn_, o.bn_, P256Order(), Ctx()) != 1) Fatal();
  return r;
}
Scalar Scalar::operator-(const Scalar& o) const {
  Scalar r;
  if (BN_mod_sub(r.bn_, bn_, o.bn_, P256Order(), Ctx()) != 1) Fatal();
  return r;
}
Scalar Scalar::operator*(const Scalar& o) const {
  Scalar r;
  if (BN_mod_mul(r.bn_, bn_, o.bn_, P256Order(), Ctx()) != 1) Fatal();
  return r;
}
Scalar Scalar::Negate() const { return Scalar() - *this; }

StatusOr<Scalar> Scalar::Inverse() const {
  if (IsZero()) return InvalidArgument("zero has no inverse");
  Scalar r;
  if (BN_mod_inverse(r.bn_, bn_, P256Order(), Ctx()) == nullptr) Fatal();
  return r;
}

bool Scalar::IsZero() const { return BN_is_zero(bn_); }

bool Scalar::operator==(const Scalar& o) const {
  uint8_t a[32], b[32];
  BN_bn2binpad(bn_, a, 32);
  BN_bn2binpad(o.bn_, b, 32);
  bool eq = CRYPTO_memcmp(a, b, 32) == 0;
  OPENSSL_cleanse(a, 32);
  OPENSSL_cleanse(b, 32);
  return eq;
}

// ---- Point ----

Point::Point() : pt_(EC_POINT_new(P256Group())) {
  if (pt_ == nullptr || EC_POINT_set_to_infinity(P256Group(), pt_) != 1) Fatal();
}
Point::~Point() { EC_POINT_clear_free(pt_); }
Point::Point(const Point& other) : pt_(EC_POINT_dup(other.pt_, P256Group())) {
  if (pt_ == nullptr) Fatal();
}
Point& Point::operator=(const Point& other) {
  if (this != &other && EC_POINT_copy(pt_, other.pt_) != 1) Fatal();
  return *this;
}
Point::Point(Point&& other) noexcept : pt_(other.pt_) { other.pt_ = EC_POINT_new(P256Group()); }
Point& Point::operator=(Point&& other) noexcept {
  std::swap(pt_, other.pt_);
  return *this;
}

Point Point::Generator() {
  Point p;
  if (EC_POINT_copy(p.pt_, EC_GROUP_get0_generator(P256Group())) != 1) Fatal();
  return p;
}

Point Point::BaseMul(const Scalar& s) {
  Point p;
  if (EC_POINT_mul(P256Group(), p.pt_, s.bn(), nullptr, nullptr, Ctx()) != 1) Fatal();
  return p;
}

StatusOr<Point> Point::Decode(ByteSpan sec1) {
  if (sec1.size() != 33 && sec1.size() != 65) return InvalidArgument("point has a bad length");
  if (sec1.size() == 33 && sec1[0] != 0x02 && sec1[0] != 0x03)
    return InvalidArgument("compressed point has a bad prefix");
  if (sec1.size() == 65 && sec1[0] != 0x04)
    return InvalidArgument("uncompressed point has a bad prefix");
  Point p;
  if (EC_POINT_oct2point(P256Group(), p.pt_, sec1.data(), sec1.size(), Ctx()) != 1)
    return InvalidArgument("point is not on P-256");
  if (p.IsIdentity()) return InvalidArgument("point is the identity");
  return p;
}

StatusOr<Point> Point::FromAffine(ByteSpan x, ByteSpan y) {
  if (x.size() != 32 || y.size() != 32) return InvalidArgument("affine coordinate size");
  static const uint8_t kUncompressed[1] = {4};
  Bytes u = Concat({ByteSpan(kUncompressed, 1), x, y});
  return Decode(u);
}

Bytes Point::Encode() const {
  if (IsIdentity()) return Bytes{0};
  Bytes out(kPointSize);
  if (EC_POINT_point2oct(P256Group(), pt_, POINT_CONVERSION_COMPRESSED, out.data(), out.size(),
                         Ctx()) != kPointSize)
    Fatal();
  return out;
}

Bytes Point::EncodeUncompressed() const {
  if (IsIdentity()) return Bytes{0};
  Bytes out(65);
  if (EC_POINT_point2oct(P256Group(), pt_, POINT_CONVERSION_UNCOMPRESSED, out.data(), out.size(),
                         Ctx()) != 65)
    Fatal();
  return out;
}

Bytes Point::AffineX() const {
  Bytes u = EncodeUncompressed();
  if (u.size() != 65) return Bytes(32, 0);
  return Bytes(u.begin() + 1, u.begin() + 33);
}

Point Point::operator+(const Point& o) const {
  Point r;
  if (EC_POINT_add(P256Group(), r.pt_, pt_, o.pt_, Ctx()) != 1) Fatal();
  return r;
}

Point Point::operator-(const Point& o) const {
  Point neg(o);
  if (EC_POINT_invert(P256Group(), neg.pt_, Ctx()) != 1) Fatal();
  return *this + neg;
}

Point Point::operator*(const Scalar& s) const {
  Point r;
  if (EC_POINT_mul(P256Group(), r.pt_, nullptr, pt_, s.bn(), Ctx()) != 1) Fatal();
  return r;
}

bool Point::IsIdentity() const { return EC_POINT_is_at_infinity(P256Group(), pt_) == 1; }

bool Point::operator==(const Point& o) const {
  return EC_POINT_cmp(P256Group(), pt_, o.pt_, Ctx()) == 0;
}

Point MulAdd(const Scalar& a, const Scalar& b, const Point& p) {
  Point r;
  if (EC_POINT_mul(P256Group(), r.mutable_ec(), a.bn(), p.ec(), b.bn(), Ctx()) != 1)
    Fatal();
  return r;
}

}  // namespace custos::crypto
