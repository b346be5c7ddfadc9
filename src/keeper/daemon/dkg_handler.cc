#include "keeper/daemon/dkg_handler.h"

#include <algorithm>

#include "crypto/hash.h"
#include "crypto/hpke.h"

namespace custos::keeper {

using custody::CustodyDescriptor;
using nlohmann::json;

StatusOr<json> DkgHandler::Round(const json& body) {
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  ASSIGN_OR_RETURN(uint64_t round, GetUint(body, "round"));
  if (round < 1 || round > 7) return InvalidArgument("DKG round must be 1..7");
  std::lock_guard<std::mutex> lock(mu_);
  if (round == 1) return Start(body, session);
  KeeperStore& store = ctx_.store();
  std::string sid = HexEncode(session);
  auto it = sessions_.find(sid);
  if (it == sessions_.end()) return NotFound("no DKG session " + sid + " on this keeper");
  Session& s = it->second;
  if (!body.contains("messages") || !body["messages"].is_array())
    return InvalidArgument("missing 'messages'");
  std::string want_kind = "dkg/" + std::to_string(round - 1);
  // Verify every relayed message and decode its payload for this round.
  std::vector<std::pair<uint32_t, Bytes>> payloads;
  for (const json& mj : body["messages"]) {
    ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson(mj));
    auto idx = s.index_of.find(m.keeper);
    if (idx == s.index_of.end())
      return InvalidArgument("message from a non-participant: " + m.keeper);
    if (m.kind != want_kind)
      return InvalidArgument("message of kind " + m.kind + " where " + want_kind + " was expected");
    RETURN_IF_ERROR(m.Verify(s.identity.at(m.keeper), session));
    payloads.emplace_back(idx->second, std::move(m.payload));
  }
  // DecodeAll decodes every relayed payload as message type M and checks that the sender named
  // inside is the keeper that signed it.
  auto decode_all = [&payloads]<typename M>(uint32_t M::*sender) -> StatusOr<std::vector<M>> {
    std::vector<M> v;
    for (auto& [i, b] : payloads) {
      ASSIGN_OR_RETURN(M m, M::Decode(b));
      if (m.*sender != i) return InvalidArgument("signed message names another participant inside");
      v.push_back(std::move(m));
    }
    return v;
  };
  Bytes out;
  threshold::DkgParticipant& p = *s.participant;
  switch (round) {
    case 2: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::DealMessage::dealer));
      ASSIGN_OR_RETURN(auto r, p.ProcessDeals(v));
      out = r.Encode();
      break;
    }
    case 3: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::ComplaintMessage::complainer));
      ASSIGN_OR_RETURN(auto r, p.ProcessComplaints(v));
      out = r.Encode();
      break;
    }
    case 4: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::ResponseMessage::dealer));
      ASSIGN_OR_RETURN(auto r, p.ProcessResponses(v));
      out = r.Encode();
      break;
    }
    case 5: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::FeldmanMessage::dealer));
      ASSIGN_OR_RETURN(auto r, p.ProcessFeldman(v));
      out = r.Encode();
      break;
    }
    case 6: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::ExtractionComplaintMessage::complainer));
      ASSIGN_OR_RETURN(auto r, p.ProcessExtractionComplaints(v));
      out = r.Encode();
      break;
    }
    case 7: {
      ASSIGN_OR_RETURN(auto v, decode_all(&threshold::RevealMessage::revealer));
      ASSIGN_OR_RETURN(auto r, p.Finalize(v));
      json res;
      std::map<uint32_t, std::string> id_of;
      for (auto& [id, idx] : s.index_of) id_of[idx] = id;
      res["public_key"] = HexEncode(r.public_key.Encode());
      res["qual"] = json::array();
      for (uint32_t i : r.qual) res["qual"].push_back(id_of[i]);
      res["disqualified"] = json::object();
      for (auto& [i, why] : r.disqualified) res["disqualified"][id_of[i]] = why;
      res["reconstructed"] = json::object();
      for (auto& [i, why] : r.reconstructed) res["reconstructed"][id_of[i]] = why;
      res["verification_keys"] = json::object();
      for (auto& [i, x] : r.verification_keys)
        res["verification_keys"][id_of[i]] = HexEncode(x.Encode());
      Bytes pop =
          custody::ProvePossession(r.share, store.id(), store.domain(), s.index_of.at(store.id()));
      RETURN_IF_ERROR(store.audit().Append("dkg.result", {{"session", sid},
                                                          {"domain_key", res["public_key"]},
                                                          {"qual", res["qual"]},
                                                          {"disqualified", res["disqualified"]}}));
      s.result = std::move(r);
      return json{{"result", res}, {"possession_proof", HexEncode(pop)}};
    }
  }
  return json{
      {"message", SignedMessage::Sign(store.secrets().identity, session,
                                      "dkg/" + std::to_string(round), store.id(), std::move(out))
                      .ToJson()}};
}

// Start is round 1: check the admin approval and the participant list, deal, keep the session.
// Requires mu_ and the sealed-state mutex held.
StatusOr<json> DkgHandler::Start(const json& body, const Bytes& session) {
  KeeperStore& store = ctx_.store();
  const KeeperSecrets& secrets = store.secrets();
  std::string sid = HexEncode(session);
  if (secrets.active)
    return FailedPrecondition("keeper already holds an active share; a new DKG would replace it");
  if (!body.contains("params")) return InvalidArgument("round 1 needs 'params'");
  const json& p = body["params"];
  // Only a DKG this keeper's operator approved, with exactly these participants (their
  // identity and HPKE keys: the peers are pinned by the approval), starts a session here, so a
  // stranger can neither fill nor reset nor evict ceremony sessions.
  if (!body.contains("authorization"))
    return PermissionDenied(
        "a DKG needs the approval of an admin of this keeper: ceremony dkg --client-key");
  std::string client_name;
  ASSIGN_OR_RETURN(ClientAuthorization auth,
                   ctx_.AcceptAdminAuthorization(
                       body["authorization"], "dkg",
                       crypto::Sha256Bytes(Concat({session, AsBytes(p.dump())})), &client_name));
  ASSIGN_OR_RETURN(std::string domain, GetString(p, "domain"));
  if (domain != custody::DomainName(store.domain()))
    return InvalidArgument("this keeper belongs to domain " +
                           std::string(custody::DomainName(store.domain())));
  ASSIGN_OR_RETURN(uint64_t t, GetUint(p, "threshold"));
  if (!p.contains("participants") || !p["participants"].is_array())
    return InvalidArgument("missing participant list");
  Session s;
  threshold::DkgParams params;
  params.session_id = session;
  params.threshold = static_cast<uint32_t>(std::min<uint64_t>(t, 1000));
  uint32_t me = 0;
  for (const json& pj : p["participants"]) {
    ASSIGN_OR_RETURN(KeeperEntry e, ParseKeeperEntry(pj));
    if (s.index_of.count(e.id)) return InvalidArgument("participant id repeats: " + e.id);
    s.index_of[e.id] = e.index;
    s.identity.emplace(e.id, crypto::VerifyingKey::FromPoint(e.identity_key));
    s.hpke[e.id] = e.hpke_key;
    params.participants.push_back({e.index, e.hpke_key});
    if (e.id == store.id()) {
      if (!(e.identity_key == secrets.identity.verifying_key().point()) ||
          !(e.hpke_key == secrets.hpke.public_key()))
        return InvalidArgument("participant list carries other keys for this keeper");
      me = e.index;
    }
  }
  if (me == 0) return InvalidArgument("this keeper is not among the DKG participants");
  RETURN_IF_ERROR(ctx_.replay().CheckFresh(auth.nonce, auth.timestamp));
  ASSIGN_OR_RETURN(auto hk, crypto::hpke::PrivateKey::FromBytes(secrets.hpke.ToBytes()));
  const Misbehaviour* cheat = ctx_.misbehaviour();
  ASSIGN_OR_RETURN(auto participant,
                   threshold::DkgParticipant::Create(
                       params, me, std::move(hk),
                       cheat != nullptr ? cheat->DkgDealing() : threshold::DkgBehavior::kHonest));
  s.participant = std::make_unique<threshold::DkgParticipant>(std::move(participant));
  ASSIGN_OR_RETURN(auto deal, s.participant->Deal());
  sessions_.erase(sid);
  // Round 1 is unauthenticated while a keeper holds nothing: bound the sessions it keeps.
  while (sessions_.size() >= kMaxSessions && !order_.empty()) {
    sessions_.erase(order_.front());  // the oldest session goes first
    order_.pop_front();
  }
  sessions_[sid] = std::move(s);
  std::erase(order_, sid);
  order_.push_back(sid);
  return json{
      {"message", SignedMessage::Sign(secrets.identity, session, "dkg/1", store.id(), deal.Encode())
                      .ToJson()}};
}

std::optional<StatusOr<ShareSlot>> DkgHandler::EndorseFinished(const std::string& sid,
                                                               const CustodyDescriptor& d,
                                                               const custody::KeeperRecord* mine) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(sid);
  if (it == sessions_.end() || !it->second.result) return std::nullopt;
  // Fresh DKG: our domain must be exactly QUAL with the keys we computed.
  const Session& s = it->second;
  const custody::Domain domain = ctx_.store().domain();
  auto check = [&]() -> StatusOr<ShareSlot> {
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    if (!d.previous.empty() || d.epoch != 1) return IntegrityError("a DKG descriptor has epoch 1");
    std::map<std::string, crypto::Point> keys;
    std::map<uint32_t, std::string> id_of;
    for (auto& [id, idx] : s.index_of) id_of[idx] = id;
    for (uint32_t i : s.result->qual) keys[id_of[i]] = s.result->verification_keys.at(i);
    RETURN_IF_ERROR(CheckOwnDomain(d, domain, keys, s.participant->params().threshold,
                                   s.result->public_key, s.index_of));
    for (const auto& k : d.domain(domain).keepers) {
      if (!(k.identity_key == s.identity.at(k.id).point()) || !(k.hpke_key == s.hpke.at(k.id)))
        return IntegrityError("descriptor has other identity keys for keeper " + k.id);
    }
    return ShareSlot{d.ToJsonString(), mine->index, s.result->share};
  };
  return check();
}

void DkgHandler::ForgetAll() {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.clear();
  order_.clear();
}

}  // namespace custos::keeper
