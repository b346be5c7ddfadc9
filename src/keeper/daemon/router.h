// Router: the keeper's one route table and the request path every route shares — the
// per-address failure limiter (429), the JSON body parse (object, depth-limited), the lock a
// route needs, refusal logging and error rendering (docs/protocol.md "Keeper API"). Handlers
// return StatusOr<json>: a value is a 200 with that body, a status is the JSON error
// {"error": code, "message": reason} with the code's HTTP status.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/status.h"
#include "net/http.h"
#include "net/source_limiter.h"

namespace custos::keeper {

// Route is one row of the table.
struct Route {
  // Lock says what the router holds around the handler.
  enum class Lock {
    kSealedState,  // the sealed-state mutex: the handler reads or changes the sealed state
    kHandler,      // nothing: the handler touches no sealed state and locks its own
  };
  std::string method;  // "GET": no body, the handler gets null; "POST": a JSON object body
  std::string path;
  Lock lock = Lock::kSealedState;
  std::function<StatusOr<nlohmann::json>(const nlohmann::json& body)> handle;
};

class Router {
 public:
  // `keeper_id` names this keeper in refusal logs; `sealed_state_mu` is the store's mutex.
  // Each (method, path) appears at most once in `routes`.
  Router(std::string keeper_id, std::mutex& sealed_state_mu, std::vector<Route> routes);

  // Handle answers one request; it is safe to call from several threads. A source address
  // with too many failed requests (100 in 10 s) is answered 429 before any parse or lock.
  net::HttpResponse Handle(const net::HttpRequest& req);
  // refused_by_limiter counts requests turned away for too many failures from their address.
  uint64_t refused_by_limiter() const { return failures_.refused(); }

 private:
  net::HttpResponse Dispatch(const net::HttpRequest& req);

  std::string keeper_id_;
  std::mutex& sealed_state_mu_;
  std::vector<Route> routes_;
  // Failed requests per client address: 100 per 10 s, then 429 until the window ends.
  net::SourceLimiter failures_{100, std::chrono::seconds(10)};
};

}  // namespace custos::keeper
