// Boost 1.74's Asio SSL layer names OpenSSL APIs that OPENSSL_NO_DEPRECATED removes; see the
// comment at the top of net/http_server.cc.
#undef OPENSSL_NO_DEPRECATED

#include "appliance/kmip/server.h"

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <charconv>
#include <mutex>
#include <thread>
#include <vector>

#include "protocol/kmip/ttlv.h"

namespace custos::kmip {
namespace {

namespace asio = boost::asio;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

StatusOr<tcp::endpoint> Endpoint(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos) return InvalidArgument("kmip listen address must be host:port");
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "localhost") host = "127.0.0.1";
  unsigned port = 0;
  const char* b = listen.data() + colon + 1;
  const char* e = listen.data() + listen.size();
  auto [end, ec] = std::from_chars(b, e, port);
  if (b == e || ec != std::errc() || end != e || port > 65535)
    return InvalidArgument("kmip listen port must be a number from 0 to 65535");
  boost::system::error_code aec;
  auto address = asio::ip::make_address(host, aec);
  if (aec) return InvalidArgument("kmip listen host must be an IP address or localhost: " + host);
  return tcp::endpoint(address, static_cast<uint16_t>(port));
}

// CommonName is the subject CN of the peer's verified certificate ("" if none).
std::string CommonName(SSL* ssl) {
  X509* cert = SSL_get1_peer_certificate(ssl);
  if (cert == nullptr) return "";
  char cn[256] = {0};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  X509_free(cert);
  return n > 0 ? std::string(cn, static_cast<size_t>(n)) : "";
}

}  // namespace

// Closable is what Stop needs of a connection: close it once it is between requests.
class Closable {
 public:
  virtual ~Closable() = default;
  virtual void CloseWhenIdle() = 0;
};

struct KmipServer::Impl {
  explicit Impl(int threads) : tls(ssl::context::tls_server), io(threads), acceptor(io) {}
  // Declared so that io (whose destruction destroys pending connections, which count down
  // `connections`) goes before what connections use.
  std::atomic<size_t> connections{0};
  std::atomic<bool> stopping{false};
  int port = 0;
  KmipServerOptions options;
  KmipHandler handler;
  ssl::context tls;
  asio::io_context io;
  tcp::acceptor acceptor;
  std::vector<std::thread> threads;
  std::mutex live_mu;
  std::vector<std::weak_ptr<Closable>> live;  // open connections (expired ones pruned on accept)

  void Accept();
};

namespace {

// Connection serves one client: handshake, then request after request.
class Connection : public Closable, public std::enable_shared_from_this<Connection> {
 public:
  Connection(tcp::socket socket, KmipServer::Impl* server)
      : server_(server), stream_(std::move(socket), server->tls), timer_(stream_.get_executor()) {
    boost::system::error_code ec;
    auto remote = stream_.lowest_layer().remote_endpoint(ec);
    if (!ec) peer_.source = remote.address().to_string() + ":" + std::to_string(remote.port());
  }
  ~Connection() override { --server_->connections; }

  // CloseWhenIdle (Stop): a connection waiting for its next request is shut down with a TLS
  // close_notify; one in the middle of a request finishes it and then closes (Answer checks
  // `stopping`).
  void CloseWhenIdle() override {
    auto self = shared_from_this();
    asio::post(stream_.get_executor(), [self] {
      if (!self->idle_) return;
      // The pending read completes (aborted) first; its handler then shuts TLS down, so the
      // shutdown never overlaps another operation on the stream.
      self->closing_ = true;
      boost::system::error_code ignored;
      self->stream_.lowest_layer().cancel(ignored);
    });
  }

  void Start() {
    Arm(server_->options.read_timeout);
    auto self = shared_from_this();
    stream_.async_handshake(ssl::stream_base::server, [self](const boost::system::error_code& ec) {
      if (ec) return self->Close();
      self->peer_.name = CommonName(self->stream_.native_handle());
      if (self->peer_.name.empty()) return self->Close();  // a certificate without a name
      self->ReadHeader();
    });
  }

 private:
  void Arm(std::chrono::milliseconds timeout) {
    timer_.expires_after(timeout);
    auto self = shared_from_this();
    timer_.async_wait([self](const boost::system::error_code& ec) {
      if (!ec) self->Close();  // timed out (a cancelled wait is not)
    });
  }

  void Close() {
    boost::system::error_code ignored;
    timer_.cancel();
    stream_.lowest_layer().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.lowest_layer().close(ignored);
  }

  // Shutdown sends close_notify (and waits up to 1 s for the peer's), then closes.
  void Shutdown() {
    Arm(std::chrono::milliseconds(1000));
    auto self = shared_from_this();
    stream_.async_shutdown([self](const boost::system::error_code&) { self->Close(); });
  }

  void ReadHeader() {
    if (server_->stopping) return Shutdown();
    Arm(server_->options.idle_timeout);
    message_.assign(kHeaderBytes, 0);
    idle_ = true;
    auto self = shared_from_this();
    asio::async_read(stream_, asio::buffer(message_), [self](const boost::system::error_code& ec, size_t) {
      self->idle_ = false;
      if (ec && self->closing_) return self->Shutdown();
      if (ec) return self->Close();
      DecodeLimits limits;
      limits.max_message_bytes = self->server_->options.max_message_bytes;
      auto length = ItemLength(self->message_, limits);
      if (!length.ok()) {
        // Answer what the handler answers for a message that does not decode, then close: the
        // stream cannot be resynchronised.
        self->Answer(self->server_->handler(self->message_, self->peer_), /*then_close=*/true);
        return;
      }
      self->ReadBody(*length);
    });
  }

  void ReadBody(size_t length) {
    Arm(server_->options.read_timeout);
    message_.resize(length);
    auto self = shared_from_this();
    asio::async_read(stream_, asio::buffer(message_.data() + kHeaderBytes, length - kHeaderBytes),
                     [self](const boost::system::error_code& ec, size_t) {
                       if (ec) return self->Close();
                       Bytes response = self->server_->handler(self->message_, self->peer_);
                       std::fill(self->message_.begin(), self->message_.end(), 0);
                       self->Answer(std::move(response), false);
                     });
  }

  void Answer(Bytes response, bool then_close) {
    Arm(server_->options.read_timeout);
    response_ = std::move(response);
    auto self = shared_from_this();
    asio::async_write(stream_, asio::buffer(response_), [self, then_close](const boost::system::error_code& ec, size_t) {
      std::fill(self->response_.begin(), self->response_.end(), 0);
      if (ec || then_close) return self->Close();
      if (self->server_->stopping) return self->Shutdown();  // answered; no next request
      self->ReadHeader();
    });
  }

  KmipServer::Impl* server_;
  ssl::stream<tcp::socket> stream_;
  asio::steady_timer timer_;
  KmipPeer peer_;
  bool idle_ = false;     // waiting for a request's first bytes (on the strand)
  bool closing_ = false;  // Stop: the pending read was cancelled to shut down
  Bytes message_;
  Bytes response_;
};

}  // namespace

void KmipServer::Impl::Accept() {
  acceptor.async_accept(asio::make_strand(io), [this](const boost::system::error_code& ec, tcp::socket socket) {
    if (stopping) return;
    if (!ec) {
      if (connections.load() >= options.max_connections) {
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        ++connections;
        auto c = std::make_shared<Connection>(std::move(socket), this);
        {
          std::lock_guard lock(live_mu);
          std::erase_if(live, [](const std::weak_ptr<Closable>& w) { return w.expired(); });
          live.push_back(c);
        }
        c->Start();
      }
    }
    Accept();
  });
}

StatusOr<std::unique_ptr<KmipServer>> KmipServer::Create(const std::string& listen, KmipServerOptions options,
                                                          KmipHandler handler) {
  ASSIGN_OR_RETURN(tcp::endpoint endpoint, Endpoint(listen));
  if (options.cert_file.empty() || options.key_file.empty() || options.client_ca_file.empty())
    return InvalidArgument("kmip: the listener needs a certificate, its key and the client CA");
  auto impl = std::make_unique<Impl>(std::max(1, options.threads));
  ssl::context& ctx = impl->tls;
  if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1)
    return InternalError("kmip: cannot set the minimum TLS version");
  boost::system::error_code ec;
  ctx.use_certificate_chain_file(options.cert_file, ec);
  if (ec) return InvalidArgument("kmip: cannot load the TLS certificate chain " + options.cert_file + ": " + ec.message());
  ctx.use_private_key_file(options.key_file, ssl::context::pem, ec);
  if (ec) return InvalidArgument("kmip: cannot load the TLS private key " + options.key_file + ": " + ec.message());
  if (SSL_CTX_check_private_key(ctx.native_handle()) != 1)
    return InvalidArgument("kmip: the TLS private key does not match the certificate");
  ctx.load_verify_file(options.client_ca_file, ec);
  if (ec) return InvalidArgument("kmip: cannot load the client CA " + options.client_ca_file + ": " + ec.message());
  // No certificate, or one not chained to the client CA, or not for client authentication:
  // the handshake fails.
  ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  SSL_CTX_set_purpose(ctx.native_handle(), X509_PURPOSE_SSL_CLIENT);
  try {
    impl->acceptor.open(endpoint.protocol());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true));
    impl->acceptor.bind(endpoint);
    impl->acceptor.listen(asio::socket_base::max_listen_connections);
    impl->port = impl->acceptor.local_endpoint().port();
  } catch (const boost::system::system_error& e) {
    return Unavailable("kmip: cannot listen on " + listen + ": " + e.code().message());
  }
  impl->options = std::move(options);
  impl->handler = std::move(handler);
  return std::unique_ptr<KmipServer>(new KmipServer(std::move(impl)));
}

KmipServer::KmipServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
KmipServer::~KmipServer() { Stop(); }
int KmipServer::port() const { return impl_->port; }

Status KmipServer::Start() {
  impl_->Accept();
  for (int i = 0; i < std::max(1, impl_->options.threads); ++i)
    impl_->threads.emplace_back([this] { impl_->io.run(); });
  return Status::Ok();
}

void KmipServer::Stop() {
  if (impl_->stopping.exchange(true)) return;
  asio::post(impl_->acceptor.get_executor(), [this] {
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
  });
  // Idle connections are closed with a close_notify; requests in progress get up to 5 s to be
  // answered; then whatever is left is dropped with the I/O loop.
  {
    std::lock_guard lock(impl_->live_mu);
    for (auto& w : impl_->live)
      if (auto c = w.lock()) c->CloseWhenIdle();
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (impl_->connections.load() > 0 && std::chrono::steady_clock::now() < deadline && !impl_->threads.empty())
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  impl_->io.stop();
  for (std::thread& t : impl_->threads)
    if (t.joinable()) t.join();
}

}  // namespace custos::kmip
