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

}  // namespace custos::net
