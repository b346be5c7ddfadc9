// ReshareHandler: resharing a domain's secret to a new keeper set (POST /v1/reshare/deal,
// /v1/reshare/receive, /v1/reshare/finalize; docs/protocol.md "Reshare"). An old keeper deals
// its share, approved by an admin of this keeper; a new keeper verifies the deals against the
// previous custody, names bad dealers and, given a quorum, derives its new share, which
// CustodyHandler turns into a pending share on endorsement.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "keeper/daemon/keeper_context.h"
#include "protocol/threshold/reshare.h"

namespace custos::keeper {

class ReshareHandler {
 public:
  explicit ReshareHandler(KeeperContext& ctx) : ctx_(ctx) {}

  // Deal, Receive and Finalize handle the three routes. Each requires the sealed-state mutex
  // held: Deal reads the active share, Receive the active custody and the appliance points,
  // and Finalize's result is what an endorsement turns into sealed state.
  StatusOr<nlohmann::json> Deal(const nlohmann::json& body);
  StatusOr<nlohmann::json> Receive(const nlohmann::json& body);
  StatusOr<nlohmann::json> Finalize(const nlohmann::json& body);

  // EndorseFinished checks descriptor `d` against the finished receive session `sid` and
  // returns the new share slot; nullopt when `sid` is no finished reshare session here.
  std::optional<StatusOr<ShareSlot>> EndorseFinished(const std::string& sid,
                                                     const custody::CustodyDescriptor& d,
                                                     const custody::KeeperRecord* mine);
  // CheckDealtTransition, for a keeper that dealt in reshare `sid` and leaves the domain,
  // checks that `d` is the transition it dealt for; nullopt when it did not deal in `sid`.
  // Requires the sealed-state mutex held (it compares with the active custody).
  std::optional<Status> CheckDealtTransition(const std::string& sid,
                                             const custody::CustodyDescriptor& d);
  // Forget drops receive session `sid` (on activation of its descriptor).
  void Forget(const std::string& sid);

 private:
  struct Session {
    Bytes previous_fp;
    std::string previous_json;
    uint32_t new_threshold = 0;
    nlohmann::json recipients;  // [{id,index,url,identity_key,hpke_key}]
    std::unique_ptr<threshold::ReshareReceiver> receiver;
    std::optional<threshold::ReshareResult> result;
  };
  // KnownAppliances lists the appliance URLs this keeper released to (from its audit log).
  nlohmann::json KnownAppliances() const;

  KeeperContext& ctx_;
  // mu_ guards the sessions and dealt_; taken inside the sealed-state mutex, never around it.
  std::mutex mu_;
  std::map<std::string, Session> sessions_;      // session hex -> receive state (memory only)
  std::deque<std::string> order_;                // session ids, oldest first
  std::map<std::string, nlohmann::json> dealt_;  // session hex -> proposal this keeper dealt for
};

}  // namespace custos::keeper
