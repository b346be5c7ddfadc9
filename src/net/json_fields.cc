#include "net/json_fields.h"

namespace custos::net {

StatusOr<std::string> GetString(const nlohmann::json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || !j[field].is_string())
    return InvalidArgument(std::string("missing or non-string field '") + field + "'");
  return j[field].get<std::string>();
}

StatusOr<Bytes> GetHex(const nlohmann::json& j, const char* field) {
  ASSIGN_OR_RETURN(std::string s, GetString(j, field));
  auto b = HexDecode(s);
  if (!b.ok()) return InvalidArgument(std::string("field '") + field + "' is not hex");
  return b;
}

StatusOr<Bytes> GetBase64(const nlohmann::json& j, const char* field) {
  ASSIGN_OR_RETURN(std::string s, GetString(j, field));
  auto b = Base64Decode(s);
  if (!b.ok()) return InvalidArgument(std::string("field '") + field + "' is not base64");
  return b;
}

}  // namespace custos::net
