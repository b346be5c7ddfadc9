// Boost 1.74's Asio SSL layer names OpenSSL APIs that OPENSSL_NO_DEPRECATED removes; see the
// note at the top of http_server.cc. Deprecated symbols stay marked deprecated, so -Werror
// still refuses any use of them in this file.
#undef OPENSSL_NO_DEPRECATED

#include "net/http_client.h"

#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>
#include <vector>

namespace custos::net {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;

constexpr uint32_t kResponseHeaderLimit = 64 * 1024;

std::string Lower(beast::string_view s) {
  std::string out(s.data(), s.size());
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    if (!ok) return false;
  }
  return true;
}

// A request path must be origin-form: start with '/', no whitespace, controls or fragment, so
// that it cannot split the request line.
bool IsValidPath(std::string_view path) {
  if (path.empty() || path.front() != '/') return false;
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '#') return false;
  }
  return true;
}

// Errors the server produces by closing a kept-alive connection we believed open.
bool IsPeerClosed(const beast::error_code& ec) {
  return ec == http::error::end_of_stream || ec == asio::error::eof ||
         ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
         ec == ssl::error::stream_truncated;
}

}  // namespace

struct HttpClient::Impl {
  Url url;
  std::string origin;
  HttpClientOptions options;
  bool host_is_ip = false;
  asio::io_context ioc{1};
  // The ssl::context must outlive the stream that uses it (declared first, destroyed last).
  std::optional<ssl::context> tls;
  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  beast::flat_buffer buffer;
  bool connected = false;
  uint64_t opened = 0;

  beast::tcp_stream& Lowest() { return secure ? beast::get_lowest_layer(*secure) : *plain; }

  // RunPending drives the private io_context until every started operation has completed.
  // Each operation carries a deadline (stream expiry or a timer), so this cannot hang.
  void RunPending() {
    ioc.restart();
    ioc.run();
  }

  std::string Reason(const beast::error_code& ec) const {
    if (ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return "timed out after " + std::to_string(options.timeout.count()) + " ms";
    }
    return ec.message();
  }

  void Close() {
    if (secure) {
      beast::get_lowest_layer(*secure).close();
      secure.reset();
    }
    if (plain) {
      plain->close();
      plain.reset();
    }
    buffer.clear();
    connected = false;
  }

  Status Connect(std::chrono::steady_clock::time_point deadline) {
    Close();
    std::vector<tcp::endpoint> endpoints;
    beast::error_code ec;
    asio::ip::address address = asio::ip::make_address(url.host, ec);
    if (!ec) {
      endpoints.emplace_back(address, url.port);
    } else {
      tcp::resolver resolver(ioc);
      asio::steady_timer timer(ioc);
      timer.expires_at(deadline);
      beast::error_code resolve_ec;
      resolver.async_resolve(url.host, std::to_string(url.port),
                             [&](beast::error_code e, tcp::resolver::results_type results) {
                               resolve_ec = e;
                               for (const auto& entry : results)
                                 endpoints.push_back(entry.endpoint());
                               timer.cancel();
                             });
      timer.async_wait([&](beast::error_code e) {
        if (!e) resolver.cancel();
      });
      RunPending();
      if (resolve_ec || endpoints.empty()) {
        return Unavailable("cannot resolve " + origin + ": " + Reason(resolve_ec));
      }
    }

    if (tls) {
      secure.emplace(ioc, *tls);
    } else {
      plain.emplace(ioc);
    }
    Lowest().expires_at(deadline);
    beast::error_code connect_ec;
    Lowest().async_connect(endpoints,
                           [&](beast::error_code e, const tcp::endpoint&) { connect_ec = e; });
    RunPending();
    if (connect_ec) {
      Close();
      return Unavailable("cannot connect to " + origin + ": " + Reason(connect_ec));
    }
    opened++;

    if (secure) {
      SSL* ssl_handle = secure->native_handle();
      if (host_is_ip) {
        // SSL_set1_host matches DNS names only; an IP host must match an iPAddress SAN.
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_handle), url.host.c_str()) != 1) {
          Close();
          return InternalError("cannot set TLS peer address check");
        }
      } else {
        if (SSL_set_tlsext_host_name(ssl_handle, url.host.c_str()) != 1 ||
            SSL_set1_host(ssl_handle, url.host.c_str()) != 1) {
          Close();
          return InternalError("cannot set TLS peer name check");
        }
      }
      secure->set_verify_mode(ssl::verify_peer);
      Lowest().expires_at(deadline);
      beast::error_code handshake_ec;
      secure->async_handshake(ssl::stream_base::client,
                              [&](beast::error_code e) { handshake_ec = e; });
      RunPending();
      if (handshake_ec) {
        long verify = SSL_get_verify_result(ssl_handle);
        Close();
        if (verify != X509_V_OK) {
          return IntegrityError("TLS certificate of " + origin +
                                " rejected: " + X509_verify_cert_error_string(verify));
        }
        return Unavailable("TLS handshake with " + origin + " failed: " + Reason(handshake_ec));
      }
    }
    connected = true;
    return Status::Ok();
  }

  template <class F>
  void WithStream(F&& f) {
    if (secure) {
      f(*secure);
    } else {
      f(*plain);
    }
  }

  StatusOr<HttpResponse> Send(std::string_view method, std::string_view path, std::string_view body,
                              const HttpHeaders& headers) {
    http::verb verb = http::string_to_verb(beast::string_view(method.data(), method.size()));
    if (verb == http::verb::unknown) return InvalidArgument("unsupported HTTP method");
    if (!IsValidPath(path))
      return InvalidArgument(
          "request path must start with '/' and contain no spaces or control characters");

    http::request<http::string_body> req{verb, url.path_prefix + std::string(path), 11};
    std::string host_header =
        host_is_ip && url.host.find(':') != std::string::npos ? "[" + url.host + "]" : url.host;
    if (url.port != (url.tls() ? 443 : 80)) host_header += ":" + std::to_string(url.port);
    req.set(http::field::host, host_header);
    req.set(http::field::user_agent, "custos");
    bool has_content_type = false;
    for (const auto& [name, value] : headers) {
      if (!IsToken(name)) return InvalidArgument("request header name is not a valid token");
      if (value.find_first_of(std::string_view("\r\n\0", 3)) != std::string::npos) {
        return InvalidArgument("request header " + name + " has an invalid value");
      }
      std::string lower = Lower(name);
      if (lower == "host" || lower == "content-length" || lower == "transfer-encoding" ||
          lower == "connection") {
        return InvalidArgument("request header " + name + " is set by the client itself");
      }
      if (lower == "content-type") has_content_type = true;
      req.set(name, value);
    }
    if (!body.empty() && !has_content_type) req.set(http::field::content_type, "application/json");
    req.body() = std::string(body);
    req.keep_alive(true);
    req.prepare_payload();

    const auto deadline = std::chrono::steady_clock::now() + options.timeout;
    for (int attempt = 0;; ++attempt) {
      const bool reused = connected;
      if (!connected) RETURN_IF_ERROR(Connect(deadline));
      const bool may_retry = reused && attempt == 0;

      beast::error_code write_ec;
      Lowest().expires_at(deadline);
      WithStream([&](auto& stream) {
        http::async_write(stream, req, [&](beast::error_code e, size_t) { write_ec = e; });
      });
      RunPending();
      if (write_ec) {
        Close();
        if (may_retry && IsPeerClosed(write_ec)) continue;
        return Unavailable("sending request to " + origin + " failed: " + Reason(write_ec));
      }

      http::response_parser<http::string_body> parser;
      parser.body_limit(options.max_response_bytes);
      parser.header_limit(kResponseHeaderLimit);
      beast::error_code read_ec;
      Lowest().expires_at(deadline);
      WithStream([&](auto& stream) {
        http::async_read(stream, buffer, parser, [&](beast::error_code e, size_t) { read_ec = e; });
      });
      RunPending();
      if (read_ec) {
        const bool got_nothing = !parser.got_some();
        Close();
        if (may_retry && got_nothing && IsPeerClosed(read_ec)) continue;
        if (read_ec == http::error::body_limit) {
          return Unavailable("response from " + origin + " exceeds " +
                             std::to_string(options.max_response_bytes) + " bytes");
        }
        return Unavailable("reading response from " + origin + " failed: " + Reason(read_ec));
      }

      http::response<http::string_body> res = parser.release();
      HttpResponse out;
      out.status = static_cast<int>(res.result_int());
      for (const auto& field : res) {
        std::string value(field.value());
        auto [it, inserted] = out.headers.emplace(Lower(field.name_string()), value);
        if (!inserted) it->second += ", " + value;
      }
      auto content_type = out.headers.find("content-type");
      out.content_type = content_type == out.headers.end() ? "" : content_type->second;
      out.body = std::move(res.body());
      if (!res.keep_alive()) Close();
      return out;
    }
  }
};

HttpClient::HttpClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;
HttpClient::~HttpClient() = default;

StatusOr<HttpClient> HttpClient::Create(std::string_view base_url, HttpClientOptions options) {
  ASSIGN_OR_RETURN(Url url, ParseUrl(base_url));
  if (options.timeout.count() <= 0) return InvalidArgument("HTTP client timeout must be positive");
  try {
    auto impl = std::make_unique<Impl>();
    beast::error_code ec;
    asio::ip::make_address(url.host, ec);
    impl->host_is_ip = !ec;
    if (url.tls()) {
      impl->tls.emplace(ssl::context::tls_client);
      ssl::context& ctx = *impl->tls;
      if (SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION) != 1) {
        return InternalError("cannot set the minimum TLS version");
      }
      if (options.ca_file.empty()) {
        ctx.set_default_verify_paths(ec);
        if (ec) return InternalError("cannot load the system TLS trust store: " + ec.message());
      } else {
        ctx.load_verify_file(options.ca_file, ec);
        if (ec) {
          return InvalidArgument("cannot load TLS CA file " + options.ca_file + ": " +
                                 ec.message());
        }
      }
      ctx.set_verify_mode(ssl::verify_peer);
      if (!options.client_cert_file.empty()) {
        ctx.use_certificate_chain_file(options.client_cert_file, ec);
        if (ec) return InvalidArgument("cannot load TLS client certificate " + options.client_cert_file);
        ctx.use_private_key_file(options.client_key_file, ssl::context::pem, ec);
        if (ec) return InvalidArgument("cannot load TLS client key " + options.client_key_file);
      }
    }
    impl->origin = url.Origin();
    impl->url = std::move(url);
    impl->options = std::move(options);
    return HttpClient(std::move(impl));
  } catch (const std::exception&) {
    return InternalError("cannot set up the HTTP client");
  }
}

StatusOr<HttpResponse> HttpClient::Post(std::string_view path, std::string_view body,
                                        const HttpHeaders& headers) {
  return impl_->Send("POST", path, body, headers);
}

StatusOr<HttpResponse> HttpClient::Get(std::string_view path, const HttpHeaders& headers) {
  return impl_->Send("GET", path, "", headers);
}

StatusOr<HttpResponse> HttpClient::Send(std::string_view method, std::string_view path,
                                        std::string_view body, const HttpHeaders& headers) {
  return impl_->Send(method, path, body, headers);
}

const Url& HttpClient::url() const { return impl_->url; }

uint64_t HttpClient::connections_opened() const { return impl_->opened; }

}  // namespace custos::net
