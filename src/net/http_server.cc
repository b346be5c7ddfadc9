// Boost 1.74's Asio SSL layer (boost/asio/ssl/impl/context.ipp) names RSA and DH APIs that
// OpenSSL 3 removes from its headers under OPENSSL_NO_DEPRECATED, so it cannot compile with the
// project-wide define. Lifting it for this file still leaves every such symbol declared
// deprecated, and -Werror turns any use of one in this file into a build error; only Boost's
// own uses, inside system headers, are exempt from the warning.
#undef OPENSSL_NO_DEPRECATED

#include "net/http_server.h"

#include "net/fiber.h"

#include <sys/resource.h>

#include <algorithm>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <charconv>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>
#include <map>
#include <vector>

#include "common/secret.h"

namespace custos::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

// Request headers beyond this are refused (431): custos requests carry a few short headers.
constexpr uint32_t kHeaderLimit = 16 * 1024;
// After answering an error that leaves request bytes unread (413, 400), the server stops
// sending and keeps reading and discarding for a short while before closing. Closing with
// unread data makes the kernel send a RST, which can destroy the error response before the
// client reads it. Both bounds keep a hostile client from holding the connection.
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kLingerBytes = 16u << 20;
constexpr size_t kLingerChunk = 16 * 1024;
// Upper bound on waiting for the peer's TLS close_notify when closing a connection.
constexpr std::chrono::seconds kTlsShutdownTime{1};

std::string EndpointString(const tcp::endpoint& ep) {
  std::string address = ep.address().to_string();
  if (ep.address().is_v6()) address = "[" + address + "]";
  return address + ":" + std::to_string(ep.port());
}

std::string Lower(beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// A handler-supplied header is sent only if it cannot break the response framing: the name
// must be an RFC 9110 token and the value free of CR, LF and NUL.
bool IsSafeHeader(std::string_view name, std::string_view value) {
  if (name.empty()) return false;
  for (char c : name) {
    bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!token) return false;
  }
  return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Framing and connection management belong to the server, not to handlers.
bool IsServerOwnedHeader(const std::string& lower_name) {
  return lower_name == "content-length" || lower_name == "transfer-encoding" ||
         lower_name == "connection" || lower_name == "content-type" || lower_name == "keep-alive" ||
         lower_name == "upgrade";
}

HttpResponse ErrorResponse(int status, std::string_view code, std::string_view message) {
  HttpResponse r;
  r.status = status;
  r.body = ErrorBody(code, message);
  return r;
}

// SessionBase lets the server reach every live connection without knowing its stream type.
class SessionBase {
 public:
  virtual ~SessionBase() = default;
  // Drain asks the session, from any thread, to close as soon as it has no request in
  // progress; a request already being read or handled still gets its response.
  virtual void Drain() = 0;
};

// kConnectionSlack: connections admitted beyond max_connections while pushed-out idle ones
// close (they close on their own strands, shortly after).
constexpr size_t kConnectionSlack = 64;
// kEvictBatch: how many of the oldest connections are asked to go when the bound is reached.
constexpr size_t kEvictBatch = 16;
// kAdmitPatience: how long a connection arriving when even the slack is used up is held
// while older ones close, before it is refused.
constexpr std::chrono::milliseconds kAdmitPatience{500};

// ServerShared is the state sessions share with the server. Sessions hold it by shared_ptr so
// that a session destroyed late (when the io_context is torn down) never touches freed memory.
struct ServerShared {
  HttpHandler handler;
  HttpServerOptions options;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> accepted{0};
  std::atomic<uint64_t> served{0};
  std::atomic<uint64_t> shed{0};

  std::mutex mu;
  std::condition_variable sessions_empty;
  uint64_t next_session_id = 0;                                       // guarded by mu
  // Ordered by id, that is by age: MakeRoom walks it from the oldest session not yet asked.
  std::map<uint64_t, std::weak_ptr<SessionBase>> sessions;  // guarded by mu
  uint64_t drain_cursor = 0;  // guarded by mu; sessions below it were already asked to go

  uint64_t Register(std::weak_ptr<SessionBase> session) {
    std::lock_guard<std::mutex> lock(mu);
    uint64_t id = next_session_id++;
    sessions.emplace(id, std::move(session));
    return id;
  }
  void Unregister(uint64_t id) {
    std::lock_guard<std::mutex> lock(mu);
    sessions.erase(id);
    if (sessions.empty()) sessions_empty.notify_all();
  }
  size_t Count() {
    std::lock_guard<std::mutex> lock(mu);
    return sessions.size();
  }
  // MakeRoom is called before admitting a connection. At the bound it asks the oldest
  // sessions not yet asked to close if idle (Drain: a request in progress is not cut); each
  // call asks a fresh batch, so a burst of admissions cannot keep asking the same sessions
  // while they are still closing on their strands. Returns false when even the slack is used
  // up: the caller then holds the connection and asks again shortly (see OnAccept).
  bool MakeRoom() {
    std::vector<std::shared_ptr<SessionBase>> oldest;
    {
      std::lock_guard<std::mutex> lock(mu);
      size_t n = sessions.size();
      if (n < options.max_connections) return true;
      for (auto it = sessions.lower_bound(drain_cursor);
           it != sessions.end() && oldest.size() < kEvictBatch; ++it) {
        drain_cursor = it->first + 1;
        if (auto sp = it->second.lock()) oldest.push_back(std::move(sp));
      }
      if (n >= options.max_connections + kConnectionSlack) {
        for (auto& sp : oldest) sp->Drain();  // (Drain only posts; safe under mu)
        return false;
      }
    }
    for (auto& sp : oldest) sp->Drain();
    return true;
  }
};

// Session serves one connection: optional TLS handshake, then read request / run handler /
// write response until the peer or the server ends keep-alive. All of its work runs on the
// connection's I/O thread (the executor of the accepted socket), so it needs no locks.
// Each io_context is run by exactly one thread, so a connection's handlers are serialized
// without a strand, and the streams name the io_context's executor type directly: no
// type-erased executor (any_io_executor copies allocate) and no strand hop per operation.
using IoExecutor = asio::io_context::executor_type;
using TcpSocket = asio::basic_stream_socket<tcp, IoExecutor>;
using TcpStream = beast::basic_stream<tcp, IoExecutor>;
using SteadyTimer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                               asio::wait_traits<std::chrono::steady_clock>, IoExecutor>;

template <class Stream>
class Session final : public SessionBase, public std::enable_shared_from_this<Session<Stream>> {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, TcpStream>;

  Session(TcpSocket&& socket, std::shared_ptr<ServerShared> shared,
          std::string remote) requires(!kTls)
      : stream_(std::move(socket)), shared_(std::move(shared)), remote_(std::move(remote)) {}
  Session(TcpSocket&& socket, ssl::context& tls, std::shared_ptr<ServerShared> shared,
          std::string remote) requires(kTls)
      : stream_(std::move(socket), tls), shared_(std::move(shared)), remote_(std::move(remote)) {}

  ~Session() override {
    if (registered_) shared_->Unregister(id_);
  }

  // Run registers the session for Stop() and starts serving it.
  void Run() {
    id_ = shared_->Register(this->weak_from_this());
    registered_ = true;
    asio::dispatch(stream_.get_executor(), [self = this->shared_from_this()] { self->Begin(); });
  }

  void Drain() override {
    asio::post(stream_.get_executor(), [self = this->shared_from_this()] { self->OnDrain(); });
  }

 private:
  TcpStream& Lowest() { return beast::get_lowest_layer(stream_); }

  void Begin() {
    if constexpr (kTls) {
      Lowest().expires_after(std::min(shared_->options.read_timeout, shared_->options.idle_timeout));
      handshaking_ = true;
      stream_.async_handshake(ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                self->handshaking_ = false;
                                if (ec) return self->CloseNow();
                                self->ReadRequest();
                              });
    } else {
      ReadRequest();
    }
  }

  void OnDrain() {
    // Only a connection waiting for a request that has not started is cut; one whose request
    // has begun arriving is left to finish (bounded by read_timeout and the stop grace). A TLS
    // connection still in its handshake counts as idle.
    bool idle = (reading_ && buffer_.size() == 0 && parser_ && !parser_->got_some()) || handshaking_;
    if (idle) {
      if (!shared_->stopping.load()) shared_->shed.fetch_add(1);
      Lowest().cancel();
    }
  }

  void ReadRequest() {
    if (shared_->stopping.load() && buffer_.size() == 0) return CloseGracefully();
    parser_.emplace();
    parser_->body_limit(shared_->options.max_body_bytes);
    parser_->header_limit(kHeaderLimit);
    reading_ = true;
    // A connection with nothing buffered gets idle_timeout to start its request, and the
    // request then has until read_timeout from here: a client that trickles bytes cannot hold
    // a connection past read_timeout, one that sends nothing not past idle_timeout.
    Lowest().expires_after(shared_->options.read_timeout);
    if (buffer_.size() == 0) ArmIdleTimer();
    http::async_read(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // ArmIdleTimer closes the connection if no byte of the next request arrives in time.
  void ArmIdleTimer() {
    idle_timer_.expires_after(shared_->options.idle_timeout);
    idle_timer_.async_wait([self = this->shared_from_this()](beast::error_code ec) {
      if (!ec && self->reading_ && self->parser_ && !self->parser_->got_some() && self->buffer_.size() == 0)
        self->Lowest().cancel();
    });
  }

  void OnRead(beast::error_code ec) {
    reading_ = false;
    idle_timer_.cancel();
    if (ec == http::error::end_of_stream) return CloseGracefully();
    if (ec == http::error::body_limit) {
      return SendError(
          413, "request_too_large",
          "request body exceeds " + std::to_string(shared_->options.max_body_bytes) + " bytes");
    }
    if (ec == http::error::header_limit) {
      return SendError(431, "headers_too_large", "request headers are too large");
    }
    if (ec) {
      // Parser errors on bytes the client did send deserve an answer. Timeouts, resets,
      // cancellation by Stop and a peer vanishing mid-message do not: nobody would read it.
      bool parse_error =
          ec.category() == http::make_error_code(http::error::bad_method).category() &&
          ec != http::error::partial_message;
      if (parse_error && parser_->got_some()) {
        return SendError(400, "bad_request", "malformed HTTP request");
      }
      return CloseNow();
    }
    Respond(parser_->release());
  }

  void Respond(http::request<http::string_body> req) {
    const unsigned version = req.version();
    const bool keep_alive = req.keep_alive();
    const bool head = req.method() == http::verb::head;

    HttpRequest in;
    in.method = std::string(req.method_string());
    in.target = std::string(req.target());
    for (const auto& field : req) {
      std::string value(field.value());
      auto [it, inserted] = in.headers.emplace(Lower(field.name_string()), value);
      if (!inserted) it->second += ", " + value;
    }
    in.body = std::move(req.body());
    in.remote = remote_;

    if (shared_->options.fibers) {
      // The handler runs on a fiber of this thread: where it waits for the trusted core it
      // suspends, and the thread serves other connections meanwhile. The answer is written
      // from the event loop, not from the fiber's stack.
      asio::io_context& ioc = stream_.get_executor().context();
      try {
        fiber::Start(ioc, [self = this->shared_from_this(), in = std::move(in), version, keep_alive, head]() mutable {
          HttpResponse out = self->RunHandler(in);
          asio::post(self->stream_.get_executor(),
                     [self, out = std::move(out), version, keep_alive, head]() mutable {
                       self->Answer(std::move(out), version, keep_alive, head);
                     });
        });
      } catch (const std::bad_alloc&) {
        WipeBytes(in.body);
        Answer(ErrorResponse(503, "unavailable", "server out of memory"), version, false, head);
      }
      return;
    }
    Answer(RunHandler(in), version, keep_alive, head);
  }

  HttpResponse RunHandler(HttpRequest& in) {
    HttpResponse out;
    try {
      out = shared_->handler(in);
    } catch (...) {
      // The exception text may describe internals or secrets; the peer learns only that the
      // server failed.
      out = ErrorResponse(500, "internal", "internal error");
    }
    shared_->served.fetch_add(1);
    // Request bodies can carry key material (wrapped or not); do not leave them in freed heap.
    WipeBytes(in.body);
    return out;
  }

  void Answer(HttpResponse out, unsigned version, bool keep_alive, bool head) {
    if (out.status < 100 || out.status > 599)
      out = ErrorResponse(500, "internal", "internal error");

    http::response<http::string_body> res{static_cast<http::status>(out.status), version};
    if (!out.content_type.empty() && IsSafeHeader("content-type", out.content_type)) {
      res.set(http::field::content_type, out.content_type);
    }
    for (const auto& [name, value] : out.headers) {
      if (!IsSafeHeader(name, value) || IsServerOwnedHeader(Lower(name))) continue;
      res.set(name, value);
    }
    res.body() = std::move(out.body);
    res.keep_alive(keep_alive && !shared_->stopping.load());
    res.prepare_payload();
    // A HEAD response announces the length of the GET body but carries none.
    if (head) WipeBytes(res.body());
    Write(std::move(res), /*linger=*/false);
  }

  void SendError(int status, std::string_view code, std::string_view message) {
    HttpResponse out = shared_->options.transport_error
                           ? shared_->options.transport_error(status, code, message)
                           : ErrorResponse(status, code, message);
    http::response<http::string_body> res{static_cast<http::status>(status), 11};
    res.set(http::field::content_type, out.content_type);
    for (const auto& [name, value] : out.headers)
      if (!IsServerOwnedHeader(name)) res.set(name, value);
    res.body() = std::move(out.body);
    res.keep_alive(false);
    res.prepare_payload();
    Write(std::move(res), /*linger=*/true);
  }

  void Write(http::response<http::string_body> res, bool linger) {
    response_.emplace(std::move(res));
    linger_ = linger;
    Lowest().expires_after(shared_->options.read_timeout);
    http::async_write(
        stream_, *response_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnWrite(ec); });
  }

  void OnWrite(beast::error_code ec) {
    bool close = !response_->keep_alive();
    // Response bodies carry data keys; wipe them as soon as they are on the wire.
    WipeBytes(response_->body());
    response_.reset();
    if (ec) return CloseNow();
    if (linger_) return LingerThenClose();
    if (close) return CloseGracefully();
    ReadRequest();
  }

  void LingerThenClose() {
    beast::error_code ignored;
    Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
    linger_deadline_ = std::chrono::steady_clock::now() + kLingerTime;
    lingered_bytes_ = 0;
    buffer_.clear();
    LingerRead();
  }

  void LingerRead() {
    Lowest().expires_at(linger_deadline_);
    // Read the raw socket: for TLS the records are discarded undecrypted.
    Lowest().async_read_some(buffer_.prepare(kLingerChunk),
                             [self = this->shared_from_this()](beast::error_code ec, size_t n) {
                               self->lingered_bytes_ += n;
                               if (ec || self->lingered_bytes_ > kLingerBytes)
                                 return self->CloseNow();
                               self->LingerRead();
                             });
  }

  void CloseGracefully() {
    if constexpr (kTls) {
      Lowest().expires_after(kTlsShutdownTime);
      stream_.async_shutdown(
          [self = this->shared_from_this()](beast::error_code) { self->CloseNow(); });
    } else {
      beast::error_code ignored;
      Lowest().socket().shutdown(tcp::socket::shutdown_send, ignored);
      CloseNow();
    }
  }

  void CloseNow() { Lowest().close(); }

  Stream stream_;
  SteadyTimer idle_timer_{stream_.get_executor()};
  std::shared_ptr<ServerShared> shared_;
  std::string remote_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  bool reading_ = false;
  bool handshaking_ = false;
  bool linger_ = false;
  std::chrono::steady_clock::time_point linger_deadline_;
  size_t lingered_bytes_ = 0;
  uint64_t id_ = 0;
  bool registered_ = false;
};

using PlainSession = Session<TcpStream>;
using TlsSession = Session<beast::ssl_stream<TcpStream>>;

// ParseListen splits "host:port" / "[v6]:port" and resolves the host to one endpoint.
StatusOr<tcp::endpoint> ParseListen(std::string_view listen) {
  std::string_view host, port_text;
  if (!listen.empty() && listen.front() == '[') {
    size_t close = listen.find(']');
    if (close == std::string_view::npos || close + 1 >= listen.size() || listen[close + 1] != ':') {
      return InvalidArgument("listen address must be host:port");
    }
    host = listen.substr(1, close - 1);
    port_text = listen.substr(close + 2);
  } else {
    size_t colon = listen.rfind(':');
    if (colon == std::string_view::npos) return InvalidArgument("listen address must be host:port");
    host = listen.substr(0, colon);
    port_text = listen.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (port_text.empty() || ec != std::errc() || end != port_text.data() + port_text.size() ||
      port > 65535) {
    return InvalidArgument("listen port must be a number from 0 to 65535");
  }
  if (host.empty()) return InvalidArgument("listen address has an empty host");

  beast::error_code addr_ec;
  asio::ip::address address = asio::ip::make_address(std::string(host), addr_ec);
  if (!addr_ec) return tcp::endpoint(address, static_cast<uint16_t>(port));
  // A name (e.g. "localhost"): take the first address the system resolver offers.
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  auto results = resolver.resolve(std::string(host), std::to_string(port), addr_ec);
  if (addr_ec || results.empty()) {
    return Unavailable("cannot resolve listen host " + std::string(host) + ": " +
                       addr_ec.message());
  }
  return results.begin()->endpoint();
}

// RaiseFileLimit lifts the soft RLIMIT_NOFILE towards the hard limit so max_connections (plus
// the process's other descriptors) fit; best effort.
void RaiseFileLimit(size_t max_connections) {
  struct rlimit lim {};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  rlim_t want = static_cast<rlim_t>(2 * (max_connections + kConnectionSlack) + 256);
  if (lim.rlim_cur >= want) return;
  lim.rlim_cur = lim.rlim_max == RLIM_INFINITY ? want : std::min(want, lim.rlim_max);
  (void)setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

struct HttpServer::Impl {
  // One io_context per I/O thread (concurrency hint 1: no locking inside asio), connections
  // dealt round-robin: a request is read, handled and answered on one thread, with no hand-off
  // between threads through a shared scheduler (each hand-off is a futex wake-up, and on this
  // path they cost more CPU than the request itself; docs/benchmarks.md, issue 14).
  explicit Impl(int threads) : iocs(MakeIoContexts(threads)) {}

  static std::vector<std::unique_ptr<asio::io_context>> MakeIoContexts(int threads) {
    std::vector<std::unique_ptr<asio::io_context>> out;
    for (int i = 0; i < threads; ++i) out.push_back(std::make_unique<asio::io_context>(1));
    return out;
  }

  void Accept() {
    asio::io_context& target = *iocs[next_ioc++ % iocs.size()];
    acceptor.async_accept(target.get_executor(),
                          [this](beast::error_code ec, TcpSocket socket) {
                            OnAccept(ec, std::move(socket));
                          });
  }

  void OnAccept(beast::error_code ec, TcpSocket socket) {
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Typically EMFILE: back off briefly instead of spinning on the failing accept.
      retry_timer.expires_after(std::chrono::milliseconds(100));
      retry_timer.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec && !shared->stopping.load()) Accept();
      });
      return;
    }
    if (shared->stopping.load()) {
      beast::error_code ignored;
      socket.close(ignored);
      return;
    }
    if (!shared->MakeRoom()) {
      // Every slot, slack included, is taken while pushed-out connections close on their
      // strands. Hold this connection (and accept no other: the kernel backlog waits) and ask
      // again shortly; it is refused only if no room appears within kAdmitPatience.
      return WaitForRoom(std::move(socket), std::chrono::steady_clock::now() + kAdmitPatience);
    }
    Admit(std::move(socket));
  }

  void WaitForRoom(TcpSocket socket, std::chrono::steady_clock::time_point deadline) {
    auto held = std::make_shared<TcpSocket>(std::move(socket));
    retry_timer.expires_after(std::chrono::milliseconds(5));
    retry_timer.async_wait([this, held, deadline](beast::error_code wait_ec) {
      beast::error_code ignored;
      if (wait_ec || shared->stopping.load()) {
        held->close(ignored);
        return;
      }
      if (shared->MakeRoom()) return Admit(std::move(*held));
      if (std::chrono::steady_clock::now() < deadline)
        return WaitForRoom(std::move(*held), deadline);
      shared->shed.fetch_add(1);
      held->close(ignored);
      Accept();
    });
  }

  void Admit(TcpSocket socket) {
    shared->accepted.fetch_add(1);
    beast::error_code ep_ec;
    tcp::endpoint peer = socket.remote_endpoint(ep_ec);
    std::string remote = ep_ec ? std::string("unknown") : EndpointString(peer);
    if (tls) {
      std::make_shared<TlsSession>(std::move(socket), *tls, shared, std::move(remote))->Run();
    } else {
      std::make_shared<PlainSession>(std::move(socket), shared, std::move(remote))->Run();
    }
    Accept();
  }

  void RunIoThread(asio::io_context& ioc) {
    for (;;) {
      try {
        ioc.run();
        return;
      } catch (const std::exception&) {
        // Only an allocation failure or similar can get here (handler exceptions are caught
        // per request); keep the thread serving rather than terminating the daemon.
      }
    }
  }

  std::shared_ptr<ServerShared> shared = std::make_shared<ServerShared>();
  // Declared before the io_context so it outlives the sessions destroyed with it.
  std::optional<ssl::context> tls;
  std::vector<std::unique_ptr<asio::io_context>> iocs;
  size_t next_ioc = 0;  // the acceptor's strand only
  tcp::acceptor acceptor{asio::make_strand(*iocs.front())};
  asio::steady_timer retry_timer{acceptor.get_executor()};
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;

  std::mutex lifecycle_mu;
  bool started = false;  // guarded by lifecycle_mu
  bool stopped = false;  // guarded by lifecycle_mu
};

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Stop(); }

StatusOr<std::unique_ptr<HttpServer>> HttpServer::Create(std::string_view listen,
                                                         HttpHandler handler,
                                                         HttpServerOptions options) {
  if (!handler) return InvalidArgument("HTTP server needs a handler");
  if (options.threads < 1 || options.threads > 256) {
    return InvalidArgument("HTTP server threads must be between 1 and 256");
  }
  if (options.max_body_bytes == 0) return InvalidArgument("max_body_bytes must be positive");
  if (options.read_timeout.count() <= 0) return InvalidArgument("read_timeout must be positive");
  if (options.idle_timeout.count() <= 0) return InvalidArgument("idle_timeout must be positive");
  if (options.max_connections == 0) return InvalidArgument("max_connections must be positive");
  RaiseFileLimit(options.max_connections);
  if (options.stop_grace.count() < 0) return InvalidArgument("stop_grace must not be negative");
  if (options.tls_cert_file.empty() != options.tls_key_file.empty()) {
    return InvalidArgument("TLS needs both a certificate file and a key file");
  }
  ASSIGN_OR_RETURN(tcp::endpoint endpoint, ParseListen(listen));

  try {
    auto impl = std::make_unique<Impl>(options.threads);
    if (!options.tls_cert_file.empty()) {
      impl->tls.emplace(ssl::context::tls_server);
      ssl::context& ctx = *impl->tls;
      if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
        return InternalError("cannot set the minimum TLS version");
      }
      beast::error_code ec;
      ctx.use_certificate_chain_file(options.tls_cert_file, ec);
      if (ec) {
        return InvalidArgument("cannot load TLS certificate chain from " + options.tls_cert_file +
                               ": " + ec.message());
      }
      ctx.use_private_key_file(options.tls_key_file, ssl::context::pem, ec);
      if (ec) {
        return InvalidArgument("cannot load TLS private key from " + options.tls_key_file + ": " +
                               ec.message());
      }
      if (SSL_CTX_check_private_key(ctx.native_handle()) != 1) {
        return InvalidArgument("TLS private key does not match the certificate");
      }
      if (!options.tls_client_ca_file.empty()) {
        ctx.load_verify_file(options.tls_client_ca_file, ec);
        if (ec) return InvalidArgument("cannot load TLS client CA file " + options.tls_client_ca_file);
        ctx.set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
        // Client certificates are for client authentication (OpenSSL checks the purpose).
        SSL_CTX_set_purpose(ctx.native_handle(), X509_PURPOSE_SSL_CLIENT);
        std::string subject = options.tls_client_subject;
        ctx.set_verify_callback([subject](bool preverified, ssl::verify_context& vc) {
          if (!preverified) return false;
          X509_STORE_CTX* store = vc.native_handle();
          if (subject.empty() || X509_STORE_CTX_get_error_depth(store) != 0) return true;
          X509* leaf = X509_STORE_CTX_get_current_cert(store);
          char cn[256] = {0};
          int n = leaf == nullptr ? -1
                                  : X509_NAME_get_text_by_NID(X509_get_subject_name(leaf), NID_commonName, cn,
                                                              sizeof cn);
          return n >= 0 && static_cast<size_t>(n) == subject.size() && subject == cn;
        });
      }
    } else if (!options.tls_client_ca_file.empty()) {
      return InvalidArgument("a TLS client CA needs a TLS server certificate");
    }

    beast::error_code ec;
    std::string where = "cannot listen on " + std::string(listen) + ": ";
    impl->acceptor.open(endpoint.protocol(), ec);
    if (ec) return Unavailable(where + ec.message());
    impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) return Unavailable(where + ec.message());
    impl->acceptor.bind(endpoint, ec);
    if (ec) return Unavailable(where + ec.message());
    impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Unavailable(where + ec.message());
    impl->port = impl->acceptor.local_endpoint(ec).port();
    if (ec) return Unavailable(where + ec.message());

    impl->shared->handler = std::move(handler);
    impl->shared->options = std::move(options);
    return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
  } catch (const std::exception&) {
    return InternalError("cannot set up the HTTP server");
  }
}

uint16_t HttpServer::port() const { return impl_->port; }

bool HttpServer::tls() const { return impl_->tls.has_value(); }

uint64_t HttpServer::connections_accepted() const { return impl_->shared->accepted.load(); }

uint64_t HttpServer::requests_served() const { return impl_->shared->served.load(); }

size_t HttpServer::open_connections() const { return impl_->shared->Count(); }

uint64_t HttpServer::connections_shed() const { return impl_->shared->shed.load(); }

Status HttpServer::Start() {
  std::lock_guard<std::mutex> lock(impl_->lifecycle_mu);
  if (impl_->started) return FailedPrecondition("HTTP server already started");
  if (impl_->stopped) return FailedPrecondition("HTTP server was stopped");
  impl_->started = true;
  for (auto& ioc : impl_->iocs) impl_->work.push_back(asio::make_work_guard(*ioc));
  Impl* impl = impl_.get();
  asio::post(impl->acceptor.get_executor(), [impl] { impl->Accept(); });
  try {
    for (auto& ioc : impl->iocs) {
      impl->threads.emplace_back([impl, ioc = ioc.get()] { impl->RunIoThread(*ioc); });
    }
  } catch (const std::system_error&) {
  }
  // Each thread serves its own connections: all must run (those that did are joined by Stop).
  if (impl->threads.size() != impl->iocs.size())
    return InternalError("cannot start every HTTP server thread");
  return Status::Ok();
}

void HttpServer::Stop() {
  Impl* impl = impl_.get();
  std::lock_guard<std::mutex> lock(impl->lifecycle_mu);
  if (impl->stopped) return;
  impl->stopped = true;
  impl->shared->stopping.store(true);
  if (impl->started) {
    asio::post(impl->acceptor.get_executor(), [impl] {
      beast::error_code ignored;
      impl->acceptor.close(ignored);
      impl->retry_timer.cancel();
    });
    std::vector<std::shared_ptr<SessionBase>> live;
    {
      std::lock_guard<std::mutex> sessions_lock(impl->shared->mu);
      for (auto& [id, weak] : impl->shared->sessions) {
        if (auto session = weak.lock()) live.push_back(std::move(session));
      }
    }
    for (auto& session : live) session->Drain();
    // Holding these would keep the sessions alive and the wait below from ever succeeding.
    live.clear();
    {
      std::unique_lock<std::mutex> sessions_lock(impl->shared->mu);
      impl->shared->sessions_empty.wait_for(sessions_lock, impl->shared->options.stop_grace,
                                            [impl] { return impl->shared->sessions.empty(); });
    }
    impl->work.clear();
    for (auto& ioc : impl->iocs) ioc->stop();
    for (auto& t : impl->threads) t.join();
    impl->threads.clear();
  }
  beast::error_code ignored;
  impl->acceptor.close(ignored);
}

}  // namespace custos::net
