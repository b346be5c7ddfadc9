// The keeper daemon's request handlers (`custos keeper serve`). Each handler checks who asks
// and what state allows, records releases in the audit log before answering, and returns a
// JSON error that names the failed check (docs/protocol.md, "Keeper API").
//
// Routes:
//   GET  /v1/keeper             public identity and custody state
//   POST /v1/dkg/round          one GJKR round (1..7) of a DKG session
//   POST /v1/custody/endorse    sign a custody descriptor consistent with this keeper's view
//   POST /v1/custody/activate   adopt (or retire under) a fully signed descriptor
//   POST /v1/partial            partial decryption for an allowlisted, signed request
//   POST /v1/escrow/put|get     store or fetch recovery blobs (provider keepers)
//   POST /v1/reshare/deal|receive|finalize   resharing, old and new keeper sides
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "keeper/daemon/keeper_store.h"
#include "keeper/api/protocol.h"
#include "net/http.h"
#include "net/source_limiter.h"
#include "protocol/threshold/dkg.h"
#include "protocol/threshold/reshare.h"

namespace custos::keeper {

// FaultInjection makes a keeper misbehave on purpose so tests can run cheaters through the
// real protocol. Set only from CUSTOS_FAULT_INJECTION; a misbehaving keeper only harms itself
// (its messages are refused and it is named), never the verifiers.
struct FaultInjection {
  bool dkg_bad_shares = false;
  bool bad_partial = false;
  bool reshare_bad_shares = false;
  static StatusOr<FaultInjection> FromEnv();
  bool any() const { return dkg_bad_shares || bad_partial || reshare_bad_shares; }
};

class KeeperService {
 public:
  KeeperService(KeeperStore& store, FaultInjection faults);
  // Handle dispatches one request; it is safe to call from several threads.
  net::HttpResponse Handle(const net::HttpRequest& req);
  // refused_by_limiter counts requests turned away for too many failures from their address.
  uint64_t refused_by_limiter() const { return failures_.refused(); }

 private:
  using Json = nlohmann::json;
  StatusOr<Json> Info();
  StatusOr<Json> DkgRound(const Json& body);
  StatusOr<Json> Endorse(const Json& body);
  StatusOr<Json> Activate(const Json& body);
  StatusOr<Json> Partial(const Json& body);
  StatusOr<Json> EscrowPut(const Json& body);
  StatusOr<Json> EscrowParams(const Json& body);
  StatusOr<Json> EscrowGet(const Json& body);
  StatusOr<std::pair<std::string, Bytes>> LocateEscrow(const Json& body) const;
  net::HttpResponse Route(const net::HttpRequest& req);
  StatusOr<Json> ReshareDeal(const Json& body);
  StatusOr<ClientAuthorization> AcceptAdminAuthorization(const Json& auths, std::string_view action,
                                                         ByteSpan subject, std::string* client_name) const;
  StatusOr<Json> ReshareReceive(const Json& body);
  // KnownAppliances lists the appliance URLs this keeper released to (from its audit log).
  Json KnownAppliances() const;
  StatusOr<Json> ReshareFinalize(const Json& body);

  // Requires mu held.
  StatusOr<custody::CustodyDescriptor> ActiveCustody() const;
  // CheckAllowedClient finds `key` on the allowlist with at least `role` (admin includes decrypt).
  Status CheckAllowedClient(const crypto::Point& key, std::string* name,
                            ClientRole role = ClientRole::kDecrypt) const;
  Status CheckFreshNonce(ByteSpan nonce, uint64_t timestamp);
  void LoadReplayCache();

  struct DkgSession {
    std::unique_ptr<threshold::DkgParticipant> participant;
    std::map<std::string, uint32_t> index_of;               // keeper id -> index
    std::map<std::string, crypto::VerifyingKey> identity;   // keeper id -> key
    std::map<std::string, crypto::Point> hpke;              // keeper id -> key
    std::optional<threshold::DkgResult> result;
  };
  struct ReshareSession {
    Bytes previous_fp;
    std::string previous_json;
    uint32_t new_threshold = 0;
    Json recipients;  // [{id,index,url,identity_key,hpke_key}]
    std::unique_ptr<threshold::ReshareReceiver> receiver;
    std::optional<threshold::ReshareResult> result;
  };

  KeeperStore& store_;
  FaultInjection faults_;
  std::mutex& mu_;
  std::map<std::string, DkgSession> dkg_;          // session hex -> state (in memory only)
  std::map<std::string, ReshareSession> reshare_;  // session hex -> state
  std::deque<std::string> dkg_order_, reshare_order_;  // session ids, oldest first
  std::map<std::string, uint64_t> seen_nonces_;    // nonce hex -> time first seen
  // Failed requests per client address: 100 per 10 s, then 429 until the window ends.
  net::SourceLimiter failures_{100, std::chrono::seconds(10)};
  // Failed escrow fetches per "custody fp/keeper id" in the current window (escrow.h).
  struct EscrowFailures {
    uint64_t window_start = 0;
    int count = 0;
  };
  std::map<std::string, EscrowFailures> escrow_failures_;
  std::deque<std::pair<uint64_t, std::string>> nonce_expiry_;  // (time first seen, nonce), FIFO
  // The parsed active custody, re-parsed only when the sealed state's descriptor changes.
  mutable std::string active_json_cache_;
  mutable std::optional<custody::CustodyDescriptor> active_cache_;
  std::map<std::string, Json> dealt_;              // reshare session hex -> proposal we dealt for
};


}  // namespace custos::keeper
