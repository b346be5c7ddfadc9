#include "appliance/store/internal/store_rules.h"

#include <string>

namespace custos::store::internal {

int64_t RowLimit(size_t limit) {
  return limit > kMaxAuditSeq ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(limit);
}

Status NotFoundIn(const char* op, const char* what) {
  return NotFound(std::string("store: ") + op + ": " + what + " not found");
}

Status CheckVersionOfKey(const char* op, const KeyRecord& key, const KeyVersion& version) {
  if (version.key_id == key.key_id) return Status::Ok();
  return InvalidArgument(std::string("store: ") + op +
                         ": the version's key_id is not the record's key_id");
}

Status CheckNewKey(const KeyRecord& key, const KeyVersion& first_version) {
  RETURN_IF_ERROR(CheckVersionOfKey("create key", key, first_version));
  if (key.current_version != first_version.version) {
    return InvalidArgument("store: create key: current_version is not the first version's");
  }
  return Status::Ok();
}

Status CurrentVersionMissing(const char* op) {
  return InvalidArgument(std::string("store: ") + op +
                         ": current_version names no stored version of the key");
}

Status CheckRevision(const char* op, const KeyRecord& key) {
  if (key.revision <= kMaxRevision) return Status::Ok();
  return InvalidArgument(std::string("store: ") + op + ": revision out of range");
}

Status KeyChangedSinceRead(const char* op, uint64_t stored, uint64_t read) {
  return Aborted(std::string("store: ") + op + ": the key changed since it was read (revision " +
                 std::to_string(stored) + " is stored, the record is of revision " +
                 std::to_string(read) + ")");
}

Status CheckAuditLogName(const char* op, std::string_view log) {
  constexpr size_t kMaxLength = 64;
  bool ok = log.size() <= kMaxLength;
  for (char c : log) {
    ok = ok && ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return Status::Ok();
  return InvalidArgument(std::string("store: ") + op +
                         ": an audit log name is 1 to 64 characters of [A-Za-z0-9._-]");
}

Status CheckStateChangesSince(uint64_t version, uint64_t newest, std::optional<uint64_t> oldest) {
  if (version > newest) {
    return OutOfRange("store: state changes since: version " + std::to_string(version) +
                      " is above the newest, " + std::to_string(newest) +
                      " (the database is not the one the version was read from)");
  }
  // The changes version + 1 .. newest must all be kept.
  const uint64_t first_kept = oldest.value_or(newest + 1);
  if (version < newest && version + 1 < first_kept) {
    return OutOfRange("store: state changes since: the changes after version " +
                      std::to_string(version) + " have been trimmed (the oldest kept is " +
                      std::to_string(first_kept) + ")");
  }
  return Status::Ok();
}

Status SetStateChangesKeptForTesting(Store& store, uint64_t kept) {
  auto* settings = dynamic_cast<ChangeLogSettings*>(&store);
  if (settings == nullptr || kept == 0) {
    return InvalidArgument("store: set state changes kept: not a store backend, or 0");
  }
  settings->SetStateChangesKept(kept);
  return Status::Ok();
}

Status CheckAuditBatch(const std::vector<AuditRecord>& records) {
  for (size_t i = 0; i < records.size(); ++i) {
    if (records[i].seq == 0 || records[i].seq > kMaxAuditSeq) {
      return InvalidArgument("store: append audit: seq out of range");
    }
    if (i > 0 && records[i].seq != records[i - 1].seq + 1) {
      return FailedPrecondition("store: append audit: batch seq " + std::to_string(records[i].seq) +
                                " does not follow " + std::to_string(records[i - 1].seq));
    }
  }
  return Status::Ok();
}

Status AuditNotNext(uint64_t first, uint64_t last) {
  return FailedPrecondition("store: append audit: seq " + std::to_string(first) +
                            " is not the next one (the log ends at " + std::to_string(last) + ")");
}

Status CheckAuditSignature(uint64_t seq, ByteSpan signature) {
  if (seq == 0 || seq > kMaxAuditSeq) return InvalidArgument("store: sign audit: seq out of range");
  if (signature.empty()) return InvalidArgument("store: sign audit: empty signature");
  return Status::Ok();
}

Status AuditSignedAlready(uint64_t seq) {
  return FailedPrecondition("store: sign audit: record " + std::to_string(seq) +
                            " is signed already");
}

}  // namespace custos::store::internal
