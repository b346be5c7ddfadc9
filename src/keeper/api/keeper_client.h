// KeeperClient: the client side of the keeper API (docs/protocol.md, "Keeper API"), used by the
// ceremony coordinator and by requesters. Errors carry the keeper's own JSON error message,
// prefixed with the keeper's URL so the operator knows which keeper refused and why.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "net/http_client.h"

namespace custos::keeper {

class KeeperClient {
 public:
  // Create parses `url`; `ca_file` (may be empty) is trusted for https keepers.
  static StatusOr<KeeperClient> Create(const std::string& url, const std::string& ca_file = "");
  // Call POSTs `body` to `path` and returns the JSON answer, or the keeper's error as a Status
  // with the same code the keeper used.
  StatusOr<nlohmann::json> Call(const std::string& path, const nlohmann::json& body);
  StatusOr<nlohmann::json> Info();
  const std::string& url() const { return url_; }

 private:
  KeeperClient(std::string url, net::HttpClient client) : url_(std::move(url)), client_(std::move(client)) {}
  StatusOr<nlohmann::json> Decode(StatusOr<net::HttpResponse> r);
  std::string url_;
  net::HttpClient client_;
};

}  // namespace custos::keeper
