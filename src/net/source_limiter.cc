#include "net/source_limiter.h"

namespace custos::net {

SourceLimiter::SourceLimiter(uint32_t max_failures, std::chrono::seconds window, size_t max_keys)
    : max_failures_(max_failures), window_(window), max_keys_(max_keys) {}

bool SourceLimiter::Allowed(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = windows_.find(key);
  if (it == windows_.end()) return true;
  if (std::chrono::steady_clock::now() - it->second.start >= window_) {
    windows_.erase(it);
    return true;
  }
  if (it->second.failures < max_failures_) return true;
  ++refused_;
  return false;
}

void SourceLimiter::Record(const std::string& key) {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = std::chrono::steady_clock::now();
  auto it = windows_.find(key);
  if (it == windows_.end() || now - it->second.start >= window_) {
    if (it == windows_.end() && windows_.size() >= max_keys_) {
      for (auto w = windows_.begin(); w != windows_.end();)
        w = now - w->second.start >= window_ ? windows_.erase(w) : std::next(w);
      if (windows_.size() >= max_keys_) windows_.clear();
    }
    windows_[key] = Window{now, 1};
    return;
  }
  ++it->second.failures;
}

bool SourceLimiter::TryTake(const std::string& key) {
  if (!Allowed(key)) return false;
  Record(key);
  return true;
}

uint64_t SourceLimiter::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

}  // namespace custos::net
