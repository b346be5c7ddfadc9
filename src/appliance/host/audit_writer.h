// The KMS audit log's writer on the host (docs/audit.md; audit/chain.h has the chain). Every
// KMS request appends one entry and is answered only once that entry is in the log: a request
// that cannot be audited fails (AWS-style "the audit log could not be written"), it is never
// served unaudited.
//
// Request threads queue their entries into the open batch; the first request of the oldest
// unwritten batch writes that batch itself (group commit by a leader, no hand-off to another
// thread): it chains the entries (the host computes their hashes) and stores them, while the
// requests that arrive meanwhile fill the next batch. A signer thread has the core sign the new
// head (ecall kAuditAppend through the injected BatchSigner; the host refuses a head that differs
// from its own) and stores the signature on the newest record. When the request is answered
// depends on AuditSync:
//   kGroup   (default) once its batch is written (write(2): it survives kill -9 of any process).
//            The signer signs behind the answers, once sign_delay has passed since the oldest
//            unsigned write (or at once when a batch's worth waits), and a syncer thread fsyncs
//            the log (group commit) once sync_delay has passed since the oldest unsynced write, or
//            at once when a request waits for it; a request that asks for durability (a
//            key-state change), or that arrives while a written entry has waited longer than
//            sync_window, waits for the fsync. So a power loss loses at most the entries
//            acknowledged within sync_window before it, and never a key-state change's entry.
//   kRequest once its batch is signed and fsynced: one signature and one fsync per batch, by the
//            batch's leader.
// A process that dies between write and signature leaves an unsigned tail; the next Start has
// the core sign it as found and appends an "audit-recovery" entry naming its range.
//
// A store call can fail without saying whether it took effect (a database connection lost at
// COMMIT, a PostgreSQL failover). Once the core has signed a head it accepts no older anchor, so
// the writer never asks it twice: a signature the store did not take is kept and stored again
// (every kSignRetry, until the store takes it or shows it took it), and a batch whose store
// failed is settled before the next one is written: read the log's end; if the batch is there
// it is adopted (its entries stay in the log, although their requests were answered with an
// error), if the log ends at the host's head it was not stored (kGroup: dropped; kRequest: the
// core signed it, so it is stored now), and any other end is another writer's: refused.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "protocol/audit/chain.h"
#include "common/bytes.h"
#include "common/status.h"
#include "crypto/ecdsa.h"
#include "appliance/store/store.h"
#include "protocol/audit/entry.h"

namespace custos::host {


// SignedHead is the trusted core's answer to kAuditAppend: the new head (u64 seq || hash) and
// the audit key's P1363 signature over audit::CheckpointMessage of it.
struct SignedHead {
  Bytes head;
  Bytes signature;
};

// SignedRecordHead is a stored record's (seq, hash) and the core's signature over it.
struct SignedRecordHead {
  uint64_t seq = 0;  // 0: none
  Bytes hash, signature;
};

// BatchSigner extends the core's chain with `entries` after `anchor` and signs the new head:
// the host wires it to ecall kAuditAppend (its contract in ecall/ecall.h). The anchor is
// empty for the first batch of an empty log, else EncodeHead(seq, hash) || signature of the
// newest stored record. Called from the writer thread only, one batch at a time.
using BatchSigner = std::function<StatusOr<SignedHead>(ByteSpan anchor,
                                                       const std::vector<std::string>& entries)>;

// kMaxAuditEntryBytes bounds one serialised entry (an entry is a few hundred bytes; the bound
// keeps any batch inside one ecall frame).
inline constexpr size_t kMaxAuditEntryBytes = 16 << 10;

// AuditSync is when an appended entry may be acknowledged (see the header comment).
enum class AuditSync { kGroup, kRequest };

struct AuditWriterOptions {
  AuditSync sync = AuditSync::kGroup;
  // kGroup: an entry written longer ago than this and not yet fsynced makes new appends wait
  // for the fsync: the bound on what a power loss can take.
  std::chrono::milliseconds sync_window{10};
  // kGroup: the syncer lets writes gather this long before an fsync nobody waits for, and the
  // signer this long before a signature (fewer fsyncs and signatures per request at low load).
  // Each must be below sync_window.
  std::chrono::microseconds sync_delay{2000};
  std::chrono::microseconds sign_delay{2000};
  // kGroup: appends are refused while this many written entries wait for the core's signature
  // (the core is sealed or gone), so memory stays bounded.
  size_t max_unsigned_entries = 100'000;
  // Batch bounds: a batch closes at this many entries or serialised bytes, whichever first.
  // max_batch_bytes is at most 512 KiB so that a batch fits one ecall frame (1 MiB).
  size_t max_batch_entries = 256;
  size_t max_batch_bytes = 512 << 10;
  // When set, the writer checks every signature the core returns with it, and records it in
  // the store's meta "audit_public_key" (hex SEC1 compressed) for `custos audit verify`, or
  // refuses to start if the store names another key.
  std::optional<crypto::VerifyingKey> audit_key;
};

class AuditWriter {
 public:
  // Start reads the newest stored records to continue the chain and starts the writer thread.
  // Refused (kFailedPrecondition) when the newest record carries no signature: a batch is
  // stored in one transaction with its signature, so such a record was written outside custos
  // (`custos audit verify` says more). `store` must outlive the writer.
  static StatusOr<std::unique_ptr<AuditWriter>> Start(store::Store& store, BatchSigner signer,
                                                      AuditWriterOptions options = {});
  // The destructor stops the writer (see Stop).
  ~AuditWriter();
  AuditWriter(const AuditWriter&) = delete;
  AuditWriter& operator=(const AuditWriter&) = delete;

  // Append queues `entry` (a JSON object, serialised with sorted keys, invalid UTF-8 replaced
  // by U+FFFD) and blocks until the batch it joined is stored (kGroup) or stored and signed
  // (kRequest); the calling thread may be the one that writes it. Thread-safe; called
  // by every request thread. Errors: kInvalidArgument for an entry that is not an object or
  // is larger than kMaxAuditEntryBytes; kUnavailable "audit log could not be written: ..."
  // when the core refused to sign or the store failed (every entry of that batch gets it and
  // none is stored); kFailedPrecondition after Stop. A failure does not stop the writer: the
  // next batch is tried afresh from the last stored head (e.g. once the core is unsealed).
  // `durable`: wait until the entry is fsynced whatever the mode (a key-state change's entry).
  Status Append(const nlohmann::json& entry, bool durable = false);
  // Append of the request path's entry (audit::Entry, docs/audit.md "Entries").
  Status Append(const audit::Entry& entry, bool durable = false);
  // From a fiber that may suspend (net/fiber.h AllowSuspend), a kGroup Append that need not be
  // durable suspends the fiber instead of blocking the thread: the entries the fibers of one
  // I/O thread append in one round of its event loop are written together, once that round's
  // ready handlers have run, and each fiber then resumes with the common result.

  // Stop refuses new entries, commits every queued one (their Append calls return as usual),
  // and joins the writer thread. Idempotent.
  void Stop();

  // head returns the newest stored (seq, hash); seq 0 for an empty log.
  audit::Head head() const;

  // Progress is how far the log is: written (stored), signed (covered by a core signature)
  // and durable (fsynced) up to these seqs.
  struct Progress {
    uint64_t written = 0, signed_ = 0, durable = 0;  // signed_: by the core
  };
  Progress progress() const;

  // WitnessHead is the newest signed head known durable (fsynced with its signature): what
  // keepers may witness (docs/protocol.md "Audit witness"). A head acknowledged but not yet
  // durable could be lost by a power cut and then look like a rollback. seq 0 when none.
  SignedRecordHead WitnessHead() const;
  // WaitSettled waits (up to `timeout`) until every entry written so far is signed and its
  // signature durable, so WitnessHead is the log's head (a clean stop's last witness). False
  // on timeout (the core cannot sign, the disk does not sync).
  bool WaitSettled(std::chrono::milliseconds timeout) const;

 private:
  using Clock = std::chrono::steady_clock;
  // AppendTexts joins serialised entries to the open batch (more batches when they do not
  // fit), leads or waits for each, and returns the first failure.
  Status AppendTexts(std::vector<std::string>& texts, bool durable);
  // AppendText appends one serialised entry (the size check, then the fiber queue or a batch).
  Status AppendText(std::string text, bool durable);
  Status AppendFromFiber(std::string text);
  void FlushFiberQueue();
  // Batch is the entries of one group commit and, once done, its result.
  struct Batch {
    std::vector<std::string> entries;
    size_t bytes = 0;
    bool done = false;
    Status result;
    uint64_t last_seq = 0;  // once done and ok: the seq of its newest entry
    std::condition_variable done_cv;
  };

  AuditWriter(store::Store& store, BatchSigner signer, AuditWriterOptions options,
              audit::Head head, Bytes anchor, std::deque<std::string> unsigned_tail);
  // RunSigner is the signer thread: it signs what the leaders wrote (kGroup) or an unsigned tail
  // found at start (kRequest).
  void RunSigner();
  void RunSyncer();
  // IsHead: `batch` is the oldest one not yet taken by a leader. Requires mu_.
  bool IsHead(const std::shared_ptr<Batch>& batch) const;
  // Lead writes `batch` (the head, taken off the queue) as its leader. Called without mu_.
  void Lead(const std::shared_ptr<Batch>& batch);
  // Write stores one batch (unsigned, kWritten) and advances the chain; kGroup.
  Status Write(std::vector<std::string>& entries, uint64_t* last_seq);
  // Commit signs and stores one batch durably; kRequest. Entries are consumed.
  Status Commit(std::vector<std::string>& entries, uint64_t* last_seq);
  // SignPending has the core sign every written, unsigned entry (in frame-sized steps) and
  // stores each step's signature with `durability`.
  Status SignPending(store::Durability durability);
  // ChainAfterHead makes the records of `entries` (non-empty) chained after head_: seq and
  // hash computed by the host. The leader only.
  std::vector<store::AuditRecord> ChainAfterHead(const std::vector<std::string>& entries) const;
  // CheckSignedHead refuses a core answer that is not a 64-byte signature over (seq, hash), the
  // host's own chain head (verified under the audit key when the writer knows it).
  Status CheckSignedHead(const SignedHead& signed_head, uint64_t seq, const Bytes& hash) const;
  // Settle resolves unsettled_, the last batch whose store failed (see the header comment).
  // The leader only; kRequest under sign_mu_.
  Status Settle();
  // Adopt makes stored `records` (chained after head_) the host's head: kGroup queues their
  // entries for the signer and the syncer, kRequest (signed, durable) moves every mark.
  void Adopt(std::vector<store::AuditRecord>& records);
  // NoteSignatureStored advances signature_written_ (and signature_durable_ for kDurable).
  // Requires mu_.
  void NoteSignatureStored(const SignedRecordHead& head, store::Durability durability);
  // WaitDurable blocks until `seq` is fsynced; an error if a sync failed meanwhile. Requires mu_.
  Status WaitDurable(std::unique_lock<std::mutex>& lock, uint64_t seq);

  store::Store& store_;
  const BatchSigner signer_;
  const AuditWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;             // the signer waits for written entries
  std::shared_ptr<Batch> open_;                // being filled (null when none)
  std::deque<std::shared_ptr<Batch>> closed_;  // full, waiting for a leader
  bool writing_ = false;                       // a leader is writing a batch
  std::condition_variable idle_cv_;            // Stop waits for the last leader
  bool stopping_ = false;
  audit::Head head_;  // guarded by mu_; written only by a leader (one at a time)
  uint64_t signed_seq_ = 0;     // guarded by mu_
  size_t unsigned_count_ = 0;   // guarded by mu_: pending_.size() for Append's bound

  // Group commit state, guarded by mu_.
  std::condition_variable sync_cv_;     // the syncer waits for writes
  std::condition_variable durable_cv_;  // appenders wait for a sync
  bool dirty_ = false;                  // a write since the running or last sync began
  bool syncer_stop_ = false;
  // Set by the syncer as it exits, after its last fsync: a waiter gives up only then, so an
  // entry the final fsync covers is never reported as lost.
  bool syncer_done_ = false;
  size_t durable_waiters_ = 0;          // appenders in WaitDurable: the syncer does not delay
  uint64_t durable_seq_ = 0;
  Status sync_error_;                   // the last sync's failure, cleared by a success
  uint64_t sync_failures_ = 0;
  std::optional<Clock::time_point> oldest_undurable_;  // the oldest write not known durable
  std::optional<Clock::time_point> oldest_since_sync_;  // the oldest write since a sync began

  // Signing state. anchor_ (head || signature of the newest signed record) is used under
  // sign_mu_ only (the signer thread, or a kRequest leader); pending_, the written entries
  // after it in order, is guarded by mu_ (leaders append, the signer takes from the front).
  std::mutex sign_mu_;
  Bytes anchor_;
  // The core's newest signature that the store has not taken yet (under sign_mu_); while it is
  // set, signature_unstored_ (guarded by mu_) keeps the signer retrying.
  std::optional<SignedRecordHead> unstored_signature_;
  bool signature_unstored_ = false;
  // A batch whose store call failed, to settle before the next write (a leader's, one at a time).
  std::vector<store::AuditRecord> unsettled_;
  std::deque<std::string> pending_;
  std::optional<Clock::time_point> oldest_unsigned_;  // guarded by mu_: when pending_ began
  // Guarded by mu_: the newest signature stored (kWritten, not known durable) and the newest
  // known durable (the syncer moves the first to the second after an fsync that covers it).
  SignedRecordHead signature_written_, signature_durable_;

  std::mutex stop_mu_;  // serialises Stop's join
  std::thread thread_;
  std::thread syncer_;
};

}  // namespace custos::host
