#include "keeper/daemon/audit_log.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "common/file.h"
#include "common/log.h"
#include "crypto/hash.h"

namespace custos::keeper {

using nlohmann::json;

namespace {

std::string NowRfc3339() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms.count()));
  return out;
}

Bytes EntryHash(uint64_t seq, const std::string& time, const std::string& event,
                const json& details, ByteSpan prev) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/audit")).U64(seq).Var(time).Var(event).Var(details.dump()).Raw(prev);
  return crypto::Sha256Bytes(w.bytes());
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

// CheckEntry verifies one parsed entry against the expected seq/prev; returns its hash.
StatusOr<Bytes> CheckEntry(const json& e, uint64_t seq, ByteSpan prev,
                           const crypto::VerifyingKey* key) {
  if (!e.is_object() || !e.contains("seq") || !e["seq"].is_number_unsigned() ||
      !e.contains("time") || !e["time"].is_string() || !e.contains("event") ||
      !e["event"].is_string() || !e.contains("details") || !e.contains("prev") ||
      !e["prev"].is_string() || !e.contains("hash") || !e["hash"].is_string() ||
      !e.contains("sig") || !e["sig"].is_string())
    return IntegrityError("malformed entry");
  if (e["seq"].get<uint64_t>() != seq)
    return IntegrityError("sequence number " + std::to_string(e["seq"].get<uint64_t>()) +
                          " where " + std::to_string(seq) +
                          " was expected (entry deleted, "
                          "inserted or reordered)");
  if (e["prev"].get<std::string>() != HexEncode(prev))
    return IntegrityError("previous-hash link broken (entry deleted, inserted or reordered)");
  Bytes h = EntryHash(seq, e["time"], e["event"], e["details"], prev);
  if (e["hash"].get<std::string>() != HexEncode(h))
    return IntegrityError("entry hash mismatch (entry edited)");
  if (key != nullptr) {
    auto sig = HexDecode(e["sig"].get<std::string>());
    if (!sig.ok() || !key->Verify(h, *sig).ok()) return IntegrityError("entry signature invalid");
  }
  return h;
}

}  // namespace

StatusOr<AuditSync> ParseAuditSync(std::string_view name) {
  if (name == "request") return AuditSync::kRequest;
  if (name == "group") return AuditSync::kGroup;
  return InvalidArgument("audit sync must be 'request' or 'group'");
}

AuditLog::AuditLog(std::string path, const crypto::SigningKey* signer, uint64_t next_seq,
                   Bytes prev)
    : path_(std::move(path)),
      signer_(signer),
      next_seq_(next_seq),
      prev_(std::move(prev)),
      durable_seq_(next_seq) {}

AuditLog::~AuditLog() {
  StopFlusher();
  std::unique_lock<std::mutex> lock(mu_);
  if (durable_seq_ < next_seq_ && !SyncLocked(lock).ok())
    Log("error", "keeper", "the audit log could not be synced at shutdown");
}

Status AuditLog::SetSync(const AuditSyncOptions& options) {
  if (options.group_window < std::chrono::milliseconds(1) ||
      options.group_window > kMaxAuditGroupWindow)
    return InvalidArgument("audit group-commit window must be 1.." +
                           std::to_string(kMaxAuditGroupWindow.count()) + " ms");
  if (options.mode == AuditSync::kRequest) {
    StopFlusher();
    std::unique_lock<std::mutex> lock(mu_);
    sync_ = options;
    // From now on every answer waits for the disk: so must the entries already written.
    return durable_seq_ < next_seq_ ? SyncLocked(lock) : Status::Ok();
  }
  std::lock_guard<std::mutex> lock(mu_);
  sync_ = options;
  if (!flusher_.joinable()) {
    stop_flusher_ = false;
    flusher_ = std::thread([this] { FlusherLoop(); });
  }
  return Status::Ok();
}

AuditSyncOptions AuditLog::sync_options() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sync_;
}

void AuditLog::StopFlusher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_flusher_ = true;
  }
  flusher_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
}

void AuditLog::FlusherLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    flusher_cv_.wait(lock, [this] { return stop_flusher_ || durable_seq_ < next_seq_; });
    if (durable_seq_ < next_seq_) {
      // Gather the entries written until the oldest pending one is a window old, then one
      // fsync covers them all. Stopping syncs at once.
      flusher_cv_.wait_until(lock, oldest_unsynced_ + sync_.group_window,
                             [this] { return stop_flusher_; });
      if (durable_seq_ < next_seq_) {
        Status st = SyncLocked(lock);
        if (!st.ok() && sync_error_.ok()) {
          sync_error_ = st;
          Log("error", "keeper", "audit log fsync failed: refusing every further audited request");
        }
      }
    }
    if (stop_flusher_) return;
  }
}

Status AuditLog::SyncLocked(std::unique_lock<std::mutex>& lock) {
  // Every entry below `target` was written (Append writes under mu_). The fsync runs without
  // mu_, so appends go on meanwhile; fsync of any descriptor flushes the whole file.
  uint64_t target = next_seq_;
  lock.unlock();
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  lock.lock();
  if (!ok) return Unavailable("cannot fsync the audit log");
  durable_seq_ = std::max(durable_seq_, target);
  return Status::Ok();
}

Status AuditLog::Flush() {
  std::unique_lock<std::mutex> lock(mu_);
  if (!sync_error_.ok()) return sync_error_;
  return durable_seq_ < next_seq_ ? SyncLocked(lock) : Status::Ok();
}

StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(const std::string& path,
                                                   const crypto::SigningKey* signer) {
  uint64_t next = 0;
  Bytes prev(32, 0);
  if (FileExists(path)) {
    // A torn final line is an append that never returned (so was never acknowledged): drop it.
    ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
    if (!text.empty() && text.back() != '\n') {
      size_t keep = text.rfind('\n');
      keep = keep == std::string::npos ? 0 : keep + 1;
      if (::truncate(path.c_str(), static_cast<off_t>(keep)) != 0)
        return Unavailable("cannot drop the torn last line of the audit log");
      Log("warn", "keeper", "dropped a torn, unacknowledged last line of the audit log");
    }
    auto report = Verify(path, signer->verifying_key());
    if (!report.ok()) return report.status().WithContext("audit log " + path + " does not verify");
    next = report->entries;
    if (report->entries > 0) {
      ASSIGN_OR_RETURN(prev, HexDecode(report->head));
    }
  }
  auto log = std::unique_ptr<AuditLog>(new AuditLog(path, signer, next, std::move(prev)));
  struct stat st;
  log->known_size_ = ::stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return log;
}

Status AuditLog::Append(const std::string& event, const json& details, AuditWait wait) {
  std::unique_lock<std::mutex> lock(mu_);
  // A failed group fsync may have lost entries already answered for: answer nothing more.
  if (!sync_error_.ok())
    return Unavailable("the audit log cannot be synced to disk: " + sync_error_.message());
  const bool grouped = wait == AuditWait::kPerPolicy && sync_.mode == AuditSync::kGroup;
  // Several processes may append to one keeper's log (the daemon, and `keeper allow` or
  // `escrow export` run beside it): an exclusive flock serialises them, and the tail is re-read
  // whenever the file grew behind our back so the chain continues from the real last entry.
  int fd = ::open(path_.c_str(), O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Unavailable("cannot open audit log: " + std::string(std::strerror(errno)));
  if (::flock(fd, LOCK_EX) != 0) {
    ::close(fd);
    return Unavailable("cannot lock audit log");
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Unavailable("cannot stat audit log");
  }
  if (static_cast<uint64_t>(st.st_size) != known_size_) {
    auto entries = ReadEntries(path_);
    if (!entries.ok() || entries->empty() || !entries->back().contains("hash")) {
      ::close(fd);
      return IntegrityError("audit log changed and its last entry cannot be read");
    }
    const json& last = entries->back();
    auto prev = HexDecode(last["hash"].get<std::string>());
    auto sig = HexDecode(last.value("sig", ""));
    // Chain only onto an entry this keeper signed (another custos process of the same keeper).
    if (!prev.ok() || !sig.ok() || !last["seq"].is_number_unsigned() ||
        !signer_->verifying_key().Verify(*prev, *sig).ok()) {
      ::close(fd);
      return IntegrityError("audit log changed and its last entry is not signed by this keeper");
    }
    // Another process's entries are durable (it appended with fsync); ours before them were
    // written and wait for the flusher like any other.
    if (durable_seq_ == next_seq_) durable_seq_ = last["seq"].get<uint64_t>() + 1;
    next_seq_ = last["seq"].get<uint64_t>() + 1;
    prev_ = *prev;
  }
  std::string time = NowRfc3339();
  Bytes h = EntryHash(next_seq_, time, event, details, prev_);
  json e = {{"seq", next_seq_},
            {"time", time},
            {"event", event},
            {"details", details},
            {"prev", HexEncode(prev_)},
            {"hash", HexEncode(h)},
            {"sig", HexEncode(signer_->Sign(h))}};
  std::string line = e.dump() + "\n";
  ssize_t n = ::write(fd, line.data(), line.size());
  bool ok = n == static_cast<ssize_t>(line.size()) && (grouped || ::fsync(fd) == 0);
  if (!ok) {
    // Leave no fragment behind: the entry was not acknowledged.
    (void)::ftruncate(fd, st.st_size);
    ::close(fd);
    return Unavailable("cannot append to audit log");
  }
  ::close(fd);  // releases the lock
  if (next_seq_ == 0) RETURN_IF_ERROR(FsyncDirectory(std::filesystem::path(path_).parent_path()));
  known_size_ = static_cast<uint64_t>(st.st_size) + line.size();
  if (grouped) {
    // Only the first pending entry wakes the flusher: it then waits out the window and syncs
    // whatever was written meanwhile (a wake-up per append would cost a context switch each).
    const bool first_pending = durable_seq_ == next_seq_;
    if (first_pending) oldest_unsynced_ = std::chrono::steady_clock::now();
    next_seq_++;
    if (first_pending) flusher_cv_.notify_all();
  } else {
    next_seq_++;
    durable_seq_ = next_seq_;  // this fsync covered every entry written before it too
  }
  prev_ = std::move(h);
  return Status::Ok();
}

uint64_t AuditLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return next_seq_;
}

uint64_t AuditLog::durable_size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return durable_seq_;
}

StatusOr<AuditLog::VerifyReport> AuditLog::Verify(const std::string& path,
                                                  const crypto::VerifyingKey& key) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  if (!text.empty() && text.back() != '\n')
    return IntegrityError("ends with a partial line (torn write)")
        .WithContext("audit log line " + std::to_string(SplitLines(text).size()));
  Bytes prev(32, 0);
  VerifyReport r;
  uint64_t seq = 0;
  for (const std::string& line : SplitLines(text)) {
    json e = json::parse(line, nullptr, false);
    auto h = CheckEntry(e, seq, prev, &key);
    if (!h.ok()) return h.status().WithContext("audit log line " + std::to_string(seq + 1));
    prev = *h;
    seq++;
  }
  r.entries = seq;
  r.head = HexEncode(prev);
  return r;
}

StatusOr<std::vector<json>> AuditLog::ReadEntries(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  std::vector<json> out;
  for (const std::string& line : SplitLines(text)) {
    json e = json::parse(line, nullptr, false);
    if (e.is_discarded()) return IntegrityError("audit log has a line that is not JSON");
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace custos::keeper
