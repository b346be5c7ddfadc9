#include "cli/audit_commands.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <iostream>
#include <optional>

#include "common/file.h"
#include "protocol/audit/verify.h"
#include "protocol/audit/witness.h"
#include "crypto/ecdsa.h"
#include "appliance/host/appliance.h"
#include "appliance/store/store.h"

namespace custos::cli {

namespace {

// kPageSize bounds the records held in memory at once.
constexpr size_t kPageSize = 4096;

// VerifyLog runs one audit log through a ChainVerifier under `key`.
StatusOr<audit::AuditReport> VerifyLog(store::Store& store, std::string_view log,
                                       const crypto::VerifyingKey& key,
                                       const std::optional<audit::Head>& expected_head) {
  audit::ChainVerifier verifier(key);
  if (expected_head) verifier.ExpectHead(*expected_head);
  uint64_t next = 1;
  bool going = true;
  while (going) {
    ASSIGN_OR_RETURN(std::vector<store::AuditRecord> page, store.ReadAuditLog(log, next, kPageSize));
    if (page.empty()) break;
    for (const store::AuditRecord& r : page) {
      going = verifier.Add(r.seq, r.entry, r.hash, r.signature);
      if (!going) break;
    }
    // Continue after the last record read, whatever its seq: a gap is the verifier's to report.
    next = page.back().seq + 1;
    if (next == 0) break;  // seq at the top of the range: nothing can follow
  }
  return verifier.Finish();
}

// AuditKey is the key to verify under: --public-key, else the one the database records (with a
// warning); nullopt when the database records none.
StatusOr<std::optional<crypto::VerifyingKey>> AuditKey(store::Store& store, const std::string& flag_hex,
                                                      std::ostream& err) {
  std::string key_hex = flag_hex;
  if (key_hex.empty()) {
    StatusOr<std::string> stored = store.GetMeta("audit_public_key");
    if (!stored.ok() && stored.status().code() == ErrorCode::kNotFound)
      return std::optional<crypto::VerifyingKey>();
    if (!stored.ok()) return stored.status();
    key_hex = *stored;
    // Whoever could rewrite the log could also have replaced this key with their own.
    err << "warning: the audit public key was read from the database being verified; pin it "
           "with --public-key (\"audit_public_key\" in `custos operator status`)\n";
  }
  StatusOr<Bytes> key_bytes = HexDecode(key_hex);
  if (!key_bytes.ok()) return InvalidArgument("audit public key: not hex");
  StatusOr<crypto::VerifyingKey> key = crypto::VerifyingKey::Decode(*key_bytes);
  if (!key.ok()) return key.status().WithContext("audit public key");
  return std::optional<crypto::VerifyingKey>(std::move(key).value());
}

// Witnessed is what --witness pins: the audit key a keeper witnessed and its heads by log.
struct Witnessed {
  std::string key_hex;
  std::map<std::string, audit::Head> heads;
};

// LoadWitnessed reads a keeper's witness.json; of its custodies, the one whose audit key the
// database records (or the only one).
StatusOr<Witnessed> LoadWitnessed(const std::string& path, store::Store& store) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(path + ": not JSON");
  StatusOr<audit::WitnessState> state = audit::WitnessState::FromJson(j);
  if (!state.ok()) return state.status().WithContext(path);
  StatusOr<std::string> stored = store.GetMeta("audit_public_key");
  const audit::CustodyWitness* chosen = nullptr;
  for (const auto& [y, c] : state->custodies)
    if ((stored.ok() && c.audit_public_key == *stored) || state->custodies.size() == 1) chosen = &c;
  if (chosen == nullptr || chosen->audit_public_key.empty())
    return IntegrityError(path + " holds no witnessed head under the database's audit key " +
                          (stored.ok() ? *stored : std::string("(none)")) +
                          ": another root key, a forged log, or a keeper that never witnessed this appliance");
  Witnessed w;
  w.key_hex = chosen->audit_public_key;
  for (const auto& [log, head] : chosen->logs) w.heads[log] = audit::Head{head.seq, head.hash};
  return w;
}

// VerifyCluster: `audit verify --store-url`: every node's log of a shared database.
Status VerifyCluster(const AuditVerifyFlags& flags, const std::optional<audit::Head>& expected_head,
                     std::ostream& out, std::ostream& err) {
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store, store::OpenStore(flags.store_url));
  std::optional<Witnessed> witnessed;
  std::string key_flag = flags.public_key;
  if (!flags.witness.empty()) {
    ASSIGN_OR_RETURN(witnessed, LoadWitnessed(flags.witness, *store));
    if (!key_flag.empty() && key_flag != witnessed->key_hex)
      return InvalidArgument("--public-key differs from the audit key the keeper witnessed");
    key_flag = witnessed->key_hex;
  }
  const bool key_from_database = key_flag.empty();
  ASSIGN_OR_RETURN(std::optional<crypto::VerifyingKey> key, AuditKey(*store, key_flag, err));
  if (!key) return NotFound("the database names no audit public key: give --public-key");
  std::vector<std::string> logs;
  if (!flags.log.empty()) {
    logs.push_back(flags.log);
  } else {
    ASSIGN_OR_RETURN(logs, store->ListAuditLogs());
    // A log the keeper witnessed must be there, even if the database no longer has a record of it.
    if (witnessed)
      for (const auto& [log, head] : witnessed->heads)
        if (std::find(logs.begin(), logs.end(), log) == logs.end()) logs.push_back(log);
  }
  if (expected_head && logs.size() != 1)
    return InvalidArgument("--expect-head names one log's head: give --log");
  nlohmann::json reports = nlohmann::json::array();
  std::string first_failure;
  for (const std::string& log : logs) {
    std::optional<audit::Head> expect = expected_head;
    if (witnessed && witnessed->heads.count(log)) expect = witnessed->heads[log];
    ASSIGN_OR_RETURN(audit::AuditReport report, VerifyLog(*store, log, *key, expect));
    nlohmann::json j = report.ToJson();
    j["log"] = log;
    reports.push_back(std::move(j));
    if (!report.intact && first_failure.empty()) first_failure = "log " + log + ": " + report.failure;
  }
  nlohmann::json j{{"intact", first_failure.empty()},
                   {"logs", std::move(reports)},
                   {"public_key", HexEncode(key->Encode())},
                   {"public_key_from", key_from_database ? "database" : witnessed ? "--witness" : "--public-key"}};
  out << j.dump(2) << "\n";
  if (!first_failure.empty()) return IntegrityError("audit log: " + first_failure);
  return Status::Ok();
}

}  // namespace

Status AuditVerify(const AuditVerifyFlags& flags, std::ostream& out, std::ostream& err) {
  if (!flags.store_url.empty() || !flags.log.empty()) {
    if (flags.store_url.empty()) return InvalidArgument("--log needs --store-url");
    if (!flags.data_dir.empty()) return InvalidArgument("give --data-dir or --store-url, not both");
    std::optional<audit::Head> expected_head;
    if (!flags.expect_head.empty()) {
      StatusOr<audit::Head> head = audit::ParseHead(flags.expect_head);
      if (!head.ok()) return head.status().WithContext("--expect-head");
      expected_head = std::move(head).value();
    }
    return VerifyCluster(flags, expected_head, out, err);
  }
  if (flags.data_dir.empty()) return InvalidArgument("give --data-dir (or --store-url)");
  std::string db_path = flags.data_dir + "/" + std::string(host::kDatabaseFile);
  std::error_code ec;
  // The directory dev.env names (CUSTOS_DATA_DIR) holds the appliance's data in server/.
  std::string dev_path = flags.data_dir + "/server/" + std::string(host::kDatabaseFile);
  if (!std::filesystem::is_regular_file(db_path, ec) && std::filesystem::is_regular_file(dev_path, ec))
    db_path = dev_path;
  if (!std::filesystem::is_regular_file(db_path, ec))
    return NotFound("no database at " + db_path + " (give the appliance's data_dir, or the dev mode directory)");
  std::optional<audit::Head> expected_head;
  if (!flags.expect_head.empty()) {
    StatusOr<audit::Head> head = audit::ParseHead(flags.expect_head);
    if (!head.ok()) return head.status().WithContext("--expect-head");
    expected_head = std::move(head).value();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<store::Store> store, store::OpenSqliteStore(db_path));
  std::string key_flag = flags.public_key;
  std::string log_name;  // a single node's log: "" unless its [server] node_name names it
  bool key_from_witness = false;
  if (!flags.witness.empty()) {
    ASSIGN_OR_RETURN(Witnessed witnessed, LoadWitnessed(flags.witness, *store));
    if (!key_flag.empty() && key_flag != witnessed.key_hex)
      return InvalidArgument("--public-key differs from the audit key the keeper witnessed");
    key_flag = witnessed.key_hex;
    key_from_witness = true;
    // A single node's log: the one the keeper witnessed (named by [server] node_name, or "").
    if (witnessed.heads.size() > 1)
      return InvalidArgument(flags.witness + " holds heads of several logs: verify the cluster with --store-url");
    if (!witnessed.heads.empty()) {
      if (expected_head) return InvalidArgument("give --expect-head or --witness, not both");
      log_name = witnessed.heads.begin()->first;
      expected_head = witnessed.heads.begin()->second;
    }
  }
  const bool key_from_database = key_flag.empty();
  ASSIGN_OR_RETURN(std::optional<crypto::VerifyingKey> key, AuditKey(*store, key_flag, err));
  if (!key) {
    // No key is recorded until the core signs the first batch: a log with no entry yet is
    // intact, and says so.
    ASSIGN_OR_RETURN(std::vector<store::AuditRecord> first, store->ReadAudit(1, 1));
    if (!first.empty()) return NotFound("the database names no audit public key: give --public-key");
    out << nlohmann::json{{"intact", true}, {"entries", 0}, {"database", db_path},
                          {"note", "the audit log is empty: nothing to verify yet"}}.dump(2)
        << "\n";
    return Status::Ok();
  }

  ASSIGN_OR_RETURN(audit::AuditReport report, VerifyLog(*store, log_name, *key, expected_head));

  nlohmann::json j = report.ToJson();
  j["database"] = db_path;
  j["public_key"] = HexEncode(key->Encode());
  j["public_key_from"] = key_from_database ? "database" : key_from_witness ? "--witness" : "--public-key";
  out << j.dump(2) << "\n";
  if (!report.intact) return IntegrityError("audit log: " + report.failure);
  return Status::Ok();
}

void AddAuditCommands(CLI::App& app, std::function<void(Status)> run) {
  // The flags live as long as `app` (they are captured by the callback).
  static AuditVerifyFlags flags;
  flags = {};  // Main may run more than once in a process (tests)
  auto* audit_cmd = app.add_subcommand("audit", "the appliance's KMS audit log")->require_subcommand(1);
  auto* verify = audit_cmd->add_subcommand(
      "verify", "verify the hash chain and the core's signatures; prints a JSON report");
  // Exactly one database: a node's data_dir or a cluster's shared one (a usage error otherwise).
  auto* where = verify->add_option_group("database", "the log to verify: exactly one of");
  where->add_option("--data-dir", flags.data_dir, "the appliance's data_dir (holds custos.db)");
  where->add_option("--store-url", flags.store_url,
                    "a cluster's shared PostgreSQL database ([store] url): every node's log is "
                    "verified");
  where->require_option(1);
  verify->add_option("--log", flags.log, "with --store-url: only this node's log ([server] node_name)");
  verify->add_option("--public-key", flags.public_key,
                     "audit public key, hex (\"audit_public_key\" in `custos operator status`); "
                     "default: the one stored in the database");
  verify->add_option("--expect-head", flags.expect_head,
                     "SEQ:HASH from an earlier verify: the log must still hold this head");
  verify->add_option("--witness", flags.witness,
                     "a keeper's witness.json (its directory): verify under the audit key it witnessed, and every "
                     "log must still hold the head it witnessed (catches a database restored from an older copy)");
  verify->callback([run] { run(AuditVerify(flags, std::cout, std::cerr)); });
}

}  // namespace custos::cli
