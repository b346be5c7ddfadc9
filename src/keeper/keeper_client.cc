#include "keeper/keeper_client.h"

#include <chrono>

namespace custos::keeper {

using nlohmann::json;

StatusOr<KeeperClient> KeeperClient::Create(const std::string& url, const std::string& ca_file) {
  net::HttpClientOptions opts;
  opts.ca_file = ca_file;
  opts.timeout = std::chrono::milliseconds(20'000);
  ASSIGN_OR_RETURN(auto client, net::HttpClient::Create(url, opts));
  return KeeperClient(url, std::move(client));
}

StatusOr<json> KeeperClient::Decode(StatusOr<net::HttpResponse> r) {
  if (!r.ok()) return r.status().WithContext("keeper " + url_);
  json j = json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    std::string code = j.is_object() ? j.value("error", "") : "";
    std::string msg = j.is_object() ? j.value("message", "") : "";
    if (msg.empty()) msg = "HTTP " + std::to_string(r->status);
    ErrorCode ec = ErrorCode::kInternal;
    for (ErrorCode c : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
                        ErrorCode::kPermissionDenied, ErrorCode::kFailedPrecondition,
                        ErrorCode::kIntegrity, ErrorCode::kUnavailable, ErrorCode::kInternal})
      if (code == ErrorCodeName(c)) ec = c;
    return Status(ec, "keeper " + url_ + " refused: " + msg);
  }
  if (j.is_discarded() || !j.is_object())
    return IntegrityError("keeper " + url_ + " answered with malformed JSON");
  return j;
}

StatusOr<json> KeeperClient::Call(const std::string& path, const json& body) {
  return Decode(client_.Post(path, body.dump(), {{"content-type", "application/json"}}));
}

StatusOr<json> KeeperClient::Info() { return Decode(client_.Get("/v1/keeper")); }

}  // namespace custos::keeper
