#include "appliance/host/audit_writer.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "net/fiber.h"

#include <ctime>
#include <utility>

namespace custos::host {

namespace {

constexpr char kAuditKeyMeta[] = "audit_public_key";
// While the core cannot sign or the store does not take a signature, the signer tries again
// this often.
constexpr auto kSignRetry = std::chrono::milliseconds(200);


Status CouldNotWrite(const Status& cause) {
  return Unavailable("audit log could not be written: " + cause.message());
}

}  // namespace


StatusOr<std::unique_ptr<AuditWriter>> AuditWriter::Start(store::Store& store,
                                                          BatchSigner signer,
                                                          AuditWriterOptions options) {
  if (!signer) return InvalidArgument("audit writer: no signer");
  if (options.max_batch_entries == 0 || options.max_batch_bytes < kMaxAuditEntryBytes ||
      options.max_batch_bytes > (512u << 10))
    return InvalidArgument("audit writer: batch bounds out of range");
  if (options.sync_window < std::chrono::milliseconds(1) || options.max_unsigned_entries == 0)
    return InvalidArgument("audit writer: sync window or unsigned bound out of range");
  if (options.sync_delay.count() < 0 || options.sign_delay.count() < 0 ||
      options.sync_delay >= options.sync_window || options.sign_delay >= options.sync_window)
    return InvalidArgument("audit writer: sync or sign delay not within [0, sync window)");
  if (options.audit_key) {
    std::string key_hex = HexEncode(options.audit_key->Encode());
    StatusOr<std::string> stored = store.GetMeta(kAuditKeyMeta);
    if (!stored.ok() && stored.status().code() != ErrorCode::kNotFound) return stored.status();
    if (!stored.ok()) {
      RETURN_IF_ERROR(store.PutMeta(kAuditKeyMeta, key_hex));
    } else if (*stored != key_hex) {
      return FailedPrecondition(
          "audit: this database's audit log belongs to another audit key (another root key)");
    }
  }

  // The newest signed record anchors the chain; what follows it (the tail a process wrote
  // before dying, group commit) must chain from it and is signed by the first SignPending.
  ASSIGN_OR_RETURN(store::AuditRecord last_signed, store.LastSignedAudit());
  audit::Head head{0, audit::GenesisHash()};
  Bytes anchor;
  if (last_signed.seq != 0) {
    if (last_signed.hash.size() != audit::kHashSize ||
        last_signed.signature.size() != crypto::kSignatureSize)
      return FailedPrecondition("audit: the newest signed entry (seq " +
                                std::to_string(last_signed.seq) +
                                ") has a malformed hash or signature");
    if (options.audit_key &&
        !options.audit_key
             ->Verify(audit::CheckpointMessage(last_signed.seq, last_signed.hash),
                      last_signed.signature)
             .ok())
      return FailedPrecondition("audit: the newest signed entry's signature (seq " +
                                std::to_string(last_signed.seq) +
                                ") does not verify under the audit key");
    head = {last_signed.seq, last_signed.hash};
    anchor = Concat({audit::EncodeHead(last_signed.seq, last_signed.hash), last_signed.signature});
  }
  std::deque<std::string> tail;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<store::AuditRecord> page, store.ReadAudit(head.seq + 1, 1000));
    if (page.empty()) break;
    for (store::AuditRecord& r : page) {
      Bytes hash = audit::EntryHash(head.hash, head.seq + 1, r.entry);
      if (r.seq != head.seq + 1 || r.hash != hash)
        return FailedPrecondition(
            "audit: the unsigned entry seq " + std::to_string(r.seq) +
            " does not chain from the newest signed one (seq " + std::to_string(last_signed.seq) +
            "): it was not written by custos; run `custos audit verify`");
      head = {r.seq, std::move(hash)};
      tail.push_back(std::move(r.entry));
    }
  }
  if (!tail.empty()) {
    // Said in the chain itself: these entries were written by a process that died before the
    // core signed them, and are signed now as found.
    audit::Entry recovery;
    recovery.request_id = "audit-recovery";
    recovery.operation = "AuditRecovery";
    recovery.outcome = "seq " + std::to_string(head.seq - tail.size() + 1) + " to " +
                       std::to_string(head.seq) + " signed at restart";
    std::string text = recovery.ToJson().dump(-1, ' ', false,
                                              nlohmann::json::error_handler_t::replace);
    Bytes hash = audit::EntryHash(head.hash, head.seq + 1, text);
    RETURN_IF_ERROR(store.AppendAudit({store::AuditRecord{head.seq + 1, text, hash, {}}},
                                      store::Durability::kDurable));
    head = {head.seq + 1, std::move(hash)};
    tail.push_back(std::move(text));
  }
  std::unique_ptr<AuditWriter> writer(new AuditWriter(
      store, std::move(signer), std::move(options), std::move(head), std::move(anchor),
      std::move(tail)));
  writer->signed_seq_ = last_signed.seq;
  writer->signature_durable_ = {last_signed.seq, last_signed.hash, last_signed.signature};
  writer->signature_written_ = writer->signature_durable_;
  writer->durable_seq_ = writer->head_.seq;  // what was found is as durable as it will get
  if (!writer->pending_.empty()) writer->oldest_unsigned_ = Clock::now();
  writer->thread_ = std::thread([w = writer.get()] { w->RunSigner(); });
  if (writer->options_.sync == AuditSync::kGroup)
    writer->syncer_ = std::thread([w = writer.get()] { w->RunSyncer(); });
  return writer;
}

AuditWriter::AuditWriter(store::Store& store, BatchSigner signer, AuditWriterOptions options,
                         audit::Head head, Bytes anchor, std::deque<std::string> unsigned_tail)
    : store_(store),
      signer_(std::move(signer)),
      options_(std::move(options)),
      head_(std::move(head)),
      unsigned_count_(unsigned_tail.size()),
      anchor_(std::move(anchor)),
      pending_(std::move(unsigned_tail)) {}

AuditWriter::~AuditWriter() { Stop(); }

Status AuditWriter::Append(const nlohmann::json& entry, bool durable) {
  if (!entry.is_object()) return InvalidArgument("audit: an entry must be a JSON object");
  // Serialised here, in the request's thread, so the writer thread only hashes and stores.
  // nlohmann's objects are ordered maps: dump() sorts keys. Replacing invalid UTF-8 (a
  // client-chosen key id, say) keeps dump() from throwing.
  return AppendText(entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace), durable);
}

Status AuditWriter::AppendText(std::string text, bool durable) {
  if (text.size() > kMaxAuditEntryBytes)
    return InvalidArgument("audit: entry larger than " + std::to_string(kMaxAuditEntryBytes) +
                           " bytes");
  if (!durable && options_.sync == AuditSync::kGroup && net::fiber::SuspendAllowed())
    return AppendFromFiber(std::move(text));
  std::vector<std::string> texts;
  texts.push_back(std::move(text));
  return AppendTexts(texts, durable);
}

namespace {

// The entries the fibers of one I/O thread appended since its last flush, and the fibers
// waiting for them (AppendFromFiber).
struct FiberWaiter {
  net::fiber::Fiber* fiber;
  Status result = Status::Ok();
};
struct FiberQueue {
  const AuditWriter* writer = nullptr;
  std::vector<std::string> texts;
  std::vector<FiberWaiter*> waiters;
  bool posted = false;
};
thread_local std::vector<FiberQueue> fiber_queues;

FiberQueue& QueueFor(const AuditWriter* writer) {
  for (FiberQueue& q : fiber_queues)
    if (q.writer == writer) return q;
  fiber_queues.push_back(FiberQueue{writer, {}, {}, false});
  return fiber_queues.back();
}

}  // namespace

Status AuditWriter::AppendFromFiber(std::string text) {
  // The first entry of a round of the thread's event loop posts the flush; the others of that
  // round join it. The flush runs after the handlers already queued (the requests that came in
  // together), so their entries share one write.
  net::fiber::Fiber* self = net::fiber::Current();
  FiberQueue& queue = QueueFor(this);
  FiberWaiter waiter{self};
  queue.texts.push_back(std::move(text));
  queue.waiters.push_back(&waiter);
  if (!queue.posted) {
    queue.posted = true;
    boost::asio::post(net::fiber::ContextOf(self), [this] { FlushFiberQueue(); });
  }
  net::fiber::Suspend();
  return waiter.result;
}

void AuditWriter::FlushFiberQueue() {
  FiberQueue& queue = QueueFor(this);
  std::vector<std::string> texts;
  std::vector<FiberWaiter*> waiters;
  texts.swap(queue.texts);
  waiters.swap(queue.waiters);
  queue.posted = false;
  Status result = AppendTexts(texts, false);
  for (FiberWaiter* w : waiters) {
    w->result = result;
    net::fiber::Resume(w->fiber);
  }
}

Status AuditWriter::AppendTexts(std::vector<std::string>& texts, bool durable) {
  std::unique_lock lock(mu_);
  if (stopping_) return FailedPrecondition("audit log could not be written: writer stopped");
  if (unsigned_count_ >= options_.max_unsigned_entries)
    return Unavailable("audit log could not be written: " + std::to_string(unsigned_count_) +
                       " entries wait for the trusted core's signature");
  std::vector<std::shared_ptr<Batch>> joined;
  for (std::string& text : texts) {
    if (!open_ || open_->entries.size() >= options_.max_batch_entries ||
        open_->bytes + text.size() > options_.max_batch_bytes) {
      if (open_) closed_.push_back(std::move(open_));
      open_ = std::make_shared<Batch>();
    }
    open_->bytes += text.size();
    open_->entries.push_back(std::move(text));
    if (joined.empty() || joined.back() != open_) joined.push_back(open_);
  }
  Status result = Status::Ok();
  uint64_t last_seq = 0;
  for (const std::shared_ptr<Batch>& batch : joined) {
    // The first appender that finds its batch at the head of the queue with no write running
    // writes it; everyone else in the batch waits for that write.
    batch->done_cv.wait(lock, [&] { return batch->done || (!writing_ && IsHead(batch)); });
    if (!batch->done) {
      if (closed_.empty()) {
        open_.reset();
      } else {
        closed_.pop_front();
      }
      writing_ = true;
      lock.unlock();
      Lead(batch);
      lock.lock();
    }
    if (!batch->result.ok() && result.ok()) result = batch->result;
    last_seq = std::max(last_seq, batch->last_seq);
  }
  if (!result.ok() || options_.sync == AuditSync::kRequest) return result;
  const bool window_passed =
      oldest_undurable_ && Clock::now() - *oldest_undurable_ > options_.sync_window;
  if (durable || window_passed) return WaitDurable(lock, last_seq);
  return Status::Ok();
}

bool AuditWriter::IsHead(const std::shared_ptr<Batch>& batch) const {
  return closed_.empty() ? open_ == batch : closed_.front() == batch;
}

void AuditWriter::Lead(const std::shared_ptr<Batch>& batch) {
  uint64_t last_seq = 0;
  Status result = options_.sync == AuditSync::kGroup ? Write(batch->entries, &last_seq)
                                                     : Commit(batch->entries, &last_seq);
  std::shared_ptr<Batch> next;
  {
    std::lock_guard lock(mu_);
    batch->result = std::move(result);
    batch->last_seq = last_seq;
    batch->done = true;
    writing_ = false;
    if (!closed_.empty()) {
      next = closed_.front();
    } else {
      next = open_;
    }
  }
  batch->done_cv.notify_all();
  if (next) next->done_cv.notify_all();  // one of its appenders leads it
  idle_cv_.notify_all();
}

Status AuditWriter::Append(const audit::Entry& entry, bool durable) {
  return AppendText(entry.ToText(), durable);
}

Status AuditWriter::WaitDurable(std::unique_lock<std::mutex>& lock, uint64_t seq) {
  const uint64_t failures_before = sync_failures_;
  ++durable_waiters_;
  sync_cv_.notify_one();  // the syncer must not delay for someone who waits
  durable_cv_.wait(lock, [&] {
    return durable_seq_ >= seq || sync_failures_ != failures_before || syncer_done_;
  });
  --durable_waiters_;
  if (durable_seq_ >= seq) return Status::Ok();
  if (!sync_error_.ok()) return CouldNotWrite(sync_error_);
  return FailedPrecondition("audit log could not be written: writer stopped before the fsync");
}

void AuditWriter::RunSigner() {
  const bool group = options_.sync == AuditSync::kGroup;
  std::optional<Clock::time_point> sign_failed_at;  // set while the core cannot sign
  for (;;) {
    bool stopping = false;
    {
      std::unique_lock lock(mu_);
      for (;;) {
        // Stopping: once the last leader is done, what is pending is signed one last time.
        stopping = stopping_ && !open_ && closed_.empty() && !writing_;
        if (stopping || (pending_.empty() && !signature_unstored_)) {
          if (stopping) break;
          work_cv_.wait(lock);
          continue;
        }
        // Something to sign: when a batch's worth waits, after sign_delay from the oldest
        // unsigned write, and while the core refuses, every kSignRetry.
        // A signature the store did not take alone is stored again at the next retry.
        Clock::time_point due = oldest_unsigned_ ? *oldest_unsigned_ + options_.sign_delay
                                                 : Clock::time_point::min();
        if (pending_.size() >= options_.max_batch_entries) due = Clock::now();
        if (sign_failed_at) due = std::max(due, *sign_failed_at + kSignRetry);
        if (Clock::now() >= due) break;
        work_cv_.wait_until(lock, due);
      }
    }
    if (!group && !stopping) {
      // kRequest: leaders sign their own batches; only a tail found at start is left here.
      std::lock_guard sign_lock(sign_mu_);
      bool has_tail;
      {
        std::lock_guard lock(mu_);
        has_tail = !pending_.empty() || signature_unstored_;
      }
      if (has_tail) (void)SignPending(store::Durability::kDurable);
      std::lock_guard lock(mu_);
      if (!pending_.empty() || signature_unstored_) sign_failed_at = Clock::now();
      continue;
    }
    {
      std::lock_guard sign_lock(sign_mu_);
      Status signed_ok =
          SignPending(group ? store::Durability::kWritten : store::Durability::kDurable);
      if (signed_ok.ok()) {
        sign_failed_at.reset();
      } else {
        sign_failed_at = Clock::now();
      }
    }
    if (stopping) break;
  }
  // Stopping: everything queued is written and signed as far as the core allows; the syncer
  // makes it durable before it exits.
  std::lock_guard lock(mu_);
  syncer_stop_ = true;
  sync_cv_.notify_all();
}

void AuditWriter::RunSyncer() {
  std::unique_lock lock(mu_);
  for (;;) {
    sync_cv_.wait(lock, [&] { return dirty_ || syncer_stop_; });
    if (!dirty_) break;  // stopping, and everything written is durable
    // Let writes gather for sync_delay after the oldest unsynced one, unless a request waits
    // for this fsync or the writer stops.
    if (oldest_since_sync_ && durable_waiters_ == 0 && !syncer_stop_) {
      const Clock::time_point due = *oldest_since_sync_ + options_.sync_delay;
      if (Clock::now() < due) {
        sync_cv_.wait_until(lock, due, [&] { return durable_waiters_ > 0 || syncer_stop_; });
      }
    }
    const uint64_t target = head_.seq;
    const SignedRecordHead signature_covered = signature_written_;
    dirty_ = false;
    oldest_since_sync_.reset();
    lock.unlock();
    Status synced = store_.SyncAudit();
    lock.lock();
    if (synced.ok()) {
      durable_seq_ = std::max(durable_seq_, target);
      if (signature_covered.seq > signature_durable_.seq) signature_durable_ = signature_covered;
      oldest_undurable_ = oldest_since_sync_;
      sync_error_ = Status::Ok();
    } else {
      dirty_ = true;
      sync_error_ = std::move(synced);
      ++sync_failures_;
    }
    durable_cv_.notify_all();
    if (!synced.ok() && !syncer_stop_) {
      // A failing disk: do not spin; appenders that must wait have their error already.
      durable_cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }
  syncer_done_ = true;
  lock.unlock();
  durable_cv_.notify_all();
}

std::vector<store::AuditRecord> AuditWriter::ChainAfterHead(
    const std::vector<std::string>& entries) const {
  std::vector<store::AuditRecord> records(entries.size());
  Bytes hash = head_.hash;
  uint64_t seq = head_.seq;
  for (size_t i = 0; i < entries.size(); ++i) {
    hash = audit::EntryHash(hash, ++seq, entries[i]);
    records[i].seq = seq;
    records[i].hash = hash;
    records[i].entry = entries[i];
  }
  return records;
}

Status AuditWriter::Write(std::vector<std::string>& entries, uint64_t* last_seq) {
  if (!unsettled_.empty()) {
    Status settled = Settle();
    if (!settled.ok()) return CouldNotWrite(settled);
  }
  std::vector<store::AuditRecord> records = ChainAfterHead(entries);
  Status stored = store_.AppendAudit(records, store::Durability::kWritten);
  if (!stored.ok()) {
    unsettled_ = std::move(records);
    return CouldNotWrite(stored);
  }
  *last_seq = records.back().seq;
  Adopt(records);
  return Status::Ok();
}

Status AuditWriter::Settle() {
  ASSIGN_OR_RETURN(store::AuditRecord last, store_.LastAudit());
  const store::AuditRecord& tried = unsettled_.back();
  uint64_t head_seq;
  {
    std::lock_guard lock(mu_);
    head_seq = head_.seq;
  }
  if (last.seq == tried.seq && last.hash == tried.hash) {
    // Stored after all: the failure was reported after the commit.
    Adopt(unsettled_);
  } else if (last.seq == head_seq) {
    // Not stored. A kRequest batch was signed by the core, whose chain now includes it: it
    // must be stored before anything can follow it.
    if (options_.sync == AuditSync::kRequest) {
      RETURN_IF_ERROR(store_.AppendAudit(unsettled_, store::Durability::kDurable));
      Adopt(unsettled_);
    }
  } else {
    return FailedPrecondition("audit: the stored log ends at seq " + std::to_string(last.seq) +
                              ", neither at the host's head (seq " + std::to_string(head_seq) +
                              ") nor at its last write (seq " + std::to_string(tried.seq) +
                              "): another writer appended to it; run `custos audit verify`");
  }
  unsettled_.clear();
  return Status::Ok();
}

void AuditWriter::Adopt(std::vector<store::AuditRecord>& records) {
  std::lock_guard lock(mu_);
  head_.seq = records.back().seq;
  head_.hash = records.back().hash;
  if (options_.sync == AuditSync::kRequest) {
    signed_seq_ = head_.seq;
    durable_seq_ = head_.seq;
    NoteSignatureStored({head_.seq, head_.hash, records.back().signature}, store::Durability::kDurable);
    return;
  }
  for (store::AuditRecord& r : records) pending_.push_back(std::move(r.entry));
  unsigned_count_ = pending_.size();
  auto now = Clock::now();
  // The signer and the syncer are woken only when their wait changes (a first unsigned entry,
  // a full batch, a first unsynced write): the rest they find when their delay ends, so a
  // request costs them no wake-up.
  if (!oldest_unsigned_) {
    oldest_unsigned_ = now;
    work_cv_.notify_one();
  } else if (pending_.size() >= options_.max_batch_entries) {
    work_cv_.notify_one();
  }
  if (!oldest_undurable_) oldest_undurable_ = now;
  if (!oldest_since_sync_) oldest_since_sync_ = now;
  if (!dirty_) {
    dirty_ = true;
    sync_cv_.notify_one();
  }
}

Status AuditWriter::CheckSignedHead(const SignedHead& signed_head, uint64_t seq,
                                    const Bytes& hash) const {
  StatusOr<audit::Head> head = audit::DecodeHead(signed_head.head);
  if (!head.ok()) return CouldNotWrite(head.status());
  if (head->seq != seq || head->hash != hash)
    return CouldNotWrite(IntegrityError("the core signed head seq " + std::to_string(head->seq) +
                                        ", not the host's chain head seq " + std::to_string(seq)));
  if (signed_head.signature.size() != crypto::kSignatureSize)
    return CouldNotWrite(IntegrityError("the core's head signature is not 64 bytes"));
  if (options_.audit_key &&
      !options_.audit_key->Verify(audit::CheckpointMessage(seq, hash), signed_head.signature).ok())
    return CouldNotWrite(IntegrityError("the core's head signature does not verify"));
  return Status::Ok();
}

Status AuditWriter::SignPending(store::Durability durability) {
  if (unstored_signature_) {
    const SignedRecordHead& u = *unstored_signature_;
    Status stored = store_.SignAudit(u.seq, u.signature, durability);
    if (!stored.ok()) {
      // A retried call whose first attempt committed finds the record signed already.
      StatusOr<store::AuditRecord> last_signed = store_.LastSignedAudit();
      if (!last_signed.ok() || last_signed->seq < u.seq) return CouldNotWrite(stored);
    }
    std::lock_guard lock(mu_);
    NoteSignatureStored(*unstored_signature_, durability);
    unstored_signature_.reset();
    signature_unstored_ = false;
    if (durability == store::Durability::kWritten && !dirty_) {
      dirty_ = true;
      if (!oldest_since_sync_) oldest_since_sync_ = Clock::now();
      sync_cv_.notify_one();
    }
  }
  for (;;) {
    // One step: as many entries as fit one batch's bounds (one ecall frame), copied under mu_
    // (leaders append to pending_ meanwhile; only this caller, under sign_mu_, removes).
    std::vector<std::string> step;
    uint64_t signed_seq;
    {
      std::lock_guard lock(mu_);
      size_t bytes = 0;
      while (step.size() < pending_.size() && step.size() < options_.max_batch_entries &&
             bytes + pending_[step.size()].size() <= options_.max_batch_bytes) {
        bytes += pending_[step.size()].size();
        step.push_back(pending_[step.size()]);
      }
      signed_seq = signed_seq_;
    }
    if (step.empty()) return Status::Ok();
    StatusOr<SignedHead> signed_head = signer_(anchor_, step);
    if (!signed_head.ok()) return CouldNotWrite(signed_head.status());
    // The chain head after `step`, recomputed from the entries: the core must have signed it.
    Bytes hash = anchor_.empty() ? audit::GenesisHash()
                                 : Bytes(anchor_.begin() + 8, anchor_.begin() + 8 + audit::kHashSize);
    uint64_t seq = signed_seq;
    for (const std::string& e : step) hash = audit::EntryHash(hash, ++seq, e);
    RETURN_IF_ERROR(CheckSignedHead(*signed_head, seq, hash));
    // The core now accepts only this head as the next anchor: the step counts as signed even
    // if the store does not take the signature (it is kept and stored again).
    anchor_ = Concat({signed_head->head, signed_head->signature});
    Status stored = store_.SignAudit(seq, signed_head->signature, durability);
    std::lock_guard lock(mu_);
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<ptrdiff_t>(step.size()));
    if (pending_.empty()) {
      oldest_unsigned_.reset();
    } else {
      oldest_unsigned_ = Clock::now();  // the rest waits at most one more delay
    }
    signed_seq_ = seq;
    unsigned_count_ = pending_.size();
    if (!stored.ok()) {
      unstored_signature_ = SignedRecordHead{seq, hash, signed_head->signature};
      signature_unstored_ = true;
      return CouldNotWrite(stored);
    }
    NoteSignatureStored({seq, hash, signed_head->signature}, durability);
    if (durability == store::Durability::kWritten) {
      if (!oldest_since_sync_) oldest_since_sync_ = Clock::now();
      if (!dirty_) {
        dirty_ = true;
        sync_cv_.notify_one();
      }
    }
  }
}

Status AuditWriter::Commit(std::vector<std::string>& entries, uint64_t* last_seq) {
  std::lock_guard sign_lock(sign_mu_);
  // An unsigned tail found at start is signed first, on its own anchor.
  RETURN_IF_ERROR(SignPending(store::Durability::kDurable));
  if (!unsettled_.empty()) {
    Status settled = Settle();
    if (!settled.ok()) return CouldNotWrite(settled);
  }
  StatusOr<SignedHead> signed_head = signer_(anchor_, entries);
  if (!signed_head.ok()) return CouldNotWrite(signed_head.status());

  // The host computes the hashes itself: what it stores must be the chain the core signed,
  // and a core (or a wiring bug) that signed anything else is caught here, not by a later
  // verify.
  std::vector<store::AuditRecord> records = ChainAfterHead(entries);
  const uint64_t seq = records.back().seq;
  Bytes hash = records.back().hash;
  RETURN_IF_ERROR(CheckSignedHead(*signed_head, seq, hash));
  records.back().signature = signed_head->signature;
  // The core's chain includes these entries now, stored or not: the next batch is anchored on
  // its head, and a batch the store did not take is settled (stored) first.
  anchor_ = Concat({signed_head->head, signed_head->signature});
  Status stored = store_.AppendAudit(records, store::Durability::kDurable);
  if (!stored.ok()) {
    unsettled_ = std::move(records);
    return CouldNotWrite(stored);
  }
  *last_seq = seq;
  Adopt(records);
  return Status::Ok();
}

void AuditWriter::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::unique_lock lock(mu_);
    stopping_ = true;
    // Appends already queued finish as usual: their leaders write them.
    idle_cv_.wait(lock, [&] { return !open_ && closed_.empty() && !writing_; });
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (syncer_.joinable()) syncer_.join();
}

void AuditWriter::NoteSignatureStored(const SignedRecordHead& head, store::Durability durability) {
  if (head.seq > signature_written_.seq) signature_written_ = head;
  if (durability == store::Durability::kDurable && head.seq > signature_durable_.seq) signature_durable_ = head;
}

bool AuditWriter::WaitSettled(std::chrono::milliseconds timeout) const {
  const Clock::time_point deadline = Clock::now() + timeout;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (signature_durable_.seq == head_.seq) return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

SignedRecordHead AuditWriter::WitnessHead() const {
  std::lock_guard lock(mu_);
  return signature_durable_;
}

audit::Head AuditWriter::head() const {
  std::lock_guard lock(mu_);
  return head_;
}

AuditWriter::Progress AuditWriter::progress() const {
  std::lock_guard lock(mu_);
  return {head_.seq, signed_seq_, durable_seq_};
}

}  // namespace custos::host
