#include "keeper/api/keeper_client.h"

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
  return net::DecodeJsonResponse(r, "keeper " + url_);
}

StatusOr<json> KeeperClient::Call(const std::string& path, const json& body) {
  return Decode(client_.Post(path, body.dump(), {{"content-type", "application/json"}}));
}

StatusOr<json> KeeperClient::Info() { return Decode(client_.Get("/v1/keeper")); }

}  // namespace custos::keeper
