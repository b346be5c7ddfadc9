#include "protocol/audit/entry.h"

#include <cstdio>
#include <ctime>

namespace custos::audit {

std::string Rfc3339Millis(std::chrono::system_clock::time_point t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() %
            1000;
  if (ms < 0) ms += 1000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[48];
  std::snprintf(out, sizeof out, "%s.%03dZ", date, static_cast<int>(ms));
  return out;
}

nlohmann::json Entry::ToJson() const {
  nlohmann::json j = {{"time", Rfc3339Millis(time)},
                      {"request_id", request_id},
                      {"principal", principal},
                      {"access_key_id", access_key_id},
                      {"operation", operation},
                      {"key_id", key_id},
                      {"outcome", outcome},
                      {"http_status", http_status},
                      {"source", source}};
  if (!request_metadata.is_null()) j["request_metadata"] = request_metadata;
  return j;
}

}  // namespace custos::audit
