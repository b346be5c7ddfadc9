// S3rverProcess: a real S3-compatible server (s3rver, the npm package pinned in tests/s3, installed
// by `make test-deps`) on a free loopback port, for tests of code that speaks S3.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "common/status.h"

namespace custos::testing {

class S3rverProcess {
 public:
  // Start runs s3rver with a fresh data directory and the given buckets created, and returns
  // once its port accepts connections (kUnavailable after 30 s, with the end of its log). A
  // missing s3rver binary is kFailedPrecondition naming `make test-deps`.
  static StatusOr<std::unique_ptr<S3rverProcess>> Start(const std::vector<std::string>& buckets);

  // The destructor kills and reaps the server and removes its data directory.
  ~S3rverProcess();
  S3rverProcess(const S3rverProcess&) = delete;
  S3rverProcess& operator=(const S3rverProcess&) = delete;

  // endpoint is "http://127.0.0.1:PORT".
  const std::string& endpoint() const { return endpoint_; }
  // s3rver's fixed credentials. s3rver 3.7.1 does not reject a wrong secret.
  static std::string access_key_id() { return "S3RVER"; }
  static std::string secret_access_key() { return "S3RVER"; }
  // log_path: the server's stdout and stderr.
  const std::string& log_path() const { return log_path_; }

 private:
  S3rverProcess() = default;

  pid_t pid_ = -1;
  std::string dir_;
  std::string endpoint_;
  std::string log_path_;
};

}  // namespace custos::testing
