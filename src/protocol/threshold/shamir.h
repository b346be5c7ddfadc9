// Shamir secret sharing over the P-256 scalar field, and Pedersen/Feldman commitments to the
// sharing polynomials (docs/protocol.md, "Threshold primitives"). Share indices are 1..n.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "crypto/p256.h"

namespace custos::threshold {

using crypto::Point;
using crypto::Scalar;

// Polynomial of degree t-1 with secret coefficients (wiped with its Scalars).
class Polynomial {
 public:
  // Random returns a polynomial with f(0) = constant and `degree` further random coefficients.
  static Polynomial Random(const Scalar& constant, size_t degree);
  static Polynomial FromCoefficients(std::vector<Scalar> c) { return Polynomial(std::move(c)); }
  Scalar Evaluate(uint32_t x) const;
  const std::vector<Scalar>& coefficients() const { return coeffs_; }
  size_t threshold() const { return coeffs_.size(); }

 private:
  explicit Polynomial(std::vector<Scalar> c) : coeffs_(std::move(c)) {}
  std::vector<Scalar> coeffs_;
};

// LagrangeAtZero returns lambda_i for interpolating f(0) from the points at `indices`.
// Fails if `i` is not in `indices`, an index is zero, or indices repeat.
StatusOr<Scalar> LagrangeAtZero(std::span<const uint32_t> indices, uint32_t i);
// LagrangeAt returns lambda_i for interpolating f(x).
StatusOr<Scalar> LagrangeAt(std::span<const uint32_t> indices, uint32_t i, uint32_t x);

// FeldmanCommit returns A_k = a_k * G.
std::vector<Point> FeldmanCommit(const Polynomial& f);
// PedersenCommit returns C_k = a_k * G + b_k * H (H = crypto::PedersenH()).
std::vector<Point> PedersenCommit(const Polynomial& f, const Polynomial& blinding);
// EvaluateCommitments returns sum_k x^k * C_k, the commitment to f(x).
Point EvaluateCommitments(std::span<const Point> commitments, uint32_t x);
// VerifyFeldmanShare checks s * G == sum_k j^k A_k.
bool VerifyFeldmanShare(std::span<const Point> commitments, uint32_t j, const Scalar& s);
// VerifyPedersenShare checks s * G + s2 * H == sum_k j^k C_k.
bool VerifyPedersenShare(std::span<const Point> commitments, uint32_t j, const Scalar& s,
                         const Scalar& s2);

// InterpolatePoints returns sum lambda_i * P_i at x = 0 (combining partial decryptions or
// verification keys in the exponent).
StatusOr<Point> InterpolatePointsAtZero(std::span<const uint32_t> indices,
                                        std::span<const Point> points);

}  // namespace custos::threshold
