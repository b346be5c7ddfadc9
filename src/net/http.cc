#include "net/http.h"

#include <charconv>
#include <nlohmann/json.hpp>

namespace custos::net {
namespace {

bool IsHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.';
}

bool IsIpv6LiteralChar(char c) {
  return (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || (c >= '0' && c <= '9') || c == ':' ||
         c == '.';
}

// Path characters allowed by RFC 3986 (pchar plus '/'), percent-escapes included as-is.
bool IsPathChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("-._~!$&'()*+,;=:@/%").find(c) != std::string_view::npos;
}

}  // namespace

std::string Url::Origin() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + ":" + std::to_string(port);
}

StatusOr<Url> ParseUrl(std::string_view text) {
  Url url;
  size_t sep = text.find("://");
  if (sep == std::string_view::npos)
    return InvalidArgument("URL has no scheme (want http:// or https://)");
  std::string_view scheme = text.substr(0, sep);
  if (scheme == "http") {
    url.port = 80;
  } else if (scheme == "https") {
    url.port = 443;
  } else {
    return InvalidArgument("URL scheme is not http or https");
  }
  url.scheme = std::string(scheme);

  std::string_view rest = text.substr(sep + 3);
  size_t auth_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, auth_end);
  std::string_view path = auth_end == std::string_view::npos ? "" : rest.substr(auth_end);

  // User info would put a credential into every log line that prints the base URL.
  if (authority.find('@') != std::string_view::npos) {
    return InvalidArgument("URL must not contain user info");
  }

  std::string_view host, port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos)
      return InvalidArgument("URL has an unterminated IPv6 literal");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return InvalidArgument("URL has junk after the IPv6 literal");
      has_port = true;
      port_text = after.substr(1);
    }
    if (host.empty() || host.find(':') == std::string_view::npos) {
      return InvalidArgument("URL has an invalid IPv6 literal");
    }
    for (char c : host) {
      if (!IsIpv6LiteralChar(c)) return InvalidArgument("URL has an invalid IPv6 literal");
    }
  } else {
    size_t colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      has_port = true;
      port_text = authority.substr(colon + 1);
    }
    for (char c : host) {
      if (!IsHostNameChar(c)) return InvalidArgument("URL host contains an invalid character");
    }
  }
  if (host.empty()) return InvalidArgument("URL has an empty host");
  url.host = std::string(host);

  if (has_port) {
    unsigned value = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
        value == 0 || value > 65535) {
      return InvalidArgument("URL port must be a number from 1 to 65535");
    }
    url.port = static_cast<uint16_t>(value);
  }

  if (path.find_first_of("?#") != std::string_view::npos) {
    return InvalidArgument("base URL must not contain a query or fragment");
  }
  for (char c : path) {
    if (!IsPathChar(c)) return InvalidArgument("URL path contains an invalid character");
  }
  // A trailing '/' would double up when request paths (which start with '/') are appended.
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  url.path_prefix = std::string(path);
  return url;
}

std::string ErrorBody(std::string_view code, std::string_view message) {
  nlohmann::json doc = {{"error", std::string(code)}, {"message", std::string(message)}};
  // Replacement instead of throwing: a message with invalid UTF-8 must not take a request down.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string HostPart(std::string_view host_port) {
  if (!host_port.empty() && host_port.front() == '[') {
    size_t close = host_port.find(']');
    return std::string(close == std::string_view::npos ? host_port : host_port.substr(1, close - 1));
  }
  size_t colon = host_port.rfind(':');
  return std::string(colon == std::string_view::npos ? host_port : host_port.substr(0, colon));
}

int HttpStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return 200;
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kAlreadyExists:
    case ErrorCode::kFailedPrecondition: return 409;
    case ErrorCode::kIntegrity: return 422;
    case ErrorCode::kUnavailable: return 503;
    case ErrorCode::kInternal: return 500;
    case ErrorCode::kAborted: return 409;
    case ErrorCode::kOutOfRange: return 400;
  }
  return 500;
}

HttpResponse ErrorResponse(const Status& status) {
  HttpResponse r;
  r.status = HttpStatusFor(status.code());
  r.body = ErrorBody(ErrorCodeName(status.code()), status.message());
  return r;
}

StatusOr<nlohmann::json> DecodeJsonResponse(const StatusOr<HttpResponse>& r, std::string_view peer) {
  if (!r.ok()) return r.status().WithContext(std::string(peer));
  nlohmann::json j = nlohmann::json::parse(r->body, nullptr, false);
  if (r->status != 200) {
    std::string code = j.is_object() ? j.value("error", "") : "";
    std::string msg = j.is_object() ? j.value("message", "") : "";
    if (msg.empty()) msg = "HTTP " + std::to_string(r->status);
    ErrorCode ec = ErrorCode::kInternal;
    for (ErrorCode c : {ErrorCode::kInvalidArgument, ErrorCode::kNotFound, ErrorCode::kAlreadyExists,
                        ErrorCode::kPermissionDenied, ErrorCode::kFailedPrecondition,
                        ErrorCode::kIntegrity, ErrorCode::kUnavailable, ErrorCode::kInternal})
      if (code == ErrorCodeName(c)) ec = c;
    return Status(ec, std::string(peer) + " refused: " + msg);
  }
  if (j.is_discarded() || !j.is_object())
    return IntegrityError(std::string(peer) + " answered with malformed JSON");
  return j;
}

}  // namespace custos::net
