// EscrowHandler: recovery blobs held by provider keepers for customer keepers (POST
// /v1/escrow/put, /v1/escrow/params, /v1/escrow/get; docs/architecture.md "Escrow and
// recovery", escrow.h). A customer keeper of the active custody uploads its signed blob; the
// blob goes back only to whoever proves the recovery secret, and a handful of wrong proofs per
// window locks it.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

#include "keeper/daemon/keeper_context.h"

namespace custos::keeper {

class EscrowHandler {
 public:
  explicit EscrowHandler(KeeperContext& ctx) : ctx_(ctx) {}

  // Put requires the sealed-state mutex held (it checks the blob against the active custody).
  StatusOr<nlohmann::json> Put(const nlohmann::json& body);
  // Params and Get touch no sealed state (blob files, which Put replaces atomically, the
  // failure counters, the replay cache, the audit log) and run without the sealed-state
  // mutex; Get holds this handler's mutex from the lock check to the counter update, so
  // concurrent guesses cannot exceed the limit.
  StatusOr<nlohmann::json> Params(const nlohmann::json& body);
  StatusOr<nlohmann::json> Get(const nlohmann::json& body);

 private:
  // Locate finds the stored blob for "custody_fp" and an optional "keeper_id" (the single blob
  // of that custody when none is named).
  StatusOr<std::pair<std::string, Bytes>> Locate(const nlohmann::json& body) const;

  // Failed fetches of one blob ("custody fp/keeper id") in the current window (escrow.h).
  struct Failures {
    uint64_t window_start = 0;
    int count = 0;
  };
  KeeperContext& ctx_;
  std::mutex mu_;  // guards failures_
  std::map<std::string, Failures> failures_;
};

}  // namespace custos::keeper
