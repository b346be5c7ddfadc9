// Shared harness of the end-to-end tests: real `custos` processes ($CUSTOS_BIN) on loopback.
#pragma once
#include <cstdlib>
#include <cstdio>
#include <mutex>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "protocol/attestation/sim_evidence.h"
#include "common/file.h"
#include "crypto/random.h"
#include "keeper/api/keeper_client.h"
#include "client/kms/client.h"
#include "net/http_client.h"
#include "tests/testing/testing.h"

extern char** environ;

namespace custos::e2e {

namespace fs = std::filesystem;

struct RunResult {
  int code = -1;
  std::string out, err;
  // max_rss_kib: peak resident memory. From Run it is wait4's ru_maxrss, which on Linux also
  // counts the test process's own peak (exec after posix_spawn's vfork records the parent's
  // high-water mark); RunMeasured reports the command's own peak.
  long max_rss_kib = 0;
};

inline std::string Bin() {
  const char* b = std::getenv("CUSTOS_BIN");
  return b ? b : "custos";
}

inline std::string ReadAll(const std::string& path) {
  auto s = ReadFileString(path);
  return s.ok() ? *s : "";
}

// Spawn starts `args` with extra environment `env`; stdout/stderr go to the given files.
inline pid_t Spawn(const std::vector<std::string>& args, const std::map<std::string, std::string>& env,
            const std::string& out_path, const std::string& err_path) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string k = kv.substr(0, kv.find('='));
    if (!env.count(k)) envs.push_back(kv);
  }
  for (auto& [k, v] : env) envs.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : envs) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  if (posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), envp.data()) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// FreePort returns a loopback port nobody listens on. Under ctest each e2e entry runs in its own
// process, side by side (`ctest -j`), with its own range below Linux's ephemeral ports
// (CUSTOS_E2E_PORTS=FIRST-LAST, set in CMakeLists.txt): two processes never hand out the same
// port, and no outgoing connection can hold one. Within the range ports are handed out in turn
// (a process never hands one out twice while it has others left) and probed with a bind. Run by
// hand without the variable, it asks the kernel for an ephemeral port.
// BindLoopback binds 127.0.0.1:port (0: the kernel picks), closes, and returns the port it got,
// or 0 if the bind failed.
inline uint16_t BindLoopback(uint16_t port) {
  int s = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  socklen_t len = sizeof a;
  bool ok = ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
            ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  ::close(s);
  return ok ? ntohs(a.sin_port) : 0;
}

inline uint16_t FreePort() {
  static std::mutex mu;
  static int next = -1, first = 0, last = -1;
  std::lock_guard<std::mutex> lock(mu);
  if (next < 0) {
    const char* range = std::getenv("CUSTOS_E2E_PORTS");
    if (range != nullptr && std::sscanf(range, "%d-%d", &first, &last) == 2 && first > 0 && last >= first &&
        last < 65536) {
      next = first;
    } else {
      next = 0;
    }
  }
  if (next > 0) {
    for (int tries = 0; tries <= last - first; ++tries) {
      int p = next;
      next = next == last ? first : next + 1;
      if (BindLoopback(static_cast<uint16_t>(p)) != 0) return static_cast<uint16_t>(p);
    }
  }
  return BindLoopback(0);
}

class Cluster {
 public:
  std::string root = testing::TempDir();
  std::map<std::string, std::string> env = {
      {"CUSTOS_KEEPER_PASSPHRASE", "e2e at-rest passphrase"}};
  struct Keeper {
    std::string dir;
    uint16_t port = 0;
    pid_t pid = -1;
    bool tls = false;
    std::string log;  // stderr of the running process
    std::string url() const {
      return (tls ? "https://127.0.0.1:" : "http://127.0.0.1:") + std::to_string(port);
    }
  };
  std::map<std::string, Keeper> keepers;
  int seq = 0;

  RunResult Run(std::vector<std::string> args, std::map<std::string, std::string> extra = {}) {
    args.insert(args.begin(), Bin());
    auto e = env;
    for (auto& [k, v] : extra) e[k] = v;
    std::string base = root + "/run" + std::to_string(seq++);
    pid_t pid = Spawn(args, e, base + ".out", base + ".err");
    RunResult r;
    if (pid < 0) return r;
    int status = 0;
    struct rusage usage {};
    wait4(pid, &status, 0, &usage);
    r.max_rss_kib = usage.ru_maxrss;
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ReadAll(base + ".out");
    r.err = ReadAll(base + ".err");
    return r;
  }

  // RunMeasured is Run through GNU time, whose forked child starts from time's small address
  // space, so max_rss_kib is the command's own peak resident memory (kernel's VmHWM).
  RunResult RunMeasured(std::vector<std::string> args) {
    std::string rss = root + "/rss" + std::to_string(seq) + ".txt";
    args.insert(args.begin(), Bin());
    args.insert(args.begin(), {"/usr/bin/time", "-f", "%M", "-o", rss});
    auto e = env;
    std::string base = root + "/run" + std::to_string(seq++);
    pid_t pid = Spawn(args, e, base + ".out", base + ".err");
    RunResult r;
    if (pid < 0) return r;
    int status = 0;
    waitpid(pid, &status, 0);
    r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    r.out = ReadAll(base + ".out");
    r.err = ReadAll(base + ".err");
    std::string text = ReadAll(rss);
    auto nl = text.find_last_not_of("\n");
    if (nl != std::string::npos) {
      auto start = text.find_last_of('\n', nl);
      r.max_rss_kib = std::atol(text.substr(start == std::string::npos ? 0 : start + 1).c_str());
    }
    return r;
  }

  std::string P(const std::string& rel) const { return root + "/" + rel; }

  void Init(const std::string& id, const std::string& domain) {
    auto r = Run({"keeper", "init", "--dir", P(id), "--domain", domain, "--id", id,
                  "--kdf-memory-kib", "4096", "--kdf-iterations", "1"});
    ASSERT_EQ(r.code, 0) << r.err;
    r = Run({"keeper", "allow", "--dir", P(id), "--client", P("app.key.pub")});
    ASSERT_EQ(r.code, 0) << r.err;
    // The operators' approval of a DKG (one test key stands for every keeper operator).
    if (!fs::exists(P("dkg-admin.key"))) {
      ASSERT_EQ(Run({"client", "init", "--out", P("dkg-admin.key")}).code, 0);
    }
    r = Run({"keeper", "allow", "--dir", P(id), "--client", P("dkg-admin.key.pub"), "--role", "admin"});
    ASSERT_EQ(r.code, 0) << r.err;
    keepers[id].dir = P(id);
    keepers[id].port = FreePort();
  }

  // tls_dir, when set, holds cert.pem/key.pem (see MakeTlsCert) and the keeper serves HTTPS.
  std::string tls_dir;

  void Start(const std::string& id, const std::string& fault = "", const std::string& dir = "",
             const std::vector<std::string>& extra_args = {}) {
    Keeper& k = keepers[id];
    if (!dir.empty()) k.dir = dir;
    k.tls = !tls_dir.empty();
    auto e = env;
    if (!fault.empty()) e["CUSTOS_FAULT_INJECTION"] = fault;
    std::string base = root + "/" + id + "-serve" + std::to_string(seq++);
    std::vector<std::string> args = {Bin(), "keeper", "serve", "--dir", k.dir, "--listen",
                                     "127.0.0.1:" + std::to_string(k.port)};
    if (k.tls) {
      for (std::string a : {std::string("--tls-cert"), tls_dir + "/cert.pem", std::string("--tls-key"), tls_dir + "/key.pem"})
        args.push_back(a);
    } else {
      args.push_back("--insecure-http");  // these suites test the protocols, not the transport
    }
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    k.log = base + ".err";
    k.pid = Spawn(args, e, base + ".out", base + ".err");
    ASSERT_GT(k.pid, 0);
    for (int i = 0; i < 800; ++i) {
      auto c = keeper::KeeperClient::Create(k.url(), k.tls ? tls_dir + "/cert.pem" : "");
      if (c.ok() && c->Info().ok()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    FAIL() << "keeper " << id << " did not start: " << ReadAll(base + ".err");
  }

  void Kill(const std::string& id, int sig = SIGKILL) {
    Keeper& k = keepers[id];
    if (k.pid <= 0) return;
    ::kill(k.pid, sig);
    int status;
    waitpid(k.pid, &status, 0);
    k.pid = -1;
  }

  ~Cluster() {
    for (auto& [id, k] : keepers)
      if (k.pid > 0) {
        ::kill(k.pid, SIGKILL);
        int status;
        waitpid(k.pid, &status, 0);
      }
  }
};

// StartCoCustody is the setup several suites share: a client key app.key, keepers P1 (provider,
// 1-of-1) and C1..C3 (customers, 2-of-3) initialised, allowing it and running, and their DKG.
// `custody` receives custody.json's path.
inline void StartCoCustody(Cluster& c, std::string& custody) {
  ASSERT_EQ(c.Run({"client", "init", "--out", c.P("app.key")}).code, 0);
  c.Init("P1", "provider");
  for (auto id : {"C1", "C2", "C3"}) c.Init(id, "customer");
  for (auto id : {"P1", "C1", "C2", "C3"}) c.Start(id);
  custody = c.P("custody.json");
  auto r = c.Run({"ceremony", "dkg", "--provider", c.keepers["P1"].url(), "--provider-threshold", "1",
                  "--customer",
                  c.keepers["C1"].url() + "," + c.keepers["C2"].url() + "," + c.keepers["C3"].url(),
                  "--customer-threshold", "2", "--out", custody, "--client-key", c.P("dkg-admin.key")});
  ASSERT_EQ(r.code, 0) << r.err;
}

inline bool SameFile(const std::string& a, const std::string& b) {
  std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
  std::istreambuf_iterator<char> ea;
  if (fs::file_size(a) != fs::file_size(b)) return false;
  return std::equal(std::istreambuf_iterator<char>(fa), ea, std::istreambuf_iterator<char>(fb));
}

inline void WriteRandomFile(const std::string& path, size_t bytes) {
  std::ofstream f(path, std::ios::binary);
  Bytes block = crypto::RandomBytes(1 << 20);
  for (size_t done = 0; done < bytes;) {
    size_t n = std::min(block.size(), bytes - done);
    block[done % 997] ^= 0x5a;  // vary blocks
    f.write(reinterpret_cast<const char*>(block.data()), static_cast<std::streamsize>(n));
    done += n;
  }
}

inline std::string EnclaveBin() { return (fs::path(Bin()).parent_path() / "custos-enclave").string(); }

// WaitFor polls `cond` every 50 ms for up to `ms`.
inline bool WaitFor(const std::function<bool()>& cond, int ms = 30000) {
  for (int i = 0; i < ms / 50; ++i) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

// Node is one `custos server` process (host + custos-enclave).
struct Node {
  std::string name, dir, config, log;
  uint16_t port = 0;
  pid_t pid = -1;
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port); }
};

// ApplianceNodes starts appliance nodes of one custody under a Cluster's root (NAME/server.toml,
// data in NAME/data; all nodes share one sim platform key, as nodes on one host would) and
// releases keepers' partials to them.
class ApplianceNodes {
 public:
  ApplianceNodes(Cluster& c, std::string custody) : c_(c), custody_(std::move(custody)) {}
  ~ApplianceNodes() {
    for (auto& [n, node] : nodes) Stop(node);
  }

  Node& Start(const std::string& name, const std::string& extra_server = "", const std::string& extra_tee = "") {
    Node& n = nodes[name];
    n.name = name;
    n.dir = c_.P(name);
    fs::create_directories(n.dir);
    if (n.port == 0) n.port = FreePort();
    n.config = n.dir + "/server.toml";
    std::ofstream(n.config) << "[server]\nlisten = \"127.0.0.1:" << n.port << "\"\ndata_dir = \"data\"\n"
                            << "custody = \"" << custody_ << "\"\ninsecure_http = true\n" << extra_server
                            << "[tee]\nbackend = \"sim\"\n"
                            << "sim_key_dir = \"" << c_.P("sim-platform") << "\"\n" << extra_tee;
    n.log = n.dir + "/server" + std::to_string(c_.seq++) + ".err";
    n.pid = Spawn({Bin(), "server", "--config", n.config}, c_.env, n.dir + "/server.out", n.log);
    EXPECT_GT(n.pid, 0);
    for (int i = 0; i < 1200; ++i) {  // 30 s: a sanitized build on a loaded machine is slow
      if (Status(n).ok()) return n;
      int st = 0;
      if (waitpid(n.pid, &st, WNOHANG) == n.pid) {
        n.pid = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    ADD_FAILURE() << "server " << name << " did not start: " << ReadAll(n.log);
    return n;
  }

  static void Stop(Node& n, int sig = SIGTERM) {
    if (n.pid <= 0) return;
    ::kill(n.pid, sig);
    int st;
    waitpid(n.pid, &st, 0);
    n.pid = -1;
  }

  // Status is the full status (admin token from the node's data_dir).
  static StatusOr<nlohmann::json> Status(const Node& n) {
    auto client = net::HttpClient::Create(n.url());
    if (!client.ok()) return client.status();
    std::string token = ReadAll(n.dir + "/data/admin.token");
    while (!token.empty() && token.back() == '\n') token.pop_back();
    return net::DecodeJsonResponse(client->Get("/v1/sys/status", {{"authorization", "Bearer " + token}}), "node");
  }

  static nlohmann::json MustStatus(const Node& n) {
    auto s = Status(n);
    EXPECT_OK(s.status());
    return s.ok() ? *s : nlohmann::json::object();
  }

  // WritePolicy writes a keeper policy pinning the first node's measurement and platform signer.
  std::string WritePolicy(const std::string& file, const nlohmann::json& overrides = nlohmann::json::object()) {
    nlohmann::json st = MustStatus(nodes.begin()->second);
    auto ev = Base64Decode(st.value("evidence", ""));
    auto v = attestation::VerifySimEvidence(ev.ok() ? *ev : Bytes{});
    EXPECT_OK(v.status());
    nlohmann::json p = {{"allow_sim", true},
                        {"measurements", {st.value("measurement", "")}},
                        {"signers", {v.ok() ? HexEncode(v->signer) : ""}}};
    for (auto& [k, val] : overrides.items()) p[k] = val;
    std::string path = c_.P(file);
    std::ofstream(path) << p.dump();
    return path;
  }

  // Release runs `custos keeper release` from keeper directory `keeper` (under the cluster root).
  RunResult Release(const std::string& keeper, const Node& n, const std::string& policy_path,
                    std::map<std::string, std::string> env = {}) {
    return c_.Run({"keeper", "release", "--dir", c_.P(keeper), "--server", n.url(), "--policy", policy_path}, env);
  }

  std::map<std::string, Node> nodes;

 private:
  Cluster& c_;
  std::string custody_;
};

// DevServer is one `custos server --dev` process and the credentials it printed.
struct DevServer {
  pid_t pid = -1;
  std::string dir, endpoint, out_path, err_path;
  std::map<std::string, std::string> env;  // dev.env

  static DevServer Start(const std::string& dir) {
    DevServer s;
    s.dir = dir;
    s.out_path = dir + ".out";
    s.err_path = dir + ".err";
    fs::remove(dir + "/dev.env");
    s.pid = Spawn({Bin(), "server", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir}, {}, s.out_path, s.err_path);
    for (int i = 0; i < 600 && !fs::exists(dir + "/dev.env"); ++i) {
      int st = 0;
      if (waitpid(s.pid, &st, WNOHANG) == s.pid) {
        ADD_FAILURE() << "dev server exited: " << ReadAll(s.err_path);
        s.pid = -1;
        return s;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string text = ReadAll(dir + "/dev.env");
    for (size_t p = 0; p < text.size();) {
      size_t nl = text.find('\n', p);
      std::string line = text.substr(p, nl - p);
      if (auto eq = line.find('='); eq != std::string::npos) s.env[line.substr(0, eq)] = line.substr(eq + 1);
      if (nl == std::string::npos) break;
      p = nl + 1;
    }
    s.endpoint = s.env["CUSTOS_ENDPOINT"];
    EXPECT_FALSE(s.endpoint.empty()) << "no dev.env: " << ReadAll(s.err_path);
    return s;
  }

  kms::KmsClient Client() const {
    kms::SigV4Credentials c{env.at("AWS_ACCESS_KEY_ID"),
                            SecretBytes::CopyFrom(std::string_view(env.at("AWS_SECRET_ACCESS_KEY"))), "", nullptr};
    auto k = kms::KmsClient::Create(endpoint, std::move(c), env.at("AWS_REGION"));
    EXPECT_OK(k.status());
    return std::move(k).value();
  }

  int Stop(int sig = SIGTERM) {
    if (pid <= 0) return -1;
    ::kill(pid, sig);
    int st = 0;
    waitpid(pid, &st, 0);
    pid = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
};

}  // namespace custos::e2e
