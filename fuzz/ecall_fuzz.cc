// Fuzzes the host-enclave call interface (src/appliance/ecall/ecall.h). The enclave decodes requests the
// untrusted host wrote, and the host decodes responses from a process it launched but does not
// control, so Request::Decode, Response::Decode and ReadFrame must never crash on any bytes.
// Each input is offered to both decoders; whatever decodes must be canonical (its encoding is
// exactly the input) and decode again to the same value. The input is also sent through a
// socketpair: as a raw stream cut into frames by ReadFrame and by FrameReader, which must agree
// (each frame is offered to the decoders), and wrapped by WriteFrame, which both readers must
// give back unchanged. A decoded KMS request's arguments go through the decoders the core applies
// to them (ecall/kms_calls.h: KeyRef, encryption context, ciphertext header, u32), which must
// never crash and must be canonical where they succeed (fuzz/kms_blob_fuzz.cc fuzzes them alone).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "appliance/ecall/ecall.h"
#include "appliance/ecall/kms_calls.h"

namespace custos::ecall {
namespace {

// Stream inputs stay well below a Unix socket's buffer, so the single-threaded writer never
// blocks waiting for the reader.
constexpr size_t kMaxStreamInput = 16 * 1024;

bool SameBytes(ByteSpan a, ByteSpan b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// KmsArgs says which arguments of a KMS call carry which encoding.
struct KmsArgs {
  Call call;
  std::vector<size_t> refs, contexts, blobs, u32s;
};

const std::vector<KmsArgs>& KmsArgTable() {
  static const std::vector<KmsArgs> table = {
      {Call::kKmsCreateKey, {}, {}, {}, {1}},
      {Call::kKmsEncrypt, {0}, {2}, {}, {}},
      {Call::kKmsDecrypt, {0}, {2}, {1}, {}},
      {Call::kKmsReEncrypt, {0, 3}, {2, 4}, {1}, {}},
      {Call::kKmsGenerateDataKey, {0}, {2}, {}, {1}},
      {Call::kKmsGenerateRandom, {}, {}, {}, {0}},
      {Call::kKmsSign, {0}, {}, {}, {}},
      {Call::kKmsVerify, {0}, {}, {}, {}},
      {Call::kKmsGenerateMac, {0}, {}, {}, {}},
      {Call::kKmsVerifyMac, {0}, {}, {}, {}},
  };
  return table;
}

void FuzzKmsArguments(const Request& req) {
  for (const KmsArgs& k : KmsArgTable()) {
    if (k.call != req.call) continue;
    for (size_t i : k.refs) {
      auto ref = KeyRef::Decode(req.args[i]);
      if (ref.ok() && !SameBytes(ref->Encode(), req.args[i])) std::abort();
    }
    for (size_t i : k.contexts) {
      auto ctx = DecodeEncryptionContext(req.args[i]);
      if (ctx.ok() && !SameBytes(EncodeEncryptionContext(*ctx), req.args[i])) std::abort();
    }
    for (size_t i : k.blobs) {
      auto h = ParseCiphertextHeader(req.args[i]);
      if (h.ok() && h->key_id.empty()) std::abort();
    }
    for (size_t i : k.u32s) {
      auto v = ParseU32Arg(req.args[i], "n");
      if (v.ok() != (req.args[i].size() == 4)) std::abort();
    }
  }
}

void FuzzRequest(ByteSpan in) {
  auto req = Request::Decode(in);
  if (!req.ok()) return;
  if (static_cast<int>(req->args.size()) != ArgCount(req->call)) std::abort();
  if (CallName(req->call) == "unknown") std::abort();
  Bytes encoded = req->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = Request::Decode(encoded);
  if (!again.ok() || again->call != req->call || again->args != req->args) std::abort();
  FuzzKmsArguments(*req);
}

void FuzzResponse(ByteSpan in) {
  auto resp = Response::Decode(in);
  if (!resp.ok()) return;
  if (resp->code != ErrorCode::kOk && !resp->results.empty()) std::abort();
  if (resp->ToStatus().ok() != (resp->code == ErrorCode::kOk)) std::abort();
  Bytes encoded = resp->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = Response::Decode(encoded);
  if (!again.ok() || again->code != resp->code || again->message != resp->message ||
      again->results != resp->results)
    std::abort();
}

void FuzzPayload(ByteSpan in) {
  FuzzRequest(in);
  FuzzResponse(in);
}

// SocketPair owns both ends of a Unix stream socket pair.
struct SocketPair {
  int fd[2] = {-1, -1};
  SocketPair() {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) != 0) std::abort();
  }
  ~SocketPair() {
    for (int f : fd)
      if (f >= 0) ::close(f);
  }
  void CloseWriter() {
    ::close(fd[0]);
    fd[0] = -1;
  }
};

bool WriteAll(int fd, ByteSpan b) {
  size_t off = 0;
  while (off < b.size()) {
    ssize_t n = ::write(fd, b.data() + off, b.size() - off);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Frames is what one reader made of a stream: the frames it returned, then the error it stopped
// with.
struct Frames {
  std::vector<Bytes> frames;
  ErrorCode end = ErrorCode::kOk;
};

// ReadStream sends `in` through a socket pair, closes the writing end and reads frames with
// `next` until it fails. Every frame must be exactly the bytes that followed its length.
template <typename Next>
Frames ReadStream(ByteSpan in, Next next) {
  SocketPair s;
  if (!WriteAll(s.fd[0], in)) std::abort();
  s.CloseWriter();
  Frames out;
  size_t consumed = 0;
  while (true) {
    auto frame = next(s.fd[1]);
    if (!frame.ok()) {
      out.end = frame.status().code();
      if (out.end != ErrorCode::kUnavailable && out.end != ErrorCode::kInvalidArgument)
        std::abort();
      return out;
    }
    if (frame->size() > kMaxFrameSize) std::abort();
    consumed += 4 + frame->size();
    if (consumed > in.size()) std::abort();  // a frame made of bytes that were never sent
    if (!SameBytes(*frame, in.subspan(consumed - frame->size(), frame->size()))) std::abort();
    out.frames.push_back(std::move(*frame));
  }
}

// FuzzStream cuts the raw input into frames with ReadFrame and with FrameReader (the host and
// the enclave use the latter); both must see the same frames and stop with the same error.
void FuzzStream(ByteSpan in) {
  Frames plain = ReadStream(in, [](int fd) { return ReadFrame(fd); });
  std::optional<FrameReader> reader;
  Frames buffered = ReadStream(in, [&reader](int fd) {
    if (!reader) reader.emplace(fd);
    return reader->Next();
  });
  if (plain.frames != buffered.frames || plain.end != buffered.end) std::abort();
  for (const Bytes& f : plain.frames) FuzzPayload(f);
}

// FuzzFrameRoundTrip: WriteFrame then ReadFrame (or FrameReader) gives back the payload, and
// then EOF.
void FuzzFrameRoundTrip(ByteSpan in) {
  for (bool buffered : {false, true}) {
    SocketPair s;
    if (!WriteFrame(s.fd[0], in).ok()) std::abort();
    s.CloseWriter();
    FrameReader reader(s.fd[1]);
    auto next = [&] { return buffered ? reader.Next() : ReadFrame(s.fd[1]); };
    auto back = next();
    if (!back.ok() || !SameBytes(*back, in)) std::abort();
    auto eof = next();
    if (eof.ok() || eof.status().code() != ErrorCode::kUnavailable) std::abort();
  }
}

}  // namespace
}  // namespace custos::ecall

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::ecall;
  custos::ByteSpan in(data, size);
  FuzzPayload(in);
  if (size <= kMaxStreamInput) {
    FuzzStream(in);
    FuzzFrameRoundTrip(in);
  }
  return 0;
}
