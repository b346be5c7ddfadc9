// Tests of both ObjectStore backends, the S3 XML parsers and ParseLocation. The S3 store is
// driven against a real s3rver (tests/testing/s3rver.h); the refusals a well-behaved server never
// provokes (short or ignored ranges) against a small scripted HTTP server in this file.
#include "client/objects/object_store.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "common/bytes.h"
#include "crypto/hash.h"
#include "gtest/gtest.h"
#include "client/objects/dir_store.h"
#include "client/objects/internal/s3_xml.h"
#include "client/objects/s3_store.h"
#include "tests/testing/s3rver.h"
#include "tests/testing/testing.h"

namespace custos::objects {
namespace {

namespace fs = std::filesystem;

constexpr uint64_t kMiB = 1 << 20;
constexpr char kBucket[] = "custos-objects-test";
constexpr char kTestSecret[] = "test-secret-never-in-messages/42";

std::vector<uint8_t> Pattern(size_t size, uint32_t seed) {
  std::vector<uint8_t> out(size);
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<uint8_t>(x >> 24);
  }
  return out;
}

std::vector<ByteRange> Parts(const std::vector<uint64_t>& lengths) {
  std::vector<ByteRange> parts;
  uint64_t offset = 0;
  for (uint64_t length : lengths) {
    parts.push_back({offset, length});
    offset += length;
  }
  return parts;
}

// MemorySource serves ranges of `data`, in pieces of at most 100 000 bytes (so a part takes
// several reads). When fail_at is set, a read that would reach that object offset fails.
class MemorySource : public RangeSource {
 public:
  explicit MemorySource(const std::vector<uint8_t>& data,
                        std::optional<uint64_t> fail_at = std::nullopt)
      : data_(data), fail_at_(fail_at) {}

  StatusOr<std::unique_ptr<BodySource>> Open(const ByteRange& range) override {
    opened_++;
    return std::unique_ptr<BodySource>(std::make_unique<Body>(this, range));
  }
  int opened() const { return opened_; }

 private:
  class Body : public BodySource {
   public:
    Body(MemorySource* owner, ByteRange range) : owner_(owner), range_(range) {}
    StatusOr<size_t> Read(std::span<uint8_t> out) override {
      size_t n = std::min<uint64_t>({out.size(), range_.length - done_, 100'000});
      uint64_t at = range_.offset + done_;
      if (owner_->fail_at_ && at <= *owner_->fail_at_ && *owner_->fail_at_ < at + n) {
        return InternalError("test source: disk vanished");
      }
      std::copy_n(owner_->data_.begin() + static_cast<ptrdiff_t>(at), n, out.begin());
      done_ += n;
      return n;
    }

   private:
    MemorySource* owner_;
    ByteRange range_;
    uint64_t done_ = 0;
  };

  const std::vector<uint8_t>& data_;
  std::optional<uint64_t> fail_at_;
  std::atomic<int> opened_{0};
};

// MemorySink collects each range it is asked for; Finish must come once, after all bytes.
class MemorySink : public RangeSink {
 public:
  StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) override {
    if (fail_open_) return Unavailable("test sink: refused");
    std::lock_guard<std::mutex> lock(mu_);
    received_[range.offset] = {};
    return std::unique_ptr<BodySink>(std::make_unique<Body>(this, range));
  }

  // Range returns what arrived for the range starting at `offset`, if it was finished.
  std::optional<std::vector<uint8_t>> Range(uint64_t offset) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!finished_.contains(offset)) return std::nullopt;
    return received_[offset];
  }
  size_t opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_.size();
  }
  bool fail_open_ = false;
  bool fail_write_ = false;

 private:
  class Body : public BodySink {
   public:
    Body(MemorySink* owner, ByteRange range) : owner_(owner), range_(range) {}
    Status Write(std::span<const uint8_t> bytes) override {
      if (owner_->fail_write_) return PermissionDenied("test sink: disk full");
      std::lock_guard<std::mutex> lock(owner_->mu_);
      auto& v = owner_->received_[range_.offset];
      v.insert(v.end(), bytes.begin(), bytes.end());
      return Status::Ok();
    }
    Status Finish() override {
      std::lock_guard<std::mutex> lock(owner_->mu_);
      if (owner_->received_[range_.offset].size() != range_.length) {
        return InternalError("finished early");
      }
      if (!owner_->finished_.insert(range_.offset).second) return InternalError("finished twice");
      return Status::Ok();
    }

   private:
    MemorySink* owner_;
    ByteRange range_;
  };

  std::mutex mu_;
  std::map<uint64_t, std::vector<uint8_t>> received_;
  std::set<uint64_t> finished_;
};

std::vector<uint8_t> Slice(const std::vector<uint8_t>& data, const ByteRange& r) {
  return {data.begin() + static_cast<ptrdiff_t>(r.offset),
          data.begin() + static_cast<ptrdiff_t>(r.end())};
}

// ExpectRangesRead fetches `ranges` of `key` and checks each against `data`.
void ExpectRangesRead(ObjectStore& store, const std::string& key, const std::vector<uint8_t>& data,
                      const std::vector<ByteRange>& ranges) {
  MemorySink sink;
  TransferStats stats;
  ASSERT_OK(store.Get(key, ranges, sink, &stats));
  uint64_t total = 0;
  for (const ByteRange& r : ranges) {
    std::optional<std::vector<uint8_t>> got = sink.Range(r.offset);
    ASSERT_TRUE(got.has_value()) << "range " << r.offset << "+" << r.length << " not finished";
    EXPECT_TRUE(*got == Slice(data, r)) << "range " << r.offset << "+" << r.length;
    total += r.length;
  }
  EXPECT_EQ(stats.bytes.load(), total);
}

void PutBytes(ObjectStore& store, const std::string& key, const std::vector<uint8_t>& data) {
  MemorySource source(data);
  ASSERT_OK(store.Put(key, {{0, data.size()}}, source));
}

bool IsIso8601(const std::string& s) {
  return std::regex_match(s, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"));
}

// ---------------------------------------------------------------------------------------------
// S3 against s3rver.

class S3StoreTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto started = custos::testing::S3rverProcess::Start({kBucket});
    ASSERT_TRUE(started.ok()) << started.status().ToString();
    server_ = std::move(started).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(server_, nullptr) << "s3rver did not start"; }

  static S3Options Options(int concurrency = 4) {
    S3Options options;
    options.endpoint = server_->endpoint();
    options.access_key_id = custos::testing::S3rverProcess::access_key_id();
    // s3rver accepts any secret; a distinct one lets the tests look for it in messages.
    options.secret_access_key = kTestSecret;
    options.concurrency = concurrency;
    return options;
  }
  static std::unique_ptr<ObjectStore> Store(int concurrency = 4, const char* bucket = kBucket) {
    auto store = OpenS3Store(bucket, Options(concurrency));
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  static custos::testing::S3rverProcess* server_;
};

custos::testing::S3rverProcess* S3StoreTest::server_ = nullptr;

TEST_F(S3StoreTest, RoundTripsEmptyOneByteAndSinglePutObjects) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  for (size_t size : {size_t{0}, size_t{1}, size_t{3 * kMiB + 5}}) {
    SCOPED_TRACE(size);
    std::string key = "round-trip/" + std::to_string(size) + ".bin";
    std::vector<uint8_t> data = Pattern(size, static_cast<uint32_t>(size));
    MemorySource source(data);
    TransferStats stats;
    ASSERT_OK(store->Put(key, {{0, size}}, source, &stats));
    EXPECT_EQ(stats.bytes.load(), size);
    EXPECT_EQ(stats.requests.load(), 1u);  // one PUT
    auto info = store->Head(key);
    ASSERT_OK(info.status());
    EXPECT_EQ(info->key, key);
    EXPECT_EQ(info->size, size);
    EXPECT_TRUE(IsIso8601(info->last_modified)) << info->last_modified;
    ExpectRangesRead(*store, key, data, {{0, size}});
    // The first bytes and the size in one call, whatever the size (s3rver answers a range on an
    // empty object in a way libcurl refuses; the store then falls back to HEAD).
    auto prefix = store->GetPrefix(key, 4000);
    ASSERT_OK(prefix.status());
    EXPECT_EQ(prefix->info.size, size);
    EXPECT_EQ(prefix->bytes,
              Bytes(data.begin(), data.begin() + static_cast<long>(std::min<size_t>(size, 4000))));
    if (size > 1) {
      // Not {0, 1}: s3rver 3.7.1 reads "bytes=0-0" as "bytes=0-" and sends the whole object
      // (which the store rightly refuses as kIntegrity).
      ExpectRangesRead(*store, key, data, {{0, 2}, {1, 1000}, {size - 7, 7}, {size / 2, 0}});
    }
  }
}

TEST_F(S3StoreTest, MultipartUploadReassemblesAndRangesReadBack) {
  auto store = Store(/*concurrency=*/2);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->concurrency(), 2);
  std::vector<ByteRange> parts = Parts({5 * kMiB, 5 * kMiB, 5 * kMiB, 12'345});
  uint64_t size = parts.back().end();
  std::vector<uint8_t> data = Pattern(size, 7);
  MemorySource source(data);
  TransferStats stats;
  ASSERT_OK(store->Put("multi/object.bin", parts, source, &stats));
  EXPECT_EQ(source.opened(), 4);
  EXPECT_EQ(stats.bytes.load(), size);
  EXPECT_EQ(stats.requests.load(), 6u);  // create, 4 parts, complete
  auto info = store->Head("multi/object.bin");
  ASSERT_OK(info.status());
  EXPECT_EQ(info->size, size);
  // Ranges inside a part, across part boundaries, the tail, and all of it.
  ExpectRangesRead(*store, "multi/object.bin", data,
                   {{0, 100},
                    {5 * kMiB - 10, 20},
                    {7 * kMiB, 6 * kMiB},
                    {size - 12'345, 12'345},
                    {size - 1, 1}});
  ExpectRangesRead(*store, "multi/object.bin", data, {{0, size}});
}

TEST_F(S3StoreTest, PutReplacesAnExistingObject) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  PutBytes(*store, "replace.bin", Pattern(100, 1));
  std::vector<uint8_t> second = Pattern(50, 2);
  PutBytes(*store, "replace.bin", second);
  ExpectRangesRead(*store, "replace.bin", second, {{0, 50}});
}

TEST_F(S3StoreTest, KeysWithReservedCharactersRoundTrip) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  const std::string key = "odd/with space+plus&amp=eq,comma;semi(\xc3\xa9)~tilde.bin";
  std::vector<uint8_t> data = Pattern(1000, 3);
  PutBytes(*store, key, data);
  ExpectRangesRead(*store, key, data, {{10, 990}});
  auto listed = store->List("odd/");
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].key, key);
}

TEST_F(S3StoreTest, ListReturnsPrefixedKeysSortedWithSizes) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  PutBytes(*store, "list/b", Pattern(2, 1));
  PutBytes(*store, "list/a", Pattern(1, 1));
  PutBytes(*store, "list/c/d", Pattern(3, 1));
  PutBytes(*store, "listing-not-this", Pattern(4, 1));
  auto listed = store->List("list/");
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->size(), 3u);
  EXPECT_EQ((*listed)[0].key, "list/a");
  EXPECT_EQ((*listed)[0].size, 1u);
  EXPECT_EQ((*listed)[1].key, "list/b");
  EXPECT_EQ((*listed)[2].key, "list/c/d");
  EXPECT_EQ((*listed)[2].size, 3u);
  for (const ObjectInfo& info : *listed) EXPECT_TRUE(IsIso8601(info.last_modified));
  auto none = store->List("no-such-prefix/");
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
  auto everything = store->List("");
  ASSERT_OK(everything.status());
  EXPECT_GE(everything->size(), 4u);
  EXPECT_TRUE(std::is_sorted(everything->begin(), everything->end(),
                             [](auto& a, auto& b) { return a.key < b.key; }));
}

TEST_F(S3StoreTest, DeleteRemovesAndRefusesWhatIsAbsent) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  PutBytes(*store, "delete-me", Pattern(10, 1));
  ASSERT_OK(store->Delete("delete-me"));
  EXPECT_EQ(store->Head("delete-me").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store->Delete("delete-me").code(), ErrorCode::kNotFound);
}

TEST_F(S3StoreTest, MissingKeyIsNotFoundAndOpensNoSink) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  MemorySink sink;
  Status status = store->Get("never-written", {{0, 1}}, sink);
  EXPECT_EQ(status.code(), ErrorCode::kNotFound) << status.ToString();
  EXPECT_NE(status.message().find("s3://custos-objects-test/never-written"), std::string::npos)
      << status.message();
  EXPECT_EQ(sink.opened(), 0u);
  EXPECT_EQ(store->Head("never-written").status().code(), ErrorCode::kNotFound);
}

TEST_F(S3StoreTest, MissingBucketIsNotFoundWithTheServiceReason) {
  auto store = Store(4, "no-such-bucket-here");
  ASSERT_NE(store, nullptr);
  std::vector<uint8_t> data = Pattern(10, 1);
  MemorySource source(data);
  Status put = store->Put("k", {{0, 10}}, source);
  EXPECT_EQ(put.code(), ErrorCode::kNotFound) << put.ToString();
  EXPECT_NE(put.message().find("s3://no-such-bucket-here/k: PUT failed: NoSuchBucket"),
            std::string::npos)
      << put.message();
  EXPECT_NE(put.message().find("(HTTP 404)"), std::string::npos) << put.message();
  EXPECT_EQ(put.message().find(kTestSecret), std::string::npos);
  auto listed = store->List("");
  EXPECT_EQ(listed.status().code(), ErrorCode::kNotFound) << listed.status().ToString();
  EXPECT_EQ(store->Head("k").status().code(), ErrorCode::kNotFound);
}

TEST_F(S3StoreTest, RangeBeyondTheObjectIsInvalidArgument) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  PutBytes(*store, "short", Pattern(100, 1));
  for (ByteRange bad :
       {ByteRange{90, 11}, ByteRange{100, 1}, ByteRange{101, 0}, ByteRange{UINT64_MAX, 2}}) {
    MemorySink sink;
    Status status = store->Get("short", {{0, 10}, bad}, sink);
    EXPECT_EQ(status.code(), ErrorCode::kInvalidArgument) << status.ToString();
    EXPECT_EQ(sink.opened(), 0u);
  }
}

TEST_F(S3StoreTest, FailingSourceFailsTheSinglePut) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  std::vector<uint8_t> data = Pattern(2 * kMiB, 1);
  MemorySource failing(data, /*fail_at=*/kMiB);
  TransferStats stats;
  Status status = store->Put("single-failed", {{0, data.size()}}, failing, &stats);
  EXPECT_EQ(status.code(), ErrorCode::kInternal) << status.ToString();
  EXPECT_NE(status.message().find("s3://custos-objects-test/single-failed: PUT failed"),
            std::string::npos)
      << status.message();
  EXPECT_NE(status.message().find("disk vanished"), std::string::npos) << status.message();
  // The store stops sending at the failure, short of the Content-Length it announced. S3
  // refuses such a request (IncompleteBody) and stores nothing; s3rver 3.7.1 does not compare
  // the body with Content-Length and keeps the truncated object, so "no object afterwards" is
  // not checkable against it for a single PUT. The multipart test below checks it where it is
  // the store's own doing (AbortMultipartUpload).
  EXPECT_LE(stats.bytes.load(), kMiB);
}

TEST_F(S3StoreTest, FailingPartAbortsTheMultipartUpload) {
  auto store = Store(/*concurrency=*/2);
  ASSERT_NE(store, nullptr);
  std::vector<ByteRange> parts = Parts({5 * kMiB, 5 * kMiB, 5 * kMiB, 100});
  std::vector<uint8_t> data = Pattern(parts.back().end(), 4);
  MemorySource failing(data, /*fail_at=*/11 * kMiB);  // inside the third part
  Status status = store->Put("multi/aborted.bin", parts, failing);
  EXPECT_EQ(status.code(), ErrorCode::kInternal) << status.ToString();
  EXPECT_NE(status.message().find("UploadPart 3"), std::string::npos) << status.message();
  EXPECT_EQ(store->Head("multi/aborted.bin").status().code(), ErrorCode::kNotFound);
  auto listed = store->List("multi/aborted");
  ASSERT_OK(listed.status());
  EXPECT_TRUE(listed->empty());
}

TEST_F(S3StoreTest, SinkErrorsStopTheGet) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  PutBytes(*store, "sink-fails", Pattern(1000, 1));
  MemorySink sink;
  sink.fail_write_ = true;
  EXPECT_EQ(store->Get("sink-fails", {{0, 500}, {500, 500}}, sink).code(),
            ErrorCode::kPermissionDenied);
  MemorySink refusing;
  refusing.fail_open_ = true;
  EXPECT_EQ(store->Get("sink-fails", {{0, 500}}, refusing).code(), ErrorCode::kUnavailable);
}

TEST_F(S3StoreTest, RefusesBadKeysAndParts) {
  auto store = Store();
  ASSERT_NE(store, nullptr);
  std::vector<uint8_t> data = Pattern(10, 1);
  MemorySource source(data);
  EXPECT_EQ(store->Put("", {{0, 10}}, source).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->Put(std::string(1025, 'k'), {{0, 10}}, source).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->Put("gap", {{0, 4}, {5, 5}}, source).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store->Put("none", {}, source).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(source.opened(), 0);
}

TEST(S3StoreOpenTest, RefusesBadConfiguration) {
  S3Options good;
  good.endpoint = "http://127.0.0.1:1";
  good.access_key_id = "AKID";
  good.secret_access_key = kTestSecret;
  ASSERT_OK(OpenS3Store("good-bucket", good).status());
  EXPECT_EQ(OpenS3Store("Bad_Bucket", good).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(OpenS3Store("ab", good).status().code(), ErrorCode::kInvalidArgument);
  auto with = [&](auto change) {
    S3Options o = good;
    change(o);
    return OpenS3Store("good-bucket", o).status();
  };
  EXPECT_EQ(with([](S3Options& o) { o.endpoint = "ftp://x"; }).code(), ErrorCode::kInvalidArgument);
  Status userinfo = with([](S3Options& o) { o.endpoint = "http://u:hunter2@host"; });
  EXPECT_EQ(userinfo.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(userinfo.message().find("hunter2"), std::string::npos);
  EXPECT_EQ(with([](S3Options& o) { o.region = "us-east-1:evil"; }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(with([](S3Options& o) { o.access_key_id = ""; }).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(with([](S3Options& o) { o.secret_access_key = ""; }).code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(with([](S3Options& o) { o.concurrency = 0; }).code(), ErrorCode::kInvalidArgument);
  S3Options aws_options = good;
  aws_options.endpoint = "";
  aws_options.region = "eu-west-3";
  auto aws = OpenS3Store("good-bucket", aws_options);
  ASSERT_OK(aws.status());
  EXPECT_EQ((*aws)->description(), "s3://good-bucket");
}

TEST(S3StoreOpenTest, UnreachableServiceIsUnavailable) {
  // Bind a port and never listen on it, so connecting is refused.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  S3Options options;
  options.endpoint = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  options.access_key_id = "AKID";
  options.secret_access_key = kTestSecret;
  auto store = OpenS3Store("some-bucket", options);
  ASSERT_OK(store.status());
  auto head = (*store)->Head("k");
  ::close(fd);
  EXPECT_EQ(head.status().code(), ErrorCode::kUnavailable) << head.status().ToString();
  EXPECT_NE(head.status().message().find("s3://some-bucket/k: HEAD failed"), std::string::npos)
      << head.status().message();
  EXPECT_EQ(head.status().message().find(kTestSecret), std::string::npos);
}

// ScriptedHttpServer answers each connection with the canned response for its method
// ("HEAD", "GET", ...) and closes it: enough to make the S3 store face a misbehaving service.
// With a list of responses for a method, the n-th request gets the n-th (the last repeats).
class ScriptedHttpServer {
 public:
  explicit ScriptedHttpServer(const std::map<std::string, std::string>& responses) {
    std::map<std::string, std::vector<std::string>> scripts;
    for (const auto& [method, response] : responses) scripts[method] = {response};
    Listen(std::move(scripts));
  }
  explicit ScriptedHttpServer(std::map<std::string, std::vector<std::string>> scripts) {
    Listen(std::move(scripts));
  }
  void Listen(std::map<std::string, std::vector<std::string>> scripts) {
    responses_ = std::move(scripts);
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen";
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~ScriptedHttpServer() {
    stop_ = true;
    ::shutdown(fd_, SHUT_RDWR);
    thread_.join();
    ::close(fd_);
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  // requests returns the request line and headers of every request received so far.
  std::vector<std::string> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  void Serve() {
    while (!stop_) {
      int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      std::string request;
      char buf[4096];
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      size_t head_end = request.find("\r\n\r\n");
      if (std::regex_search(request.substr(0, head_end), std::regex("\r\n[Ee]xpect: *100"))) {
        const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
        (void)!::write(client, kContinue, sizeof kContinue - 1);
      }
      size_t body_length = 0;
      std::smatch m;
      std::string head = request.substr(0, head_end);
      if (std::regex_search(head, m, std::regex("\r\n[Cc]ontent-[Ll]ength: *([0-9]+)"))) {
        body_length = std::stoul(m[1]);
      }
      // Read the body too: closing a socket with unread bytes resets the connection.
      while (head_end != std::string::npos && request.size() < head_end + 4 + body_length) {
        ssize_t n = ::read(client, buf, sizeof buf);
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.push_back(head);
      }
      std::string method = request.substr(0, request.find(' '));
      auto it = responses_.find(method);
      std::string response = "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n\r\n";
      if (it != responses_.end() && !it->second.empty()) {
        size_t n = served_[method]++;
        response = it->second[std::min(n, it->second.size() - 1)];
      }
      (void)!::write(client, response.data(), response.size());
      ::close(client);
    }
  }

  std::map<std::string, std::vector<std::string>> responses_;
  std::map<std::string, size_t> served_;
  std::mutex mu_;
  std::vector<std::string> requests_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

std::unique_ptr<ObjectStore> StoreAt(const std::string& endpoint) {
  S3Options options;
  options.endpoint = endpoint;
  options.access_key_id = "AKID";
  options.secret_access_key = kTestSecret;
  auto store = OpenS3Store("scripted", options);
  EXPECT_TRUE(store.ok());
  return store.ok() ? std::move(store).value() : nullptr;
}

const char kHead100[] =
    "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\n"
    "Connection: close\r\n\r\n";

TEST(S3StoreScriptedTest, ShortRangeAnswerIsIntegrityError) {
  ScriptedHttpServer server({{"HEAD", kHead100},
                             {"GET",
                              "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
                              "Connection: close\r\n\r\n0123456789"}});
  auto store = StoreAt(server.endpoint());
  ASSERT_NE(store, nullptr);
  auto info = store->Head("k");
  ASSERT_OK(info.status());
  EXPECT_EQ(info->size, 100u);
  EXPECT_EQ(info->last_modified, "2015-10-21T07:28:00Z");
  MemorySink sink;
  Status status = store->Get("k", {{0, 50}}, sink);
  EXPECT_EQ(status.code(), ErrorCode::kIntegrity) << status.ToString();
  EXPECT_FALSE(sink.Range(0).has_value());  // never finished
}

// GetPrefix takes the size from the ranged GET's Content-Range: one request, no HEAD. Answers
// without a usable one (416 for an empty object, an ignored range, a short body) fall back to
// HEAD then GET, whose checks then apply; a service error is the error HEAD would give.
TEST(S3StoreScriptedTest, GetPrefixReadsTheSizeFromContentRangeInOneRequest) {
  ScriptedHttpServer server(
      {{"HEAD",
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
       {"GET",
        "HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\n"
        "Content-Range: bytes 0-9/123456\r\nConnection: close\r\n\r\n0123456789"}});
  auto store = StoreAt(server.endpoint());
  ASSERT_NE(store, nullptr);
  auto prefix = store->GetPrefix("k", 10);
  ASSERT_OK(prefix.status());
  EXPECT_EQ(prefix->info.size, 123456u);
  EXPECT_EQ(ToString(prefix->bytes), "0123456789");
  ASSERT_EQ(server.requests().size(), 1u);
  EXPECT_NE(server.requests()[0].find("Range: bytes=0-9"), std::string::npos)
      << server.requests()[0];

  ScriptedHttpServer empty(
      {{"HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
       {"GET",
        "HTTP/1.1 416 Requested Range Not Satisfiable\r\nContent-Range: bytes */0\r\n"
        "Content-Length: 0\r\nConnection: close\r\n\r\n"}});
  auto store2 = StoreAt(empty.endpoint());
  ASSERT_NE(store2, nullptr);
  auto none = store2->GetPrefix("k", 10);
  ASSERT_OK(none.status());
  EXPECT_EQ(none->info.size, 0u);
  EXPECT_TRUE(none->bytes.empty());

  // A body shorter than Content-Range promises is not taken: HEAD (100 bytes) then the ranged
  // GET, which gets the same short answer and is refused.
  ScriptedHttpServer short_body(
      {{"HEAD", kHead100},
       {"GET",
        "HTTP/1.1 206 Partial Content\r\nContent-Length: 5\r\n"
        "Content-Range: bytes 0-4/100\r\nConnection: close\r\n\r\n01234"}});
  auto store3 = StoreAt(short_body.endpoint());
  ASSERT_NE(store3, nullptr);
  EXPECT_EQ(store3->GetPrefix("k", 10).status().code(), ErrorCode::kIntegrity);

  ScriptedHttpServer missing(std::map<std::string, std::string>{
      {"GET", "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"}});
  auto store4 = StoreAt(missing.endpoint());
  ASSERT_NE(store4, nullptr);
  EXPECT_EQ(store4->GetPrefix("k", 10).status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(missing.requests().size(), 1u);
}

TEST(S3StoreScriptedTest, IgnoredRangeIsIntegrityErrorAndLongAnswerIsRefused) {
  std::string whole(100, 'x');
  ScriptedHttpServer ignoring(
      {{"HEAD", kHead100},
       {"GET", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n" + whole}});
  auto store = StoreAt(ignoring.endpoint());
  ASSERT_NE(store, nullptr);
  MemorySink sink;
  EXPECT_EQ(store->Get("k", {{10, 20}}, sink).code(), ErrorCode::kIntegrity);
  MemorySink whole_sink;  // 200 is the right answer when the range is the whole object
  ASSERT_OK(store->Get("k", {{0, 100}}, whole_sink));
  EXPECT_EQ(whole_sink.Range(0)->size(), 100u);

  ScriptedHttpServer too_long(
      {{"HEAD", kHead100},
       {"GET", "HTTP/1.1 206 Partial Content\r\nContent-Length: 30\r\nConnection: close\r\n\r\n" +
                   std::string(30, 'y')}});
  auto store2 = StoreAt(too_long.endpoint());
  ASSERT_NE(store2, nullptr);
  MemorySink sink2;
  EXPECT_EQ(store2->Get("k", {{0, 20}}, sink2).code(), ErrorCode::kIntegrity);
}

TEST(S3StoreScriptedTest, ServiceErrorsMapToCodes) {
  const std::string denied =
      "<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request "
      "signature we calculated does not match</Message></Error>";
  ScriptedHttpServer server(
      {{"PUT", "HTTP/1.1 403 Forbidden\r\nContent-Length: " + std::to_string(denied.size()) +
                   "\r\nConnection: close\r\n\r\n" + denied},
       {"HEAD", "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
       {"POST", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"}});
  auto store = StoreAt(server.endpoint());
  ASSERT_NE(store, nullptr);
  std::vector<uint8_t> data = Pattern(10, 1);
  MemorySource source(data);
  Status put = store->Put("k", {{0, 10}}, source);
  EXPECT_EQ(put.code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(put.message(),
            "s3://scripted/k: PUT failed: SignatureDoesNotMatch: The request signature we "
            "calculated does not match (HTTP 403)");
  EXPECT_EQ(store->Head("k").status().code(), ErrorCode::kUnavailable);
  // A CreateMultipartUpload answer without an UploadId stops the upload before any part.
  std::vector<uint8_t> big = Pattern(6 * kMiB, 1);
  MemorySource big_source(big);
  Status multi = store->Put("k", Parts({5 * kMiB, kMiB}), big_source);
  EXPECT_EQ(multi.code(), ErrorCode::kUnavailable) << multi.ToString();
  EXPECT_EQ(big_source.opened(), 0);
}

// ExpectValidS3Signature recomputes, independently of libcurl, the SigV4 signature S3 expects
// for a request as it arrived (canonical URI = the path as sent, canonical query = the query's
// parameters sorted, payload hash = x-amz-content-sha256) and compares it with the one sent. A
// path or query the store did not write in canonical form fails here, since libcurl 7.88 signs
// both exactly as written.
void ExpectValidS3Signature(const std::string& head, const std::string& secret,
                            const std::string& region) {
  SCOPED_TRACE(head);
  std::istringstream in(head);
  std::string method, target, version, line;
  in >> method >> target >> version;
  std::getline(in, line);
  std::map<std::string, std::string> headers;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string name = line.substr(0, colon);
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(' '));
    value.erase(value.find_last_not_of(' ') + 1);
    headers[name] = value;
  }
  size_t question = target.find('?');
  std::string path = target.substr(0, question);
  std::string query = question == std::string::npos ? "" : target.substr(question + 1);
  EXPECT_TRUE(std::regex_match(path, std::regex("(/|[A-Za-z0-9._~-]|%[0-9A-F]{2})*"))) << path;
  std::vector<std::string> params;
  for (size_t start = 0; !query.empty() && start <= query.size();) {
    size_t amp = std::min(query.find('&', start), query.size());
    std::string param = query.substr(start, amp - start);
    EXPECT_TRUE(
        std::regex_match(param, std::regex("[A-Za-z0-9._~-]+=([A-Za-z0-9._~-]|%[0-9A-F]{2})*")))
        << param;
    params.push_back(param);
    start = amp + 1;
  }
  std::vector<std::string> sorted = params;
  std::sort(sorted.begin(), sorted.end());
  std::string canonical_query;
  for (const std::string& p : sorted) canonical_query += (canonical_query.empty() ? "" : "&") + p;

  std::smatch auth;
  const std::string authorization = headers["authorization"];
  ASSERT_TRUE(std::regex_match(
      authorization, auth,
      std::regex("AWS4-HMAC-SHA256 Credential=([^/]+)/([0-9]{8})/([^/]+)/s3/aws4_request, "
                 "SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})")));
  EXPECT_EQ(auth[3].str(), region);
  std::string signed_headers = auth[4];
  for (const char* required : {"host", "x-amz-date", "x-amz-content-sha256"}) {
    EXPECT_NE((";" + signed_headers + ";").find(std::string(";") + required + ";"),
              std::string::npos)
        << required << " not signed";
  }
  std::string canonical_headers;
  std::istringstream names(signed_headers);
  for (std::string name; std::getline(names, name, ';');) {
    ASSERT_TRUE(headers.contains(name)) << name;
    canonical_headers += name + ":" + headers[name] + "\n";
  }
  EXPECT_EQ(headers["x-amz-content-sha256"], "UNSIGNED-PAYLOAD");
  std::string canonical_request = method + "\n" + path + "\n" + canonical_query + "\n" +
                                  canonical_headers + "\n" + signed_headers + "\n" +
                                  headers["x-amz-content-sha256"];
  std::string scope = auth[2].str() + "/" + region + "/s3/aws4_request";
  std::string to_sign = "AWS4-HMAC-SHA256\n" + headers["x-amz-date"] + "\n" + scope + "\n" +
                        HexEncode(crypto::Sha256(AsBytes(canonical_request)));
  crypto::Digest key = crypto::HmacSha256(AsBytes("AWS4" + secret), AsBytes(auth[2].str()));
  key = crypto::HmacSha256(key, AsBytes(region));
  key = crypto::HmacSha256(key, AsBytes("s3"));
  key = crypto::HmacSha256(key, AsBytes("aws4_request"));
  EXPECT_EQ(HexEncode(crypto::HmacSha256(key, AsBytes(to_sign))), auth[5].str())
      << canonical_request;
}

TEST(S3StoreScriptedTest, RequestsCarryValidSigV4OverCanonicalPathsAndQueries) {
  const std::string list_body =
      "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";
  const std::string initiate =
      "<InitiateMultipartUploadResult><UploadId>id/with+chars=</UploadId>"
      "</InitiateMultipartUploadResult>";
  ScriptedHttpServer server(
      {{"HEAD", kHead100},
       {"GET", "HTTP/1.1 206 Partial Content\r\nContent-Length: " +
                   std::to_string(list_body.size()) + "\r\nConnection: close\r\n\r\n" + list_body},
       {"PUT", "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"},
       {"POST", "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(initiate.size()) +
                    "\r\nConnection: close\r\n\r\n" + initiate}});
  S3Options options;
  options.endpoint = server.endpoint();
  options.region = "eu-central-1";
  options.access_key_id = "AKIDEXAMPLE";
  options.secret_access_key = kTestSecret;
  options.session_token = "session/token+value";
  auto store = OpenS3Store("scripted", options);
  ASSERT_OK(store.status());
  const std::string key = "dir/a b+c=d&e~f.\xc3\xa9";
  ASSERT_OK((*store)->Head(key).status());
  (void)(*store)->List("p q/&x");  // the canned body is no page of this listing; only signing
  MemorySink sink;
  ASSERT_OK((*store)->Get(key, {{1, list_body.size()}}, sink));
  std::vector<uint8_t> data = Pattern(5 * kMiB + 3, 1);
  MemorySource source(data);
  (void)(*store)->Put(key, Parts({5 * kMiB, 3}), source);  // create, parts, complete
  std::vector<std::string> requests = server.requests();
  ASSERT_GE(requests.size(), 5u);
  bool saw_list = false, saw_part = false, saw_range = false;
  for (const std::string& head : requests) {
    ExpectValidS3Signature(head, kTestSecret, "eu-central-1");
    EXPECT_NE(head.find("\r\nx-amz-security-token: session/token+value"), std::string::npos);
    EXPECT_EQ(head.find(kTestSecret), std::string::npos);
    saw_list |= head.rfind("GET /scripted?list-type=2&prefix=p%20q%2F%26x ", 0) == 0;
    saw_range |=
        head.find("\r\nRange: bytes=1-" + std::to_string(list_body.size())) != std::string::npos;
    saw_part |= head.find("?partNumber=1&uploadId=id%2Fwith%2Bchars%3D ") != std::string::npos;
  }
  EXPECT_TRUE(saw_list);
  EXPECT_TRUE(saw_part);
  EXPECT_TRUE(saw_range);
  EXPECT_EQ(requests[0].rfind("HEAD /scripted/dir/a%20b%2Bc%3Dd%26e~f.%C3%A9 HTTP/1.1", 0), 0u)
      << requests[0];
}

std::string Ok200(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nConnection: close\r\n\r\n" + body;
}

TEST(S3StoreScriptedTest, ListFollowsContinuationTokens) {
  ScriptedHttpServer server(std::map<std::string, std::vector<std::string>>{
      {"GET",
       {Ok200("<ListBucketResult><IsTruncated>true</IsTruncated>"
              "<NextContinuationToken>t/1=</NextContinuationToken>"
              "<Contents><Key>p/b</Key><Size>2</Size></Contents></ListBucketResult>"),
        Ok200("<ListBucketResult><IsTruncated>false</IsTruncated>"
              "<Contents><Key>p/a</Key><Size>1</Size></Contents></ListBucketResult>")}}});
  auto store = StoreAt(server.endpoint());
  ASSERT_NE(store, nullptr);
  auto listed = store->List("p");
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].key, "p/a");
  EXPECT_EQ((*listed)[1].key, "p/b");
  std::vector<std::string> requests = server.requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].rfind("GET /scripted?list-type=2&prefix=p HTTP/1.1", 0), 0u);
  EXPECT_EQ(requests[1].rfind("GET /scripted?continuation-token=t%2F1%3D&list-type=2&prefix=p ", 0),
            0u)
      << requests[1];
  for (const std::string& head : requests) ExpectValidS3Signature(head, kTestSecret, "us-east-1");
}

TEST(S3StoreScriptedTest, ListRefusesAServiceThatNeverEnds) {
  ScriptedHttpServer server(std::map<std::string, std::string>{
      {"GET", Ok200("<ListBucketResult><IsTruncated>true</IsTruncated>"
                    "<NextContinuationToken>again</NextContinuationToken></ListBucketResult>")}});
  auto store = StoreAt(server.endpoint());
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->List("").status().code(), ErrorCode::kUnavailable);
  EXPECT_EQ(server.requests().size(), 2u);
}

TEST(S3UriEncodeTest, EncodesAllButUnreservedBytes) {
  EXPECT_EQ(S3UriEncode("a/b c+d~e_f.g-h", true), "a/b%20c%2Bd~e_f.g-h");
  EXPECT_EQ(S3UriEncode("a/b=c&d", false), "a%2Fb%3Dc%26d");
  EXPECT_EQ(S3UriEncode("\xc3\xa9\x01", true), "%C3%A9%01");
  EXPECT_EQ(S3UriEncode("", false), "");
}

// ---------------------------------------------------------------------------------------------
// The XML parsers, on what S3 sends and on hostile input.

TEST(S3XmlTest, ParsesErrorBodies) {
  auto error = internal::ParseS3Error(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchKey</Code><Message>The "
      "specified key does not exist.</Message><Key>a</Key></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "NoSuchKey");
  EXPECT_EQ(error->message, "The specified key does not exist.");
}

TEST(S3XmlTest, ErrorParserRefusesOrSanitisesHostileBodies) {
  for (const char* body : {"", "not xml", "<html><body>502</body></html>", "<Error>",
                           "<Error><Message>no code</Message></Error>", "<ListBucketResult/>",
                           "<Error><Code>X</Code>"}) {
    EXPECT_FALSE(internal::ParseS3Error(body).has_value()) << body;
  }
  auto error = internal::ParseS3Error("<Error><Code>Bad&#10;Code</Code><Message>" +
                                      std::string(10'000, 'm') + "\x1b[31m</Message></Error>");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, "Bad?Code");
  EXPECT_LE(error->message.size(), 512u);
  for (char c : error->message) EXPECT_TRUE(c >= 0x20 && c < 0x7f);
  // Deep nesting and entity declarations cost neither stack nor expansion.
  std::string deep;
  for (int i = 0; i < 100'000; ++i) deep += "<a>";
  EXPECT_FALSE(internal::ParseS3Error(deep).has_value());
  auto declared = internal::ParseS3Error(
      "<!DOCTYPE e [<!ENTITY x \"xxxxxxxx\">]><Error><Code>&x;&x;</Code></Error>");
  if (declared.has_value()) {
    EXPECT_EQ(declared->code.find("xxxxxxxx"), std::string::npos);
  }
}

TEST(S3XmlTest, ParsesInitiateMultipartUpload) {
  auto id = internal::ParseInitiateMultipartUpload(
      "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Bucket>b</Bucket><Key>k</Key><UploadId>VXBsb2FkIElE/+=</UploadId>"
      "</InitiateMultipartUploadResult>");
  ASSERT_OK(id.status());
  EXPECT_EQ(*id, "VXBsb2FkIElE/+=");
  for (const char* bad : {"", "hello", "<InitiateMultipartUploadResult/>",
                          "<InitiateMultipartUploadResult><UploadId></UploadId>"
                          "</InitiateMultipartUploadResult>",
                          "<Error><UploadId>x</UploadId></Error>"}) {
    EXPECT_EQ(internal::ParseInitiateMultipartUpload(bad).status().code(),
              ErrorCode::kInvalidArgument)
        << bad;
  }
}

TEST(S3XmlTest, ParsesListPages) {
  auto page = internal::ParseListObjectsV2(
      "<?xml version=\"1.0\"?><ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix>p/</Prefix><KeyCount>2</KeyCount><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>tok/en=</NextContinuationToken>"
      "<Contents><Key>p/a &amp; b</Key><LastModified>2026-11-22T12:50:50.123Z</LastModified>"
      "<ETag>\"x\"</ETag><Size>18446744073709551615</Size></Contents>"
      "<Contents><Key>p/c</Key><LastModified>yesterday</LastModified><Size>0</Size></Contents>"
      "</ListBucketResult>");
  ASSERT_OK(page.status());
  ASSERT_EQ(page->objects.size(), 2u);
  EXPECT_EQ(page->objects[0].key, "p/a & b");
  EXPECT_EQ(page->objects[0].size, UINT64_MAX);
  EXPECT_EQ(page->objects[0].last_modified, "2026-11-22T12:50:50Z");
  EXPECT_EQ(page->objects[1].last_modified, "yesterday");
  EXPECT_TRUE(page->truncated);
  EXPECT_EQ(page->next_token, "tok/en=");

  auto last = internal::ParseListObjectsV2(
      "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  ASSERT_OK(last.status());
  EXPECT_TRUE(last->objects.empty());
  EXPECT_FALSE(last->truncated);
}

TEST(S3XmlTest, ListParserRefusesHostilePages) {
  const std::string kOpen = "<ListBucketResult>";
  const std::string kClose = "</ListBucketResult>";
  for (const std::string& bad : {
           std::string(""),
           std::string("<ListBucketResult>"),
           std::string("<Error><Code>AccessDenied</Code></Error>"),
           kOpen + "<IsTruncated>true</IsTruncated>" + kClose,
           kOpen + "<IsTruncated>maybe</IsTruncated>" + kClose,
           kOpen + "<Contents><Size>1</Size></Contents>" + kClose,
           kOpen + "<Contents><Key></Key><Size>1</Size></Contents>" + kClose,
           kOpen + "<Contents><Key>k</Key></Contents>" + kClose,
           kOpen + "<Contents><Key>k</Key><Size>-1</Size></Contents>" + kClose,
           kOpen + "<Contents><Key>k</Key><Size>12a</Size></Contents>" + kClose,
           kOpen + "<Contents><Key>k</Key><Size> 12</Size></Contents>" + kClose,
           kOpen + "<Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>" + kClose,
       }) {
    EXPECT_EQ(internal::ParseListObjectsV2(bad).status().code(), ErrorCode::kInvalidArgument)
        << bad;
  }
}

TEST(S3XmlTest, CompleteMultipartUploadEscapesETags) {
  EXPECT_EQ(internal::CompleteMultipartUploadXml({"\"abc\"", "<&>"}),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"abc\"</ETag></Part>"
            "<Part><PartNumber>2</PartNumber><ETag>&lt;&amp;&gt;</ETag></Part>"
            "</CompleteMultipartUpload>");
}

TEST(S3XmlTest, NormalizesIso8601) {
  EXPECT_EQ(internal::NormalizeIso8601("2026-11-22T12:50:50.000Z"), "2026-11-22T12:50:50Z");
  EXPECT_EQ(internal::NormalizeIso8601("2026-11-22T12:50:50Z"), "2026-11-22T12:50:50Z");
  EXPECT_EQ(internal::NormalizeIso8601("2026-11-22T12:50:50.Z"), "2026-11-22T12:50:50.Z");
  EXPECT_EQ(internal::NormalizeIso8601("2026-11-22 12:50:50Z"), "2026-11-22 12:50:50Z");
  EXPECT_EQ(internal::NormalizeIso8601(""), "");
}

// ---------------------------------------------------------------------------------------------
// The directory store.

class DirStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = custos::testing::TempDir();
    auto store = OpenDirectoryStore(root_);
    ASSERT_OK(store.status());
    store_ = std::move(store).value();
  }
  std::vector<std::string> FilesUnder(const std::string& dir) {
    std::vector<std::string> names;
    for (auto& e : fs::recursive_directory_iterator(dir)) {
      names.push_back(fs::relative(e.path(), dir).string());
    }
    return names;
  }

  std::string root_;
  std::unique_ptr<ObjectStore> store_;
};

TEST_F(DirStoreTest, RoundTripsObjectsOfOneAndSeveralParts) {
  EXPECT_EQ(store_->concurrency(), 1);
  EXPECT_EQ(store_->description(), "file://" + root_);
  for (std::vector<uint64_t> lengths :
       {std::vector<uint64_t>{0}, {1}, {kMiB + 3}, {300'000, 300'000, 7}}) {
    std::vector<ByteRange> parts = Parts(lengths);
    uint64_t size = parts.back().end();
    SCOPED_TRACE(size);
    std::string key = "nested/dir/" + std::to_string(size);
    std::vector<uint8_t> data = Pattern(size, static_cast<uint32_t>(size));
    MemorySource source(data);
    TransferStats stats;
    ASSERT_OK(store_->Put(key, parts, source, &stats));
    EXPECT_EQ(stats.bytes.load(), size);
    auto info = store_->Head(key);
    ASSERT_OK(info.status());
    EXPECT_EQ(info->size, size);
    EXPECT_TRUE(IsIso8601(info->last_modified)) << info->last_modified;
    struct stat st;
    ASSERT_EQ(::stat((root_ + "/" + key).c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    ExpectRangesRead(*store_, key, data, {{0, size}});
    if (size > 10) ExpectRangesRead(*store_, key, data, {{size - 10, 10}, {3, 5}, {4, 0}});
  }
  EXPECT_EQ(FilesUnder(root_ + "/nested/dir").size(), 4u);  // no temporary file left behind
}

TEST_F(DirStoreTest, RefusesKeysOutsideTheDirectoryOrNamingTemporaryFiles) {
  std::vector<uint8_t> data = Pattern(10, 1);
  MemorySource source(data);
  MemorySink sink;
  for (const std::string& key :
       {std::string(""), std::string("/etc/passwd"), std::string("../escape"),
        std::string("a/../../b"), std::string(".."), std::string("./a"), std::string("a/./b"),
        std::string("a//b"), std::string("a/"), std::string(".custos-tmp-abc123"),
        std::string("d/.custos-tmp-x"), std::string("nul\0byte", 8)}) {
    SCOPED_TRACE(key);
    EXPECT_EQ(store_->Put(key, {{0, 10}}, source).code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(store_->Head(key).status().code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(store_->Get(key, {{0, 1}}, sink).code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(store_->Delete(key).code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(source.opened(), 0);
  EXPECT_TRUE(FilesUnder(root_).empty());
  EXPECT_FALSE(fs::exists(fs::path(root_).parent_path() / "escape"));
}

TEST_F(DirStoreTest, FailedPutLeavesNoTemporaryFileAndKeepsTheOldObject) {
  std::vector<uint8_t> old_data = Pattern(20, 2);
  PutBytes(*store_, "keep", old_data);
  std::vector<uint8_t> data = Pattern(3 * kMiB, 1);
  MemorySource failing(data, /*fail_at=*/2 * kMiB + 5);
  Status status = store_->Put("keep", Parts({kMiB, kMiB, kMiB}), failing);
  EXPECT_EQ(status.code(), ErrorCode::kInternal) << status.ToString();
  ExpectRangesRead(*store_, "keep", old_data, {{0, 20}});
  MemorySource failing_new(data, 0);
  EXPECT_FALSE(store_->Put("sub/new", {{0, data.size()}}, failing_new).ok());
  EXPECT_EQ(store_->Head("sub/new").status().code(), ErrorCode::kNotFound);
  std::vector<std::string> files = FilesUnder(root_);
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"keep", "sub"}));
}

TEST_F(DirStoreTest, ListWalksRecursivelySortedAndSkipsTemporaryFiles) {
  PutBytes(*store_, "b/2", Pattern(2, 1));
  PutBytes(*store_, "a", Pattern(1, 1));
  PutBytes(*store_, "b/1/deep", Pattern(3, 1));
  PutBytes(*store_, "bz", Pattern(4, 1));
  std::ofstream(root_ + "/b/.custos-tmp-leftover") << "partial";
  auto all = store_->List("");
  ASSERT_OK(all.status());
  std::vector<std::string> keys;
  for (auto& info : *all) keys.push_back(info.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b/1/deep", "b/2", "bz"}));
  EXPECT_EQ((*all)[1].size, 3u);
  EXPECT_TRUE(IsIso8601((*all)[1].last_modified));
  auto b = store_->List("b/");
  ASSERT_OK(b.status());
  ASSERT_EQ(b->size(), 2u);
  EXPECT_EQ((*b)[0].key, "b/1/deep");
  auto none = store_->List("zzz");
  ASSERT_OK(none.status());
  EXPECT_TRUE(none->empty());
}

TEST_F(DirStoreTest, DeleteGetAndRangesRefuseWhatIsNotThere) {
  PutBytes(*store_, "x", Pattern(100, 1));
  MemorySink sink;
  EXPECT_EQ(store_->Get("x", {{0, 10}, {95, 6}}, sink).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->Get("x", {{101, 0}}, sink).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(sink.opened(), 0u);
  ASSERT_OK(store_->Delete("x"));
  EXPECT_EQ(store_->Head("x").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Delete("x").code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Get("x", {{0, 1}}, sink).code(), ErrorCode::kNotFound);
  fs::create_directory(root_ + "/adir");
  EXPECT_EQ(store_->Head("adir").status().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->Delete("adir").code(), ErrorCode::kNotFound);
}

// TruncatingSink shortens the file under the store when the second range is opened, so the
// store reads fewer bytes than the object's size promised.
class TruncatingSink : public MemorySink {
 public:
  explicit TruncatingSink(std::string path) : path_(std::move(path)) {}
  StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) override {
    if (range.offset > 0) fs::resize_file(path_, 50);
    return MemorySink::Open(range);
  }

 private:
  std::string path_;
};

TEST_F(DirStoreTest, ShortReadIsIntegrityError) {
  PutBytes(*store_, "shrinks", Pattern(100, 1));
  TruncatingSink sink(root_ + "/shrinks");
  Status status = store_->Get("shrinks", {{0, 10}, {10, 90}}, sink);
  EXPECT_EQ(status.code(), ErrorCode::kIntegrity) << status.ToString();
}

TEST(DirStoreOpenTest, DirectoryMustExist) {
  std::string root = custos::testing::TempDir();
  EXPECT_EQ(OpenDirectoryStore(root + "/missing").status().code(), ErrorCode::kNotFound);
  std::ofstream(root + "/file") << "x";
  EXPECT_EQ(OpenDirectoryStore(root + "/file").status().code(), ErrorCode::kInvalidArgument);
  auto with_slash = OpenDirectoryStore(root + "/");
  ASSERT_OK(with_slash.status());
  EXPECT_EQ((*with_slash)->description(), "file://" + root);
}

// ---------------------------------------------------------------------------------------------
// Locations.

TEST(LocationTest, ParsesS3Locations) {
  auto loc = ParseLocation("s3://my-bucket.v2/a/b c.bin");
  ASSERT_OK(loc.status());
  EXPECT_EQ(loc->scheme, Location::Scheme::kS3);
  EXPECT_EQ(loc->bucket, "my-bucket.v2");
  EXPECT_EQ(loc->key, "a/b c.bin");
  EXPECT_EQ(loc->ToString(), "s3://my-bucket.v2/a/b c.bin");
  for (const char* text : {"s3://abc", "s3://abc/"}) {
    auto bucket_only = ParseLocation(text);
    ASSERT_OK(bucket_only.status());
    EXPECT_EQ(bucket_only->bucket, "abc");
    EXPECT_EQ(bucket_only->key, "");
    EXPECT_EQ(bucket_only->ToString(), "s3://abc");
  }
}

TEST(LocationTest, RefusesMalformedLocations) {
  for (const std::string& text :
       {std::string(""), std::string("bucket/key"), std::string("http://host/x"),
        std::string("S3://abc/x"), std::string("s3://"), std::string("s3://ab/x"),
        std::string("s3://Upper/x"), std::string("s3://under_score"),
        std::string("s3://") + std::string(64, 'a'),
        std::string("s3://abc/") + std::string(1025, 'k'), std::string("file://"),
        std::string("s3://abc/nul\0", 13), std::string("file://no-such-dir-custos/..")}) {
    auto loc = ParseLocation(text);
    EXPECT_EQ(loc.status().code(), ErrorCode::kInvalidArgument) << text;
    if (!loc.ok()) {
      EXPECT_FALSE(loc.status().message().empty());
    }
  }
  EXPECT_OK(ParseLocation("s3://" + std::string(63, 'a')).status());
}

TEST(LocationTest, ParsesFileLocations) {
  std::string dir = custos::testing::TempDir();
  auto file = ParseLocation("file://" + dir + "/obj.bin");
  ASSERT_OK(file.status());
  EXPECT_EQ(file->scheme, Location::Scheme::kFile);
  EXPECT_EQ(file->bucket, dir);
  EXPECT_EQ(file->key, "obj.bin");
  EXPECT_EQ(file->ToString(), "file://" + dir + "/obj.bin");
  for (const std::string& text : {"file://" + dir, "file://" + dir + "/"}) {
    auto store = ParseLocation(text);
    ASSERT_OK(store.status());
    EXPECT_EQ(store->bucket, dir) << text;
    EXPECT_EQ(store->key, "") << text;
  }
  auto relative = ParseLocation("file://rel.bin");
  ASSERT_OK(relative.status());
  EXPECT_EQ(relative->bucket, ".");
  EXPECT_EQ(relative->key, "rel.bin");
  auto not_yet = ParseLocation("file://some/new/dir/");  // a trailing '/' names a directory
  ASSERT_OK(not_yet.status());
  EXPECT_EQ(not_yet->bucket, "some/new/dir");
  EXPECT_EQ(not_yet->key, "");
  auto root_file = ParseLocation("file:///top.bin");
  ASSERT_OK(root_file.status());
  EXPECT_EQ(root_file->bucket, "/");
  EXPECT_EQ(root_file->key, "top.bin");
}

TEST(LocationTest, OpenStorePicksTheBackend) {
  std::string dir = custos::testing::TempDir();
  auto loc = ParseLocation("file://" + dir + "/k");
  ASSERT_OK(loc.status());
  auto store = OpenStore(*loc, S3Options{});
  ASSERT_OK(store.status());
  EXPECT_EQ((*store)->description(), "file://" + dir);
  std::vector<uint8_t> data = Pattern(5, 1);
  PutBytes(**store, loc->key, data);
  EXPECT_TRUE(fs::exists(dir + "/k"));

  auto s3 = ParseLocation("s3://some-bucket/k");
  ASSERT_OK(s3.status());
  EXPECT_EQ(OpenStore(*s3, S3Options{}).status().code(), ErrorCode::kInvalidArgument);  // no keys
  S3Options options;
  options.endpoint = "http://127.0.0.1:9";
  options.access_key_id = "AKID";
  options.secret_access_key = kTestSecret;
  auto opened = OpenStore(*s3, options);
  ASSERT_OK(opened.status());
  EXPECT_EQ((*opened)->description(), "s3://some-bucket at http://127.0.0.1:9");
}

}  // namespace
}  // namespace custos::objects
