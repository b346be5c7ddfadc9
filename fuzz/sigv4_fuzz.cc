// Fuzzes SigV4 verification (src/net/sigv4.h), the first code that touches every KMS API
// request. The input is "<Authorization header value>\n<query string>": the first part
// (absent when empty) becomes the Authorization header, the rest the query of a fixed
// KMS-shaped POST verified at a fixed time against one fixed credential.
//
// Properties checked: no crash; every refusal is kInvalidArgument or kPermissionDenied (or
// the lookup's own code, which this lookup never produces), carries one of the fixed
// "sigv4: " messages as a printable line and never the secret; an accepted request names the
// one access key, region and service there are. The seeds in corpus/sigv4_fuzz include one
// valid request of each form, so mutations start from inside the signature check.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "net/sigv4.h"

namespace {

constexpr std::string_view kFuzzAkid = "AKIDFUZZEXAMPLE";
constexpr std::string_view kFuzzSecret = "fuzz/secret+key/EXAMPLE0000000000000000";
constexpr std::time_t kFuzzNow = 1700000000;  // 20231114T221320Z

custos::net::HttpRequest FuzzRequest(std::string_view authorization, std::string_view query) {
  custos::net::HttpRequest r;
  r.method = "POST";
  r.target = "/";
  if (!query.empty()) r.target += "?" + std::string(query);
  r.headers = {{"host", "kms.eu-west-1.amazonaws.com"},
               {"content-type", "application/x-amz-json-1.1"},
               {"x-amz-date", "20231114T221320Z"}};
  if (!authorization.empty()) r.headers["authorization"] = std::string(authorization);
  r.body = "{}";
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t newline = input.find('\n');
  std::string_view authorization = input.substr(0, newline);
  std::string_view query = newline == std::string_view::npos ? "" : input.substr(newline + 1);

  kms::CredentialLookup lookup = [](std::string_view id) -> StatusOr<kms::SigV4Credentials> {
    if (id != kFuzzAkid) return NotFound("unknown");
    return kms::SigV4Credentials{std::string(kFuzzAkid), SecretBytes::CopyFrom(kFuzzSecret), "", nullptr};
  };
  kms::SigV4Options options;
  options.region = "eu-west-1";

  auto result = kms::VerifySigV4(FuzzRequest(authorization, query), lookup, options, kFuzzNow);
  if (result.ok()) {
    if (result->access_key_id != kFuzzAkid || result->region != "eu-west-1" ||
        result->service != "kms" || result->signed_at.size() != 16) {
      std::abort();
    }
    return 0;
  }
  const Status& status = result.status();
  if (status.code() != ErrorCode::kInvalidArgument &&
      status.code() != ErrorCode::kPermissionDenied) {
    std::abort();
  }
  const std::string& message = status.message();
  if (message.rfind("sigv4: ", 0) != 0) std::abort();
  if (message.find(kFuzzSecret) != std::string::npos) std::abort();
  for (char c : message) {
    if (c < 0x20 || c >= 0x7f) std::abort();
  }
  return 0;
}
