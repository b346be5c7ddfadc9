#include "keeper/daemon/keeper_service.h"

#include <utility>

namespace custos::keeper {

using nlohmann::json;

KeeperService::KeeperService(KeeperStore& store, std::shared_ptr<const Misbehaviour> misbehaviour)
    : ctx_(store, std::move(misbehaviour)),
      dkg_(ctx_),
      reshare_(ctx_),
      custody_(ctx_, dkg_, reshare_),
      partial_(ctx_),
      escrow_(ctx_),
      router_(store.id(), ctx_.sealed_state_mu(), Routes()) {}

// Routes is the keeper's route table: one row per operation.
std::vector<Route> KeeperService::Routes() {
  using L = Route::Lock;
  auto info = [this](const json&) { return custody_.Info(); };
  return {
      {"GET", "/v1/keeper", L::kSealedState, info},
      {"GET", "/v1/health", L::kSealedState, info},
      {"POST", "/v1/dkg/round", L::kSealedState, [this](const json& b) { return dkg_.Round(b); }},
      {"POST", "/v1/custody/endorse", L::kSealedState,
       [this](const json& b) { return custody_.Endorse(b); }},
      {"POST", "/v1/custody/activate", L::kSealedState,
       [this](const json& b) { return custody_.Activate(b); }},
      {"POST", "/v1/partial", L::kSealedState,
       [this](const json& b) { return partial_.Partial(b); }},
      {"POST", "/v1/escrow/put", L::kSealedState, [this](const json& b) { return escrow_.Put(b); }},
      {"POST", "/v1/escrow/params", L::kHandler,
       [this](const json& b) { return escrow_.Params(b); }},
      {"POST", "/v1/escrow/get", L::kHandler, [this](const json& b) { return escrow_.Get(b); }},
      {"POST", "/v1/reshare/deal", L::kSealedState,
       [this](const json& b) { return reshare_.Deal(b); }},
      {"POST", "/v1/reshare/receive", L::kSealedState,
       [this](const json& b) { return reshare_.Receive(b); }},
      {"POST", "/v1/reshare/finalize", L::kSealedState,
       [this](const json& b) { return reshare_.Finalize(b); }},
  };
}

}  // namespace custos::keeper
