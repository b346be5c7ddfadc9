#include "client/objects/dir_store.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace custos::objects {
namespace {

namespace fs = std::filesystem;

constexpr size_t kIoChunk = 1 << 20;

// ErrnoStatus maps an errno to the ObjectStore error classes and names what failed.
Status ErrnoStatus(int err, const std::string& what) {
  std::string message = what + ": " + std::strerror(err);
  switch (err) {
    case ENOENT:
      return NotFound(message);
    case EACCES:
    case EPERM:
      return PermissionDenied(message);
    case ENOTDIR:
    case EISDIR:
    case ENAMETOOLONG:
    case EINVAL:
      return InvalidArgument(message);
    default:
      return Unavailable(message);
  }
}

Status ErrorCodeStatus(const std::error_code& ec, const std::string& what) {
  return ErrnoStatus(ec.value(), what);
}

std::string Iso8601(const struct timespec& t) {
  struct tm tm;
  time_t seconds = t.tv_sec;
  gmtime_r(&seconds, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// UniqueFd closes its descriptor on every exit path.
class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  // Close closes now and reports the error close(2) returned (0 on success).
  int Close() {
    int rc = fd_ >= 0 ? ::close(fd_) : 0;
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

bool IsTempName(std::string_view name) { return name.rfind(kDirStoreTempPrefix, 0) == 0; }

Status ValidateKey(const std::string& key) {
  if (key.empty()) return InvalidArgument("empty key");
  if (key.find('\0') != std::string::npos) return InvalidArgument("key contains NUL");
  if (key.front() == '/') return InvalidArgument("key '" + key + "' is absolute");
  size_t start = 0;
  while (start <= key.size()) {
    size_t slash = key.find('/', start);
    if (slash == std::string::npos) slash = key.size();
    std::string_view part(key.data() + start, slash - start);
    if (part.empty() || part == "." || part == "..") {
      return InvalidArgument("key '" + key + "' has an empty, '.' or '..' component");
    }
    if (IsTempName(part)) {
      return InvalidArgument("key '" + key + "' names a temporary file (" +
                             std::string(kDirStoreTempPrefix) + "*)");
    }
    start = slash + 1;
  }
  return Status::Ok();
}

Status WriteAll(int fd, std::span<const uint8_t> bytes, const std::string& what) {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, what);
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FsyncDirectory(const fs::path& dir, const std::string& what) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoStatus(errno, what);
  if (::fsync(fd.get()) != 0) return ErrnoStatus(errno, what);
  return Status::Ok();
}

class DirectoryStore : public ObjectStore {
 public:
  explicit DirectoryStore(fs::path root) : root_(std::move(root)) {}

  Status Put(const std::string& key, const std::vector<ByteRange>& parts, RangeSource& source,
             TransferStats* stats) override {
    RETURN_IF_ERROR(ValidateKey(key).WithContext(description()));
    std::string name = Name(key);
    if (parts.empty()) return InvalidArgument(name + ": put with no parts");
    uint64_t expected_offset = 0;
    for (const ByteRange& part : parts) {
      if (part.offset != expected_offset) {
        return InvalidArgument(name + ": parts are not consecutive from 0");
      }
      expected_offset = part.end();
    }
    fs::path target = root_ / key;
    fs::path parent = target.parent_path();
    std::error_code ec;
    fs::create_directories(parent, ec);
    if (ec) return ErrorCodeStatus(ec, name + ": creating parent directories");

    std::string temp = (parent / (std::string(kDirStoreTempPrefix) + "XXXXXX")).string();
    int raw_fd = ::mkostemp(temp.data(), O_CLOEXEC);  // mode 0600
    if (raw_fd < 0) return ErrnoStatus(errno, name + ": creating a temporary file");
    UniqueFd fd(raw_fd);
    if (stats != nullptr) stats->requests++;
    Status status = WriteParts(fd.get(), name, parts, source, stats);
    if (status.ok() && ::fsync(fd.get()) != 0) status = ErrnoStatus(errno, name + ": fsync");
    if (int err = fd.Close(); status.ok() && err != 0) status = ErrnoStatus(err, name + ": close");
    if (status.ok() && ::rename(temp.c_str(), target.c_str()) != 0) {
      status = ErrnoStatus(errno, name + ": rename into place");
    }
    if (!status.ok()) {
      ::unlink(temp.c_str());
      return status;
    }
    return FsyncDirectory(parent, name + ": fsync of the directory");
  }

  StatusOr<ObjectInfo> Head(const std::string& key) override {
    RETURN_IF_ERROR(ValidateKey(key).WithContext(description()));
    struct stat st;
    if (::stat((root_ / key).c_str(), &st) != 0) return ErrnoStatus(errno, Name(key));
    if (!S_ISREG(st.st_mode)) return NotFound(Name(key) + ": not a regular file");
    return ObjectInfo{key, static_cast<uint64_t>(st.st_size), Iso8601(st.st_mtim)};
  }

  Status Get(const std::string& key, const std::vector<ByteRange>& ranges, RangeSink& sink,
             TransferStats* stats, std::optional<uint64_t> object_size) override {
    RETURN_IF_ERROR(ValidateKey(key).WithContext(description()));
    std::string name = Name(key);
    UniqueFd fd(::open((root_ / key).c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return ErrnoStatus(errno, name);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return ErrnoStatus(errno, name + ": fstat");
    if (!S_ISREG(st.st_mode)) return NotFound(name + ": not a regular file");
    uint64_t size = static_cast<uint64_t>(st.st_size);
    if (object_size && *object_size != size)
      return FailedPrecondition(name + ": the file changed size since it was examined (" +
                                std::to_string(*object_size) + " -> " + std::to_string(size) + " bytes)");
    for (const ByteRange& range : ranges) {
      if (range.end() < range.offset || range.end() > size) {
        return InvalidArgument(name + ": range " + std::to_string(range.offset) + "+" +
                               std::to_string(range.length) + " lies beyond the object's " +
                               std::to_string(size) + " bytes");
      }
    }
    std::vector<uint8_t> buffer(kIoChunk);
    for (const ByteRange& range : ranges) {
      ASSIGN_OR_RETURN(std::unique_ptr<BodySink> body, sink.Open(range));
      if (stats != nullptr) stats->requests++;
      uint64_t done = 0;
      while (done < range.length) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), range.length - done));
        ssize_t n = ::pread(fd.get(), buffer.data(), want, static_cast<off_t>(range.offset + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          return ErrnoStatus(errno, name + ": read");
        }
        if (n == 0) {
          return IntegrityError(name + ": the file ended " + std::to_string(range.length - done) +
                                " bytes short of range " + std::to_string(range.offset) + "+" +
                                std::to_string(range.length));
        }
        RETURN_IF_ERROR(body->Write({buffer.data(), static_cast<size_t>(n)}));
        done += static_cast<uint64_t>(n);
        if (stats != nullptr) stats->bytes += static_cast<uint64_t>(n);
      }
      RETURN_IF_ERROR(body->Finish());
    }
    return Status::Ok();
  }

  StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    std::vector<ObjectInfo> objects;
    std::error_code ec;
    fs::recursive_directory_iterator it(root_, fs::directory_options::none, ec);
    if (ec) return ErrorCodeStatus(ec, description() + ": list");
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
      if (ec) return ErrorCodeStatus(ec, description() + ": list");
      const fs::directory_entry& entry = *it;
      if (IsTempName(entry.path().filename().string())) continue;
      std::error_code type_ec;
      if (!entry.is_regular_file(type_ec)) continue;
      std::string key = entry.path().lexically_relative(root_).generic_string();
      if (key.rfind(prefix, 0) != 0) continue;
      struct stat st;
      if (::stat(entry.path().c_str(), &st) != 0) continue;  // removed while we walked
      objects.push_back({key, static_cast<uint64_t>(st.st_size), Iso8601(st.st_mtim)});
    }
    if (ec) return ErrorCodeStatus(ec, description() + ": list");
    std::sort(objects.begin(), objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return objects;
  }

  Status Delete(const std::string& key) override {
    RETURN_IF_ERROR(ValidateKey(key).WithContext(description()));
    fs::path path = root_ / key;
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0) return ErrnoStatus(errno, Name(key));
    if (S_ISDIR(st.st_mode)) return NotFound(Name(key) + ": not a regular file");
    if (::unlink(path.c_str()) != 0) return ErrnoStatus(errno, Name(key) + ": unlink");
    return Status::Ok();
  }

  int concurrency() const override { return 1; }
  std::string description() const override { return "file://" + root_.string(); }

 private:
  std::string Name(const std::string& key) const { return (root_ / key).string(); }

  Status WriteParts(int fd, const std::string& name, const std::vector<ByteRange>& parts,
                    RangeSource& source, TransferStats* stats) {
    std::vector<uint8_t> buffer(kIoChunk);
    for (const ByteRange& part : parts) {
      ASSIGN_OR_RETURN(std::unique_ptr<BodySource> body, source.Open(part));
      uint64_t done = 0;
      while (done < part.length) {
        size_t want = static_cast<size_t>(std::min<uint64_t>(buffer.size(), part.length - done));
        ASSIGN_OR_RETURN(size_t n, body->Read({buffer.data(), want}));
        if (n == 0 || n > want) {
          return InternalError(name + ": the source returned " + std::to_string(n) +
                               " bytes with " + std::to_string(part.length - done) + " to go");
        }
        RETURN_IF_ERROR(WriteAll(fd, {buffer.data(), n}, name + ": write"));
        done += n;
        if (stats != nullptr) stats->bytes += n;
      }
    }
    return Status::Ok();
  }

  fs::path root_;
};

}  // namespace

StatusOr<std::unique_ptr<ObjectStore>> OpenDirectoryStore(const std::string& dir) {
  if (dir.empty()) return InvalidArgument("file store: empty directory name");
  std::error_code ec;
  fs::path root = fs::absolute(dir, ec);
  if (ec) return ErrorCodeStatus(ec, "file://" + dir);
  root = root.lexically_normal();
  if (root.has_relative_path() && !root.has_filename()) root = root.parent_path();  // "a/b/"
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) return ErrnoStatus(errno, "file://" + root.string());
  if (!S_ISDIR(st.st_mode)) return InvalidArgument("file://" + root.string() + ": not a directory");
  return std::unique_ptr<ObjectStore>(std::make_unique<DirectoryStore>(std::move(root)));
}

}  // namespace custos::objects
