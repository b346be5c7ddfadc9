#include "keeper/daemon/keeper_context.h"

#include <algorithm>

#include "keeper/daemon/audit_log.h"

namespace custos::keeper {

using custody::CustodyDescriptor;
using nlohmann::json;

// ---- ReplayCache ----

void ReplayCache::LoadFromAuditLog(const std::string& audit_path) {
  auto entries = AuditLog::ReadEntries(audit_path);
  if (!entries.ok()) return;
  uint64_t now = UnixNow();
  std::lock_guard<std::mutex> lock(mu_);
  for (const json& e : *entries) {
    std::string event = e.value("event", "");
    if (event != "release" && event != "reshare.deal" && event != "escrow.fetch") continue;
    const json& d = e["details"];
    uint64_t ts = d.value("timestamp", uint64_t{0});
    if (ts + 2 * kRequestWindowSeconds >= now && seen_.emplace(d.value("nonce", ""), ts).second)
      expiry_.emplace_back(ts, d.value("nonce", ""));
  }
}

Status ReplayCache::CheckFresh(ByteSpan nonce, uint64_t timestamp) {
  uint64_t now = UnixNow();
  if (timestamp + kRequestWindowSeconds < now || timestamp > now + kRequestWindowSeconds)
    return PermissionDenied("request timestamp is outside the 5-minute window (stale or replayed)");
  std::lock_guard<std::mutex> lock(mu_);
  // Forget nonces first seen more than two windows ago: a replay of them now carries a
  // timestamp outside the window and is refused by the check above.
  while (!expiry_.empty() && expiry_.front().first + 2 * kRequestWindowSeconds < now) {
    seen_.erase(expiry_.front().second);
    expiry_.pop_front();
  }
  std::string key = HexEncode(nonce);
  if (!seen_.emplace(key, now).second)
    return PermissionDenied("request nonce was already used (replayed request)");
  expiry_.emplace_back(now, std::move(key));
  return Status::Ok();
}

// ---- KeeperContext ----

KeeperContext::KeeperContext(KeeperStore& store, std::shared_ptr<const Misbehaviour> misbehaviour)
    : store_(store), misbehaviour_(std::move(misbehaviour)) {
  replay_.LoadFromAuditLog(store_.dir() + "/audit.log");
}

StatusOr<const ActiveCustodyView*> KeeperContext::ActiveView() {
  if (!store_.secrets().active) return FailedPrecondition("keeper holds no active share yet");
  const std::string& text = store_.secrets().active->custody_json;
  if (!active_cache_ || active_json_cache_ != text) {
    ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::Parse(text));
    ActiveCustodyView view;
    view.fingerprint = d.Fingerprint();
    view.fingerprint_hex = HexEncode(view.fingerprint);
    if (const custody::KeeperRecord* me = d.FindKeeper(store_.id()))
      view.own_verification_key = me->verification_key.Encode();
    view.descriptor = std::move(d);
    active_cache_ = std::move(view);
    active_json_cache_ = text;
  }
  return &*active_cache_;
}

StatusOr<CustodyDescriptor> KeeperContext::ActiveCustody() {
  ASSIGN_OR_RETURN(const ActiveCustodyView* view, ActiveView());
  return view->descriptor;
}

StatusOr<std::shared_ptr<const std::vector<KeeperContext::ListedClient>>>
KeeperContext::CurrentAllowlist() const {
  ASSIGN_OR_RETURN(std::string text, store_.ReadAllowlistText());
  std::lock_guard<std::mutex> lock(allow_mu_);
  if (allow_clients_ == nullptr || text != allow_text_) {
    // The same text as the last one whose MAC verified parses to the same entries; any other
    // text is MAC-checked and parsed afresh.
    ASSIGN_OR_RETURN(std::vector<AllowedClient> clients, store_.ParseAllowlist(text));
    auto listed = std::make_shared<std::vector<ListedClient>>();
    listed->reserve(clients.size());
    for (AllowedClient& c : clients) {
      crypto::VerifyingKey vk = crypto::VerifyingKey::FromPoint(c.key);
      listed->push_back({std::move(c), std::move(vk)});
    }
    allow_clients_ = std::move(listed);
    allow_text_ = std::move(text);
  }
  return allow_clients_;
}

Status KeeperContext::FindClient(const std::vector<ListedClient>& clients, const crypto::Point& key,
                                 ClientRole role, std::string* name) {
  for (const ListedClient& listed : clients) {
    const AllowedClient& c = listed.client;
    if (c.key == key) {
      if (role == ClientRole::kAdmin && c.role != ClientRole::kAdmin)
        return PermissionDenied("client key is allowlisted for decryption only, not as an admin");
      *name = c.name;
      return Status::Ok();
    }
  }
  return PermissionDenied("client key is not on this keeper's allowlist");
}

Status KeeperContext::CheckAllowedClient(const crypto::Point& key, std::string* name,
                                         ClientRole role) const {
  ASSIGN_OR_RETURN(auto clients, CurrentAllowlist());
  return FindClient(*clients, key, role, name);
}

Status KeeperContext::AuthenticateClient(const crypto::Point& key, ByteSpan message,
                                         ByteSpan signature, std::string* name,
                                         ClientRole role) const {
  // A listed key's verifying key was prepared with the allowlist; any other key (or an
  // allowlist that does not load) is verified with a key built here. Either way the signature
  // is judged before the allowlist is.
  auto clients = CurrentAllowlist();
  const crypto::VerifyingKey* prepared = nullptr;
  if (clients.ok()) {
    for (const ListedClient& listed : **clients)
      if (listed.client.key == key) prepared = &listed.verifying_key;
  }
  Status verified = prepared != nullptr
                        ? prepared->Verify(message, signature)
                        : crypto::VerifyingKey::FromPoint(key).Verify(message, signature);
  if (!verified.ok()) return PermissionDenied("request signature does not verify");
  if (!clients.ok()) return clients.status();
  return FindClient(**clients, key, role, name);
}

StatusOr<ClientAuthorization> KeeperContext::AcceptAdminAuthorization(
    const json& auths, std::string_view action, ByteSpan subject, std::string* client_name) const {
  if (!auths.is_array() && !auths.is_object()) return InvalidArgument("bad 'authorization'");
  Status refusal = PermissionDenied("no authorisation given");
  for (const json& aj : auths.is_array() ? auths : json::array({auths})) {
    ASSIGN_OR_RETURN(ClientAuthorization auth, ClientAuthorization::FromJson(aj));
    if (auth.action != action ||
        !std::equal(auth.subject.begin(), auth.subject.end(), subject.begin(), subject.end())) {
      refusal = PermissionDenied(
          "authorization does not cover this " + std::string(action == "dkg" ? "DKG" : action) +
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

// ---- ceremony helpers ----

StatusOr<KeeperEntry> ParseKeeperEntry(const json& j) {
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

namespace {
bool SameRecord(const custody::KeeperRecord& a, const custody::KeeperRecord& b) {
  return a.id == b.id && a.index == b.index && a.url == b.url && a.identity_key == b.identity_key &&
         a.hpke_key == b.hpke_key && a.verification_key == b.verification_key;
}
}  // namespace

bool SameDomain(const custody::DomainRecord& a, const custody::DomainRecord& b) {
  if (a.threshold != b.threshold || !(a.public_key == b.public_key) ||
      a.keepers.size() != b.keepers.size())
    return false;
  for (size_t k = 0; k < a.keepers.size(); ++k)
    if (!SameRecord(a.keepers[k], b.keepers[k])) return false;
  return true;
}

custody::Domain OtherDomain(custody::Domain d) {
  return d == custody::Domain::kProvider ? custody::Domain::kCustomer : custody::Domain::kProvider;
}

Status CheckOwnDomain(const CustodyDescriptor& d, custody::Domain domain,
                      const std::map<std::string, crypto::Point>& keys, uint32_t threshold,
                      const crypto::Point& domain_key,
                      const std::map<std::string, uint32_t>& index_of) {
  const custody::DomainRecord& own = d.domain(domain);
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
}

}  // namespace custos::keeper
