// KmsClient: custos's own client of an AWS KMS JSON 1.1 endpoint (its appliance, or AWS KMS
// itself): signs each request with SigV4 (kms/sigv4.h) and returns the JSON answer or the AWS
// error. Used by the tests, the load generator and `custos put/get --key` (appliance mode).
#pragma once
#include <ctime>
#include <functional>
#include <string>
#include "net/sigv4.h"
#include "net/http_client.h"
#include "nlohmann/json.hpp"

namespace custos::kms {

// KmsCallResult is one answer: `status` is the HTTP status; `body` the JSON object the server
// sent (the operation's response, or {"__type", "message"}).
struct KmsCallResult {
  int status = 0;
  nlohmann::json body;
  std::string request_id;
  bool ok() const { return status == 200; }
  // error_type is the AWS exception name of an error ("" when ok).
  std::string error_type() const;
};

class KmsClient {
 public:
  // Create connects lazily to `endpoint` (http:// or https:// base URL).
  static StatusOr<KmsClient> Create(const std::string& endpoint, SigV4Credentials credentials, std::string region,
                                    net::HttpClientOptions options = {});

  // Call signs and sends one operation. A transport failure is a Status; an AWS error is a
  // KmsCallResult with its status and __type.
  StatusOr<KmsCallResult> Call(std::string_view operation, const nlohmann::json& request);

  // CallOrError is Call that turns an AWS error into kFailedPrecondition "<__type>: <message>".
  StatusOr<nlohmann::json> CallOrError(std::string_view operation, const nlohmann::json& request);

  // now overrides the signing clock (tests: stale signatures).
  std::function<std::time_t()> now;

 private:
  KmsClient(net::HttpClient http, SigV4Credentials credentials, std::string region, std::string host);
  net::HttpClient http_;
  SigV4Credentials credentials_;
  std::string region_;
  std::string host_;
};

}  // namespace custos::kms
