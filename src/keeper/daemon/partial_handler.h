// PartialHandler: partial decryption for clients (POST /v1/partial; docs/protocol.md "Partial
// decryption"). An allowlisted client's signed, fresh request for an ElGamal point R that is
// not an appliance envelope's gets this keeper's partial D_i = x_i*R with its DLEQ proof,
// sealed to the requester's HPKE key, after the release is durable in the audit log.
#pragma once

#include <nlohmann/json.hpp>

#include "keeper/daemon/keeper_context.h"

namespace custos::keeper {

class PartialHandler {
 public:
  explicit PartialHandler(KeeperContext& ctx) : ctx_(ctx) {}

  // Partial handles POST /v1/partial. Requires the sealed-state mutex held (it uses the
  // active share and custody, which endorse/activate replace). It keeps no state of its own.
  StatusOr<nlohmann::json> Partial(const nlohmann::json& body);

 private:
  KeeperContext& ctx_;
};

}  // namespace custos::keeper
