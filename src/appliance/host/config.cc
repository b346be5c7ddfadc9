// server.toml parsing (config.h). One table, kFields, lists every key with the ServerConfig
// member it fills and how a path is treated; the parser, the unknown-key check and the renderer
// all walk it, so a key added there is parsed, accepted and rendered alike.
#include "appliance/host/config.h"

#include <regex>

#include <fcntl.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <variant>
#include <vector>

#include "net/http.h"

namespace custos::host {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxConfigBytes = size_t{1} << 20;
// At most this many unknown keys are named in one error; the rest are counted.
constexpr size_t kMaxUnknownNamed = 5;
// Key names from the file are shown escaped and cut to this many bytes.
constexpr size_t kMaxKeyDisplay = 64;

// PathRule says what happens to a string value after parsing.
enum class PathRule {
  kNone,      // used as written
  kResolve,   // a path; a relative one is resolved against base_dir
  kAbsolute,  // a path that must be absolute and non-empty
};

using FieldTarget =
    std::variant<std::string ServerConfig::*, uint16_t ServerConfig::*, bool ServerConfig::*>;

struct FieldSpec {
  std::string_view table;
  std::string_view key;
  FieldTarget target;
  PathRule path = PathRule::kNone;
};

constexpr std::array<std::string_view, 8> kTables = {"server", "tee",   "cluster", "kms",
                                                     "audit",  "store", "xks",     "kmip"};

const std::array<FieldSpec, 30> kFields = {{
    {"server", "listen", &ServerConfig::listen},
    {"server", "data_dir", &ServerConfig::data_dir, PathRule::kResolve},
    {"server", "custody", &ServerConfig::custody_path, PathRule::kResolve},
    {"server", "tls_cert", &ServerConfig::tls_cert, PathRule::kResolve},
    {"server", "tls_key", &ServerConfig::tls_key, PathRule::kResolve},
    {"server", "join", &ServerConfig::join_url},
    {"server", "insecure_http", &ServerConfig::insecure_http},
    {"server", "node_name", &ServerConfig::node_name},
    {"server", "cpu_scheduling", &ServerConfig::cpu_scheduling},
    {"tee", "backend", &ServerConfig::tee_backend},
    {"tee", "enclave_binary", &ServerConfig::enclave_binary, PathRule::kResolve},
    {"tee", "sim_key_dir", &ServerConfig::sim_key_dir, PathRule::kResolve},
    {"tee", "sim_product_id", &ServerConfig::sim_product_id},
    {"tee", "sim_svn", &ServerConfig::sim_svn},
    {"tee", "sim_debug", &ServerConfig::sim_debug},
    {"tee", "gramine_root", &ServerConfig::gramine_root, PathRule::kAbsolute},
    {"tee", "tsm_root", &ServerConfig::tsm_root, PathRule::kAbsolute},
    {"tee", "core_workers", &ServerConfig::core_workers},
    {"cluster", "collateral", &ServerConfig::join_collateral, PathRule::kResolve},
    {"cluster", "approval", &ServerConfig::join_approval, PathRule::kResolve},
    {"kms", "region", &ServerConfig::kms_region},
    {"kms", "account_id", &ServerConfig::kms_account_id},
    {"audit", "sync", &ServerConfig::audit_sync},
    {"store", "url", &ServerConfig::store_url},
    {"xks", "region", &ServerConfig::xks_region},
    {"xks", "max_requests_per_second", &ServerConfig::xks_max_requests_per_second},
    {"xks", "listen", &ServerConfig::xks_listen},
    {"xks", "client_ca", &ServerConfig::xks_client_ca, PathRule::kResolve},
    {"xks", "client_subject", &ServerConfig::xks_client_subject},
    {"kmip", "listen", &ServerConfig::kmip_listen},
}};

constexpr std::array<std::string_view, 3> kBackends = {"sim", "sgx-gramine", "tdx-configfs"};

const FieldSpec* FindField(std::string_view table, std::string_view key) {
  for (const FieldSpec& f : kFields) {
    if (f.table == table && f.key == key) return &f;
  }
  return nullptr;
}

bool IsKnownTable(std::string_view name) {
  for (std::string_view t : kTables) {
    if (t == name) return true;
  }
  return false;
}

bool IsBareKeyChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

// DisplayKey renders a key name from the file for an error message: a bare key as it is,
// anything else as a quoted string with every byte outside printable ASCII escaped, cut to
// kMaxKeyDisplay bytes, so a hostile key cannot inject line breaks or terminal controls.
std::string DisplayKey(std::string_view key) {
  bool bare = !key.empty() && key.size() <= kMaxKeyDisplay;
  for (char c : key) bare = bare && IsBareKeyChar(c);
  if (bare) return std::string(key);
  std::string out = "\"";
  for (size_t i = 0; i < key.size() && i < kMaxKeyDisplay; ++i) {
    unsigned char c = static_cast<unsigned char>(key[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  if (key.size() > kMaxKeyDisplay) out += "...";
  out += '"';
  return out;
}

std::string_view TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "table";
    case toml::node_type::array:
      return "array";
    case toml::node_type::string:
      return "string";
    case toml::node_type::integer:
      return "integer";
    case toml::node_type::floating_point:
      return "float";
    case toml::node_type::boolean:
      return "boolean";
    case toml::node_type::date:
      return "date";
    case toml::node_type::time:
      return "time";
    case toml::node_type::date_time:
      return "date-time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// SyntaxReason keeps the part of a toml++ error description that is the library's own text.
// toml++ (3.3) puts the offending input after "saw " ("saw 'x'", "saw 13") or in quotes
// ("'12ab' could not be interpreted", "cannot redefine existing string 'key'"); its only other
// quotes are short expectations ("expected ']'", "expected 'true'"). So everything from " saw "
// on is dropped, a quoted span of at most 5 characters is kept only after "expected", and any
// other quote ends the message: whatever toml++ says, the result cannot carry file content
// beyond 5 characters of an expectation.
std::string SyntaxReason(std::string_view description) {
  constexpr size_t kMaxExpectedQuote = 5;
  std::string_view text = description.substr(0, description.find(" saw "));
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'' || c == '"') {
      size_t close = text.find(c, i + 1);
      bool expectation = out.find("expected") != std::string::npos &&
                         close != std::string_view::npos && close - i - 1 <= kMaxExpectedQuote;
      if (!expectation) break;
      for (; i <= close; ++i) out += (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
      --i;
      continue;
    }
    out += (c >= 0x20 && c < 0x7f) ? c : '?';
  }
  while (!out.empty() && (out.back() == ' ' || out.back() == ',' || out.back() == ':')) {
    out.pop_back();
  }
  return out.empty() ? "invalid TOML" : out;
}

// ResolvePath joins a relative `path` to `base_dir` and drops "." components and empty ones
// (repeated or trailing separators). ".." is kept: collapsing it would be wrong across a
// symlink.
std::string ResolvePath(const std::string& base_dir, const std::string& path) {
  fs::path joined(path);
  if (joined.is_relative() && !base_dir.empty()) joined = fs::path(base_dir) / joined;
  fs::path out;
  for (const fs::path& part : joined) {
    if (part.empty() || part == ".") continue;
    out /= part;
  }
  return out.empty() ? std::string(".") : out.string();
}

bool IsHostChar(char c) { return IsBareKeyChar(c) || c == '.'; }
bool IsIpv6LiteralChar(char c) { return IsBareKeyChar(c) || c == '.' || c == ':' || c == '%'; }

// CheckListen checks "host:port" / "[v6]:port" the way net::HttpServer reads it, and also
// refuses an unbracketed IPv6 literal ("::1:8200" is ambiguous). Messages never quote it.
Status CheckListen(std::string_view listen) {
  std::string_view host, port;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string_view::npos) {
      return InvalidArgument("server.listen has an unterminated [IPv6] literal");
    }
    if (close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgument("server.listen must end with :PORT");
    }
    host = listen.substr(1, close - 1);
    port = listen.substr(close + 2);
    if (host.empty()) return InvalidArgument("server.listen has an empty host");
    for (char c : host) {
      if (!IsIpv6LiteralChar(c)) {
        return InvalidArgument("server.listen has an invalid [IPv6] literal");
      }
    }
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) {
      return InvalidArgument("server.listen must end with :PORT");
    }
    host = listen.substr(0, colon);
    port = listen.substr(colon + 1);
    if (host.empty()) return InvalidArgument("server.listen has an empty host");
    if (host.find(':') != std::string_view::npos) {
      return InvalidArgument("server.listen: an IPv6 address must be bracketed, as in [::1]:8200");
    }
    for (char c : host) {
      if (!IsHostChar(c)) return InvalidArgument("server.listen host has an invalid character");
    }
  }
  bool digits = !port.empty() && port.size() <= 5;
  unsigned value = 0;
  for (char c : port) {
    digits = digits && c >= '0' && c <= '9';
    if (digits) value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (!digits || value > 65535) {
    return InvalidArgument("server.listen port must be a number from 0 to 65535");
  }
  return Status::Ok();
}

// CheckUnknown refuses top-level keys other than the known tables and keys inside them that
// kFields does not list, naming up to kMaxUnknownNamed of them.
Status CheckUnknown(const toml::table& doc) {
  std::vector<std::string> unknown;
  size_t count = 0;
  auto note = [&](std::string what) {
    if (++count <= kMaxUnknownNamed) unknown.push_back(std::move(what));
  };
  for (const auto& [name, node] : doc) {
    if (!IsKnownTable(name.str())) {
      note((node.is_table() ? "unknown table [" + DisplayKey(name.str()) + "]"
                            : "unknown key " + DisplayKey(name.str())));
      continue;
    }
    const toml::table* table = node.as_table();
    if (table == nullptr) continue;  // reported as a type error
    for (const auto& [key, value] : *table) {
      if (FindField(name.str(), key.str()) == nullptr) {
        note("unknown key " + std::string(name.str()) + "." + DisplayKey(key.str()));
      }
    }
  }
  if (count == 0) return Status::Ok();
  std::string message;
  for (const std::string& u : unknown) message += (message.empty() ? "" : ", ") + u;
  if (count > unknown.size()) {
    message += ", and " + std::to_string(count - unknown.size()) + " more";
  }
  return InvalidArgument(message);
}

// AssignField stores `node` into the member `field` names, checking its type and range.
Status AssignField(const FieldSpec& field, const toml::node& node, ServerConfig& config) {
  std::string name = std::string(field.table) + "." + std::string(field.key);
  auto wrong_type = [&](std::string_view want) {
    return InvalidArgument(name + " must be " + std::string(want) + " (found " +
                           std::string(TypeName(node.type())) + ")");
  };
  if (auto* member = std::get_if<std::string ServerConfig::*>(&field.target)) {
    const toml::value<std::string>* v = node.as_string();
    if (v == nullptr) return wrong_type("a string");
    const std::string& text = v->get();
    // A NUL would silently cut a path short when it reaches open(2).
    if (text.find('\0') != std::string::npos) {
      return InvalidArgument(name + " must not contain a NUL character");
    }
    config.*(*member) = text;
  } else if (auto* member = std::get_if<uint16_t ServerConfig::*>(&field.target)) {
    const toml::value<int64_t>* v = node.as_integer();
    if (v == nullptr) return wrong_type("an integer");
    if (v->get() < 0 || v->get() > 65535) {
      return InvalidArgument(name + " is out of range: must be an integer from 0 to 65535");
    }
    config.*(*member) = static_cast<uint16_t>(v->get());
  } else if (auto* member = std::get_if<bool ServerConfig::*>(&field.target)) {
    const toml::value<bool>* v = node.as_boolean();
    if (v == nullptr) return wrong_type("a boolean (true or false)");
    config.*(*member) = v->get();
  }
  return Status::Ok();
}

// CheckConsistency applies the rules that involve a value or several keys, before any path
// is resolved (so "required" means "given and not empty").
Status CheckConsistency(const ServerConfig& config) {
  if (config.data_dir.empty()) return InvalidArgument("server.data_dir is required");
  if (config.custody_path.empty()) return InvalidArgument("server.custody is required");
  if (config.insecure_http && !config.tls_cert.empty()) {
    return InvalidArgument("server.insecure_http and server.tls_cert exclude each other");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return InvalidArgument(
        "server.tls_cert and server.tls_key must be given together (both or neither)");
  }
  RETURN_IF_ERROR(CheckListen(config.listen));
  if (!config.join_url.empty()) {
    auto url = net::ParseUrl(config.join_url);  // its messages never quote the URL
    if (!url.ok()) return InvalidArgument("server.join: " + url.status().message());
  }
  bool known_backend = false;
  for (std::string_view b : kBackends) known_backend = known_backend || config.tee_backend == b;
  if (!known_backend) {
    return InvalidArgument("tee.backend must be one of \"sim\", \"sgx-gramine\", \"tdx-configfs\"");
  }
  static const std::regex region_re("^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$");
  if (!std::regex_match(config.kms_region, region_re))
    return InvalidArgument("kms.region must look like an AWS region (e.g. us-east-1)");
  static const std::regex account_re("^[0-9]{12}$");
  if (!std::regex_match(config.kms_account_id, account_re))
    return InvalidArgument("kms.account_id must be 12 digits");
  if (config.cpu_scheduling != "batch" && config.cpu_scheduling != "normal")
    return InvalidArgument("server.cpu_scheduling must be \"batch\" or \"normal\"");
  if (config.audit_sync != "group" && config.audit_sync != "request")
    return InvalidArgument("audit.sync must be \"group\" or \"request\"");
  if (config.core_workers > 256) return InvalidArgument("tee.core_workers must be 0 to 256");
  if (!config.store_url.empty() && config.store_url.rfind("postgresql://", 0) != 0 &&
      config.store_url.rfind("postgres://", 0) != 0)
    return InvalidArgument("store.url must be a postgresql:// or postgres:// URL (or be left out)");
  if ((!config.xks_client_ca.empty() || !config.xks_client_subject.empty()) && config.xks_listen.empty())
    return InvalidArgument("xks.client_ca and xks.client_subject need xks.listen (the XKS listener they guard)");
  if (!config.xks_client_subject.empty() && config.xks_client_ca.empty())
    return InvalidArgument("xks.client_subject needs xks.client_ca (the CA the client certificate chains to)");
  if (!config.xks_client_ca.empty() && config.insecure_http)
    return InvalidArgument("xks.client_ca (mutual TLS) cannot be used with insecure_http");
  if (!config.kmip_listen.empty()) RETURN_IF_ERROR(CheckListen(config.kmip_listen).WithContext("kmip.listen"));
  static const std::regex node_name_re("^[A-Za-z0-9._-]{1,64}$");
  if (!config.node_name.empty() && !std::regex_match(config.node_name, node_name_re))
    return InvalidArgument("server.node_name must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  if (!config.store_url.empty() && config.node_name.empty())
    return InvalidArgument(
        "store.url needs server.node_name (this node's audit log in the shared database)");
  for (const FieldSpec& f : kFields) {
    if (f.path != PathRule::kAbsolute) continue;
    const std::string& value = config.*std::get<std::string ServerConfig::*>(f.target);
    if (value.empty() || value.front() != '/') {
      return InvalidArgument(std::string(f.table) + "." + std::string(f.key) +
                             " must be an absolute path");
    }
  }
  return Status::Ok();
}

StatusOr<ServerConfig> ParseDocument(const toml::table& doc, const std::string& base_dir) {
  RETURN_IF_ERROR(CheckUnknown(doc));
  ServerConfig config;
  for (std::string_view table_name : kTables) {
    const toml::node* node = doc.get(table_name);
    if (node == nullptr) continue;
    const toml::table* table = node->as_table();
    if (table == nullptr) {
      return InvalidArgument(std::string(table_name) + " must be a table (found " +
                             std::string(TypeName(node->type())) + ")");
    }
    for (const auto& [key, value] : *table) {
      const FieldSpec* field = FindField(table_name, key.str());
      if (field == nullptr) return InternalError("unknown key passed CheckUnknown");
      RETURN_IF_ERROR(AssignField(*field, value, config));
    }
  }
  RETURN_IF_ERROR(CheckConsistency(config));
  for (const FieldSpec& f : kFields) {
    if (f.path != PathRule::kResolve) continue;
    std::string& value = config.*std::get<std::string ServerConfig::*>(f.target);
    if (!value.empty()) value = ResolvePath(base_dir, value);
  }
  if (config.sim_key_dir.empty()) config.sim_key_dir = (fs::path(config.data_dir) / "sim").string();
  return config;
}

// ParseLabeled parses `text`; every error message starts with "<label>: ".
StatusOr<ServerConfig> ParseLabeled(std::string_view text, const std::string& base_dir,
                                    const std::string& label) {
  try {
    toml::table doc = toml::parse(text);
    StatusOr<ServerConfig> config = ParseDocument(doc, base_dir);
    if (!config.ok()) return config.status().WithContext(label);
    return config;
  } catch (const toml::parse_error& e) {
    return InvalidArgument(label + ": TOML syntax error at line " +
                           std::to_string(e.source().begin.line) + ", column " +
                           std::to_string(e.source().begin.column) + ": " +
                           SyntaxReason(e.description()));
  } catch (const std::exception&) {
    return InternalError(label + ": the TOML parser failed unexpectedly");
  }
}

// ReadConfigText reads at most kMaxConfigBytes from `path`; a longer file is refused.
StatusOr<std::string> ReadConfigText(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return Unavailable("cannot open " + path + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      return Unavailable("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > kMaxConfigBytes) {
      ::close(fd);
      return InvalidArgument(path + ": larger than " + std::to_string(kMaxConfigBytes) +
                             " bytes; not a configuration file");
    }
  }
  ::close(fd);
  return text;
}

// TomlString renders `s` as a TOML basic string. Control characters are escaped; other bytes
// are copied, so the output is valid TOML whenever `s` is valid UTF-8.
std::string TomlString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          static constexpr char kHex[] = "0123456789abcdef";
          out += "\\u00";
          out += kHex[c >> 4];
          out += kHex[c & 0xf];
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace

StatusOr<ServerConfig> ParseServerConfig(std::string_view toml_text, const std::string& base_dir) {
  return ParseLabeled(toml_text, base_dir, "server.toml");
}

StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadConfigText(path));
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  if (ec) return Unavailable("cannot make " + path + " absolute: " + ec.message());
  return ParseLabeled(text, absolute.parent_path().string(), path);
}

std::string RenderServerConfig(const ServerConfig& config) {
  static const ServerConfig kDefaults;
  std::string out = "# custos server configuration (docs/server.example.toml explains each key)\n";
  for (std::string_view table : kTables) {
    out += "\n[" + std::string(table) + "]\n";
    for (const FieldSpec& f : kFields) {
      if (f.table != table) continue;
      std::string value;
      if (auto* m = std::get_if<std::string ServerConfig::*>(&f.target)) {
        // An empty value whose default is empty is the same as no key: leave it out.
        if ((config.*(*m)).empty() && (kDefaults.*(*m)).empty()) continue;
        value = TomlString(config.*(*m));
      } else if (auto* m = std::get_if<uint16_t ServerConfig::*>(&f.target)) {
        value = std::to_string(config.*(*m));
      } else if (auto* m = std::get_if<bool ServerConfig::*>(&f.target)) {
        value = (config.*(*m)) ? "true" : "false";
      }
      out += std::string(f.key) + " = " + value + "\n";
    }
  }
  return out;
}

}  // namespace custos::host
