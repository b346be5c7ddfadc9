// The one call interface between the untrusted host (src/appliance/host/) and the trusted core
// (src/appliance/enclave/): DESIGN.md "Attested appliance", docs/protocol.md "Host-enclave calls".
// Everything the host may ask the enclave is declared in calls.h; nothing else crosses the
// boundary. One call per request (never per primitive).
//
// Wire format (all integers big-endian; var(b) = u32 length || b):
//   frame    = u32 length || payload                          (length <= kMaxFrameSize)
//   request  = "CECL" || u16 version(=2) || u16 call || u16 argc || var(arg) * argc
//   response = "CERS" || u16 version(=2) || u16 code || u16 reason || var(message) || u16 n ||
//              var(result) * n
// `code` is a custos ErrorCode (0 = ok), `reason` an ecall::Reason (0 = none; below). A failed
// call has no results and a message that names the failed check; messages never carry secret
// material. Requests carry version 2 too.
//
// What crosses, by design: custody.json, the custody envelope (the root key sealed to Y), SIGMA
// handshake messages and SIGMA records (encrypted under keys only the enclave and one keeper
// hold), evidence, public status. The root key and master-key material never cross in clear.
//
// The calls, with their typed arguments and results, are declared once, in calls.h; what each
// does, the checks it makes and its errors are in docs/protocol.md "Host-enclave calls" and "KMS
// calls" (a test checks that table against the declarations). The enum below gives the wire
// values only.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"

namespace custos::ecall {

// kVersion is the interface version; a peer with another version is refused at kHello.
// Version 2 added the response's `reason`.
inline constexpr uint16_t kVersion = 2;
// kMaxFrameSize bounds one frame (request or response payload).
inline constexpr size_t kMaxFrameSize = 1 << 20;
// kMaxArgs bounds the number of arguments or results in one message.
inline constexpr size_t kMaxArgs = 8;

// Call names each entry point; values are wire values and never reused.
enum class Call : uint16_t {
  kHello = 1,
  kLoad = 2,
  kInit = 3,
  kStatus = 4,
  kSigmaRespond = 5,
  kSigmaFinish = 6,
  kRecord = 7,
  kJoinStart = 8,
  kJoinFinish = 9,
  kJoinComplete = 10,
  kPing = 11,
  kCustodyUpdate = 12,
  kOriginRebind = 13,
  kKmsCreateKey = 20,
  kKmsEncrypt = 21,
  kKmsDecrypt = 22,
  kKmsReEncrypt = 23,
  kKmsGenerateDataKey = 24,
  kKmsGenerateRandom = 25,
  kKmsSign = 26,
  kKmsVerify = 27,
  kKmsGenerateMac = 28,
  kKmsVerifyMac = 29,
  kKmsNewAccessSecret = 30,
  kKmsOpenAccessSecret = 31,
  kAuditAppend = 32,
  kXksEncrypt = 33,
  kXksDecrypt = 34,
  kKmipEncrypt = 35,
  kKmipDecrypt = 36,
  kKmsImportKey = 37,
  kAuditLine = 38,
};

// CallName returns the call's name for logs ("hello", "sigma-respond", ...), or "unknown".
std::string_view CallName(Call call);
// ArgCount returns how many arguments `call` takes, or -1 for an unknown call.
int ArgCount(Call call);

// Request is one decoded call.
struct Request {
  Call call = Call::kPing;
  std::vector<Bytes> args;

  // Encode renders the request payload (without the frame length).
  Bytes Encode() const;
  // Decode parses a request payload and checks the magic, the version, that the call is known
  // and that it has exactly ArgCount(call) arguments. kInvalidArgument names the bad field.
  static StatusOr<Request> Decode(ByteSpan payload);
};

// Reason says why a core call failed, beyond its ErrorCode. It crosses the boundary as a value
// (the response's `reason`), so the host maps core errors by value (appliance/kms: a table from
// Reason to AWS errors), never by searching the message. Values are wire values, never reused.
enum class Reason : uint16_t {
  kNone = 0,
  kSealed = 1,                 // the core has no root key yet (kFailedPrecondition)
  kOtherKey = 2,               // a KMS ciphertext names another key or version (kInvalidArgument)
  kMaterialDoesNotUnwrap = 3,  // stored key material or an access secret does not unwrap (kIntegrity)
  kCiphertextInvalid = 4,      // a KMS ciphertext is malformed, tampered with, or its context differs
  kSignatureInvalid = 5,       // kms-verify: the signature does not verify (kIntegrity)
  kMacInvalid = 6,             // kms-verify-mac: the MAC does not verify (kIntegrity)
  kKeyUsage = 7,               // the key's spec does not allow the operation (kFailedPrecondition)
};
inline constexpr uint16_t kMaxReason = 7;
// ReasonName returns a stable name ("sealed", "other-key", ...) for logs and tests.
std::string_view ReasonName(Reason reason);

// Response is one decoded answer.
struct Response {
  ErrorCode code = ErrorCode::kOk;
  Reason reason = Reason::kNone;  // for a failed call: why, if the core said
  std::string message;
  std::vector<Bytes> results;

  static Response FromStatus(const Status& status);
  // ToStatus returns OK, or the error the enclave reported (prefixed "enclave: ").
  Status ToStatus() const;
  Bytes Encode() const;
  static StatusOr<Response> Decode(ByteSpan payload);
};

// WriteFrame writes u32 length || payload to `fd`, retrying short writes and EINTR.
// kInvalidArgument above kMaxFrameSize; kUnavailable when the peer is gone.
Status WriteFrame(int fd, ByteSpan payload);
// AppendFrame appends u32 length || payload to `out`, for several frames in one write.
Status AppendFrame(Bytes& out, ByteSpan payload);
// FrameReader reads frames from one stream socket, buffering what a read returns, so that a
// frame usually costs one read(2) instead of two (the length, then the payload). Not
// thread-safe; one reader per socket.
class FrameReader {
 public:
  explicit FrameReader(int fd) : fd_(fd) {}
  ~FrameReader();
  FrameReader(const FrameReader&) = delete;
  FrameReader& operator=(const FrameReader&) = delete;
  // Next returns the next frame's payload; errors as ReadFrame. The buffer keeps no copy of a
  // returned frame (frames carry plaintexts and secrets): consumed bytes are wiped at once.
  StatusOr<Bytes> Next();
  // HasFrame: a whole frame is buffered (Next returns it without reading).
  bool HasFrame() const;
  // ReadAvailable reads what the socket holds without blocking (recv with MSG_DONTWAIT until
  // it would block); kUnavailable on EOF or a read error. For callers woken by readiness.
  Status ReadAvailable();
  // buffer_for_testing is the whole internal buffer, for the test that nothing stays behind.
  ByteSpan buffer_for_testing() const { return buf_; }

 private:
  Status Fill(size_t want);
  int fd_;
  Bytes buf_;
  size_t start_ = 0, end_ = 0;
};

// ReadFrame reads one frame from `fd`. kUnavailable on EOF ("peer closed") or a read error,
// kInvalidArgument for a length above kMaxFrameSize (the stream is then unusable).
StatusOr<Bytes> ReadFrame(int fd);

}  // namespace custos::ecall
