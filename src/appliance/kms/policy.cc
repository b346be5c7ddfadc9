// KMS key policies: parsing (a strict subset of the AWS policy language, refused element by
// element) and evaluation (AWS's order: explicit Deny, then Allow, else implicit deny).
#include "appliance/kms/policy.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <set>
#include <utility>

#include "nlohmann/json.hpp"

namespace custos::kms {
namespace {

using Json = nlohmann::json;

constexpr size_t kMaxDocumentBytes = 32 * 1024;
// The deepest legitimate nesting is Statement[] > {} > Condition > Operator > Key > [values]:
// six containers. Anything much deeper is refused before it is built.
constexpr int kMaxDepth = 12;
constexpr size_t kMaxSidLength = 128;
constexpr size_t kMaxEchoLength = 64;  // of input echoed into an error message

// ---------------------------------------------------------------------------------------------
// Text helpers.

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) return false;
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Echo renders input for an error message: printable ASCII kept, anything else as \xNN, cut
// at kMaxEchoLength characters so a message stays one short line whatever the document holds.
std::string Echo(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  size_t i = 0;
  for (; i < s.size() && out.size() < kMaxEchoLength; ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  if (i < s.size()) out += "...";
  return out;
}

std::string Quoted(std::string_view s) { return "\"" + Echo(s) + "\""; }

// Utf8Length is the length of the UTF-8 sequence starting with `lead` (1 for a stray byte).
size_t Utf8Length(unsigned char lead) {
  if (lead >= 0xf0 && lead < 0xf8) return 4;
  if (lead >= 0xe0) return lead < 0xf0 ? 3 : 1;
  if (lead >= 0xc0) return 2;
  return 1;
}

// WildcardMatch is AWS's matching: `*` any sequence (possibly empty), `?` exactly one
// character. Iterative with a single backtrack point, so O(|pattern| * |text|) at worst.
bool WildcardMatch(std::string_view pattern, std::string_view text) {
  size_t p = 0, t = 0;
  size_t star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '?') {
      ++p;
      t = std::min(text.size(), t + Utf8Length(static_cast<unsigned char>(text[t])));
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && pattern[p] == text[t]) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

bool IsAccountId(std::string_view s) {
  return s.size() == 12 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---------------------------------------------------------------------------------------------
// Parsing JSON: nlohmann with a callback that refuses deep nesting and duplicate fields (a
// duplicate would otherwise silently keep only its last value).

struct JsonRefusal {
  std::string message;
};

StatusOr<Json> ParseJson(std::string_view document) {
  std::vector<std::set<std::string>> seen;  // field names of each open object
  Json::parser_callback_t callback = [&seen](int depth, Json::parse_event_t event,
                                             Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
        if (depth >= kMaxDepth) throw JsonRefusal{"policy: nested too deeply"};
        seen.emplace_back();
        break;
      case Json::parse_event_t::array_start:
        if (depth >= kMaxDepth) throw JsonRefusal{"policy: nested too deeply"};
        break;
      case Json::parse_event_t::object_end:
        if (!seen.empty()) seen.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!seen.empty() && parsed.is_string()) {
          const auto& name = parsed.get_ref<const std::string&>();
          if (!seen.back().insert(name).second) {
            throw JsonRefusal{"policy: duplicate field " + Quoted(name)};
          }
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(document.begin(), document.end(), callback);
  } catch (const JsonRefusal& refusal) {
    return InvalidArgument(refusal.message);
  } catch (const std::exception&) {
    return InvalidArgument("policy: not valid JSON");
  }
}

// ---------------------------------------------------------------------------------------------
// The parsed form.

enum class KeyKind {
  kEncryptionContext,      // kms:EncryptionContext:<context_key>
  kEncryptionContextKeys,  // multi-valued
  kCallerAccount,
  kPrincipalArn,
  kUsername,
  kKeySpec,
  kKeyUsage,
};

enum class Compare { kEquals, kEqualsIgnoreCase, kLike, kBool, kNull };
enum class SetOp { kNone, kForAllValues, kForAnyValue };

struct Condition {
  Compare compare = Compare::kEquals;
  bool negated = false;
  bool if_exists = false;
  SetOp set = SetOp::kNone;
  KeyKind key = KeyKind::kCallerAccount;
  std::string context_key;          // for kEncryptionContext, case preserved
  std::vector<std::string> values;  // OR; Bool and Null values are "true" / "false"
};

struct Principal {
  enum Kind { kAnyone, kAccount, kArn } kind = kAnyone;
  std::string value;  // the account ID, or the exact ARN
};

struct ParsedOperator {
  Compare compare;
  bool negated;
  bool if_exists;
  SetOp set;
};

std::optional<ParsedOperator> ParseOperator(std::string_view name) {
  ParsedOperator op{Compare::kEquals, false, false, SetOp::kNone};
  if (name.rfind("ForAllValues:", 0) == 0) {
    op.set = SetOp::kForAllValues;
    name.remove_prefix(13);
  } else if (name.rfind("ForAnyValue:", 0) == 0) {
    op.set = SetOp::kForAnyValue;
    name.remove_prefix(12);
  }
  constexpr std::string_view kIfExists = "IfExists";
  if (name.size() > kIfExists.size() && name.substr(name.size() - kIfExists.size()) == kIfExists) {
    op.if_exists = true;
    name.remove_suffix(kIfExists.size());
  }
  if (name == "StringEquals") {
    op.compare = Compare::kEquals;
  } else if (name == "StringNotEquals") {
    op.compare = Compare::kEquals;
    op.negated = true;
  } else if (name == "StringEqualsIgnoreCase") {
    op.compare = Compare::kEqualsIgnoreCase;
  } else if (name == "StringNotEqualsIgnoreCase") {
    op.compare = Compare::kEqualsIgnoreCase;
    op.negated = true;
  } else if (name == "StringLike") {
    op.compare = Compare::kLike;
  } else if (name == "StringNotLike") {
    op.compare = Compare::kLike;
    op.negated = true;
  } else if (name == "Bool") {
    op.compare = Compare::kBool;
  } else if (name == "Null") {
    // Null tests presence itself: neither IfExists nor a set operator means anything on it.
    if (op.if_exists || op.set != SetOp::kNone) return std::nullopt;
    op.compare = Compare::kNull;
  } else {
    return std::nullopt;
  }
  return op;
}

}  // namespace

struct KeyPolicy::Statement {
  std::string label;  // `statement "Sid"` or `Statement[i]`, for reasons
  bool deny = false;
  bool not_principal = false;
  std::vector<Principal> principals;
  bool not_action = false;
  std::vector<std::string> actions;  // lower-cased patterns
  bool not_resource = false;
  std::vector<std::string> resources;  // patterns; absent Resource is {"*"}
  std::vector<Condition> conditions;   // AND
};

namespace {

// ---------------------------------------------------------------------------------------------
// Element parsers. `where` names the element in messages, e.g. "Statement[2].Action".

// StringList reads a string or a non-empty array of strings.
StatusOr<std::vector<std::string>> StringList(const Json& j, const std::string& where) {
  std::vector<std::string> out;
  if (j.is_string()) {
    out.push_back(j.get<std::string>());
    return out;
  }
  if (!j.is_array() || j.empty()) {
    return InvalidArgument("policy: " + where +
                           " must be a string or a non-empty array of strings");
  }
  for (const Json& item : j) {
    if (!item.is_string()) {
      return InvalidArgument("policy: " + where +
                             " must be a string or a non-empty array of strings");
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

std::string Indexed(const std::string& where, size_t i, size_t n) {
  return n == 1 ? where : where + "[" + std::to_string(i) + "]";
}

StatusOr<std::vector<Principal>> ParsePrincipal(const Json& j, const std::string& where) {
  std::vector<Principal> out;
  if (j.is_string()) {
    if (j.get<std::string>() != "*") {
      return InvalidArgument("policy: " + where + " must be \"*\" or {\"AWS\": ...}");
    }
    out.push_back(Principal{Principal::kAnyone, ""});
    return out;
  }
  if (!j.is_object()) {
    return InvalidArgument("policy: " + where + " must be \"*\" or {\"AWS\": ...}");
  }
  for (const auto& [type, value] : j.items()) {
    if (type != "AWS") {
      return InvalidArgument("policy: " + where + ": unsupported principal type " + Quoted(type) +
                             " (only \"AWS\")");
    }
  }
  if (!j.contains("AWS")) {
    return InvalidArgument("policy: " + where + " must be \"*\" or {\"AWS\": ...}");
  }
  const std::string aws_where = where + ".AWS";
  ASSIGN_OR_RETURN(std::vector<std::string> names, StringList(j["AWS"], aws_where));
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const std::string element = Indexed(aws_where, i, names.size());
    if (name == "*") {
      out.push_back(Principal{Principal::kAnyone, ""});
      continue;
    }
    if (name.find_first_of("*?") != std::string::npos) {
      return InvalidArgument("policy: " + element + ": " + Quoted(name) +
                             ": wildcards are allowed only as the whole principal \"*\" (use "
                             "aws:PrincipalArn with StringLike to match a pattern)");
    }
    if (IsAccountId(name)) {
      out.push_back(Principal{Principal::kAccount, name});
      continue;
    }
    constexpr std::string_view kIam = "arn:aws:iam::";
    if (name.rfind(kIam, 0) == 0) {
      std::string_view rest = std::string_view(name).substr(kIam.size());
      size_t colon = rest.find(':');
      if (colon != std::string_view::npos && colon > 0 && rest.substr(colon + 1) == "root") {
        out.push_back(Principal{Principal::kAccount, std::string(rest.substr(0, colon))});
        continue;
      }
      if (colon != std::string_view::npos && colon > 0 && rest.size() > colon + 1) {
        out.push_back(Principal{Principal::kArn, name});
        continue;
      }
    }
    return InvalidArgument("policy: " + element + ": " + Quoted(name) +
                           " is not \"*\", a 12-digit account ID or an arn:aws:iam:: ARN");
  }
  return out;
}

StatusOr<std::vector<std::string>> ParseActions(const Json& j, const std::string& where) {
  ASSIGN_OR_RETURN(std::vector<std::string> actions, StringList(j, where));
  for (size_t i = 0; i < actions.size(); ++i) {
    if (actions[i] != "*" && !StartsWithIgnoreCase(actions[i], "kms:")) {
      return InvalidArgument("policy: " + Indexed(where, i, actions.size()) + ": " +
                             Quoted(actions[i]) + " is not a kms: action");
    }
    actions[i] = ToLower(actions[i]);
  }
  return actions;
}

StatusOr<std::vector<std::string>> ParseResources(const Json& j, const std::string& where) {
  ASSIGN_OR_RETURN(std::vector<std::string> resources, StringList(j, where));
  for (size_t i = 0; i < resources.size(); ++i) {
    const std::string& r = resources[i];
    const std::string element = Indexed(where, i, resources.size());
    if (r.find("${") != std::string::npos) {
      return InvalidArgument("policy: " + element +
                             ": policy variables (${...}) are not supported");
    }
    if (r != "*" && r.rfind("arn:", 0) != 0) {
      return InvalidArgument("policy: " + element + ": " + Quoted(r) + " is not \"*\" or an ARN");
    }
  }
  return resources;
}

// ParseConditionKey recognises a condition key (names are case-insensitive; the context key
// after kms:EncryptionContext: keeps its case).
bool ParseConditionKey(std::string_view name, Condition& c) {
  constexpr std::string_view kContextPrefix = "kms:EncryptionContext:";
  if (StartsWithIgnoreCase(name, kContextPrefix)) {
    if (name.size() == kContextPrefix.size()) return false;
    c.key = KeyKind::kEncryptionContext;
    c.context_key = std::string(name.substr(kContextPrefix.size()));
    return true;
  }
  static const std::pair<std::string_view, KeyKind> kKeys[] = {
      {"kms:EncryptionContextKeys", KeyKind::kEncryptionContextKeys},
      {"kms:CallerAccount", KeyKind::kCallerAccount},
      {"aws:PrincipalArn", KeyKind::kPrincipalArn},
      {"aws:username", KeyKind::kUsername},
      {"kms:KeySpec", KeyKind::kKeySpec},
      {"kms:KeyUsage", KeyKind::kKeyUsage},
  };
  for (const auto& [known, kind] : kKeys) {
    if (EqualsIgnoreCase(name, known)) {
      c.key = kind;
      return true;
    }
  }
  return false;
}

// ConditionValues reads a value or non-empty array of values: strings, or booleans (AWS's
// {"Bool": {"k": true}}), kept as "true" / "false".
StatusOr<std::vector<std::string>> ConditionValues(const Json& j, const std::string& where) {
  const std::string message =
      "policy: " + where + " must be a string or a non-empty array of strings";
  auto one = [](const Json& v) -> std::optional<std::string> {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
    return std::nullopt;
  };
  std::vector<std::string> out;
  if (j.is_array()) {
    if (j.empty()) return InvalidArgument(message);
    for (const Json& v : j) {
      auto s = one(v);
      if (!s) return InvalidArgument(message);
      out.push_back(std::move(*s));
    }
    return out;
  }
  auto s = one(j);
  if (!s) return InvalidArgument(message);
  out.push_back(std::move(*s));
  return out;
}

StatusOr<std::vector<Condition>> ParseConditions(const Json& j, const std::string& where) {
  if (!j.is_object()) return InvalidArgument("policy: " + where + " must be an object");
  std::vector<Condition> out;
  for (const auto& [op_name, keys] : j.items()) {
    std::optional<ParsedOperator> op = ParseOperator(op_name);
    if (!op) {
      return InvalidArgument("policy: " + where + ": unsupported operator " + Echo(op_name));
    }
    const std::string op_where = where + "." + Echo(op_name);
    if (!keys.is_object() || keys.empty()) {
      return InvalidArgument("policy: " + op_where +
                             " must be a non-empty object of condition keys");
    }
    for (const auto& [key_name, value] : keys.items()) {
      Condition c;
      c.compare = op->compare;
      c.negated = op->negated;
      c.if_exists = op->if_exists;
      c.set = op->set;
      if (!ParseConditionKey(key_name, c)) {
        return InvalidArgument("policy: " + op_where + ": unsupported condition key " +
                               Echo(key_name));
      }
      const std::string key_where = op_where + "." + Echo(key_name);
      bool multi = c.key == KeyKind::kEncryptionContextKeys;
      if (c.set != SetOp::kNone && !multi) {
        return InvalidArgument("policy: " + op_where + ": " + Echo(key_name) +
                               " is single-valued; ForAllValues: and ForAnyValue: apply only to "
                               "kms:EncryptionContextKeys");
      }
      if (multi && c.set == SetOp::kNone && c.compare != Compare::kNull) {
        return InvalidArgument("policy: " + op_where +
                               ": kms:EncryptionContextKeys is multi-valued; use ForAllValues: "
                               "or ForAnyValue:");
      }
      ASSIGN_OR_RETURN(c.values, ConditionValues(value, key_where));
      for (std::string& v : c.values) {
        if (c.compare == Compare::kBool || c.compare == Compare::kNull) {
          v = ToLower(v);
          if (v != "true" && v != "false") {
            return InvalidArgument("policy: " + key_where +
                                   ": values must be \"true\" or \"false\"");
          }
        } else if (v.find("${") != std::string::npos) {
          return InvalidArgument("policy: " + key_where +
                                 ": policy variables (${...}) are not supported");
        }
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

bool PrintableAscii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

// ---------------------------------------------------------------------------------------------
// Evaluation.

bool PrincipalMatches(const Principal& p, const PolicyRequest& r) {
  switch (p.kind) {
    case Principal::kAnyone:
      return true;
    case Principal::kAccount:
      return !r.account_id.empty() && r.account_id == p.value;
    case Principal::kArn:
      return r.principal_arn == p.value;
  }
  return false;
}

// Username is NAME of arn:aws:iam::ACCOUNT:user/[PATH/]NAME; absent for other principals.
std::optional<std::string> Username(std::string_view arn) {
  size_t colon = arn.rfind(':');
  if (arn.rfind("arn:", 0) != 0 || colon == std::string_view::npos) return std::nullopt;
  std::string_view resource = arn.substr(colon + 1);
  if (resource.rfind("user/", 0) != 0) return std::nullopt;
  std::string_view name = resource.substr(resource.rfind('/') + 1);
  if (name.empty()) return std::nullopt;
  return std::string(name);
}

std::optional<std::string> NonEmpty(const std::string& s) {
  if (s.empty()) return std::nullopt;
  return s;
}

std::optional<std::string> SingleValue(const Condition& c, const PolicyRequest& r) {
  switch (c.key) {
    case KeyKind::kEncryptionContext: {
      auto it = r.encryption_context.find(c.context_key);
      if (it == r.encryption_context.end()) return std::nullopt;
      return it->second;
    }
    case KeyKind::kCallerAccount:
      return NonEmpty(r.account_id);
    case KeyKind::kPrincipalArn:
      return NonEmpty(r.principal_arn);
    case KeyKind::kUsername:
      return Username(r.principal_arn);
    case KeyKind::kKeySpec:
      return NonEmpty(r.key_spec);
    case KeyKind::kKeyUsage:
      return NonEmpty(r.key_usage);
    case KeyKind::kEncryptionContextKeys:
      break;
  }
  return std::nullopt;
}

// ValueMatches applies the operator (negation included) to one request value: the policy's
// values are ORed, a negated operator is true when none of them matches.
bool ValueMatches(const Condition& c, const std::string& actual) {
  bool any = false;
  for (const std::string& expected : c.values) {
    switch (c.compare) {
      case Compare::kEquals:
        any = actual == expected;
        break;
      case Compare::kEqualsIgnoreCase:
        any = EqualsIgnoreCase(actual, expected);
        break;
      case Compare::kLike:
        any = WildcardMatch(expected, actual);
        break;
      case Compare::kBool:
        any = ToLower(actual) == expected;
        break;
      case Compare::kNull:
        break;
    }
    if (any) break;
  }
  return c.negated ? !any : any;
}

bool ConditionHolds(const Condition& c, const PolicyRequest& r) {
  if (c.key == KeyKind::kEncryptionContextKeys) {
    const bool present = !r.encryption_context.empty();
    if (c.compare == Compare::kNull) {
      return std::find(c.values.begin(), c.values.end(), present ? "false" : "true") !=
             c.values.end();
    }
    if (!present && c.if_exists) return true;
    if (c.set == SetOp::kForAllValues) {
      return std::all_of(r.encryption_context.begin(), r.encryption_context.end(),
                         [&](const auto& kv) { return ValueMatches(c, kv.first); });
    }
    return std::any_of(r.encryption_context.begin(), r.encryption_context.end(),
                       [&](const auto& kv) { return ValueMatches(c, kv.first); });
  }
  std::optional<std::string> actual = SingleValue(c, r);
  if (c.compare == Compare::kNull) {
    return std::find(c.values.begin(), c.values.end(), actual ? "false" : "true") != c.values.end();
  }
  if (!actual) return c.if_exists || c.negated;  // AWS: an absent key matches only negations
  return ValueMatches(c, *actual);
}

}  // namespace

KeyPolicy::KeyPolicy() = default;
KeyPolicy::KeyPolicy(KeyPolicy&&) noexcept = default;
KeyPolicy& KeyPolicy::operator=(KeyPolicy&&) noexcept = default;
KeyPolicy::~KeyPolicy() = default;

StatusOr<KeyPolicy> KeyPolicy::Parse(std::string_view document) {
  if (document.size() > kMaxDocumentBytes) {
    return InvalidArgument("policy: document is larger than 32 KiB");
  }
  ASSIGN_OR_RETURN(Json root, ParseJson(document));
  if (!root.is_object()) return InvalidArgument("policy: the document must be a JSON object");
  for (const auto& [field, value] : root.items()) {
    if (field != "Version" && field != "Id" && field != "Statement") {
      return InvalidArgument("policy: unknown top-level field " + Quoted(field));
    }
  }
  if (root.contains("Version") &&
      (!root["Version"].is_string() || root["Version"].get<std::string>() != "2012-10-17")) {
    return InvalidArgument("policy: Version must be \"2012-10-17\"");
  }
  if (root.contains("Id") && !root["Id"].is_string()) {
    return InvalidArgument("policy: Id must be a string");
  }
  if (!root.contains("Statement")) return InvalidArgument("policy: Statement is required");
  const Json& statements = root["Statement"];
  std::vector<const Json*> items;
  if (statements.is_object()) {
    items.push_back(&statements);
  } else if (statements.is_array()) {
    if (statements.empty()) return InvalidArgument("policy: Statement must not be empty");
    for (const Json& s : statements) items.push_back(&s);
  } else {
    return InvalidArgument("policy: Statement must be an object or an array of objects");
  }

  KeyPolicy policy;
  std::map<std::string, size_t> sids;
  for (size_t i = 0; i < items.size(); ++i) {
    const Json& s = *items[i];
    const std::string where = "Statement[" + std::to_string(i) + "]";
    if (!s.is_object()) return InvalidArgument("policy: " + where + " must be an object");
    static const std::set<std::string> kFields = {"Sid",          "Effect",      "Principal",
                                                  "NotPrincipal", "Action",      "NotAction",
                                                  "Resource",     "NotResource", "Condition"};
    for (const auto& [field, value] : s.items()) {
      if (!kFields.count(field)) {
        return InvalidArgument("policy: " + where + ": unknown field " + Quoted(field));
      }
    }
    Statement st;
    st.label = where;
    if (s.contains("Sid")) {
      if (!s["Sid"].is_string())
        return InvalidArgument("policy: " + where + ".Sid must be a string");
      const std::string& sid = s["Sid"].get_ref<const std::string&>();
      if (sid.size() > kMaxSidLength || !PrintableAscii(sid)) {
        return InvalidArgument("policy: " + where + ".Sid must be at most " +
                               std::to_string(kMaxSidLength) + " printable ASCII characters");
      }
      if (!sid.empty()) {
        auto [it, fresh] = sids.emplace(sid, i);
        if (!fresh) {
          return InvalidArgument("policy: " + where + ".Sid " + Quoted(sid) +
                                 " is also the Sid of Statement[" + std::to_string(it->second) +
                                 "]");
        }
        st.label = "statement \"" + sid + "\"";
      }
    }

    if (!s.contains("Effect")) return InvalidArgument("policy: " + where + ".Effect is required");
    const Json& effect = s["Effect"];
    if (effect == "Allow") {
      st.deny = false;
    } else if (effect == "Deny") {
      st.deny = true;
    } else {
      return InvalidArgument("policy: " + where + ".Effect must be Allow or Deny");
    }

    bool has_p = s.contains("Principal"), has_np = s.contains("NotPrincipal");
    if (has_p == has_np) {
      return InvalidArgument("policy: " + where +
                             " needs exactly one of Principal and NotPrincipal");
    }
    st.not_principal = has_np;
    const char* p_name = has_p ? "Principal" : "NotPrincipal";
    ASSIGN_OR_RETURN(st.principals, ParsePrincipal(s[p_name], where + "." + p_name));

    bool has_a = s.contains("Action"), has_na = s.contains("NotAction");
    if (has_a == has_na) {
      return InvalidArgument("policy: " + where + " needs exactly one of Action and NotAction");
    }
    st.not_action = has_na;
    const char* a_name = has_a ? "Action" : "NotAction";
    ASSIGN_OR_RETURN(st.actions, ParseActions(s[a_name], where + "." + a_name));

    bool has_r = s.contains("Resource"), has_nr = s.contains("NotResource");
    if (has_r && has_nr) {
      return InvalidArgument("policy: " + where + " has both Resource and NotResource");
    }
    st.not_resource = has_nr;
    if (has_r || has_nr) {
      const char* r_name = has_r ? "Resource" : "NotResource";
      ASSIGN_OR_RETURN(st.resources, ParseResources(s[r_name], where + "." + r_name));
    } else {
      st.resources = {"*"};
    }

    if (s.contains("Condition")) {
      ASSIGN_OR_RETURN(st.conditions, ParseConditions(s["Condition"], where + ".Condition"));
    }
    policy.statements_.push_back(std::move(st));
  }
  return policy;
}

PolicyResult KeyPolicy::Evaluate(const PolicyRequest& request) const {
  const std::string action = ToLower(request.action);
  auto matches = [&](const Statement& st) {
    bool principal = std::any_of(st.principals.begin(), st.principals.end(),
                                 [&](const Principal& p) { return PrincipalMatches(p, request); });
    if (principal == st.not_principal) return false;
    bool act = std::any_of(st.actions.begin(), st.actions.end(),
                           [&](const std::string& a) { return WildcardMatch(a, action); });
    if (act == st.not_action) return false;
    bool res = std::any_of(st.resources.begin(), st.resources.end(), [&](const std::string& r) {
      return WildcardMatch(r, request.resource_arn);
    });
    if (res == st.not_resource) return false;
    return std::all_of(st.conditions.begin(), st.conditions.end(),
                       [&](const Condition& c) { return ConditionHolds(c, request); });
  };

  const Statement* allow = nullptr;
  for (const Statement& st : statements_) {
    if (st.deny) {
      if (matches(st)) {
        return {PolicyDecision::kExplicitDeny, "explicitly denied by key policy " + st.label};
      }
    } else if (allow == nullptr && matches(st)) {
      allow = &st;
    }
  }
  if (allow != nullptr) return {PolicyDecision::kAllow, "allowed by key policy " + allow->label};
  return {PolicyDecision::kImplicitDeny,
          "no statement of the key policy allows " + Echo(request.action)};
}

std::string DefaultKeyPolicy(std::string_view account_id) {
  Json policy = {
      {"Version", "2012-10-17"},
      {"Id", "key-default-1"},
      {"Statement",
       Json::array({{{"Sid", "Enable IAM User Permissions"},
                     {"Effect", "Allow"},
                     {"Principal", {{"AWS", "arn:aws:iam::" + std::string(account_id) + ":root"}}},
                     {"Action", "kms:*"},
                     {"Resource", "*"}}})},
  };
  return policy.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace custos::kms
