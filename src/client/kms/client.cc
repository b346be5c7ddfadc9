#include "client/kms/client.h"

namespace custos::kms {

using json = nlohmann::json;

std::string KmsCallResult::error_type() const {
  if (ok() || !body.is_object()) return ok() ? "" : "unknown";
  std::string t = body.value("__type", "");
  // AWS may send "namespace#Name"; the SDKs use the part after '#'.
  if (auto p = t.find('#'); p != std::string::npos) t = t.substr(p + 1);
  return t;
}

KmsClient::KmsClient(net::HttpClient http, SigV4Credentials credentials, std::string region, std::string host)
    : http_(std::move(http)), credentials_(std::move(credentials)), region_(std::move(region)), host_(std::move(host)) {}

StatusOr<KmsClient> KmsClient::Create(const std::string& endpoint, SigV4Credentials credentials, std::string region,
                                      net::HttpClientOptions options) {
  ASSIGN_OR_RETURN(net::HttpClient http, net::HttpClient::Create(endpoint, options));
  const net::Url& u = http.url();
  // The Host header HttpClient sends, which the signature must cover.
  std::string host = u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  if (u.port != (u.tls() ? 443 : 80)) host += ":" + std::to_string(u.port);
  return KmsClient(std::move(http), std::move(credentials), std::move(region), std::move(host));
}

StatusOr<KmsCallResult> KmsClient::Call(std::string_view operation, const json& request) {
  net::HttpRequest r;
  r.method = "POST";
  r.target = http_.url().path_prefix.empty() ? "/" : http_.url().path_prefix + "/";
  r.body = request.dump();
  r.headers["host"] = host_;
  r.headers["content-type"] = "application/x-amz-json-1.1";
  r.headers["x-amz-target"] = "TrentService." + std::string(operation);
  RETURN_IF_ERROR(SignSigV4(r, credentials_, region_, "kms", now ? now() : std::time(nullptr)));
  r.headers.erase("host");
  ASSIGN_OR_RETURN(net::HttpResponse resp, http_.Post("/", r.body, r.headers));
  KmsCallResult out;
  out.status = resp.status;
  out.body = json::parse(resp.body, nullptr, false);
  if (out.body.is_discarded()) out.body = json::object();
  if (auto it = resp.headers.find("x-amzn-requestid"); it != resp.headers.end()) out.request_id = it->second;
  return out;
}

StatusOr<json> KmsClient::CallOrError(std::string_view operation, const json& request) {
  ASSIGN_OR_RETURN(KmsCallResult r, Call(operation, request));
  if (!r.ok())
    return FailedPrecondition(r.error_type() + ": " + (r.body.is_object() ? r.body.value("message", "") : ""));
  return std::move(r.body);
}

}  // namespace custos::kms
