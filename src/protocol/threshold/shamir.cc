#include "protocol/threshold/shamir.h"

#include <set>

#include "crypto/hash_to_curve.h"

namespace custos::threshold {

Polynomial Polynomial::Random(const Scalar& constant, size_t degree) {
  std::vector<Scalar> c;
  c.reserve(degree + 1);
  c.push_back(constant);
  for (size_t k = 0; k < degree; ++k) c.push_back(Scalar::Random());
  return Polynomial(std::move(c));
}

Scalar Polynomial::Evaluate(uint32_t x) const {
  // Horner's rule.
  Scalar xs = Scalar::FromUint(x);
  Scalar acc;
  for (size_t k = coeffs_.size(); k-- > 0;) acc = acc * xs + coeffs_[k];
  return acc;
}

StatusOr<Scalar> LagrangeAt(std::span<const uint32_t> indices, uint32_t i, uint32_t x) {
  std::set<uint32_t> seen;
  bool found = false;
  for (uint32_t j : indices) {
    if (j == 0) return InvalidArgument("share index 0 is not allowed");
    if (!seen.insert(j).second) return InvalidArgument("share indices repeat");
    if (j == i) found = true;
  }
  if (!found) return InvalidArgument("index is not among the interpolation points");
  Scalar num = Scalar::FromUint(1), den = Scalar::FromUint(1);
  Scalar xs = Scalar::FromUint(x), is = Scalar::FromUint(i);
  for (uint32_t j : indices) {
    if (j == i) continue;
    Scalar js = Scalar::FromUint(j);
    num = num * (xs - js);
    den = den * (is - js);
  }
  ASSIGN_OR_RETURN(Scalar inv, den.Inverse());
  return num * inv;
}

StatusOr<Scalar> LagrangeAtZero(std::span<const uint32_t> indices, uint32_t i) {
  return LagrangeAt(indices, i, 0);
}

std::vector<Point> FeldmanCommit(const Polynomial& f) {
  std::vector<Point> out;
  for (const Scalar& a : f.coefficients()) out.push_back(Point::BaseMul(a));
  return out;
}

std::vector<Point> PedersenCommit(const Polynomial& f, const Polynomial& blinding) {
  std::vector<Point> out;
  const Point& h = crypto::PedersenH();
  for (size_t k = 0; k < f.coefficients().size(); ++k)
    out.push_back(crypto::MulAdd(f.coefficients()[k], blinding.coefficients()[k], h));
  return out;
}

Point EvaluateCommitments(std::span<const Point> commitments, uint32_t x) {
  // Horner in the exponent: acc = acc * x + C_k.
  Point acc;
  Scalar xs = Scalar::FromUint(x);
  for (size_t k = commitments.size(); k-- > 0;) acc = acc * xs + commitments[k];
  return acc;
}

bool VerifyFeldmanShare(std::span<const Point> commitments, uint32_t j, const Scalar& s) {
  return Point::BaseMul(s) == EvaluateCommitments(commitments, j);
}

bool VerifyPedersenShare(std::span<const Point> commitments, uint32_t j, const Scalar& s,
                         const Scalar& s2) {
  return crypto::MulAdd(s, s2, crypto::PedersenH()) == EvaluateCommitments(commitments, j);
}

StatusOr<Point> InterpolatePointsAtZero(std::span<const uint32_t> indices,
                                        std::span<const Point> points) {
  if (indices.size() != points.size()) return InvalidArgument("index/point count mismatch");
  Point acc;
  for (size_t k = 0; k < indices.size(); ++k) {
    ASSIGN_OR_RETURN(Scalar l, LagrangeAtZero(indices, indices[k]));
    acc += points[k] * l;
  }
  return acc;
}

}  // namespace custos::threshold
