// Reading fields of a JSON request or response body: a missing or mistyped field becomes a
// kInvalidArgument that names it. Shared by every custos server and client.
#pragma once

#include <string>

#include "common/bytes.h"
#include "common/status.h"
#include "nlohmann/json.hpp"

namespace custos::net {

// GetString returns the string field `field` of object `j`.
StatusOr<std::string> GetString(const nlohmann::json& j, const char* field);
// GetHex returns the hex-decoded string field `field`.
StatusOr<Bytes> GetHex(const nlohmann::json& j, const char* field);
// GetBase64 returns the base64-decoded string field `field`.
StatusOr<Bytes> GetBase64(const nlohmann::json& j, const char* field);

// kMaxJsonDepth bounds the nesting of every JSON body a custos server parses: none of the
// custos formats nests deeper than a few levels, and a recursive parser must not be driven
// into megabytes of nested arrays before anyone is authenticated.
inline constexpr size_t kMaxJsonDepth = 32;
// CheckJsonDepth scans `text` once (strings and escapes skipped) and fails with
// kInvalidArgument "JSON nested deeper than N levels" before any parser runs. It does not
// validate the JSON otherwise.
Status CheckJsonDepth(std::string_view text, size_t max_depth = kMaxJsonDepth);
// ParseJsonObject checks the depth, parses, and requires an object (kInvalidArgument
// "request body is not a JSON object" otherwise). An empty body is {}.
StatusOr<nlohmann::json> ParseJsonObject(std::string_view text);

}  // namespace custos::net
