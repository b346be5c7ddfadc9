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

namespace {

// Plain: printable ASCII with nothing JSON escapes, so the text is the bytes themselves.
bool Plain(std::string_view s) {
  for (char c : s)
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
  return true;
}

void Field(std::string& out, std::string_view name, std::string_view value) {
  out += '"';
  out += name;
  out += "\":\"";
  out += value;
  out += "\",";
}

}  // namespace

std::string Entry::ToText() const {
  if (!request_metadata.is_null() || !Plain(request_id) || !Plain(principal) || !Plain(access_key_id) ||
      !Plain(operation) || !Plain(key_id) || !Plain(outcome) || !Plain(source))
    return ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string out;
  out.reserve(160 + request_id.size() + principal.size() + access_key_id.size() + operation.size() +
              key_id.size() + outcome.size() + source.size());
  // The keys in nlohmann's (std::map) order.
  out += '{';
  Field(out, "access_key_id", access_key_id);
  out += "\"http_status\":";
  out += std::to_string(http_status);
  out += ',';
  Field(out, "key_id", key_id);
  Field(out, "operation", operation);
  Field(out, "outcome", outcome);
  Field(out, "principal", principal);
  Field(out, "request_id", request_id);
  Field(out, "source", source);
  Field(out, "time", Rfc3339Millis(time));
  out.back() = '}';
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
