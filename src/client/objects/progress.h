// ProgressBar: the one-line transfer display of `custos put|get` on a terminal —
// "  42.0 MiB / 100.0 MiB  42%  118.3 MiB/s  ETA 0:00:01" — redrawn five times a second from a
// TransferStats the transfer updates. Off when stderr is not a terminal or with --quiet.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "client/objects/object_store.h"

namespace custos::objects {

// FormatBytes renders a byte count with binary units ("512 B", "1.5 KiB", "100.0 MiB").
std::string FormatBytes(uint64_t bytes);
// FormatProgress renders one progress line (without the leading carriage return).
std::string FormatProgress(uint64_t done, uint64_t total, double seconds);

class ProgressBar {
 public:
  // The bar draws only when `enabled` (callers pass isatty(2) && !quiet).
  ProgressBar(const TransferStats& stats, bool enabled);
  ~ProgressBar();  // Stop()
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;
  // SetTotal fixes the number of bytes the transfer will move (may be called once it is known).
  void SetTotal(uint64_t total);
  // Stop draws the final state and ends the line; idempotent.
  void Stop();
  // elapsed is the time since construction.
  double elapsed() const;

 private:
  void Loop();
  void Draw();
  const TransferStats& stats_;
  const bool enabled_;
  const std::chrono::steady_clock::time_point start_;
  std::atomic<uint64_t> total_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::objects
