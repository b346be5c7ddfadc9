// The checks every Store backend makes before it touches its database, and the refusals they
// share, so that a call is refused the same way, with the same message, whichever backend runs
// (store.h states the rules). Nothing here is part of the Store contract.
#pragma once
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "appliance/store/store.h"
#include "common/bytes.h"
#include "common/status.h"

namespace custos::store::internal {

// kMaxAuditSeq is the largest audit seq a backend can store (both keep seqs as signed 64-bit
// integers).
inline constexpr uint64_t kMaxAuditSeq = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

// kMaxRevision is the largest revision UpdateKey and AddKeyVersion accept in a record: both
// backends keep revisions as signed 64-bit integers, and the stored one becomes revision + 1.
inline constexpr uint64_t kMaxRevision =
    static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - 1;

// kStateChangesKept is how many of the newest changes the change log keeps (store.h); each
// mutation trims what falls off in its own transaction.
inline constexpr uint64_t kStateChangesKept = 100000;

// RowLimit is a caller's `limit` as a SQL LIMIT (both backends take a signed 64-bit integer).
int64_t RowLimit(size_t limit);

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

// CheckRevision refuses (kInvalidArgument) a record whose revision the store could not advance.
Status CheckRevision(const char* op, const KeyRecord& key);

// KeyChangedSinceRead is UpdateKey's and AddKeyVersion's refusal of a record read at another
// revision than the stored one (kAborted: read again, retry).
Status KeyChangedSinceRead(const char* op, uint64_t stored, uint64_t read);

// CheckAuditLogName refuses (kInvalidArgument) an audit log name other than "" or 1 to 64
// characters of [A-Za-z0-9._-] (StoreOptions::audit_log, ReadAuditLog).
Status CheckAuditLogName(const char* op, std::string_view log);

// CheckStateChangesSince is StateChangesSince's judgement of `version` against the log, read
// in one snapshot: `newest` is the state version, `oldest` the oldest change kept (none if the
// log holds no change). kOutOfRange when changes after `version` were trimmed, and when
// `version` is above the newest: the log was never there (a database restored from a backup,
// or a standby promoted without the newest commits), and versions would be given out again.
// Either way the caller reloads everything.
Status CheckStateChangesSince(uint64_t version, uint64_t newest, std::optional<uint64_t> oldest);

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

// ChangeLogSettings is implemented by both backends beside Store. Tests shrink the number of
// changes one store keeps, so trimming runs through the same statements without 100,000
// writes; nothing else calls it.
class ChangeLogSettings {
 public:
  virtual ~ChangeLogSettings() = default;
  virtual void SetStateChangesKept(uint64_t kept) = 0;
};

// SetStateChangesKeptForTesting sets how many changes `store` keeps from its next mutation on
// (kInvalidArgument for 0 or a store of neither backend).
Status SetStateChangesKeptForTesting(Store& store, uint64_t kept);

}  // namespace custos::store::internal
