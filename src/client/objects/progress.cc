#include "client/objects/progress.h"

#include <cstdio>
#include <iostream>

namespace custos::objects {

std::string FormatBytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
  return buf;
}

std::string FormatProgress(uint64_t done, uint64_t total, double seconds) {
  std::string line = FormatBytes(done);
  if (total > 0) {
    line += " / " + FormatBytes(total);
    char pct[16];
    std::snprintf(pct, sizeof pct, "  %3d%%", static_cast<int>(done >= total ? 100 : done * 100 / total));
    line += pct;
  }
  double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
  line += "  " + FormatBytes(static_cast<uint64_t>(rate)) + "/s";
  if (total > 0 && rate > 0 && done < total) {
    uint64_t eta = static_cast<uint64_t>(static_cast<double>(total - done) / rate + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "  ETA %llu:%02llu:%02llu", static_cast<unsigned long long>(eta / 3600),
                  static_cast<unsigned long long>(eta / 60 % 60), static_cast<unsigned long long>(eta % 60));
    line += buf;
  }
  return line;
}

ProgressBar::ProgressBar(const TransferStats& stats, bool enabled)
    : stats_(stats), enabled_(enabled), start_(std::chrono::steady_clock::now()) {
  if (enabled_) thread_ = std::thread([this] { Loop(); });
}

ProgressBar::~ProgressBar() { Stop(); }

void ProgressBar::SetTotal(uint64_t total) { total_ = total; }

double ProgressBar::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressBar::Stop() {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) {
    thread_.join();
    Draw();
    std::cerr << "\n" << std::flush;
  }
}

void ProgressBar::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  while (!stopping_) {
    cv_.wait_for(l, std::chrono::milliseconds(200), [&] { return stopping_; });
    if (!stopping_) Draw();
  }
}

void ProgressBar::Draw() {
  // \r and clear-to-end-of-line: the line shrinks as well as grows.
  std::cerr << "\r\033[K  " << FormatProgress(stats_.bytes.load(), total_.load(), elapsed()) << std::flush;
}

}  // namespace custos::objects
