// The KMIP listener (docs/kmip.md "Transport"): KMIP over mutual TLS (TLS 1.2 or 1.3; port 5696
// by default). A client must present a certificate chained to the KMIP client CA and valid for
// client authentication; its subject common name is the client's name (the principal). Each
// connection carries requests one after another: the server reads a TTLV header (8 bytes),
// the length it announces (at most DecodeLimits::max_message_bytes), hands the message to
// KmipApi and writes the response. A header that announces something unreadable (a bad tag or
// type, a length beyond the limit) gets an Invalid Message response and the connection closes;
// a connection idle for idle_timeout, or slower than read_timeout for one message, is closed.
//
// Thread safety: Start and Stop from one thread; connections are served on `threads` threads.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "common/bytes.h"
#include "common/status.h"
#include "appliance/kmip/api.h"

namespace custos::kmip {

struct KmipServerOptions {
  int threads = 2;
  std::string cert_file;       // the server's certificate chain (PEM)
  std::string key_file;        // its private key (PEM)
  std::string client_ca_file;  // the CA client certificates must chain to (PEM)
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{120'000};
  size_t max_connections = 1024;
  size_t max_message_bytes = 1 << 20;
};

// Handler answers one request message from `peer`.
using KmipHandler = std::function<Bytes(ByteSpan request, const KmipPeer& peer)>;

class KmipServer {
 public:
  // Create binds `listen` ("host:port"; port 0 picks one) and loads the TLS files.
  static StatusOr<std::unique_ptr<KmipServer>> Create(const std::string& listen, KmipServerOptions options,
                                                      KmipHandler handler);
  ~KmipServer();
  int port() const;
  Status Start();
  void Stop();

  struct Impl;

 private:
  explicit KmipServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace custos::kmip
