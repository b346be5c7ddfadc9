// Tests for the HTTP layer against a real server on 127.0.0.1 with an ephemeral port.
#include "net/http.h"

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <future>
#include <mutex>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "net/http_client.h"
#include "net/json_fields.h"
#include "net/http_server.h"
#include "net/fiber.h"
#include "tests/testing/testing.h"

namespace custos::net {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// EchoHandler answers with a JSON description of the request so tests can check what the
// handler saw; a few targets have special behaviour.
HttpResponse EchoHandler(const HttpRequest& req) {
  if (req.target == "/throw") throw std::runtime_error("database password is hunter2");
  if (req.target == "/sleep") std::this_thread::sleep_for(1s);
  HttpResponse res;
  nlohmann::json doc = {
      {"method", req.method}, {"target", req.target}, {"body", req.body}, {"remote", req.remote}};
  auto it = req.headers.find("x-custos-test");
  if (it != req.headers.end()) doc["x_custos_test"] = it->second;
  res.body = doc.dump();
  res.headers["X-Reply"] = "yes";
  return res;
}

std::unique_ptr<HttpServer> StartServer(HttpHandler handler, HttpServerOptions options = {}) {
  auto server = HttpServer::Create("127.0.0.1:0", std::move(handler), std::move(options));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  if (!server.ok()) return nullptr;
  EXPECT_OK((*server)->Start());
  return std::move(server).value();
}

std::string BaseUrl(const HttpServer& server) {
  return std::string(server.tls() ? "https" : "http") +
         "://127.0.0.1:" + std::to_string(server.port());
}

HttpClient MakeClient(const std::string& url, HttpClientOptions options = {}) {
  auto client = HttpClient::Create(url, std::move(options));
  if (!client.ok()) {
    // Every caller passes a valid URL; failing here is a bug in the client, not the test.
    ADD_FAILURE() << client.status().ToString();
    std::abort();
  }
  return std::move(client).value();
}

// SendRaw writes `bytes` on a fresh TCP connection and returns everything the server sends
// until it closes the connection.
std::string SendRaw(uint16_t port, const std::string& bytes) {
  boost::asio::io_context ioc;
  boost::asio::ip::tcp::socket socket(ioc);
  socket.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  boost::asio::write(socket, boost::asio::buffer(bytes));
  std::string reply;
  boost::system::error_code ec;
  boost::asio::read(socket, boost::asio::dynamic_buffer(reply), ec);
  return reply;
}

// Bodies nested deeper than kMaxJsonDepth are refused by a linear scan before any parser runs
// (16 bodies of 1 MB of '[' once took a server from 62 MB to 603 MB); brackets inside strings
// do not count.
TEST(JsonDepth, DeepNestingIsRefusedBeforeParsing) {
  std::string deep(1 << 20, '[');
  auto refused = ParseJsonObject(deep);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("nested deeper than 32"), std::string::npos);
  std::string ok32 = std::string(31, '[') + "{}" + std::string(31, ']');
  EXPECT_TRUE(CheckJsonDepth(ok32).ok());
  EXPECT_FALSE(CheckJsonDepth("[" + ok32 + "]").ok());
  EXPECT_TRUE(CheckJsonDepth(R"({"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"[[[[[["})").ok());
  auto parsed = ParseJsonObject(R"({"k": [[1], {"x": "]]]]"}]})");
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ((*parsed)["k"][1]["x"], "]]]]");
  EXPECT_FALSE(ParseJsonObject("[1]").ok());
  EXPECT_TRUE(ParseJsonObject("").ok());
}

TEST(ParseUrl, AcceptsHttpAndHttps) {
  auto a = ParseUrl("http://127.0.0.1:8080");
  ASSERT_OK(a.status());
  EXPECT_EQ(a->scheme, "http");
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 8080);
  EXPECT_EQ(a->path_prefix, "");
  EXPECT_FALSE(a->tls());

  auto b = ParseUrl("https://keeper.example.com/api/v1/");
  ASSERT_OK(b.status());
  EXPECT_TRUE(b->tls());
  EXPECT_EQ(b->port, 443);
  EXPECT_EQ(b->path_prefix, "/api/v1");
  EXPECT_EQ(b->Origin(), "https://keeper.example.com:443");

  auto c = ParseUrl("http://[::1]:9/x");
  ASSERT_OK(c.status());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, 9);
  EXPECT_EQ(c->Origin(), "http://[::1]:9");
}

TEST(ParseUrl, Refusals) {
  for (const char* bad :
       {"", "127.0.0.1:80", "ftp://host/", "HTTP//host", "http://", "http://:80",
        "http://host:", "http://host:0", "http://host:65536", "http://host:12ab",
        "http://host/?q=1", "http://host/a#frag", "http://ho st/", "http://host/a b", "http://[::1",
        "http://[]:80", "http://[::1]x", "http://host\r\n/"}) {
    auto url = ParseUrl(bad);
    EXPECT_FALSE(url.ok()) << "accepted: " << bad;
    if (!url.ok()) {
      EXPECT_EQ(url.status().code(), ErrorCode::kInvalidArgument) << bad;
    }
  }
  // User info is refused, and the credential is not repeated in the error.
  auto creds = ParseUrl("https://admin:s3cretpw@keeper.example/");
  ASSERT_FALSE(creds.ok());
  EXPECT_EQ(creds.status().message().find("s3cretpw"), std::string::npos);
}

TEST(Http, GetAndPostRoundTrip) {
  auto server = StartServer(EchoHandler);
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient(BaseUrl(*server) + "/base");

  auto get = client.Get("/v1/hello?x=1", {{"X-Custos-Test", "abc"}});
  ASSERT_OK(get.status());
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->content_type, "application/json");
  EXPECT_EQ(get->headers["x-reply"], "yes");
  auto doc = nlohmann::json::parse(get->body);
  EXPECT_EQ(doc["method"], "GET");
  EXPECT_EQ(doc["target"], "/base/v1/hello?x=1");
  EXPECT_EQ(doc["x_custos_test"], "abc");
  EXPECT_EQ(doc["remote"].get<std::string>().rfind("127.0.0.1:", 0), 0u);

  std::string body = R"({"suite":1,"data":")" + std::string(1000, 'z') + "\"}";
  auto post = client.Post("/v1/sys/thing", body);
  ASSERT_OK(post.status());
  EXPECT_EQ(post->status, 200);
  doc = nlohmann::json::parse(post->body);
  EXPECT_EQ(doc["method"], "POST");
  EXPECT_EQ(doc["body"], body);
  EXPECT_EQ(server->requests_served(), 2u);

  // Bad paths and headers are refused before anything is sent.
  EXPECT_EQ(client.Get("no-slash").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.Get("/a b").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(client.Get("/", {{"X-Evil", "a\r\nInjected: 1"}}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(server->requests_served(), 2u);
}

TEST(Http, OneFiberThreadServesOtherConnectionsWhileAHandlerIsSuspended) {
  // One I/O thread. The handler of /park suspends its fiber until /unpark resumes it: without
  // fibers the thread would be stuck in /park and /unpark would never be read.
  std::mutex mu;
  fiber::Fiber* parked = nullptr;
  HttpServerOptions options;
  options.threads = 1;
  options.fibers = true;
  auto server = StartServer(
      [&](const HttpRequest& req) {
        HttpResponse res;
        if (req.target == "/park") {
          {
            std::lock_guard lock(mu);
            parked = fiber::Current();
          }
          fiber::Suspend();
          res.body = "unparked";
        } else if (req.target == "/unpark") {
          fiber::Fiber* f;
          {
            std::lock_guard lock(mu);
            f = parked;
          }
          if (f == nullptr) {
            res.status = 409;
          } else {
            boost::asio::post(fiber::ContextOf(f), [f] { fiber::Resume(f); });
            res.body = "done";
          }
        } else {
          res.body = fiber::Current() != nullptr ? "on a fiber" : "on the thread";
        }
        return res;
      },
      options);
  ASSERT_NE(server, nullptr);
  auto parked_answer = std::async(std::launch::async, [&] { return MakeClient(BaseUrl(*server)).Get("/park"); });
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(mu);
      if (parked != nullptr) break;
    }
    std::this_thread::sleep_for(10ms);
  }
  HttpClient other = MakeClient(BaseUrl(*server));
  auto plain = other.Get("/other");
  ASSERT_OK(plain.status());
  EXPECT_EQ(plain->body, "on a fiber");
  EXPECT_EQ(parked_answer.wait_for(0ms), std::future_status::timeout);  // still parked
  auto unpark = other.Get("/unpark");
  ASSERT_OK(unpark.status());
  EXPECT_EQ(unpark->status, 200);
  ASSERT_EQ(parked_answer.wait_for(10s), std::future_status::ready);
  auto parked_res = parked_answer.get();
  ASSERT_OK(parked_res.status());
  EXPECT_EQ(parked_res->body, "unparked");
  EXPECT_EQ(server->requests_served(), 3u);
}

TEST(Http, KeepAliveReusesOneConnection) {
  auto server = StartServer(EchoHandler);
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient(BaseUrl(*server));
  for (int i = 0; i < 5; ++i) {
    auto res = client.Post("/n", std::to_string(i));
    ASSERT_OK(res.status());
    EXPECT_EQ(nlohmann::json::parse(res->body)["body"], std::to_string(i));
  }
  EXPECT_EQ(server->connections_accepted(), 1u);
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST(Http, ReconnectsWhenServerClosedIdleConnection) {
  HttpServerOptions options;
  options.read_timeout = 300ms;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient(BaseUrl(*server));
  ASSERT_OK(client.Get("/one").status());
  std::this_thread::sleep_for(800ms);  // the server times the idle connection out
  auto res = client.Post("/two", "payload");
  ASSERT_OK(res.status());
  EXPECT_EQ(nlohmann::json::parse(res->body)["body"], "payload");
  EXPECT_EQ(server->connections_accepted(), 2u);
  EXPECT_EQ(client.connections_opened(), 2u);
  EXPECT_EQ(server->requests_served(), 2u);  // the request was not processed twice
}

TEST(Http, OversizedBodyGets413AndServerKeepsServing) {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient(BaseUrl(*server));

  // Exactly at the limit is fine.
  auto at_limit = client.Post("/fits", std::string(1024, 'a'));
  ASSERT_OK(at_limit.status());
  EXPECT_EQ(at_limit->status, 200);

  // Far above the limit, so the server answers while the client is still sending.
  auto big = client.Post("/big", std::string(4 << 20, 'b'));
  ASSERT_OK(big.status());
  EXPECT_EQ(big->status, 413);
  auto doc = nlohmann::json::parse(big->body);
  EXPECT_EQ(doc["error"], "request_too_large");
  EXPECT_TRUE(doc["message"].is_string());
  EXPECT_EQ(big->headers["connection"], "close");

  auto after = client.Get("/after");
  ASSERT_OK(after.status());
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(server->requests_served(), 2u);  // the oversized request never reached the handler
}

TEST(Http, MalformedRequestsGet400AndServerKeepsServing) {
  HttpServerOptions options;
  options.read_timeout = 5s;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  for (const std::string& junk : {std::string("\x16\x03\x01\x02 garbage\r\n\r\n"),
                                  std::string("GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n"),
                                  std::string("GET / HTTX/1.1\r\n\r\n"),
                                  std::string("POST / HTTP/1.1\r\nContent-Length: 12x\r\n\r\n")}) {
    std::string reply = SendRaw(server->port(), junk);
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
    EXPECT_NE(reply.find("\"error\":\"bad_request\""), std::string::npos) << reply;
  }
  HttpClient client = MakeClient(BaseUrl(*server));
  auto res = client.Get("/still-there");
  ASSERT_OK(res.status());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(server->requests_served(), 1u);
}

TEST(Http, HandlerExceptionBecomesGeneric500) {
  auto server = StartServer(EchoHandler);
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient(BaseUrl(*server));
  auto res = client.Get("/throw");
  ASSERT_OK(res.status());
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->body.find("hunter2"), std::string::npos);
  EXPECT_EQ(nlohmann::json::parse(res->body)["error"], "internal");
  // The connection survives a handler failure.
  ASSERT_OK(client.Get("/ok").status());
  EXPECT_EQ(client.connections_opened(), 1u);
}

TEST(Http, IncompleteRequestTimesOut) {
  HttpServerOptions options;
  options.read_timeout = 300ms;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  auto start = Clock::now();
  std::string reply =
      SendRaw(server->port(), "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab");
  auto elapsed = Clock::now() - start;
  EXPECT_EQ(reply, "");  // closed without running the handler
  EXPECT_GE(elapsed, 250ms);
  EXPECT_LT(elapsed, 5s);
  EXPECT_EQ(server->requests_served(), 0u);
}

// Idle sockets (connected, sending nothing) can neither exhaust the server's descriptors nor
// lock out a client: at max_connections the oldest idle ones are pushed out, and each closes
// after idle_timeout anyway. (22,000 idle connections once made a good request wait 10.7 s.)
TEST(Http, IdleConnectionsAreShedAndAGoodClientIsServed) {
  HttpServerOptions options;
  options.max_connections = 32;
  options.idle_timeout = 2s;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  boost::asio::io_context ioc;
  std::vector<std::unique_ptr<boost::asio::ip::tcp::socket>> idle;
  for (int i = 0; i < 300; ++i) {
    auto sock = std::make_unique<boost::asio::ip::tcp::socket>(ioc);
    boost::system::error_code ec;
    sock->connect({boost::asio::ip::make_address("127.0.0.1"), server->port()}, ec);
    ASSERT_FALSE(ec) << ec.message();
    idle.push_back(std::move(sock));
  }
  auto start = Clock::now();
  auto client = MakeClient(BaseUrl(*server));
  auto res = client.Get("/served");
  ASSERT_OK(res.status());
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(Clock::now() - start, 1s);
  for (int i = 0; i < 100 && server->open_connections() > options.max_connections + 64; ++i)
    std::this_thread::sleep_for(10ms);
  EXPECT_LE(server->open_connections(), options.max_connections + 64);
  EXPECT_GE(server->connections_shed(), 200u);
  // The idle timeout closes the rest without any request.
  for (int i = 0; i < 400 && server->open_connections() > 0; ++i) std::this_thread::sleep_for(10ms);
  EXPECT_EQ(server->open_connections(), 0u);
}

TEST(Http, ClientTimeout) {
  auto server = StartServer(EchoHandler);
  ASSERT_NE(server, nullptr);
  HttpClientOptions options;
  options.timeout = 200ms;
  HttpClient client = MakeClient(BaseUrl(*server), options);
  auto start = Clock::now();
  auto res = client.Get("/sleep");
  EXPECT_LT(Clock::now() - start, 900ms);
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kUnavailable);
  EXPECT_NE(res.status().message().find("timed out"), std::string::npos) << res.status().message();
}

TEST(Http, ConnectionRefusedIsUnavailable) {
  uint16_t port;
  {
    auto server = StartServer(EchoHandler);
    ASSERT_NE(server, nullptr);
    port = server->port();
  }
  std::string url = "http://127.0.0.1:" + std::to_string(port);
  HttpClient client = MakeClient(url);
  auto res = client.Post("/x", "{\"secret_body\":1}");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(res.status().message(), "cannot connect to " + url + ": Connection refused");
}

TEST(Http, GracefulStopFinishesInFlightRequest) {
  std::atomic<bool> entered{false};
  auto server = StartServer([&](const HttpRequest& req) {
    HttpResponse res;
    if (req.target == "/slow") {
      entered = true;
      std::this_thread::sleep_for(500ms);
      res.body = "{\"done\":true}";
    }
    return res;
  });
  ASSERT_NE(server, nullptr);
  std::string url = BaseUrl(*server);

  // An idle keep-alive connection must not hold Stop up until it times out.
  HttpClient idle = MakeClient(url);
  ASSERT_OK(idle.Get("/").status());

  StatusOr<HttpResponse> slow = InternalError("not run");
  std::thread requester([&] {
    HttpClient client = MakeClient(url);
    slow = client.Get("/slow");
  });
  auto wait_start = Clock::now();
  while (!entered && Clock::now() - wait_start < 5s) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(entered);

  auto stop_start = Clock::now();
  server->Stop();
  auto stop_time = Clock::now() - stop_start;
  requester.join();
  ASSERT_OK(slow.status());
  EXPECT_EQ(slow->status, 200);
  EXPECT_EQ(slow->body, "{\"done\":true}");
  EXPECT_EQ(slow->headers["connection"], "close");
  EXPECT_LT(stop_time, 3s);

  // Stopped means stopped: nobody accepts any more.
  EXPECT_EQ(idle.Get("/").status().code(), ErrorCode::kUnavailable);
  EXPECT_FALSE(server->Start().ok());
}

TEST(HttpServer, RefusesBadOptions) {
  EXPECT_FALSE(HttpServer::Create("127.0.0.1", EchoHandler).ok());
  EXPECT_FALSE(HttpServer::Create("127.0.0.1:99999", EchoHandler).ok());
  EXPECT_FALSE(HttpServer::Create("127.0.0.1:0", nullptr).ok());
  HttpServerOptions only_cert;
  only_cert.tls_cert_file = "/nonexistent.pem";
  EXPECT_FALSE(HttpServer::Create("127.0.0.1:0", EchoHandler, only_cert).ok());
  HttpServerOptions missing;
  missing.tls_cert_file = "/nonexistent/cert.pem";
  missing.tls_key_file = "/nonexistent/key.pem";
  EXPECT_EQ(HttpServer::Create("127.0.0.1:0", EchoHandler, missing).status().code(),
            ErrorCode::kInvalidArgument);
  // The port is taken.
  auto first = HttpServer::Create("127.0.0.1:0", EchoHandler);
  ASSERT_OK(first.status());
  auto second = HttpServer::Create("127.0.0.1:" + std::to_string((*first)->port()), EchoHandler);
  EXPECT_EQ(second.status().code(), ErrorCode::kUnavailable);
}

// --- TLS: a throwaway PKI generated at run time ---

struct KeyDeleter {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct CertDeleter {
  void operator()(X509* c) const { X509_free(c); }
};
using KeyPtr = std::unique_ptr<EVP_PKEY, KeyDeleter>;
using CertPtr = std::unique_ptr<X509, CertDeleter>;

void AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  ASSERT_NE(ext, nullptr) << value;
  ASSERT_EQ(X509_add_ext(cert, ext, -1), 1);
  X509_EXTENSION_free(ext);
}

// IssueCert makes a P-256 certificate for `cn`, signed by (issuer, issuer_key), or self-signed
// when issuer is null. `san` is a subjectAltName value or null for a CA.
void IssueCert(const char* cn, X509* issuer, EVP_PKEY* issuer_key, const char* san, KeyPtr* key_out,
               CertPtr* cert_out, const char* eku = "serverAuth") {
  static long serial = 1;
  KeyPtr key(EVP_EC_gen("P-256"));
  ASSERT_NE(key, nullptr);
  CertPtr cert(X509_new());
  ASSERT_EQ(X509_set_version(cert.get(), X509_VERSION_3), 1);
  ASSERT_EQ(ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial++), 1);
  ASSERT_NE(X509_gmtime_adj(X509_getm_notBefore(cert.get()), -60), nullptr);
  ASSERT_NE(X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600), nullptr);
  X509_NAME* name = X509_get_subject_name(cert.get());
  ASSERT_EQ(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                       reinterpret_cast<const unsigned char*>(cn), -1, -1, 0),
            1);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  EVP_PKEY* signer_key = issuer_key != nullptr ? issuer_key : key.get();
  ASSERT_EQ(X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)), 1);
  ASSERT_EQ(X509_set_pubkey(cert.get(), key.get()), 1);
  if (san == nullptr) {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:TRUE");
    AddExtension(cert.get(), signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    AddExtension(cert.get(), signer, NID_basic_constraints, "critical,CA:FALSE");
    AddExtension(cert.get(), signer, NID_ext_key_usage, eku);
    AddExtension(cert.get(), signer, NID_subject_alt_name, san);
  }
  ASSERT_GT(X509_sign(cert.get(), signer_key, EVP_sha256()), 0);
  *key_out = std::move(key);
  *cert_out = std::move(cert);
}

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  BIO* bio = BIO_new_file(path.c_str(), "w");
  ASSERT_NE(bio, nullptr);
  if (cert != nullptr) {
    EXPECT_EQ(PEM_write_bio_X509(bio, cert), 1);
  }
  if (key != nullptr) {
    EXPECT_EQ(PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr), 1);
  }
  BIO_free(bio);
}

class HttpTls : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = custos::testing::TempDir();
    KeyPtr ca_key, other_ca_key, leaf_key, wrong_name_key;
    CertPtr ca, other_ca, leaf, wrong_name;
    ASSERT_NO_FATAL_FAILURE(IssueCert("custos test CA", nullptr, nullptr, nullptr, &ca_key, &ca));
    ASSERT_NO_FATAL_FAILURE(
        IssueCert("unrelated CA", nullptr, nullptr, nullptr, &other_ca_key, &other_ca));
    ASSERT_NO_FATAL_FAILURE(IssueCert("keeper", ca.get(), ca_key.get(),
                                      "IP:127.0.0.1,DNS:localhost", &leaf_key, &leaf));
    ASSERT_NO_FATAL_FAILURE(IssueCert("elsewhere", ca.get(), ca_key.get(), "DNS:elsewhere.example",
                                      &wrong_name_key, &wrong_name));
    ca_file_ = dir_ + "/ca.pem";
    other_ca_file_ = dir_ + "/other-ca.pem";
    WritePem(ca_file_, ca.get(), nullptr);
    WritePem(other_ca_file_, other_ca.get(), nullptr);
    WritePem(dir_ + "/leaf.pem", leaf.get(), nullptr);
    WritePem(dir_ + "/leaf.key", nullptr, leaf_key.get());
    WritePem(dir_ + "/wrong.pem", wrong_name.get(), nullptr);
    WritePem(dir_ + "/wrong.key", nullptr, wrong_name_key.get());
  }

  HttpServerOptions TlsOptions(const std::string& stem) {
    HttpServerOptions options;
    options.tls_cert_file = dir_ + "/" + stem + ".pem";
    options.tls_key_file = dir_ + "/" + stem + ".key";
    return options;
  }

  std::string dir_, ca_file_, other_ca_file_;
};

TEST_F(HttpTls, RoundTripWithTrustedCa) {
  auto server = StartServer(EchoHandler, TlsOptions("leaf"));
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->tls());
  HttpClientOptions options;
  options.ca_file = ca_file_;
  HttpClient client = MakeClient(BaseUrl(*server), options);
  for (int i = 0; i < 3; ++i) {
    auto res = client.Post("/tls", "sealed" + std::to_string(i));
    ASSERT_OK(res.status());
    EXPECT_EQ(res->status, 200);
    EXPECT_EQ(nlohmann::json::parse(res->body)["body"], "sealed" + std::to_string(i));
  }
  EXPECT_EQ(server->connections_accepted(), 1u);

  // The DNS name in the certificate works too.
  HttpClient by_name = MakeClient("https://localhost:" + std::to_string(server->port()), options);
  auto res = by_name.Get("/by-name");
  ASSERT_OK(res.status());
  EXPECT_EQ(res->status, 200);

  // 413 over TLS, then the client reconnects.
  auto big = client.Post("/big", std::string(2 << 20, 'x'));
  ASSERT_OK(big.status());
  EXPECT_EQ(big->status, 413);
  ASSERT_OK(client.Get("/again").status());
}

TEST_F(HttpTls, RefusesServerFromUntrustedCa) {
  auto server = StartServer(EchoHandler, TlsOptions("leaf"));
  ASSERT_NE(server, nullptr);
  HttpClientOptions options;
  options.ca_file = other_ca_file_;
  HttpClient client = MakeClient(BaseUrl(*server), options);
  auto res = client.Post("/x", "must not be sent");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kIntegrity) << res.status().ToString();
  EXPECT_EQ(res.status().message().find("must not be sent"), std::string::npos);
  EXPECT_EQ(server->requests_served(), 0u);
}

TEST_F(HttpTls, RefusesCertificateForAnotherHost) {
  auto server = StartServer(EchoHandler, TlsOptions("wrong"));
  ASSERT_NE(server, nullptr);
  HttpClientOptions options;
  options.ca_file = ca_file_;
  HttpClient client = MakeClient(BaseUrl(*server), options);
  auto res = client.Get("/x");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kIntegrity) << res.status().ToString();
  EXPECT_EQ(server->requests_served(), 0u);
}

// Mutual TLS (the XKS listener, docs/xks.md): only a client certificate chained to the
// configured CA, for client authentication, with exactly the configured subject CN gets in.
TEST_F(HttpTls, MutualTlsAdmitsOnlyTheConfiguredClient) {
  KeyPtr ca_key, other_key, k1, k2, k3, k4;
  CertPtr client_ca, other_ca, kms, wrong_cn, foreign, server_only;
  ASSERT_NO_FATAL_FAILURE(IssueCert("client CA", nullptr, nullptr, nullptr, &ca_key, &client_ca));
  ASSERT_NO_FATAL_FAILURE(IssueCert("other client CA", nullptr, nullptr, nullptr, &other_key, &other_ca));
  const char* cn = "cks.kms.eu-west-1.amazonaws.com";
  ASSERT_NO_FATAL_FAILURE(IssueCert(cn, client_ca.get(), ca_key.get(), "DNS:kms.example", &k1, &kms, "clientAuth"));
  ASSERT_NO_FATAL_FAILURE(IssueCert("cks.kms.us-east-1.amazonaws.com", client_ca.get(), ca_key.get(), "DNS:kms.example",
                                    &k2, &wrong_cn, "clientAuth"));
  ASSERT_NO_FATAL_FAILURE(IssueCert(cn, other_ca.get(), other_key.get(), "DNS:kms.example", &k3, &foreign, "clientAuth"));
  ASSERT_NO_FATAL_FAILURE(IssueCert(cn, client_ca.get(), ca_key.get(), "DNS:kms.example", &k4, &server_only, "serverAuth"));
  WritePem(dir_ + "/client-ca.pem", client_ca.get(), nullptr);
  for (auto [stem, cert, key] : {std::tuple{"kms", kms.get(), k1.get()}, {"wrong-cn", wrong_cn.get(), k2.get()},
                                 {"foreign", foreign.get(), k3.get()}, {"server-only", server_only.get(), k4.get()}}) {
    WritePem(dir_ + "/" + stem + ".pem", cert, nullptr);
    WritePem(dir_ + "/" + stem + ".key", nullptr, key);
  }
  HttpServerOptions options = TlsOptions("leaf");
  options.tls_client_ca_file = dir_ + "/client-ca.pem";
  options.tls_client_subject = cn;
  auto server = StartServer(EchoHandler, options);
  ASSERT_NE(server, nullptr);
  auto call = [&](const std::string& stem) {
    HttpClientOptions o;
    o.ca_file = ca_file_;
    if (!stem.empty()) {
      o.client_cert_file = dir_ + "/" + stem + ".pem";
      o.client_key_file = dir_ + "/" + stem + ".key";
    }
    HttpClient client = MakeClient(BaseUrl(*server), o);
    return client.Post("/mtls", "hello");
  };
  auto ok = call("kms");
  ASSERT_OK(ok.status());
  EXPECT_EQ(ok->status, 200);
  for (const char* refused : {"", "wrong-cn", "foreign", "server-only"}) {
    auto r = call(refused);
    EXPECT_FALSE(r.ok() && r->status == 200) << "client " << refused << " got in";
  }
  EXPECT_EQ(server->requests_served(), 1u);
  // A client CA without a server certificate is a configuration error.
  HttpServerOptions plain;
  plain.tls_client_ca_file = dir_ + "/client-ca.pem";
  EXPECT_EQ(HttpServer::Create("127.0.0.1:0", EchoHandler, plain).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(HttpTls, PlainClientGetsNoAnswer) {
  auto server = StartServer(EchoHandler, TlsOptions("leaf"));
  ASSERT_NE(server, nullptr);
  HttpClient client = MakeClient("http://127.0.0.1:" + std::to_string(server->port()));
  auto res = client.Get("/x");
  ASSERT_FALSE(res.ok());
  EXPECT_EQ(res.status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(server->requests_served(), 0u);
}

}  // namespace
}  // namespace custos::net
