#include "protocol/stream/stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <thread>

#include "crypto/p256.h"
#include "crypto/random.h"
#include "protocol/envelope/dual_control.h"
#include "tests/testing/testing.h"

namespace custos::files {
namespace {

constexpr uint32_t kChunk = kMinChunkSize;  // small chunks keep multi-chunk cases fast
constexpr size_t kFull = kChunk + kStreamTagSize;

// Fixture holds one stream's parameters; tests vary a field by building a second StreamParams.
class StreamTest : public ::testing::Test {
 protected:
  SecretBytes dek_ = crypto::RandomSecret(kStreamKeySize);
  Bytes prefix_ = crypto::RandomBytes(kStreamNoncePrefixSize);
  Bytes digest_ = crypto::RandomBytes(kStreamHeaderDigestSize);

  StreamParams Params(uint32_t chunk_size = kChunk) const {
    return StreamParams{
        .dek = dek_, .nonce_prefix = prefix_, .header_digest = digest_, .chunk_size = chunk_size};
  }

  std::string Path(const std::string& name) { return dir_ + "/" + name; }

  static Status WriteFile(const std::string& path, ByteSpan data) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return InternalError("open for write");
    bool ok = data.empty() || ::write(fd, data.data(), data.size()) == ssize_t(data.size());
    ::close(fd);
    return ok ? Status::Ok() : InternalError("short write");
  }

  static Bytes ReadFile(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    Bytes out;
    uint8_t buf[65536];
    for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) out.insert(out.end(), buf, buf + n);
    ::close(fd);
    return out;
  }

  // RunFd runs `op` (EncryptStream or DecryptStream) from a file holding `in` into a fresh file
  // and returns its status; the output lands in `out`.
  template <typename Op>
  Status RunFd(Op op, ByteSpan in, const StreamParams& params, Bytes* out = nullptr) {
    std::string in_path = Path("in" + std::to_string(counter_)),
                out_path = Path("out" + std::to_string(counter_));
    ++counter_;
    RETURN_IF_ERROR(WriteFile(in_path, in));
    int in_fd = ::open(in_path.c_str(), O_RDONLY | O_CLOEXEC);
    int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    Status st = op(in_fd, out_fd, params);
    ::close(in_fd);
    ::close(out_fd);
    if (out != nullptr) *out = ReadFile(out_path);
    ::unlink(in_path.c_str());
    ::unlink(out_path.c_str());
    return st;
  }

  Bytes Encrypt(ByteSpan plaintext, uint32_t chunk_size = kChunk) {
    Bytes ct;
    Status st = RunFd(EncryptStream, plaintext, Params(chunk_size), &ct);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return ct;
  }

  Status Decrypt(ByteSpan ciphertext, const StreamParams& params, Bytes* out = nullptr) {
    return RunFd(DecryptStream, ciphertext, params, out);
  }

  void ExpectRefused(ByteSpan ciphertext, const std::string& why,
                     const char* message_part = nullptr) {
    Bytes out;
    Status st = Decrypt(ciphertext, Params(), &out);
    EXPECT_EQ(st.code(), ErrorCode::kIntegrity) << why << ": " << st.ToString();
    if (message_part != nullptr) {
      EXPECT_NE(st.message().find(message_part), std::string::npos) << why << ": " << st.message();
    }
  }

  std::string dir_ = testing::TempDir();
  int counter_ = 0;
};

Bytes Slice(const Bytes& b, size_t from, size_t n) {
  return Bytes(b.begin() + from, b.begin() + from + n);
}

TEST_F(StreamTest, RoundTripsAtChunkEdgesThroughFds) {
  for (size_t size : {size_t{0}, size_t{1}, size_t{kChunk - 1}, size_t{kChunk}, size_t{kChunk + 1},
                      size_t{3 * kChunk + 5}}) {
    SCOPED_TRACE("size " + std::to_string(size));
    Bytes pt = crypto::RandomBytes(size);
    Bytes ct = Encrypt(pt);
    auto expected = StreamCiphertextLength(size, kChunk);
    ASSERT_OK(expected.status());
    EXPECT_EQ(ct.size(), *expected);
    auto layout = StreamPlaintextLength(ct.size(), kChunk);
    ASSERT_OK(layout.status());
    EXPECT_EQ(layout->plaintext_length, size);
    Bytes back;
    ASSERT_OK(Decrypt(ct, Params(), &back));
    EXPECT_EQ(back, pt);
  }
}

TEST_F(StreamTest, EmptyStreamIsOneEmptyFinalChunk) {
  Bytes ct = Encrypt({});
  EXPECT_EQ(ct.size(), kStreamTagSize);
  ExpectRefused({}, "zero-length ciphertext", "no chunks");
}

TEST_F(StreamTest, TwentyMebibytesWithDefaultChunkSize) {
  Bytes pt = crypto::RandomBytes(20 * 1024 * 1024 + 123);
  Bytes ct = Encrypt(pt, kDefaultChunkSize);
  EXPECT_EQ(ct.size(), *StreamCiphertextLength(pt.size(), kDefaultChunkSize));
  Bytes back;
  ASSERT_OK(Decrypt(ct, Params(kDefaultChunkSize), &back));
  EXPECT_EQ(back, pt);
}

TEST_F(StreamTest, EncryptStreamHandlesShortReadsFromAPipe) {
  Bytes pt = crypto::RandomBytes(2 * kChunk + 77);
  int p[2];
  ASSERT_EQ(::pipe(p), 0);
  std::string out_path = Path("pipe-out");
  int out_fd = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // Feed the pipe in uneven pieces from another thread so reads come back short.
  std::thread writer([&] {
    for (size_t off = 0; off < pt.size();) {
      size_t n = std::min<size_t>(1000, pt.size() - off);
      if (::write(p[1], pt.data() + off, n) != ssize_t(n)) break;
      off += n;
      ::usleep(100);
    }
    ::close(p[1]);
  });
  Status st = EncryptStream(p[0], out_fd, Params());
  writer.join();
  ::close(p[0]);
  ::close(out_fd);
  ASSERT_OK(st);
  Bytes back;
  ASSERT_OK(Decrypt(ReadFile(out_path), Params(), &back));
  EXPECT_EQ(back, pt);
}

TEST_F(StreamTest, RefusesAFlippedByteInAnyChunk) {
  Bytes pt = crypto::RandomBytes(3 * kChunk + 5);
  Bytes ct = Encrypt(pt);
  ASSERT_EQ(ct.size(), 3 * kFull + 5 + kStreamTagSize);
  // First byte, a middle byte, a tag byte of each chunk, and the very last byte.
  for (size_t pos : {size_t{0}, size_t{kFull / 2}, size_t{kFull - 1}, size_t{kFull},
                     size_t{2 * kFull + 7}, size_t{3 * kFull}, ct.size() - 1}) {
    Bytes bad = ct;
    bad[pos] ^= 0x01;
    Bytes out;
    Status st = Decrypt(bad, Params(), &out);
    EXPECT_EQ(st.code(), ErrorCode::kIntegrity) << "flip at " << pos;
    // Chunks before the damaged one may be released; the damaged one and later must not be.
    EXPECT_LE(out.size(), pos / kFull * kChunk) << "flip at " << pos;
  }
}

TEST_F(StreamTest, RefusesTruncationAtAChunkBoundary) {
  Bytes ct = Encrypt(crypto::RandomBytes(3 * kChunk + 5));
  ExpectRefused(Slice(ct, 0, 3 * kFull), "drop final chunk", "final chunk missing");
  ExpectRefused(Slice(ct, 0, kFull), "keep first chunk only", "final chunk missing");
  // Also when the stream's final chunk is full (plaintext a multiple of the chunk size).
  Bytes exact = Encrypt(crypto::RandomBytes(2 * kChunk));
  ASSERT_EQ(exact.size(), 2 * kFull);
  ExpectRefused(Slice(exact, 0, kFull), "drop full final chunk", "final chunk missing");
}

TEST_F(StreamTest, RefusesTruncationInsideAChunk) {
  Bytes ct = Encrypt(crypto::RandomBytes(3 * kChunk + 5));
  ExpectRefused(Slice(ct, 0, ct.size() - 1), "last byte cut");
  ExpectRefused(Slice(ct, 0, 2 * kFull + 100), "cut inside third chunk");
  ExpectRefused(Slice(ct, 0, kFull + 3), "cut to shorter than a tag", "inside a chunk");
}

TEST_F(StreamTest, RefusesSwappedAndReorderedChunks) {
  Bytes pt = crypto::RandomBytes(4 * kChunk + 9);
  Bytes ct = Encrypt(pt);
  Bytes c0 = Slice(ct, 0, kFull), c1 = Slice(ct, kFull, kFull), c2 = Slice(ct, 2 * kFull, kFull),
        c3 = Slice(ct, 3 * kFull, kFull), c4 = Slice(ct, 4 * kFull, ct.size() - 4 * kFull);
  ExpectRefused(Concat({c1, c0, c2, c3, c4}), "first two swapped");
  ExpectRefused(Concat({c0, c1, c3, c2, c4}), "middle two swapped");
  ExpectRefused(Concat({c0, c2, c3, c1, c4}), "rotated");
  ExpectRefused(Concat({c0, c1, c2, c4}), "chunk dropped in the middle");
  ExpectRefused(Concat({c0, c0, c1, c2, c3, c4}), "chunk duplicated");
}

TEST_F(StreamTest, RefusesDataAfterTheFinalChunk) {
  Bytes full_final = Encrypt(crypto::RandomBytes(2 * kChunk));
  Bytes c0 = Slice(full_final, 0, kFull), c1 = Slice(full_final, kFull, kFull);
  ExpectRefused(Concat({c0, c1, c1}), "final chunk repeated", "after its final chunk");
  ExpectRefused(Concat({full_final, Bytes(1, 0)}), "one byte appended");
  // An appended chunk of another stream sealed with the same key and header.
  Bytes other = Encrypt(crypto::RandomBytes(kChunk + 5));
  ExpectRefused(Concat({full_final, other}), "other stream appended");
  Bytes short_final = Encrypt(crypto::RandomBytes(kChunk + 5));
  ExpectRefused(Concat({short_final, Bytes(kFull, 0)}), "chunk appended after short final");
}

TEST_F(StreamTest, RefusesAnotherHeaderDigestOrNoncePrefix) {
  Bytes pt = crypto::RandomBytes(2 * kChunk + 1);
  Bytes ct = Encrypt(pt);
  Bytes other_digest = digest_;
  other_digest[31] ^= 1;
  StreamParams p1{
      .dek = dek_, .nonce_prefix = prefix_, .header_digest = other_digest, .chunk_size = kChunk};
  Bytes out;
  EXPECT_EQ(Decrypt(ct, p1, &out).code(), ErrorCode::kIntegrity);
  EXPECT_TRUE(out.empty());
  Bytes other_prefix = prefix_;
  other_prefix[0] ^= 1;
  StreamParams p2{
      .dek = dek_, .nonce_prefix = other_prefix, .header_digest = digest_, .chunk_size = kChunk};
  EXPECT_EQ(Decrypt(ct, p2, &out).code(), ErrorCode::kIntegrity);
  EXPECT_TRUE(out.empty());
  SecretBytes other_dek = crypto::RandomSecret(kStreamKeySize);
  StreamParams p3{
      .dek = other_dek, .nonce_prefix = prefix_, .header_digest = digest_, .chunk_size = kChunk};
  EXPECT_EQ(Decrypt(ct, p3, &out).code(), ErrorCode::kIntegrity);
  // A different chunk size reads the layout differently and cannot authenticate either.
  EXPECT_EQ(Decrypt(ct, Params(2 * kChunk), &out).code(), ErrorCode::kIntegrity);
}

TEST_F(StreamTest, RefusesBadParameters) {
  EXPECT_EQ(ValidateStreamParams(Params()).code(), ErrorCode::kOk);
  EXPECT_EQ(ValidateStreamParams(Params(kMinChunkSize - 1)).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ValidateStreamParams(Params(kMaxChunkSize + 1)).code(), ErrorCode::kInvalidArgument);
  SecretBytes short_dek = crypto::RandomSecret(16);
  EXPECT_EQ(StreamEncryptor::Create(short_dek, prefix_, kChunk, digest_).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(StreamEncryptor::Create(dek_, Bytes(8), kChunk, digest_).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(StreamDecryptor::Create(dek_, prefix_, kChunk, Bytes(31)).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST_F(StreamTest, ChunkApiEnforcesSizesAndOrder) {
  auto enc = StreamEncryptor::Create(Params());
  ASSERT_OK(enc.status());
  Bytes out;
  EXPECT_EQ(enc->EncryptChunk(Bytes(kChunk - 1), false, out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(enc->EncryptChunk(Bytes(kChunk + 1), true, out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(enc->next_index(), 0u);
  Bytes pt0 = crypto::RandomBytes(kChunk), pt1 = crypto::RandomBytes(10);
  Bytes ct0, ct1;
  ASSERT_OK(enc->EncryptChunk(pt0, false, ct0));
  ASSERT_OK(enc->EncryptChunk(pt1, true, ct1));
  EXPECT_TRUE(enc->finished());
  EXPECT_EQ(enc->EncryptChunk(pt1, true, out).code(), ErrorCode::kFailedPrecondition);

  auto dec = StreamDecryptor::Create(Params());
  ASSERT_OK(dec.status());
  Bytes back(kChunk);
  // Random access: the final chunk first, then chunk 0.
  auto n1 = dec->DecryptChunk(1, ct1, true, back);
  ASSERT_OK(n1.status());
  EXPECT_EQ(Bytes(back.begin(), back.begin() + *n1), pt1);
  auto n0 = dec->DecryptChunk(0, ct0, false, back);
  ASSERT_OK(n0.status());
  EXPECT_EQ(back, pt0);
  // Wrong index, wrong flag, too-short and oversized chunks, small output buffer.
  EXPECT_EQ(dec->DecryptChunk(1, ct0, false, back).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->DecryptChunk(1, ct1, false, back).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->DecryptChunk(0, ct0, true, back).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->DecryptChunk(0, Bytes(15), true, back).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->DecryptChunk(0, Bytes(kFull + 1), true, back).status().code(),
            ErrorCode::kIntegrity);
  EXPECT_EQ(dec->DecryptChunk(kMaxChunks, ct1, true, back).status().code(),
            ErrorCode::kInvalidArgument);
  Bytes small(5);
  EXPECT_EQ(dec->DecryptChunk(1, ct1, true, small).status().code(), ErrorCode::kInvalidArgument);
  // In place: plaintext overwrites the ciphertext buffer.
  Bytes inplace = ct0;
  auto n = dec->DecryptChunk(0, inplace, false, inplace);
  ASSERT_OK(n.status());
  EXPECT_EQ(Slice(inplace, 0, kChunk), pt0);
}

// OpenInPieces opens one stored chunk with BeginChunk/UpdateChunk/FinishChunk, handing it over in
// pieces of `piece` bytes (so that pieces end inside the ciphertext and inside the tag).
StatusOr<size_t> OpenInPieces(StreamDecryptor& dec, uint64_t index, ByteSpan stored, bool last,
                              size_t piece, std::span<uint8_t> plaintext) {
  RETURN_IF_ERROR(dec.BeginChunk(index, stored.size(), last));
  while (!stored.empty()) {
    ASSIGN_OR_RETURN(size_t used,
                     dec.UpdateChunk(stored.first(std::min(piece, stored.size())), plaintext));
    stored = stored.subspan(used);
  }
  return dec.FinishChunk(plaintext);
}

TEST_F(StreamTest, IncrementalOpeningKeepsEveryCheckOfDecryptChunk) {
  auto enc = StreamEncryptor::Create(Params());
  ASSERT_OK(enc.status());
  Bytes pt0 = crypto::RandomBytes(kChunk), pt1 = crypto::RandomBytes(10);
  Bytes ct0, ct1;
  ASSERT_OK(enc->EncryptChunk(pt0, false, ct0));
  ASSERT_OK(enc->EncryptChunk(pt1, true, ct1));
  auto dec = StreamDecryptor::Create(Params());
  ASSERT_OK(dec.status());
  Bytes back(kChunk);
  // Any piece size: 1 byte, pieces that end inside the tag, the whole chunk, more than the chunk
  // (UpdateChunk consumes only the chunk's own bytes).
  for (size_t piece :
       {size_t{1}, size_t{7}, size_t{kChunk - 3}, size_t{kChunk + 9}, kFull, kFull + 100}) {
    SCOPED_TRACE(piece);
    auto n0 = OpenInPieces(*dec, 0, ct0, false, piece, back);
    ASSERT_OK(n0.status());
    EXPECT_EQ(*n0, kChunk);
    EXPECT_EQ(back, pt0);
    auto n1 = OpenInPieces(*dec, 1, ct1, true, piece, back);
    ASSERT_OK(n1.status());
    EXPECT_EQ(Slice(back, 0, *n1), pt1);
  }
  Bytes two = Concat({ct0, ct1});
  ASSERT_OK(dec->BeginChunk(0, kFull, false));
  auto used = dec->UpdateChunk(two, back);
  ASSERT_OK(used.status());
  EXPECT_EQ(*used, kFull);
  EXPECT_EQ(dec->chunk_bytes_left(), 0u);
  ASSERT_OK(dec->FinishChunk(back).status());

  // Wrong index (reordering), wrong flag (truncation or extension), another header digest, a
  // flipped byte in the body or the tag: kIntegrity, and the unauthenticated plaintext is wiped.
  auto other =
      StreamDecryptor::Create(dek_, prefix_, kChunk, crypto::RandomBytes(kStreamHeaderDigestSize));
  ASSERT_OK(other.status());
  Bytes body_flip = ct0, tag_flip = ct0;
  body_flip[100] ^= 1;
  tag_flip[kFull - 1] ^= 0x80;
  struct Case {
    const char* name;
    StreamDecryptor* d;
    uint64_t index;
    const Bytes* ct;
    bool last;
  } cases[] = {{"index", &*dec, 1, &ct0, false},
               {"flag", &*dec, 0, &ct0, true},
               {"digest", &*other, 0, &ct0, false},
               {"body", &*dec, 0, &body_flip, false},
               {"tag", &*dec, 0, &tag_flip, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Bytes wiped(kChunk, 0xAA);
    EXPECT_EQ(OpenInPieces(*c.d, c.index, *c.ct, c.last, 1000, wiped).status().code(),
              ErrorCode::kIntegrity);
    EXPECT_EQ(wiped, Bytes(kChunk, 0));
  }
  // Sizes a chunk cannot have, a missing tail, and calls out of order.
  EXPECT_EQ(dec->BeginChunk(0, kFull - 1, false).code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->BeginChunk(0, kFull + 1, true).code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->BeginChunk(0, 15, true).code(), ErrorCode::kIntegrity);
  EXPECT_EQ(dec->BeginChunk(kMaxChunks, kFull, false).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(dec->UpdateChunk(ct0, back).status().code(), ErrorCode::kFailedPrecondition);
  ASSERT_OK(dec->BeginChunk(0, kFull, false));
  ASSERT_OK(dec->UpdateChunk(ByteSpan(ct0).first(kFull - 1), back).status());
  EXPECT_EQ(dec->chunk_bytes_left(), 1u);
  EXPECT_EQ(dec->FinishChunk(back).status().code(), ErrorCode::kFailedPrecondition);
  Bytes small(5);
  ASSERT_OK(dec->BeginChunk(0, kFull, false));
  EXPECT_EQ(dec->UpdateChunk(ct0, small).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(dec->FinishChunk(back).status().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(StreamTest, EncryptChunkInPlaceMatchesCopying) {
  auto a = StreamEncryptor::Create(Params());
  auto b = StreamEncryptor::Create(Params());
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  Bytes pt = crypto::RandomBytes(kChunk);
  Bytes copied;
  ASSERT_OK(a->EncryptChunk(pt, false, copied));
  Bytes buf = pt;
  buf.resize(kFull);
  ASSERT_OK(b->EncryptChunkInto(ByteSpan(buf).first(kChunk), false, buf));
  EXPECT_EQ(buf, copied);
}

TEST(StreamLayout, DerivesChunksFromCiphertextLength) {
  auto l = StreamPlaintextLength(kStreamTagSize, kChunk);
  ASSERT_OK(l.status());
  EXPECT_EQ(l->chunk_count, 1u);
  EXPECT_EQ(l->plaintext_length, 0u);
  l = StreamPlaintextLength(2 * kFull, kChunk);
  ASSERT_OK(l.status());
  EXPECT_EQ(l->chunk_count, 2u);
  EXPECT_EQ(l->last_chunk_plaintext, kChunk);
  // A trailing empty final chunk is a valid (non-canonical) encoding.
  l = StreamPlaintextLength(2 * kFull + kStreamTagSize, kChunk);
  ASSERT_OK(l.status());
  EXPECT_EQ(l->chunk_count, 3u);
  EXPECT_EQ(l->plaintext_length, 2u * kChunk);
  EXPECT_EQ(StreamPlaintextLength(0, kChunk).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(StreamPlaintextLength(kFull + 15, kChunk).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(StreamPlaintextLength((kMaxChunks + 1) * kFull, kChunk).status().code(),
            ErrorCode::kIntegrity);
  EXPECT_EQ(StreamCiphertextLength(kMaxChunks * kChunk + 1, kChunk).status().code(),
            ErrorCode::kInvalidArgument);
}

// Range reads go through a file holding some unrelated bytes before the stream, as an object
// file with a header would.
class StreamRangeTest : public StreamTest {
 protected:
  void SetUp() override {
    pt_ = crypto::RandomBytes(3 * kChunk + 5);
    ct_ = Encrypt(pt_);
    std::string path = Path("object");
    ASSERT_OK(WriteFile(path, Concat({Bytes(kHeaderLen, 0xAB), ct_})));
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(fd_, 0);
  }
  void TearDown() override { ::close(fd_); }

  Status Range(uint64_t offset, size_t length, Bytes& out, uint64_t ct_len = 0) {
    out.assign(length, 0);
    return DecryptRange(fd_, kHeaderLen, ct_len ? ct_len : ct_.size(), offset, out, Params());
  }

  void ExpectRange(uint64_t offset, size_t length) {
    Bytes out;
    Status st = Range(offset, length, out);
    ASSERT_TRUE(st.ok()) << "range " << offset << "+" << length << ": " << st.ToString();
    EXPECT_EQ(out, Slice(pt_, offset, length)) << "range " << offset << "+" << length;
  }

  static constexpr uint64_t kHeaderLen = 100;
  Bytes pt_, ct_;
  int fd_ = -1;
};

TEST_F(StreamRangeTest, ReadsAtChunkEdges) {
  ExpectRange(0, 1);                    // first byte
  ExpectRange(kChunk - 1, 1);           // last byte of chunk 0
  ExpectRange(kChunk, 1);               // first byte of chunk 1
  ExpectRange(kChunk - 10, 20);         // spans chunks 0 and 1
  ExpectRange(2 * kChunk - 1, 2);       // spans chunks 1 and 2
  ExpectRange(kChunk / 2, 2 * kChunk);  // spans three chunks
  ExpectRange(3 * kChunk, 5);           // the whole short final chunk
  ExpectRange(pt_.size() - 1, 1);       // last byte of the stream
  ExpectRange(0, pt_.size());           // everything
  ExpectRange(pt_.size(), 0);           // empty range at the end
}

TEST_F(StreamRangeTest, RefusesOutOfRangeRequests) {
  Bytes out;
  EXPECT_EQ(Range(pt_.size(), 1, out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Range(pt_.size() - 1, 2, out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Range(pt_.size() + 1, 0, out).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Range(UINT64_MAX, 1, out).code(), ErrorCode::kInvalidArgument);
}

TEST_F(StreamRangeTest, RefusesTamperedOrMislabelledLengths) {
  Bytes out;
  // Claiming the stream ends after chunk 1 makes chunk 1 look final: it does not authenticate.
  EXPECT_EQ(Range(kChunk, 1, out, 2 * kFull).code(), ErrorCode::kIntegrity);
  // Claiming more chunks than exist: the real final chunk is read as non-final.
  EXPECT_EQ(Range(3 * kChunk, 1, out, 4 * kFull).code(), ErrorCode::kIntegrity);
  // A length no encoding can have.
  EXPECT_EQ(Range(0, 1, out, kFull + 3).code(), ErrorCode::kIntegrity);
  // A range inside an untouched chunk still works when a later chunk is damaged...
  int fd2 = fd_;
  std::string path = Path("damaged");
  Bytes damaged = ct_;
  damaged[2 * kFull + 3] ^= 0x80;
  ASSERT_OK(WriteFile(path, Concat({Bytes(kHeaderLen, 0xAB), damaged})));
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  EXPECT_OK(Range(0, kChunk, out));
  // ...and any range touching the damaged chunk fails and leaves no plaintext in `out`.
  Status st = Range(kChunk, kChunk + 1, out);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_EQ(out, Bytes(out.size(), 0));
  ::close(fd_);
  fd_ = fd2;
}

}  // namespace
}  // namespace custos::files

namespace custos::files {
namespace {

// The custody envelope path: a small secret sealed to Y in memory opens with S = y*R only.
TEST(DualControlSecret, SealsInMemoryAndOpensOnlyWithTheRightPoint) {
  crypto::Scalar y = crypto::Scalar::Random();
  crypto::Point big_y = crypto::Point::BaseMul(y);
  SecretBytes secret = crypto::RandomSecret(32);
  auto file = SealDualControlSecret(big_y, secret);
  ASSERT_TRUE(file.ok()) << file.status().message();
  ASSERT_EQ(file->size(), kDualControlHeaderSize + 32 + kStreamTagSize);
  auto h = DualControlHeader::Decode(*file);
  ASSERT_TRUE(h.ok());
  auto opened = OpenDualControlSecret(*file, h->r * y);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  EXPECT_TRUE(opened->ConstantTimeEquals(secret));
  // Wrong S, a flipped body byte, a flipped header byte, a truncated body: all refused.
  EXPECT_EQ(OpenDualControlSecret(*file, h->r * crypto::Scalar::Random()).status().code(),
            ErrorCode::kIntegrity);
  for (size_t pos : {size_t{100}, kDualControlHeaderSize + 3, file->size() - 1}) {
    Bytes bad = *file;
    bad[pos] ^= 1;
    EXPECT_FALSE(OpenDualControlSecret(bad, h->r * y).ok()) << pos;
  }
  Bytes cut(file->begin(), file->end() - 1);
  EXPECT_FALSE(OpenDualControlSecret(cut, h->r * y).ok());
  EXPECT_FALSE(SealDualControlSecret(big_y, crypto::RandomSecret(kMinChunkSize + 1)).ok());
}

}  // namespace
}  // namespace custos::files
