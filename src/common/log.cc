#include "common/log.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace custos {

std::string LogTimestamp() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void LogLine(nlohmann::json line) {
  if (!line.is_object()) line = nlohmann::json{{"msg", line}};
  line["time"] = LogTimestamp();
  std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  // One write: lines of concurrent threads (and of processes sharing the descriptor) stay whole.
  size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(STDERR_FILENO, text.data() + off, text.size() - off);
    if (n <= 0) break;
    off += static_cast<size_t>(n);
  }
}

void Log(const std::string& level, const std::string& component, const std::string& msg,
         const nlohmann::json& extra) {
  nlohmann::json j = {{"level", level}, {"component", component}, {"msg", msg}};
  for (auto& [k, v] : extra.items()) j[k] = v;
  LogLine(std::move(j));
}

}  // namespace custos
