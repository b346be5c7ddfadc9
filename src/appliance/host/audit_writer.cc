#include "appliance/host/audit_writer.h"

#include <ctime>
#include <utility>

namespace custos::host {

namespace {

constexpr char kAuditKeyMeta[] = "audit_public_key";


Status CouldNotWrite(const Status& cause) {
  return Unavailable("audit log could not be written: " + cause.message());
}

}  // namespace

Status AuditWriter::Append(const audit::Entry& entry) { return Append(entry.ToJson()); }

StatusOr<std::unique_ptr<AuditWriter>> AuditWriter::Start(store::Store& store,
                                                          BatchSigner signer,
                                                          AuditWriterOptions options) {
  if (!signer) return InvalidArgument("audit writer: no signer");
  if (options.max_batch_entries == 0 || options.max_batch_bytes < kMaxAuditEntryBytes ||
      options.max_batch_bytes > (512u << 10))
    return InvalidArgument("audit writer: batch bounds out of range");
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

  ASSIGN_OR_RETURN(store::AuditRecord last, store.LastAudit());
  Bytes hash = audit::GenesisHash();
  Bytes anchor;
  if (last.seq != 0) {
    if (last.signature.empty()) {
      ASSIGN_OR_RETURN(store::AuditRecord last_signed, store.LastSignedAudit());
      return FailedPrecondition(
          "audit: the newest entry (seq " + std::to_string(last.seq) +
          ") has no signature (the newest signed one is seq " + std::to_string(last_signed.seq) +
          "): it was not written by custos; run `custos audit verify`");
    }
    if (last.hash.size() != audit::kHashSize || last.signature.size() != crypto::kSignatureSize)
      return FailedPrecondition("audit: the newest entry (seq " + std::to_string(last.seq) +
                                ") has a malformed hash or signature");
    if (options.audit_key &&
        !options.audit_key->Verify(audit::CheckpointMessage(last.seq, last.hash), last.signature)
             .ok())
      return FailedPrecondition("audit: the newest entry's signature (seq " +
                                std::to_string(last.seq) +
                                ") does not verify under the audit key");
    hash = last.hash;
    anchor = Concat({audit::EncodeHead(last.seq, last.hash), last.signature});
  }
  std::unique_ptr<AuditWriter> writer(new AuditWriter(store, std::move(signer), std::move(options),
                                                      last.seq, std::move(hash),
                                                      std::move(anchor)));
  writer->thread_ = std::thread([w = writer.get()] { w->Run(); });
  return writer;
}

AuditWriter::AuditWriter(store::Store& store, BatchSigner signer, AuditWriterOptions options,
                         uint64_t seq, Bytes hash, Bytes anchor)
    : store_(store),
      signer_(std::move(signer)),
      options_(std::move(options)),
      anchor_(std::move(anchor)) {
  head_.seq = seq;
  head_.hash = std::move(hash);
}

AuditWriter::~AuditWriter() { Stop(); }

Status AuditWriter::Append(const nlohmann::json& entry) {
  if (!entry.is_object()) return InvalidArgument("audit: an entry must be a JSON object");
  // Serialised here, in the request's thread, so the writer thread only hashes and stores.
  // nlohmann's objects are ordered maps: dump() sorts keys. Replacing invalid UTF-8 (a
  // client-chosen key id, say) keeps dump() from throwing.
  std::string text = entry.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxAuditEntryBytes)
    return InvalidArgument("audit: entry larger than " + std::to_string(kMaxAuditEntryBytes) +
                           " bytes");
  std::unique_lock lock(mu_);
  if (stopping_) return FailedPrecondition("audit log could not be written: writer stopped");
  if (!open_ || open_->entries.size() >= options_.max_batch_entries ||
      open_->bytes + text.size() > options_.max_batch_bytes) {
    if (open_) closed_.push_back(std::move(open_));
    open_ = std::make_shared<Batch>();
  }
  std::shared_ptr<Batch> batch = open_;
  batch->bytes += text.size();
  batch->entries.push_back(std::move(text));
  work_cv_.notify_one();
  batch->done_cv.wait(lock, [&] { return batch->done; });
  return batch->result;
}

void AuditWriter::Run() {
  for (;;) {
    std::shared_ptr<Batch> batch;
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || open_ || !closed_.empty(); });
      if (!closed_.empty()) {
        batch = std::move(closed_.front());
        closed_.pop_front();
      } else if (open_) {
        batch = std::move(open_);
      } else {
        return;  // stopping, and everything queued is committed
      }
    }
    Status result = Commit(batch->entries);
    {
      std::lock_guard lock(mu_);
      batch->result = std::move(result);
      batch->done = true;
    }
    batch->done_cv.notify_all();
  }
}

Status AuditWriter::Commit(std::vector<std::string>& entries) {
  StatusOr<SignedHead> signed_head = signer_(anchor_, entries);
  if (!signed_head.ok()) return CouldNotWrite(signed_head.status());

  // The host computes the hashes itself: what it stores must be the chain the core signed,
  // and a core (or a wiring bug) that signed anything else is caught here, not by a later
  // verify.
  std::vector<store::AuditRecord> records(entries.size());
  Bytes hash = head_.hash;
  uint64_t seq = head_.seq;
  for (size_t i = 0; i < entries.size(); ++i) {
    hash = audit::EntryHash(hash, ++seq, entries[i]);
    records[i].seq = seq;
    records[i].hash = hash;
    records[i].entry = std::move(entries[i]);
  }
  StatusOr<audit::Head> head = audit::DecodeHead(signed_head->head);
  if (!head.ok()) return CouldNotWrite(head.status());
  if (head->seq != seq || head->hash != hash)
    return CouldNotWrite(IntegrityError("the core signed head seq " + std::to_string(head->seq) +
                                        ", not the host's chain head seq " + std::to_string(seq)));
  if (signed_head->signature.size() != crypto::kSignatureSize)
    return CouldNotWrite(IntegrityError("the core's head signature is not 64 bytes"));
  if (options_.audit_key &&
      !options_.audit_key->Verify(audit::CheckpointMessage(seq, hash), signed_head->signature).ok())
    return CouldNotWrite(IntegrityError("the core's head signature does not verify"));
  records.back().signature = signed_head->signature;

  Status stored = store_.AppendAudit(records);
  if (!stored.ok()) return CouldNotWrite(stored);
  anchor_ = Concat({signed_head->head, signed_head->signature});
  std::lock_guard lock(mu_);
  head_.seq = seq;
  head_.hash = std::move(hash);
  return Status::Ok();
}

void AuditWriter::Stop() {
  std::lock_guard stop_lock(stop_mu_);
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

audit::Head AuditWriter::head() const {
  std::lock_guard lock(mu_);
  return head_;
}

}  // namespace custos::host
