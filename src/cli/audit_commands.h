// `custos audit verify`: offline verification of an appliance's KMS audit log (docs/audit.md
// "Verifying").
#pragma once

#include <functional>
#include <ostream>
#include <string>

#include "CLI/CLI.hpp"
#include "common/status.h"

namespace custos::cli {

// AddAuditCommands registers `audit verify`. Its callback hands its Status to `run`.
void AddAuditCommands(CLI::App& app, std::function<void(Status)> run);

// AuditVerifyFlags are `audit verify`'s options.
struct AuditVerifyFlags {
  std::string data_dir;     // the appliance's data_dir (holds custos.db)
  std::string public_key;   // hex SEC1 audit public key; empty: the database's own meta value
  std::string expect_head;  // "SEQ:HASH" printed by an earlier verify; empty: none
  std::string store_url = {};  // instead of data_dir: a cluster's shared database ([store] url)
  std::string log = {};        // with store_url: verify only this node's log (default: every log)
  std::string witness = {};    // a keeper's witness.json: its audit key and its witnessed heads
};

// AuditVerify reads every record of data_dir/custos.db in pages, verifies the chain
// (audit/verify.h) and prints the JSON report on `out`; warnings go to `err`. Returns OK when
// the log is intact, kIntegrity with the first failure otherwise, another error when the
// database or the key cannot be read. The database must exist (it is never created here).
// With store_url, every node's log in the shared database (or the one named by `log`) is
// verified on its own under the same key, and the report lists them under "logs"; the result
// is OK only when every one is intact. With witness (a keeper's DIR/witness.json), the audit key
// is the one the keeper witnessed and every log must still hold the head the keeper witnessed
// (a log the keeper witnessed that the database lacks is a failure too).
Status AuditVerify(const AuditVerifyFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace custos::cli
