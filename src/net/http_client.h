// HttpClient: the synchronous HTTP/1.1 (optionally TLS) client custos processes use to reach a
// keeper or the appliance. One client keeps one keep-alive connection to one base URL.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http.h"

namespace custos::net {

// HttpClientOptions tunes an HttpClient.
struct HttpClientOptions {
  // timeout bounds one whole call (connect, TLS handshake, write, read, one reconnect).
  std::chrono::milliseconds timeout{30'000};
  // ca_file is a PEM bundle of the CAs trusted for https; empty uses the system trust store.
  std::string ca_file;
  // client_cert_file / client_key_file: a PEM client certificate chain and its key, presented
  // when the server asks for one (mutual TLS); empty: none.
  std::string client_cert_file, client_key_file;
  // max_response_bytes bounds a response body; a larger one fails the call.
  size_t max_response_bytes = 16u << 20;
};

// HttpClient sends requests to paths under one base URL. It is movable but not thread-safe:
// use one client per thread. Non-2xx answers are returned as responses, not errors, so callers
// can read the server's JSON error body. For https it verifies the server's certificate chain
// and that the certificate names the URL's host (DNS name or IP address).
//
// If the kept-alive connection turns out to be closed by the server (it timed out the idle
// connection or restarted) before any response byte arrived, the client reconnects and resends
// the request once; the server side only closes idle connections, so the request had not been
// processed.
class HttpClient {
 public:
  // Create parses `base_url` and, for https, loads the trust anchors. It does not connect.
  // Fails with kInvalidArgument for a bad URL or unreadable CA file.
  static StatusOr<HttpClient> Create(std::string_view base_url, HttpClientOptions options = {});
  HttpClient(HttpClient&&) noexcept;
  HttpClient& operator=(HttpClient&&) noexcept;
  ~HttpClient();

  // Post sends `body` to base path + `path` (which must start with '/'). Content-Type defaults
  // to application/json when `headers` has none. Errors: kInvalidArgument for a bad path or
  // header; kUnavailable when the server cannot be reached, times out or sends a malformed or
  // oversized response; kIntegrity when its TLS certificate is not trusted or does not match.
  // Error messages name the server's origin, never the request body or header values.
  StatusOr<HttpResponse> Post(std::string_view path, std::string_view body,
                              const HttpHeaders& headers = {});
  // Get fetches base path + `path`; errors as for Post.
  StatusOr<HttpResponse> Get(std::string_view path, const HttpHeaders& headers = {});
  // Send issues any method ("GET", "POST", "PUT", "DELETE", ...); errors as for Post.
  StatusOr<HttpResponse> Send(std::string_view method, std::string_view path, std::string_view body,
                              const HttpHeaders& headers = {});

  // url is the parsed base URL.
  const Url& url() const;
  // connections_opened counts connections established so far (each reconnect adds one).
  uint64_t connections_opened() const;

 private:
  struct Impl;
  explicit HttpClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::net
