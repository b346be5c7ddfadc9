// DkgHandler: the keeper's side of the GJKR distributed key generation (POST /v1/dkg/round,
// docs/protocol.md "DKG"). Round 1, approved by an admin of this keeper, starts a session and
// deals; rounds 2..7 verify the keeper-signed messages the coordinator relays and answer with
// this keeper's signed message for the next round; round 7 yields the domain key, QUAL and this
// keeper's share, which CustodyHandler turns into a pending share on endorsement.
#pragma once

#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "keeper/daemon/keeper_context.h"
#include "protocol/threshold/dkg.h"

namespace custos::keeper {

class DkgHandler {
 public:
  explicit DkgHandler(KeeperContext& ctx) : ctx_(ctx) {}

  // Round handles POST /v1/dkg/round. Requires the sealed-state mutex held (round 1 starts a
  // session only while no share is active, and signs with the sealed identity key).
  StatusOr<nlohmann::json> Round(const nlohmann::json& body);

  // EndorseFinished checks descriptor `d` against the finished DKG session `sid` and returns
  // the share slot to make pending; nullopt when `sid` is no finished DKG session here.
  // `mine` is this keeper's record in `d` (null if it is not listed).
  std::optional<StatusOr<ShareSlot>> EndorseFinished(const std::string& sid,
                                                     const custody::CustodyDescriptor& d,
                                                     const custody::KeeperRecord* mine);
  // ForgetAll drops every session (on activation: a keeper with a share starts no DKG).
  void ForgetAll();

 private:
  struct Session {
    std::unique_ptr<threshold::DkgParticipant> participant;
    std::map<std::string, uint32_t> index_of;              // keeper id -> index
    std::map<std::string, crypto::VerifyingKey> identity;  // keeper id -> key
    std::map<std::string, crypto::Point> hpke;             // keeper id -> key
    std::optional<threshold::DkgResult> result;
  };
  StatusOr<nlohmann::json> Start(const nlohmann::json& body, const Bytes& session);

  KeeperContext& ctx_;
  // mu_ guards the sessions; taken inside the sealed-state mutex, never around it.
  std::mutex mu_;
  std::map<std::string, Session> sessions_;  // session hex -> state (in memory only)
  std::deque<std::string> order_;            // session ids, oldest first
};

}  // namespace custos::keeper
