// Tests for the KMIP listener (kmip/server.h) and the KMIP CA (kmip/ca.h) with a real TLS client
// (OpenSSL, blocking): a client certificate of the CA gets answers, request after request, with
// its CN as the peer's name; no certificate, or one from another CA, fails the handshake; a
// header announcing more than the limit gets Invalid Message and a closed connection while the
// server keeps serving; Stop closes an idle connection with a TLS close_notify.
#include "appliance/kmip/server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "appliance/kmip/ca.h"
#include "common/file.h"
#include "gmock/gmock.h"
#include "protocol/kmip/message.h"
#include "tests/testing/testing.h"

namespace custos::kmip {
namespace {

using ::testing::HasSubstr;

// Client is one TLS connection with an optional client certificate.
class Client {
 public:
  Client(int port, const std::string& ca, const std::string& cert, const std::string& key) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_load_verify_locations(ctx_, ca.c_str(), nullptr);
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    if (!cert.empty()) {
      SSL_CTX_use_certificate_chain_file(ctx_, cert.c_str());
      SSL_CTX_use_PrivateKey_file(ctx_, key.c_str(), SSL_FILETYPE_PEM);
    }
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    handshake_ = connected_ && SSL_connect(ssl_) == 1;
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    close(fd_);
  }
  bool handshake() const { return handshake_; }

  // Roundtrip sends `bytes` and reads one TTLV message back; empty when the server closed or
  // refused (with TLS 1.3 a refused certificate shows on the first read).
  Bytes Roundtrip(const Bytes& bytes) {
    if (!handshake_ || SSL_write(ssl_, bytes.data(), static_cast<int>(bytes.size())) <= 0) return {};
    Bytes header(8);
    if (!ReadExactly(header.data(), 8)) return {};
    auto len = ItemLength(header);
    if (!len.ok()) return {};
    Bytes out = header;
    out.resize(*len);
    if (!ReadExactly(out.data() + 8, *len - 8)) return {};
    return out;
  }
  // ClosedCleanly: the next read sees the server's close_notify.
  bool ClosedCleanly() {
    uint8_t b;
    int n = SSL_read(ssl_, &b, 1);
    return n == 0 && SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
  }

 private:
  bool ReadExactly(uint8_t* p, size_t n) {
    while (n > 0) {
      int r = SSL_read(ssl_, p, static_cast<int>(n));
      if (r <= 0) return false;
      p += r;
      n -= static_cast<size_t>(r);
    }
    return true;
  }
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false, handshake_ = false;
};

Bytes DiscoverVersions() {
  Item header = Item::Structure(tags::kRequestHeader, {EncodeVersion({1, 4}), Item::Integer(tags::kBatchCount, 1)});
  Item batch = Item::Structure(tags::kBatchItem, {Item::Enumeration(tags::kOperation, op::kDiscoverVersions),
                                                  Item::Structure(tags::kRequestPayload)});
  return Encode(Item::Structure(tags::kRequestMessage, {header, batch}));
}

class KmipServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    signal(SIGPIPE, SIG_IGN);  // the client writes to connections the server closed
    dir_ = testing::TempDir();
    auto ca = EnsureCa(dir_ + "/kmip", "127.0.0.1");
    ASSERT_OK(ca.status());
    ca_ = *ca;
    ASSERT_OK(MakeClient(ca_, "app1", dir_ + "/app1"));
    KmipServerOptions o;
    o.cert_file = ca_.server_cert_file;
    o.key_file = ca_.server_key_file;
    o.client_ca_file = ca_.ca_cert_file;
    o.max_message_bytes = 4096;
    auto server = KmipServer::Create("127.0.0.1:0", o, [this](ByteSpan m, const KmipPeer& p) {
      ++requests_;
      last_peer_ = p.name;
      // An echo of the protocol: Discover Versions answered, anything else Invalid Message.
      auto decoded = Decode(m);
      std::vector<ResponseBatchItem> items;
      if (decoded.ok()) {
        ResponseBatchItem r;
        r.operation = op::kDiscoverVersions;
        r.payload = Item::Structure(tags::kResponsePayload, {EncodeVersion({1, 4})});
        items.push_back(r);
      } else {
        items.push_back(ResponseBatchItem::Failure(nullptr, {reason::kInvalidMessage, decoded.status().message()}));
      }
      return Encode(BuildResponse({1, 4}, 0, items));
    });
    ASSERT_OK(server.status());
    server_ = std::move(*server);
    ASSERT_OK(server_->Start());
  }
  static Status MakeClient(const KmipCa& ca, const std::string& name, const std::string& dir) {
    ASSIGN_OR_RETURN(auto pair, MakeClientKey());
    ASSIGN_OR_RETURN(std::string cert, IssueClientCertificate(ca, name, pair.second));
    RETURN_IF_ERROR(WriteFileAtomic(dir + ".key", pair.first, 0600));
    return WriteFileAtomic(dir + ".crt", cert, 0644);
  }
  std::unique_ptr<Client> Connect(const std::string& who) {
    std::string base = who.empty() ? "" : dir_ + "/" + who;
    return std::make_unique<Client>(server_->port(), ca_.ca_cert_file, who.empty() ? "" : base + ".crt",
                                    who.empty() ? "" : base + ".key");
  }

  std::string dir_;
  KmipCa ca_;
  std::unique_ptr<KmipServer> server_;
  std::atomic<int> requests_{0};
  std::string last_peer_;
};

TEST_F(KmipServerTest, ClientOfTheCaIsServedRequestAfterRequestAsItsName) {
  auto c = Connect("app1");
  ASSERT_TRUE(c->handshake());
  for (int i = 0; i < 3; ++i) {
    Bytes r = c->Roundtrip(DiscoverVersions());
    ASSERT_FALSE(r.empty()) << i;
    auto item = Decode(r);
    ASSERT_OK(item.status());
    EXPECT_EQ(item->tag(), tags::kResponseMessage);
  }
  EXPECT_EQ(requests_.load(), 3);
  EXPECT_EQ(last_peer_, "app1");
}

TEST_F(KmipServerTest, NoCertificateOrAnotherCasCertificateIsRefusedInTheHandshake) {
  auto none = Connect("");
  EXPECT_TRUE(none->Roundtrip(DiscoverVersions()).empty());
  auto other = EnsureCa(dir_ + "/other", "127.0.0.1");
  ASSERT_OK(other.status());
  ASSERT_OK(MakeClient(*other, "intruder", dir_ + "/intruder"));
  auto foreign = Connect("intruder");
  EXPECT_TRUE(foreign->Roundtrip(DiscoverVersions()).empty());
  EXPECT_EQ(requests_.load(), 0);
  // The server keeps serving.
  EXPECT_FALSE(Connect("app1")->Roundtrip(DiscoverVersions()).empty());
}

TEST_F(KmipServerTest, OversizedHeaderGetsInvalidMessageAndTheConnectionCloses) {
  auto c = Connect("app1");
  ASSERT_TRUE(c->handshake());
  // A Request Message announcing 100 MiB (the limit here is 4096 bytes).
  Bytes header = {0x42, 0x00, 0x78, 0x01, 0x06, 0x40, 0x00, 0x00};
  Bytes r = c->Roundtrip(header);
  ASSERT_FALSE(r.empty());
  auto item = Decode(r);
  ASSERT_OK(item.status());
  const Item* b = item->FindItem(tags::kBatchItem);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->FindItem(tags::kResultReason)->AsEnumeration().value(), reason::kInvalidMessage);
  EXPECT_TRUE(c->Roundtrip(DiscoverVersions()).empty());  // closed: the stream cannot resync
  EXPECT_FALSE(Connect("app1")->Roundtrip(DiscoverVersions()).empty());
}

TEST_F(KmipServerTest, StopClosesAnIdleConnectionWithCloseNotify) {
  auto c = Connect("app1");
  ASSERT_TRUE(c->handshake());
  ASSERT_FALSE(c->Roundtrip(DiscoverVersions()).empty());
  server_->Stop();
  EXPECT_TRUE(c->ClosedCleanly());
  EXPECT_FALSE(Connect("app1")->handshake());
}

TEST(KmipCaTest, ClientNamesAndKeysAreChecked) {
  std::string dir = testing::TempDir();
  auto ca = EnsureCa(dir + "/kmip", "localhost");
  ASSERT_OK(ca.status());
  auto pair = MakeClientKey();
  ASSERT_OK(pair.status());
  EXPECT_EQ(IssueClientCertificate(*ca, "", pair->second).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(IssueClientCertificate(*ca, "a b", pair->second).status().message(), HasSubstr("may hold only"));
  EXPECT_THAT(IssueClientCertificate(*ca, "ok", "not a key").status().message(), HasSubstr("not a PEM public key"));
  // The CA is made once and kept: a second EnsureCa returns the same files unchanged.
  auto before = ReadFileString(ca->ca_cert_file);
  auto again = EnsureCa(dir + "/kmip", "localhost");
  ASSERT_OK(again.status());
  EXPECT_EQ(*ReadFileString(again->ca_cert_file), *before);
  auto cert = IssueClientCertificate(*ca, "db-1", pair->second);
  ASSERT_OK(cert.status());
  EXPECT_THAT(*cert, HasSubstr("BEGIN CERTIFICATE"));
}

}  // namespace
}  // namespace custos::kmip
