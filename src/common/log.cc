#include "common/log.h"

#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace custos {
namespace {

int LevelRank(std::string_view level) {
  if (level == "debug") return 0;
  if (level == "info") return 1;
  if (level == "warn") return 2;
  if (level == "error") return 3;
  return 1;
}

// The format and threshold, read once from the environment (and the terminal).
struct LogSettings {
  bool json = true;
  int min_rank = 0;
  LogSettings() {
    const char* fmt = std::getenv("CUSTOS_LOG_FORMAT");
    if (fmt != nullptr && std::strcmp(fmt, "text") == 0) json = false;
    else if (fmt != nullptr && std::strcmp(fmt, "json") == 0) json = true;
    else json = isatty(STDERR_FILENO) == 0;
    const char* level = std::getenv("CUSTOS_LOG_LEVEL");
    if (level != nullptr) min_rank = LevelRank(level);
  }
};

const LogSettings& Settings() {
  static const LogSettings settings;
  return settings;
}

}  // namespace

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

std::string FormatLogText(const nlohmann::json& line) {
  auto str = [&](const char* k) { return line.contains(k) && line[k].is_string() ? line[k].get<std::string>() : ""; };
  std::string level = str("level");
  for (char& c : level) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::string out = str("time") + " " + level + (level.size() < 5 ? std::string(5 - level.size(), ' ') : "") + " " +
                    str("component") + ": " + str("msg");
  std::string rest;
  for (auto& [k, v] : line.items()) {
    if (k == "time" || k == "level" || k == "component" || k == "msg") continue;
    rest += (rest.empty() ? "" : " ") + k + "=" +
            (v.is_string() ? v.get<std::string>() : v.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  if (!rest.empty()) out += "  (" + rest + ")";
  return out;
}

void LogLine(nlohmann::json line) {
  if (!line.is_object()) line = nlohmann::json{{"msg", line}};
  const LogSettings& s = Settings();
  if (LevelRank(line.value("level", "info")) < s.min_rank) return;
  line["time"] = LogTimestamp();
  std::string text = (s.json ? line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) : FormatLogText(line)) + "\n";
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
