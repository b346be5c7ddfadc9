// Append-only, hash-chained, signed audit log (docs/protocol.md, "Audit log").
//
// One JSON object per line:
//   {"seq":N,"time":"RFC3339","event":"...","details":{...},"prev":"hex","hash":"hex","sig":"hex"}
// hash = SHA-256("custos/v1/audit" || u64 seq || var(time) || var(event) || var(details JSON,
//        serialized with sorted keys) || prev), prev of the first entry = 32 zero bytes;
// sig  = ECDSA P-256 over hash by the log owner's identity key.
// An entry is written (write(2): it survives the death of any process) before Append returns,
// and the caller answers only afterwards. It is on disk (fsync) before Append returns too,
// except for appends that ask for the log's sync policy (client partial releases) while the
// policy is group commit (AuditSync::kGroup, docs/threat-model.md "Keeper audit durability").
// Entries never contain secrets: callers pass identifiers, fingerprints and hashes only.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/bytes.h"
#include "crypto/ecdsa.h"

namespace custos::keeper {

// AuditSync is when an entry appended under the log's policy reaches the disk.
//   kRequest: fsync before Append returns (each answer waits for the disk).
//   kGroup:   written before Append returns; a background flusher fsyncs every entry at most
//             `group_window` after it was written, one fsync for all entries written meanwhile.
//             A power loss (not a process crash) can lose the entries of the last window.
enum class AuditSync { kRequest, kGroup };
inline constexpr std::chrono::milliseconds kMaxAuditGroupWindow{10};
struct AuditSyncOptions {
  AuditSync mode = AuditSync::kRequest;
  std::chrono::milliseconds group_window = kMaxAuditGroupWindow;  // 1..kMaxAuditGroupWindow
};
// ParseAuditSync reads "request" or "group" (the `--audit-sync` flag).
StatusOr<AuditSync> ParseAuditSync(std::string_view name);

// AuditWait says what one Append waits for.
enum class AuditWait {
  kDurable,    // the entry is fsync'd before Append returns, whatever the policy
  kPerPolicy,  // as the log's AuditSyncOptions say (used for client partial releases)
};

class AuditLog {
 public:
  // Open reads and verifies the existing log at `path` (creating it if absent) so new entries
  // chain onto the last verified one. Fails if the existing log does not verify.
  static StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                  const crypto::SigningKey* signer);
  ~AuditLog();  // stops the flusher after a last fsync of what it had not synced yet

  // SetSync changes the sync policy (the default is kRequest); kInvalidArgument for a group
  // window outside 1..kMaxAuditGroupWindow. Starts or stops the flusher thread.
  Status SetSync(const AuditSyncOptions& options);
  AuditSyncOptions sync_options() const;

  // Append writes one entry and, as `wait` says, fsyncs it. Thread-safe. Once a group fsync
  // has failed, every later Append fails (kUnavailable): nothing is released that the log
  // might not keep.
  Status Append(const std::string& event, const nlohmann::json& details,
                AuditWait wait = AuditWait::kDurable);
  // Flush fsyncs every entry written so far (a no-op when none is pending).
  Status Flush();
  uint64_t size() const;
  // durable_size is how many entries are known to be on disk (== size() under kRequest).
  uint64_t durable_size() const;

  struct VerifyReport {
    uint64_t entries = 0;
    std::string head;  // hex hash of the last entry
  };
  // Verify checks every hash link, sequence number and signature of the log at `path`.
  // The error names the first bad line.
  static StatusOr<VerifyReport> Verify(const std::string& path, const crypto::VerifyingKey& key);
  // ReadEntries returns the parsed entries (for rebuilding replay caches).
  static StatusOr<std::vector<nlohmann::json>> ReadEntries(const std::string& path);

 private:
  AuditLog(std::string path, const crypto::SigningKey* signer, uint64_t next_seq, Bytes prev);
  void FlusherLoop();
  // SyncLocked fsyncs the file and marks everything written so far durable. Requires mu_.
  Status SyncLocked(std::unique_lock<std::mutex>& lock);
  void StopFlusher();

  std::string path_;
  const crypto::SigningKey* signer_;
  mutable std::mutex mu_;
  uint64_t next_seq_;
  Bytes prev_;
  uint64_t known_size_ = 0;  // file size after our last append; a change means another writer
  // Group commit (guarded by mu_).
  AuditSyncOptions sync_;
  uint64_t durable_seq_;  // entries [0, durable_seq_) are known to be on disk
  std::chrono::steady_clock::time_point oldest_unsynced_;  // meaningful while any is pending
  Status sync_error_;                                      // the first failed group fsync; sticky
  bool stop_flusher_ = false;
  std::condition_variable flusher_cv_;
  std::thread flusher_;
};

}  // namespace custos::keeper
