#include "keeper/daemon/reshare_handler.h"

#include <algorithm>
#include <set>

#include "crypto/hash.h"
#include "crypto/hpke.h"

namespace custos::keeper {

using crypto::Point;
using custody::CustodyDescriptor;
using custody::Domain;
using nlohmann::json;

StatusOr<json> ReshareHandler::Deal(const json& body) {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  if (!body.contains("proposal") || !body.contains("authorization"))
    return InvalidArgument("missing 'proposal' or 'authorization'");
  const json& proposal = body["proposal"];
  if (!proposal.is_object()) return InvalidArgument("'proposal' must be an object");
  Bytes subject = crypto::Sha256Bytes(Concat({session, AsBytes(proposal.dump())}));
  std::string client_name;
  ASSIGN_OR_RETURN(
      ClientAuthorization auth,
      ctx_.AcceptAdminAuthorization(body["authorization"], "reshare", subject, &client_name));
  ASSIGN_OR_RETURN(CustodyDescriptor custody, ctx_.ActiveCustody());
  ASSIGN_OR_RETURN(Bytes fp, GetHex(proposal, "custody_fp"));
  if (fp != custody.Fingerprint()) return FailedPrecondition("proposal names another custody");
  ASSIGN_OR_RETURN(std::string domain, GetString(proposal, "domain"));
  if (domain != custody::DomainName(store.domain()))
    return InvalidArgument("proposal reshares the other domain");
  ASSIGN_OR_RETURN(uint64_t t, GetUint(proposal, "threshold"));
  if (!proposal.contains("recipients") || !proposal["recipients"].is_array())
    return InvalidArgument("missing 'recipients'");
  std::vector<threshold::ReshareRecipient> recipients;
  for (const json& e : proposal["recipients"]) {
    ASSIGN_OR_RETURN(KeeperEntry k, ParseKeeperEntry(e));
    recipients.push_back({k.index, k.hpke_key});
  }
  RETURN_IF_ERROR(ctx_.replay().CheckFresh(auth.nonce, auth.timestamp));
  const ShareSlot& slot = *store.secrets().active;
  RETURN_IF_ERROR(store.audit().Append("reshare.deal", {{"client", client_name},
                                                        {"custody", custody.FingerprintHex()},
                                                        {"session", HexEncode(session)},
                                                        {"threshold", t},
                                                        {"recipients", recipients.size()},
                                                        {"nonce", HexEncode(auth.nonce)},
                                                        {"timestamp", auth.timestamp}}));
  const Misbehaviour* cheat = ctx_.misbehaviour();
  ASSIGN_OR_RETURN(auto deal, threshold::DealReshare(
                                  session, slot.index, slot.share,
                                  static_cast<uint32_t>(std::min<uint64_t>(t, 1000)), recipients,
                                  cheat != nullptr && cheat->DealBadReshareShares()));
  {
    std::lock_guard<std::mutex> lock(mu_);
    dealt_[HexEncode(session)] = proposal;
  }
  // What the new keepers and the coordinator need to keep every appliance of this custody: the
  // envelope points this keeper serves to enclaves only (signed, so the coordinator cannot add
  // or drop any), and the appliances it released to (the coordinator checks each survives).
  ASSIGN_OR_RETURN(std::vector<Point> points, store.AppliancePoints());
  Bytes encoded_points;
  for (const Point& p : points) {
    Bytes e = p.Encode();
    encoded_points.insert(encoded_points.end(), e.begin(), e.end());
  }
  return json{{"message", SignedMessage::Sign(store.secrets().identity, session, "reshare/deal",
                                              store.id(), deal.Encode())
                              .ToJson()},
              {"appliance_points",
               SignedMessage::Sign(store.secrets().identity, session, "reshare/appliance-points",
                                   store.id(), encoded_points)
                   .ToJson()},
              {"appliances", KnownAppliances()}};
}

json ReshareHandler::KnownAppliances() const {
  std::set<std::string> urls;
  auto entries = AuditLog::ReadEntries(ctx_.store().dir() + "/audit.log");
  if (entries.ok())
    for (const json& e : *entries)
      if (e.value("event", "") == "enclave.release" && e.contains("details") &&
          e["details"].is_object())
        urls.insert(e["details"].value("appliance", ""));
  urls.erase("");
  return json(urls);
}

StatusOr<json> ReshareHandler::Receive(const json& body) {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  if (!body.contains("previous") || !body.contains("proposal") || !body.contains("deals") ||
      !body["deals"].is_array())
    return InvalidArgument("missing 'previous', 'proposal' or 'deals'");
  ASSIGN_OR_RETURN(CustodyDescriptor previous, CustodyDescriptor::FromJson(body["previous"]));
  RETURN_IF_ERROR(previous.Verify());
  if (store.secrets().active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ctx_.ActiveCustody());
    if (active.Fingerprint() != previous.Fingerprint())
      return FailedPrecondition("reshare starts from a custody this keeper does not serve");
  }
  const json& proposal = body["proposal"];
  if (!proposal.is_object() || !proposal.contains("recipients") ||
      !proposal["recipients"].is_array())
    return InvalidArgument("proposal is missing 'recipients'");
  ASSIGN_OR_RETURN(std::string domain_name, GetString(proposal, "domain"));
  ASSIGN_OR_RETURN(Domain domain, custody::ParseDomain(domain_name));
  if (domain != store.domain()) return InvalidArgument("this keeper belongs to the other domain");
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
    ASSIGN_OR_RETURN(KeeperEntry k, ParseKeeperEntry(e));
    new_indices.push_back(k.index);
    if (k.id == store.id()) {
      if (!(k.identity_key == store.secrets().identity.verifying_key().point()) ||
          !(k.hpke_key == store.secrets().hpke.public_key()))
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
    RETURN_IF_ERROR(
        m.Verify(crypto::VerifyingKey::FromPoint(old_k->second->identity_key), session));
    ASSIGN_OR_RETURN(auto d, threshold::ReshareDeal::Decode(m.payload));
    if (d.dealer != old_k->second->index)
      return InvalidArgument("deal names another dealer inside");
    deals.push_back(std::move(d));
  }
  // Envelope points the old keepers serve to enclaves only: this keeper refuses clients for
  // them from now on too, so no allowlisted client can ask the new domain for an appliance's
  // root key (docs/threat-model.md "Appliance"). Optional: keepers before this release send none.
  if (body.contains("appliance_points")) {
    if (!body["appliance_points"].is_array())
      return InvalidArgument("'appliance_points' must be an array");
    for (const json& mj : body["appliance_points"]) {
      ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson(mj));
      auto old_k = old_by_id.find(m.keeper);
      if (old_k == old_by_id.end())
        return InvalidArgument("appliance points from a keeper not in the old set");
      if (m.kind != "reshare/appliance-points")
        return InvalidArgument("message is not a list of appliance points");
      RETURN_IF_ERROR(
          m.Verify(crypto::VerifyingKey::FromPoint(old_k->second->identity_key), session));
      if (m.payload.size() % 33 != 0)
        return InvalidArgument("appliance points: length is not a multiple of 33");
      for (size_t off = 0; off < m.payload.size(); off += 33) {
        ASSIGN_OR_RETURN(Point r, Point::Decode(ByteSpan(m.payload).subspan(off, 33)));
        RETURN_IF_ERROR(store.AddAppliancePoint(r));
      }
    }
  }
  ASSIGN_OR_RETURN(auto hk, crypto::hpke::PrivateKey::FromBytes(store.secrets().hpke.ToBytes()));
  Session s;
  s.previous_fp = previous.Fingerprint();
  s.previous_json = previous.ToJsonString();
  s.new_threshold = static_cast<uint32_t>(std::min<uint64_t>(t, 1000));
  s.recipients = proposal["recipients"];
  s.receiver = std::make_unique<threshold::ReshareReceiver>(session, me, std::move(hk),
                                                            old.threshold, s.new_threshold,
                                                            new_indices, old_keys, old.public_key);
  ASSIGN_OR_RETURN(std::vector<uint32_t> bad, s.receiver->ProcessDeals(deals));
  {
    std::lock_guard<std::mutex> lock(mu_);
    while (sessions_.size() >= kMaxSessions && !order_.empty()) {
      sessions_.erase(order_.front());
      order_.pop_front();
    }
    sessions_[HexEncode(session)] = std::move(s);
    std::erase(order_, HexEncode(session));
    order_.push_back(HexEncode(session));
  }
  json bad_ids = json::array();
  for (uint32_t i : bad)
    for (const auto& k : old.keepers)
      if (k.index == i) bad_ids.push_back(k.id);
  return json{{"keeper", store.id()}, {"bad", bad_ids}};
}

StatusOr<json> ReshareHandler::Finalize(const json& body) {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(Bytes session, GetHex(body, "session"));
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(HexEncode(session));
  if (it == sessions_.end()) return NotFound("no reshare session on this keeper");
  if (!body.contains("quorum") || !body["quorum"].is_array())
    return InvalidArgument("missing 'quorum'");
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
    if (e.value("id", "") == store.id()) me = e.value("index", 0u);
  Bytes pop = custody::ProvePossession(result.share, store.id(), store.domain(), me);
  RETURN_IF_ERROR(
      store.audit().Append("reshare.receive", {{"session", HexEncode(session)},
                                               {"quorum", body["quorum"]},
                                               {"previous", HexEncode(it->second.previous_fp)}}));
  it->second.result = std::move(result);
  return json{
      {"keeper", store.id()}, {"verification_keys", keys}, {"possession_proof", HexEncode(pop)}};
}

std::optional<StatusOr<ShareSlot>> ReshareHandler::EndorseFinished(
    const std::string& sid, const CustodyDescriptor& d, const custody::KeeperRecord* mine) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = sessions_.find(sid);
  if (it == sessions_.end() || !it->second.result) return std::nullopt;
  const Session& s = it->second;
  const Domain own = ctx_.store().domain();
  auto check = [&]() -> StatusOr<ShareSlot> {
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    if (d.previous != s.previous_fp) return IntegrityError("descriptor names another predecessor");
    ASSIGN_OR_RETURN(CustodyDescriptor previous, CustodyDescriptor::Parse(s.previous_json));
    Domain other = OtherDomain(own);
    if (!SameDomain(d.domain(other), previous.domain(other)) ||
        !(d.public_key == previous.public_key) || d.epoch != previous.epoch + 1)
      return IntegrityError("descriptor changes more than the reshared domain");
    std::map<std::string, Point> keys;
    std::map<std::string, uint32_t> index_of;
    for (const json& e : s.recipients) {
      ASSIGN_OR_RETURN(KeeperEntry k, ParseKeeperEntry(e));
      keys[k.id] = s.result->verification_keys.at(k.index);
      index_of[k.id] = k.index;
    }
    RETURN_IF_ERROR(
        CheckOwnDomain(d, own, keys, s.new_threshold, d.domain(own).public_key, index_of));
    return ShareSlot{d.ToJsonString(), mine->index, s.result->share};
  };
  return check();
}

std::optional<Status> ReshareHandler::CheckDealtTransition(const std::string& sid,
                                                           const CustodyDescriptor& d) {
  std::lock_guard<std::mutex> lock(mu_);
  auto dealt = dealt_.find(sid);
  if (dealt == dealt_.end()) return std::nullopt;
  // We dealt in this reshare and leave the domain: approve the transition we dealt for.
  const json& proposal = dealt->second;
  const Domain own_domain = ctx_.store().domain();
  auto check = [&]() -> Status {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ctx_.ActiveCustody());
    if (d.previous != active.Fingerprint())
      return FailedPrecondition("descriptor is not a successor of this keeper's custody");
    const custody::DomainRecord& own = d.domain(own_domain);
    if (own.threshold != proposal.value("threshold", 0u) ||
        own.keepers.size() != proposal["recipients"].size())
      return IntegrityError("descriptor differs from the reshare proposal this keeper dealt for");
    for (size_t k = 0; k < own.keepers.size(); ++k) {
      ASSIGN_OR_RETURN(KeeperEntry e, ParseKeeperEntry(proposal["recipients"][k]));
      const auto& rec = own.keepers[k];
      if (rec.id != e.id || rec.index != e.index || !(rec.identity_key == e.identity_key) ||
          !(rec.hpke_key == e.hpke_key))
        return IntegrityError("descriptor lists other new keepers than the proposal");
    }
    if (!(own.public_key == active.domain(own_domain).public_key))
      return IntegrityError("descriptor changes the domain key");
    Domain other = OtherDomain(own_domain);
    if (!SameDomain(d.domain(other), active.domain(other)))
      return IntegrityError("descriptor changes more than the reshared domain");
    return Status::Ok();
  };
  return check();
}

void ReshareHandler::Forget(const std::string& sid) {
  std::lock_guard<std::mutex> lock(mu_);
  sessions_.erase(sid);
  std::erase(order_, sid);
}

}  // namespace custos::keeper
