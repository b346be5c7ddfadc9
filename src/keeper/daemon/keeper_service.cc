#include "keeper/daemon/keeper_service.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <set>

#include "common/file.h"
#include "common/log.h"
#include "crypto/hash.h"
#include "crypto/hpke.h"
#include "keeper/daemon/escrow.h"
#include "keeper/api/protocol.h"
#include "protocol/threshold/partial.h"

namespace custos::keeper {

using crypto::Point;
using custody::CustodyDescriptor;
using custody::Domain;
using nlohmann::json;
namespace hpke = crypto::hpke;

StatusOr<FaultInjection> FaultInjection::FromEnv() {
  FaultInjection f;
  const char* env = std::getenv("CUSTOS_FAULT_INJECTION");
  if (env == nullptr || *env == '\0') return f;
  std::string v(env);
  if (v == "dkg-bad-shares") f.dkg_bad_shares = true;
  else if (v == "bad-partial") f.bad_partial = true;
  else if (v == "reshare-bad-shares") f.reshare_bad_shares = true;
  else return InvalidArgument("unknown CUSTOS_FAULT_INJECTION value");
  return f;
}

KeeperService::KeeperService(KeeperStore& store, FaultInjection faults)
    : store_(store), faults_(faults), mu_(store.mu()) {
  LoadReplayCache();
}

namespace {

// kMaxSessions bounds the ceremony sessions a keeper keeps in memory at once.
constexpr size_t kMaxSessions = 8;

net::HttpResponse JsonResponse(int status, const json& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

net::HttpResponse ErrorResponse(const Status& st) {
  net::HttpResponse r;
  r.status = net::HttpStatusFor(st.code());
  r.body = net::ErrorBody(ErrorCodeName(st.code()), st.message());
  return r;
}

// KeeperEntry parses one participant/recipient entry of a ceremony proposal.
struct KeeperEntry {
  std::string id;
  uint32_t index = 0;
  std::string url;
  Point identity_key, hpke_key;
};

StatusOr<KeeperEntry> ParseEntry(const json& j) {
  KeeperEntry e;
  ASSIGN_OR_RETURN(e.id, GetString(j, "id"));
  ASSIGN_OR_RETURN(uint64_t idx, GetUint(j, "index"));
  if (idx < 1 || idx > 256) return InvalidArgument("keeper index out of range");
  e.index = static_cast<uint32_t>(idx);
  if (j.contains("url")) {
    ASSIGN_OR_RETURN(e.url, GetString(j, "url"));
  }
  ASSIGN_OR_RETURN(e.identity_key, GetPoint(j, "identity_key"));
  ASSIGN_OR_RETURN(e.hpke_key, GetPoint(j, "hpke_key"));
  return e;
}

bool SameRecord(const custody::KeeperRecord& a, const custody::KeeperRecord& b) {
  return a.id == b.id && a.index == b.index && a.url == b.url && a.identity_key == b.identity_key &&
         a.hpke_key == b.hpke_key && a.verification_key == b.verification_key;
}

bool SameDomain(const custody::DomainRecord& a, const custody::DomainRecord& b) {
  if (a.threshold != b.threshold || !(a.public_key == b.public_key) ||
      a.keepers.size() != b.keepers.size())
    return false;
  for (size_t k = 0; k < a.keepers.size(); ++k)
    if (!SameRecord(a.keepers[k], b.keepers[k])) return false;
  return true;
}

}  // namespace

net::HttpResponse KeeperService::Handle(const net::HttpRequest& req) {
  // A client address whose requests keep failing (guesses, floods, malformed bodies) is turned
  // away before any parse or lock for the rest of the window; good requests are never counted.
  std::string source = net::HostPart(req.remote);
  if (!failures_.Allowed(source)) {
    net::HttpResponse too_many = JsonResponse(429, json{{"error", "rate_limited"},
                                                        {"message", "too many failed requests from this address: wait and retry"}});
    return too_many;
  }
  net::HttpResponse out = Route(req);
  if (out.status >= 400) failures_.Record(source);
  return out;
}

net::HttpResponse KeeperService::Route(const net::HttpRequest& req) {
  using Handler = StatusOr<json> (KeeperService::*)(const json&);
  static const std::map<std::string, Handler> kPostRoutes = {
      {"/v1/dkg/round", &KeeperService::DkgRound},
      {"/v1/custody/endorse", &KeeperService::Endorse},
      {"/v1/custody/activate", &KeeperService::Activate},
      {"/v1/partial", &KeeperService::Partial},
      {"/v1/escrow/put", &KeeperService::EscrowPut},
      {"/v1/escrow/params", &KeeperService::EscrowParams},
      {"/v1/escrow/get", &KeeperService::EscrowGet},
      {"/v1/reshare/deal", &KeeperService::ReshareDeal},
      {"/v1/reshare/receive", &KeeperService::ReshareReceive},
      {"/v1/reshare/finalize", &KeeperService::ReshareFinalize},
  };
  if (req.method == "GET" && (req.target == "/v1/keeper" || req.target == "/v1/health")) {
    std::lock_guard<std::mutex> lock(mu_);
    auto r = Info();
    return r.ok() ? JsonResponse(200, *r) : ErrorResponse(r.status());
  }
  auto route = kPostRoutes.find(req.target);
  if (route == kPostRoutes.end())
    return ErrorResponse(NotFound("no such endpoint: " + req.method + " " + req.target));
  if (req.method != "POST") return ErrorResponse(InvalidArgument("this endpoint takes POST"));
  auto body = ParseJsonObject(req.body);
  if (!body.ok()) return ErrorResponse(body.status());
  StatusOr<json> r = [&] {
    std::lock_guard<std::mutex> lock(mu_);
    return (this->*(route->second))(*body);
  }();
  if (!r.ok()) {
    // Messages may quote request bytes (e.g. a keeper id) that are not UTF-8: LogLine replaces them.
    LogLine({{"level", "warn"}, {"component", "keeper"}, {"keeper", store_.id()}, {"endpoint", req.target},
             {"remote", req.remote}, {"error", r.status().ToString()}});
    return ErrorResponse(r.status());
  }
  return JsonResponse(200, *r);
}

StatusOr<CustodyDescriptor> KeeperService::ActiveCustody() const {
  if (!store_.secrets().active) return FailedPrecondition("keeper holds no active share yet");
  const std::string& text = store_.secrets().active->custody_json;
  if (!active_cache_ || active_json_cache_ != text) {
    ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::Parse(text));
    active_cache_ = std::move(d);
    active_json_cache_ = text;
  }
  return *active_cache_;
}

StatusOr<json> KeeperService::Info() {
  const KeeperSecrets& s = store_.secrets();
  json j = {{"suite", 1},
            {"id", store_.id()},
            {"domain", custody::DomainName(store_.domain())},
            {"identity_key", HexEncode(s.identity.verifying_key().Encode())},
            {"hpke_key", HexEncode(s.hpke.public_key().Encode())},
            {"audit_entries", store_.audit().size()}};
  if (s.active) {
    ASSIGN_OR_RETURN(auto c, CustodyDescriptor::Parse(s.active->custody_json));
    j["custody_fingerprint"] = c.FingerprintHex();
    j["index"] = s.active->index;
  } else {
    j["custody_fingerprint"] = nullptr;
  }
  return j;
}

// AcceptAdminAuthorization finds, among the one or several ClientAuthorizations in `auths` (one
// per keeper operator, say), one for `action` over `subject`, validly signed by a key this keeper
// allowlists as admin. It does not check freshness (the caller does, once its other checks pass).
StatusOr<ClientAuthorization> KeeperService::AcceptAdminAuthorization(const json& auths, std::string_view action,
                                                                      ByteSpan subject, std::string* client_name) const {
  if (!auths.is_array() && !auths.is_object()) return InvalidArgument("bad 'authorization'");
  Status refusal = PermissionDenied("no authorisation given");
  for (const json& aj : auths.is_array() ? auths : json::array({auths})) {
    ASSIGN_OR_RETURN(ClientAuthorization auth, ClientAuthorization::FromJson(aj));
    if (auth.action != action || !std::equal(auth.subject.begin(), auth.subject.end(), subject.begin(), subject.end())) {
      refusal = PermissionDenied("authorization does not cover this " + std::string(action == "dkg" ? "DKG" : action) +
                                 (action == "dkg" ? " (participants, threshold, session)" : " proposal"));
      continue;
    }
    if (!crypto::VerifyingKey::FromPoint(auth.client_key).Verify(auth.Message(), auth.sig).ok()) {
      refusal = PermissionDenied("authorization signature does not verify");
      continue;
    }
    Status st = CheckAllowedClient(auth.client_key, client_name, ClientRole::kAdmin);
    if (!st.ok()) {
      refusal = st;
      continue;
    }
    return auth;
  }
  return refusal;
}

// ---- DKG ----

StatusOr<json> KeeperService::DkgRound(const json& body) {
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  ASSIGN_OR_RETURN(uint64_t round, GetUint(body, "round"));
  if (round < 1 || round > 7) return InvalidArgument("DKG round must be 1..7");
  std::string sid = HexEncode(session);
  const KeeperSecrets& secrets = store_.secrets();
  if (round == 1) {
    if (secrets.active)
      return FailedPrecondition("keeper already holds an active share; a new DKG would replace it");
    if (!body.contains("params")) return InvalidArgument("round 1 needs 'params'");
    const json& p = body["params"];
    // Only a DKG this keeper's operator approved, with exactly these participants (their
    // identity and HPKE keys: the peers are pinned by the approval), starts a session here, so a
    // stranger can neither fill nor reset nor evict ceremony sessions.
    if (!body.contains("authorization"))
      return PermissionDenied("a DKG needs the approval of an admin of this keeper: ceremony dkg --client-key");
    std::string client_name;
    ASSIGN_OR_RETURN(ClientAuthorization auth,
                     AcceptAdminAuthorization(body["authorization"], "dkg",
                                              crypto::Sha256Bytes(Concat({session, AsBytes(p.dump())})), &client_name));
    ASSIGN_OR_RETURN(std::string domain, GetString(p, "domain"));
    if (domain != custody::DomainName(store_.domain()))
      return InvalidArgument("this keeper belongs to domain " +
                             std::string(custody::DomainName(store_.domain())));
    ASSIGN_OR_RETURN(uint64_t t, GetUint(p, "threshold"));
    if (!p.contains("participants") || !p["participants"].is_array())
      return InvalidArgument("missing participant list");
    DkgSession s;
    threshold::DkgParams params;
    params.session_id = session;
    params.threshold = static_cast<uint32_t>(std::min<uint64_t>(t, 1000));
    uint32_t me = 0;
    for (const json& pj : p["participants"]) {
      ASSIGN_OR_RETURN(KeeperEntry e, ParseEntry(pj));
      if (s.index_of.count(e.id)) return InvalidArgument("participant id repeats: " + e.id);
      s.index_of[e.id] = e.index;
      s.identity.emplace(e.id, crypto::VerifyingKey::FromPoint(e.identity_key));
      s.hpke[e.id] = e.hpke_key;
      params.participants.push_back({e.index, e.hpke_key});
      if (e.id == store_.id()) {
        if (!(e.identity_key == secrets.identity.verifying_key().point()) ||
            !(e.hpke_key == secrets.hpke.public_key()))
          return InvalidArgument("participant list carries other keys for this keeper");
        me = e.index;
      }
    }
    if (me == 0) return InvalidArgument("this keeper is not among the DKG participants");
    RETURN_IF_ERROR(CheckFreshNonce(auth.nonce, auth.timestamp));
    ASSIGN_OR_RETURN(auto hk, hpke::PrivateKey::FromBytes(secrets.hpke.ToBytes()));
    ASSIGN_OR_RETURN(auto participant,
                     threshold::DkgParticipant::Create(
                         params, me, std::move(hk),
                         faults_.dkg_bad_shares ? threshold::DkgBehavior::kDealBadShares
                                                : threshold::DkgBehavior::kHonest));
    s.participant = std::make_unique<threshold::DkgParticipant>(std::move(participant));
    ASSIGN_OR_RETURN(auto deal, s.participant->Deal());
    dkg_.erase(sid);
    // Round 1 is unauthenticated while a keeper holds nothing: bound the sessions it keeps.
    while (dkg_.size() >= kMaxSessions && !dkg_order_.empty()) {
      dkg_.erase(dkg_order_.front());  // the oldest session goes first
      dkg_order_.pop_front();
    }
    dkg_[sid] = std::move(s);
    std::erase(dkg_order_, sid);
    dkg_order_.push_back(sid);
    return json{{"message", SignedMessage::Sign(secrets.identity, session, "dkg/1", store_.id(),
                                                deal.Encode())
                                .ToJson()}};
  }
  auto it = dkg_.find(sid);
  if (it == dkg_.end()) return NotFound("no DKG session " + sid + " on this keeper");
  DkgSession& s = it->second;
  if (!body.contains("messages") || !body["messages"].is_array())
    return InvalidArgument("missing 'messages'");
  std::string want_kind = "dkg/" + std::to_string(round - 1);
  // Verify every relayed message and decode its payload for this round.
  std::vector<std::pair<uint32_t, Bytes>> payloads;
  for (const json& mj : body["messages"]) {
    ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson(mj));
    auto idx = s.index_of.find(m.keeper);
    if (idx == s.index_of.end()) return InvalidArgument("message from a non-participant: " + m.keeper);
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
      for (auto& [i, x] : r.verification_keys) res["verification_keys"][id_of[i]] = HexEncode(x.Encode());
      Bytes pop = custody::ProvePossession(r.share, store_.id(), store_.domain(),
                                           s.index_of.at(store_.id()));
      RETURN_IF_ERROR(store_.audit().Append(
          "dkg.result", {{"session", sid}, {"domain_key", res["public_key"]},
                         {"qual", res["qual"]}, {"disqualified", res["disqualified"]}}));
      s.result = std::move(r);
      return json{{"result", res}, {"possession_proof", HexEncode(pop)}};
    }
  }
  return json{{"message", SignedMessage::Sign(store_.secrets().identity, session,
                                              "dkg/" + std::to_string(round), store_.id(),
                                              std::move(out))
                              .ToJson()}};
}

// ---- custody endorsement and activation ----

StatusOr<json> KeeperService::Endorse(const json& body) {
  if (!body.contains("descriptor")) return InvalidArgument("missing 'descriptor'");
  ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::FromJson(body["descriptor"]));
  RETURN_IF_ERROR(d.CheckStructure());
  const custody::KeeperRecord* mine = d.FindKeeper(store_.id());
  KeeperSecrets& secrets = store_.secrets();
  std::string sid = HexEncode(d.ceremony_id);
  if (body.contains("session")) {
    ASSIGN_OR_RETURN(sid, GetString(body, "session"));
  }
  std::optional<ShareSlot> slot;
  auto dkg = dkg_.find(sid);
  auto rs = reshare_.find(sid);
  auto check_own_domain = [&](const std::map<std::string, Point>& keys, uint32_t threshold,
                              const Point& domain_key,
                              const std::map<std::string, uint32_t>& index_of) -> Status {
    const custody::DomainRecord& own = d.domain(store_.domain());
    if (own.threshold != threshold) return IntegrityError("descriptor has another threshold");
    if (!(own.public_key == domain_key)) return IntegrityError("descriptor has another domain key");
    if (own.keepers.size() != keys.size())
      return IntegrityError("descriptor lists another keeper set for this domain");
    for (const auto& k : own.keepers) {
      auto x = keys.find(k.id);
      if (x == keys.end() || !(x->second == k.verification_key) || index_of.at(k.id) != k.index)
        return IntegrityError("descriptor has another verification key or index for keeper " + k.id);
    }
    return Status::Ok();
  };
  if (dkg != dkg_.end() && dkg->second.result) {
    // Fresh DKG: our domain must be exactly QUAL with the keys we computed.
    DkgSession& s = dkg->second;
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    if (!d.previous.empty() || d.epoch != 1) return IntegrityError("a DKG descriptor has epoch 1");
    std::map<std::string, Point> keys;
    std::map<uint32_t, std::string> id_of;
    for (auto& [id, idx] : s.index_of) id_of[idx] = id;
    for (uint32_t i : s.result->qual) keys[id_of[i]] = s.result->verification_keys.at(i);
    RETURN_IF_ERROR(check_own_domain(keys, s.participant->params().threshold,
                                     s.result->public_key, s.index_of));
    for (const auto& k : d.domain(store_.domain()).keepers) {
      if (!(k.identity_key == s.identity.at(k.id).point()) || !(k.hpke_key == s.hpke.at(k.id)))
        return IntegrityError("descriptor has other identity keys for keeper " + k.id);
    }
    slot = ShareSlot{d.ToJsonString(), mine->index, s.result->share};
  } else if (rs != reshare_.end() && rs->second.result) {
    ReshareSession& s = rs->second;
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    if (d.previous != s.previous_fp) return IntegrityError("descriptor names another predecessor");
    ASSIGN_OR_RETURN(CustodyDescriptor previous, CustodyDescriptor::Parse(s.previous_json));
    Domain other = store_.domain() == Domain::kProvider ? Domain::kCustomer : Domain::kProvider;
    if (!SameDomain(d.domain(other), previous.domain(other)) ||
        !(d.public_key == previous.public_key) || d.epoch != previous.epoch + 1)
      return IntegrityError("descriptor changes more than the reshared domain");
    std::map<std::string, Point> keys;
    std::map<std::string, uint32_t> index_of;
    for (const json& e : s.recipients) {
      ASSIGN_OR_RETURN(KeeperEntry k, ParseEntry(e));
      keys[k.id] = s.result->verification_keys.at(k.index);
      index_of[k.id] = k.index;
    }
    RETURN_IF_ERROR(check_own_domain(keys, s.new_threshold, d.domain(store_.domain()).public_key,
                                     index_of));
    slot = ShareSlot{d.ToJsonString(), mine->index, s.result->share};
  } else if (dealt_.count(sid) && mine == nullptr) {
    // We dealt in this reshare and leave the domain: approve the transition we dealt for.
    const json& proposal = dealt_.at(sid);
    ASSIGN_OR_RETURN(CustodyDescriptor active, ActiveCustody());
    if (d.previous != active.Fingerprint())
      return FailedPrecondition("descriptor is not a successor of this keeper's custody");
    const custody::DomainRecord& own = d.domain(store_.domain());
    if (own.threshold != proposal.value("threshold", 0u) ||
        own.keepers.size() != proposal["recipients"].size())
      return IntegrityError("descriptor differs from the reshare proposal this keeper dealt for");
    for (size_t k = 0; k < own.keepers.size(); ++k) {
      ASSIGN_OR_RETURN(KeeperEntry e, ParseEntry(proposal["recipients"][k]));
      const auto& rec = own.keepers[k];
      if (rec.id != e.id || rec.index != e.index || !(rec.identity_key == e.identity_key) ||
          !(rec.hpke_key == e.hpke_key))
        return IntegrityError("descriptor lists other new keepers than the proposal");
    }
    if (!(own.public_key == active.domain(store_.domain()).public_key))
      return IntegrityError("descriptor changes the domain key");
    Domain other = store_.domain() == Domain::kProvider ? Domain::kCustomer : Domain::kProvider;
    if (!SameDomain(d.domain(other), active.domain(other)))
      return IntegrityError("descriptor changes more than the reshared domain");
  } else {
    // A descriptor that replaces our active one without touching our domain: the other domain
    // reshared. Accept it only with the approval of a threshold of that domain's old keepers.
    ASSIGN_OR_RETURN(CustodyDescriptor active, ActiveCustody());
    if (d.previous != active.Fingerprint())
      return FailedPrecondition("descriptor is not a successor of this keeper's custody");
    if (!SameDomain(d.domain(store_.domain()), active.domain(store_.domain())))
      return IntegrityError("descriptor changes this keeper's domain without a reshare session");
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    Domain other = store_.domain() == Domain::kProvider ? Domain::kCustomer : Domain::kProvider;
    ASSIGN_OR_RETURN(CustodyDescriptor with_sigs, CustodyDescriptor::FromJson(body["descriptor"]));
    if (with_sigs.CountApprovals(active.domain(other)) < active.domain(other).threshold)
      return PermissionDenied("a threshold of the reshared domain's current keepers has not "
                              "approved this descriptor");
    slot = ShareSlot{d.ToJsonString(), secrets.active->index, secrets.active->share};
  }
  if (secrets.active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ActiveCustody());
    if (!(active.public_key == d.public_key))
      return IntegrityError("descriptor changes the joint public key");
    if (d.previous != active.Fingerprint() || d.epoch != active.epoch + 1)
      return IntegrityError("descriptor is not the next epoch of this keeper's custody");
  }
  if (slot) {
    secrets.pending = std::move(slot);
    RETURN_IF_ERROR(store_.SaveSecrets());
  }
  RETURN_IF_ERROR(store_.audit().Append(
      "custody.endorse", {{"fingerprint", d.FingerprintHex()}, {"epoch", d.epoch}}));
  return json{{"keeper", store_.id()}, {"signature", HexEncode(secrets.identity.Sign(d.SignatureMessage()))}};
}

StatusOr<json> KeeperService::Activate(const json& body) {
  if (!body.contains("descriptor")) return InvalidArgument("missing 'descriptor'");
  ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::FromJson(body["descriptor"]));
  RETURN_IF_ERROR(d.Verify());
  KeeperSecrets& secrets = store_.secrets();
  if (secrets.active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ActiveCustody());
    if (active.Fingerprint() == d.Fingerprint()) return json{{"status", "active"}};
    if (d.previous == active.Fingerprint() && d.FindKeeper(store_.id()) == nullptr) {
      // Only a transition approved by a threshold of our domain's current keepers may make us
      // erase our share; anyone else's descriptor is refused.
      if (d.CountApprovals(active.domain(store_.domain())) < active.domain(store_.domain()).threshold)
        return PermissionDenied("a threshold of this domain's keepers has not approved the "
                                "descriptor that removes this keeper");
      // We were removed by a reshare: erase our share so it can never count again.
      secrets.active.reset();
      secrets.pending.reset();
      RETURN_IF_ERROR(store_.SaveSecrets());
      RETURN_IF_ERROR(store_.audit().Append(
          "custody.retire", {{"fingerprint", d.FingerprintHex()},
                             {"previous", active.FingerprintHex()}}));
      return json{{"status", "retired"}};
    }
  }
  if (!secrets.pending) return FailedPrecondition("keeper has not endorsed this descriptor");
  ASSIGN_OR_RETURN(CustodyDescriptor pending, CustodyDescriptor::Parse(secrets.pending->custody_json));
  if (pending.Fingerprint() != d.Fingerprint())
    return IntegrityError("descriptor differs from the one this keeper endorsed");
  secrets.active = ShareSlot{d.ToJsonString(), secrets.pending->index, secrets.pending->share};
  secrets.pending.reset();
  RETURN_IF_ERROR(store_.SaveSecrets());
  RETURN_IF_ERROR(store_.audit().Append(
      "custody.activate", {{"fingerprint", d.FingerprintHex()}, {"epoch", d.epoch}}));
  dkg_.clear();
  dkg_order_.clear();
  reshare_.erase(HexEncode(d.ceremony_id));
  std::erase(reshare_order_, HexEncode(d.ceremony_id));
  return json{{"status", "active"}};
}

// ---- partial decryption ----

Status KeeperService::CheckAllowedClient(const Point& key, std::string* name,
                                         ClientRole role) const {
  ASSIGN_OR_RETURN(auto clients, store_.LoadAllowlist());
  for (const auto& c : clients) {
    if (c.key == key) {
      if (role == ClientRole::kAdmin && c.role != ClientRole::kAdmin)
        return PermissionDenied("client key is allowlisted for decryption only, not as an admin");
      *name = c.name;
      return Status::Ok();
    }
  }
  return PermissionDenied("client key is not on this keeper's allowlist");
}

Status KeeperService::CheckFreshNonce(ByteSpan nonce, uint64_t timestamp) {
  uint64_t now = UnixNow();
  if (timestamp + kRequestWindowSeconds < now || timestamp > now + kRequestWindowSeconds)
    return PermissionDenied("request timestamp is outside the 5-minute window (stale or replayed)");
  // Forget nonces first seen more than two windows ago: a replay of them now carries a
  // timestamp outside the window and is refused by the check above.
  while (!nonce_expiry_.empty() && nonce_expiry_.front().first + 2 * kRequestWindowSeconds < now) {
    seen_nonces_.erase(nonce_expiry_.front().second);
    nonce_expiry_.pop_front();
  }
  std::string key = HexEncode(nonce);
  if (!seen_nonces_.emplace(key, now).second)
    return PermissionDenied("request nonce was already used (replayed request)");
  nonce_expiry_.emplace_back(now, std::move(key));
  return Status::Ok();
}

void KeeperService::LoadReplayCache() {
  auto entries = AuditLog::ReadEntries(store_.dir() + "/audit.log");
  if (!entries.ok()) return;
  uint64_t now = UnixNow();
  for (const json& e : *entries) {
    std::string event = e.value("event", "");
    if (event != "release" && event != "reshare.deal" && event != "escrow.fetch") continue;
    const json& d = e["details"];
    uint64_t ts = d.value("timestamp", uint64_t{0});
    if (ts + 2 * kRequestWindowSeconds >= now && seen_nonces_.emplace(d.value("nonce", ""), ts).second)
      nonce_expiry_.emplace_back(ts, d.value("nonce", ""));
  }
}

StatusOr<json> KeeperService::Partial(const json& body) {
  ASSIGN_OR_RETURN(Bytes encoded, GetBase64(body, "request"));
  ASSIGN_OR_RETURN(Bytes sig, GetHex(body, "sig"));
  ASSIGN_OR_RETURN(PartialRequest req, PartialRequest::Decode(encoded));
  if (req.keeper_id != store_.id())
    return InvalidArgument("request is addressed to keeper " + req.keeper_id);
  // Signature first, so the answer does not tell a stranger whether a key is allowlisted.
  if (!crypto::VerifyingKey::FromPoint(req.client_key)
           .Verify(PartialRequest::SignedBytes(encoded), sig)
           .ok())
    return PermissionDenied("request signature does not verify");
  std::string client_name;
  RETURN_IF_ERROR(CheckAllowedClient(req.client_key, &client_name));
  ASSIGN_OR_RETURN(bool appliance_point, store_.IsAppliancePoint(req.r));
  if (appliance_point)
    return PermissionDenied("R is an appliance envelope's point: its partials go only to attested enclaves");
  ASSIGN_OR_RETURN(CustodyDescriptor custody, ActiveCustody());
  if (req.custody_fp != custody.Fingerprint())
    return FailedPrecondition("request names custody " + HexEncode(req.custody_fp) +
                              " but this keeper serves " + custody.FingerprintHex());
  RETURN_IF_ERROR(CheckFreshNonce(req.nonce, req.timestamp));
  const ShareSlot& slot = *store_.secrets().active;
  const custody::KeeperRecord* me = custody.FindKeeper(store_.id());
  if (me == nullptr) return FailedPrecondition("active custody does not list this keeper");
  Bytes request_hash = crypto::Sha256Bytes(encoded);
  // The release is durable in the audit log before any answer leaves.
  RETURN_IF_ERROR(store_.audit().Append(
      "release", {{"client", client_name},
                  {"client_key", HexEncode(req.client_key.Encode())},
                  {"custody", custody.FingerprintHex()},
                  {"r", HexEncode(req.r.Encode())},
                  {"context_hash", HexEncode(crypto::Sha256Bytes(req.context))},
                  {"request_hash", HexEncode(request_hash)},
                  {"nonce", HexEncode(req.nonce)},
                  {"timestamp", req.timestamp}}));
  threshold::PartialDecryption partial =
      threshold::ComputePartial(slot.index, slot.share, me->verification_key, req.r, request_hash);
  if (faults_.bad_partial) partial.d = partial.d + Point::Generator();
  ASSIGN_OR_RETURN(Bytes sealed, hpke::SealBase(req.requester_key, PartialResponseInfo(encoded),
                                                AsBytes(store_.id()), partial.Encode()));
  return json{{"keeper", store_.id()}, {"sealed", Base64Encode(sealed)}};
}

// ---- escrow ----

namespace {
constexpr char kLegacyEscrow[] =
    "escrow blob version 1 carries no recovery verifier and is no longer stored or served: re-export it "
    "with this release (custos keeper escrow export)";
}  // namespace

StatusOr<json> KeeperService::EscrowPut(const json& body) {
  if (store_.domain() != Domain::kProvider)
    return FailedPrecondition("escrow blobs are held by provider keepers");
  ASSIGN_OR_RETURN(Bytes blob_bytes, GetBase64(body, "blob"));
  ASSIGN_OR_RETURN(Bytes sig, GetHex(body, "sig"));
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(blob_bytes));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  ASSIGN_OR_RETURN(CustodyDescriptor custody, ActiveCustody());
  if (blob.custody_fp != custody.Fingerprint())
    return FailedPrecondition("escrow blob belongs to another custody");
  const custody::KeeperRecord* owner = custody.FindKeeper(blob.keeper_id);
  if (owner == nullptr || owner->domain != Domain::kCustomer)
    return PermissionDenied("escrow blob is not from a customer keeper of this custody");
  if (!crypto::VerifyingKey::FromPoint(owner->identity_key)
           .Verify(EscrowUploadMessage(blob_bytes), sig)
           .ok())
    return PermissionDenied("escrow upload signature does not verify");
  std::string path = store_.EscrowPath(custody.FingerprintHex(), blob.keeper_id);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Unavailable("cannot create escrow directory");
  RETURN_IF_ERROR(WriteFileAtomic(path, blob_bytes, 0600));
  RETURN_IF_ERROR(store_.audit().Append(
      "escrow.store", {{"keeper", blob.keeper_id}, {"custody", custody.FingerprintHex()},
                       {"blob_hash", HexEncode(crypto::Sha256Bytes(blob_bytes))}}));
  return json{{"stored", blob.keeper_id}};
}

// LocateEscrow finds the stored blob for `custody_fp` and an optional keeper id (the single blob
// of that custody when none is named).
StatusOr<std::pair<std::string, Bytes>> KeeperService::LocateEscrow(const json& body) const {
  ASSIGN_OR_RETURN(Bytes fp, GetHex(body, "custody_fp"));
  std::string keeper_id;
  if (body.contains("keeper_id")) {
    ASSIGN_OR_RETURN(keeper_id, GetString(body, "keeper_id"));
  }
  std::string dir = store_.dir() + "/escrow/" + HexEncode(fp);
  if (keeper_id.empty()) {
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.path().extension() == ".blob") ids.push_back(e.path().stem().string());
    if (ids.empty()) return NotFound("no escrow blob for this custody");
    if (ids.size() > 1) return InvalidArgument("several escrow blobs for this custody; name the keeper");
    keeper_id = ids[0];
  }
  if (keeper_id.empty() || keeper_id.size() > 64 || keeper_id.find('/') != std::string::npos ||
      keeper_id.find("..") != std::string::npos)
    return InvalidArgument("bad keeper id");
  auto blob = ReadFileBytes(store_.EscrowPath(HexEncode(fp), keeper_id));
  if (!blob.ok()) return NotFound("no escrow blob for keeper " + keeper_id);
  return std::make_pair(keeper_id, std::move(*blob));
}

StatusOr<json> KeeperService::EscrowParams(const json& body) {
  ASSIGN_OR_RETURN(auto found, LocateEscrow(body));
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(found.second));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  // Salt and cost are not secret: they let the recovering side derive its auth key. Neither
  // the auth key nor the ciphertext leaves without a proof.
  return json{{"keeper_id", found.first}, {"provider", store_.id()}, {"salt", HexEncode(blob.salt)},
              {"t_cost", blob.params.t_cost}, {"m_cost_kib", blob.params.m_cost_kib},
              {"parallelism", blob.params.parallelism}};
}

StatusOr<json> KeeperService::EscrowGet(const json& body) {
  ASSIGN_OR_RETURN(auto found, LocateEscrow(body));
  const std::string& keeper_id = found.first;
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(found.second));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  std::string fp_hex = HexEncode(blob.custody_fp);
  // A blob is locked after kMaxEscrowFailures bad proofs in a window: online guessing of the
  // recovery secret gets a handful of tries an hour, each audited.
  uint64_t now = UnixNow();
  EscrowFailures& f = escrow_failures_[fp_hex + "/" + keeper_id];
  if (now >= f.window_start + kEscrowFailureWindowSeconds) f = EscrowFailures{now, 0};
  if (f.count >= kMaxEscrowFailures)
    return PermissionDenied("too many failed recovery attempts for keeper " + keeper_id + "'s escrow blob: locked for " +
                            std::to_string(f.window_start + kEscrowFailureWindowSeconds - now) + " s");
  auto refuse = [&](const Status& why) -> Status {
    ++f.count;
    (void)store_.audit().Append("escrow.refused", {{"keeper", keeper_id}, {"custody", fp_hex},
                                                   {"reason", why.message()}, {"failures", f.count}});
    return why;
  };
  auto ts = GetUint(body, "timestamp");
  auto nonce = GetHex(body, "nonce");
  auto sig = GetHex(body, "sig");
  if (!ts.ok() || !nonce.ok() || !sig.ok() || nonce->size() != 16)
    return refuse(PermissionDenied("escrow fetch needs a proof of the recovery secret (timestamp, nonce, sig): "
                                   "use custos keeper recover"));
  Bytes message = EscrowFetchMessage(blob.custody_fp, keeper_id, store_.id(), *ts, *nonce);
  if (!crypto::VerifyingKey::FromPoint(*blob.auth_key).Verify(message, *sig).ok())
    return refuse(PermissionDenied("escrow fetch proof does not verify: wrong recovery secret"));
  RETURN_IF_ERROR(CheckFreshNonce(*nonce, *ts));
  RETURN_IF_ERROR(store_.audit().Append("escrow.fetch", {{"keeper", keeper_id}, {"custody", fp_hex},
                                                         {"nonce", HexEncode(*nonce)}, {"timestamp", *ts}}));
  f = EscrowFailures{now, 0};
  return json{{"keeper_id", keeper_id}, {"blob", Base64Encode(found.second)}};
}

// ---- resharing ----

StatusOr<json> KeeperService::ReshareDeal(const json& body) {
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  if (!body.contains("proposal") || !body.contains("authorization"))
    return InvalidArgument("missing 'proposal' or 'authorization'");
  const json& proposal = body["proposal"];
  if (!proposal.is_object()) return InvalidArgument("'proposal' must be an object");
  Bytes subject = crypto::Sha256Bytes(Concat({session, AsBytes(proposal.dump())}));
  std::string client_name;
  ASSIGN_OR_RETURN(ClientAuthorization auth,
                   AcceptAdminAuthorization(body["authorization"], "reshare", subject, &client_name));
  ASSIGN_OR_RETURN(CustodyDescriptor custody, ActiveCustody());
  ASSIGN_OR_RETURN(Bytes fp, GetHex(proposal, "custody_fp"));
  if (fp != custody.Fingerprint()) return FailedPrecondition("proposal names another custody");
  ASSIGN_OR_RETURN(std::string domain, GetString(proposal, "domain"));
  if (domain != custody::DomainName(store_.domain()))
    return InvalidArgument("proposal reshares the other domain");
  ASSIGN_OR_RETURN(uint64_t t, GetUint(proposal, "threshold"));
  if (!proposal.contains("recipients") || !proposal["recipients"].is_array())
    return InvalidArgument("missing 'recipients'");
  std::vector<threshold::ReshareRecipient> recipients;
  for (const json& e : proposal["recipients"]) {
    ASSIGN_OR_RETURN(KeeperEntry k, ParseEntry(e));
    recipients.push_back({k.index, k.hpke_key});
  }
  RETURN_IF_ERROR(CheckFreshNonce(auth.nonce, auth.timestamp));
  const ShareSlot& slot = *store_.secrets().active;
  RETURN_IF_ERROR(store_.audit().Append(
      "reshare.deal", {{"client", client_name}, {"custody", custody.FingerprintHex()},
                       {"session", HexEncode(session)}, {"threshold", t},
                       {"recipients", recipients.size()}, {"nonce", HexEncode(auth.nonce)},
                       {"timestamp", auth.timestamp}}));
  ASSIGN_OR_RETURN(auto deal, threshold::DealReshare(session, slot.index, slot.share,
                                                     static_cast<uint32_t>(std::min<uint64_t>(t, 1000)),
                                                     recipients, faults_.reshare_bad_shares));
  dealt_[HexEncode(session)] = proposal;
  // What the new keepers and the coordinator need to keep every appliance of this custody: the
  // envelope points this keeper serves to enclaves only (signed, so the coordinator cannot add
  // or drop any), and the appliances it released to (the coordinator checks each survives).
  ASSIGN_OR_RETURN(std::vector<Point> points, store_.AppliancePoints());
  Bytes encoded_points;
  for (const Point& p : points) {
    Bytes e = p.Encode();
    encoded_points.insert(encoded_points.end(), e.begin(), e.end());
  }
  return json{{"message", SignedMessage::Sign(store_.secrets().identity, session, "reshare/deal",
                                              store_.id(), deal.Encode())
                              .ToJson()},
              {"appliance_points", SignedMessage::Sign(store_.secrets().identity, session,
                                                       "reshare/appliance-points", store_.id(), encoded_points)
                                       .ToJson()},
              {"appliances", KnownAppliances()}};
}

json KeeperService::KnownAppliances() const {
  std::set<std::string> urls;
  auto entries = AuditLog::ReadEntries(store_.dir() + "/audit.log");
  if (entries.ok())
    for (const json& e : *entries)
      if (e.value("event", "") == "enclave.release" && e.contains("details") && e["details"].is_object())
        urls.insert(e["details"].value("appliance", ""));
  urls.erase("");
  return json(urls);
}

StatusOr<json> KeeperService::ReshareReceive(const json& body) {
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  if (!body.contains("previous") || !body.contains("proposal") || !body.contains("deals") ||
      !body["deals"].is_array())
    return InvalidArgument("missing 'previous', 'proposal' or 'deals'");
  ASSIGN_OR_RETURN(CustodyDescriptor previous, CustodyDescriptor::FromJson(body["previous"]));
  RETURN_IF_ERROR(previous.Verify());
  if (store_.secrets().active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ActiveCustody());
    if (active.Fingerprint() != previous.Fingerprint())
      return FailedPrecondition("reshare starts from a custody this keeper does not serve");
  }
  const json& proposal = body["proposal"];
  if (!proposal.is_object() || !proposal.contains("recipients") || !proposal["recipients"].is_array())
    return InvalidArgument("proposal is missing 'recipients'");
  ASSIGN_OR_RETURN(std::string domain_name, GetString(proposal, "domain"));
  ASSIGN_OR_RETURN(Domain domain, custody::ParseDomain(domain_name));
  if (domain != store_.domain()) return InvalidArgument("this keeper belongs to the other domain");
  ASSIGN_OR_RETURN(uint64_t t, GetUint(proposal, "threshold"));
  const custody::DomainRecord& old = previous.domain(domain);
  std::map<uint32_t, Point> old_keys;
  std::map<std::string, const custody::KeeperRecord*> old_by_id;
  for (const auto& k : old.keepers) {
    old_keys[k.index] = k.verification_key;
    old_by_id[k.id] = &k;
  }
  uint32_t me = 0;
  std::vector<uint32_t> new_indices;
  for (const json& e : proposal["recipients"]) {
    ASSIGN_OR_RETURN(KeeperEntry k, ParseEntry(e));
    new_indices.push_back(k.index);
    if (k.id == store_.id()) {
      if (!(k.identity_key == store_.secrets().identity.verifying_key().point()) ||
          !(k.hpke_key == store_.secrets().hpke.public_key()))
        return InvalidArgument("proposal carries other keys for this keeper");
      me = k.index;
    }
  }
  if (me == 0) return InvalidArgument("this keeper is not among the new keepers");
  std::vector<threshold::ReshareDeal> deals;
  for (const json& mj : body["deals"]) {
    ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson(mj));
    auto old_k = old_by_id.find(m.keeper);
    if (old_k == old_by_id.end()) return InvalidArgument("deal from a keeper not in the old set");
    if (m.kind != "reshare/deal") return InvalidArgument("message is not a reshare deal");
    RETURN_IF_ERROR(m.Verify(crypto::VerifyingKey::FromPoint(old_k->second->identity_key), session));
    ASSIGN_OR_RETURN(auto d, threshold::ReshareDeal::Decode(m.payload));
    if (d.dealer != old_k->second->index) return InvalidArgument("deal names another dealer inside");
    deals.push_back(std::move(d));
  }
  // Envelope points the old keepers serve to enclaves only: this keeper refuses clients for
  // them from now on too, so no allowlisted client can ask the new domain for an appliance's
  // root key (docs/threat-model.md "Appliance"). Optional: keepers before this release send none.
  if (body.contains("appliance_points")) {
    if (!body["appliance_points"].is_array()) return InvalidArgument("'appliance_points' must be an array");
    for (const json& mj : body["appliance_points"]) {
      ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson(mj));
      auto old_k = old_by_id.find(m.keeper);
      if (old_k == old_by_id.end()) return InvalidArgument("appliance points from a keeper not in the old set");
      if (m.kind != "reshare/appliance-points") return InvalidArgument("message is not a list of appliance points");
      RETURN_IF_ERROR(m.Verify(crypto::VerifyingKey::FromPoint(old_k->second->identity_key), session));
      if (m.payload.size() % 33 != 0) return InvalidArgument("appliance points: length is not a multiple of 33");
      for (size_t off = 0; off < m.payload.size(); off += 33) {
        ASSIGN_OR_RETURN(Point r, Point::Decode(ByteSpan(m.payload).subspan(off, 33)));
        RETURN_IF_ERROR(store_.AddAppliancePoint(r));
      }
    }
  }
  ASSIGN_OR_RETURN(auto hk, hpke::PrivateKey::FromBytes(store_.secrets().hpke.ToBytes()));
  ReshareSession s;
  s.previous_fp = previous.Fingerprint();
  s.previous_json = previous.ToJsonString();
  s.new_threshold = static_cast<uint32_t>(std::min<uint64_t>(t, 1000));
  s.recipients = proposal["recipients"];
  s.receiver = std::make_unique<threshold::ReshareReceiver>(
      session, me, std::move(hk), old.threshold, s.new_threshold, new_indices, old_keys,
      old.public_key);
  ASSIGN_OR_RETURN(std::vector<uint32_t> bad, s.receiver->ProcessDeals(deals));
  while (reshare_.size() >= kMaxSessions && !reshare_order_.empty()) {
    reshare_.erase(reshare_order_.front());
    reshare_order_.pop_front();
  }
  reshare_[HexEncode(session)] = std::move(s);
  std::erase(reshare_order_, HexEncode(session));
  reshare_order_.push_back(HexEncode(session));
  json bad_ids = json::array();
  for (uint32_t i : bad)
    for (const auto& k : old.keepers)
      if (k.index == i) bad_ids.push_back(k.id);
  return json{{"keeper", store_.id()}, {"bad", bad_ids}};
}

StatusOr<json> KeeperService::ReshareFinalize(const json& body) {
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  auto it = reshare_.find(HexEncode(session));
  if (it == reshare_.end()) return NotFound("no reshare session on this keeper");
  if (!body.contains("quorum") || !body["quorum"].is_array()) return InvalidArgument("missing 'quorum'");
  std::vector<uint32_t> q;
  for (const json& i : body["quorum"]) {
    if (!i.is_number_unsigned()) return InvalidArgument("quorum entries must be indices");
    q.push_back(i.get<uint32_t>());
  }
  ASSIGN_OR_RETURN(auto result, it->second.receiver->Finalize(q));
  json keys = json::object();
  for (auto& [j, x] : result.verification_keys) keys[std::to_string(j)] = HexEncode(x.Encode());
  uint32_t me = 0;
  for (const json& e : it->second.recipients)
    if (e.value("id", "") == store_.id()) me = e.value("index", 0u);
  Bytes pop = custody::ProvePossession(result.share, store_.id(), store_.domain(), me);
  RETURN_IF_ERROR(store_.audit().Append(
      "reshare.receive", {{"session", HexEncode(session)}, {"quorum", body["quorum"]},
                          {"previous", HexEncode(it->second.previous_fp)}}));
  it->second.result = std::move(result);
  return json{{"keeper", store_.id()}, {"verification_keys", keys},
              {"possession_proof", HexEncode(pop)}};
}

}  // namespace custos::keeper
