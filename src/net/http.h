// The HTTP vocabulary shared by custos daemons (HttpServer) and clients (HttpClient).
//
// These are plain value types on purpose: handlers and callers never see Boost.Beast, so the
// rest of the tree does not pay Beast's compile cost and cannot depend on its parser details.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "common/status.h"
#include "nlohmann/json.hpp"

namespace custos::net {

// HttpHeaders maps lower-case header names to values. Repeated request headers are joined with
// ", " as RFC 9110 section 5.3 allows.
using HttpHeaders = std::map<std::string, std::string>;

// HttpRequest is a complete, already-parsed request as a handler sees it. `target` is the
// request target exactly as sent (path plus any query string). `remote` is "address:port" of
// the peer, for audit records; it is not authenticated.
struct HttpRequest {
  std::string method;
  std::string target;
  HttpHeaders headers;
  std::string body;
  std::string remote;
};

// HttpResponse is what a handler returns and what HttpClient hands back. The server sets
// Content-Type from `content_type` and Content-Length itself; `headers` holds any others
// (framing headers such as Content-Length or Transfer-Encoding set here are ignored).
struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  HttpHeaders headers;
};

// HttpHandler serves one request. It runs on a server I/O thread, so it must be short and
// CPU-bound, and it may run concurrently with itself on other connections. An exception that
// escapes it becomes a 500 with a generic message; its text is never sent to the peer.
using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

// Url is a parsed http:// or https:// base URL.
struct Url {
  std::string scheme;       // "http" or "https"
  std::string host;         // name or IP literal; IPv6 literals without brackets
  uint16_t port = 0;        // explicit port, or 80/443 by scheme
  std::string path_prefix;  // "" or "/a/b" (never a trailing '/'), prepended to request paths

  // tls reports whether the scheme is https.
  bool tls() const { return scheme == "https"; }
  // Origin renders "scheme://host:port" (IPv6 hosts bracketed), used in error messages.
  std::string Origin() const;
};

// ParseUrl parses an absolute http:// or https:// URL. It refuses other schemes, user info
// ("user:password@"), empty hosts, bad ports, queries and fragments, and characters that do
// not belong in a URL. Error messages never quote the input, which may hold credentials.
StatusOr<Url> ParseUrl(std::string_view text);

// HostPart returns the host of "host:port" or "[v6]:port" ("1.2.3.4:5678" -> "1.2.3.4",
// "[::1]:80" -> "::1"): a listen address, or an HttpRequest::remote (the client's address).
std::string HostPart(std::string_view host_port);

// ErrorBody renders the JSON error body every custos endpoint uses:
// {"error":"<code>","message":"<message>"}. The message must already be safe to show.
std::string ErrorBody(std::string_view code, std::string_view message);

// HttpStatusFor maps an error code to the HTTP status custos servers answer with
// (400, 403, 404, 409, 422, 503, 500).
int HttpStatusFor(ErrorCode code);

// ErrorResponse renders `status` (not OK) as an ErrorBody response with HttpStatusFor.
HttpResponse ErrorResponse(const Status& status);

// DecodeJsonResponse turns a custos server's answer into its JSON object, or into the Status
// its ErrorBody names ("<peer> refused: <message>"), keeping the error code. A transport error
// gets `peer` as context; a 200 that is not a JSON object is kIntegrity.
StatusOr<nlohmann::json> DecodeJsonResponse(const StatusOr<HttpResponse>& response,
                                            std::string_view peer);

}  // namespace custos::net
