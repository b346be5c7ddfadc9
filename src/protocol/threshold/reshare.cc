#include "protocol/threshold/reshare.h"

#include <set>

#include "crypto/hash.h"

namespace custos::threshold {

using crypto::Point;
using crypto::Scalar;
namespace hpke = crypto::hpke;

Bytes ReshareShareInfo(ByteSpan session_id, uint32_t dealer, uint32_t recipient) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/reshare/share")).Var(session_id).U32(dealer).U32(recipient);
  return w.Take();
}

namespace {
Bytes CommitmentDigest(const std::vector<Point>& c) {
  ByteWriter w;
  for (const Point& p : c) w.Raw(p.Encode());
  return crypto::Sha256Bytes(w.bytes());
}
}  // namespace

Bytes ReshareDeal::Encode() const {
  ByteWriter w;
  w.U32(dealer).U32(static_cast<uint32_t>(commitments.size()));
  for (const Point& p : commitments) w.Raw(p.Encode());
  w.U32(static_cast<uint32_t>(encrypted_shares.size()));
  for (const auto& [j, ct] : encrypted_shares) w.U32(j).Var(ct);
  return w.Take();
}

StatusOr<ReshareDeal> ReshareDeal::Decode(ByteSpan b) {
  ByteReader r(b);
  ReshareDeal d;
  ASSIGN_OR_RETURN(d.dealer, r.U32("dealer"));
  ASSIGN_OR_RETURN(uint32_t t, r.U32("commitment count"));
  if (t == 0 || t > 256) return InvalidArgument("bad count of commitments");
  for (uint32_t k = 0; k < t; ++k) {
    ASSIGN_OR_RETURN(ByteSpan p, r.Raw(crypto::kPointSize, "commitment"));
    ASSIGN_OR_RETURN(Point pt, Point::Decode(p));
    d.commitments.push_back(std::move(pt));
  }
  ASSIGN_OR_RETURN(uint32_t n, r.U32("share count"));
  if (n > 256) return InvalidArgument("bad count of encrypted shares");
  for (uint32_t k = 0; k < n; ++k) {
    ASSIGN_OR_RETURN(uint32_t j, r.U32("share recipient"));
    ASSIGN_OR_RETURN(ByteSpan ct, r.Var("encrypted share", 4096));
    if (!d.encrypted_shares.emplace(j, Bytes(ct.begin(), ct.end())).second)
      return InvalidArgument("two encrypted shares for one recipient");
  }
  RETURN_IF_ERROR(r.ExpectEnd("reshare deal"));
  return d;
}

StatusOr<ReshareDeal> DealReshare(ByteSpan session_id, uint32_t old_index, const Scalar& old_share,
                                  uint32_t new_threshold,
                                  const std::vector<ReshareRecipient>& recipients, bool corrupt) {
  if (new_threshold < 1 || new_threshold > recipients.size())
    return InvalidArgument("new threshold must be between 1 and the number of new keepers");
  Polynomial g = Polynomial::Random(old_share, new_threshold - 1);
  ReshareDeal d;
  d.dealer = old_index;
  d.commitments = FeldmanCommit(g);
  Bytes aad = CommitmentDigest(d.commitments);
  for (const auto& r : recipients) {
    Scalar s = g.Evaluate(r.index);
    if (corrupt) s = s + Scalar::FromUint(1);
    SecretBytes pt = s.ToSecretBytes();
    ASSIGN_OR_RETURN(Bytes ct, hpke::SealBase(r.hpke_key, ReshareShareInfo(session_id, old_index,
                                                                           r.index),
                                              aad, pt.Expose()));
    d.encrypted_shares[r.index] = std::move(ct);
  }
  return d;
}

ReshareReceiver::ReshareReceiver(Bytes session_id, uint32_t my_index, hpke::PrivateKey hpke_key,
                                 uint32_t old_threshold, uint32_t new_threshold,
                                 std::vector<uint32_t> new_indices,
                                 std::map<uint32_t, Point> old_keys, Point public_key)
    : session_id_(std::move(session_id)),
      me_(my_index),
      hpke_key_(std::move(hpke_key)),
      old_threshold_(old_threshold),
      new_threshold_(new_threshold),
      new_indices_(std::move(new_indices)),
      old_keys_(std::move(old_keys)),
      public_key_(std::move(public_key)) {}

StatusOr<std::vector<uint32_t>> ReshareReceiver::ProcessDeals(const std::vector<ReshareDeal>& deals) {
  std::vector<uint32_t> bad;
  std::set<uint32_t> seen;
  for (const ReshareDeal& d : deals) {
    if (!seen.insert(d.dealer).second)
      return InvalidArgument("two reshare deals from old keeper " + std::to_string(d.dealer));
    auto key = old_keys_.find(d.dealer);
    if (key == old_keys_.end()) {
      bad.push_back(d.dealer);
      continue;
    }
    bool ok = d.commitments.size() == new_threshold_ && d.commitments[0] == key->second;
    if (ok) {
      auto ct = d.encrypted_shares.find(me_);
      ok = false;
      if (ct != d.encrypted_shares.end()) {
        auto pt = hpke::OpenBaseSecret(hpke_key_, ReshareShareInfo(session_id_, d.dealer, me_),
                                       CommitmentDigest(d.commitments), ct->second);
        if (pt.ok()) {
          auto s = Scalar::FromBytes(pt->Expose());
          if (s.ok() && VerifyFeldmanShare(d.commitments, me_, *s)) {
            shares_[d.dealer] = *s;
            commitments_[d.dealer] = d.commitments;
            ok = true;
          }
        }
      }
    }
    if (!ok) bad.push_back(d.dealer);
  }
  return bad;
}

StatusOr<ReshareResult> ReshareReceiver::Finalize(const std::vector<uint32_t>& q) {
  if (q.size() != old_threshold_)
    return InvalidArgument("reshare quorum must have exactly the old threshold of keepers");
  for (uint32_t i : q)
    if (!shares_.count(i))
      return FailedPrecondition("reshare quorum includes old keeper " + std::to_string(i) +
                                " whose deal did not verify here");
  ReshareResult res;
  Point y;
  for (uint32_t i : q) {
    ASSIGN_OR_RETURN(Scalar l, LagrangeAtZero(q, i));
    res.share += l * shares_[i];
    y += old_keys_.at(i) * l;
    for (uint32_t j : new_indices_) {
      Point& x = res.verification_keys[j];
      x += EvaluateCommitments(commitments_[i], j) * l;
    }
  }
  if (!(y == public_key_))
    return IntegrityError("reshare quorum does not reproduce the domain public key");
  if (!(Point::BaseMul(res.share) == res.verification_keys.at(me_)))
    return IntegrityError("new share does not match its verification key");
  return res;
}

}  // namespace custos::threshold
