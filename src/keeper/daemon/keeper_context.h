// KeeperContext: what the keeper's protocol handlers share (docs/architecture.md, "Keeper
// concurrency model"): the keeper store and its sealed-state mutex, the replay-nonce cache,
// client authorisation checks, the parsed active custody and the fault-injection seam.
//
// Locks, outermost first: the sealed-state mutex (KeeperStore::mu()), then a handler's own
// mutex, then the replay cache's and the audit log's (leaves). No code takes them in another
// order.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "keeper/api/protocol.h"
#include "keeper/daemon/fault_injection.h"
#include "keeper/daemon/keeper_store.h"
#include "protocol/custody/custody.h"

namespace custos::keeper {

// kMaxSessions bounds the ceremony sessions (DKG, reshare) a keeper keeps in memory at once.
inline constexpr size_t kMaxSessions = 8;

// ReplayCache remembers the nonces of signed requests (partials, admin authorisations, escrow
// fetches) for two request windows, so a replay inside the timestamp window is refused. It has
// its own mutex, a leaf: CheckFresh may be called with or without the sealed-state mutex held.
class ReplayCache {
 public:
  // LoadFromAuditLog seeds the cache with the nonces of the recent "release", "reshare.deal"
  // and "escrow.fetch" entries of `audit_path`, so a restart does not reopen the window.
  void LoadFromAuditLog(const std::string& audit_path);
  // CheckFresh refuses a timestamp outside the window or a nonce already seen, and otherwise
  // records the nonce (so two concurrent requests with one nonce cannot both pass).
  Status CheckFresh(ByteSpan nonce, uint64_t timestamp);

 private:
  std::mutex mu_;
  std::map<std::string, uint64_t> seen_;                 // nonce hex -> time first seen
  std::deque<std::pair<uint64_t, std::string>> expiry_;  // (time first seen, nonce), FIFO
};

// ActiveCustodyView is the active custody descriptor as the per-request handlers use it. Its
// fingerprint hashes the encoding of every point in the descriptor, so it is computed once per
// descriptor, not once per request.
struct ActiveCustodyView {
  custody::CustodyDescriptor descriptor;
  Bytes fingerprint;
  std::string fingerprint_hex;
  Bytes own_verification_key;  // this keeper's X_i, SEC1-compressed (empty if not listed)
};

class KeeperContext {
 public:
  // `misbehaviour` is null in production (fault_injection.h).
  KeeperContext(KeeperStore& store, std::shared_ptr<const Misbehaviour> misbehaviour);

  KeeperStore& store() { return store_; }
  // sealed_state_mu guards the sealed secrets (KeeperStore::secrets()) and everything read or
  // changed together with them; the router holds it around every handler marked kSealedState.
  std::mutex& sealed_state_mu() { return store_.mu(); }
  // misbehaviour is the fault-injection seam: null unless CUSTOS_FAULT_INJECTION is set.
  const Misbehaviour* misbehaviour() const { return misbehaviour_.get(); }
  ReplayCache& replay() { return replay_; }

  // ActiveCustody returns the parsed active custody descriptor (kFailedPrecondition while the
  // keeper holds no share). Requires sealed_state_mu() held: it reads the sealed state and
  // the parse cache, which is re-filled only when the descriptor text changes.
  StatusOr<custody::CustodyDescriptor> ActiveCustody();
  // ActiveView is the same descriptor with its fingerprint, without a copy. Requires
  // sealed_state_mu() held; the pointer is valid until that mutex is released.
  StatusOr<const ActiveCustodyView*> ActiveView();

  // CheckAllowedClient finds `key` on the allowlist with at least `role` (admin includes
  // decrypt) and sets `*name`. The file is read on every call, so a change (`custos keeper
  // allow`, from another process) is in force at once; its MAC is checked and its keys parsed
  // whenever its text differs from the last text that passed. Safe without the sealed-state
  // lock: the file is replaced atomically and the parse cache has its own mutex (a leaf).
  Status CheckAllowedClient(const crypto::Point& key, std::string* name,
                            ClientRole role = ClientRole::kDecrypt) const;
  // AuthenticateClient checks that `signature` over `message` verifies under `key`, then that
  // `key` is allowlisted with at least `role` (CheckAllowedClient), in that order, so an error
  // never tells a stranger whether a key is listed. kPermissionDenied names the failed check.
  // Allowlisted keys are verified with keys prepared when the allowlist was parsed.
  Status AuthenticateClient(const crypto::Point& key, ByteSpan message, ByteSpan signature,
                            std::string* name, ClientRole role = ClientRole::kDecrypt) const;
  // AcceptAdminAuthorization finds, among the one or several ClientAuthorizations in `auths`
  // (one per keeper operator, say), one for `action` over `subject`, validly signed by a key
  // this keeper allowlists as admin. It does not check freshness: the caller does, once its
  // other checks pass.
  StatusOr<ClientAuthorization> AcceptAdminAuthorization(const nlohmann::json& auths,
                                                         std::string_view action, ByteSpan subject,
                                                         std::string* client_name) const;

 private:
  // An allowlisted client as the checks use it: its verifying key is built once per parse.
  struct ListedClient {
    AllowedClient client;
    crypto::VerifyingKey verifying_key;
  };
  // CurrentAllowlist reads the allowlist file and returns its parsed, MAC-checked entries,
  // re-parsing only when the text changed. Takes allow_mu_.
  StatusOr<std::shared_ptr<const std::vector<ListedClient>>> CurrentAllowlist() const;
  // FindClient is the allowlist decision of CheckAllowedClient over parsed entries.
  static Status FindClient(const std::vector<ListedClient>& clients, const crypto::Point& key,
                           ClientRole role, std::string* name);

  KeeperStore& store_;
  std::shared_ptr<const Misbehaviour> misbehaviour_;
  ReplayCache replay_;
  std::string active_json_cache_;  // guarded by sealed_state_mu()
  std::optional<ActiveCustodyView> active_cache_;
  mutable std::mutex allow_mu_;     // guards the two below; a leaf
  mutable std::string allow_text_;  // the last allowlist text whose MAC verified
  mutable std::shared_ptr<const std::vector<ListedClient>> allow_clients_;
};

// ---- helpers shared by the ceremony handlers (DKG, custody, reshare) ----

// KeeperEntry is one participant/recipient entry of a ceremony proposal.
struct KeeperEntry {
  std::string id;
  uint32_t index = 0;
  std::string url;
  crypto::Point identity_key, hpke_key;
};
StatusOr<KeeperEntry> ParseKeeperEntry(const nlohmann::json& j);

// SameDomain compares two domain records field by field (keepers in order).
bool SameDomain(const custody::DomainRecord& a, const custody::DomainRecord& b);
// OtherDomain is the domain `d` is not.
custody::Domain OtherDomain(custody::Domain d);

// CheckOwnDomain checks that descriptor `d` lists, for `domain`, exactly the keepers of `keys`
// (id -> verification key) at the indices of `index_of`, with `threshold` and `domain_key`.
Status CheckOwnDomain(const custody::CustodyDescriptor& d, custody::Domain domain,
                      const std::map<std::string, crypto::Point>& keys, uint32_t threshold,
                      const crypto::Point& domain_key,
                      const std::map<std::string, uint32_t>& index_of);

}  // namespace custos::keeper
