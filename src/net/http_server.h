// HttpServer: the HTTP/1.1 (optionally TLS) front end of every custos daemon.
//
// Parsing and framing are Boost.Beast's; this class adds the policy custos needs: a body size
// limit answered with 413, 400 for malformed requests, per-request timeouts, handler exceptions
// contained as 500s that never echo internals, and a graceful stop that lets in-flight requests
// finish. Handlers run on the I/O threads (custos handlers are short and CPU-bound).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "net/http.h"

namespace custos::net {

// HttpServerOptions tunes an HttpServer. TLS is on when both PEM file paths are set.
struct HttpServerOptions {
  // threads is the number of I/O threads, each able to run the handler.
  int threads = 2;
  // fibers runs each request's handler on a fiber of its I/O thread (net/fiber.h): a handler
  // that suspends (a trusted-core call) lets the thread serve other connections meanwhile.
  bool fibers = false;
  // max_body_bytes bounds a request body; larger requests get 413 and the connection closes.
  size_t max_body_bytes = 1 << 20;
  // read_timeout bounds reading one request (headers and body), each response write and the
  // TLS handshake.
  std::chrono::milliseconds read_timeout{30'000};
  // idle_timeout bounds how long a connection may wait before the first byte of its next
  // request (a new or kept-alive connection that sends nothing).
  std::chrono::milliseconds idle_timeout{10'000};
  // max_connections bounds open connections. At the bound, a new connection first pushes out
  // the oldest connections that are idle (waiting for a request that has not started); a
  // connection beyond max_connections + kConnectionSlack is closed at once. Idle sockets can
  // therefore neither exhaust file descriptors nor lock out a client that sends a request.
  size_t max_connections = 1024;
  // stop_grace bounds how long Stop() waits for in-flight requests.
  std::chrono::milliseconds stop_grace{10'000};
  // tls_cert_file is a PEM certificate chain (leaf first); tls_key_file its PEM private key.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Mutual TLS: with tls_client_ca_file (PEM) set, the handshake fails unless the client
  // presents a certificate chained to one of those CAs, valid for client authentication, and,
  // when tls_client_subject is set, whose leaf's subject common name is exactly that.
  std::string tls_client_ca_file;
  std::string tls_client_subject;
  // transport_error, if set, renders the errors the server answers itself before a handler
  // runs (413 body too large, 431 headers too large, 400 malformed request) — e.g. in the
  // AWS JSON error shape on the KMS API. `code` is custos's own short code for the error.
  std::function<HttpResponse(int status, std::string_view code, std::string_view message)> transport_error;
};

// HttpServer serves one HttpHandler on one listening socket. Create binds (so port() is known
// before Start), Start launches the I/O threads, Stop drains and joins them. The destructor
// calls Stop. Start and Stop must not be called from a handler. An HttpServer cannot be
// restarted after Stop.
class HttpServer {
 public:
  // Create binds `listen` ("host:port", "[v6]:port"; port 0 picks a free port), loads the TLS
  // certificate and key if configured, and returns a server that is not yet serving.
  // Fails with kInvalidArgument for bad options or unreadable TLS files and kUnavailable if the
  // address cannot be bound.
  static StatusOr<std::unique_ptr<HttpServer>> Create(std::string_view listen, HttpHandler handler,
                                                      HttpServerOptions options = {});
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // port is the bound TCP port (the chosen one when listening on port 0).
  uint16_t port() const;
  // tls reports whether the server speaks HTTPS.
  bool tls() const;
  // Start begins accepting on background threads. Fails if already started or stopped.
  Status Start();
  // Stop stops accepting, closes idle connections, lets requests already being read or
  // handled finish and get their response (up to options.stop_grace), then joins the threads.
  // Idempotent; safe to call on a server that was never started.
  void Stop();
  // connections_accepted counts TCP connections accepted since Start (for keep-alive checks
  // and metrics).
  uint64_t connections_accepted() const;
  // requests_served counts requests whose handler ran.
  uint64_t requests_served() const;
  // open_connections is the number of connections currently open.
  size_t open_connections() const;
  // connections_shed counts connections closed to stay within max_connections (idle ones
  // pushed out, and new ones refused beyond the slack).
  uint64_t connections_shed() const;

 private:
  struct Impl;
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::net
