// The keeper's witness of the appliance's KMS audit chain (docs/protocol.md "Audit witness";
// the checks are audit/witness.h). Before every release, and on a period while the appliance
// serves, the keeper reads the appliance's newest durable signed audit head with a signed read,
// checks that it extends the head it witnessed last (every record in between is read and
// chained), that every other node's log it witnessed still holds its witnessed record, and
// then records the new head: in DIR/witness.json and, when it moved, as an "audit.witness"
// entry of its own audit log. A refusal is kIntegrity naming the check ("audit rollback: ...",
// "audit fork: ...", "audit chain: ...", "audit key: ..."), recorded as "audit.witness.refused",
// and leaves the state as it was: the keeper then releases nothing to that appliance.
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"
#include "keeper/daemon/keeper_store.h"
#include "protocol/audit/witness.h"

namespace custos::keeper {

// kWitnessFile is the witness state in the keeper's directory (audit::WitnessState as JSON).
inline constexpr char kWitnessFile[] = "witness.json";

struct WitnessOutcome {
  std::string log;        // the appliance's own log ("" for a single node)
  uint64_t seq = 0;       // the head now witnessed (0: the appliance has signed nothing yet)
  std::string hash;       // hex
  uint64_t checked = 0;   // records chained from the previous head
  bool by_line = false;   // taken on the core's line statement (same run): no record read between
  Bytes run;              // the core run of the head's line statement (empty: none given)
  bool first_sight = false;  // no earlier head of this log: its signed head is the start
  bool advanced = false;  // the witnessed head moved
};

// WitnessAppliance runs one witness of the appliance at `server_url` for the keeper's active
// custody. kUnavailable when the appliance cannot be reached; kPermissionDenied when it
// refuses the keeper's read (not in its custody); kIntegrity for a refusal of the chain.
StatusOr<WitnessOutcome> WitnessAppliance(KeeperStore& store, const std::string& server_url,
                                          const std::string& ca_file = "");

// ResetWitness forgets what this keeper witnessed for its active custody (after a deliberate
// restore of the appliance's database from a backup, or its re-initialisation): the next
// witness starts afresh from the appliance's signed head. Audited ("audit.witness.reset",
// naming the heads forgotten) before the state changes.
Status ResetWitness(KeeperStore& store, const std::string& reason);

// LoadWitnessState reads DIR/witness.json (empty state when absent).
StatusOr<audit::WitnessState> LoadWitnessState(const std::string& dir);

}  // namespace custos::keeper
