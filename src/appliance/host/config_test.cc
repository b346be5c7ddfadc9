// Tests for server.toml parsing: defaults, every key, path resolution, each refusal and its
// message, the rendered round trip, the documented example, and truncated input.
#include "appliance/host/config.h"

#include <iostream>
#include <string>

#include "common/file.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::host {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kMinimal[] = R"(
[server]
data_dir = "/var/lib/custos"
custody = "/etc/custos/custody.json"
)";

// kFull sets every key to a value different from its default.
constexpr char kFull[] = R"(# every key
[server]
listen = "[::1]:9443"
data_dir = "state"
custody = "conf/custody.json"
tls_cert = "/etc/tls/cert.pem"
tls_key = "tls/key.pem"
join = "https://node-1.example:8200"

[tee]
backend = "sgx-gramine"
enclave_binary = "bin/custos-enclave"
sim_key_dir = "/keys/sim"
sim_product_id = 65535
sim_svn = 7
sim_debug = true
gramine_root = "/tmp/fake-attestation"
tsm_root = "/tmp/fake-tsm"

[cluster]
collateral = "collateral.json"
)";

// Refusal parses `text` with base_dir "/base", expects kInvalidArgument and returns the message.
std::string Refusal(std::string_view text) {
  auto config = ParseServerConfig(text, "/base");
  EXPECT_FALSE(config.ok()) << "accepted:\n" << text;
  if (config.ok()) return "";
  EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument) << config.status().ToString();
  return config.status().message();
}

// WithServer returns a valid [server] table followed by `rest`.
std::string WithServer(std::string_view server_extra, std::string_view rest = "") {
  return std::string("[server]\ndata_dir = \"d\"\ncustody = \"c.json\"\n") +
         std::string(server_extra) + "\n" + std::string(rest);
}

TEST(ServerConfigTest, DefaultsApplied) {
  auto config = ParseServerConfig(kMinimal, "/base");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listen, "127.0.0.1:8200");
  EXPECT_EQ(config->data_dir, "/var/lib/custos");
  EXPECT_EQ(config->custody_path, "/etc/custos/custody.json");
  EXPECT_EQ(config->tls_cert, "");
  EXPECT_EQ(config->tls_key, "");
  EXPECT_EQ(config->join_url, "");
  EXPECT_EQ(config->tee_backend, "sim");
  EXPECT_EQ(config->enclave_binary, "");  // resolved by the caller, not the parser
  EXPECT_EQ(config->sim_key_dir, "/var/lib/custos/sim");
  EXPECT_EQ(config->sim_product_id, 0);
  EXPECT_EQ(config->sim_svn, 0);
  EXPECT_FALSE(config->sim_debug);
  EXPECT_EQ(config->gramine_root, "/dev/attestation");
  EXPECT_EQ(config->tsm_root, "/sys/kernel/config/tsm/report");
  EXPECT_EQ(config->join_collateral, "");
}

TEST(ServerConfigTest, EveryKeyParsed) {
  auto config = ParseServerConfig(kFull, "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listen, "[::1]:9443");
  EXPECT_EQ(config->data_dir, "/etc/custos/state");
  EXPECT_EQ(config->custody_path, "/etc/custos/conf/custody.json");
  EXPECT_EQ(config->tls_cert, "/etc/tls/cert.pem");
  EXPECT_EQ(config->tls_key, "/etc/custos/tls/key.pem");
  EXPECT_EQ(config->join_url, "https://node-1.example:8200");
  EXPECT_EQ(config->tee_backend, "sgx-gramine");
  EXPECT_EQ(config->enclave_binary, "/etc/custos/bin/custos-enclave");
  EXPECT_EQ(config->sim_key_dir, "/keys/sim");
  EXPECT_EQ(config->sim_product_id, 65535);
  EXPECT_EQ(config->sim_svn, 7);
  EXPECT_TRUE(config->sim_debug);
  EXPECT_EQ(config->gramine_root, "/tmp/fake-attestation");
  EXPECT_EQ(config->tsm_root, "/tmp/fake-tsm");
  EXPECT_EQ(config->join_collateral, "/etc/custos/collateral.json");
}

TEST(ServerConfigTest, OtherBackendsAndInlineTables) {
  auto tdx = ParseServerConfig(WithServer("", "[tee]\nbackend = \"tdx-configfs\"\n"), "/b");
  ASSERT_TRUE(tdx.ok()) << tdx.status().ToString();
  EXPECT_EQ(tdx->tee_backend, "tdx-configfs");
  // An inline table is the same table.
  auto inline_table = ParseServerConfig(
      "server = { data_dir = \"/d\", custody = \"/c\", listen = \"localhost:0\" }\n", "/b");
  ASSERT_TRUE(inline_table.ok()) << inline_table.status().ToString();
  EXPECT_EQ(inline_table->listen, "localhost:0");
  EXPECT_EQ(inline_table->data_dir, "/d");
}

TEST(ServerConfigTest, RelativePathsResolvedAgainstBaseDir) {
  auto config = ParseServerConfig(R"(
[server]
data_dir = "./state/"
custody = "../shared//custody.json"
[tee]
sim_key_dir = "keys"
)",
                                  "/srv/node");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  // "." and repeated or trailing separators go; ".." stays (a symlink may make it matter).
  EXPECT_EQ(config->data_dir, "/srv/node/state");
  EXPECT_EQ(config->custody_path, "/srv/node/../shared/custody.json");
  EXPECT_EQ(config->sim_key_dir, "/srv/node/keys");

  // The sim key directory defaults under the *resolved* data_dir.
  auto defaulted = ParseServerConfig(WithServer(""), "/srv/node");
  ASSERT_TRUE(defaulted.ok()) << defaulted.status().ToString();
  EXPECT_EQ(defaulted->data_dir, "/srv/node/d");
  EXPECT_EQ(defaulted->custody_path, "/srv/node/c.json");
  EXPECT_EQ(defaulted->sim_key_dir, "/srv/node/d/sim");

  // "." alone is the base directory itself.
  auto dot = ParseServerConfig("[server]\ndata_dir = \".\"\ncustody = \"c\"\n", "/srv/node");
  ASSERT_TRUE(dot.ok()) << dot.status().ToString();
  EXPECT_EQ(dot->data_dir, "/srv/node");
}

TEST(ServerConfigTest, LoadResolvesAgainstTheFilesDirectory) {
  std::string dir = testing::TempDir();
  std::string path = dir + "/server.toml";
  ASSERT_OK(WriteFileAtomic(path, WithServer("listen = \"127.0.0.1:0\"")));
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->data_dir, dir + "/d");
  EXPECT_EQ(config->custody_path, dir + "/c.json");
  EXPECT_EQ(config->listen, "127.0.0.1:0");

  // Errors from a loaded file are labelled with its path.
  std::string bad = dir + "/bad.toml";
  ASSERT_OK(WriteFileAtomic(bad, WithServer("lisen = \"x:1\"")));
  auto refused = LoadServerConfig(bad);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().message(), bad + ": unknown key server.lisen");

  auto missing = LoadServerConfig(dir + "/absent.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);

  std::string huge = dir + "/huge.toml";
  ASSERT_OK(WriteFileAtomic(huge, std::string((1 << 20) + 1, '#')));
  auto too_big = LoadServerConfig(huge);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(too_big.status().message(), HasSubstr("larger than"));
}

TEST(ServerConfigTest, DocumentedExampleParses) {
  std::string path = std::string(CUSTOS_SOURCE_DIR) + "/docs/server.example.toml";
  auto config = LoadServerConfig(path);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->listen, "127.0.0.1:8200");
  EXPECT_EQ(config->data_dir, "/var/lib/custos");
  EXPECT_EQ(config->custody_path, "/etc/custos/custody.json");
  EXPECT_EQ(config->tee_backend, "sim");
  EXPECT_EQ(config->sim_key_dir, "/var/lib/custos/sim");

  // Every key the example mentions, commented out or not, is one the parser knows: uncomment
  // them all and the file still parses.
  auto text = ReadFileString(path);
  ASSERT_TRUE(text.ok());
  std::string uncommented;
  size_t uncommented_keys = 0;
  size_t start = 0;
  while (start < text->size()) {
    size_t end = text->find('\n', start);
    if (end == std::string::npos) end = text->size();
    std::string line = text->substr(start, end - start);
    if (line.rfind("# ", 0) == 0 && line.find(" = ") != std::string::npos &&
        line.find(' ', 2) == line.find(" = ")) {
      line = line.substr(2);
      ++uncommented_keys;
    }
    uncommented += line + "\n";
    start = end + 1;
  }
  EXPECT_EQ(uncommented_keys, 12u);  // tls_cert, tls_key, insecure_http, join, node_name,
                                     // cpu_scheduling, enclave_binary, sim_key_dir, collateral,
                                     // url, xks region, kmip listen
  auto all = ParseServerConfig(uncommented, "/etc/custos");
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(all->tls_key, "/etc/custos/tls/server.key");
  EXPECT_EQ(all->join_collateral, "/etc/custos/collateral.json");
  EXPECT_EQ(all->cpu_scheduling, "batch");
  EXPECT_EQ(all->store_url.rfind("postgresql://custos@db-1:5432,db-2:5432/custos?", 0), 0u);
}

TEST(ServerConfigTest, KmipListen) {
  auto none = ParseServerConfig(WithServer(""), "/srv");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_EQ(none->kmip_listen, "");  // no KMIP unless asked for
  auto on = ParseServerConfig(WithServer("") + "[kmip]\nlisten = \"0.0.0.0:5696\"\n", "/srv");
  ASSERT_TRUE(on.ok()) << on.status().ToString();
  EXPECT_EQ(on->kmip_listen, "0.0.0.0:5696");
  auto bad = ParseServerConfig(WithServer("") + "[kmip]\nlisten = \"0.0.0.0\"\n", "/srv");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("kmip.listen"));
  auto unknown = ParseServerConfig(WithServer("") + "[kmip]\nport = 5696\n", "/srv");
  ASSERT_FALSE(unknown.ok());
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown key kmip.port"));
}

TEST(ServerConfigTest, StoreUrl) {
  auto config = ParseServerConfig(WithServer(""), "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "");  // this node's SQLite file
  config = ParseServerConfig(WithServer("node_name = \"node-1\"\n",
                                        "[store]\nurl = \"postgresql://custos@127.0.0.1:5432/custos\"\n"),
                             "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->store_url, "postgresql://custos@127.0.0.1:5432/custos");
  EXPECT_EQ(config->node_name, "node-1");
  // A shared database needs the node's name (its audit log); names are plain.
  EXPECT_EQ(Refusal(WithServer("", "[store]\nurl = \"postgresql://h/db\"\n")),
            "server.toml: store.url needs server.node_name (this node's audit log in the shared "
            "database)");
  EXPECT_EQ(Refusal(WithServer("node_name = \"a/b\"\n")),
            "server.toml: server.node_name must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
  // Anything else is refused without repeating the value (it may hold a password).
  EXPECT_EQ(Refusal(WithServer("", "[store]\nurl = \"mysql://u:secret@h/db\"\n")),
            "server.toml: store.url must be a postgresql:// or postgres:// URL (or be left out)");
  EXPECT_EQ(Refusal(WithServer("", "[store]\nurl = 5\n")).find("secret"), std::string::npos);
}

TEST(ServerConfigTest, AuditSyncAndCoreWorkers) {
  auto config = ParseServerConfig(WithServer(""), "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->audit_sync, "group");
  EXPECT_EQ(config->core_workers, 0);
  config = ParseServerConfig(WithServer("", "[audit]\nsync = \"request\"\n[tee]\ncore_workers = 3\n"),
                             "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->audit_sync, "request");
  EXPECT_EQ(config->core_workers, 3);
  EXPECT_EQ(Refusal(WithServer("", "[audit]\nsync = \"never\"\n")),
            "server.toml: audit.sync must be \"group\" or \"request\"");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\ncore_workers = 300\n")),
            "server.toml: tee.core_workers must be 0 to 256");
}

TEST(ServerConfigTest, CpuScheduling) {
  auto config = ParseServerConfig(WithServer(""), "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->cpu_scheduling, "batch");
  config = ParseServerConfig(WithServer("cpu_scheduling = \"normal\""), "/etc/custos");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->cpu_scheduling, "normal");
  EXPECT_EQ(Refusal(WithServer("cpu_scheduling = \"fifo\"")),
            "server.toml: server.cpu_scheduling must be \"batch\" or \"normal\"");
}

TEST(ServerConfigTest, RefusesUnknownTablesAndKeys) {
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nbakend = \"sim\"\n")),
            "server.toml: unknown key tee.bakend");
  EXPECT_EQ(Refusal(WithServer("", "[teee]\nbackend = \"sim\"\n")),
            "server.toml: unknown table [teee]");
  EXPECT_EQ(Refusal(WithServer("", "[server.extra]\n")), "server.toml: unknown key server.extra");
  EXPECT_EQ(Refusal("listen = \"x:1\"\n" + WithServer("")), "server.toml: unknown key listen");
  // Several are named together; a hostile key name is escaped, not copied.
  std::string many = Refusal(WithServer("a = 1\nb = 2", "[tee]\n\"line\\nbreak\" = 1\n"));
  EXPECT_THAT(many, HasSubstr("unknown key server.a"));
  EXPECT_THAT(many, HasSubstr("unknown key server.b"));
  EXPECT_THAT(many, HasSubstr("unknown key tee.\"line\\x0abreak\""));
  EXPECT_THAT(many, Not(HasSubstr("\n")));
  std::string seven = Refusal(WithServer("a=1\nb=2\nc=3\nd=4\ne=5\nf=6\ng=7"));
  EXPECT_THAT(seven, HasSubstr("server.e, and 2 more"));
  EXPECT_THAT(seven, Not(HasSubstr("server.f")));
}

TEST(ServerConfigTest, RefusesWrongTypes) {
  EXPECT_EQ(Refusal(WithServer("listen = 8200")),
            "server.toml: server.listen must be a string (found integer)");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nsim_svn = \"1\"\n")),
            "server.toml: tee.sim_svn must be an integer (found string)");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nsim_product_id = 1.5\n")),
            "server.toml: tee.sim_product_id must be an integer (found float)");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nsim_debug = \"yes\"\n")),
            "server.toml: tee.sim_debug must be a boolean (true or false) (found string)");
  EXPECT_EQ(Refusal(WithServer("", "[cluster]\ncollateral = [\"a\"]\n")),
            "server.toml: cluster.collateral must be a string (found array)");
  EXPECT_EQ(Refusal("tee = 1\n" + WithServer("")),
            "server.toml: tee must be a table (found integer)");
  EXPECT_EQ(Refusal("[[server]]\ndata_dir = \"d\"\n"),
            "server.toml: server must be a table (found array)");
  EXPECT_EQ(Refusal(WithServer("join = 1979-05-27")),
            "server.toml: server.join must be a string (found date)");
  EXPECT_EQ(Refusal("[server]\ndata_dir = \"d\\u0000x\"\ncustody = \"c\"\n"),
            "server.toml: server.data_dir must not contain a NUL character");
}

TEST(ServerConfigTest, RefusesIntegersOutOfRange) {
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nsim_product_id = 65536\n")),
            "server.toml: tee.sim_product_id is out of range: must be an integer from 0 to 65535");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\nsim_svn = -1\n")),
            "server.toml: tee.sim_svn is out of range: must be an integer from 0 to 65535");
  // Beyond 64 bits it is the TOML parser that refuses, still without the digits.
  std::string huge = Refusal(WithServer("", "[tee]\nsim_svn = 99999999999999999999\n"));
  EXPECT_THAT(huge, HasSubstr("TOML syntax error at line 6"));
  EXPECT_THAT(huge, Not(HasSubstr("9999")));
}

TEST(ServerConfigTest, SyntaxErrorsGiveLineAndColumnButNoContent) {
  std::string msg = Refusal("[server]\ndata_dir = \"d\"\ncustody = c0ffee-secret\n");
  EXPECT_THAT(msg, HasSubstr("server.toml: TOML syntax error at line 3, column 11"));
  EXPECT_THAT(msg, Not(HasSubstr("c0ffee")));
  EXPECT_THAT(msg, Not(HasSubstr("secret")));

  std::string unterminated = Refusal("[server]\ndata_dir = \"hunter2\n");
  EXPECT_THAT(unterminated, HasSubstr("at line 2, column"));
  EXPECT_THAT(unterminated, Not(HasSubstr("hunter2")));

  std::string duplicate = Refusal("[server]\ndata_dir = \"a\"\ndata_dir = \"b\"\n");
  EXPECT_THAT(duplicate, HasSubstr("at line 3"));

  std::string bad_header = Refusal("[server\n");
  EXPECT_THAT(bad_header, HasSubstr("at line 1"));

  // toml++ quotes or appends what it saw; none of it may come through.
  std::string boolean = Refusal("[tee]\nsim_debug = trux\n");
  EXPECT_THAT(boolean, HasSubstr("expected 'true'"));
  EXPECT_THAT(boolean, Not(HasSubstr("trux")));
  std::string escape = Refusal("[server]\ncustody = \"a\\qzsecret\"\n");
  EXPECT_THAT(escape, HasSubstr("unknown escape sequence"));
  EXPECT_THAT(escape, Not(HasSubstr("\\q")));
  std::string month = Refusal("[server]\njoin = 1979-13-01\n");
  EXPECT_THAT(month, HasSubstr("expected month between 1 and 12 (inclusive)"));
  EXPECT_THAT(month, Not(HasSubstr("13")));
  std::string number = Refusal("[tee]\nsim_svn = 12_34_ab\n");
  EXPECT_THAT(number, HasSubstr("at line 2"));
  EXPECT_THAT(number, Not(HasSubstr("34")));

  for (const std::string& m :
       {msg, unterminated, duplicate, bad_header, boolean, escape, month, number}) {
    std::cout << "  " << m << "\n";  // for the reader of the test log
  }
}

TEST(ServerConfigTest, RefusesMissingRequiredKeys) {
  EXPECT_EQ(Refusal("[server]\ncustody = \"c\"\n"), "server.toml: server.data_dir is required");
  EXPECT_EQ(Refusal("[server]\ndata_dir = \"d\"\n"), "server.toml: server.custody is required");
  EXPECT_EQ(Refusal("[server]\ndata_dir = \"\"\ncustody = \"c\"\n"),
            "server.toml: server.data_dir is required");
  EXPECT_EQ(Refusal(""), "server.toml: server.data_dir is required");
}

TEST(ServerConfigTest, RefusesBackendNotInTheList) {
  std::string msg = Refusal(WithServer("", "[tee]\nbackend = \"sgx\"\n"));
  EXPECT_EQ(msg,
            "server.toml: tee.backend must be one of \"sim\", \"sgx-gramine\", \"tdx-configfs\"");
  EXPECT_THAT(Refusal(WithServer("", "[tee]\nbackend = \"SIM\"\n")), HasSubstr("tee.backend"));
}

TEST(ServerConfigTest, RefusesHalfOfTls) {
  const std::string want =
      "server.toml: server.tls_cert and server.tls_key must be given together (both or neither)";
  EXPECT_EQ(Refusal(WithServer("tls_cert = \"c.pem\"")), want);
  EXPECT_EQ(Refusal(WithServer("tls_key = \"k.pem\"")), want);
  EXPECT_EQ(Refusal(WithServer("tls_cert = \"c.pem\"\ntls_key = \"\"")), want);
  EXPECT_EQ(Refusal(WithServer("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ninsecure_http = true")),
            "server.toml: server.insecure_http and server.tls_cert exclude each other");
}

TEST(ServerConfigTest, ListenMustCarryAPort) {
  for (const char* ok : {"127.0.0.1:8200", "[::1]:8200", "localhost:0", "0.0.0.0:65535",
                         "[fe80::1%eth0]:1", "node-1.example:443"}) {
    auto config = ParseServerConfig(WithServer(std::string("listen = \"") + ok + "\""), "/b");
    EXPECT_TRUE(config.ok()) << ok << ": " << config.status().ToString();
  }
  struct Case {
    const char* listen;
    const char* message;
  };
  for (const Case& c : {
           Case{"127.0.0.1", "server.listen must end with :PORT"},
           Case{"", "server.listen must end with :PORT"},
           Case{"127.0.0.1:", "server.listen port must be a number from 0 to 65535"},
           Case{"127.0.0.1:65536", "server.listen port must be a number from 0 to 65535"},
           Case{"127.0.0.1:-1", "server.listen port must be a number from 0 to 65535"},
           Case{"127.0.0.1:http", "server.listen port must be a number from 0 to 65535"},
           Case{"127.0.0.1:082000", "server.listen port must be a number from 0 to 65535"},
           Case{":8200", "server.listen has an empty host"},
           Case{"[]:8200", "server.listen has an empty host"},
           Case{"::1:8200", "an IPv6 address must be bracketed"},
           Case{"[::1]8200", "server.listen must end with :PORT"},
           Case{"[::1]", "server.listen must end with :PORT"},
           Case{"[::1:8200", "unterminated [IPv6] literal"},
           Case{"[::1/64]:8200", "invalid [IPv6] literal"},
           Case{"bad host:8200", "host has an invalid character"},
       }) {
    EXPECT_THAT(Refusal(WithServer(std::string("listen = \"") + c.listen + "\"")),
                HasSubstr(c.message))
        << c.listen;
  }
}

TEST(ServerConfigTest, RefusesBadJoinUrlAndRelativeDeviceRoots) {
  std::string msg = Refusal(WithServer("join = \"ftp://user:pw@node\""));
  EXPECT_THAT(msg, HasSubstr("server.toml: server.join: URL scheme is not http or https"));
  EXPECT_THAT(msg, Not(HasSubstr("pw")));
  EXPECT_EQ(Refusal(WithServer("", "[tee]\ngramine_root = \"dev/attestation\"\n")),
            "server.toml: tee.gramine_root must be an absolute path");
  EXPECT_EQ(Refusal(WithServer("", "[tee]\ntsm_root = \"\"\n")),
            "server.toml: tee.tsm_root must be an absolute path");
}

TEST(ServerConfigTest, XksListenerAndMutualTls) {
  auto config = ParseServerConfig(WithServer("", "[xks]\nlisten = \"0.0.0.0:8443\"\nclient_ca = \"ats.pem\"\n"
                                                 "client_subject = \"cks.kms.eu-west-1.amazonaws.com\"\n"
                                                 "region = \"eu-west-1\"\nmax_requests_per_second = 1800\n"),
                                  "/base");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->xks_listen, "0.0.0.0:8443");
  EXPECT_EQ(config->xks_client_ca, "/base/ats.pem");
  EXPECT_EQ(config->xks_client_subject, "cks.kms.eu-west-1.amazonaws.com");
  EXPECT_EQ(config->xks_region, "eu-west-1");
  EXPECT_EQ(config->xks_max_requests_per_second, 1800);
  EXPECT_THAT(Refusal(WithServer("", "[xks]\nclient_ca = \"ats.pem\"\n")), HasSubstr("need xks.listen"));
  EXPECT_THAT(Refusal(WithServer("", "[xks]\nlisten = \"0.0.0.0:8443\"\nclient_subject = \"x\"\n")),
              HasSubstr("xks.client_subject needs xks.client_ca"));
  EXPECT_THAT(Refusal(WithServer("insecure_http = true", "[xks]\nlisten = \"0.0.0.0:8443\"\nclient_ca = \"a.pem\"\n")),
              HasSubstr("cannot be used with insecure_http"));
}

TEST(ServerConfigTest, RenderRoundTrips) {
  for (const char* text : {kMinimal, kFull}) {
    auto config = ParseServerConfig(text, "/etc/custos");
    ASSERT_TRUE(config.ok()) << config.status().ToString();
    std::string rendered = RenderServerConfig(*config);
    auto again = ParseServerConfig(rendered, "/somewhere/else");  // paths are already absolute
    ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << rendered;
    EXPECT_EQ(*again, *config) << rendered;
    EXPECT_EQ(RenderServerConfig(*again), rendered);
  }

  // Strings that need escaping survive; a config built in code renders too.
  ServerConfig odd;
  odd.data_dir = "/data/with \"quotes\" and \\ and \t and \x01 and \x7f and \xc3\xa9";
  odd.custody_path = "/c/custody.json";
  odd.sim_key_dir = "/k";
  odd.sim_product_id = 65535;
  odd.sim_svn = 1;
  odd.sim_debug = true;
  odd.join_url = "http://[::1]:8200/prefix";
  odd.tls_cert = "/t/c";
  odd.tls_key = "/t/k";
  std::string rendered = RenderServerConfig(odd);
  auto again = ParseServerConfig(rendered, "/b");
  ASSERT_TRUE(again.ok()) << again.status().ToString() << "\n" << rendered;
  EXPECT_EQ(*again, odd) << rendered;
}

TEST(ServerConfigTest, TruncatedPrefixesNeverCrash) {
  std::string full = kFull;
  size_t accepted = 0;
  for (size_t n = 0; n <= full.size(); ++n) {
    auto config = ParseServerConfig(std::string_view(full).substr(0, n), "/b");
    if (config.ok()) {
      ++accepted;
      continue;
    }
    EXPECT_EQ(config.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_THAT(config.status().message(), HasSubstr("server.toml: ")) << n;
    for (char c : config.status().message()) {
      ASSERT_TRUE(c >= 0x20 && c < 0x7f) << "unprintable byte in message at prefix " << n;
    }
  }
  EXPECT_GE(accepted, 1u);  // at least the whole file
  // Bytes that are not TOML at all.
  for (std::string junk : {std::string("\0\0\0", 3), std::string("\xff\xfe[server]"),
                           std::string("[server]\ndata_dir = \"\xc3\x28\"\n"),
                           std::string(10000, '['), std::string("a.b.c.d.e = 1")}) {
    auto config = ParseServerConfig(junk, "/b");
    EXPECT_FALSE(config.ok());
  }
}

}  // namespace
}  // namespace custos::host
