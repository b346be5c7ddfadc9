// OutputFile writes a command's result under a temporary name in the destination directory and
// renames it into place only on Commit(), so a failed command leaves no output file behind.
#pragma once

#include <string>

#include "common/status.h"

namespace custos::cli {

class OutputFile {
 public:
  // Open creates the temporary file (mode 0600). "-" means standard output (no atomicity).
  static StatusOr<OutputFile> Open(const std::string& path);
  OutputFile(OutputFile&& o) noexcept;
  OutputFile& operator=(OutputFile&&) = delete;
  // The destructor removes the temporary file unless Commit() succeeded.
  ~OutputFile();
  int fd() const { return fd_; }
  // Commit fsyncs the data and renames it onto the destination.
  Status Commit();

 private:
  OutputFile(std::string path, std::string tmp, int fd) : path_(std::move(path)), tmp_(std::move(tmp)), fd_(fd) {}
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace custos::cli
