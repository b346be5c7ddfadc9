// NIST P-256 scalar and point arithmetic over OpenSSL's EC_POINT/BIGNUM (constant-time
// scalar multiplication on the P-256 fast path). Points are SEC1-compressed on the wire.
//
// Thread safety: values are independent; each thread uses its own scratch BN_CTX.
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"

typedef struct bignum_st BIGNUM;
typedef struct ec_point_st EC_POINT;
typedef struct ec_group_st EC_GROUP;

namespace custos::crypto {

inline constexpr size_t kScalarSize = 32;
inline constexpr size_t kPointSize = 33;  // SEC1 compressed

// P256Group returns the shared, read-only curve object.
const EC_GROUP* P256Group();
// P256Order returns n, the prime order of the group.
const BIGNUM* P256Order();

// Scalar is an element of Z_n. It may be secret: its BIGNUM is flagged constant-time and
// cleared on destruction, and it has no printing operator.
class Scalar {
 public:
  Scalar();  // zero
  ~Scalar();
  Scalar(const Scalar& other);
  Scalar& operator=(const Scalar& other);
  Scalar(Scalar&& other) noexcept;
  Scalar& operator=(Scalar&& other) noexcept;

  static Scalar FromUint(uint64_t v);
  // Random returns a uniform non-zero scalar.
  static Scalar Random();
  // FromBytes parses a 32-byte big-endian canonical encoding (value < n).
  static StatusOr<Scalar> FromBytes(ByteSpan be32);
  // FromBytesReduced interprets any big-endian string as an integer and reduces it mod n
  // (used for Fiat-Shamir challenges from 48-byte hash outputs, so the bias is negligible).
  static Scalar FromBytesReduced(ByteSpan be);
  // Secret encoding (32 bytes, big-endian).
  SecretBytes ToSecretBytes() const;
  // Public encoding for scalars that are not secret (proof responses, indices).
  Bytes ToPublicBytes() const;

  Scalar operator+(const Scalar& o) const;
  Scalar operator-(const Scalar& o) const;
  Scalar operator*(const Scalar& o) const;
  Scalar& operator+=(const Scalar& o) { return *this = *this + o; }
  Scalar Negate() const;
  // Inverse returns 1/this; fails for zero.
  StatusOr<Scalar> Inverse() const;
  bool IsZero() const;
  // Equality in constant time.
  bool operator==(const Scalar& o) const;

  const BIGNUM* bn() const { return bn_; }
  BIGNUM* mutable_bn() { return bn_; }

 private:
  BIGNUM* bn_;
};

// Point is an element of the P-256 group (possibly the identity).
class Point {
 public:
  Point();  // identity
  ~Point();
  Point(const Point& other);
  Point& operator=(const Point& other);
  Point(Point&& other) noexcept;
  Point& operator=(Point&& other) noexcept;

  static Point Generator();
  static Point Identity() { return Point(); }
  // BaseMul returns s*G (precomputed-table fast path).
  static Point BaseMul(const Scalar& s);
  // Decode parses a SEC1 compressed (33 B) or uncompressed (65 B) point, checks it is on the
  // curve and refuses the identity.
  static StatusOr<Point> Decode(ByteSpan sec1);
  // FromAffine builds a point from affine coordinates given as 32-byte big-endian strings.
  static StatusOr<Point> FromAffine(ByteSpan x, ByteSpan y);

  // Encode returns the 33-byte compressed form; the identity encodes as the single byte 0x00.
  Bytes Encode() const;
  Bytes EncodeUncompressed() const;
  // AffineX returns the 32-byte big-endian x coordinate (used as the ECDH shared secret).
  Bytes AffineX() const;

  Point operator+(const Point& o) const;
  Point operator-(const Point& o) const;
  Point operator*(const Scalar& s) const;
  Point& operator+=(const Point& o) { return *this = *this + o; }
  bool IsIdentity() const;
  bool operator==(const Point& o) const;

  const EC_POINT* ec() const { return pt_; }
  EC_POINT* mutable_ec() { return pt_; }

 private:
  EC_POINT* pt_;
};

// MulAdd returns a*G + b*P in one pass.
Point MulAdd(const Scalar& a, const Scalar& b, const Point& p);

}  // namespace custos::crypto
