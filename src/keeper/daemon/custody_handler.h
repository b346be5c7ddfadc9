// CustodyHandler: this keeper's identity and custody state (GET /v1/keeper), and the custody
// descriptor's life cycle on a keeper (POST /v1/custody/endorse, /v1/custody/activate;
// docs/protocol.md "Custody descriptor"). Endorse checks a descriptor against what this keeper
// computed in a DKG or reshare (or, for the other domain's reshare, against its approvals),
// keeps the share as pending in the sealed state and signs; Activate makes the pending share
// active, or erases the share of a keeper a reshare removed.
#pragma once

#include <nlohmann/json.hpp>

#include "keeper/daemon/dkg_handler.h"
#include "keeper/daemon/keeper_context.h"
#include "keeper/daemon/reshare_handler.h"

namespace custos::keeper {

class CustodyHandler {
 public:
  // `dkg` and `reshare` hold the ceremony sessions an endorsement is checked against; they
  // must outlive this handler.
  CustodyHandler(KeeperContext& ctx, DkgHandler& dkg, ReshareHandler& reshare)
      : ctx_(ctx), dkg_(dkg), reshare_(reshare) {}

  // Info, Endorse and Activate each require the sealed-state mutex held: they read (Endorse and
  // Activate also change and save) the sealed state.
  StatusOr<nlohmann::json> Info();
  StatusOr<nlohmann::json> Endorse(const nlohmann::json& body);
  StatusOr<nlohmann::json> Activate(const nlohmann::json& body);

 private:
  KeeperContext& ctx_;
  DkgHandler& dkg_;
  ReshareHandler& reshare_;
};

}  // namespace custos::keeper
