// FailureLimiter: a per-source bound on failed requests, for every listener that answers
// requests before (or instead of) authenticating them. Failures are counted per key (e.g. the
// client address and the access key id it claims) in fixed windows; a key over its budget is
// refused until its window ends, before any expensive check runs. Successful requests cost
// nothing and are never refused by it, so a good client is throttled only if its own key fails.
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace custos::net {

class FailureLimiter {
 public:
  // At most `max_failures` per `window` per key; at most `max_keys` keys are tracked (beyond,
  // expired windows are dropped first, then the table is cleared: a burst of distinct keys
  // resets the count rather than growing memory).
  FailureLimiter(uint32_t max_failures, std::chrono::seconds window, size_t max_keys = 16384);

  // Allowed reports whether `key` may be served now (false while over its budget).
  bool Allowed(const std::string& key);
  // RecordFailure counts one failure of `key`.
  void RecordFailure(const std::string& key);
  // refused counts the requests Allowed turned away.
  uint64_t refused() const;

 private:
  struct Window {
    std::chrono::steady_clock::time_point start;
    uint32_t failures = 0;
  };
  const uint32_t max_failures_;
  const std::chrono::seconds window_;
  const size_t max_keys_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, Window> windows_;
  uint64_t refused_ = 0;
};

// ClientAddress returns the host part of an HttpRequest::remote ("1.2.3.4:5678" -> "1.2.3.4",
// "[::1]:80" -> "::1").
std::string ClientAddress(const std::string& remote);

}  // namespace custos::net
