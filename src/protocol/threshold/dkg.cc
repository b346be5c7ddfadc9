#include "protocol/threshold/dkg.h"

#include <algorithm>

#include "crypto/hash.h"

namespace custos::threshold {

using crypto::Point;
using crypto::Scalar;
namespace hpke = crypto::hpke;

namespace {

constexpr uint32_t kMaxParticipants = 256;

void PutPoints(ByteWriter& w, const std::vector<Point>& pts) {
  w.U32(static_cast<uint32_t>(pts.size()));
  for (const Point& p : pts) w.Raw(p.Encode());
}

StatusOr<std::vector<Point>> GetPoints(ByteReader& r, const char* field, bool allow_empty = false) {
  ASSIGN_OR_RETURN(uint32_t n, r.U32(field));
  if ((n == 0 && !allow_empty) || n > kMaxParticipants)
    return InvalidArgument(std::string("bad count of ") + field);
  std::vector<Point> out;
  for (uint32_t k = 0; k < n; ++k) {
    ASSIGN_OR_RETURN(ByteSpan b, r.Raw(crypto::kPointSize, field));
    ASSIGN_OR_RETURN(Point p, Point::Decode(b));
    out.push_back(std::move(p));
  }
  return out;
}

void PutRevealed(ByteWriter& w, const std::vector<RevealedShare>& v) {
  w.U32(static_cast<uint32_t>(v.size()));
  for (const auto& s : v) w.U32(s.other).Raw(s.s.ToPublicBytes()).Raw(s.s_blind.ToPublicBytes());
}

StatusOr<std::vector<RevealedShare>> GetRevealed(ByteReader& r, const char* field) {
  ASSIGN_OR_RETURN(uint32_t n, r.U32(field));
  if (n > kMaxParticipants) return InvalidArgument(std::string("bad count of ") + field);
  std::vector<RevealedShare> out;
  for (uint32_t k = 0; k < n; ++k) {
    RevealedShare s;
    ASSIGN_OR_RETURN(s.other, r.U32(field));
    ASSIGN_OR_RETURN(ByteSpan a, r.Raw(32, field));
    ASSIGN_OR_RETURN(s.s, Scalar::FromBytes(a));
    ASSIGN_OR_RETURN(ByteSpan b, r.Raw(32, field));
    ASSIGN_OR_RETURN(s.s_blind, Scalar::FromBytes(b));
    out.push_back(std::move(s));
  }
  return out;
}

StatusOr<std::vector<uint32_t>> GetIndices(ByteReader& r, const char* field) {
  ASSIGN_OR_RETURN(uint32_t n, r.U32(field));
  if (n > kMaxParticipants) return InvalidArgument(std::string("bad count of ") + field);
  std::vector<uint32_t> out;
  for (uint32_t k = 0; k < n; ++k) {
    ASSIGN_OR_RETURN(uint32_t v, r.U32(field));
    out.push_back(v);
  }
  return out;
}

Bytes CommitmentDigest(const std::vector<Point>& c) {
  ByteWriter w;
  PutPoints(w, c);
  return crypto::Sha256Bytes(w.bytes());
}

// IndexBySender builds sender -> message, refusing duplicates (a relay that equivocates).
template <typename M, typename F>
StatusOr<std::map<uint32_t, const M*>> IndexBySender(const std::vector<M>& msgs, F sender,
                                                      const char* what) {
  std::map<uint32_t, const M*> out;
  for (const M& m : msgs) {
    if (!out.emplace(sender(m), &m).second)
      return InvalidArgument(std::string("two ") + what + " messages from participant " +
                             std::to_string(sender(m)));
  }
  return out;
}

// Response, extraction-complaint and reveal messages share one layout:
// u32 sender || u32 count || count x (u32 other || s (32) || s' (32)).
Bytes EncodeRevealedMessage(uint32_t sender, const std::vector<RevealedShare>& v) {
  ByteWriter w;
  w.U32(sender);
  PutRevealed(w, v);
  return w.Take();
}

template <typename M>
StatusOr<M> DecodeRevealedMessage(ByteSpan b, uint32_t M::*sender,
                                  std::vector<RevealedShare> M::*list, const char* sender_name,
                                  const char* list_name, const char* what) {
  ByteReader r(b);
  M m;
  ASSIGN_OR_RETURN(m.*sender, r.U32(sender_name));
  ASSIGN_OR_RETURN(m.*list, GetRevealed(r, list_name));
  RETURN_IF_ERROR(r.ExpectEnd(what));
  return m;
}

}  // namespace

Status DkgParams::Validate() const {
  if (session_id.size() < 16 || session_id.size() > 64)
    return InvalidArgument("DKG session id must be 16..64 bytes");
  if (participants.empty() || participants.size() > kMaxParticipants)
    return InvalidArgument("DKG needs 1..256 participants");
  if (threshold < 1 || threshold > participants.size())
    return InvalidArgument("DKG threshold must be between 1 and the number of participants");
  std::set<uint32_t> seen;
  for (const auto& p : participants) {
    if (p.index < 1 || p.index > participants.size() || !seen.insert(p.index).second)
      return InvalidArgument("DKG participant indices must be 1..n without repeats");
  }
  return Status::Ok();
}

// ---- encodings (docs/protocol.md, "DKG messages") ----

Bytes DealMessage::Encode() const {
  ByteWriter w;
  w.U32(dealer);
  PutPoints(w, commitments);
  w.U32(static_cast<uint32_t>(encrypted_shares.size()));
  for (const auto& [j, ct] : encrypted_shares) w.U32(j).Var(ct);
  return w.Take();
}

StatusOr<DealMessage> DealMessage::Decode(ByteSpan b) {
  ByteReader r(b);
  DealMessage m;
  ASSIGN_OR_RETURN(m.dealer, r.U32("dealer"));
  ASSIGN_OR_RETURN(m.commitments, GetPoints(r, "commitments"));
  ASSIGN_OR_RETURN(uint32_t n, r.U32("share count"));
  if (n > kMaxParticipants) return InvalidArgument("bad count of encrypted shares");
  for (uint32_t k = 0; k < n; ++k) {
    ASSIGN_OR_RETURN(uint32_t j, r.U32("share recipient"));
    ASSIGN_OR_RETURN(ByteSpan ct, r.Var("encrypted share", 4096));
    if (!m.encrypted_shares.emplace(j, Bytes(ct.begin(), ct.end())).second)
      return InvalidArgument("two encrypted shares for one recipient");
  }
  RETURN_IF_ERROR(r.ExpectEnd("deal message"));
  return m;
}

Bytes ComplaintMessage::Encode() const {
  ByteWriter w;
  w.U32(complainer).U32(static_cast<uint32_t>(against.size()));
  for (uint32_t d : against) w.U32(d);
  return w.Take();
}

StatusOr<ComplaintMessage> ComplaintMessage::Decode(ByteSpan b) {
  ByteReader r(b);
  ComplaintMessage m;
  ASSIGN_OR_RETURN(m.complainer, r.U32("complainer"));
  ASSIGN_OR_RETURN(m.against, GetIndices(r, "complaints"));
  RETURN_IF_ERROR(r.ExpectEnd("complaint message"));
  return m;
}

Bytes ResponseMessage::Encode() const { return EncodeRevealedMessage(dealer, revealed); }

StatusOr<ResponseMessage> ResponseMessage::Decode(ByteSpan b) {
  return DecodeRevealedMessage(b, &ResponseMessage::dealer, &ResponseMessage::revealed, "dealer",
                               "revealed shares", "response message");
}

Bytes FeldmanMessage::Encode() const {
  ByteWriter w;
  w.U32(dealer);
  PutPoints(w, commitments);
  return w.Take();
}

StatusOr<FeldmanMessage> FeldmanMessage::Decode(ByteSpan b) {
  ByteReader r(b);
  FeldmanMessage m;
  ASSIGN_OR_RETURN(m.dealer, r.U32("dealer"));
  // Empty when the sender is not in QUAL (it publishes nothing).
  ASSIGN_OR_RETURN(m.commitments, GetPoints(r, "feldman commitments", /*allow_empty=*/true));
  RETURN_IF_ERROR(r.ExpectEnd("feldman message"));
  return m;
}

Bytes ExtractionComplaintMessage::Encode() const {
  return EncodeRevealedMessage(complainer, evidence);
}

StatusOr<ExtractionComplaintMessage> ExtractionComplaintMessage::Decode(ByteSpan b) {
  return DecodeRevealedMessage(b, &ExtractionComplaintMessage::complainer,
                               &ExtractionComplaintMessage::evidence, "complainer", "evidence",
                               "extraction complaint message");
}

Bytes RevealMessage::Encode() const { return EncodeRevealedMessage(revealer, shares); }

StatusOr<RevealMessage> RevealMessage::Decode(ByteSpan b) {
  return DecodeRevealedMessage(b, &RevealMessage::revealer, &RevealMessage::shares, "revealer",
                               "revealed shares", "reveal message");
}

// ---- participant ----

DkgParticipant::DkgParticipant(DkgParams params, uint32_t me, hpke::PrivateKey key, DkgBehavior b)
    : params_(std::move(params)), me_(me), hpke_key_(std::move(key)), behavior_(b) {}

StatusOr<DkgParticipant> DkgParticipant::Create(DkgParams params, uint32_t my_index,
                                                hpke::PrivateKey my_hpke_key,
                                                DkgBehavior behavior) {
  RETURN_IF_ERROR(params.Validate());
  bool found = false;
  for (const auto& p : params.participants) {
    if (p.index == my_index) {
      found = true;
      if (!(p.hpke_key == my_hpke_key.public_key()))
        return InvalidArgument("DKG parameters list another HPKE key for this participant");
    }
  }
  if (!found) return InvalidArgument("this participant is not in the DKG parameters");
  return DkgParticipant(std::move(params), my_index, std::move(my_hpke_key), behavior);
}

Status DkgParticipant::ExpectRound(int round) {
  if (round_ != round - 1)
    return FailedPrecondition("DKG round " + std::to_string(round) + " out of order (at round " +
                              std::to_string(round_) + ")");
  round_ = round;
  return Status::Ok();
}

bool DkgParticipant::IsParticipant(uint32_t i) const {
  return std::any_of(params_.participants.begin(), params_.participants.end(),
                     [&](const auto& p) { return p.index == i; });
}

Bytes DkgParticipant::ShareInfo(uint32_t dealer, uint32_t recipient) const {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/dkg/share")).Var(params_.session_id).U32(dealer).U32(recipient);
  return w.Take();
}

StatusOr<DealMessage> DkgParticipant::Deal() {
  RETURN_IF_ERROR(ExpectRound(1));
  size_t degree = params_.threshold - 1;
  f_ = Polynomial::Random(Scalar::Random(), degree);
  f_blind_ = Polynomial::Random(Scalar::Random(), degree);
  DealMessage m;
  m.dealer = me_;
  m.commitments = PedersenCommit(*f_, *f_blind_);
  Bytes aad = CommitmentDigest(m.commitments);
  for (const auto& p : params_.participants) {
    Scalar s = f_->Evaluate(p.index), s2 = f_blind_->Evaluate(p.index);
    if (p.index == me_) {
      my_shares_[me_] = {s, s2};
      continue;
    }
    if (behavior_ == DkgBehavior::kDealBadShares) s = s + Scalar::FromUint(1);
    SecretBytes a = s.ToSecretBytes(), b = s2.ToSecretBytes();
    SecretBytes pt = SecretBytes::CopyFrom(Concat({a.Expose(), b.Expose()}));
    ASSIGN_OR_RETURN(Bytes ct, hpke::SealBase(p.hpke_key, ShareInfo(me_, p.index), aad, pt.Expose()));
    m.encrypted_shares[p.index] = std::move(ct);
  }
  pedersen_[me_] = m.commitments;
  return m;
}

StatusOr<ComplaintMessage> DkgParticipant::ProcessDeals(const std::vector<DealMessage>& deals) {
  RETURN_IF_ERROR(ExpectRound(2));
  ASSIGN_OR_RETURN(auto by_dealer,
                   IndexBySender(deals, [](const DealMessage& m) { return m.dealer; }, "deal"));
  ComplaintMessage out;
  out.complainer = me_;
  for (const auto& p : params_.participants) {
    uint32_t i = p.index;
    if (i == me_) continue;
    auto it = by_dealer.find(i);
    if (it == by_dealer.end()) {
      disqualified_[i] = "did not deal";
      continue;
    }
    const DealMessage& d = *it->second;
    if (d.commitments.size() != params_.threshold) {
      disqualified_[i] = "dealt a polynomial of the wrong degree";
      continue;
    }
    pedersen_[i] = d.commitments;
    auto ct = d.encrypted_shares.find(me_);
    bool ok = false;
    if (ct != d.encrypted_shares.end()) {
      auto pt = hpke::OpenBaseSecret(hpke_key_, ShareInfo(i, me_), CommitmentDigest(d.commitments),
                                     ct->second);
      if (pt.ok() && pt->size() == 64) {
        auto s = Scalar::FromBytes(pt->Expose().subspan(0, 32));
        auto s2 = Scalar::FromBytes(pt->Expose().subspan(32, 32));
        if (s.ok() && s2.ok() && VerifyPedersenShare(d.commitments, me_, *s, *s2)) {
          my_shares_[i] = {*s, *s2};
          ok = true;
        }
      }
    }
    if (!ok) out.against.push_back(i);
  }
  return out;
}

StatusOr<ResponseMessage> DkgParticipant::ProcessComplaints(
    const std::vector<ComplaintMessage>& complaints) {
  RETURN_IF_ERROR(ExpectRound(3));
  ASSIGN_OR_RETURN(auto by_sender,
                   IndexBySender(complaints, [](const ComplaintMessage& m) { return m.complainer; },
                                 "complaint"));
  for (const auto& [j, m] : by_sender) {
    if (!IsParticipant(j)) continue;
    for (uint32_t dealer : m->against)
      if (IsParticipant(dealer) && dealer != j) complaints_[dealer].insert(j);
  }
  ResponseMessage out;
  out.dealer = me_;
  for (uint32_t j : complaints_[me_]) {
    Scalar s = f_->Evaluate(j);
    if (behavior_ == DkgBehavior::kDealBadShares) s = s + Scalar::FromUint(1);
    out.revealed.push_back({j, s, f_blind_->Evaluate(j)});
  }
  return out;
}

StatusOr<FeldmanMessage> DkgParticipant::ProcessResponses(
    const std::vector<ResponseMessage>& responses) {
  RETURN_IF_ERROR(ExpectRound(4));
  ASSIGN_OR_RETURN(auto by_dealer,
                   IndexBySender(responses, [](const ResponseMessage& m) { return m.dealer; },
                                 "response"));
  for (const auto& [dealer, complainers] : complaints_) {
    if (disqualified_.count(dealer) || !pedersen_.count(dealer)) continue;
    const auto& c = pedersen_[dealer];
    for (uint32_t j : complainers) {
      bool answered = false;
      auto it = by_dealer.find(dealer);
      if (it != by_dealer.end()) {
        for (const auto& r : it->second->revealed) {
          if (r.other == j && VerifyPedersenShare(c, j, r.s, r.s_blind)) {
            answered = true;
            if (j == me_) my_shares_[dealer] = {r.s, r.s_blind};
          }
        }
      }
      if (!answered) {
        disqualified_[dealer] = "dealt an invalid share to participant " + std::to_string(j) +
                                " and did not answer the complaint with a valid one";
        break;
      }
    }
  }
  for (const auto& p : params_.participants) {
    if (disqualified_.count(p.index)) continue;
    if (p.index != me_ && !my_shares_.count(p.index)) {
      // Only possible if our own complaint went unanswered: handled above, but be explicit.
      disqualified_[p.index] = "no valid share reached this participant";
      continue;
    }
    qual_.push_back(p.index);
  }
  if (qual_.size() < params_.threshold)
    return FailedPrecondition("fewer qualified dealers than the threshold");
  FeldmanMessage out;
  out.dealer = me_;
  if (std::find(qual_.begin(), qual_.end(), me_) != qual_.end()) out.commitments = FeldmanCommit(*f_);
  feldman_[me_] = out.commitments;
  return out;
}

StatusOr<ExtractionComplaintMessage> DkgParticipant::ProcessFeldman(
    const std::vector<FeldmanMessage>& msgs) {
  RETURN_IF_ERROR(ExpectRound(5));
  ASSIGN_OR_RETURN(auto by_dealer,
                   IndexBySender(msgs, [](const FeldmanMessage& m) { return m.dealer; },
                                 "feldman"));
  ExtractionComplaintMessage out;
  out.complainer = me_;
  for (uint32_t i : qual_) {
    if (i == me_) continue;
    auto it = by_dealer.find(i);
    const auto& share = my_shares_.at(i);
    if (it == by_dealer.end() || it->second->commitments.size() != params_.threshold) {
      to_reconstruct_.insert(i);
      reconstruct_reason_[i] = "did not publish Feldman commitments";
      continue;
    }
    if (!VerifyFeldmanShare(it->second->commitments, me_, share.first)) {
      out.evidence.push_back({i, share.first, share.second});
      continue;
    }
    feldman_[i] = it->second->commitments;
  }
  return out;
}

StatusOr<RevealMessage> DkgParticipant::ProcessExtractionComplaints(
    const std::vector<ExtractionComplaintMessage>& msgs) {
  RETURN_IF_ERROR(ExpectRound(6));
  ASSIGN_OR_RETURN(auto by_sender,
                   IndexBySender(msgs, [](const ExtractionComplaintMessage& m) { return m.complainer; },
                                 "extraction complaint"));
  for (const auto& [j, m] : by_sender) {
    if (!IsParticipant(j)) continue;
    for (const auto& e : m->evidence) {
      uint32_t dealer = e.other;
      if (std::find(qual_.begin(), qual_.end(), dealer) == qual_.end()) continue;
      // A valid complaint: the share passes Pedersen (so the dealer really sent it) and fails
      // the dealer's Feldman commitments.
      auto f = feldman_.find(dealer);
      bool feldman_fails = f == feldman_.end() || !VerifyFeldmanShare(f->second, j, e.s);
      if (VerifyPedersenShare(pedersen_[dealer], j, e.s, e.s_blind) && feldman_fails) {
        to_reconstruct_.insert(dealer);
        reconstruct_reason_[dealer] =
            "published Feldman commitments inconsistent with its share to participant " +
            std::to_string(j);
      }
    }
  }
  RevealMessage out;
  out.revealer = me_;
  for (uint32_t dealer : to_reconstruct_) {
    if (dealer == me_) continue;
    const auto& share = my_shares_.at(dealer);
    out.shares.push_back({dealer, share.first, share.second});
  }
  return out;
}

StatusOr<DkgResult> DkgParticipant::Finalize(const std::vector<RevealMessage>& reveals) {
  RETURN_IF_ERROR(ExpectRound(7));
  ASSIGN_OR_RETURN(auto by_sender,
                   IndexBySender(reveals, [](const RevealMessage& m) { return m.revealer; },
                                 "reveal"));
  DkgResult res;
  res.qual = qual_;
  res.disqualified = disqualified_;
  for (const auto& p : params_.participants) res.verification_keys[p.index] = Point();
  for (uint32_t i : qual_) {
    if (!to_reconstruct_.count(i)) {
      auto found = feldman_.find(i);
      if (found == feldman_.end())
        return FailedPrecondition("no valid Feldman commitments from dealer " + std::to_string(i) +
                                  " and no reconstruction (relay dropped a message)");
      const auto& a = found->second;
      res.public_key += a[0];
      for (auto& [j, x] : res.verification_keys) x += EvaluateCommitments(a, j);
      continue;
    }
    // Reconstruct f_i in public from t Pedersen-verified shares.
    std::vector<uint32_t> idx;
    std::vector<Scalar> vals;
    for (const auto& [j, m] : by_sender) {
      if (!IsParticipant(j) || j == i) continue;
      for (const auto& s : m->shares) {
        if (s.other == i && idx.size() < params_.threshold &&
            VerifyPedersenShare(pedersen_[i], j, s.s, s.s_blind)) {
          idx.push_back(j);
          vals.push_back(s.s);
        }
      }
    }
    if (idx.size() < params_.threshold)
      return FailedPrecondition("too few revealed shares to reconstruct dealer " +
                                std::to_string(i));
    for (auto& [j, x] : res.verification_keys) {
      Scalar v;
      for (size_t k = 0; k < idx.size(); ++k) {
        ASSIGN_OR_RETURN(Scalar l, LagrangeAt(idx, idx[k], j));
        v += l * vals[k];
      }
      x += Point::BaseMul(v);
    }
    Scalar z;
    for (size_t k = 0; k < idx.size(); ++k) {
      ASSIGN_OR_RETURN(Scalar l, LagrangeAtZero(idx, idx[k]));
      z += l * vals[k];
    }
    res.public_key += Point::BaseMul(z);
    res.reconstructed[i] = reconstruct_reason_[i];
  }
  for (uint32_t i : qual_) res.share += my_shares_.at(i).first;
  if (!(Point::BaseMul(res.share) == res.verification_keys.at(me_)))
    return IntegrityError("own share does not match the computed verification key");
  if (res.public_key.IsIdentity()) return IntegrityError("DKG produced the identity public key");
  return res;
}

}  // namespace custos::threshold
