// The KMS API end to end: a real `custos server --dev` process (in-process keepers, sim TEE,
// quorum unseal) on loopback, driven over HTTP with SigV4-signed requests (kms/client.h).
// Shown here: hostile input gets the right AWS error and the server keeps serving; kill -9 of
// the server or of its trusted core during a stream of CreateKey and Encrypt loses no
// acknowledged key, ciphertext or audit entry; the
// audit chain of everything that happened verifies with `custos audit verify`, and an edit of
// the database is detected. The SDK-level coverage of every operation is tests/conformance.
#include <sys/socket.h>

#include <atomic>
#include <mutex>
#include <set>
#include <sstream>

#include "gmock/gmock.h"
#include "client/kms/client.h"
#include "tests/e2e/harness.h"

namespace custos::e2e {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

json Ok(kms::KmsClient& c, std::string_view op, const json& req) {
  auto r = c.Call(op, req);
  EXPECT_OK(r.status());
  if (!r.ok()) return json::object();
  EXPECT_EQ(r->status, 200) << op << ": " << r->body.dump();
  return r->body;
}

std::string ErrorOf(kms::KmsClient& c, std::string_view op, const json& req) {
  auto r = c.Call(op, req);
  EXPECT_OK(r.status());
  return r.ok() ? r->error_type() : "transport error";
}

// RawPost sends a request exactly as given (no signing) and returns status and __type.
std::pair<int, std::string> RawPost(const std::string& endpoint, const std::string& body,
                                    const net::HttpHeaders& headers) {
  auto http = net::HttpClient::Create(endpoint);
  if (!http.ok()) return {-1, ""};
  auto r = http->Post("/", body, headers);
  if (!r.ok()) return {-1, r.status().message()};
  json j = json::parse(r->body, nullptr, false);
  return {r->status, j.is_object() ? j.value("__type", "") : ""};
}

RunResult AuditVerify(const std::string& server_dir) {
  std::string out = server_dir + "/../verify.out", err = server_dir + "/../verify.err";
  pid_t p = Spawn({Bin(), "audit", "verify", "--data-dir", server_dir}, {}, out, err);
  int st = 0;
  waitpid(p, &st, 0);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, ReadAll(out), ReadAll(err)};
}

TEST(KmsE2E, HostileInputGetsAwsErrorsAndTheServerKeepsServing) {
  std::string dir = testing::TempDir() + "/dev";
  DevServer s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  kms::KmsClient c = s.Client();
  std::string id = Ok(c, "CreateKey", json::object())["KeyMetadata"]["KeyId"];
  json enc = Ok(c, "Encrypt", {{"KeyId", id}, {"Plaintext", Base64Encode(AsBytes("payload"))}});
  std::string blob = enc["CiphertextBlob"];

  net::HttpHeaders kms_headers = {{"content-type", "application/x-amz-json-1.1"},
                                  {"x-amz-target", "TrentService.Encrypt"}};
  // Oversized body: answered by the HTTP layer, still in the AWS error shape.
  auto big = RawPost(s.endpoint, std::string(2 << 20, 'x'), kms_headers);
  EXPECT_EQ(big.first, 413);
  EXPECT_EQ(big.second, "ValidationException");
  // No signature at all; a garbage Authorization header.
  EXPECT_EQ(RawPost(s.endpoint, "{}", kms_headers).second, "MissingAuthenticationTokenException");
  net::HttpHeaders garbage = kms_headers;
  garbage["authorization"] = "AWS4-HMAC-SHA256 Credential=%%%";
  garbage["x-amz-date"] = "20260101T000000Z";
  EXPECT_EQ(RawPost(s.endpoint, "{}", garbage).second, "IncompleteSignatureException");
  // Signed but malformed bodies and targets.
  EXPECT_EQ(ErrorOf(c, "Encrypt", {{"KeyId", id}, {"Plaintext", "@@not base64@@"}}), "SerializationException");
  EXPECT_EQ(ErrorOf(c, "Encrypt", {{"KeyId", id}, {"Plaintext", 42}}), "SerializationException");
  EXPECT_EQ(ErrorOf(c, "Encrypt", {{"KeyId", id}}), "ValidationException");
  EXPECT_EQ(ErrorOf(c, "NoSuchThing", json::object()), "UnknownOperationException");
  // Stale signature, wrong secret, unknown access key.
  c.now = [] { return std::time(nullptr) - 3600; };
  EXPECT_EQ(ErrorOf(c, "Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}}), "InvalidSignatureException");
  c.now = nullptr;
  {
    kms::SigV4Credentials wrong{s.env["AWS_ACCESS_KEY_ID"], SecretBytes::CopyFrom(std::string_view("wrong-secret")), "", nullptr};
    auto w = kms::KmsClient::Create(s.endpoint, std::move(wrong), "us-east-1");
    ASSERT_OK(w.status());
    EXPECT_EQ(ErrorOf(*w, "Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}}), "InvalidSignatureException");
    kms::SigV4Credentials unknown{"CKIAAAAAAAAAAAAAAAAA", SecretBytes::CopyFrom(std::string_view("x")), "", nullptr};
    auto u = kms::KmsClient::Create(s.endpoint, std::move(unknown), "us-east-1");
    ASSERT_OK(u.status());
    EXPECT_EQ(ErrorOf(*u, "Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}}), "UnrecognizedClientException");
  }
  // Tampered, truncated and foreign ciphertexts.
  Bytes b = *Base64Decode(blob);
  Bytes t = b;
  t[t.size() / 2] ^= 0x80;
  EXPECT_EQ(ErrorOf(c, "Decrypt", {{"CiphertextBlob", Base64Encode(t)}}), "InvalidCiphertextException");
  Bytes cut(b.begin(), b.begin() + 50);
  EXPECT_EQ(ErrorOf(c, "Decrypt", {{"CiphertextBlob", Base64Encode(cut)}}), "InvalidCiphertextException");
  Bytes foreign = b;  // same header, another appliance's (random) body
  Bytes noise = crypto::RandomBytes(foreign.size() - 50);
  std::copy(noise.begin(), noise.end(), foreign.begin() + 50);
  EXPECT_EQ(ErrorOf(c, "Decrypt", {{"CiphertextBlob", Base64Encode(foreign)}}), "InvalidCiphertextException");
  EXPECT_EQ(ErrorOf(c, "Decrypt", {{"CiphertextBlob", Base64Encode(crypto::RandomBytes(200))}}),
            "InvalidCiphertextException");
  // Not HTTP at all.
  {
    auto http = net::HttpClient::Create(s.endpoint);
    ASSERT_OK(http.status());
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(http->url().port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    std::string junk = "\x16\x03\x01 this is not http\r\n\r\n";
    ASSERT_GT(::write(fd, junk.data(), junk.size()), 0);
    char buf[512];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    EXPECT_GT(n, 0);
    EXPECT_THAT(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), HasSubstr("400"));
  }
  // And it still serves: the original ciphertext decrypts.
  json dec = Ok(c, "Decrypt", {{"CiphertextBlob", blob}});
  EXPECT_EQ(dec["Plaintext"], Base64Encode(AsBytes("payload")));
  // /metrics saw it all.
  auto http = net::HttpClient::Create(s.endpoint);
  ASSERT_OK(http.status());
  // Metrics are the operator's: refused without the admin token, served with it.
  auto anonymous = http->Get("/metrics");
  ASSERT_OK(anonymous.status());
  EXPECT_EQ(anonymous->status, 403);
  std::string token = ReadAll(s.env["CUSTOS_ADMIN_TOKEN_FILE"]);
  while (!token.empty() && token.back() == '\n') token.pop_back();
  auto m = http->Get("/metrics", {{"authorization", "Bearer " + token}});
  ASSERT_OK(m.status());
  ASSERT_EQ(m->status, 200);
  EXPECT_THAT(m->body, HasSubstr("custos_sealed 0"));
  EXPECT_THAT(m->body, HasSubstr("custos_kms_requests_total{operation=\"Decrypt\",outcome=\"InvalidCiphertextException\"} 4"));
  EXPECT_THAT(m->body, HasSubstr("custos_kms_request_duration_seconds_bucket{operation=\"Encrypt\""));
  EXPECT_EQ(s.Stop(), 0) << ReadAll(s.err_path);
  // The log carries no secret: neither the access secret nor the plaintext.
  std::string log = ReadAll(s.err_path);
  EXPECT_EQ(log.find(s.env["AWS_SECRET_ACCESS_KEY"]), std::string::npos);
  EXPECT_EQ(log.find(Base64Encode(AsBytes("payload"))), std::string::npos);
}

// AuditedRequestIds reads the request ids of every audit entry from the server's database
// with the sqlite3 shell (as an operator would).
std::set<std::string> AuditedRequestIds(const std::string& dir) {
  std::string out = dir + "/ids.out", err = dir + "/ids.err";
  pid_t p = Spawn({"/usr/bin/sqlite3", dir + "/server/custos.db",
                   "SELECT json_extract(entry, '$.request_id') FROM audit;"},
                  {}, out, err);
  int st = 0;
  waitpid(p, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadAll(err);
  std::set<std::string> ids;
  std::istringstream lines(ReadAll(out));
  for (std::string line; std::getline(lines, line);) ids.insert(line);
  return ids;
}

// CorePid is the trusted core process of a server: its child.
pid_t CorePid(pid_t server) {
  std::string children = ReadAll("/proc/" + std::to_string(server) + "/task/" +
                                 std::to_string(server) + "/children");
  return children.empty() ? -1 : static_cast<pid_t>(std::stol(children));
}

enum class Victim { kServer, kCore };

// KillDashNineUnderLoad streams CreateKey and Encrypt from 4 clients, kills the server or its
// trusted core with SIGKILL mid-stream, and checks, after the service is back, that every
// acknowledged key exists, every acknowledged ciphertext decrypts, every acknowledged request
// has its audit entry, and the chain verifies (issue 14; [audit] sync = "group", the default).
void KillDashNineUnderLoad(Victim victim) {
  std::string dir = testing::TempDir() + "/dev";
  DevServer s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  struct Ack {
    std::string key_id, blob, plaintext, context;
  };
  std::mutex mu;
  std::vector<Ack> acked;
  std::set<std::string> acked_ids;  // request ids of every 200 answer
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, after_kill{0};
  std::atomic<bool> killed{false};
  auto writer = [&](int n) {
    kms::KmsClient c = s.Client();
    for (int i = 0; !stop; ++i) {
      auto k = c.Call("CreateKey", {{"Description", "crash " + std::to_string(n) + "/" + std::to_string(i)}});
      if (!k.ok() || !k->ok()) {
        ++failures;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      std::string id = k->body["KeyMetadata"]["KeyId"];
      {
        std::lock_guard<std::mutex> lock(mu);
        acked.push_back({id, "", "", ""});
        acked_ids.insert(k->request_id);
        if (killed) ++after_kill;
      }
      std::string pt = Base64Encode(crypto::RandomBytes(48));
      auto e = c.Call("Encrypt", {{"KeyId", id}, {"Plaintext", pt}, {"EncryptionContext", {{"n", std::to_string(i)}}}});
      if (e.ok() && e->ok()) {
        std::lock_guard<std::mutex> lock(mu);
        acked.push_back({id, e->body["CiphertextBlob"], pt, std::to_string(i)});
        acked_ids.insert(e->request_id);
        if (killed) ++after_kill;
      }
    }
  };
  std::vector<std::thread> writers;
  for (int n = 0; n < 4; ++n) writers.emplace_back(writer, n);
  auto wait_for_acks = [&](size_t n) {
    for (int i = 0; i < 600; ++i) {
      {
        std::lock_guard<std::mutex> lock(mu);
        if (acked.size() >= n) return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  };
  wait_for_acks(80);
  if (victim == Victim::kServer) {
    killed = true;
    EXPECT_EQ(s.Stop(SIGKILL), 128 + SIGKILL);  // mid-stream: the writers are still sending
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  } else {
    pid_t core = CorePid(s.pid);
    ASSERT_GT(core, 0);
    killed = true;
    ASSERT_EQ(::kill(core, SIGKILL), 0);
    // The server restarts its core sealed and the dev keepers release to it again: the stream
    // goes on through the same server.
    size_t before;
    {
      std::lock_guard<std::mutex> lock(mu);
      before = acked.size();
    }
    wait_for_acks(before + 40);
  }
  stop = true;
  for (auto& w : writers) w.join();
  std::vector<Ack> snapshot;
  std::set<std::string> ids;
  {
    std::lock_guard<std::mutex> lock(mu);
    snapshot = acked;
    ids = acked_ids;
  }
  ASSERT_GE(snapshot.size(), 20u);
  EXPECT_GT(failures.load(), 0) << "the kill did not interrupt the stream";
  if (victim == Victim::kCore) {
    EXPECT_GT(after_kill.load(), 0) << "the core did not come back";
  }

  if (victim == Victim::kServer) {
    s = DevServer::Start(dir);  // restart: keepers release, the core unseals
    ASSERT_GT(s.pid, 0);
  }
  kms::KmsClient c = s.Client();
  size_t keys = 0, ciphertexts = 0;
  for (const Ack& a : snapshot) {
    if (a.blob.empty()) {
      json d = Ok(c, "DescribeKey", {{"KeyId", a.key_id}});
      EXPECT_EQ(d["KeyMetadata"]["KeyState"], "Enabled") << a.key_id;
      ++keys;
      continue;
    }
    json dec = Ok(c, "Decrypt", {{"CiphertextBlob", a.blob}, {"EncryptionContext", {{"n", a.context}}}});
    EXPECT_EQ(dec["Plaintext"], a.plaintext) << "an acknowledged ciphertext no longer decrypts";
    ++ciphertexts;
  }
  EXPECT_EQ(s.Stop(), 0);
  // Every acknowledged request has its entry, and the chain, including what was written up to
  // the kill and signed only after it, verifies.
  std::set<std::string> audited = AuditedRequestIds(dir);
  size_t missing = 0;
  for (const std::string& id : ids) missing += audited.count(id) == 0;
  EXPECT_EQ(missing, 0u) << "acknowledged requests without an audit entry";
  std::cerr << "[ crash ] " << (victim == Victim::kServer ? "server" : "core")
            << " killed: " << keys << " keys, " << ciphertexts << " ciphertexts and " << ids.size()
            << " acknowledged requests (" << after_kill.load()
            << " after the kill); all present, all audited\n";
  RunResult v = AuditVerify(dir + "/server");
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

// The server runs requests on fibers: data calls suspend in their core call holding the key
// cache's shared lock, while state changes take it exclusively on the same I/O threads (one per
// CPU). Mixed, from many connections at once, every call must succeed and none may stall.
TEST(KmsE2E, StateChangesAndDataCallsMixOnTheSameIoThreadsWithoutStalling) {
  std::string dir = testing::TempDir() + "/dev";
  DevServer s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  kms::KmsClient admin = s.Client();
  const std::string hot = Ok(admin, "CreateKey", json::object())["KeyMetadata"]["KeyId"];
  const std::string flipped = Ok(admin, "CreateKey", json::object())["KeyMetadata"]["KeyId"];
  std::atomic<bool> stop{false};
  std::atomic<int> data_calls{0}, changes{0}, failures{0};
  std::mutex mu;
  std::string first_failure;
  auto fail = [&](const std::string& what) {
    ++failures;
    std::lock_guard<std::mutex> lock(mu);
    if (first_failure.empty()) first_failure = what;
  };
  auto data = [&] {
    kms::KmsClient c = s.Client();
    while (!stop) {
      auto e = c.Call("Encrypt", {{"KeyId", hot}, {"Plaintext", Base64Encode(crypto::RandomBytes(32))}});
      if (!e.ok() || !e->ok()) return fail("Encrypt: " + (e.ok() ? e->body.dump() : e.status().message()));
      auto d = c.Call("Decrypt", {{"CiphertextBlob", e->body["CiphertextBlob"]}});
      if (!d.ok() || !d->ok()) return fail("Decrypt: " + (d.ok() ? d->body.dump() : d.status().message()));
      data_calls += 2;
    }
  };
  auto change = [&](int n) {
    kms::KmsClient c = s.Client();
    for (int i = 0; !stop; ++i) {
      for (auto [op, body] : std::vector<std::pair<std::string, json>>{
               {"DisableKey", {{"KeyId", flipped}}},
               {"EnableKey", {{"KeyId", flipped}}},
               {"TagResource", {{"KeyId", hot}, {"Tags", {{{"TagKey", "t" + std::to_string(n)}, {"TagValue", std::to_string(i)}}}}}},
               {"CreateKey", {{"Description", "mixed " + std::to_string(n)}}}}) {
        auto r = c.Call(op, body);
        // DisableKey/EnableKey of the two changers interleave: either order is fine, a refusal
        // is not.
        if (!r.ok() || !r->ok()) return fail(op + ": " + (r.ok() ? r->body.dump() : r.status().message()));
        ++changes;
      }
    }
  };
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) threads.emplace_back(data);
  for (int i = 0; i < 2; ++i) threads.emplace_back(change, i);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0) << first_failure;
  EXPECT_GT(data_calls.load(), 100);
  EXPECT_GT(changes.load(), 20);
  std::cerr << "[ mixed ] " << data_calls.load() << " data calls and " << changes.load()
            << " state changes in 3 s, no failure\n";
  EXPECT_EQ(s.Stop(), 0);
}

TEST(KmsE2E, KillDashNineOfTheServerLosesNothingAcknowledged) {
  KillDashNineUnderLoad(Victim::kServer);
}

TEST(KmsE2E, KillDashNineOfTheTrustedCoreLosesNothingAcknowledged) {
  KillDashNineUnderLoad(Victim::kCore);
}

TEST(KmsE2E, AuditVerifyDetectsAnEditedDatabase) {
  std::string dir = testing::TempDir() + "/dev";
  DevServer s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  kms::KmsClient c = s.Client();
  std::string id = Ok(c, "CreateKey", json::object())["KeyMetadata"]["KeyId"];
  for (int i = 0; i < 5; ++i) Ok(c, "Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}});
  EXPECT_EQ(ErrorOf(c, "DescribeKey", {{"KeyId", "alias/none"}}), "NotFoundException");
  ASSERT_EQ(s.Stop(), 0);
  RunResult ok = AuditVerify(dir + "/server");
  ASSERT_EQ(ok.code, 0) << ok.out << ok.err;
  EXPECT_THAT(ok.out, HasSubstr("\"intact\": true"));
  // Rewrite what one entry says (the principal of the third request).
  std::string db = dir + "/server/custos.db";
  std::string sql = "UPDATE audit SET entry = replace(entry, 'user/dev', 'user/someone-else') WHERE seq = 3;";
  pid_t p = Spawn({"/usr/bin/sqlite3", db, sql}, {}, dir + "/sql.out", dir + "/sql.err");
  int st = 0;
  waitpid(p, &st, 0);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << ReadAll(dir + "/sql.err");
  RunResult bad = AuditVerify(dir + "/server");
  EXPECT_NE(bad.code, 0);
  EXPECT_THAT(bad.out + bad.err, HasSubstr("entry 3"));
  // A deleted entry is detected too.
  p = Spawn({"/usr/bin/sqlite3", db, "DELETE FROM audit WHERE seq = 5;"}, {}, dir + "/sql.out", dir + "/sql.err");
  waitpid(p, &st, 0);
  RunResult gone = AuditVerify(dir + "/server");
  EXPECT_NE(gone.code, 0);
}

// Customer-witnessed audit in dev mode (issue 16): the in-process keepers witness the audit
// chain (at every release, every 5 s, and at stop). A restart on the database as it was keeps
// unsealing; a restart on an older copy of it (deleted keys back) is refused by the keepers,
// naming the rollback, and `audit verify --witness` says the same.
TEST(KmsE2E, DevKeepersRefuseADatabaseRolledBackToAnOlderCopy) {
  std::string dir = testing::TempDir() + "/dev-witness";
  DevServer s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  std::string doomed;
  {
    kms::KmsClient c = s.Client();
    doomed = Ok(c, "CreateKey", json::object())["KeyMetadata"]["KeyId"];
    for (int i = 0; i < 3; ++i) Ok(c, "CreateKey", json::object());
  }
  s.Stop();
  fs::copy(dir + "/server", dir + "-old", fs::copy_options::recursive);
  // A normal restart unseals; the key is scheduled for deletion, which a rollback would undo.
  s = DevServer::Start(dir);
  ASSERT_GT(s.pid, 0);
  {
    kms::KmsClient c = s.Client();
    Ok(c, "ScheduleKeyDeletion", {{"KeyId", doomed}, {"PendingWindowInDays", 7}});
    for (int i = 0; i < 3; ++i) Ok(c, "CreateKey", json::object());
  }
  s.Stop();
  json witnessed = json::parse(ReadAll(dir + "/keepers/P1/witness.json"), nullptr, false);
  ASSERT_TRUE(witnessed.is_object()) << ReadAll(dir + "/keepers/P1/witness.json");
  uint64_t seq = witnessed["custodies"].begin().value()["logs"][""]["seq"].get<uint64_t>();
  EXPECT_GE(seq, 8u);  // the head at the second stop: 4 + 4 requests

  fs::remove_all(dir + "/server");
  fs::copy(dir + "-old", dir + "/server", fs::copy_options::recursive);
  pid_t p = Spawn({Bin(), "server", "--dev", "--listen", "127.0.0.1:0", "--data-dir", dir}, {}, dir + ".rolled.out",
                  dir + ".rolled.err");
  int st = 0;
  waitpid(p, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  std::string err = ReadAll(dir + ".rolled.err");
  EXPECT_THAT(err, HasSubstr("release from keeper"));
  EXPECT_THAT(err, HasSubstr("audit rollback: log '' ends at signed head seq"));
  EXPECT_THAT(err, HasSubstr("before seq " + std::to_string(seq) + " this keeper witnessed"));
  EXPECT_FALSE(fs::exists(dir + "/dev.env"));
  pid_t v = Spawn({Bin(), "audit", "verify", "--data-dir", dir, "--witness", dir + "/keepers/C1/witness.json"}, {},
                  dir + ".verify.out", dir + ".verify.err");
  waitpid(v, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) != 0);
  EXPECT_THAT(ReadAll(dir + ".verify.out"), HasSubstr("(truncated or rolled back)"));
}

}  // namespace
}  // namespace custos::e2e
