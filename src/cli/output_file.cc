#include "cli/output_file.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/file.h"

namespace custos::cli {

StatusOr<OutputFile> OutputFile::Open(const std::string& path) {
  if (path == "-") return OutputFile(path, "", STDOUT_FILENO);
  std::string tmp = path + ".custos-tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) return Unavailable("cannot create output next to " + path + ": " + std::strerror(errno));
  return OutputFile(path, tmp, fd);
}

OutputFile::OutputFile(OutputFile&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), fd_(o.fd_), committed_(o.committed_) {
  o.fd_ = -1;
  o.tmp_.clear();
}

OutputFile::~OutputFile() {
  if (tmp_.empty()) return;
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

Status OutputFile::Commit() {
  if (tmp_.empty()) return Status::Ok();
  if (::fsync(fd_) != 0) return Unavailable("cannot fsync output: " + std::string(std::strerror(errno)));
  ::close(fd_);
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0)
    return Unavailable("cannot rename output into place: " + std::string(std::strerror(errno)));
  committed_ = true;
  std::string dir = std::filesystem::path(path_).parent_path().string();
  return FsyncDirectory(dir.empty() ? "." : dir);
}

}  // namespace custos::cli
