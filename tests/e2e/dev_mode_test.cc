// End-to-end test of `custos server --dev` (docs/operations.md "Dev mode"): one command starts
// in-process keepers, the DKG, the appliance with its sim core, init, unseal and an access key,
// and announces readiness by writing DATA_DIR/dev.env. A restart on the same directory reuses
// everything and prints the same credentials. Start-up times are printed, not asserted.
#include <sys/stat.h>

#include <regex>
#include <sstream>

#include "gmock/gmock.h"
#include "net/http_client.h"
#include "tests/e2e/harness.h"

namespace custos {
namespace {

using namespace e2e;
using nlohmann::json;
using ::testing::HasSubstr;

int ModeOf(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

// DevServer is one running `custos server --dev` and what it announced.
struct DevServer {
  pid_t pid = -1;
  std::string out_path, err_path, env_text;
  std::vector<std::pair<std::string, std::string>> lines;  // dev.env, in order
  double startup_ms = 0;

  std::string Get(const std::string& key) const {
    for (auto& [k, v] : lines)
      if (k == key) return v;
    return "";
  }
};

class DevMode : public ::testing::Test {
 protected:
  Cluster c;  // for its temporary directory and environment
  std::string dir = c.P("dev");
  std::vector<pid_t> running;

  ~DevMode() override {
    for (pid_t p : running) {
      ::kill(p, SIGKILL);
      int st;
      waitpid(p, &st, 0);
    }
  }

  // Start launches the dev server and waits (up to 60 s) for dev.env, the readiness signal.
  DevServer Start(const std::string& tag) {
    DevServer s;
    s.out_path = c.P(tag + ".out");
    s.err_path = c.P(tag + ".err");
    auto t0 = std::chrono::steady_clock::now();
    s.pid = Spawn({Bin(), "server", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir}, c.env,
                  s.out_path, s.err_path);
    EXPECT_GT(s.pid, 0);
    if (s.pid <= 0) return s;
    running.push_back(s.pid);
    std::string env_path = dir + "/dev.env";
    for (int i = 0; i < 6000 && !fs::exists(env_path); ++i) {
      int st;
      if (waitpid(s.pid, &st, WNOHANG) == s.pid) {
        running.erase(std::find(running.begin(), running.end(), s.pid));
        s.pid = -1;
        ADD_FAILURE() << "dev server exited before it was ready: " << ReadAll(s.err_path);
        return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    s.startup_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (!fs::exists(env_path)) {
      ADD_FAILURE() << "no dev.env after 60 s: " << ReadAll(s.err_path);
      return s;
    }
    s.env_text = ReadAll(env_path);
    std::istringstream in(s.env_text);
    for (std::string line; std::getline(in, line);) {
      size_t eq = line.find('=');
      EXPECT_NE(eq, std::string::npos) << line;
      if (eq != std::string::npos) s.lines.emplace_back(line.substr(0, eq), line.substr(eq + 1));
    }
    return s;
  }

  // Stop sends `sig` and returns the exit code (128+N if killed by signal N).
  int Stop(DevServer& s, int sig = SIGTERM) {
    if (s.pid <= 0) return -1;
    ::kill(s.pid, sig);
    int st = 0;
    waitpid(s.pid, &st, 0);
    running.erase(std::find(running.begin(), running.end(), s.pid));
    s.pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }

  // RunBounded runs a custos command that is expected to exit on its own; one still running
  // after 30 s (a refusal that regressed into a running server) is killed and fails the test.
  RunResult RunBounded(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {Bin()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::string base = c.P("bounded" + std::to_string(c.seq++));
    RunResult r;
    pid_t pid = Spawn(argv, c.env, base + ".out", base + ".err");
    EXPECT_GT(pid, 0);
    if (pid <= 0) return r;
    int st = 0;
    bool exited = false;
    for (int i = 0; i < 3000 && !exited; ++i) {
      exited = waitpid(pid, &st, WNOHANG) == pid;
      if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exited) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      ADD_FAILURE() << "still running after 30 s: custos " << args[0] << " ...";
    }
    r.code = exited && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    r.out = ReadAll(base + ".out");
    r.err = ReadAll(base + ".err");
    return r;
  }

  static json Health(const std::string& endpoint) {
    auto client = net::HttpClient::Create(endpoint);
    EXPECT_OK(client.status());
    if (!client.ok()) return json::object();
    auto r = net::DecodeJsonResponse(client->Get("/v1/sys/health"), "dev server");
    EXPECT_OK(r.status());
    return r.ok() ? *r : json::object();
  }

  // CheckAnnouncement checks the printed lines, the files' permissions and the server's state.
  void CheckAnnouncement(const DevServer& s) {
    std::vector<std::string> keys;
    for (auto& [k, v] : s.lines) keys.push_back(k);
    EXPECT_THAT(keys, ::testing::ElementsAre("CUSTOS_ENDPOINT", "AWS_ACCESS_KEY_ID",
                                             "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION",
                                             "CUSTOS_ADMIN_TOKEN_FILE", "CUSTOS_DATA_DIR", "CUSTOS_XKS_ENDPOINT",
                                             "CUSTOS_XKS_URI_PREFIX", "CUSTOS_XKS_ACCESS_KEY_ID",
                                             "CUSTOS_XKS_SECRET_ACCESS_KEY", "CUSTOS_KMIP_HOST", "CUSTOS_KMIP_PORT",
                                             "CUSTOS_KMIP_CA", "CUSTOS_KMIP_CERT", "CUSTOS_KMIP_KEY",
                                             "CUSTOS_DEV_PID"));
    // KMIP (docs/kmip.md): the loopback host, a bound port, the client's files (its key 0600).
    EXPECT_EQ(s.Get("CUSTOS_KMIP_HOST"), "127.0.0.1");
    EXPECT_GT(std::stoi(s.Get("CUSTOS_KMIP_PORT")), 0);
    EXPECT_TRUE(fs::exists(s.Get("CUSTOS_KMIP_CA")));
    EXPECT_TRUE(fs::exists(s.Get("CUSTOS_KMIP_CERT")));
    EXPECT_EQ(ModeOf(s.Get("CUSTOS_KMIP_KEY")), 0600);
    // The XKS proxy API (docs/xks.md): the same listener, the dev prefix, a 256-bit secret.
    EXPECT_EQ(s.Get("CUSTOS_XKS_ENDPOINT"), s.Get("CUSTOS_ENDPOINT"));
    EXPECT_EQ(s.Get("CUSTOS_XKS_URI_PREFIX"), "/dev/kms/xks/v1");
    EXPECT_TRUE(std::regex_match(s.Get("CUSTOS_XKS_ACCESS_KEY_ID"), std::regex("[A-Z2-7]{20,30}")));
    EXPECT_EQ(s.Get("CUSTOS_XKS_SECRET_ACCESS_KEY").size(), 44u);
    EXPECT_EQ(s.Get("CUSTOS_DEV_PID"), std::to_string(s.pid));
    std::smatch m;
    std::string endpoint = s.Get("CUSTOS_ENDPOINT");
    ASSERT_TRUE(std::regex_match(endpoint, m, std::regex("http://127\\.0\\.0\\.1:([0-9]+)")))
        << endpoint;
    EXPECT_NE(std::stoi(m[1].str()), 0) << "port 0 must be replaced by the bound port";
    EXPECT_FALSE(s.Get("AWS_ACCESS_KEY_ID").empty());
    EXPECT_GE(s.Get("AWS_SECRET_ACCESS_KEY").size(), 16u);
    EXPECT_EQ(s.Get("AWS_REGION"), "us-east-1");
    EXPECT_TRUE(fs::equivalent(s.Get("CUSTOS_DATA_DIR"), dir));
    EXPECT_EQ(ModeOf(s.Get("CUSTOS_ADMIN_TOKEN_FILE")), 0600);
    // Secrets on disk are private to the user; the directory too.
    EXPECT_EQ(ModeOf(dir + "/dev.env"), 0600);
    EXPECT_EQ(ModeOf(dir), 0700);
    EXPECT_EQ(ModeOf(dir + "/keepers/passphrase"), 0600);
    EXPECT_EQ(ModeOf(dir + "/dev-credentials"), 0600);
    for (const char* id : {"P1", "C1", "C2", "C3"})
      EXPECT_TRUE(fs::exists(dir + "/keepers/" + id + "/keeper.json")) << id;
    EXPECT_TRUE(fs::exists(dir + "/custody.json"));
    // Ready means unsealed.
    json h = Health(endpoint);
    EXPECT_EQ(h.value("sealed", true), false);
    EXPECT_EQ(h.value("initialized", false), true);
    // stdout carries exactly the dev.env lines (printed right after the file is renamed in).
    std::string out;
    for (int i = 0; i < 500 && (out = ReadAll(s.out_path)).size() < s.env_text.size(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(out, s.env_text);
    // stderr is JSON lines, and never shows the secret.
    std::string err = ReadAll(s.err_path);
    EXPECT_THAT(err, ::testing::Not(HasSubstr(s.Get("AWS_SECRET_ACCESS_KEY"))));
    std::istringstream lines(err);
    for (std::string line; std::getline(lines, line);)
      EXPECT_FALSE(json::parse(line, nullptr, false).is_discarded())
          << "not a JSON log line: " << line;
  }
};

TEST_F(DevMode, OneCommandStartsUnsealedAndRestartsWithTheSameAccessKey) {
  DevServer first = Start("first");
  ASSERT_GT(first.pid, 0);
  CheckAnnouncement(first);
  std::printf("[ dev mode ] first start (DKG, init, unseal, new access key): %.0f ms\n",
              first.startup_ms);
  std::string custody = ReadAll(dir + "/custody.json");

  // A second dev server on the same directory is refused while the first runs.
  RunResult twice = RunBounded({"server", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir});
  EXPECT_NE(twice.code, 0);
  EXPECT_THAT(twice.err, HasSubstr("another `custos server --dev` is using"));

  EXPECT_EQ(Stop(first), 0) << ReadAll(first.err_path);
  EXPECT_FALSE(fs::exists(dir + "/dev.env")) << "dev.env must not outlive the server";
  EXPECT_THAT(ReadAll(first.err_path), HasSubstr("stopping on signal"));

  DevServer second = Start("second");
  ASSERT_GT(second.pid, 0);
  CheckAnnouncement(second);
  std::printf("[ dev mode ] restart (keepers reopened, unseal by release): %.0f ms\n",
              second.startup_ms);
  EXPECT_EQ(second.Get("AWS_ACCESS_KEY_ID"), first.Get("AWS_ACCESS_KEY_ID"));
  EXPECT_EQ(second.Get("AWS_SECRET_ACCESS_KEY"), first.Get("AWS_SECRET_ACCESS_KEY"));
  EXPECT_EQ(ReadAll(dir + "/custody.json"), custody) << "a restart must not run a new DKG";
  std::string err = ReadAll(second.err_path);
  EXPECT_THAT(err, ::testing::Not(HasSubstr("custody written")));
  // The restarted appliance came up sealed and was unsealed by the keepers' releases.
  EXPECT_THAT(err, HasSubstr("\"released\":true"));
  EXPECT_THAT(ReadAll(dir + "/keepers/P1/audit.log"), HasSubstr("enclave.release"));

  EXPECT_EQ(Stop(second, SIGINT), 0) << ReadAll(second.err_path);
}

TEST_F(DevMode, RefusesNonLoopbackAndFlagsOutsideDevMode) {
  RunResult r = RunBounded({"server", "--dev", "--listen", "0.0.0.0:0", "--data-dir", dir});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("loopback only"));
  EXPECT_FALSE(fs::exists(dir)) << "nothing is created for a refused address";

  r = RunBounded({"server"});
  EXPECT_NE(r.code, 0);
  EXPECT_THAT(r.err, HasSubstr("--config"));
  r = RunBounded({"server", "--listen", "127.0.0.1:0"});
  EXPECT_NE(r.code, 0);
  r = RunBounded({"server", "--dev", "--config", c.P("server.toml")});
  EXPECT_NE(r.code, 0);
}

}  // namespace
}  // namespace custos
