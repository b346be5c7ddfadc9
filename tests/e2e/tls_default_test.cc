// End-to-end: nothing serves plain HTTP by default (issue 12). A keeper and an appliance started
// without TLS settings make a self-signed identity at their first start, log its SHA-256
// fingerprint, serve HTTPS with it, and keep it across restarts; clients pin it with --ca-file
// (or CUSTOS_CA_FILE); a plain-HTTP client gets nothing; plain HTTP needs an explicit opt-in.
#include <fstream>

#include "gmock/gmock.h"
#include "net/tls_identity.h"
#include "tests/e2e/harness.h"

namespace custos {
namespace {

using namespace e2e;
using nlohmann::json;
using ::testing::HasSubstr;

bool Answers(const std::string& url, const std::string& ca_file, const std::string& path) {
  net::HttpClientOptions o;
  o.ca_file = ca_file;
  auto client = net::HttpClient::Create(url, o);
  if (!client.ok()) return false;
  auto r = client->Get(path);
  return r.ok() && r->status < 500;
}

TEST(TlsByDefault, KeeperAndApplianceServeHttpsWithAPinnableSelfSignedIdentity) {
  Cluster c;
  std::string custody;
  StartCoCustody(c, custody);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());

  // A keeper without --tls-cert/--tls-key.
  c.Init("T1", "provider");
  uint16_t kport = c.keepers["T1"].port;
  std::string kdir = c.P("T1");
  pid_t keeper = Spawn({Bin(), "keeper", "serve", "--dir", kdir, "--listen", "127.0.0.1:" + std::to_string(kport)},
                       c.env, c.P("T1.out"), c.P("T1.err"));
  ASSERT_GT(keeper, 0);
  std::string kurl = "https://127.0.0.1:" + std::to_string(kport);
  std::string kcert = kdir + "/tls/server.crt";
  EXPECT_TRUE(WaitFor([&] { return Answers(kurl, kcert, "/v1/keeper"); })) << ReadAll(c.P("T1.err"));
  EXPECT_FALSE(Answers("http://127.0.0.1:" + std::to_string(kport), "", "/v1/keeper"));
  EXPECT_FALSE(Answers(kurl, "", "/v1/keeper"));  // not trusted without the pin
  auto fp = net::CertificateFingerprint(kcert);
  ASSERT_OK(fp.status());
  EXPECT_THAT(ReadAll(c.P("T1.err")), HasSubstr(*fp));
  EXPECT_EQ(fs::status(kdir + "/tls/server.key").permissions() & fs::perms::group_all, fs::perms::none);
  ::kill(keeper, SIGTERM);
  waitpid(keeper, nullptr, 0);
  // Plain HTTP only when asked for, and then with a warning.
  keeper = Spawn({Bin(), "keeper", "serve", "--dir", kdir, "--listen", "127.0.0.1:" + std::to_string(kport),
                  "--insecure-http"},
                 c.env, c.P("T1.out"), c.P("T1b.err"));
  EXPECT_TRUE(WaitFor([&] { return Answers("http://127.0.0.1:" + std::to_string(kport), "", "/v1/keeper"); }));
  EXPECT_THAT(ReadAll(c.P("T1b.err")), HasSubstr("serving plain HTTP"));
  ::kill(keeper, SIGTERM);
  waitpid(keeper, nullptr, 0);

  // An appliance without [server] tls_cert.
  std::string ndir = c.P("tlsnode");
  fs::create_directories(ndir);
  uint16_t nport = FreePort();
  std::ofstream(ndir + "/server.toml") << "[server]\nlisten = \"127.0.0.1:" << nport << "\"\ndata_dir = \"data\"\n"
                                       << "custody = \"" << custody << "\"\n[tee]\nbackend = \"sim\"\n";
  auto start = [&](const std::string& log) {
    return Spawn({Bin(), "server", "--config", ndir + "/server.toml"}, c.env, ndir + "/out", log);
  };
  pid_t node = start(ndir + "/1.err");
  std::string nurl = "https://127.0.0.1:" + std::to_string(nport);
  std::string ncert = ndir + "/data/tls/server.crt";
  EXPECT_TRUE(WaitFor([&] { return Answers(nurl, ncert, "/v1/sys/health"); })) << ReadAll(ndir + "/1.err");
  EXPECT_FALSE(Answers("http://127.0.0.1:" + std::to_string(nport), "", "/v1/sys/health"));
  auto r = c.Run({"operator", "init", "--server", nurl, "--token-file", ndir + "/data/admin.token"},
                 {{"CUSTOS_CA_FILE", ncert}});
  EXPECT_EQ(r.code, 0) << r.err;
  auto first = net::CertificateFingerprint(ncert);
  ASSERT_OK(first.status());
  ::kill(node, SIGTERM);
  waitpid(node, nullptr, 0);
  node = start(ndir + "/2.err");
  EXPECT_TRUE(WaitFor([&] { return Answers(nurl, ncert, "/v1/sys/health"); })) << ReadAll(ndir + "/2.err");
  EXPECT_EQ(net::CertificateFingerprint(ncert).value(), *first);  // the same identity after a restart
  EXPECT_THAT(ReadAll(ndir + "/2.err"), HasSubstr(*first));
  ::kill(node, SIGTERM);
  waitpid(node, nullptr, 0);
  // Plain HTTP for the appliance too only when asked for, with a warning.
  node = Spawn({Bin(), "server", "--config", ndir + "/server.toml", "--insecure-http"}, c.env, ndir + "/out",
               ndir + "/3.err");
  EXPECT_TRUE(WaitFor([&] { return Answers("http://127.0.0.1:" + std::to_string(nport), "", "/v1/sys/health"); }))
      << ReadAll(ndir + "/3.err");
  EXPECT_THAT(ReadAll(ndir + "/3.err"), HasSubstr("serving plain HTTP"));
  ::kill(node, SIGTERM);
  waitpid(node, nullptr, 0);
}

}  // namespace
}  // namespace custos
