#include "keeper/daemon/router.h"

#include <utility>

#include "common/log.h"
#include "keeper/api/protocol.h"

namespace custos::keeper {

using nlohmann::json;

namespace {

net::HttpResponse JsonResponse(int status, const json& body) {
  net::HttpResponse r;
  r.status = status;
  r.body = body.dump();
  return r;
}

net::HttpResponse ErrorResponse(const Status& st) {
  net::HttpResponse r;
  r.status = net::HttpStatusFor(st.code());
  r.body = net::ErrorBody(ErrorCodeName(st.code()), st.message());
  return r;
}

}  // namespace

Router::Router(std::string keeper_id, std::mutex& sealed_state_mu, std::vector<Route> routes)
    : keeper_id_(std::move(keeper_id)),
      sealed_state_mu_(sealed_state_mu),
      routes_(std::move(routes)) {}

net::HttpResponse Router::Handle(const net::HttpRequest& req) {
  // A client address whose requests keep failing (guesses, floods, malformed bodies) is turned
  // away before any parse or lock for the rest of the window; good requests are never counted.
  std::string source = net::HostPart(req.remote);
  if (!failures_.Allowed(source)) {
    return JsonResponse(
        429, json{{"error", "rate_limited"},
                  {"message", "too many failed requests from this address: wait and retry"}});
  }
  net::HttpResponse out = Dispatch(req);
  if (out.status >= 400) failures_.Record(source);
  return out;
}

net::HttpResponse Router::Dispatch(const net::HttpRequest& req) {
  // A dozen rows: a linear scan finds the exact row, or one with the path and another method.
  const Route* route = nullptr;
  const Route* other_method = nullptr;
  for (const Route& r : routes_) {
    if (r.path != req.target) continue;
    if (r.method == req.method)
      route = &r;
    else
      other_method = &r;
  }
  if (route == nullptr) {
    // A body-taking endpoint asked with another method says so; anything else is unknown
    // (so POST /v1/keeper is a 404, as it always was).
    if (other_method != nullptr && other_method->method == "POST")
      return ErrorResponse(InvalidArgument("this endpoint takes POST"));
    return ErrorResponse(NotFound("no such endpoint: " + req.method + " " + req.target));
  }
  const bool takes_body = route->method == "POST";
  json body;
  if (takes_body) {
    // Parsed before any lock: a large or deep body does not hold up other requests.
    auto parsed = ParseJsonObject(req.body);
    if (!parsed.ok()) return ErrorResponse(parsed.status());
    body = std::move(*parsed);
  }
  StatusOr<json> r = [&] {
    if (route->lock == Route::Lock::kSealedState) {
      std::lock_guard<std::mutex> lock(sealed_state_mu_);
      return route->handle(body);
    }
    return route->handle(body);
  }();
  if (!r.ok()) {
    // Refusals of body-taking routes are logged; a failing GET /v1/keeper never was.
    if (takes_body) {
      // Messages may quote request bytes (e.g. a keeper id) that are not UTF-8: LogLine replaces
      // them.
      LogLine({{"level", "warn"},
               {"component", "keeper"},
               {"keeper", keeper_id_},
               {"endpoint", req.target},
               {"remote", req.remote},
               {"error", r.status().ToString()}});
    }
    return ErrorResponse(r.status());
  }
  return JsonResponse(200, *r);
}

}  // namespace custos::keeper
