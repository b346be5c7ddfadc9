#include "client/objects/transfer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "common/wiped_buffer.h"
#include "crypto/random.h"

namespace custos::objects {

namespace {

constexpr uint64_t kMinPartSize = 5u << 20;  // S3's minimum size of every part but the last
constexpr uint64_t kMaxParts = 10'000;       // S3's maximum part count
// kRingDepth is how many sealed chunks a part's reader may hold ahead of the sender.
constexpr size_t kRingDepth = 4;

std::string Errno(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// ---- layout ----

// Layout is where an encrypted object's chunks lie.
struct Layout {
  uint64_t header_size = 0;
  uint32_t chunk_size = 0;
  uint64_t chunk_count = 0;       // >= 1
  uint64_t plaintext_length = 0;
  uint64_t body_length = 0;
  uint64_t stored_size() const { return header_size + body_length; }
  uint64_t stored_chunk() const { return uint64_t{chunk_size} + files::kStreamTagSize; }
  // ChunkStart is chunk i's offset in the stored object.
  uint64_t ChunkStart(uint64_t i) const { return header_size + i * stored_chunk(); }
  uint64_t ChunkEnd(uint64_t i) const { return std::min(ChunkStart(i) + stored_chunk(), stored_size()); }
  uint64_t PlainStart(uint64_t i) const { return i * chunk_size; }
  uint64_t PlainLength(uint64_t i) const {
    return i + 1 == chunk_count ? plaintext_length - PlainStart(i) : chunk_size;
  }
  // ChunkAt is the index of the chunk starting at stored offset `off` (header_size + k * stored_chunk).
  StatusOr<uint64_t> ChunkAt(uint64_t off) const {
    if (off < header_size || (off - header_size) % stored_chunk() != 0)
      return InternalError("transfer range does not start on a chunk boundary");
    return (off - header_size) / stored_chunk();
  }
};

StatusOr<Layout> LayoutOf(const ObjectHeader& h) {
  Layout l;
  l.header_size = h.EncodedSize();
  l.chunk_size = h.chunk_size;
  l.plaintext_length = h.plaintext_length;
  ASSIGN_OR_RETURN(l.body_length, h.BodyLength());
  ASSIGN_OR_RETURN(files::StreamLayout sl, files::StreamPlaintextLength(l.body_length, h.chunk_size));
  l.chunk_count = sl.chunk_count;
  return l;
}

// ChunksPerPart is how many whole chunks make a part of at least `part_size` bytes (and at
// least S3's minimum), growing the parts if the object would need more than kMaxParts.
uint64_t ChunksPerPart(const Layout& l, uint64_t part_size) {
  uint64_t target = std::max(part_size, kMinPartSize);
  uint64_t per = (target + l.stored_chunk() - 1) / l.stored_chunk();
  while ((l.chunk_count + per - 1) / per > kMaxParts) per *= 2;
  return per;
}

// ChunkRanges cuts chunks [first, last] into stored ranges of `per` chunks; the first range
// also carries the header when `with_header`.
std::vector<ByteRange> ChunkRanges(const Layout& l, uint64_t first, uint64_t last, uint64_t per,
                                   bool with_header) {
  std::vector<ByteRange> out;
  for (uint64_t i = first; i <= last; i += per) {
    uint64_t j = std::min(last, i + per - 1);
    uint64_t begin = (with_header && i == first) ? 0 : l.ChunkStart(i);
    out.push_back({begin, l.ChunkEnd(j) - begin});
  }
  return out;
}

// PlainRanges cuts [begin, end) into pieces of `part` bytes (one empty range for an empty span).
std::vector<ByteRange> PlainRanges(uint64_t begin, uint64_t end, uint64_t part) {
  std::vector<ByteRange> out;
  if (begin == end) return {{begin, 0}};
  uint64_t size = std::max(part, kMinPartSize);
  while ((end - begin + size - 1) / size > kMaxParts) size *= 2;
  for (uint64_t o = begin; o < end; o += size) out.push_back({o, std::min(size, end - o)});
  return out;
}

// PreadFull reads exactly buf.size() bytes at `offset`, or fails naming a short file.
Status PreadFull(int fd, std::span<uint8_t> buf, uint64_t offset) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno("read of the source file failed"));
    if (n == 0) return FailedPrecondition("the source file became shorter during the upload");
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status PwriteFull(int fd, std::span<const uint8_t> buf, uint64_t offset) {
  size_t done = 0;
  while (done < buf.size()) {
    ssize_t n = ::pwrite(fd, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(Errno("write of the destination file failed"));
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// DestinationWriter writes into a download's destination file for all of its range threads, one
// write at a time. The kernel takes the file's inode lock for each write anyway (tmpfs, ext4),
// and writers waiting for it there spin on the CPU (rwsem optimistic spinning): with four range
// threads that tripled the system time of a 1 GiB download to tmpfs (docs/benchmarks.md, issue
// 14, objects run 5). Waiting here sleeps instead; nothing is lost, the writes were serial.
class DestinationWriter {
 public:
  explicit DestinationWriter(int fd) : fd_(fd) {}
  Status Write(std::span<const uint8_t> bytes, uint64_t offset) {
    std::lock_guard lock(mu_);
    return PwriteFull(fd_, bytes, offset);
  }

 private:
  const int fd_;
  std::mutex mu_;
};

// ---- upload sources ----

// SealingBody produces one part of an encrypted object: the header (for the first part), then
// its chunks, sealed by a reader thread into a ring of kRingDepth buffers ahead of the sender.
class SealingBody : public BodySource {
 public:
  SealingBody(int fd, const Layout& layout, const files::StreamParams& params, Bytes header,
              uint64_t first_chunk, uint64_t last_chunk)
      : fd_(fd), layout_(layout), params_(params), header_(std::move(header)), first_(first_chunk),
        last_(last_chunk) {
    for (size_t i = 0; i < kRingDepth; ++i) free_.push_back(std::make_unique<WipedBuffer>(layout_.stored_chunk()));
    reader_ = std::thread([this] { ReaderLoop(); });
  }
  ~SealingBody() override {
    {
      std::lock_guard<std::mutex> g(mu_);
      cancelled_ = true;
    }
    cv_.notify_all();
    reader_.join();
  }

  StatusOr<size_t> Read(std::span<uint8_t> out) override {
    if (header_pos_ < header_.size()) {
      size_t n = std::min(out.size(), header_.size() - header_pos_);
      std::memcpy(out.data(), header_.data() + header_pos_, n);
      header_pos_ += n;
      return n;
    }
    if (current_ && current_pos_ == current_len_) {
      std::lock_guard<std::mutex> g(mu_);
      free_.push_back(std::move(current_));
      cv_.notify_all();
    }
    if (!current_) {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return !ready_.empty() || !error_.ok() || produced_all_; });
      if (!error_.ok()) return error_;
      if (ready_.empty()) return InternalError("part source read past its end");
      current_ = std::move(ready_.front().buf);
      current_len_ = ready_.front().len;
      ready_.pop_front();
      current_pos_ = 0;
    }
    size_t n = std::min(out.size(), current_len_ - current_pos_);
    std::memcpy(out.data(), current_->data() + current_pos_, n);
    current_pos_ += n;
    return n;
  }

 private:
  struct Sealed {
    std::unique_ptr<WipedBuffer> buf;
    size_t len;
  };

  void ReaderLoop() {
    auto enc = files::StreamEncryptor::CreateAt(params_, first_);
    if (!enc.ok()) return Fail(enc.status());
    for (uint64_t i = first_; i <= last_; ++i) {
      std::unique_ptr<WipedBuffer> buf;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !free_.empty() || cancelled_; });
        if (cancelled_) return;
        buf = std::move(free_.back());
        free_.pop_back();
      }
      const size_t plain = layout_.PlainLength(i);
      std::span<uint8_t> area(buf->data(), plain + files::kStreamTagSize);
      Status st = PreadFull(fd_, area.first(plain), layout_.PlainStart(i));
      // Sealed in place: the plaintext is overwritten by its ciphertext.
      if (st.ok()) st = enc->EncryptChunkInto(area.first(plain), i + 1 == layout_.chunk_count, area);
      if (!st.ok()) return Fail(st);
      {
        std::lock_guard<std::mutex> g(mu_);
        ready_.push_back({std::move(buf), area.size()});
        if (i == last_) produced_all_ = true;
      }
      cv_.notify_all();
    }
  }

  void Fail(const Status& st) {
    {
      std::lock_guard<std::mutex> g(mu_);
      error_ = st;
    }
    cv_.notify_all();
  }

  const int fd_;
  const Layout layout_;
  const files::StreamParams params_;
  const Bytes header_;
  size_t header_pos_ = 0;
  const uint64_t first_, last_;
  std::unique_ptr<WipedBuffer> current_;
  size_t current_len_ = 0, current_pos_ = 0;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<WipedBuffer>> free_;
  std::deque<Sealed> ready_;
  Status error_;
  bool produced_all_ = false;
  bool cancelled_ = false;
  std::thread reader_;  // last: started after every other member exists
};

class SealingSource : public RangeSource {
 public:
  SealingSource(int fd, const Layout& layout, const files::StreamParams& params, Bytes header)
      : fd_(fd), layout_(layout), params_(params), header_(std::move(header)) {}
  StatusOr<std::unique_ptr<BodySource>> Open(const ByteRange& range) override {
    const bool with_header = range.offset == 0;
    uint64_t body_start = with_header ? layout_.header_size : range.offset;
    ASSIGN_OR_RETURN(uint64_t first, layout_.ChunkAt(body_start));
    uint64_t last = first;
    while (layout_.ChunkEnd(last) < range.end()) ++last;
    if (layout_.ChunkEnd(last) != range.end())
      return InternalError("transfer range does not end on a chunk boundary");
    return std::unique_ptr<BodySource>(
        new SealingBody(fd_, layout_, params_, with_header ? header_ : Bytes{}, first, last));
  }

 private:
  const int fd_;
  const Layout layout_;
  const files::StreamParams params_;
  const Bytes header_;
};

class PlainBody : public BodySource {
 public:
  PlainBody(int fd, ByteRange range) : fd_(fd), pos_(range.offset), end_(range.end()) {}
  StatusOr<size_t> Read(std::span<uint8_t> out) override {
    size_t n = static_cast<size_t>(std::min<uint64_t>(out.size(), end_ - pos_));
    RETURN_IF_ERROR(PreadFull(fd_, out.first(n), pos_));
    pos_ += n;
    return n;
  }

 private:
  const int fd_;
  uint64_t pos_;
  const uint64_t end_;
};

class PlainSource : public RangeSource {
 public:
  explicit PlainSource(int fd) : fd_(fd) {}
  StatusOr<std::unique_ptr<BodySource>> Open(const ByteRange& range) override {
    return std::unique_ptr<BodySource>(new PlainBody(fd_, range));
  }

 private:
  const int fd_;
};

class InputFile {
 public:
  static StatusOr<InputFile> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return NotFound(path + ": no such file");
      return Unavailable(Errno(("cannot open " + path).c_str()));
    }
    InputFile f(fd);
    if (::fstat(fd, &f.st_) != 0) return Unavailable(Errno("fstat failed"));
    if (!S_ISREG(f.st_.st_mode)) return InvalidArgument(path + " is not a regular file");
    return f;
  }
  InputFile(InputFile&& o) noexcept : fd_(o.fd_), st_(o.st_) { o.fd_ = -1; }
  ~InputFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  int fd() const { return fd_; }
  uint64_t size() const { return static_cast<uint64_t>(st_.st_size); }
  // Unchanged reports whether size and modification time are those seen at Open.
  Status CheckUnchanged() const {
    struct stat now {};
    if (::fstat(fd_, &now) != 0) return Unavailable(Errno("fstat failed"));
    if (now.st_size != st_.st_size || now.st_mtim.tv_sec != st_.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != st_.st_mtim.tv_nsec)
      return FailedPrecondition("the source file changed during the upload; the upload was abandoned");
    return Status::Ok();
  }

 private:
  explicit InputFile(int fd) : fd_(fd) {}
  int fd_;
  struct stat st_ {};
};

// ---- download sinks ----

// DestinationFile is the download's output: an unnamed file (O_TMPFILE) in the destination's
// directory, linked in and renamed over the destination only by Commit. Where O_TMPFILE is not
// supported it falls back to a named temporary file that the destructor removes.
class DestinationFile {
 public:
  static StatusOr<std::unique_ptr<DestinationFile>> Open(const std::string& path) {
    std::filesystem::path p(path);
    std::string dir = p.parent_path().empty() ? "." : p.parent_path().string();
    auto f = std::unique_ptr<DestinationFile>(new DestinationFile(path, dir));
    f->fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (f->fd_ < 0) {
      if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
        return Unavailable(Errno(("cannot create a file in " + dir).c_str()));
      std::string tmpl = dir + "/.custos-get-XXXXXX";
      f->fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
      if (f->fd_ < 0) return Unavailable(Errno(("cannot create a file in " + dir).c_str()));
      f->named_tmp_ = tmpl;
    }
    return f;
  }
  ~DestinationFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_ && !named_tmp_.empty()) ::unlink(named_tmp_.c_str());
  }
  int fd() const { return fd_; }
  Status Commit() {
    if (::fsync(fd_) != 0) return Unavailable(Errno("fsync of the destination failed"));
    std::string tmp = named_tmp_;
    if (tmp.empty()) {
      // Give the unnamed file a temporary name, then rename it over the destination.
      tmp = dir_ + "/.custos-get-" + HexEncode(crypto::RandomBytes(6));
      std::string proc = "/proc/self/fd/" + std::to_string(fd_);
      if (::linkat(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0)
        return Unavailable(Errno("cannot link the downloaded file into place"));
    }
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      Status st = Unavailable(Errno(("cannot rename the download onto " + path_).c_str()));
      ::unlink(tmp.c_str());
      return st;
    }
    committed_ = true;
    int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
    return Status::Ok();
  }

 private:
  DestinationFile(std::string path, std::string dir) : path_(std::move(path)), dir_(std::move(dir)) {}
  std::string path_, dir_, named_tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

// DataKeyGate runs the custodian's OpenKey on its own thread, so that the body's ranged GETs
// start while the key request (a KMS Decrypt, or the keepers' partials) is in flight; each sink
// waits for the key in its first Write, holding nothing but the store's receive buffer while it
// waits (the rest stays in the socket, which pushes back on the sender).
class DataKeyGate {
 public:
  DataKeyGate(DataKeyCustodian& custodian, const ObjectHeader& h)
      : thread_([this, &custodian, &h] {
          StatusOr<SecretBytes> key = custodian.OpenKey(h);
          std::lock_guard<std::mutex> g(mu_);
          key_ = std::move(key);
          done_ = true;
          cv_.notify_all();
        }) {}
  ~DataKeyGate() { thread_.join(); }
  DataKeyGate(const DataKeyGate&) = delete;
  DataKeyGate& operator=(const DataKeyGate&) = delete;

  // Wait returns the data key (owned by the gate) or the custodian's error.
  StatusOr<const SecretBytes*> Wait() {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [&] { return done_; });
    if (!key_.ok()) return key_.status();
    return &key_.value();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  StatusOr<SecretBytes> key_ = InternalError("data key not requested");
  std::thread thread_;  // last: started once the members above exist
};

// ChunkKeys is what every opening sink of one object shares.
struct ChunkKeys {
  DataKeyGate& gate;
  ByteSpan nonce_prefix;
  ByteSpan header_digest;
  uint32_t chunk_size;
};

// OpeningBody receives the stored bytes of chunks [first, last] and writes the plaintext that
// falls inside [want_begin, want_end) to the destination at (plaintext offset - want_begin).
//
// Each piece the store hands over is decrypted where it lies (StreamDecryptor::UpdateChunk: for
// S3 that is libcurl's receive buffer), straight into this body's plaintext run: no chunk is
// assembled, no byte copied first. A chunk's plaintext becomes part of the run only once the
// chunk authenticated (FinishChunk); the run goes to the destination in one write when it cannot
// take another chunk, and at Finish. The run is kWriteRun bytes of whole chunks, so that a
// destination on tmpfs or a page cache gets few, large, page-aligned writes. Unauthenticated
// plaintext never reaches the destination: a chunk that fails is wiped by FinishChunk, and the
// run buffer is wiped when the body goes away.
class OpeningBody : public BodySink {
 public:
  OpeningBody(std::shared_ptr<DestinationWriter> out, const Layout& layout, const ChunkKeys& keys,
              uint64_t first, uint64_t last, uint64_t want_begin, uint64_t want_end)
      : out_(std::move(out)),
        layout_(layout),
        keys_(keys),
        next_(first),
        run_first_(first),
        last_(last),
        want_begin_(want_begin),
        want_end_(want_end),
        run_(RunCapacity(layout, first, last)) {}

  Status Write(std::span<const uint8_t> bytes) override {
    while (!bytes.empty()) {
      if (!in_chunk_) RETURN_IF_ERROR(BeginChunk());
      ASSIGN_OR_RETURN(size_t used,
                       dec_->UpdateChunk(bytes, run_.span(run_length_, run_.size() - run_length_)));
      bytes = bytes.subspan(used);
      if (dec_->chunk_bytes_left() == 0) RETURN_IF_ERROR(FinishChunk());
    }
    return Status::Ok();
  }
  Status Finish() override {
    if (next_ <= last_ || in_chunk_)
      return IntegrityError("the store sent fewer bytes than the chunks asked for");
    return WriteRun();
  }

 private:
  // kWriteRun is the plaintext gathered per destination write (rounded down to whole chunks, at
  // least one chunk): four default chunks per write(2), while the run is still in the core's
  // cache when the kernel copies it out.
  static constexpr uint64_t kWriteRun = 256u << 10;

  static size_t RunCapacity(const Layout& layout, uint64_t first, uint64_t last) {
    const uint64_t chunks =
        std::clamp<uint64_t>(kWriteRun / layout.chunk_size, 1, last - first + 1);
    return static_cast<size_t>(chunks * layout.chunk_size);
  }

  Status BeginChunk() {
    if (next_ > last_) return IntegrityError("the store sent more bytes than the chunks asked for");
    if (!dec_) {
      // The first bytes wait here for the data key; the rest stays in the socket meanwhile.
      auto key = keys_.gate.Wait();
      if (!key.ok()) return FailedPrecondition("no data key: " + key.status().message());
      auto d = files::StreamDecryptor::Create(**key, keys_.nonce_prefix, keys_.chunk_size, keys_.header_digest);
      if (!d.ok()) return d.status();
      dec_.emplace(std::move(*d));
    }
    if (run_.size() - run_length_ < layout_.chunk_size) RETURN_IF_ERROR(WriteRun());
    const size_t stored = static_cast<size_t>(layout_.ChunkEnd(next_) - layout_.ChunkStart(next_));
    RETURN_IF_ERROR(dec_->BeginChunk(next_, stored, next_ + 1 == layout_.chunk_count));
    in_chunk_ = true;
    return Status::Ok();
  }

  Status FinishChunk() {
    in_chunk_ = false;
    auto n = dec_->FinishChunk(run_.span(run_length_, run_.size() - run_length_));
    if (!n.ok())
      return IntegrityError("chunk " + std::to_string(next_) +
                            " does not authenticate: the object was altered, reordered or truncated, or its header belongs to another object");
    run_length_ += *n;
    ++next_;
    return Status::Ok();
  }

  // WriteRun writes the wanted part of the authenticated run (chunks [run_first_, next_)).
  Status WriteRun() {
    const uint64_t p0 = layout_.PlainStart(run_first_), p1 = p0 + run_length_;
    const uint64_t a = std::max(p0, want_begin_), b = std::min(p1, want_end_);
    Status st = Status::Ok();
    if (a < b)
      st = out_->Write({run_.data() + (a - p0), static_cast<size_t>(b - a)}, a - want_begin_);
    run_length_ = 0;
    run_first_ = next_;
    return st;
  }

  const std::shared_ptr<DestinationWriter> out_;
  const Layout layout_;
  const ChunkKeys keys_;
  uint64_t next_;       // the chunk being received, or the next one
  uint64_t run_first_;  // the first chunk in run_
  const uint64_t last_, want_begin_, want_end_;
  // run_ holds the authenticated plaintext of chunks [run_first_, next_), then the chunk in
  // progress (decrypted, not yet authenticated).
  WipedBuffer run_;
  size_t run_length_ = 0;
  bool in_chunk_ = false;
  std::optional<files::StreamDecryptor> dec_;
};

class OpeningSink : public RangeSink {
 public:
  OpeningSink(int out_fd, const Layout& layout, const ChunkKeys& keys, uint64_t want_begin, uint64_t want_end)
      : out_(std::make_shared<DestinationWriter>(out_fd)), layout_(layout), keys_(keys), want_begin_(want_begin),
        want_end_(want_end) {}
  StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) override {
    ASSIGN_OR_RETURN(uint64_t first, layout_.ChunkAt(range.offset));
    uint64_t last = first;
    while (layout_.ChunkEnd(last) < range.end()) ++last;
    if (layout_.ChunkEnd(last) != range.end()) return InternalError("download range does not end on a chunk boundary");
    return std::unique_ptr<BodySink>(new OpeningBody(out_, layout_, keys_, first, last, want_begin_, want_end_));
  }
  // A large receive buffer: each piece is decrypted where it lies, so bigger pieces mean fewer
  // recv(2) calls and GCM updates per chunk at no extra copy. (The plain sink writes each piece
  // as it comes and keeps libcurl's default, which measured faster there.)
  size_t receive_buffer_size() const override { return 512u << 10; }

 private:
  const std::shared_ptr<DestinationWriter> out_;
  const Layout layout_;
  const ChunkKeys keys_;
  const uint64_t want_begin_, want_end_;
};

class PlainBodySink : public BodySink {
 public:
  PlainBodySink(int fd, uint64_t out_offset) : fd_(fd), pos_(out_offset) {}
  // Each piece libcurl delivers (16 KiB) is written as it comes, by each range thread on its
  // own: serialising these small writes through DestinationWriter measured slower (a futex
  // hand-off per piece), unlike the encrypted path's 256 KiB runs.
  Status Write(std::span<const uint8_t> bytes) override {
    RETURN_IF_ERROR(PwriteFull(fd_, bytes, pos_));
    pos_ += bytes.size();
    return Status::Ok();
  }
  Status Finish() override { return Status::Ok(); }

 private:
  const int fd_;
  uint64_t pos_;
};

class PlainSink : public RangeSink {
 public:
  PlainSink(int fd, uint64_t base) : fd_(fd), base_(base) {}
  StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) override {
    return std::unique_ptr<BodySink>(new PlainBodySink(fd_, range.offset - base_));
  }

 private:
  const int fd_;
  const uint64_t base_;
};

// ---- custodians ----

constexpr char kObjectIdContextKey[] = "custos:object-id";

class ApplianceCustodian : public DataKeyCustodian {
 public:
  ApplianceCustodian(kms::KmsClient client, std::string key_id)
      : client_(std::move(client)), key_id_(std::move(key_id)) {}
  ObjectMode mode() const override { return ObjectMode::kAppliance; }

  StatusOr<SecretBytes> SealNewKey(ObjectHeader& h) override {
    if (key_id_.empty()) return InvalidArgument("--key names the KMS key that protects new objects");
    nlohmann::json req = {{"KeyId", key_id_},
                          {"KeySpec", "AES_256"},
                          {"EncryptionContext", {{kObjectIdContextKey, h.ObjectIdHex()}}}};
    auto resp = client_.CallOrError("GenerateDataKey", req);
    if (!resp.ok()) return resp.status().WithContext("KMS GenerateDataKey");
    ASSIGN_OR_RETURN(SecretBytes dek, TakePlaintext(*resp, "GenerateDataKey"));
    auto blob = Base64Decode(resp->value("CiphertextBlob", ""));
    if (!blob.ok() || blob->empty() || blob->size() > kMaxWrappedKeySize)
      return Unavailable("KMS GenerateDataKey answered without a usable CiphertextBlob");
    std::string arn = resp->value("KeyId", "");
    if (arn.empty() || arn.size() > kMaxKeyRefSize) return Unavailable("KMS GenerateDataKey answered without a KeyId");
    h.mode = ObjectMode::kAppliance;
    h.key_ref = arn;
    h.wrapped_key = std::move(*blob);
    return dek;
  }

  StatusOr<SecretBytes> OpenKey(const ObjectHeader& h) override {
    nlohmann::json req = {{"CiphertextBlob", Base64Encode(h.wrapped_key)},
                          {"KeyId", key_id_.empty() ? h.key_ref : key_id_},
                          {"EncryptionContext", {{kObjectIdContextKey, h.ObjectIdHex()}}}};
    auto resp = client_.Call("Decrypt", req);
    if (!resp.ok()) return resp.status().WithContext("KMS Decrypt");
    if (!resp->ok()) {
      std::string type = resp->error_type(), msg = resp->body.value("message", "");
      std::string what = "KMS Decrypt refused the object's data key: " + type + (msg.empty() ? "" : ": " + msg);
      if (type == "InvalidCiphertextException") return IntegrityError(what + " (the header was altered or belongs to another object)");
      if (type == "IncorrectKeyException" || type == "AccessDeniedException") return PermissionDenied(what);
      return FailedPrecondition(what);
    }
    return TakePlaintext(resp->body, "Decrypt");
  }

 private:
  // TakePlaintext decodes the answer's Plaintext into a SecretBytes and wipes the copies.
  static StatusOr<SecretBytes> TakePlaintext(nlohmann::json& body, const char* op) {
    auto it = body.find("Plaintext");
    if (it == body.end() || !it->is_string()) return Unavailable(std::string("KMS ") + op + " answered without Plaintext");
    std::string& b64 = it->get_ref<std::string&>();
    auto raw = Base64Decode(b64);
    WipeBytes(b64);
    if (!raw.ok() || raw->size() != files::kStreamKeySize) {
      if (raw.ok()) WipeBytes(*raw);
      return Unavailable(std::string("KMS ") + op + " answered with a data key that is not 32 bytes");
    }
    SecretBytes dek = SecretBytes::CopyFrom(*raw);
    WipeBytes(*raw);
    return dek;
  }

  kms::KmsClient client_;
  std::string key_id_;
};

class DualControlCustodian : public DataKeyCustodian {
 public:
  explicit DualControlCustodian(DualControlSettings s) : s_(std::move(s)) {}
  ObjectMode mode() const override { return ObjectMode::kDualControl; }

  StatusOr<SecretBytes> SealNewKey(ObjectHeader& h) override {
    return SealDualControlKey(h, s_.custody.public_key, s_.custody.FingerprintHex());
  }

  StatusOr<SecretBytes> OpenKey(const ObjectHeader& h) override {
    ASSIGN_OR_RETURN(DualControlWrap w, ParseDualControlWrap(h.wrapped_key));
    if (!(w.y == s_.custody.public_key))
      return PermissionDenied("object was sealed to another custody (its joint public key differs from custody.json's)");
    if (!s_.client_key) return InvalidArgument("--client-key is needed to ask the keepers for the object's key");
    requester::CollectOptions o;
    o.custody = &s_.custody;
    o.client_key = &*s_.client_key;
    o.keeper_ids = s_.keeper_ids;
    o.url_override = s_.url_override;
    o.ca_file = s_.ca_file;
    o.log = s_.log;
    ASSIGN_OR_RETURN(crypto::Point s, requester::CollectSharedPoint(o, w.r, h.Digest()));
    return OpenDualControlKey(h, s);
  }

 private:
  DualControlSettings s_;
};

}  // namespace

std::unique_ptr<DataKeyCustodian> NewApplianceCustodian(kms::KmsClient client, std::string key_id) {
  return std::make_unique<ApplianceCustodian>(std::move(client), std::move(key_id));
}

std::unique_ptr<DataKeyCustodian> NewDualControlCustodian(DualControlSettings settings) {
  return std::make_unique<DualControlCustodian>(std::move(settings));
}

// ---- put ----

StatusOr<PutResult> PutObject(const std::string& src_path, ObjectStore& store, const std::string& key,
                              DataKeyCustodian* custodian, const TransferTuning& tuning,
                              TransferStats* stats) {
  ASSIGN_OR_RETURN(InputFile in, InputFile::Open(src_path));
  PutResult result;
  result.plaintext_bytes = in.size();
  if (custodian == nullptr) {
    std::vector<ByteRange> parts = PlainRanges(0, in.size(), tuning.part_size);
    if (in.size() <= tuning.part_size) parts = {{0, in.size()}};
    PlainSource source(in.fd());
    RETURN_IF_ERROR(store.Put(key, parts, source, stats));
    RETURN_IF_ERROR(in.CheckUnchanged());
    result.stored_bytes = in.size();
    result.parts = parts.size();
    return result;
  }

  ObjectHeader h;
  h.mode = custodian->mode();
  h.object_id = crypto::RandomBytes(16);
  h.chunk_size = tuning.chunk_size;
  h.nonce_prefix = crypto::RandomBytes(files::kStreamNoncePrefixSize);
  h.plaintext_length = in.size();
  if (h.chunk_size < files::kMinChunkSize || h.chunk_size > files::kMaxChunkSize)
    return InvalidArgument("chunk size must be 4 KiB .. 16 MiB");
  RETURN_IF_ERROR(h.BodyLength().status());
  // One data key per object, fetched before any byte is sent.
  ASSIGN_OR_RETURN(SecretBytes dek, custodian->SealNewKey(h));
  Bytes header = h.Encode();
  Bytes digest = h.Digest();
  ASSIGN_OR_RETURN(Layout layout, LayoutOf(h));
  files::StreamParams params{dek, h.nonce_prefix, digest, h.chunk_size};

  std::vector<ByteRange> parts;
  if (layout.stored_size() <= std::max<uint64_t>(tuning.part_size, kMinPartSize))
    parts = {{0, layout.stored_size()}};
  else
    parts = ChunkRanges(layout, 0, layout.chunk_count - 1, ChunksPerPart(layout, tuning.part_size), true);
  SealingSource source(in.fd(), layout, params, header);
  RETURN_IF_ERROR(store.Put(key, parts, source, stats));
  // The object is stored; if the file changed meanwhile it holds a mix, so it is removed again.
  Status unchanged = in.CheckUnchanged();
  if (!unchanged.ok()) {
    (void)store.Delete(key);
    return unchanged;
  }
  result.stored_bytes = layout.stored_size();
  result.parts = parts.size();
  result.key_ref = h.key_ref;
  return result;
}

// ---- get ----

StatusOr<PlaintextRange> ParseRange(const std::string& text) {
  auto dash = text.find('-');
  auto number = [](const std::string& s) -> std::optional<uint64_t> {
    if (s.empty() || s.size() > 19 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return std::nullopt;
    return std::stoull(s);
  };
  if (dash == std::string::npos) return InvalidArgument("--range takes FIRST-LAST or FIRST- (byte offsets)");
  auto first = number(text.substr(0, dash));
  if (!first) return InvalidArgument("--range: FIRST is not a byte offset");
  PlaintextRange r{*first, std::nullopt};
  std::string rest = text.substr(dash + 1);
  if (!rest.empty()) {
    auto last = number(rest);
    if (!last) return InvalidArgument("--range: LAST is not a byte offset");
    if (*last < *first) return InvalidArgument("--range: LAST is before FIRST");
    r.last = *last;
  }
  return r;
}

namespace {
// Resolve turns a range over `length` bytes into [begin, end); kInvalidArgument past the end.
StatusOr<std::pair<uint64_t, uint64_t>> Resolve(const std::optional<PlaintextRange>& range, uint64_t length) {
  if (!range) return std::make_pair(uint64_t{0}, length);
  if (range->first >= length)
    return InvalidArgument("--range starts at byte " + std::to_string(range->first) + " but the object has " +
                           std::to_string(length) + " bytes");
  uint64_t end = range->last ? std::min(*range->last + 1, length) : length;
  return std::make_pair(range->first, end);
}
}  // namespace

StatusOr<ObjectHeader> ReadObjectHeader(ObjectStore& store, const std::string& key) {
  ASSIGN_OR_RETURN(ObjectPrefix prefix, store.GetPrefix(key, kMaxObjectHeaderSize));
  return ObjectHeader::Decode(prefix.bytes);
}

StatusOr<GetResult> GetObject(ObjectStore& store, const std::string& key,
                              const std::string& dest_path, bool plain,
                              const CustodianFactory& custodians, const TransferTuning& tuning,
                              std::optional<PlaintextRange> range, TransferStats* stats,
                              const GetPlanned& planned) {
  GetResult result;
  if (plain) {
    ASSIGN_OR_RETURN(ObjectInfo info, store.Head(key));
    result.object_size = info.size;
    uint64_t begin = 0, end = info.size;
    if (range) {
      ASSIGN_OR_RETURN(auto be, Resolve(range, info.size));
      std::tie(begin, end) = be;
    }
    if (planned) planned(end - begin);
    ASSIGN_OR_RETURN(auto out, DestinationFile::Open(dest_path));
    if (end > begin) {
      PlainSink sink(out->fd(), begin);
      RETURN_IF_ERROR(store.Get(key, PlainRanges(begin, end, tuning.part_size), sink, stats, info.size));
    }
    RETURN_IF_ERROR(out->Commit());
    result.plaintext_bytes = result.fetched_bytes = end - begin;
    return result;
  }

  // The object's size and its header in one request (ObjectStore::GetPrefix).
  ASSIGN_OR_RETURN(ObjectPrefix prefix, store.GetPrefix(key, kMaxObjectHeaderSize));
  const ObjectInfo& info = prefix.info;
  result.object_size = info.size;
  if (info.size == 0) return InvalidArgument("not a custos object (it is empty); use --plain to fetch it as is");
  ASSIGN_OR_RETURN(ObjectHeader h, ObjectHeader::Decode(prefix.bytes));
  result.mode = h.mode;
  ASSIGN_OR_RETURN(Layout layout, LayoutOf(h));
  // The stored size is fixed by the header: anything else is a truncated or extended object.
  if (info.size != layout.stored_size())
    return IntegrityError("object is " + std::to_string(info.size) + " bytes but its header describes " +
                          std::to_string(layout.stored_size()) + ": it was truncated or extended");
  uint64_t begin = 0, end = h.plaintext_length;
  if (range) {
    ASSIGN_OR_RETURN(auto be, Resolve(range, h.plaintext_length));
    std::tie(begin, end) = be;
  }
  // The chunks the wanted plaintext needs (an empty object still has its one final chunk).
  uint64_t first = begin / h.chunk_size;
  uint64_t last = end == 0 ? 0 : (end - 1) / h.chunk_size;
  first = std::min(first, layout.chunk_count - 1);
  last = std::min(last, layout.chunk_count - 1);
  std::vector<ByteRange> ranges = ChunkRanges(layout, first, last, ChunksPerPart(layout, tuning.part_size), false);
  uint64_t to_fetch = 0;
  for (const ByteRange& r : ranges) to_fetch += r.length;
  if (planned) planned(to_fetch);

  ASSIGN_OR_RETURN(DataKeyCustodian * custodian, custodians(h.mode));
  ASSIGN_OR_RETURN(auto out, DestinationFile::Open(dest_path));
  Bytes digest = h.Digest();
  Status fetched;
  {
    // The key request and the body download run at the same time (DataKeyGate).
    DataKeyGate gate(*custodian, h);
    OpeningSink sink(out->fd(), layout, ChunkKeys{gate, h.nonce_prefix, digest, h.chunk_size}, begin, end);
    fetched = store.Get(key, ranges, sink, stats, info.size);
    // A refused key explains a failed download better than the sinks' "no data key".
    auto dek = gate.Wait();
    if (!dek.ok()) return dek.status();
  }
  RETURN_IF_ERROR(fetched);
  if (::ftruncate(out->fd(), static_cast<off_t>(end - begin)) != 0)
    return Unavailable(Errno("cannot size the destination file"));
  RETURN_IF_ERROR(out->Commit());
  result.plaintext_bytes = end - begin;
  result.fetched_bytes = h.EncodedSize() + to_fetch;
  return result;
}

}  // namespace custos::objects
