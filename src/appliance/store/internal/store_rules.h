// The checks every Store backend makes before it touches its database, and the refusals they
// share, so that a call is refused the same way, with the same message, whichever backend runs
// (store.h states the rules). Nothing here is part of the Store contract.
#pragma once
#include <cstdint>
#include <limits>
#include <vector>

#include "appliance/store/store.h"
#include "common/bytes.h"
#include "common/status.h"

namespace custos::store::internal {

// kMaxAuditSeq is the largest audit seq a backend can store (both keep seqs as signed 64-bit
// integers).
inline constexpr uint64_t kMaxAuditSeq = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// NotFoundIn is "store: <op>: <what> not found" (kNotFound).
Status NotFoundIn(const char* op, const char* what);

// CheckVersionOfKey refuses (kInvalidArgument) a version whose key_id is not the record's.
Status CheckVersionOfKey(const char* op, const KeyRecord& key, const KeyVersion& version);

// CheckNewKey is CreateKey's check: the version belongs to the record, and the record's
// current_version is the version's number.
Status CheckNewKey(const KeyRecord& key, const KeyVersion& first_version);

// CurrentVersionMissing is the refusal of a record whose current_version names no stored
// version of the key (kInvalidArgument).
Status CurrentVersionMissing(const char* op);

// CheckAuditBatch refuses a non-empty batch with a seq of 0 or above kMaxAuditSeq
// (kInvalidArgument) or whose seqs are not consecutive (kFailedPrecondition). Continuity with
// the stored log is the backend's to check, inside its write transaction.
Status CheckAuditBatch(const std::vector<AuditRecord>& records);

// AuditNotNext is AppendAudit's refusal of a batch that does not start right after `last`.
Status AuditNotNext(uint64_t first, uint64_t last);

// CheckAuditSignature refuses SignAudit's arguments when the seq is out of range or the
// signature is empty (kInvalidArgument).
Status CheckAuditSignature(uint64_t seq, ByteSpan signature);

// AuditSignedAlready is SignAudit's refusal of a record that has a signature.
Status AuditSignedAlready(uint64_t seq);

}  // namespace custos::store::internal
