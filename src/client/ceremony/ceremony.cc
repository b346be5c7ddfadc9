#include "client/ceremony/ceremony.h"

#include <algorithm>
#include <map>
#include <set>

#include "crypto/hash.h"
#include "crypto/random.h"
#include "keeper/api/keeper_client.h"
#include "keeper/api/protocol.h"
#include "net/http.h"
#include "net/http_client.h"

namespace custos::ceremony {

using crypto::Point;
using custody::CustodyDescriptor;
using custody::Domain;
using keeper::KeeperClient;
using keeper::SignedMessage;
using nlohmann::json;

namespace {

struct Participant {
  std::string url, id;
  uint32_t index = 0;
  Point identity_key, hpke_key;
  std::unique_ptr<KeeperClient> client;
};

void Log(std::ostream* log, const std::string& line) {
  if (log != nullptr) *log << line << "\n" << std::flush;
}

StatusOr<std::vector<Participant>> Contact(const std::vector<std::string>& urls, Domain domain,
                                           const std::string& ca_file) {
  std::vector<Participant> out;
  std::set<std::string> ids;
  for (const std::string& url : urls) {
    Participant p;
    p.url = url;
    ASSIGN_OR_RETURN(KeeperClient c, KeeperClient::Create(url, ca_file));
    p.client = std::make_unique<KeeperClient>(std::move(c));
    ASSIGN_OR_RETURN(json info, p.client->Info());
    ASSIGN_OR_RETURN(p.id, keeper::GetString(info, "id"));
    ASSIGN_OR_RETURN(std::string d, keeper::GetString(info, "domain"));
    if (d != custody::DomainName(domain))
      return InvalidArgument("keeper " + p.id + " at " + url + " belongs to domain " + d +
                             ", not " + custody::DomainName(domain));
    ASSIGN_OR_RETURN(p.identity_key, keeper::GetPoint(info, "identity_key"));
    ASSIGN_OR_RETURN(p.hpke_key, keeper::GetPoint(info, "hpke_key"));
    if (!ids.insert(p.id).second) return InvalidArgument("keeper id " + p.id + " appears twice");
    out.push_back(std::move(p));
  }
  return out;
}

json EntryJson(const Participant& p) {
  return {{"id", p.id}, {"index", p.index}, {"url", p.url},
          {"identity_key", HexEncode(p.identity_key.Encode())},
          {"hpke_key", HexEncode(p.hpke_key.Encode())}};
}

struct DomainOutcome {
  Bytes session;
  custody::DomainRecord record;
  std::vector<custody::ExcludedKeeper> excluded;
  std::vector<Participant*> members;  // the keepers listed in the record
};

// RunDomainOnce runs the 7 GJKR rounds among `ps`. Returns the agreed result JSON, with each
// keeper's proof of possession of its new share under "possession_proofs".
StatusOr<json> RunDomainOnce(std::vector<Participant*>& ps, Domain domain, uint32_t threshold,
                             const Bytes& session, const std::vector<const crypto::SigningKey*>& admin_keys,
                             std::ostream* log) {
  json pops = json::object();
  json params = {{"domain", custody::DomainName(domain)}, {"threshold", threshold},
                 {"participants", json::array()}};
  for (Participant* p : ps) params["participants"].push_back(EntryJson(*p));
  std::map<std::string, crypto::VerifyingKey> keys;
  for (Participant* p : ps) keys.emplace(p->id, crypto::VerifyingKey::FromPoint(p->identity_key));
  // Each keeper starts the session only with its own operator's approval of these exact
  // parameters (participants with their keys, threshold) under this session id.
  json auths = json::array();
  for (const crypto::SigningKey* k : admin_keys)
    auths.push_back(keeper::ClientAuthorization::Create(
                        *k, "dkg", crypto::Sha256Bytes(Concat({session, AsBytes(params.dump())})))
                        .ToJson());
  json messages = json::array();
  for (int round = 1; round <= 7; ++round) {
    json next = json::array();
    json results = json::array();
    for (Participant* p : ps) {
      json body = {{"session", HexEncode(session)}, {"round", round}};
      if (round == 1) {
        body["params"] = params;
        body["authorization"] = auths;
      }
      else body["messages"] = messages;
      auto r = p->client->Call("/v1/dkg/round", body);
      if (!r.ok()) return r.status().WithContext("DKG round " + std::to_string(round));
      if (round == 7) {
        if (!r->contains("result")) return IntegrityError("keeper " + p->id + " sent no DKG result");
        results.push_back((*r)["result"]);
        pops[p->id] = r->value("possession_proof", "");
        continue;
      }
      if (!r->contains("message")) return IntegrityError("keeper " + p->id + " sent no message");
      ASSIGN_OR_RETURN(SignedMessage m, SignedMessage::FromJson((*r)["message"]));
      // Check the signature here too, so a keeper that signs badly is named by the coordinator.
      if (m.keeper != p->id || m.kind != "dkg/" + std::to_string(round) ||
          !m.Verify(keys.at(p->id), session).ok())
        return IntegrityError("keeper " + p->id + " sent a badly signed round-" +
                              std::to_string(round) + " message");
      next.push_back(m.ToJson());
    }
    if (round == 7) {
      for (const json& r : results)
        if (r != results[0])
          return IntegrityError("keepers of domain " + std::string(custody::DomainName(domain)) +
                                " disagree on the DKG result (a relay or keeper fault)");
      json out = results[0];
      out["possession_proofs"] = pops;
      return out;
    }
    messages = std::move(next);
    Log(log, "  " + std::string(custody::DomainName(domain)) + ": round " + std::to_string(round) +
                 " done");
  }
  return InternalError("unreachable");
}

StatusOr<DomainOutcome> RunDomain(std::vector<Participant>& all, Domain domain, uint32_t threshold,
                                  const std::vector<const crypto::SigningKey*>& admin_keys, std::ostream* log) {
  if (threshold < 1 || threshold > all.size())
    return InvalidArgument(std::string(custody::DomainName(domain)) +
                           " threshold must be between 1 and the number of keepers");
  DomainOutcome out;
  std::vector<Participant*> ps;
  for (auto& p : all) ps.push_back(&p);
  for (;;) {
    for (size_t k = 0; k < ps.size(); ++k) ps[k]->index = static_cast<uint32_t>(k + 1);
    out.session = crypto::RandomBytes(16);
    Log(log, "DKG " + std::string(custody::DomainName(domain)) + ": " + std::to_string(ps.size()) +
                 " keepers, threshold " + std::to_string(threshold));
    ASSIGN_OR_RETURN(json result, RunDomainOnce(ps, domain, threshold, out.session, admin_keys, log));
    const json& dq = result["disqualified"];
    if (dq.is_object() && !dq.empty()) {
      // Name every cheater, then run again without them so they hold nothing of the result.
      std::vector<Participant*> kept;
      for (Participant* p : ps) {
        if (dq.contains(p->id)) {
          std::string why = dq[p->id].get<std::string>();
          Log(log, "DKG " + std::string(custody::DomainName(domain)) + ": keeper " + p->id +
                       " disqualified: " + why);
          out.excluded.push_back({p->id, why});
        } else {
          kept.push_back(p);
        }
      }
      if (kept.size() < threshold)
        return FailedPrecondition("too few honest keepers remain in domain " +
                                  std::string(custody::DomainName(domain)) + " after disqualification");
      ps = std::move(kept);
      continue;
    }
    for (const auto& [id, why] : result["reconstructed"].items())
      Log(log, "DKG: keeper " + id + " published bad commitments; its contribution was "
               "reconstructed in public: " + why.get<std::string>());
    out.record.threshold = threshold;
    ASSIGN_OR_RETURN(out.record.public_key, keeper::GetPoint(result, "public_key"));
    for (Participant* p : ps) {
      custody::KeeperRecord k;
      k.id = p->id;
      k.domain = domain;
      k.index = p->index;
      k.url = p->url;
      k.identity_key = p->identity_key;
      k.hpke_key = p->hpke_key;
      ASSIGN_OR_RETURN(k.verification_key, keeper::GetPoint(result["verification_keys"], p->id.c_str()));
      ASSIGN_OR_RETURN(k.possession_proof, keeper::GetHex(result["possession_proofs"], p->id.c_str()));
      out.record.keepers.push_back(std::move(k));
      out.members.push_back(p);
    }
    return out;
  }
}

struct Endorser {
  std::string id;
  KeeperClient* client;
  Point identity_key;
  Bytes session;  // empty: the keeper checks the descriptor against its active custody
};

// Endorse collects signatures in the given order (each keeper checks the descriptor itself and
// sees the signatures gathered so far), then verifies the result.
Status Endorse(CustodyDescriptor& d, const std::vector<Endorser>& order) {
  Bytes msg = d.SignatureMessage();
  for (const Endorser& e : order) {
    json body = {{"descriptor", d.ToJson()}};
    if (!e.session.empty()) body["session"] = HexEncode(e.session);
    ASSIGN_OR_RETURN(json r, e.client->Call("/v1/custody/endorse", body));
    ASSIGN_OR_RETURN(Bytes sig, keeper::GetHex(r, "signature"));
    if (!crypto::VerifyingKey::FromPoint(e.identity_key).Verify(msg, sig).ok())
      return IntegrityError("keeper " + e.id + " returned an invalid endorsement signature");
    d.signatures[e.id] = std::move(sig);
  }
  return d.Verify();
}

}  // namespace

StatusOr<CustodyDescriptor> RunDkg(const DkgCeremonyOptions& opts) {
  if (opts.admin_keys.empty())
    return InvalidArgument(
        "a DKG needs admin client keys (one allowlisted as admin on each keeper): pass --client-key or set "
        "CUSTOS_CLIENT_KEY");
  ASSIGN_OR_RETURN(auto provider, Contact(opts.provider_urls, Domain::kProvider, opts.ca_file));
  ASSIGN_OR_RETURN(auto customer, Contact(opts.customer_urls, Domain::kCustomer, opts.ca_file));
  for (auto& p : provider)
    for (auto& c : customer)
      if (p.id == c.id) return InvalidArgument("keeper id " + p.id + " appears in both domains");
  ASSIGN_OR_RETURN(DomainOutcome po,
                   RunDomain(provider, Domain::kProvider, opts.provider_threshold, opts.admin_keys, opts.log));
  ASSIGN_OR_RETURN(DomainOutcome co,
                   RunDomain(customer, Domain::kCustomer, opts.customer_threshold, opts.admin_keys, opts.log));
  CustodyDescriptor d;
  d.epoch = 1;
  d.ceremony_id = crypto::RandomBytes(16);
  d.provider = po.record;
  d.customer = co.record;
  d.public_key = po.record.public_key + co.record.public_key;
  d.excluded = po.excluded;
  d.excluded.insert(d.excluded.end(), co.excluded.begin(), co.excluded.end());
  RETURN_IF_ERROR(d.CheckStructure());
  std::map<std::string, KeeperClient*> clients;
  std::vector<Endorser> order;
  for (auto* outcome : {&po, &co})
    for (Participant* p : outcome->members) {
      clients[p->id] = p->client.get();
      order.push_back({p->id, p->client.get(), p->identity_key, outcome->session});
    }
  Log(opts.log, "collecting endorsements from " + std::to_string(clients.size()) + " keepers");
  RETURN_IF_ERROR(Endorse(d, order));
  for (auto& [id, c] : clients) {
    auto r = c->Call("/v1/custody/activate", {{"descriptor", d.ToJson()}});
    if (!r.ok()) return r.status().WithContext("activating custody on keeper " + id);
  }
  Log(opts.log, "custody " + d.FingerprintHex() + " active on every keeper");
  return d;
}

Status CheckApplianceSurvives(const std::string& url, const CustodyDescriptor& current,
                              const std::string& ca_file, bool* initialized) {
  *initialized = false;
  net::HttpClientOptions http;
  http.ca_file = ca_file;
  std::string retired = "; if it is retired, pass --skip-appliance " + url;
  auto client = net::HttpClient::Create(url, http);
  if (!client.ok())
    return FailedPrecondition("appliance " + url + ": " + client.status().message() + retired);
  auto status = net::DecodeJsonResponse(client->Get("/v1/sys/seal-status"), "appliance " + url);
  if (!status.ok())
    return FailedPrecondition("cannot check that appliance " + url + " keeps its root key: " +
                              status.status().message() + retired);
  const json& s = *status;
  if (!s.value("initialized", false)) return Status::Ok();  // no root key yet: nothing to lose
  *initialized = true;
  if (!s.contains("public_key") || !s.contains("origin_binding"))
    return FailedPrecondition("appliance " + url +
                              " would be stranded: its core predates custody updates (its status "
                              "has no public_key/origin_binding); upgrade it, unseal it, then reshare");
  if (s.value("public_key", "") != HexEncode(current.public_key.Encode()))
    return FailedPrecondition("appliance " + url + " serves another joint public key (custody " +
                              s.value("custody", "") + "): it is not an appliance of this custody" + retired);
  if (s.value("origin_binding", "") != "joint-key")
    return FailedPrecondition(
        "appliance " + url +
        " would be stranded: its envelope's origin evidence is bound to the custody fingerprint "
        "(made by an older core), which this reshare changes; unseal it once with this release (its "
        "core re-binds the evidence to the joint key), then reshare");
  return Status::Ok();
}

StatusOr<CustodyDescriptor> RunReshare(const ReshareCeremonyOptions& opts) {
  const CustodyDescriptor& cur = opts.current;
  RETURN_IF_ERROR(cur.Verify());
  if (opts.admin_keys.empty())
    return InvalidArgument(
        "resharing needs an admin client key: pass --client-key or set CUSTOS_CLIENT_KEY");
  ASSIGN_OR_RETURN(auto fresh, Contact(opts.new_urls, opts.domain, opts.ca_file));
  if (opts.new_threshold < 1 || opts.new_threshold > fresh.size())
    return InvalidArgument("new threshold must be between 1 and the number of new keepers");
  for (size_t k = 0; k < fresh.size(); ++k) fresh[k].index = static_cast<uint32_t>(k + 1);
  const custody::DomainRecord& old = cur.domain(opts.domain);
  Bytes session = crypto::RandomBytes(16);
  json proposal = {{"custody_fp", HexEncode(cur.Fingerprint())},
                   {"domain", custody::DomainName(opts.domain)},
                   {"threshold", opts.new_threshold},
                   {"recipients", json::array()}};
  for (auto& p : fresh) proposal["recipients"].push_back(EntryJson(p));
  json auths = json::array();
  for (const crypto::SigningKey* k : opts.admin_keys)
    auths.push_back(keeper::ClientAuthorization::Create(
                        *k, "reshare", crypto::Sha256Bytes(Concat({session, AsBytes(proposal.dump())})))
                        .ToJson());

  // Old keepers deal; an unreachable one is skipped while enough remain.
  std::map<std::string, std::unique_ptr<KeeperClient>> old_clients;
  json deals = json::array();
  json appliance_points = json::array();
  std::set<std::string> reported_appliances;
  std::string refusals;
  for (const auto& k : old.keepers) {
    auto c = KeeperClient::Create(k.url, opts.ca_file);
    if (!c.ok()) return c.status();
    old_clients[k.id] = std::make_unique<KeeperClient>(std::move(c).value());
    auto r = old_clients[k.id]->Call("/v1/reshare/deal", {{"session", HexEncode(session)},
                                                          {"proposal", proposal},
                                                          {"authorization", auths}});
    if (!r.ok()) {
      Log(opts.log, "reshare: old keeper " + k.id + " did not deal: " + r.status().message());
      refusals += (refusals.empty() ? "" : "; ") + k.id + ": " + r.status().message();
      continue;
    }
    deals.push_back((*r)["message"]);
    if (r->contains("appliance_points")) appliance_points.push_back((*r)["appliance_points"]);
    if (r->contains("appliances") && (*r)["appliances"].is_array())
      for (const json& u : (*r)["appliances"])
        if (u.is_string()) reported_appliances.insert(u.get<std::string>());
  }
  if (deals.size() < old.threshold)
    return FailedPrecondition("fewer than the old threshold of keepers dealt (" + refusals + ")");
  // Every appliance of this custody must keep its root key. Nothing is committed yet (the deals
  // only live in the old keepers' memory), so a refusal here changes nothing.
  std::set<std::string> appliances(opts.appliances.begin(), opts.appliances.end());
  for (const std::string& url : reported_appliances) appliances.insert(url);
  for (const std::string& url : opts.skip_appliances) {
    if (appliances.erase(url)) Log(opts.log, "reshare: appliance " + url + " skipped (--skip-appliance)");
  }
  std::vector<std::string> to_update;
  for (const std::string& url : appliances) {
    bool initialized = false;
    Status st = CheckApplianceSurvives(url, cur, opts.ca_file, &initialized);
    if (!st.ok()) return FailedPrecondition("reshare refused: " + st.message());
    Log(opts.log, "reshare: appliance " + url +
                      (initialized ? " keeps its root key (origin evidence bound to the joint key)"
                                   : " is not initialised (nothing to keep)"));
    if (initialized) to_update.push_back(url);
  }
  // New keepers verify every deal and name bad dealers.
  std::set<std::string> bad;
  for (auto& p : fresh) {
    ASSIGN_OR_RETURN(json r, p.client->Call("/v1/reshare/receive",
                                            {{"session", HexEncode(session)},
                                             {"previous", cur.ToJson()},
                                             {"proposal", proposal},
                                             {"deals", deals},
                                             {"appliance_points", appliance_points}}));
    for (const json& b : r["bad"]) bad.insert(b.get<std::string>());
  }
  std::vector<custody::ExcludedKeeper> excluded;
  std::vector<uint32_t> quorum;
  for (const json& m : deals) {
    std::string id = m.value("keeper", "");
    if (bad.count(id)) {
      Log(opts.log, "reshare: old keeper " + id + " dealt shares that failed verification; excluded");
      excluded.push_back({id, "dealt reshare shares that failed verification"});
      continue;
    }
    if (quorum.size() < old.threshold) quorum.push_back(cur.FindKeeper(id)->index);
  }
  if (quorum.size() < old.threshold)
    return FailedPrecondition("fewer than the old threshold of keepers dealt verifiable shares");
  json keys;
  std::map<std::string, Bytes> pops;
  for (auto& p : fresh) {
    ASSIGN_OR_RETURN(json r, p.client->Call("/v1/reshare/finalize",
                                            {{"session", HexEncode(session)}, {"quorum", quorum}}));
    ASSIGN_OR_RETURN(pops[p.id], keeper::GetHex(r, "possession_proof"));
    if (keys.is_null()) keys = r["verification_keys"];
    else if (keys != r["verification_keys"])
      return IntegrityError("new keepers disagree on the reshare result");
  }
  CustodyDescriptor d = cur;
  d.signatures.clear();
  d.epoch = cur.epoch + 1;
  d.previous = cur.Fingerprint();
  d.ceremony_id = session;
  d.excluded = excluded;
  custody::DomainRecord& rec = d.domain(opts.domain);
  rec.threshold = opts.new_threshold;
  rec.keepers.clear();
  for (auto& p : fresh) {
    custody::KeeperRecord k{p.id, opts.domain, p.index, p.url, p.identity_key, p.hpke_key, {}, {}};
    ASSIGN_OR_RETURN(k.verification_key, keeper::GetPoint(keys, std::to_string(p.index).c_str()));
    k.possession_proof = pops[p.id];
    rec.keepers.push_back(std::move(k));
  }
  RETURN_IF_ERROR(d.CheckStructure());
  // Endorsement order: the new keepers, then the departing dealers (their signatures are the
  // old domain's approval), then the other domain, which checks that approval.
  std::map<std::string, std::unique_ptr<KeeperClient>> owned;
  std::map<std::string, KeeperClient*> clients;
  std::vector<Endorser> order;
  for (auto& p : fresh) {
    clients[p.id] = p.client.get();
    order.push_back({p.id, p.client.get(), p.identity_key, session});
  }
  for (const json& m : deals) {
    std::string id = m.value("keeper", "");
    if (bad.count(id) || clients.count(id)) continue;
    order.push_back({id, old_clients[id].get(), cur.FindKeeper(id)->identity_key, session});
  }
  for (const custody::KeeperRecord* k : d.AllKeepers()) {
    if (clients.count(k->id)) continue;
    ASSIGN_OR_RETURN(KeeperClient c, KeeperClient::Create(k->url, opts.ca_file));
    owned[k->id] = std::make_unique<KeeperClient>(std::move(c));
    clients[k->id] = owned[k->id].get();
    order.push_back({k->id, clients[k->id], k->identity_key, {}});
  }
  RETURN_IF_ERROR(Endorse(d, order));
  for (auto& [id, c] : clients) {
    auto r = c->Call("/v1/custody/activate", {{"descriptor", d.ToJson()}});
    if (!r.ok()) return r.status().WithContext("activating custody on keeper " + id);
  }
  // Removed keepers erase their share (best effort: an unreachable one is reported).
  for (const auto& k : old.keepers) {
    if (d.FindKeeper(k.id) != nullptr) continue;
    auto r = old_clients[k.id]->Call("/v1/custody/activate", {{"descriptor", d.ToJson()}});
    if (r.ok()) Log(opts.log, "reshare: keeper " + k.id + " retired and erased its share");
    else Log(opts.log, "reshare: could not retire keeper " + k.id + ": " + r.status().message() +
                           " (its share no longer counts: custody " + d.FingerprintHex() +
                           " does not list it)");
  }
  // Hand every appliance the new descriptor now, so it unseals with the new keepers (keepers
  // also hand it over at their next release, so a failure here strands nothing).
  for (const std::string& url : to_update) {
    net::HttpClientOptions http;
    http.ca_file = opts.ca_file;
    auto client = net::HttpClient::Create(url, http);
    StatusOr<json> r = client.ok() ? net::DecodeJsonResponse(client->Post("/v1/sys/custody",
                                                                           json{{"descriptor", d.ToJson()}}.dump(),
                                                                           {{"content-type", "application/json"}}),
                                                              "appliance " + url)
                                   : StatusOr<json>(client.status());
    if (r.ok()) Log(opts.log, "reshare: appliance " + url + " now serves custody " + d.FingerprintHex());
    else Log(opts.log, "reshare: could not hand custody " + d.FingerprintHex() + " to appliance " + url + ": " +
                           r.status().message() + " (its keepers hand it over at their next release)");
  }
  return d;
}

}  // namespace custos::ceremony
