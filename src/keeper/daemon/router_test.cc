// Tests of the keeper's router on its own, with stand-in handlers: unknown routes, wrong
// methods, body parsing, error rendering, which routes hold the sealed-state mutex, and the
// per-address failure limiter.
#include "keeper/daemon/router.h"

#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace custos::keeper {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// HeldElsewhere reports whether `mu` is held, asking from another thread (try_lock on the
// thread that holds it would be undefined).
bool HeldElsewhere(std::mutex& mu) {
  return std::async(std::launch::async,
                    [&mu] {
                      if (!mu.try_lock()) return true;
                      mu.unlock();
                      return false;
                    })
      .get();
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest()
      : router_("k1", mu_,
                {
                    {"GET", "/v1/keeper", Route::Lock::kSealedState,
                     [this](const json& body) -> StatusOr<json> {
                       calls_.push_back("info");
                       bodies_.push_back(body);
                       held_.push_back(HeldElsewhere(mu_));
                       return json{{"id", "k1"}};
                     }},
                    {"POST", "/v1/sealed", Route::Lock::kSealedState,
                     [this](const json& body) -> StatusOr<json> {
                       calls_.push_back("sealed");
                       bodies_.push_back(body);
                       held_.push_back(HeldElsewhere(mu_));
                       return json{{"echo", body}};
                     }},
                    {"POST", "/v1/own", Route::Lock::kHandler,
                     [this](const json& body) -> StatusOr<json> {
                       calls_.push_back("own");
                       bodies_.push_back(body);
                       held_.push_back(HeldElsewhere(mu_));
                       return json{{"ok", true}};
                     }},
                    {"POST", "/v1/refuse", Route::Lock::kSealedState,
                     [this](const json&) -> StatusOr<json> {
                       calls_.push_back("refuse");
                       return PermissionDenied("client key is not on this keeper's allowlist");
                     }},
                }) {}

  net::HttpResponse Call(const std::string& method, const std::string& target,
                         const std::string& body, const std::string& remote = "127.0.0.1:4000") {
    net::HttpRequest req;
    req.method = method;
    req.target = target;
    req.body = body;
    req.remote = remote;
    return router_.Handle(req);
  }

  // ErrorOf checks that `r` is a JSON error with `status` and `code`, and returns its message.
  static std::string ErrorOf(const net::HttpResponse& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r.body;
    json j = json::parse(r.body, nullptr, false);
    if (!j.is_object() || !j.contains("error") || !j.contains("message")) {
      ADD_FAILURE() << "not a JSON error: " << r.body;
      return "";
    }
    EXPECT_EQ(j["error"], code) << r.body;
    return j["message"].get<std::string>();
  }

  std::mutex mu_;
  std::vector<std::string> calls_;
  std::vector<json> bodies_;
  std::vector<bool> held_;
  Router router_;
};

TEST_F(RouterTest, UnknownRouteIs404AndCallsNothing) {
  EXPECT_EQ(ErrorOf(Call("POST", "/v1/nothing", "{}"), 404, "not_found"),
            "no such endpoint: POST /v1/nothing");
  EXPECT_EQ(ErrorOf(Call("GET", "/v1/keeper/extra", ""), 404, "not_found"),
            "no such endpoint: GET /v1/keeper/extra");
  EXPECT_EQ(ErrorOf(Call("GET", "/v1/sealed/", ""), 404, "not_found"),
            "no such endpoint: GET /v1/sealed/");
  EXPECT_TRUE(calls_.empty());
}

TEST_F(RouterTest, WrongMethodOnABodyRouteIs400AndOnAGetRouteIs404) {
  for (const char* method : {"GET", "PUT", "DELETE"})
    EXPECT_EQ(ErrorOf(Call(method, "/v1/sealed", "{}"), 400, "invalid_argument"),
              "this endpoint takes POST")
        << method;
  // As before the split: /v1/keeper is known only for GET, other methods do not find it.
  EXPECT_EQ(ErrorOf(Call("POST", "/v1/keeper", "{}"), 404, "not_found"),
            "no such endpoint: POST /v1/keeper");
  EXPECT_TRUE(calls_.empty());
}

TEST_F(RouterTest, EachRouteReachesItsHandlerWithTheRightLock) {
  auto r = Call("GET", "/v1/keeper", "ignored, not parsed");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), (json{{"id", "k1"}}));
  r = Call("POST", "/v1/sealed", R"({"a": [1, 2]})");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(json::parse(r.body), (json{{"echo", {{"a", {1, 2}}}}}));
  r = Call("POST", "/v1/own", "{}");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(calls_, (std::vector<std::string>{"info", "sealed", "own"}));
  EXPECT_TRUE(bodies_[0].is_null());  // a GET handler gets no body
  EXPECT_EQ(bodies_[1], (json{{"a", {1, 2}}}));
  // kSealedState routes run with the sealed-state mutex held, kHandler routes without it.
  EXPECT_EQ(held_, (std::vector<bool>{true, true, false}));
  EXPECT_FALSE(HeldElsewhere(mu_));  // and it is released afterwards
}

TEST_F(RouterTest, MalformedBodyIs400BeforeTheHandler) {
  for (const char* body : {"", "{", "not json", "[1,2]", "\"string\"", "{\"a\":}"})
    EXPECT_THAT(ErrorOf(Call("POST", "/v1/sealed", body), 400, "invalid_argument"),
                HasSubstr("JSON"))
        << body;
  std::string deep(10000, '[');
  EXPECT_EQ(Call("POST", "/v1/own", "{\"a\":" + deep).status, 400);
  EXPECT_TRUE(calls_.empty());
}

TEST_F(RouterTest, HandlerErrorsAreRenderedAsJsonWithTheirStatus) {
  EXPECT_EQ(ErrorOf(Call("POST", "/v1/refuse", "{}"), 403, "permission_denied"),
            "client key is not on this keeper's allowlist");
  EXPECT_FALSE(HeldElsewhere(mu_));
}

TEST_F(RouterTest, RepeatedFailuresFromOneAddressAreThrottledBeforeDispatch) {
  for (int i = 0; i < 100; ++i)
    EXPECT_EQ(Call("POST", "/v1/refuse", "{}", "10.0.0.1:1").status, 403);
  EXPECT_EQ(calls_.size(), 100u);
  auto r = Call("POST", "/v1/own", "{}", "10.0.0.1:2");  // same host, other port
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(json::parse(r.body)["error"], "rate_limited");
  EXPECT_EQ(calls_.size(), 100u);  // not dispatched
  EXPECT_EQ(router_.refused_by_limiter(), 1u);
  EXPECT_EQ(Call("POST", "/v1/own", "{}", "10.0.0.2:1").status, 200);  // another address is served
  // Successes are never counted against an address.
  for (int i = 0; i < 150; ++i) ASSERT_EQ(Call("POST", "/v1/own", "{}", "10.0.0.3:1").status, 200);
}

}  // namespace
}  // namespace custos::keeper
