// KeeperService: the keeper daemon's request handling (`custos keeper serve`), a thin facade
// over one handler per protocol behind one route table (docs/architecture.md, "Keeper
// concurrency model"). Each handler checks who asks and what state allows, records releases in
// the audit log before answering, and returns a JSON error that names the failed check
// (docs/protocol.md, "Keeper API").
//
// Routes (router.h; lock: S = sealed-state mutex held, H = handler's own lock only):
//   GET  /v1/keeper, /v1/health               S  CustodyHandler::Info (identity, custody state)
//   POST /v1/dkg/round                        S  DkgHandler::Round (GJKR round 1..7)
//   POST /v1/custody/endorse                  S  CustodyHandler::Endorse
//   POST /v1/custody/activate                 S  CustodyHandler::Activate
//   POST /v1/partial                          S  PartialHandler::Partial
//   POST /v1/escrow/put                       S  EscrowHandler::Put (provider keepers)
//   POST /v1/escrow/params, /v1/escrow/get    H  EscrowHandler::Params, Get
//   POST /v1/reshare/deal|receive|finalize    S  ReshareHandler::Deal, Receive, Finalize
#pragma once

#include <cstdint>
#include <memory>

#include "keeper/daemon/custody_handler.h"
#include "keeper/daemon/dkg_handler.h"
#include "keeper/daemon/escrow_handler.h"
#include "keeper/daemon/fault_injection.h"
#include "keeper/daemon/keeper_context.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/daemon/partial_handler.h"
#include "keeper/daemon/reshare_handler.h"
#include "keeper/daemon/router.h"
#include "net/http.h"

namespace custos::keeper {

class KeeperService {
 public:
  // `store` must outlive the service. `misbehaviour` is the fault-injection test seam
  // (fault_injection.h): null in production.
  explicit KeeperService(KeeperStore& store,
                         std::shared_ptr<const Misbehaviour> misbehaviour = nullptr);
  KeeperService(const KeeperService&) = delete;
  KeeperService& operator=(const KeeperService&) = delete;

  // Handle dispatches one request; it is safe to call from several threads.
  net::HttpResponse Handle(const net::HttpRequest& req) { return router_.Handle(req); }
  // refused_by_limiter counts requests turned away for too many failures from their address.
  uint64_t refused_by_limiter() const { return router_.refused_by_limiter(); }

 private:
  std::vector<Route> Routes();

  KeeperContext ctx_;
  DkgHandler dkg_;
  ReshareHandler reshare_;
  CustodyHandler custody_;
  PartialHandler partial_;
  EscrowHandler escrow_;
  Router router_;  // last: its routes call the handlers above
};

}  // namespace custos::keeper
