#include "protocol/audit/witness.h"

#include <utility>

namespace custos::audit {

namespace {

using nlohmann::json;

std::string Quoted(const std::string& log) { return "'" + log + "'"; }

Status Rollback(const std::string& what) { return IntegrityError("audit rollback: " + what); }
Status Fork(const std::string& what) { return IntegrityError("audit fork: " + what); }
Status Chain(const std::string& what) { return IntegrityError("audit chain: " + what); }

}  // namespace

Bytes ReadRequestMessage(std::string_view keeper_id, std::string_view target, int64_t unix_time) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/audit-read")).Var(keeper_id).Var(target).U64(static_cast<uint64_t>(unix_time));
  return w.Take();
}

json WitnessState::ToJson() const {
  json custodies_json = json::object();
  for (const auto& [y, c] : custodies) {
    json logs = json::object();
    for (const auto& [name, head] : c.logs) {
      logs[name] = {{"seq", head.seq}, {"hash", HexEncode(head.hash)}};
      if (!head.run.empty()) logs[name]["run"] = HexEncode(head.run);
    }
    custodies_json[y] = {{"audit_public_key", c.audit_public_key}, {"logs", std::move(logs)}};
  }
  return {{"version", 1}, {"custodies", std::move(custodies_json)}};
}

StatusOr<WitnessState> WitnessState::FromJson(const json& j) {
  const Status bad = InvalidArgument("witness state: malformed (expected version 1, custodies)");
  if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("custodies") || !j["custodies"].is_object())
    return bad;
  WitnessState s;
  for (const auto& [y, c] : j["custodies"].items()) {
    if (!c.is_object() || !c.contains("logs") || !c["logs"].is_object() ||
        !c.value("audit_public_key", json()).is_string())
      return bad;
    CustodyWitness w;
    w.audit_public_key = c["audit_public_key"].get<std::string>();
    for (const auto& [name, head] : c["logs"].items()) {
      if (!head.is_object() || !head.value("seq", json()).is_number_unsigned() ||
          !head.value("hash", json()).is_string())
        return bad;
      StatusOr<Bytes> hash = HexDecode(head["hash"].get<std::string>());
      if (!hash.ok() || hash->size() != kHashSize) return bad;
      Bytes run;
      if (head.contains("run")) {
        if (!head["run"].is_string()) return bad;
        StatusOr<Bytes> r = HexDecode(head["run"].get<std::string>());
        if (!r.ok() || r->size() != kRunIdSize) return bad;
        run = std::move(*r);
      }
      w.logs[name] = WitnessedHead{head["seq"].get<uint64_t>(), std::move(*hash), std::move(run)};
    }
    s.custodies[y] = std::move(w);
  }
  return s;
}

StatusOr<WitnessCheck> WitnessCheck::Begin(const CustodyWitness& witnessed, const HeadShown& head) {
  WitnessCheck c;
  c.head_ = head;
  c.log_ = Quoted(head.log);
  auto w = witnessed.logs.find(head.log);
  if (head.seq == 0) {
    if (w != witnessed.logs.end())
      return Rollback("log " + c.log_ + " has no signed head, this keeper witnessed seq " +
                      std::to_string(w->second.seq) +
                      " (the database was restored from an older copy or emptied)");
    c.done_ = true;  // nothing signed, nothing witnessed: nothing to check yet
    return c;
  }
  const std::string& key_hex =
      witnessed.audit_public_key.empty() ? head.audit_public_key : witnessed.audit_public_key;
  if (head.audit_public_key != key_hex)
    return IntegrityError("audit key: the appliance's log is signed by audit key " + head.audit_public_key +
                          ", this keeper witnessed " + key_hex +
                          " (another root key: the appliance was re-initialised, or the log is forged; "
                          "`custos keeper witness reset` once a re-initialisation is confirmed)");
  StatusOr<Bytes> key_bytes = HexDecode(key_hex);
  if (!key_bytes.ok()) return IntegrityError("audit key: not hex");
  ASSIGN_OR_RETURN(crypto::VerifyingKey key, crypto::VerifyingKey::Decode(*key_bytes));
  if (head.hash.size() != kHashSize || !key.Verify(CheckpointMessage(head.seq, head.hash), head.signature).ok())
    return IntegrityError("audit key: the signature of log " + c.log_ + "'s head seq " + std::to_string(head.seq) +
                          " does not verify under the audit key");
  if (!head.line_run.empty() &&
      (head.line_run.size() != kRunIdSize ||
       !key.Verify(LineMessage(head.line_run, head.seq, head.hash), head.line_signature).ok()))
    return IntegrityError("audit key: the line statement for log " + c.log_ + "'s head seq " +
                          std::to_string(head.seq) + " does not verify under the audit key");
  if (w == witnessed.logs.end()) {
    c.done_ = true;  // first sight of this log: its signed head is the start
    return c;
  }
  const WitnessedHead& from = w->second;
  if (!head.line_run.empty() && head.line_run == from.run) {
    // Both heads come with line statements of one core run, and a core signs only heads that
    // extend its last one within a run: the newer extends the older, no record need be read.
    if (head.seq < from.seq)
      return Rollback("log " + c.log_ + " shows head seq " + std::to_string(head.seq) + " of the core run " +
                      HexEncode(from.run) + ", before seq " + std::to_string(from.seq) +
                      " this keeper witnessed of the same run");
    if (head.seq == from.seq && head.hash != from.hash)
      return Fork("log " + c.log_ + " has hash " + HexEncode(head.hash) + " at seq " + std::to_string(from.seq) +
                  ", this keeper witnessed " + HexEncode(from.hash) + " (two different heads at one sequence number)");
    c.done_ = true;
    c.by_line_ = true;
    return c;
  }
  if (head.seq < from.seq)
    return Rollback("log " + c.log_ + " ends at signed head seq " + std::to_string(head.seq) + ", before seq " +
                    std::to_string(from.seq) +
                    " this keeper witnessed (the database was restored from an older copy, or truncated)");
  if (head.seq == from.seq) {
    if (head.hash != from.hash)
      return Fork("log " + c.log_ + " has hash " + HexEncode(head.hash) + " at seq " + std::to_string(from.seq) +
                  ", this keeper witnessed " + HexEncode(from.hash) + " (two different heads at one sequence number)");
    c.done_ = true;
    return c;
  }
  c.from_ = from;
  c.next_ = from.seq;
  return c;
}

Status WitnessCheck::Add(const RecordShown& r) {
  if (done_) return Chain("log " + log_ + ": a record after the signed head was checked");
  if (r.seq != next_) {
    if (next_ == from_->seq)
      return Rollback("log " + log_ + " has no record at seq " + std::to_string(next_) +
                      " this keeper witnessed (the database was restored from an older copy, or truncated)");
    return Chain("log " + log_ + " skips from seq " + std::to_string(next_ - 1) + " to " + std::to_string(r.seq));
  }
  if (r.seq == from_->seq) {
    if (r.hash != from_->hash)
      return Fork("log " + log_ + " has hash " + HexEncode(r.hash) + " at seq " + std::to_string(r.seq) +
                  ", this keeper witnessed " + HexEncode(from_->hash) + " (two different heads at one sequence number)");
    prev_ = r.hash;
  } else {
    Bytes h = EntryHash(prev_, r.seq, r.entry);
    if (h != r.hash)
      return Chain("log " + log_ + " record seq " + std::to_string(r.seq) +
                   " does not chain (its hash is not that of its entry after seq " + std::to_string(r.seq - 1) +
                   "): edited, inserted or reordered");
    prev_ = std::move(h);
    if (r.seq == head_.seq) {
      if (prev_ != head_.hash)
        return Chain("log " + log_ + ": the signed head seq " + std::to_string(r.seq) + " is not the chain's hash there");
      done_ = true;
    }
  }
  ++next_;
  return Status::Ok();
}

Status WitnessCheck::Finish() const {
  if (done_) return Status::Ok();
  return Chain("log " + log_ + "'s records end at seq " + std::to_string(next_ - 1) + ", before its signed head seq " +
               std::to_string(head_.seq));
}

namespace {

// CheckRecord: the record `at` (or its absence) against a head the log must hold; `missing` and
// `expected` word the refusals ("seq S this keeper witnessed", ", this keeper witnessed H").
Status CheckRecord(const std::string& log, const WitnessedHead& head, const RecordShown* at,
                   const std::string& missing, const std::string& expected) {
  if (at == nullptr || at->seq != head.seq)
    return Rollback("log " + Quoted(log) + " has no record at " + missing +
                    " (the database was restored from an older copy, or truncated)");
  if (at->hash != head.hash)
    return Fork("log " + Quoted(log) + " has hash " + HexEncode(at->hash) + " at seq " + std::to_string(at->seq) +
                expected + " (two different heads at one sequence number)");
  return Status::Ok();
}

}  // namespace

Status CheckOtherLog(const std::string& log, const WitnessedHead& witnessed, const RecordShown* at) {
  return CheckRecord(log, witnessed, at, "seq " + std::to_string(witnessed.seq) + " this keeper witnessed",
                     ", this keeper witnessed " + HexEncode(witnessed.hash));
}

Status CheckRecordAt(const std::string& log, const WitnessedHead& head, const RecordShown* at) {
  return CheckRecord(log, head, at, "its signed head seq " + std::to_string(head.seq),
                     ", its signed head there is " + HexEncode(head.hash));
}

}  // namespace custos::audit
