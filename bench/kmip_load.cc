// kmip_load: a closed-loop load generator for KMIP Encrypt over mutual TLS (issue 18;
// docs/benchmarks.md "KMIP"). Any KMIP 1.2/1.4 server will do: scripts/bench_kmip.sh runs it
// against custos and against PyKMIP's own server.
//
// It opens --conns TLS connections (OpenSSL, blocking sockets, one thread each; the client
// certificate and key are presented, the server's certificate must chain to --ca and name
// --host), encodes one Encrypt request once with the project's TTLV codec
// (protocol/kmip/ttlv.h):
//
//   Request Message
//     Request Header { Protocol Version {1, 4 or 2}, Batch Count 1 }
//     Batch Item { Operation Encrypt (0x1F),
//                  Request Payload { Unique Identifier --uid,
//                                    Cryptographic Parameters {Block Cipher Mode GCM (9),
//                                      Cryptographic Algorithm AES (3), Tag Length 16}
//                                    (--mode cbc: {CBC (1), Padding Method PKCS5 (3), AES}),
//                                    Data (--data-bytes, 64 by default) } }
//
// and sends it again and again on every connection, each time reading the whole response
// (8-byte header, ItemLength, the rest) before the next. A response counts as a success only if
// it decodes (strictly, as ttlv.h's Decode does), is a Response Message whose one Batch Item has
// Operation Encrypt, Result Status Success (0) and a payload with the ciphertext (Data at least
// as long as the plaintext; at 1.4 in GCM also a 16-byte Authenticated Encryption Tag).
// Anything else -- a refusal, an undecodable answer, a TLS or socket error, a response slower
// than --timeout -- is a failure, counted and printed with its reason (identical reasons are
// summed). After an I/O failure the connection is reopened.
//
// The first --warmup seconds (1) are not measured; then for --seconds (10) every request that
// starts in the window and completes is counted, and its latency (send to last byte of the
// response) kept. Failures are counted over the whole run, warm-up included: any failure is a
// server defect worth knowing about. The result is one line on stdout:
//
//   kmip_load: conns=N seconds=D requests=R failures=F rps=... p50_us=... p99_us=... max_us=...
//     reconnects=... client_cpu_s=...
//
// (client_cpu_s: this process's user+system CPU during the measured window, to see what the
// load generator takes from a shared machine). Exit status 0 when there were no failures and at
// least one request, 1 otherwise, 2 for bad usage or setup (files that do not load).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/bytes.h"
#include "protocol/kmip/message.h"
#include "protocol/kmip/tags.h"
#include "protocol/kmip/ttlv.h"

namespace {

using namespace custos;
using namespace custos::kmip;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kAlgAes = 3, kModeCbc = 1, kModeGcm = 9, kPadPkcs5 = 3;
constexpr int32_t kGcmTagBytes = 16;

struct Options {
  std::string host, port, ca, cert, key, uid;
  int conns = 1;
  double seconds = 10;
  double warmup = 1;
  double timeout = 10;
  int minor = 4;  // Protocol Version 1.minor
  bool gcm = true;
  size_t data_bytes = 64;
};

void Usage(const char* argv0) {
  fprintf(stderr,
          "usage: %s --host H --port P --ca CA.pem --cert CLIENT.pem --key CLIENT.key --uid ID\n"
          "          [--conns 1] [--seconds 10] [--warmup 1] [--version 1.4|1.2] [--mode gcm|cbc]\n"
          "          [--data-bytes 64] [--timeout 10]\n",
          argv0);
}

bool ParseArgs(int argc, char** argv, Options* o) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i], v;
    size_t eq = a.find('=');
    if (a.rfind("--", 0) != 0) return false;
    if (eq != std::string::npos) {
      v = a.substr(eq + 1);
      a = a.substr(0, eq);
    } else {
      if (i + 1 >= argc) return false;
      v = argv[++i];
    }
    try {
      if (a == "--host")
        o->host = v;
      else if (a == "--port")
        o->port = v;
      else if (a == "--ca")
        o->ca = v;
      else if (a == "--cert")
        o->cert = v;
      else if (a == "--key")
        o->key = v;
      else if (a == "--uid")
        o->uid = v;
      else if (a == "--conns")
        o->conns = std::stoi(v);
      else if (a == "--seconds")
        o->seconds = std::stod(v);
      else if (a == "--warmup")
        o->warmup = std::stod(v);
      else if (a == "--timeout")
        o->timeout = std::stod(v);
      else if (a == "--data-bytes")
        o->data_bytes = std::stoul(v);
      else if (a == "--version") {
        if (v == "1.4")
          o->minor = 4;
        else if (v == "1.2")
          o->minor = 2;
        else
          return false;
      } else if (a == "--mode") {
        if (v == "gcm")
          o->gcm = true;
        else if (v == "cbc")
          o->gcm = false;
        else
          return false;
      } else {
        return false;
      }
    } catch (const std::exception&) {
      return false;
    }
  }
  return !o->host.empty() && !o->port.empty() && !o->ca.empty() && !o->cert.empty() &&
         !o->key.empty() && !o->uid.empty() && o->conns >= 1 && o->conns <= 1024 &&
         o->seconds > 0 && o->warmup >= 0 && o->timeout > 0 && o->data_bytes >= 1 &&
         o->data_bytes <= 65536;
}

// EncryptRequest is the encoding of the one request every connection sends.
Bytes EncryptRequest(const Options& o) {
  std::vector<Item> params;
  if (o.gcm) {
    params = {Item::Enumeration(tags::kBlockCipherMode, kModeGcm),
              Item::Enumeration(tags::kCryptographicAlgorithm, kAlgAes),
              Item::Integer(tags::kTagLength, kGcmTagBytes)};
  } else {
    params = {Item::Enumeration(tags::kBlockCipherMode, kModeCbc),
              Item::Enumeration(tags::kPaddingMethod, kPadPkcs5),
              Item::Enumeration(tags::kCryptographicAlgorithm, kAlgAes)};
  }
  Bytes data(o.data_bytes);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>('a' + i % 26);
  Item payload = Item::Structure(
      tags::kRequestPayload, {Item::TextString(tags::kUniqueIdentifier, o.uid),
                              Item::Structure(tags::kCryptographicParameters, std::move(params)),
                              Item::ByteString(tags::kData, data)});
  Item header = Item::Structure(tags::kRequestHeader,
                                {EncodeVersion({1, o.minor}), Item::Integer(tags::kBatchCount, 1)});
  Item batch = Item::Structure(
      tags::kBatchItem, {Item::Enumeration(tags::kOperation, op::kEncrypt), std::move(payload)});
  return Encode(Item::Structure(tags::kRequestMessage, {std::move(header), std::move(batch)}));
}

// CheckResponse returns "" for a successful Encrypt response, else why it is not one.
std::string CheckResponse(ByteSpan message, const Options& o) {
  auto decoded = Decode(message);
  if (!decoded.ok()) return "response does not decode: " + decoded.status().message();
  const Item& m = *decoded;
  if (m.tag() != tags::kResponseMessage) return "response is not a Response Message";
  const Item* batch = m.FindItem(tags::kBatchItem);
  if (batch == nullptr) return "response has no Batch Item";
  if (m.FindItems(tags::kBatchItem).size() != 1) return "response has more than one Batch Item";
  auto status = OptEnum(*batch, tags::kResultStatus);
  if (!status.ok() || !*status) return "Batch Item has no Result Status";
  if (**status != result::kSuccess) {
    auto reason = OptEnum(*batch, tags::kResultReason);
    auto text = OptText(*batch, tags::kResultMessage);
    std::string why = "Result Status " + std::to_string(**status);
    if (reason.ok() && *reason) why += ", Result Reason " + ReasonName(**reason);
    if (text.ok() && *text) why += ": " + **text;
    return why;
  }
  auto operation = OptEnum(*batch, tags::kOperation);
  if (!operation.ok() || !*operation || **operation != op::kEncrypt)
    return "Batch Item's Operation is not Encrypt";
  const Item* payload = batch->FindItem(tags::kResponsePayload);
  if (payload == nullptr) return "successful Encrypt without a Response Payload";
  auto data = OptBytes(*payload, tags::kData);
  if (!data.ok() || !*data) return "Encrypt response without Data";
  if ((*data)->size() < o.data_bytes) return "Encrypt response Data shorter than the plaintext";
  if (o.gcm && o.minor >= 4) {
    auto tag = OptBytes(*payload, tags::kAuthenticatedEncryptionTag);
    if (!tag.ok() || !*tag)
      return "GCM Encrypt response at 1.4 without an Authenticated Encryption Tag";
    if ((*tag)->size() != static_cast<size_t>(kGcmTagBytes))
      return "Authenticated Encryption Tag is not 16 bytes";
  }
  return "";
}

std::string OpenSslErrors() {
  std::string out;
  char buf[256];
  while (unsigned long e = ERR_get_error()) {
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

// TlsConnection is one blocking mutual-TLS connection; it closes on destruction.
class TlsConnection {
 public:
  // Open connects to host:port and completes the handshake, or says why not in *error.
  static std::unique_ptr<TlsConnection> Open(SSL_CTX* ctx, const Options& o, std::string* error) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(o.host.c_str(), o.port.c_str(), &hints, &res);
    if (rc != 0) {
      *error = std::string("getaddrinfo: ") + gai_strerror(rc);
      return nullptr;
    }
    int fd = -1;
    std::string last = "no address";
    for (addrinfo* a = res; a != nullptr && fd < 0; a = a->ai_next) {
      fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
      if (fd < 0) continue;
      if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
        last = std::string("connect: ") + strerror(errno);
        close(fd);
        fd = -1;
      }
    }
    freeaddrinfo(res);
    if (fd < 0) {
      *error = last;
      return nullptr;
    }
    auto c = std::unique_ptr<TlsConnection>(new TlsConnection(fd));
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(o.timeout);
    tv.tv_usec = static_cast<suseconds_t>((o.timeout - std::floor(o.timeout)) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    c->ssl_ = SSL_new(ctx);
    if (c->ssl_ == nullptr || SSL_set_fd(c->ssl_, fd) != 1) {
      *error = "SSL_new: " + OpenSslErrors();
      return nullptr;
    }
    // The server's certificate must name --host: an IP address in its IP SANs, a name in its
    // DNS SANs.
    in6_addr ignored;
    bool is_ip = inet_pton(AF_INET, o.host.c_str(), &ignored) == 1 ||
                 inet_pton(AF_INET6, o.host.c_str(), &ignored) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl_), o.host.c_str());
    } else {
      SSL_set1_host(c->ssl_, o.host.c_str());
      SSL_set_tlsext_host_name(c->ssl_, o.host.c_str());
    }
    if (SSL_connect(c->ssl_) != 1) {
      long v = SSL_get_verify_result(c->ssl_);
      *error = "TLS handshake: " + OpenSslErrors();
      if (v != X509_V_OK)
        *error += std::string(" (certificate: ") + X509_verify_cert_error_string(v) + ")";
      return nullptr;
    }
    return c;
  }

  ~TlsConnection() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    close(fd_);
  }

  bool Write(ByteSpan data, std::string* error) {
    size_t written = 0;
    if (SSL_write_ex(ssl_, data.data(), data.size(), &written) != 1 || written != data.size()) {
      *error = Why("write");
      return false;
    }
    return true;
  }

  bool Read(uint8_t* out, size_t n, std::string* error) {
    while (n > 0) {
      size_t got = 0;
      if (SSL_read_ex(ssl_, out, n, &got) != 1) {
        *error = Why("read");
        return false;
      }
      out += got;
      n -= got;
    }
    return true;
  }

 private:
  explicit TlsConnection(int fd) : fd_(fd) {}

  std::string Why(const char* what) {
    int saved_errno = errno;
    std::string why = std::string(what) + ": ";
    switch (SSL_get_error(ssl_, 0)) {
      case SSL_ERROR_ZERO_RETURN:
        return why + "the server closed the connection (TLS close_notify)";
      case SSL_ERROR_SYSCALL: {
        std::string e = OpenSslErrors();
        if (!e.empty()) return why + e;
        if (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK) return why + "timed out";
        if (saved_errno == 0) return why + "the server closed the connection (no close_notify)";
        return why + strerror(saved_errno);
      }
      default:
        return why + OpenSslErrors();
    }
  }

  int fd_;
  SSL* ssl_ = nullptr;
};

// Run is the state the connection threads share.
struct Run {
  const Options* options = nullptr;
  SSL_CTX* ctx = nullptr;
  Bytes request;
  Clock::time_point measure_from, measure_until;
  std::latch connected;
  std::latch go{1};
  std::atomic<uint64_t> failures{0};
  std::atomic<uint64_t> reconnects{0};
  std::mutex mu;  // guards reasons
  std::map<std::string, uint64_t> reasons;

  explicit Run(int conns) : connected(conns) {}

  void Fail(const std::string& why) {
    ++failures;
    std::lock_guard lock(mu);
    ++reasons[why];
  }
};

// Worker is one connection's loop; it returns the latencies (ns) of its measured requests.
std::vector<uint64_t> Worker(Run* run) {
  const Options& o = *run->options;
  std::vector<uint64_t> latencies;
  latencies.reserve(1 << 16);
  std::string error;
  auto conn = TlsConnection::Open(run->ctx, o, &error);
  if (!conn) run->Fail("connect: " + error);
  run->connected.count_down();
  run->go.wait();
  Bytes response;
  while (true) {
    Clock::time_point start = Clock::now();
    if (start >= run->measure_until) break;
    if (!conn) {
      ++run->reconnects;
      conn = TlsConnection::Open(run->ctx, o, &error);
      if (!conn) {
        run->Fail("connect: " + error);
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        continue;
      }
      start = Clock::now();
    }
    response.assign(kHeaderBytes, 0);
    if (!conn->Write(run->request, &error) || !conn->Read(response.data(), kHeaderBytes, &error)) {
      run->Fail(error);
      conn.reset();
      continue;
    }
    auto length = ItemLength(response);
    if (!length.ok()) {
      run->Fail("response header: " + length.status().message());
      conn.reset();  // the stream cannot be resynchronised
      continue;
    }
    response.resize(*length);
    if (!conn->Read(response.data() + kHeaderBytes, *length - kHeaderBytes, &error)) {
      run->Fail(error);
      conn.reset();
      continue;
    }
    Clock::time_point end = Clock::now();
    std::string why = CheckResponse(response, o);
    if (!why.empty()) {
      run->Fail(why);
      continue;
    }
    if (start >= run->measure_from)
      latencies.push_back(static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(end - start).count()));
  }
  return latencies;
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// Percentile is the nearest-rank q-quantile of sorted samples.
uint64_t Percentile(const std::vector<uint64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (!ParseArgs(argc, argv, &o)) {
    Usage(argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);  // a closed connection is an error to report, not a reason to die

  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == nullptr || SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
      SSL_CTX_load_verify_file(ctx, o.ca.c_str()) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, o.cert.c_str()) != 1 ||
      SSL_CTX_use_PrivateKey_file(ctx, o.key.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    fprintf(stderr, "kmip_load: TLS setup (--ca, --cert, --key): %s\n", OpenSslErrors().c_str());
    return 2;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);

  Run run(o.conns);
  run.options = &o;
  run.ctx = ctx;
  run.request = EncryptRequest(o);

  std::vector<std::vector<uint64_t>> per_thread(static_cast<size_t>(o.conns));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.conns; ++i)
    threads.emplace_back(
        [&run, &per_thread, i] { per_thread[static_cast<size_t>(i)] = Worker(&run); });
  run.connected.wait();  // every connection has handshaken (or failed to)
  auto to_duration = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  run.measure_from = Clock::now() + to_duration(o.warmup);
  run.measure_until = run.measure_from + to_duration(o.seconds);
  run.go.count_down();
  std::this_thread::sleep_until(run.measure_from);
  double cpu0 = CpuSeconds();
  std::this_thread::sleep_until(run.measure_until);
  double cpu1 = CpuSeconds();
  for (std::thread& t : threads) t.join();

  std::vector<uint64_t> all;
  for (auto& v : per_thread) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  for (const auto& [why, n] : run.reasons)
    fprintf(stderr, "kmip_load: failure x%llu: %s\n", static_cast<unsigned long long>(n),
            why.c_str());
  printf(
      "kmip_load: conns=%d seconds=%g requests=%zu failures=%llu rps=%.0f p50_us=%.1f p99_us=%.1f "
      "max_us=%.1f "
      "reconnects=%llu client_cpu_s=%.2f\n",
      o.conns, o.seconds, all.size(), static_cast<unsigned long long>(run.failures.load()),
      static_cast<double>(all.size()) / o.seconds, static_cast<double>(Percentile(all, 0.50)) / 1e3,
      static_cast<double>(Percentile(all, 0.99)) / 1e3,
      all.empty() ? 0.0 : static_cast<double>(all.back()) / 1e3,
      static_cast<unsigned long long>(run.reconnects.load()), cpu1 - cpu0);
  SSL_CTX_free(ctx);
  return run.failures.load() == 0 && !all.empty() ? 0 : 1;
}
