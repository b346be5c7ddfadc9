// Fuzzes the STREAM decryptor (src/protocol/stream/stream.h) with a fixed key. Arbitrary bytes cannot carry
// a valid tag, so the hostile-input half exercises the framing: the layout derived from a length,
// chunk splitting, the final-chunk detection of DecryptStream and the range arithmetic of
// DecryptRange; it must never crash, and must never report success. The other half treats the
// input as plaintext, checks the round trip, then damages one ciphertext byte chosen by the input
// and requires a refusal.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "protocol/stream/stream.h"

namespace custos::files {
namespace {

constexpr uint32_t kChunk = kMinChunkSize;

const StreamParams& Params() {
  static const SecretBytes dek =
      SecretBytes::CopyFrom(std::string_view("0123456789abcdef0123456789abcdef"));
  static const Bytes prefix(kStreamNoncePrefixSize, 0x42);
  static const Bytes digest(kStreamHeaderDigestSize, 0x17);
  static const StreamParams params{
      .dek = dek, .nonce_prefix = prefix, .header_digest = digest, .chunk_size = kChunk};
  return params;
}

int MemFd(const char* name) {
  int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

// Reset replaces the memfd's content with `data` and rewinds it.
void Reset(int fd, ByteSpan data) {
  if (::ftruncate(fd, 0) != 0 || ::lseek(fd, 0, SEEK_SET) != 0) std::abort();
  if (!data.empty() && ::pwrite(fd, data.data(), data.size(), 0) != ssize_t(data.size()))
    std::abort();
}

uint64_t ReadU64(ByteSpan b) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < b.size(); ++i) v = (v << 8) | b[i];
  return v;
}

// HostileCiphertext feeds `ct` to every decryption entry point; none may accept it.
void HostileCiphertext(ByteSpan ct, uint64_t range_seed) {
  static int in = MemFd("fuzz-ct");
  static int out = MemFd("fuzz-pt");
  auto dec = StreamDecryptor::Create(Params());
  if (!dec.ok()) std::abort();
  Bytes pt(kChunk);
  const size_t full = kChunk + kStreamTagSize;
  for (uint64_t index = 0, off = 0; off < ct.size() || index == 0; ++index, off += full) {
    size_t n = std::min(full, ct.size() - off);
    bool last = off + n == ct.size();
    if (dec->DecryptChunk(index, ct.subspan(off, n), last, pt).ok()) std::abort();
    if (last) break;
  }
  (void)StreamPlaintextLength(ct.size(), kChunk);

  Reset(in, ct);
  Reset(out, {});
  if (DecryptStream(in, out, Params()).ok()) std::abort();

  // Offsets and a length taken from the input, bounded so `out` stays small.
  uint64_t offset = range_seed % (ct.size() + 2);
  Bytes range(static_cast<size_t>((range_seed >> 32) % 9000));
  uint64_t chunk0 = (range_seed >> 16) % 3;
  Bytes file(chunk0, 0);
  file.insert(file.end(), ct.begin(), ct.end());
  Reset(in, file);
  Status st = DecryptRange(in, chunk0, ct.size(), offset, range, Params());
  if (st.ok() && !range.empty()) std::abort();
  // A range call that reports failure must not leave plaintext behind.
  for (uint8_t b : range) {
    if (!st.ok() && b != 0) std::abort();
  }
}

// RoundTrip encrypts `pt` chunk by chunk, checks that it decrypts, then flips one bit.
void RoundTrip(ByteSpan pt, uint64_t flip_seed) {
  auto enc = StreamEncryptor::Create(Params());
  auto dec = StreamDecryptor::Create(Params());
  if (!enc.ok() || !dec.ok()) std::abort();
  Bytes ct, piece;
  size_t off = 0;
  do {
    size_t n = std::min<size_t>(kChunk, pt.size() - off);
    bool last = off + n == pt.size();
    if (!enc->EncryptChunk(pt.subspan(off, n), last, piece).ok()) std::abort();
    ct.insert(ct.end(), piece.begin(), piece.end());
    off += n;
  } while (off < pt.size());
  auto expected = StreamCiphertextLength(pt.size(), kChunk);
  if (!expected.ok() || *expected != ct.size()) std::abort();

  auto check = [&](const Bytes& c) -> bool {
    auto layout = StreamPlaintextLength(c.size(), kChunk);
    if (!layout.ok()) return false;
    Bytes out(kChunk), all;
    const size_t full = kChunk + kStreamTagSize;
    for (uint64_t i = 0; i < layout->chunk_count; ++i) {
      size_t n = std::min<size_t>(full, c.size() - i * full);
      auto got =
          dec->DecryptChunk(i, ByteSpan(c).subspan(i * full, n), i + 1 == layout->chunk_count, out);
      if (!got.ok()) return false;
      all.insert(all.end(), out.begin(), out.begin() + *got);
    }
    return std::equal(all.begin(), all.end(), pt.begin(), pt.end());  // (memcmp of empty buffers passes null)
  };
  if (!check(ct)) std::abort();
  Bytes bad = ct;
  bad[flip_seed % bad.size()] ^= static_cast<uint8_t>(1u << ((flip_seed >> 40) % 8));
  if (check(bad)) std::abort();
}

}  // namespace
}  // namespace custos::files

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::files;
  if (size < 9) return 0;
  custos::ByteSpan in(data, size);
  uint64_t seed = ReadU64(in.subspan(1, 8));
  custos::ByteSpan body = in.subspan(9);
  if (body.size() > 4 * (kChunk + kStreamTagSize)) return 0;  // a few chunks cover every path
  if (data[0] & 1)
    RoundTrip(body, seed);
  else
    HostileCiphertext(body, seed);
  return 0;
}
