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

Status CheckJsonDepth(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;  // the escaped character cannot end the string
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return InvalidArgument("JSON nested deeper than " + std::to_string(max_depth) + " levels");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return Status::Ok();
}

StatusOr<nlohmann::json> ParseJsonObject(std::string_view text) {
  if (text.empty()) return nlohmann::json::object();
  RETURN_IF_ERROR(CheckJsonDepth(text));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("request body is not a JSON object");
  return j;
}

}  // namespace custos::net
