// SourceLimiter: a per-source budget of events in fixed windows, for every listener that
// answers requests before (or instead of) authenticating them. Events are counted per key (e.g.
// the client address, and the access key id it claims); a key over its budget is refused until
// its window ends, before any expensive check runs. Used for failed authentications (only
// failures are recorded, so a good client is throttled only if its own key fails) and for
// unauthenticated handshakes (every one is recorded).
//
// Thread safety: all methods may be called concurrently.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace custos::net {

class SourceLimiter {
 public:
  // At most `max_failures` events per `window` per key; at most `max_keys` keys are tracked (beyond,
  // expired windows are dropped first, then the table is cleared: a burst of distinct keys
  // resets the count rather than growing memory).
  SourceLimiter(uint32_t max_failures, std::chrono::seconds window, size_t max_keys = 16384);

  // Allowed reports whether `key` may be served now (false while over its budget).
  bool Allowed(const std::string& key);
  // Record counts one event of `key`.
  void Record(const std::string& key);
  // TryTake is Allowed, then Record when allowed.
  bool TryTake(const std::string& key);
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

}  // namespace custos::net
