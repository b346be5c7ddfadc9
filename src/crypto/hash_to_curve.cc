// RFC 9380 hash_to_curve for P-256 (suite P256_XMD:SHA-256_SSWU_RO_), written from the RFC:
// expand_message_xmd (section 5.3.1), hash_to_field (section 5.2, L = 48, m = 1, count = 2),
// the simplified SWU map (section 6.6.2, straight-line description) with Z = -10, and the
// random-oracle composition map(u0) + map(u1) (section 3; P-256 has cofactor 1).
//
// Every input here is public (messages are labels and transcripts, never secrets), so the field
// arithmetic uses plain OpenSSL BIGNUM modular operations without constant-time care.
#include "crypto/hash_to_curve.h"

#include <openssl/bn.h>
#include <openssl/ec.h>

#include <cstdlib>
#include <memory>

#include "crypto/hash.h"

namespace custos::crypto {

namespace {

constexpr size_t kHashLen = 32;   // SHA-256 output (b_in_bytes)
constexpr size_t kBlockLen = 64;  // SHA-256 input block (s_in_bytes)
constexpr size_t kFieldL = 48;    // ceil((ceil(log2(p)) + k) / 8) with k = 128
constexpr size_t kFieldBytes = 32;

[[noreturn]] void Fatal() { std::abort(); }

struct BnDeleter {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnDeleter>;
struct BnCtxDeleter {
  void operator()(BN_CTX* c) const { BN_CTX_free(c); }
};
using BnCtxPtr = std::unique_ptr<BN_CTX, BnCtxDeleter>;

BnPtr NewBn() {
  BnPtr b(BN_new());
  if (!b) Fatal();
  return b;
}

BnCtxPtr NewCtx() {
  BnCtxPtr c(BN_CTX_new());
  if (!c) Fatal();
  return c;
}

void Check(int ok) {
  if (ok != 1) Fatal();
}

// FieldConstants holds the P-256 base-field constants the map needs. They are derived once from
// OpenSSL's curve parameters (so nothing is retyped by hand) and then only read.
struct FieldConstants {
  BnPtr p, a, b, z;
  BnPtr minus_b_over_a;  // -B / A, step 2 of the straight-line SSWU
  BnPtr b_over_za;       // B / (Z * A), the exceptional case tv1 == 0
  BnPtr sqrt_exp;        // (p + 1) / 4: p = 3 mod 4, so x^((p+1)/4) is a square root
  BnPtr legendre_exp;    // (p - 1) / 2: Euler's criterion for is_square
};

const FieldConstants& Field() {
  static const FieldConstants* fc = [] {
    auto* c =
        new FieldConstants{NewBn(), NewBn(), NewBn(), NewBn(), NewBn(), NewBn(), NewBn(), NewBn()};
    BnCtxPtr ctx = NewCtx();
    Check(EC_GROUP_get_curve(P256Group(), c->p.get(), c->a.get(), c->b.get(), ctx.get()));
    // The suite fixes A = -3; confirm OpenSSL agrees before relying on it.
    BnPtr three = NewBn();
    Check(BN_set_word(three.get(), 3));
    BnPtr minus3 = NewBn();
    Check(BN_mod_sub(minus3.get(), c->p.get(), three.get(), c->p.get(), ctx.get()));
    if (BN_cmp(minus3.get(), c->a.get()) != 0) Fatal();
    // Z = -10 (RFC 9380 section 8.2).
    BnPtr ten = NewBn();
    Check(BN_set_word(ten.get(), 10));
    Check(BN_mod_sub(c->z.get(), c->p.get(), ten.get(), c->p.get(), ctx.get()));

    BnPtr inv = NewBn();
    if (BN_mod_inverse(inv.get(), c->a.get(), c->p.get(), ctx.get()) == nullptr) Fatal();
    BnPtr neg_b = NewBn();
    Check(BN_mod_sub(neg_b.get(), c->p.get(), c->b.get(), c->p.get(), ctx.get()));
    Check(BN_mod_mul(c->minus_b_over_a.get(), neg_b.get(), inv.get(), c->p.get(), ctx.get()));

    BnPtr za = NewBn();
    Check(BN_mod_mul(za.get(), c->z.get(), c->a.get(), c->p.get(), ctx.get()));
    if (BN_mod_inverse(inv.get(), za.get(), c->p.get(), ctx.get()) == nullptr) Fatal();
    Check(BN_mod_mul(c->b_over_za.get(), c->b.get(), inv.get(), c->p.get(), ctx.get()));

    Check(BN_copy(c->sqrt_exp.get(), c->p.get()) != nullptr);
    Check(BN_add_word(c->sqrt_exp.get(), 1));
    Check(BN_rshift(c->sqrt_exp.get(), c->sqrt_exp.get(), 2));
    Check(BN_copy(c->legendre_exp.get(), c->p.get()) != nullptr);
    Check(BN_sub_word(c->legendre_exp.get(), 1));
    Check(BN_rshift1(c->legendre_exp.get(), c->legendre_exp.get()));
    return c;
  }();
  return *fc;
}

// Curve evaluates g(x) = x^3 + A*x + B mod p.
void Curve(BIGNUM* out, const BIGNUM* x, BN_CTX* ctx) {
  const FieldConstants& f = Field();
  BnPtr t = NewBn();
  Check(BN_mod_sqr(t.get(), x, f.p.get(), ctx));
  Check(BN_mod_add(t.get(), t.get(), f.a.get(), f.p.get(), ctx));  // x^2 + A
  Check(BN_mod_mul(t.get(), t.get(), x, f.p.get(), ctx));          // x^3 + A*x
  Check(BN_mod_add(out, t.get(), f.b.get(), f.p.get(), ctx));
}

// IsSquare applies Euler's criterion: v^((p-1)/2) is 0 or 1 exactly when v is a square.
bool IsSquare(const BIGNUM* v, BN_CTX* ctx) {
  const FieldConstants& f = Field();
  BnPtr t = NewBn();
  Check(BN_mod_exp(t.get(), v, f.legendre_exp.get(), f.p.get(), ctx));
  return BN_is_zero(t.get()) || BN_is_one(t.get());
}

Bytes ToField32(const BIGNUM* v) {
  Bytes out(kFieldBytes);
  if (BN_bn2binpad(v, out.data(), static_cast<int>(out.size())) != static_cast<int>(kFieldBytes))
    Fatal();
  return out;
}

}  // namespace

StatusOr<Bytes> ExpandMessageXmd(ByteSpan msg, ByteSpan dst, size_t len_in_bytes) {
  // The RFC aborts for ell > 255 (len > 8160 with SHA-256) and DST > 255 bytes; a zero-length
  // request has no use here and is refused so that callers notice a bug.
  if (dst.size() > 255) return InvalidArgument("hash_to_curve: DST longer than 255 bytes");
  if (len_in_bytes == 0) return InvalidArgument("hash_to_curve: zero output length");
  const size_t ell = (len_in_bytes + kHashLen - 1) / kHashLen;
  if (ell > 255) return InvalidArgument("hash_to_curve: output length above 8160 bytes");

  const uint8_t dst_len = static_cast<uint8_t>(dst.size());
  const uint8_t lib_str[2] = {static_cast<uint8_t>(len_in_bytes >> 8),
                              static_cast<uint8_t>(len_in_bytes & 0xff)};
  static const uint8_t kZPad[kBlockLen] = {};
  const uint8_t zero = 0;

  // b_0 = H(Z_pad || msg || I2OSP(len, 2) || I2OSP(0, 1) || DST_prime)
  Sha256Stream h0;
  h0.Update(ByteSpan(kZPad, kBlockLen))
      .Update(msg)
      .Update(ByteSpan(lib_str, 2))
      .Update(ByteSpan(&zero, 1))
      .Update(dst)
      .Update(ByteSpan(&dst_len, 1));
  const Digest b0 = h0.Final();

  Bytes uniform;
  uniform.reserve(ell * kHashLen);
  Digest prev{};  // b_0 XOR b_0 = 0, so b_1 fits the same formula as the later blocks
  for (size_t i = 1; i <= ell; ++i) {
    Digest mixed;
    for (size_t j = 0; j < kHashLen; ++j) mixed[j] = static_cast<uint8_t>(b0[j] ^ prev[j]);
    const uint8_t idx = static_cast<uint8_t>(i);
    Sha256Stream hi;
    hi.Update(mixed).Update(ByteSpan(&idx, 1)).Update(dst).Update(ByteSpan(&dst_len, 1));
    prev = hi.Final();
    uniform.insert(uniform.end(), prev.begin(), prev.end());
  }
  uniform.resize(len_in_bytes);
  return uniform;
}

StatusOr<std::array<Bytes, 2>> HashToFieldP256(ByteSpan msg, ByteSpan dst) {
  ASSIGN_OR_RETURN(Bytes uniform, ExpandMessageXmd(msg, dst, 2 * kFieldL));
  const FieldConstants& f = Field();
  BnCtxPtr ctx = NewCtx();
  std::array<Bytes, 2> u;
  for (size_t i = 0; i < 2; ++i) {
    BnPtr e = NewBn();
    if (BN_bin2bn(uniform.data() + i * kFieldL, kFieldL, e.get()) == nullptr) Fatal();
    Check(BN_nnmod(e.get(), e.get(), f.p.get(), ctx.get()));
    u[i] = ToField32(e.get());
  }
  return u;
}

StatusOr<Point> MapToCurveSswuP256(ByteSpan u_bytes) {
  if (u_bytes.size() != kFieldBytes)
    return InvalidArgument("map_to_curve: field element must be 32 bytes");
  const FieldConstants& f = Field();
  BnCtxPtr owned_ctx = NewCtx();
  BN_CTX* ctx = owned_ctx.get();
  const BIGNUM* p = f.p.get();

  BnPtr u = NewBn();
  if (BN_bin2bn(u_bytes.data(), kFieldBytes, u.get()) == nullptr) Fatal();
  if (BN_cmp(u.get(), p) >= 0) return InvalidArgument("map_to_curve: field element not below p");

  // 1. tv1 = inv0(Z^2 * u^4 + Z * u^2)
  BnPtr zu2 = NewBn();
  Check(BN_mod_sqr(zu2.get(), u.get(), p, ctx));
  Check(BN_mod_mul(zu2.get(), zu2.get(), f.z.get(), p, ctx));  // Z * u^2
  BnPtr tv1 = NewBn();
  Check(BN_mod_sqr(tv1.get(), zu2.get(), p, ctx));  // Z^2 * u^4
  Check(BN_mod_add(tv1.get(), tv1.get(), zu2.get(), p, ctx));
  if (!BN_is_zero(tv1.get()) && BN_mod_inverse(tv1.get(), tv1.get(), p, ctx) == nullptr) Fatal();

  // 2-3. x1 = (-B / A) * (1 + tv1), or B / (Z * A) when tv1 == 0 (inv0 of zero is zero).
  BnPtr x1 = NewBn();
  if (BN_is_zero(tv1.get())) {
    Check(BN_copy(x1.get(), f.b_over_za.get()) != nullptr);
  } else {
    BnPtr one = NewBn();
    Check(BN_one(one.get()));
    Check(BN_mod_add(x1.get(), tv1.get(), one.get(), p, ctx));
    Check(BN_mod_mul(x1.get(), x1.get(), f.minus_b_over_a.get(), p, ctx));
  }

  // 4-8. Use x1 if g(x1) is square, else x2 = Z * u^2 * x1 (then g(x2) is square).
  BnPtr gx = NewBn();
  Curve(gx.get(), x1.get(), ctx);
  BnPtr x = NewBn();
  if (IsSquare(gx.get(), ctx)) {
    Check(BN_copy(x.get(), x1.get()) != nullptr);
  } else {
    Check(BN_mod_mul(x.get(), zu2.get(), x1.get(), p, ctx));
    Curve(gx.get(), x.get(), ctx);
    if (!IsSquare(gx.get(), ctx)) Fatal();  // impossible by the SSWU construction
  }
  BnPtr y = NewBn();
  Check(BN_mod_exp(y.get(), gx.get(), f.sqrt_exp.get(), p, ctx));

  // 9. Fix the sign: sgn0(y) must equal sgn0(u); for m = 1, sgn0 is the parity.
  if (BN_is_odd(u.get()) != BN_is_odd(y.get()) && !BN_is_zero(y.get()))
    Check(BN_mod_sub(y.get(), p, y.get(), p, ctx));

  return Point::FromAffine(ToField32(x.get()), ToField32(y.get()));
}

StatusOr<Point> HashToCurveP256(ByteSpan msg, ByteSpan dst) {
  ASSIGN_OR_RETURN(auto u, HashToFieldP256(msg, dst));
  ASSIGN_OR_RETURN(Point q0, MapToCurveSswuP256(u[0]));
  ASSIGN_OR_RETURN(Point q1, MapToCurveSswuP256(u[1]));
  return q0 + q1;  // clear_cofactor is the identity map for h = 1
}

const Point& PedersenH() {
  // Function-local static: initialised once, thread-safely, on first use; read-only afterwards.
  static const Point h = [] {
    auto r = HashToCurveP256(AsBytes("H"), AsBytes("CUSTOS-V1-P256-PEDERSEN"));
    if (!r.ok() || r->IsIdentity()) Fatal();
    return std::move(r).value();
  }();
  return h;
}

}  // namespace custos::crypto
