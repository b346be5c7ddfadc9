// The object format and the upload/download pipelines over the directory store, with a local
// test custodian standing in for the KMS (the real appliance and keepers are driven by
// tests/e2e/objects_e2e_test.cc).
#include "client/objects/transfer.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>

#include "crypto/aead.h"
#include "crypto/random.h"
#include "client/objects/dir_store.h"
#include "client/objects/progress.h"
#include "client/objects/object_format.h"
#include "tests/testing/testing.h"

namespace custos::objects {
namespace {

namespace fs = std::filesystem;

// WrapCustodian wraps data keys under a local AES key (the KMS's role), binding the object id.
class WrapCustodian : public DataKeyCustodian {
 public:
  WrapCustodian() : kek_(crypto::RandomSecret(32)) {}
  ObjectMode mode() const override { return ObjectMode::kAppliance; }
  StatusOr<SecretBytes> SealNewKey(ObjectHeader& h) override {
    ++seals;
    SecretBytes dek = crypto::RandomSecret(32);
    ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(kek_));
    Bytes nonce = crypto::RandomBytes(12);
    h.key_ref = "test-kek";
    h.wrapped_key = Concat({nonce, gcm.Seal(nonce, dek.Expose(), h.object_id)});
    return dek;
  }
  StatusOr<SecretBytes> OpenKey(const ObjectHeader& h) override {
    ++opens;
    if (h.wrapped_key.size() != 12 + 48) return IntegrityError("wrapped key has the wrong size");
    ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(kek_));
    auto dek = gcm.OpenSecret(ByteSpan(h.wrapped_key).first(12), ByteSpan(h.wrapped_key).subspan(12), h.object_id);
    if (!dek.ok()) return IntegrityError("test KMS refuses the wrapped key");
    return dek;
  }
  int seals = 0, opens = 0;

 private:
  SecretBytes kek_;
};

// RecordingStore forwards to a real store and records the ranges every Get asked for.
class RecordingStore : public ObjectStore {
 public:
  explicit RecordingStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  Status Put(const std::string& key, const std::vector<ByteRange>& parts, RangeSource& source,
             TransferStats* stats) override {
    last_put_parts = parts;
    return inner_->Put(key, parts, source, stats);
  }
  StatusOr<ObjectInfo> Head(const std::string& key) override { return inner_->Head(key); }
  Status Get(const std::string& key, const std::vector<ByteRange>& ranges, RangeSink& sink,
             TransferStats* stats, std::optional<uint64_t> object_size) override {
    gets.insert(gets.end(), ranges.begin(), ranges.end());
    return inner_->Get(key, ranges, sink, stats, object_size);
  }
  StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) override { return inner_->List(prefix); }
  Status Delete(const std::string& key) override { return inner_->Delete(key); }
  int concurrency() const override { return inner_->concurrency(); }
  std::string description() const override { return inner_->description(); }
  std::vector<ByteRange> gets, last_put_parts;

 private:
  std::unique_ptr<ObjectStore> inner_;
};

// PieceStore forwards to a real store but hands every range's bytes to the sink in pieces of the
// sizes in `pattern`, in turn, as a network client does (libcurl passes whatever one recv(2)
// returned): pieces end inside chunk bodies, inside tags, and span several chunks.
class PieceStore : public RecordingStore {
 public:
  PieceStore(std::unique_ptr<ObjectStore> inner, std::vector<size_t> pattern)
      : RecordingStore(std::move(inner)), pattern_(std::move(pattern)) {}
  Status Get(const std::string& key, const std::vector<ByteRange>& ranges, RangeSink& sink,
             TransferStats* stats, std::optional<uint64_t> object_size) override {
    Splitter splitter(sink, pattern_);
    return RecordingStore::Get(key, ranges, splitter, stats, object_size);
  }

 private:
  class SplitBody : public BodySink {
   public:
    SplitBody(std::unique_ptr<BodySink> inner, const std::vector<size_t>& pattern)
        : inner_(std::move(inner)), pattern_(pattern) {}
    Status Write(std::span<const uint8_t> bytes) override {
      while (!bytes.empty()) {
        size_t n = std::min(bytes.size(), pattern_[next_++ % pattern_.size()]);
        RETURN_IF_ERROR(inner_->Write(bytes.first(n)));
        bytes = bytes.subspan(n);
      }
      return Status::Ok();
    }
    Status Finish() override { return inner_->Finish(); }

   private:
    std::unique_ptr<BodySink> inner_;
    const std::vector<size_t>& pattern_;
    size_t next_ = 0;
  };
  class Splitter : public RangeSink {
   public:
    Splitter(RangeSink& inner, const std::vector<size_t>& pattern)
        : inner_(inner), pattern_(pattern) {}
    StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) override {
      ASSIGN_OR_RETURN(std::unique_ptr<BodySink> body, inner_.Open(range));
      return std::unique_ptr<BodySink>(new SplitBody(std::move(body), pattern_));
    }

   private:
    RangeSink& inner_;
    const std::vector<size_t>& pattern_;
  };
  const std::vector<size_t> pattern_;
};

Bytes ReadBytes(const std::string& path) { return custos::testing::ReadFileBytes(path); }
void WriteBytes(const std::string& path, ByteSpan b) { custos::testing::WriteFileBytes(path, b); }
constexpr uint32_t kChunk = 4096;
constexpr size_t kStoredChunk = kChunk + 16;

class TransferTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = custos::testing::TempDir();
    fs::create_directories(dir + "/store");
    auto s = OpenDirectoryStore(dir + "/store");
    ASSERT_OK(s.status());
    store = std::make_unique<RecordingStore>(std::move(*s));
    tuning.chunk_size = kChunk;
    tuning.part_size = 5u << 20;
  }
  std::string Src(size_t n, const std::string& name = "src.bin") {
    std::string p = dir + "/" + name;
    WriteBytes(p, crypto::RandomBytes(n));
    return p;
  }
  CustodianFactory Factory() {
    return [this](ObjectMode) -> StatusOr<DataKeyCustodian*> { return &custodian; };
  }
  StatusOr<GetResult> Fetch(const std::string& key, const std::string& out,
                            std::optional<PlaintextRange> range = std::nullopt) {
    return GetObject(*store, key, out, false, Factory(), tuning, range);
  }
  std::string Stored(const std::string& key) { return dir + "/store/" + key; }

  std::string dir;
  std::unique_ptr<RecordingStore> store;
  WrapCustodian custodian;
  TransferTuning tuning;
};

TEST_F(TransferTest, RoundTripsEverySizeClassWithOneDataKeyPerObject) {
  // 0 B, 1 B, exactly one chunk, one chunk + 1 B, several chunks, and a multipart upload
  // (> 5 MiB parts) with a short last chunk.
  for (size_t n : {size_t{0}, size_t{1}, size_t{kChunk}, size_t{kChunk + 1}, size_t{7 * kChunk - 3},
                   size_t{(11u << 20) + 5}}) {
    SCOPED_TRACE(n);
    std::string src = Src(n);
    int seals = custodian.seals, opens = custodian.opens;
    auto put = PutObject(src, *store, "o/" + std::to_string(n), &custodian, tuning);
    ASSERT_OK(put.status());
    EXPECT_EQ(custodian.seals, seals + 1);
    EXPECT_EQ(put->plaintext_bytes, n);
    EXPECT_EQ(fs::file_size(Stored("o/" + std::to_string(n))), put->stored_bytes);
    // Parts start on chunk boundaries: header || k whole chunks, then whole chunks.
    const auto& parts = store->last_put_parts;
    if (n > (5u << 20)) {
      ASSERT_GT(parts.size(), 1u);
      uint64_t header = parts[0].length % kStoredChunk;
      for (size_t i = 1; i < parts.size(); ++i) EXPECT_EQ((parts[i].offset - header) % kStoredChunk, 0u);
    }
    std::string out = dir + "/out.bin";
    auto got = Fetch("o/" + std::to_string(n), out);
    ASSERT_OK(got.status());
    EXPECT_EQ(custodian.opens, opens + 1);
    EXPECT_EQ(ReadBytes(out), ReadBytes(src));
  }
}

TEST_F(TransferTest, RangesAtChunkEdgesFetchOnlyTheChunksTheyNeed) {
  const size_t n = 10 * kChunk + 17;
  std::string src = Src(n);
  ASSERT_OK(PutObject(src, *store, "r", &custodian, tuning).status());
  Bytes all = ReadBytes(src);
  struct Case {
    uint64_t first;
    std::optional<uint64_t> last;
    uint64_t chunks;  // chunks the range touches
  };
  for (Case c : std::vector<Case>{{0, 0, 1},
                                  {kChunk - 1, kChunk - 1, 1},
                                  {kChunk - 1, kChunk, 2},
                                  {kChunk, 2 * kChunk - 1, 1},
                                  {3 * kChunk, 5 * kChunk, 3},
                                  {n - 1, std::nullopt, 1},
                                  {10 * kChunk, n + 1000, 1},
                                  {5, std::nullopt, 11}}) {
    SCOPED_TRACE(std::to_string(c.first) + "-" + (c.last ? std::to_string(*c.last) : ""));
    store->gets.clear();
    std::string out = dir + "/range.bin";
    ASSERT_OK(Fetch("r", out, PlaintextRange{c.first, c.last}).status());
    uint64_t end = std::min<uint64_t>(c.last ? *c.last + 1 : n, n);
    EXPECT_EQ(ReadBytes(out), Bytes(all.begin() + static_cast<long>(c.first), all.begin() + static_cast<long>(end)));
    // One header fetch, then exactly the touched chunks' stored bytes.
    ASSERT_GE(store->gets.size(), 2u);
    uint64_t fetched = 0;
    for (size_t i = 1; i < store->gets.size(); ++i) fetched += store->gets[i].length;
    uint64_t last_chunk_stored = 17 + 16;
    bool touches_last = end == n;
    EXPECT_EQ(fetched, (c.chunks - (touches_last ? 1 : 0)) * kStoredChunk + (touches_last ? last_chunk_stored : 0));
  }
  // A range starting past the end is refused and writes nothing.
  std::string out = dir + "/none.bin";
  auto bad = Fetch("r", out, PlaintextRange{n, std::nullopt});
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(fs::exists(out));
}

// Every way of altering the stored object fails the download with kIntegrity (or, for a mangled
// header, kInvalidArgument) and leaves no destination file.
TEST_F(TransferTest, AlteredObjectsAreRefusedWithoutOutput) {
  const size_t n = 4 * kChunk + 100;
  ASSERT_OK(PutObject(Src(n), *store, "a", &custodian, tuning).status());
  ASSERT_OK(PutObject(Src(n, "b.bin"), *store, "b", &custodian, tuning).status());
  const Bytes a = ReadBytes(Stored("a")), b = ReadBytes(Stored("b"));
  auto header_a = ObjectHeader::Decode(a);
  ASSERT_OK(header_a.status());
  const size_t h = header_a->EncodedSize();
  auto chunk = [&](const Bytes& o, size_t i) {
    size_t begin = h + i * kStoredChunk;
    return Bytes(o.begin() + static_cast<long>(begin),
                 o.begin() + static_cast<long>(std::min(o.size(), begin + kStoredChunk)));
  };
  auto header_of = [&](const Bytes& o) { return Bytes(o.begin(), o.begin() + static_cast<long>(h)); };
  std::vector<std::pair<std::string, Bytes>> cases;
  // One flipped bit at each header field and in chunk bodies and tags.
  for (size_t pos : {size_t{8}, size_t{12}, size_t{20}, size_t{29}, size_t{33}, size_t{40}, size_t{46},
                     size_t{50}, h - 1, h, h + 100, h + kStoredChunk - 1, h + 2 * kStoredChunk + 7, a.size() - 1}) {
    Bytes t = a;
    t[pos] ^= 0x01;
    cases.push_back({"flip@" + std::to_string(pos), t});
  }
  cases.push_back({"truncated at a chunk boundary", Bytes(a.begin(), a.begin() + static_cast<long>(h + 4 * kStoredChunk))});
  cases.push_back({"truncated inside a chunk", Bytes(a.begin(), a.end() - 5)});
  cases.push_back({"header only", header_of(a)});
  Bytes extended = a;
  extended.push_back(0);
  cases.push_back({"extended", extended});
  cases.push_back({"chunks 0 and 1 swapped", Concat({header_of(a), chunk(a, 1), chunk(a, 0), chunk(a, 2), chunk(a, 3), chunk(a, 4)})});
  cases.push_back({"chunk 2 from another object", Concat({header_of(a), chunk(a, 0), chunk(a, 1), chunk(b, 2), chunk(a, 3), chunk(a, 4)})});
  cases.push_back({"header moved to another object", Concat({header_of(a), chunk(b, 0), chunk(b, 1), chunk(b, 2), chunk(b, 3), chunk(b, 4)})});
  cases.push_back({"last chunk dropped and chunk 3 marked final by length", Concat({header_of(a), chunk(a, 0), chunk(a, 1), chunk(a, 2), chunk(a, 3)})});
  for (const auto& [name, bytes] : cases) {
    SCOPED_TRACE(name);
    WriteBytes(Stored("t"), bytes);
    std::string out = dir + "/tampered.out";
    auto r = Fetch("t", out);
    ASSERT_FALSE(r.ok());
    EXPECT_TRUE(r.status().code() == ErrorCode::kIntegrity || r.status().code() == ErrorCode::kInvalidArgument)
        << r.status().ToString();
    EXPECT_FALSE(fs::exists(out));
    // Nothing else appeared in the output directory either (no temporary file left behind).
    for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename().string().rfind(".custos", 0), std::string::npos) << e.path();
  }
  // The original still downloads.
  ASSERT_OK(Fetch("a", dir + "/a.out").status());
}

// Every stored byte matters: flipping any one of them makes the download fail and leaves no file.
// Checked for every byte of the header (with the wrapped key), of both tags and of the final
// chunk, and every 7th byte of the full chunk's body (GCM covers those bytes alike; all 4,300
// positions take 20 s, too long for the sanitizer run).
TEST_F(TransferTest, FlippingAnyStoredByteIsRefused) {
  ASSERT_OK(PutObject(Src(kChunk + 100), *store, "every", &custodian, tuning).status());
  const Bytes original = ReadBytes(Stored("every"));
  ASSERT_GT(original.size(), kChunk + 100 + 2 * 16u);
  std::string out = dir + "/every.out";
  size_t refused = 0;
  const size_t header = ObjectHeader::Decode(original)->EncodedSize();
  const size_t full_body_end = header + kChunk;  // then the first tag, the final chunk and its tag
  size_t tried = 0;
  for (size_t pos = 0; pos < original.size(); ++pos) {
    if (pos >= header && pos < full_body_end && (pos - header) % 7 != 0) continue;
    ++tried;
    Bytes t = original;
    t[pos] ^= 0x01;
    WriteBytes(Stored("flipped"), t);
    auto r = Fetch("flipped", out);
    if (!r.ok() && !fs::exists(out)) ++refused;
    else ADD_FAILURE() << "byte " << pos << " of " << original.size() << " was not protected";
  }
  EXPECT_EQ(refused, tried);
  EXPECT_GT(tried, 700u);
  ASSERT_OK(Fetch("every", out).status());
}

// The download decrypts each piece where the store delivered it (no chunk is assembled first):
// whatever the piece sizes, the plaintext is the source's, ranges cut at the right bytes, and a
// swapped, truncated or flipped object is still refused without output.
TEST_F(TransferTest, AnyDeliveryPieceSizesGiveThePlaintextOrARefusal) {
  const size_t n = 70 * kChunk + 333;  // more than one 256 KiB write run, a short final chunk
  std::string src = Src(n);
  ASSERT_OK(PutObject(src, *store, "p", &custodian, tuning).status());
  const Bytes all = ReadBytes(src), stored = ReadBytes(Stored("p"));
  const size_t h = ObjectHeader::Decode(stored)->EncodedSize();
  Bytes swapped = stored;  // chunks 3 and 4 exchanged
  std::swap_ranges(swapped.begin() + static_cast<long>(h + 3 * kStoredChunk),
                   swapped.begin() + static_cast<long>(h + 4 * kStoredChunk),
                   swapped.begin() + static_cast<long>(h + 4 * kStoredChunk));
  Bytes tag_flipped = stored;  // the last byte of chunk 40's tag
  tag_flipped[h + 41 * kStoredChunk - 1] ^= 0x01;
  Bytes body_flipped = stored;
  body_flipped[h + 69 * kStoredChunk + 5] ^= 0x01;
  Bytes cut = Bytes(stored.begin(), stored.begin() + static_cast<long>(h + 70 * kStoredChunk));
  for (std::vector<size_t> pattern : std::vector<std::vector<size_t>>{
           {1}, {15, 17}, {kStoredChunk - 1}, {kStoredChunk + 1, 3}, {16384}, {524288}}) {
    SCOPED_TRACE("first piece " + std::to_string(pattern[0]));
    auto inner = OpenDirectoryStore(dir + "/store");
    ASSERT_OK(inner.status());
    PieceStore pieces(std::move(*inner), pattern);
    auto get = [&](const std::string& key, const std::string& out,
                   std::optional<PlaintextRange> range = std::nullopt) {
      return GetObject(pieces, key, out, false, Factory(), tuning, range);
    };
    std::string out = dir + "/pieces.out";
    ASSERT_OK(get("p", out).status());
    EXPECT_EQ(ReadBytes(out), all);
    ASSERT_OK(get("p", out, PlaintextRange{kChunk + 7, 66 * kChunk + 1}).status());
    EXPECT_EQ(ReadBytes(out), Bytes(all.begin() + kChunk + 7, all.begin() + 66 * kChunk + 2));
    for (const auto& [name, bytes] :
         std::vector<std::pair<std::string, Bytes>>{{"swapped", swapped},
                                                    {"tag flipped", tag_flipped},
                                                    {"body flipped", body_flipped},
                                                    {"cut", cut}}) {
      SCOPED_TRACE(name);
      WriteBytes(Stored("bad"), bytes);
      std::string bad_out = dir + "/bad.out";
      auto r = get("bad", bad_out);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), ErrorCode::kIntegrity) << r.status().ToString();
      EXPECT_FALSE(fs::exists(bad_out));
    }
  }
}

TEST_F(TransferTest, PlainModeCopiesBytesAndRefusesToDecryptForeignObjects) {
  std::string src = Src(6u << 20);
  ASSERT_OK(PutObject(src, *store, "plain", nullptr, tuning).status());
  EXPECT_EQ(ReadBytes(Stored("plain")), ReadBytes(src));
  ASSERT_OK(GetObject(*store, "plain", dir + "/p.out", true, Factory(), tuning).status());
  EXPECT_EQ(ReadBytes(dir + "/p.out"), ReadBytes(src));
  ASSERT_OK(GetObject(*store, "plain", dir + "/p2.out", true, Factory(), tuning, PlaintextRange{10, 19}).status());
  EXPECT_EQ(ReadBytes(dir + "/p2.out").size(), 10u);
  // Without --plain a non-custos object is refused, and nothing is written.
  auto r = Fetch("plain", dir + "/p3.out");
  EXPECT_EQ(r.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("not a custos object"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir + "/p3.out"));
}

TEST_F(TransferTest, AFailedDownloadKeepsTheExistingDestination) {
  ASSERT_OK(PutObject(Src(3 * kChunk), *store, "x", &custodian, tuning).status());
  Bytes t = ReadBytes(Stored("x"));
  t[t.size() - 20] ^= 0x80;
  WriteBytes(Stored("x"), t);
  std::string out = dir + "/keep.txt";
  WriteBytes(out, AsBytes("previous contents"));
  EXPECT_FALSE(Fetch("x", out).ok());
  EXPECT_EQ(ToString(ReadBytes(out)), "previous contents");
}

TEST(ObjectHeaderTest, EncodesAndRefusesMalformedHeaders) {
  ObjectHeader h;
  h.mode = ObjectMode::kAppliance;
  h.object_id = crypto::RandomBytes(16);
  h.chunk_size = 65536;
  h.nonce_prefix = crypto::RandomBytes(7);
  h.plaintext_length = 123456789;
  h.key_ref = "arn:aws:kms:us-east-1:000000000000:key/abc";
  h.wrapped_key = crypto::RandomBytes(120);
  Bytes enc = h.Encode();
  ASSERT_EQ(enc.size(), h.EncodedSize());
  EXPECT_EQ(ToString(ByteSpan(enc).first(8)), "CUSTOSOB");
  auto d = ObjectHeader::Decode(Concat({enc, crypto::RandomBytes(50)}));  // body bytes may follow
  ASSERT_OK(d.status());
  EXPECT_EQ(d->Encode(), enc);
  EXPECT_EQ(d->Digest(), h.Digest());
  // Every strict prefix is a truncated header.
  for (size_t n = 0; n < enc.size(); ++n)
    EXPECT_EQ(ObjectHeader::Decode(ByteSpan(enc).first(n)).status().code(), ErrorCode::kInvalidArgument) << n;
  auto with = [&](size_t pos, uint8_t v) {
    Bytes t = enc;
    t[pos] = v;
    return ObjectHeader::Decode(t).status();
  };
  EXPECT_NE(with(0, 'X').message().find("not a custos object"), std::string::npos);
  EXPECT_NE(with(8, 2).message().find("version"), std::string::npos);
  EXPECT_NE(with(9, 7).message().find("suite"), std::string::npos);
  EXPECT_NE(with(10, 9).message().find("mode"), std::string::npos);
  EXPECT_NE(with(11, 1).message().find("flags"), std::string::npos);
  EXPECT_NE(with(28, 0xff).message().find("chunk size"), std::string::npos);  // 4 GiB chunks
  EXPECT_NE(with(47, 0xff).message().find("key reference"), std::string::npos);
  EXPECT_NE(with(49, 0x07).message().find("control character"), std::string::npos);
  ObjectHeader dual = h;
  dual.mode = ObjectMode::kDualControl;
  EXPECT_NE(ObjectHeader::Decode(dual.Encode()).status().message().find("wrong length"), std::string::npos);
}

TEST(DualControlKeyTest, OpensWithTheJointSecretOnly) {
  crypto::Scalar x = crypto::Scalar::Random();
  crypto::Point y = crypto::Point::BaseMul(x);
  ObjectHeader h;
  h.object_id = crypto::RandomBytes(16);
  h.chunk_size = 65536;
  h.nonce_prefix = crypto::RandomBytes(7);
  h.plaintext_length = 42;
  auto dek = SealDualControlKey(h, y, std::string(64, 'a'));
  ASSERT_OK(dek.status());
  EXPECT_EQ(h.mode, ObjectMode::kDualControl);
  auto parsed = ObjectHeader::Decode(h.Encode());
  ASSERT_OK(parsed.status());
  auto w = ParseDualControlWrap(parsed->wrapped_key);
  ASSERT_OK(w.status());
  auto opened = OpenDualControlKey(*parsed, w->r * x);
  ASSERT_OK(opened.status());
  EXPECT_TRUE(opened->ConstantTimeEquals(*dek));
  // A wrong S (one domain's part alone) does not open it.
  EXPECT_EQ(OpenDualControlKey(*parsed, w->r * crypto::Scalar::Random()).status().code(), ErrorCode::kIntegrity);
  // Any change to the bound header fields breaks the unwrap.
  ObjectHeader moved = *parsed;
  moved.plaintext_length = 43;
  EXPECT_EQ(OpenDualControlKey(moved, w->r * x).status().code(), ErrorCode::kIntegrity);
  moved = *parsed;
  moved.object_id[0] ^= 1;
  EXPECT_EQ(OpenDualControlKey(moved, w->r * x).status().code(), ErrorCode::kIntegrity);
}

TEST(RangeTest, ParsesAndRefuses) {
  auto r = ParseRange("10-20");
  ASSERT_OK(r.status());
  EXPECT_EQ(r->first, 10u);
  EXPECT_EQ(*r->last, 20u);
  r = ParseRange("7-");
  ASSERT_OK(r.status());
  EXPECT_FALSE(r->last.has_value());
  for (const char* bad : {"", "-5", "5", "a-b", "20-10", "1-2-3", "99999999999999999999-"})
    EXPECT_FALSE(ParseRange(bad).ok()) << bad;
}

}  // namespace
}  // namespace custos::objects

namespace custos::objects {
namespace {

TEST(ProgressTest, FormatsSizeRateAndEta) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(100u << 20), "100.0 MiB");
  // 25 MiB of 100 MiB in 1 s: 25 %, 25 MiB/s, 3 s to go.
  EXPECT_EQ(FormatProgress(25u << 20, 100u << 20, 1.0), "25.0 MiB / 100.0 MiB   25%  25.0 MiB/s  ETA 0:00:03");
  // Done: no ETA. Unknown total: bytes and rate only.
  EXPECT_EQ(FormatProgress(100u << 20, 100u << 20, 4.0), "100.0 MiB / 100.0 MiB  100%  25.0 MiB/s");
  EXPECT_EQ(FormatProgress(2048, 0, 2.0), "2.0 KiB  1.0 KiB/s");
}

}  // namespace
}  // namespace custos::objects
