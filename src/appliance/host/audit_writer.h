// The KMS audit log's writer on the host (docs/audit.md; audit/chain.h has the chain). Every
// KMS request appends one entry and is answered only once that entry is stored and covered by
// a signature of the trusted core: a request that cannot be audited fails (AWS-style "the
// audit log could not be written"), it is never served unaudited.
//
// Group commit: request threads queue their entries and block; one writer thread takes what
// is queued (a bounded batch), has the core extend the chain and sign the new head (ecall
// kAuditAppend through the injected BatchSigner), recomputes the entries' hashes itself and
// refuses a head that differs from its own, stores the batch in one Store transaction (the
// signature on the batch's last record), and then wakes the batch's threads. One fsync and one
// signature thus cover as many requests as arrived during the previous commit.
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

// BatchSigner extends the core's chain with `entries` after `anchor` and signs the new head:
// the host wires it to ecall kAuditAppend (its contract in ecall/ecall.h). The anchor is
// empty for the first batch of an empty log, else EncodeHead(seq, hash) || signature of the
// newest stored record. Called from the writer thread only, one batch at a time.
using BatchSigner = std::function<StatusOr<SignedHead>(ByteSpan anchor,
                                                       const std::vector<std::string>& entries)>;

// kMaxAuditEntryBytes bounds one serialised entry (an entry is a few hundred bytes; the bound
// keeps any batch inside one ecall frame).
inline constexpr size_t kMaxAuditEntryBytes = 16 << 10;

struct AuditWriterOptions {
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
  // by U+FFFD) and blocks until the batch it joined is stored and signed. Thread-safe; called
  // by every request thread. Errors: kInvalidArgument for an entry that is not an object or
  // is larger than kMaxAuditEntryBytes; kUnavailable "audit log could not be written: ..."
  // when the core refused to sign or the store failed (every entry of that batch gets it and
  // none is stored); kFailedPrecondition after Stop. A failure does not stop the writer: the
  // next batch is tried afresh from the last stored head (e.g. once the core is unsealed).
  Status Append(const nlohmann::json& entry);
  // Append of the request path's entry (audit::Entry, docs/audit.md "Entries").
  Status Append(const audit::Entry& entry);

  // Stop refuses new entries, commits every queued one (their Append calls return as usual),
  // and joins the writer thread. Idempotent.
  void Stop();

  // head returns the newest stored (seq, hash); seq 0 for an empty log.
  audit::Head head() const;

 private:
  // Batch is the entries of one group commit and, once done, its result.
  struct Batch {
    std::vector<std::string> entries;
    size_t bytes = 0;
    bool done = false;
    Status result;
    std::condition_variable done_cv;
  };

  AuditWriter(store::Store& store, BatchSigner signer, AuditWriterOptions options,
              uint64_t seq, Bytes hash, Bytes anchor);
  void Run();
  // Commit signs and stores one batch and advances the chain state; its entries are consumed.
  Status Commit(std::vector<std::string>& entries);

  store::Store& store_;
  const BatchSigner signer_;
  const AuditWriterOptions options_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::shared_ptr<Batch> open_;                // being filled (null when none)
  std::deque<std::shared_ptr<Batch>> closed_;  // full, waiting for the writer thread
  bool stopping_ = false;
  audit::Head head_;  // guarded by mu_ for head(); written only by the writer thread

  // Writer-thread state: the anchor of the next batch.
  Bytes anchor_;

  std::mutex stop_mu_;  // serialises Stop's join
  std::thread thread_;
};

}  // namespace custos::host
