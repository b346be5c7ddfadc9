#include "appliance/ecall/ecall.h"

#include <array>
#include <tuple>

#include "appliance/ecall/calls.h"

#include "common/file.h"
#include "common/secret.h"

#include <openssl/crypto.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>

namespace custos::ecall {
namespace {

constexpr std::string_view kRequestMagic = "CECL";
constexpr std::string_view kResponseMagic = "CERS";

struct CallInfo {
  Call call;
  std::string_view name;
  int args;
};

// The table of names and arities, built from the declarations in calls.h (the one place that
// says which calls exist and what they carry).
template <typename... C>
constexpr std::array<CallInfo, sizeof...(C)> TableOf(std::tuple<C...>*) {
  return {CallInfo{C::kCall, C::kName, static_cast<int>(FieldCount<typename C::Args>())}...};
}
constexpr auto kCalls = TableOf(static_cast<AllCalls*>(nullptr));

constexpr bool DistinctCalls() {
  for (size_t i = 0; i < kCalls.size(); ++i)
    for (size_t j = i + 1; j < kCalls.size(); ++j)
      if (kCalls[i].call == kCalls[j].call || kCalls[i].name == kCalls[j].name) return false;
  return true;
}
static_assert(DistinctCalls(), "two declarations in calls.h share a wire value or a name");
static_assert(kCalls.size() <= 64);
constexpr bool ArgumentsFit() {
  for (const CallInfo& c : kCalls)
    if (c.args < 0 || static_cast<size_t>(c.args) > kMaxArgs) return false;
  return true;
}
static_assert(ArgumentsFit(), "a call in calls.h has more arguments than a request may carry");

const CallInfo* Find(Call call) {
  for (const CallInfo& c : kCalls)
    if (c.call == call) return &c;
  return nullptr;
}

Status CheckMagic(ByteReader& r, std::string_view magic) {
  ASSIGN_OR_RETURN(ByteSpan m, r.Raw(4, "magic"));
  if (ToString(m) != magic) return InvalidArgument("ecall: bad magic");
  ASSIGN_OR_RETURN(uint16_t version, r.U16("version"));
  if (version != kVersion)
    return InvalidArgument("ecall: interface version " + std::to_string(version) +
                           ", this side speaks " + std::to_string(kVersion));
  return Status::Ok();
}

StatusOr<std::vector<Bytes>> ReadList(ByteReader& r) {
  ASSIGN_OR_RETURN(uint16_t n, r.U16("count"));
  if (n > kMaxArgs) return InvalidArgument("ecall: too many fields");
  std::vector<Bytes> out;
  out.reserve(n);
  for (uint16_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(ByteSpan b, r.Var("field", kMaxFrameSize));
    out.emplace_back(b.begin(), b.end());
  }
  return out;
}

}  // namespace

std::string_view CallName(Call call) {
  const CallInfo* c = Find(call);
  return c == nullptr ? "unknown" : c->name;
}

int ArgCount(Call call) {
  const CallInfo* c = Find(call);
  return c == nullptr ? -1 : c->args;
}

Bytes Request::Encode() const {
  size_t size = kRequestMagic.size() + 6;
  for (const Bytes& a : args) size += 4 + a.size();
  ByteWriter w;
  w.Reserve(size);  // arguments may be secret (plaintexts): no reallocation leaves a copy behind
  w.Raw(AsBytes(kRequestMagic)).U16(kVersion).U16(static_cast<uint16_t>(call));
  w.U16(static_cast<uint16_t>(args.size()));
  for (const Bytes& a : args) w.Var(a);
  return w.Take();
}

StatusOr<Request> Request::Decode(ByteSpan payload) {
  ByteReader r(payload);
  RETURN_IF_ERROR(CheckMagic(r, kRequestMagic));
  ASSIGN_OR_RETURN(uint16_t call, r.U16("call"));
  Request req;
  req.call = static_cast<Call>(call);
  int want = ArgCount(req.call);
  if (want < 0) return InvalidArgument("ecall: unknown call " + std::to_string(call));
  ASSIGN_OR_RETURN(req.args, ReadList(r));
  RETURN_IF_ERROR(r.ExpectEnd("ecall request"));
  if (static_cast<int>(req.args.size()) != want)
    return InvalidArgument("ecall: " + std::string(CallName(req.call)) + " takes " +
                           std::to_string(want) + " arguments, got " +
                           std::to_string(req.args.size()));
  return req;
}

std::string_view ReasonName(Reason reason) {
  switch (reason) {
    case Reason::kNone: return "none";
    case Reason::kSealed: return "sealed";
    case Reason::kOtherKey: return "other-key";
    case Reason::kMaterialDoesNotUnwrap: return "material-does-not-unwrap";
    case Reason::kCiphertextInvalid: return "ciphertext-invalid";
    case Reason::kSignatureInvalid: return "signature-invalid";
    case Reason::kMacInvalid: return "mac-invalid";
    case Reason::kKeyUsage: return "key-usage";
  }
  return "unknown";
}

Response Response::FromStatus(const Status& status) {
  Response r;
  r.code = status.code();
  // A reason from outside the enum (another module's) is not the core's to report.
  r.reason = status.reason() <= kMaxReason ? static_cast<Reason>(status.reason()) : Reason::kNone;
  r.message = status.message();
  return r;
}

Status Response::ToStatus() const {
  if (code == ErrorCode::kOk) return Status::Ok();
  if (message.rfind("enclave: ", 0) == 0) return Status(code, message).WithReason(reason);
  return Status(code, "enclave: " + message).WithReason(reason);
}

Bytes Response::Encode() const {
  size_t size = kResponseMagic.size() + 12 + message.size();
  for (const Bytes& b : results) size += 4 + b.size();
  ByteWriter w;
  w.Reserve(size);  // results may be secret (Decrypt plaintexts, SigV4 secrets)
  w.Raw(AsBytes(kResponseMagic)).U16(kVersion).U16(static_cast<uint16_t>(code));
  w.U16(static_cast<uint16_t>(reason)).Var(message);
  w.U16(static_cast<uint16_t>(results.size()));
  for (const Bytes& b : results) w.Var(b);
  return w.Take();
}

StatusOr<Response> Response::Decode(ByteSpan payload) {
  ByteReader r(payload);
  RETURN_IF_ERROR(CheckMagic(r, kResponseMagic));
  Response resp;
  ASSIGN_OR_RETURN(uint16_t code, r.U16("code"));
  if (code > static_cast<uint16_t>(ErrorCode::kInternal))
    return InvalidArgument("ecall: unknown error code " + std::to_string(code));
  resp.code = static_cast<ErrorCode>(code);
  ASSIGN_OR_RETURN(uint16_t reason, r.U16("reason"));
  if (reason > kMaxReason) return InvalidArgument("ecall: unknown reason " + std::to_string(reason));
  if (reason != 0 && resp.code == ErrorCode::kOk) return InvalidArgument("ecall: a reason on success");
  resp.reason = static_cast<Reason>(reason);
  ASSIGN_OR_RETURN(ByteSpan msg, r.Var("message", 4096));
  resp.message = ToString(msg);
  ASSIGN_OR_RETURN(resp.results, ReadList(r));
  RETURN_IF_ERROR(r.ExpectEnd("ecall response"));
  if (resp.code != ErrorCode::kOk && !resp.results.empty())
    return InvalidArgument("ecall: a failed call carries results");
  return resp;
}

Status WriteFrame(int fd, ByteSpan payload) {
  if (payload.size() > kMaxFrameSize) return InvalidArgument("ecall: frame too large");
  ByteWriter w;
  w.Reserve(4 + payload.size()).U32(static_cast<uint32_t>(payload.size())).Raw(payload);
  Bytes frame = w.Take();
  Status st = WriteFully(fd, frame).WithContext("ecall");
  WipeBytes(frame);  // the frame may carry secrets across the boundary
  return st;
}

Status AppendFrame(Bytes& out, ByteSpan payload) {
  if (payload.size() > kMaxFrameSize) return InvalidArgument("ecall: frame too large");
  const size_t n = payload.size();
  const uint8_t len[4] = {static_cast<uint8_t>(n >> 24), static_cast<uint8_t>(n >> 16), static_cast<uint8_t>(n >> 8),
                          static_cast<uint8_t>(n)};
  if (out.capacity() < out.size() + 4 + n) {
    // Growing moves the bytes: wipe the old buffer (frames carry secrets).
    Bytes bigger;
    bigger.reserve(std::max(out.capacity() * 2, out.size() + 4 + n));
    bigger.insert(bigger.end(), out.begin(), out.end());
    WipeBytes(out);
    out.swap(bigger);
  }
  out.insert(out.end(), len, len + 4);
  out.insert(out.end(), payload.begin(), payload.end());
  return Status::Ok();
}

namespace {
Status ReadExact(int fd, uint8_t* p, size_t len) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, p + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("ecall: read failed: ") + std::strerror(errno));
    if (n == 0) return Unavailable("ecall: peer closed");
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}
}  // namespace

StatusOr<Bytes> ReadFrame(int fd) {
  uint8_t len_bytes[4];
  RETURN_IF_ERROR(ReadExact(fd, len_bytes, 4));
  uint32_t len = (uint32_t{len_bytes[0]} << 24) | (uint32_t{len_bytes[1]} << 16) |
                 (uint32_t{len_bytes[2]} << 8) | len_bytes[3];
  if (len > kMaxFrameSize) return InvalidArgument("ecall: frame too large");
  Bytes payload(len);
  RETURN_IF_ERROR(ReadExact(fd, payload.data(), len));
  return payload;
}

Status FrameReader::Fill(size_t want) {
  // Make room: move the unread part to the front, grow if a frame is larger than the buffer.
  // Frames may carry secrets: no byte is left behind by the move or by growing the buffer.
  if (start_ > 0) {
    std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
    OPENSSL_cleanse(buf_.data() + (end_ - start_), start_);
    end_ -= start_;
    start_ = 0;
  }
  size_t need = std::max<size_t>(want, 64 * 1024);
  if (buf_.size() < need) {
    Bytes bigger(need);
    if (end_ > 0) std::memcpy(bigger.data(), buf_.data(), end_);
    WipeBytes(buf_);
    buf_.swap(bigger);
  }
  while (end_ < want) {
    ssize_t n = ::read(fd_, buf_.data() + end_, buf_.size() - end_);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("ecall: read failed: ") + std::strerror(errno));
    if (n == 0) return Unavailable("ecall: peer closed");
    end_ += static_cast<size_t>(n);
  }
  return Status::Ok();
}

FrameReader::~FrameReader() { WipeBytes(buf_); }

bool FrameReader::HasFrame() const {
  if (end_ - start_ < 4) return false;
  const uint8_t* p = buf_.data() + start_;
  uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  // An oversized length is "a frame" too: Next reports it.
  return len > kMaxFrameSize || end_ - start_ >= 4 + size_t{len};
}

Status FrameReader::ReadAvailable() {
  for (;;) {
    if (start_ > 0 && start_ == end_) start_ = end_ = 0;
    if (buf_.size() - end_ < 16 * 1024) {
      // Room for what may be waiting: compact, then grow (wiping what is left behind).
      if (start_ > 0) {
        std::memmove(buf_.data(), buf_.data() + start_, end_ - start_);
        OPENSSL_cleanse(buf_.data() + (end_ - start_), start_);
        end_ -= start_;
        start_ = 0;
      }
      if (buf_.size() - end_ < 16 * 1024) {
        Bytes bigger(std::max<size_t>(64 * 1024, buf_.size() * 2));
        if (end_ > 0) std::memcpy(bigger.data(), buf_.data(), end_);
        WipeBytes(buf_);
        buf_.swap(bigger);
      }
    }
    ssize_t n = ::recv(fd_, buf_.data() + end_, buf_.size() - end_, MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Status::Ok();
    if (n < 0) return Unavailable(std::string("ecall: read failed: ") + std::strerror(errno));
    if (n == 0) return Unavailable("ecall: peer closed");
    end_ += static_cast<size_t>(n);
  }
}

StatusOr<Bytes> FrameReader::Next() {
  if (end_ - start_ < 4) RETURN_IF_ERROR(Fill(4));
  const uint8_t* p = buf_.data() + start_;
  uint32_t len = (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
  if (len > kMaxFrameSize) return InvalidArgument("ecall: frame too large");
  if (end_ - start_ < 4 + size_t{len}) RETURN_IF_ERROR(Fill(4 + size_t{len}));
  Bytes payload(buf_.begin() + static_cast<ptrdiff_t>(start_ + 4),
                buf_.begin() + static_cast<ptrdiff_t>(start_ + 4 + len));
  OPENSSL_cleanse(buf_.data() + start_, 4 + size_t{len});  // the caller owns the only copy now
  start_ += 4 + len;
  if (start_ == end_) start_ = end_ = 0;
  return payload;
}

}  // namespace custos::ecall
