// Keepers witness the appliance's KMS audit chain (docs/protocol.md "Audit witness"): a keeper
// records the core-signed heads it has seen and refuses to release to an appliance whose chain
// went backwards (a database restored from an older copy, truncated) or forked (two different
// heads at one sequence number). This file holds the pure parts: the message a keeper signs to
// read the log, the witness state a keeper keeps, and the check of what an appliance shows
// against that state. The keeper's I/O is keeper/daemon/witness.h; the routes are the host's.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "common/status.h"
#include "crypto/ecdsa.h"
#include "protocol/audit/chain.h"

namespace custos::audit {

// Reading the log: a keeper signs each GET with its identity key (custody.json lists it):
//   "custos/v1/audit-read" || var(keeper id) || var(request target) || u64 unix time
// sent as the headers below; the appliance accepts a time within kReadSkewSeconds of its own.
inline constexpr char kReadKeeperHeader[] = "x-custos-keeper";
inline constexpr char kReadTimeHeader[] = "x-custos-time";
inline constexpr char kReadSignatureHeader[] = "x-custos-signature";
inline constexpr int64_t kReadSkewSeconds = 300;
Bytes ReadRequestMessage(std::string_view keeper_id, std::string_view target, int64_t unix_time);

// WitnessedHead is a core-signed head a keeper checked; `run` is the core run whose line
// statement came with it (empty when none did): a later head with a line statement of the
// same run extends this one without reading the records between.
struct WitnessedHead {
  uint64_t seq = 0;
  Bytes hash;
  Bytes run;
};

// WitnessState is what one keeper witnessed of the appliances of one custody (joint key Y): the
// audit public key (derived from the root key: every node and restart has the same one) and,
// per log (a node's [server] node_name, "" for a single node), the newest head it checked.
// Stored as JSON (keeper dir, witness.json):
//   {"version": 1, "custodies": {"<Y hex>": {"audit_public_key": "<hex>",
//                                            "logs": {"<log>": {"seq": N, "hash": "<hex>",
//                                                               "run": "<hex>" (optional)}}}}}
struct CustodyWitness {
  std::string audit_public_key;  // hex SEC1 compressed; empty until the first signed head
  std::map<std::string, WitnessedHead> logs;
};
struct WitnessState {
  std::map<std::string, CustodyWitness> custodies;  // by joint public key, hex
  nlohmann::json ToJson() const;
  static StatusOr<WitnessState> FromJson(const nlohmann::json& j);
};

// HeadShown is what the appliance's GET /v1/sys/audit/head answered. `line_run` and
// `line_signature` are the core's line statement for the head (chain.h LineMessage), empty when
// the appliance gave none.
struct HeadShown {
  std::string log;
  std::string audit_public_key;  // hex; empty when the core has signed nothing yet
  uint64_t seq = 0;              // 0: no signed head yet
  Bytes hash, signature;
  Bytes line_run, line_signature;
};

// RecordShown is one record of GET /v1/sys/audit/records.
struct RecordShown {
  uint64_t seq = 0;
  std::string entry;
  Bytes hash;
};

// WitnessCheck checks the appliance's own log against what the keeper witnessed of it, fed
// the records from the witnessed seq up to the shown head in order (Begin says from where).
// Every refusal is kIntegrity and names the check: "audit rollback: ...", "audit fork: ...",
// "audit chain: ...", "audit key: ...".
class WitnessCheck {
 public:
  // Begin checks the head itself: its signature under the audit key (the witnessed one, or the
  // shown one on first sight), and that it does not go back before the witnessed head.
  // Returns the seq to read records from (the witnessed seq; 0 when nothing needs reading:
  // first sight, or the head is the witnessed one).
  //
  // With a line statement (checked under the same key), a head of the same run as the
  // witnessed one is taken as extending it without reading records (ByLine()); one of the same
  // run before the witnessed head is a rollback, another hash at its seq a fork: a core never
  // signs either within a run. A head of another run, or without a line, is read as above.
  static StatusOr<WitnessCheck> Begin(const CustodyWitness& witnessed, const HeadShown& head);
  // ByLine: the head was taken on the core's line statement; the keeper still spot-checks that
  // the log holds the witnessed head's record and the new head's record (CheckRecordAt).
  bool ByLine() const { return by_line_; }
  // Recorded is the head to record once Finish succeeds (with the line's run, if any).
  WitnessedHead Recorded() const { return {head_.seq, head_.hash, head_.line_run}; }
  // NextSeq is the record Add wants next; Done says the shown head was reached.
  uint64_t NextSeq() const { return next_; }
  bool Done() const { return done_; }
  // Add checks one record (seq NextSeq()).
  Status Add(const RecordShown& r);
  // Finish: the chain reached the head (kIntegrity "audit chain: ..." if the records ended
  // before it). The witnessed head to record is then the shown one.
  Status Finish() const;

 private:
  HeadShown head_;
  std::string log_;
  std::optional<WitnessedHead> from_;  // the witnessed head, when records are checked from it
  uint64_t next_ = 0;
  Bytes prev_;
  bool done_ = false;
  bool by_line_ = false;
};

// CheckOtherLog checks a log this keeper witnessed through another node: the record at the
// witnessed seq (read from the shared database) must still be there with the same hash.
// `at` is the first record GET /v1/sys/audit/records?log=L&from=S&limit=1 returned, or null.
Status CheckOtherLog(const std::string& log, const WitnessedHead& witnessed, const RecordShown* at);

// CheckRecordAt checks, for a head taken by line, that the log itself holds the record of a
// signed head with its hash: `at` is the first record GET /v1/sys/audit/records?from=SEQ&limit=1
// returned, or null. Refusals as CheckOtherLog ("audit rollback: ..." / "audit fork: ...").
Status CheckRecordAt(const std::string& log, const WitnessedHead& head, const RecordShown* at);

}  // namespace custos::audit
