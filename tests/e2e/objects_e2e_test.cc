// `custos put|get|ls|rm` end to end, as a user runs them: real `custos` processes against a real
// S3-compatible server (s3rver, started here) and a directory, in both key modes — appliance
// (a real `custos server --dev` KMS: GenerateDataKey / Decrypt) and dual control (real keeper
// processes of both domains after a DKG). Shown: round trips of 0 B, 1 B, one chunk, one chunk
// + 1 B and a large object (100 MiB; CUSTOS_E2E_LARGE_MIB) with bounded memory; ranged reads at
// chunk edges; and every alteration of a stored object (a flipped byte, truncation, reordered or
// swapped chunks, a header moved to another object) fails with a clear error and leaves no file.
#include <fstream>
#include <regex>

#include "gmock/gmock.h"
#include "tests/e2e/harness.h"
#include "tests/testing/s3rver.h"

namespace custos {
namespace {

namespace fs = std::filesystem;
using namespace e2e;
using ::testing::HasSubstr;

constexpr size_t kChunk = 64 * 1024;  // the default chunk size

Bytes ReadBytes(const std::string& path) { return custos::testing::ReadFileBytes(path); }
void WriteBytes(const std::string& path, ByteSpan b) { custos::testing::WriteFileBytes(path, b); }
class Objects : public ::testing::Test {
 protected:
  static Cluster* c;
  static std::unique_ptr<testing::S3rverProcess> s3;
  static DevServer* dev;
  static std::string custody, store;

  static void SetUpTestSuite() {
    c = new Cluster();
    StartCoCustody(*c, custody);
    if (HasFatalFailure()) return;

    auto started = testing::S3rverProcess::Start({"bucket", "other"});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    s3 = std::move(*started);

    dev = new DevServer(DevServer::Start(c->P("dev")));
    ASSERT_FALSE(dev->endpoint.empty());
    kms::KmsClient k = dev->Client();
    auto key = k.CallOrError("CreateKey", {{"Description", "objects e2e"}});
    ASSERT_OK(key.status());
    ASSERT_OK(k.CallOrError("CreateAlias", {{"AliasName", "alias/objects"},
                                            {"TargetKeyId", (*key)["KeyMetadata"]["KeyId"]}}).status());
    auto key2 = k.CallOrError("CreateKey", {{"Description", "another key"}});
    ASSERT_OK(key2.status());
    ASSERT_OK(k.CallOrError("CreateAlias", {{"AliasName", "alias/other"},
                                            {"TargetKeyId", (*key2)["KeyMetadata"]["KeyId"]}}).status());

    // What a user's shell would hold: S3 credentials for the store, the appliance's for the KMS.
    c->env["AWS_ENDPOINT_URL"] = s3->endpoint();
    c->env["AWS_ACCESS_KEY_ID"] = testing::S3rverProcess::access_key_id();
    c->env["AWS_SECRET_ACCESS_KEY"] = testing::S3rverProcess::secret_access_key();
    c->env["AWS_REGION"] = "us-east-1";
    c->env["CUSTOS_ENDPOINT"] = dev->endpoint;
    c->env["CUSTOS_ACCESS_KEY_ID"] = dev->env.at("AWS_ACCESS_KEY_ID");
    c->env["CUSTOS_SECRET_ACCESS_KEY"] = dev->env.at("AWS_SECRET_ACCESS_KEY");
    store = c->P("store");
    fs::create_directories(store);
  }
  static void TearDownTestSuite() {
    if (dev) dev->Stop();
    delete dev;
    dev = nullptr;
    s3.reset();
    delete c;
  }

  // Mode arguments: appliance (--key) or dual control (--custody; get adds the client key).
  static std::vector<std::string> PutMode(const std::string& mode) {
    if (mode == "appliance") return {"--key", "alias/objects"};
    return {"--custody", custody};
  }
  static std::vector<std::string> GetMode(const std::string& mode) {
    if (mode == "appliance") return {};
    return {"--custody", custody, "--client-key", c->P("app.key")};
  }
  static std::string Remote(const std::string& where, const std::string& key) {
    return where == "s3" ? "s3://bucket/" + key : "file://" + store + "/" + key;
  }
  // Put and Get run the command through GNU time, so r.max_rss_kib is the command's own peak.
  RunResult Put(const std::string& src, const std::string& remote, std::vector<std::string> extra) {
    std::vector<std::string> args = {"put", src, remote, "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return c->RunMeasured(args);
  }
  RunResult Get(const std::string& remote, const std::string& dest, std::vector<std::string> extra) {
    std::vector<std::string> args = {"get", remote, dest, "--quiet"};
    args.insert(args.end(), extra.begin(), extra.end());
    return c->RunMeasured(args);
  }
  // NoFileBesides checks that the destination does not exist and no temporary file was left.
  void ExpectNoOutput(const std::string& dest) {
    EXPECT_FALSE(fs::exists(dest)) << dest;
    for (const auto& e : fs::directory_iterator(fs::path(dest).parent_path()))
      EXPECT_EQ(e.path().filename().string().rfind(".custos", 0), std::string::npos) << e.path();
  }
};
Cluster* Objects::c = nullptr;
std::unique_ptr<testing::S3rverProcess> Objects::s3;
DevServer* Objects::dev = nullptr;
std::string Objects::custody, Objects::store;

TEST_F(Objects, SmallObjectsRoundTripInBothModesOnS3AndADirectory) {
  for (const std::string where : {"s3", "file"})
    for (const std::string mode : {"appliance", "dual"})
      for (size_t n : {size_t{0}, size_t{1}, kChunk, kChunk + 1}) {
        SCOPED_TRACE(where + " " + mode + " " + std::to_string(n));
        std::string src = c->P("small-" + std::to_string(n));
        WriteBytes(src, crypto::RandomBytes(n));
        std::string remote = Remote(where, mode + "/small-" + std::to_string(n));
        auto r = Put(src, remote, PutMode(mode));
        ASSERT_EQ(r.code, 0) << r.err;
        std::string out = c->P("small.out");
        fs::remove(out);
        r = Get(remote, out, GetMode(mode));
        ASSERT_EQ(r.code, 0) << r.err;
        EXPECT_EQ(ReadBytes(out), ReadBytes(src));
        // Stored bytes are not the plaintext: header (>= 53 B) and one 16-byte tag per chunk.
        r = Get(remote, c->P("stored.raw"), {"--plain"});
        ASSERT_EQ(r.code, 0) << r.err;
        Bytes stored = ReadBytes(c->P("stored.raw"));
        EXPECT_EQ(ToString(ByteSpan(stored).first(8)), "CUSTOSOB");
        EXPECT_GE(stored.size(), n + 53 + 16 * (n / kChunk + 1));
      }
}

TEST_F(Objects, LargeObjectRoundTripsInBothModesWithBoundedMemory) {
  const char* mib = std::getenv("CUSTOS_E2E_LARGE_MIB");
  const size_t large = (mib ? std::stoul(mib) : 100) << 20;
  std::string src = c->P("large.bin");
  WriteRandomFile(src, large + 12345);  // not a whole number of chunks
  for (const std::string where : {"s3", "file"})
    for (const std::string mode : {"appliance", "dual"}) {
      SCOPED_TRACE(where + " " + mode);
      std::string remote = Remote(where, mode + "/large.bin");
      auto r = Put(src, remote, PutMode(mode));
      ASSERT_EQ(r.code, 0) << r.err;
      // Memory stays bounded whatever the object size: a few chunks per part in flight. (Checked
      // where the object is larger than the bound; sanitizer runs use small objects.)
      if (large >= (96u << 20)) {
        EXPECT_GT(r.max_rss_kib, 0) << "no peak RSS measured";
        EXPECT_LT(r.max_rss_kib, 96 * 1024) << "put peak RSS";
      }
      std::string out = c->P("large.out");
      fs::remove(out);
      r = Get(remote, out, GetMode(mode));
      ASSERT_EQ(r.code, 0) << r.err;
      if (large >= (96u << 20)) {
        EXPECT_LT(r.max_rss_kib, 96 * 1024) << "get peak RSS";
      }
      EXPECT_TRUE(SameFile(src, out));
      fs::remove(out);
    }
  // S3 multipart: the large S3 object is listed with the size its header describes.
  auto r = c->Run({"ls", "s3://bucket/appliance/"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("appliance/large.bin"));
}

TEST_F(Objects, RangedReadsAtChunkEdgesMatchThePlaintext) {
  const size_t n = 5 * kChunk + 100;
  std::string src = c->P("ranged.bin");
  WriteBytes(src, crypto::RandomBytes(n));
  Bytes all = ReadBytes(src);
  for (const std::string where : {"s3", "file"})
    for (const std::string mode : {"appliance", "dual"}) {
      std::string remote = Remote(where, mode + "/ranged.bin");
      auto r = Put(src, remote, PutMode(mode));
      ASSERT_EQ(r.code, 0) << r.err;
      for (auto [first, last] : std::vector<std::pair<size_t, size_t>>{{0, 0},
                                                                       {kChunk - 1, kChunk - 1},
                                                                       {kChunk - 1, kChunk},
                                                                       {kChunk, 2 * kChunk - 1},
                                                                       {2 * kChunk - 1, 4 * kChunk},
                                                                       {5 * kChunk, n - 1},
                                                                       {n - 1, n - 1},
                                                                       {3, n + 500}}) {
        SCOPED_TRACE(where + " " + mode + " " + std::to_string(first) + "-" + std::to_string(last));
        std::string out = c->P("range.out");
        std::vector<std::string> args = GetMode(mode);
        args.push_back("--range");
        args.push_back(std::to_string(first) + "-" + std::to_string(last));
        r = Get(remote, out, args);
        ASSERT_EQ(r.code, 0) << r.err;
        size_t end = std::min(last + 1, n);
        EXPECT_EQ(ReadBytes(out), Bytes(all.begin() + static_cast<long>(first), all.begin() + static_cast<long>(end)));
      }
      // "FIRST-" reads to the end; a range past the end is refused.
      r = Get(remote, c->P("tail.out"), [&] {
        auto v = GetMode(mode);
        v.insert(v.end(), {"--range", std::to_string(n - 10) + "-"});
        return v;
      }());
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(ReadBytes(c->P("tail.out")).size(), 10u);
      r = Get(remote, c->P("past.out"), [&] {
        auto v = GetMode(mode);
        v.insert(v.end(), {"--range", std::to_string(n) + "-"});
        return v;
      }());
      EXPECT_EQ(r.code, 1);
      EXPECT_THAT(r.err, HasSubstr("--range starts at byte"));
      ExpectNoOutput(c->P("past.out"));
    }
}

// Alterations are made to the stored bytes (directly in the directory store; through
// `put --plain` on S3) and every download must fail, say why, and write nothing.
TEST_F(Objects, AlteredObjectsFailWithAClearErrorAndNoFile) {
  const size_t n = 4 * kChunk + 777;
  for (const std::string where : {"file", "s3"})
    for (const std::string mode : {"appliance", "dual"}) {
      std::string a_src = c->P("a.bin"), b_src = c->P("b.bin");
      WriteBytes(a_src, crypto::RandomBytes(n));
      WriteBytes(b_src, crypto::RandomBytes(n));
      std::string a = Remote(where, mode + "/a"), b = Remote(where, mode + "/b");
      ASSERT_EQ(Put(a_src, a, PutMode(mode)).code, 0);
      ASSERT_EQ(Put(b_src, b, PutMode(mode)).code, 0);
      ASSERT_EQ(Get(a, c->P("a.raw"), {"--plain"}).code, 0);
      ASSERT_EQ(Get(b, c->P("b.raw"), {"--plain"}).code, 0);
      const Bytes ra = ReadBytes(c->P("a.raw")), rb = ReadBytes(c->P("b.raw"));
      ASSERT_EQ(ra.size(), rb.size());
      const size_t body = 5 * (kChunk + 16) - (kChunk - 777);  // 4 full chunks + a 777-byte one
      const size_t h = ra.size() - body;
      auto piece = [](const Bytes& o, size_t begin, size_t end) {
        return Bytes(o.begin() + static_cast<long>(begin), o.begin() + static_cast<long>(std::min(end, o.size())));
      };
      auto chunk = [&](const Bytes& o, size_t i) { return piece(o, h + i * (kChunk + 16), h + (i + 1) * (kChunk + 16)); };
      struct Case {
        std::string name, expect;
        Bytes bytes;
      };
      std::vector<Case> cases;
      for (size_t pos : {size_t{12}, size_t{30}, size_t{45}, h - 1, h + 5, h + kChunk + 15, ra.size() - 1}) {
        Bytes t = ra;
        t[pos] ^= 0x20;
        cases.push_back({"flip@" + std::to_string(pos), "", t});
      }
      cases.push_back({"truncated at a chunk boundary", "truncated or extended", piece(ra, 0, h + 4 * (kChunk + 16))});
      cases.push_back({"truncated by one byte", "truncated or extended", piece(ra, 0, ra.size() - 1)});
      cases.push_back({"chunks 1 and 2 swapped", "does not authenticate",
                       Concat({piece(ra, 0, h), chunk(ra, 0), chunk(ra, 2), chunk(ra, 1), chunk(ra, 3), chunk(ra, 4)})});
      cases.push_back({"chunk 3 from another object", "does not authenticate",
                       Concat({piece(ra, 0, h), chunk(ra, 0), chunk(ra, 1), chunk(ra, 2), chunk(rb, 3), chunk(ra, 4)})});
      cases.push_back({"header moved to another object", "does not authenticate",
                       Concat({piece(ra, 0, h), piece(rb, h, rb.size())})});
      for (const Case& t : cases) {
        SCOPED_TRACE(where + " " + mode + " " + t.name);
        std::string tampered = c->P("tampered.raw");
        WriteBytes(tampered, t.bytes);
        std::string remote = Remote(where, mode + "/tampered");
        ASSERT_EQ(Put(tampered, remote, {"--plain"}).code, 0);
        std::string out = c->P("tampered.out");
        auto r = Get(remote, out, GetMode(mode));
        EXPECT_EQ(r.code, 1);
        EXPECT_THAT(r.err, ::testing::StartsWith("custos: error: "));
        EXPECT_THAT(r.err, HasSubstr("(no file written)"));
        if (!t.expect.empty()) {
          EXPECT_THAT(r.err, HasSubstr(t.expect));
        }
        ExpectNoOutput(out);
      }
      // The untouched object still downloads.
      auto r = Get(a, c->P("a.out"), GetMode(mode));
      ASSERT_EQ(r.code, 0) << r.err;
      EXPECT_EQ(ReadBytes(c->P("a.out")), ReadBytes(a_src));
    }
}

TEST_F(Objects, RefusalsNameWhatIsWrong) {
  std::string src = c->P("refusal.bin");
  WriteBytes(src, crypto::RandomBytes(1000));
  // No mode, two modes.
  auto r = Put(src, "s3://bucket/x", {});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("exactly one of --key"));
  // An appliance object fetched with another key: the KMS refuses (IncorrectKeyException).
  ASSERT_EQ(Put(src, "s3://bucket/refusal", {"--key", "alias/objects"}).code, 0);
  r = Get("s3://bucket/refusal", c->P("r.out"), {"--key", "alias/other"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("IncorrectKeyException"));
  ExpectNoOutput(c->P("r.out"));
  // A dual-control object with one domain alone: the provider keeper only.
  ASSERT_EQ(Put(src, "s3://bucket/dual-refusal", {"--custody", custody}).code, 0);
  r = Get("s3://bucket/dual-refusal", c->P("d.out"), {"--custody", custody, "--client-key", c->P("app.key"), "--keepers", "P1"});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("customer"));
  ExpectNoOutput(c->P("d.out"));
  // A dual-control object without --custody.
  r = Get("s3://bucket/dual-refusal", c->P("d.out"), {});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("dual control"));
  // A plain object without --plain.
  ASSERT_EQ(Put(src, "s3://bucket/plain", {"--plain"}).code, 0);
  r = Get("s3://bucket/plain", c->P("p.out"), {});
  EXPECT_EQ(r.code, 1);
  EXPECT_THAT(r.err, HasSubstr("not a custos object"));
  ExpectNoOutput(c->P("p.out"));
  // Missing object and bucket.
  r = Get("s3://bucket/none", c->P("n.out"), {});
  EXPECT_EQ(r.code, 1);
  r = Get("s3://no-such-bucket/none", c->P("n.out"), {});
  EXPECT_EQ(r.code, 1);
  // The secrets never reach the output.
  for (const std::string& secret : {dev->env.at("AWS_SECRET_ACCESS_KEY")}) EXPECT_THAT(r.err, ::testing::Not(HasSubstr(secret)));
}

TEST_F(Objects, ListAndRemove) {
  std::string src = c->P("ls.bin");
  WriteBytes(src, crypto::RandomBytes(2000));
  for (const std::string where : {"s3", "file"}) {
    SCOPED_TRACE(where);
    ASSERT_EQ(Put(src, Remote(where, "ls/one"), {"--key", "alias/objects"}).code, 0);
    ASSERT_EQ(Put(src, Remote(where, "ls/two"), {"--plain"}).code, 0);
    ASSERT_EQ(Put(src, Remote(where, "ls/"), {"--plain"}).code, 0);  // trailing '/': the file name
    auto r = c->Run({"ls", Remote(where, "ls/")});
    ASSERT_EQ(r.code, 0) << r.err;
    // S3 lists keys; a directory lists paths relative to it.
    const std::string prefix = where == "s3" ? "ls/" : "";
    EXPECT_THAT(r.out, HasSubstr("  " + prefix + "one\n"));
    EXPECT_THAT(r.out, HasSubstr(" 2000  " + prefix + "two\n"));
    EXPECT_THAT(r.out, HasSubstr("  " + prefix + "ls.bin\n"));
    r = c->Run({"rm", Remote(where, "ls/two")});
    ASSERT_EQ(r.code, 0) << r.err;
    r = c->Run({"ls", Remote(where, "ls/")});
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("two")));
    r = c->Run({"rm", Remote(where, "ls/two")});
    EXPECT_EQ(r.code, 1);
  }
}

// On a terminal, put and get draw a progress line with rate and ETA; --quiet draws nothing.
// util-linux `script` gives the command a pseudo-terminal.
TEST_F(Objects, ProgressBarOnATerminalAndQuietForScripts) {
  std::string src = c->P("progress.bin");
  WriteRandomFile(src, 48u << 20);
  int seq = 0;
  auto on_tty = [&](const std::string& cmd) {
    RunResult r;
    std::string base = c->P("tty" + std::to_string(seq++));
    pid_t pid = Spawn({"/usr/bin/script", "-qec", cmd, "/dev/null"}, c->env, base + ".out", base + ".err");
    int status = 0;
    if (pid > 0 && waitpid(pid, &status, 0) == pid) r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
    r.out = ReadAll(base + ".out");  // the terminal's output: stdout and stderr together
    r.err = ReadAll(base + ".err");
    return r;
  };
  std::string put = Bin() + " put " + src + " s3://bucket/progress.bin --key alias/objects --concurrency 1";
  auto r = on_tty(put);
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("\r"));
  EXPECT_THAT(r.out, HasSubstr("MiB/s"));
  EXPECT_THAT(r.out, ::testing::ContainsRegex("[0-9]+%"));
  // A line drawn before the end carries an ETA. Whether one is drawn depends on the speed of
  // the machine (lines come every 200 ms; an idle machine uploads 48 MiB faster than that), so
  // the ETA is asserted when an intermediate line exists; FormatProgress has its unit test.
  if (std::regex_search(r.out, std::regex("\\s[0-9]{1,2}%"))) {
    EXPECT_THAT(r.out, ::testing::ContainsRegex("ETA [0-9]+:[0-9][0-9]:[0-9][0-9]"));
  }
  EXPECT_THAT(r.out, HasSubstr("48.0 MiB / 48.0 MiB  100%"));  // the final state
  EXPECT_THAT(r.out, HasSubstr("upload: "));
  r = on_tty(Bin() + " get s3://bucket/progress.bin " + c->P("progress.out") + " --concurrency 1");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("100%"));
  EXPECT_THAT(r.out, HasSubstr("download: "));
  EXPECT_TRUE(SameFile(src, c->P("progress.out")));
  r = on_tty(put + " --quiet");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.out, "");
  // Not a terminal: no progress line, one summary line.
  r = c->Run({"put", src, "s3://bucket/progress.bin", "--key", "alias/objects"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");
  EXPECT_THAT(r.out, ::testing::StartsWith("upload: "));
}

}  // namespace
}  // namespace custos
