#include "appliance/store/internal/store_rules.h"

#include <string>

namespace custos::store::internal {

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
