// Every call across the host-core boundary, declared once: its wire value, its name, and its
// arguments and results as named, typed fields. What follows from these declarations:
//   - ecall.cc's table of names and arities (CallName, ArgCount, Request::Decode's check),
//   - the host's typed proxy: Invoke<C>(core, args) encodes the arguments and decodes the results,
//   - the core's dispatch: each handler takes `const C::Args&` and returns `StatusOr<C::Result>`,
//     and the table row that decodes, calls and encodes is generated (enclave/core.cc),
//   - the docs table: a test checks that docs/protocol.md lists every call with these fields.
// On the wire every field is one positional byte string (ecall.h's frame format); the types below
// only say how each is encoded:
//   Bytes                as is                     std::string   its bytes (UTF-8 or opaque)
//   uint32_t             4 bytes big-endian        bool          one byte, 0 or 1
//   KeyRef               KeyRef::Encode            EncryptionContext  EncodeEncryptionContext
//   WipedBuffer          as is, wiped when dropped (plaintexts, data keys, SigV4 secrets)
// A field that does not decode is kInvalidArgument "ecall CALL: FIELD: ..." and the handler is
// not reached.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "appliance/ecall/ecall.h"
#include "appliance/ecall/kms_calls.h"
#include "common/bytes.h"
#include "common/status.h"
#include "common/wiped_buffer.h"

// CUSTOS_ECALL_FIELDS(a, b, ...) inside an Args or Result struct: the fields in wire order (as
// a tuple of references) and their names (for errors and the docs check).
#define CUSTOS_ECALL_FIELDS(...)                                        \
  auto Fields() { return std::tie(__VA_ARGS__); }                       \
  auto Fields() const { return std::tie(__VA_ARGS__); }                 \
  static constexpr std::string_view kFieldNames = #__VA_ARGS__
#define CUSTOS_ECALL_NO_FIELDS()                \
  std::tuple<> Fields() const { return {}; }    \
  static constexpr std::string_view kFieldNames = ""

namespace custos::ecall {

// ---- the calls (ecall.h says what each does) ----

struct Hello {
  static constexpr Call kCall = Call::kHello;
  static constexpr std::string_view kName = "hello";
  struct Args { CUSTOS_ECALL_NO_FIELDS(); };
  struct Result {
    std::string tee;
    Bytes enclave_key;  // pk_E, 33 bytes SEC1 compressed
    Bytes measurement;
    std::string info;   // JSON
    CUSTOS_ECALL_FIELDS(tee, enclave_key, measurement, info);
  };
};

struct Load {
  static constexpr Call kCall = Call::kLoad;
  static constexpr std::string_view kName = "load";
  struct Args {
    Bytes custody;     // custody.json
    Bytes envelope;    // empty when never initialised
    Bytes origin;      // the origin file; empty with the envelope
    Bytes collateral;  // DCAP collateral JSON for the origin evidence; empty for sim
    CUSTOS_ECALL_FIELDS(custody, envelope, origin, collateral);
  };
  struct Result { CUSTOS_ECALL_NO_FIELDS(); };
};

struct Init {
  static constexpr Call kCall = Call::kInit;
  static constexpr std::string_view kName = "init";
  struct Args { CUSTOS_ECALL_NO_FIELDS(); };
  struct Result {
    Bytes envelope;
    Bytes origin;
    CUSTOS_ECALL_FIELDS(envelope, origin);
  };
};

struct StatusQuery {
  static constexpr Call kCall = Call::kStatus;
  static constexpr std::string_view kName = "status";
  struct Args {
    Bytes nonce;  // empty, or 32 bytes for fresh evidence
    CUSTOS_ECALL_FIELDS(nonce);
  };
  struct Result {
    std::string status;  // JSON
    Bytes evidence;      // empty without a nonce
    CUSTOS_ECALL_FIELDS(status, evidence);
  };
};

struct SigmaRespond {
  static constexpr Call kCall = Call::kSigmaRespond;
  static constexpr std::string_view kName = "sigma-respond";
  struct Args {
    Bytes message1;
    CUSTOS_ECALL_FIELDS(message1);
  };
  struct Result {
    Bytes session;  // 16 bytes
    Bytes message2;
    CUSTOS_ECALL_FIELDS(session, message2);
  };
};

struct SigmaFinish {
  static constexpr Call kCall = Call::kSigmaFinish;
  static constexpr std::string_view kName = "sigma-finish";
  struct Args {
    Bytes session;
    Bytes message3;
    CUSTOS_ECALL_FIELDS(session, message3);
  };
  struct Result {
    Bytes record;  // the first enclave->peer record, may be empty
    CUSTOS_ECALL_FIELDS(record);
  };
};

struct Record {
  static constexpr Call kCall = Call::kRecord;
  static constexpr std::string_view kName = "record";
  struct Args {
    Bytes session;
    Bytes record;
    CUSTOS_ECALL_FIELDS(session, record);
  };
  struct Result {
    Bytes record;
    CUSTOS_ECALL_FIELDS(record);
  };
};

struct JoinStart {
  static constexpr Call kCall = Call::kJoinStart;
  static constexpr std::string_view kName = "join-start";
  struct Args {
    // approval: a measurement approval (custody/approval.h, JSON) of this core's own
    // measurement, for joining a cluster that runs another build (a rolling upgrade); empty to
    // join a peer of this core's own measurement. The core verifies it before starting.
    Bytes approval;
    CUSTOS_ECALL_FIELDS(approval);
  };
  struct Result {
    Bytes handle;  // 16 bytes
    Bytes message1;
    CUSTOS_ECALL_FIELDS(handle, message1);
  };
};

struct JoinFinish {
  static constexpr Call kCall = Call::kJoinFinish;
  static constexpr std::string_view kName = "join-finish";
  struct Args {
    Bytes handle;
    Bytes message2;
    Bytes collateral;  // DCAP collateral JSON for the peer's evidence, or empty
    CUSTOS_ECALL_FIELDS(handle, message2, collateral);
  };
  struct Result {
    Bytes message3;
    Bytes record;
    CUSTOS_ECALL_FIELDS(message3, record);
  };
};

struct JoinComplete {
  static constexpr Call kCall = Call::kJoinComplete;
  static constexpr std::string_view kName = "join-complete";
  struct Args {
    Bytes handle;
    Bytes record;
    CUSTOS_ECALL_FIELDS(handle, record);
  };
  struct Result {
    Bytes envelope;
    Bytes origin;
    CUSTOS_ECALL_FIELDS(envelope, origin);
  };
};

struct Ping {
  static constexpr Call kCall = Call::kPing;
  static constexpr std::string_view kName = "ping";
  struct Args {
    Bytes payload;
    CUSTOS_ECALL_FIELDS(payload);
  };
  struct Result {
    Bytes payload;
    CUSTOS_ECALL_FIELDS(payload);
  };
};

struct CustodyUpdate {
  static constexpr Call kCall = Call::kCustodyUpdate;
  static constexpr std::string_view kName = "custody-update";
  struct Args {
    Bytes custody;  // custody.json
    CUSTOS_ECALL_FIELDS(custody);
  };
  struct Result {
    Bytes fingerprint;  // 32 bytes
    CUSTOS_ECALL_FIELDS(fingerprint);
  };
};

struct OriginRebind {
  static constexpr Call kCall = Call::kOriginRebind;
  static constexpr std::string_view kName = "origin-rebind";
  struct Args { CUSTOS_ECALL_NO_FIELDS(); };
  struct Result {
    Bytes origin;
    CUSTOS_ECALL_FIELDS(origin);
  };
};

// ---- KMS calls (kms_calls.h has the encodings of KeyRef, the context and the blob) ----

struct KmsCreateKey {
  static constexpr Call kCall = Call::kKmsCreateKey;
  static constexpr std::string_view kName = "kms-create-key";
  struct Args {
    std::string key_id;
    uint32_t version = 0;
    std::string spec;
    CUSTOS_ECALL_FIELDS(key_id, version, spec);
  };
  struct Result {
    Bytes wrapped;     // the material wrapped under the root key
    Bytes public_key;  // SubjectPublicKeyInfo DER for ECC_NIST_P256, else empty
    CUSTOS_ECALL_FIELDS(wrapped, public_key);
  };
};

struct KmsEncrypt {
  static constexpr Call kCall = Call::kKmsEncrypt;
  static constexpr std::string_view kName = "kms-encrypt";
  struct Args {
    KeyRef ref;
    WipedBuffer plaintext;
    EncryptionContext context;
    CUSTOS_ECALL_FIELDS(ref, plaintext, context);
  };
  struct Result {
    Bytes blob;
    CUSTOS_ECALL_FIELDS(blob);
  };
};

struct KmsDecrypt {
  static constexpr Call kCall = Call::kKmsDecrypt;
  static constexpr std::string_view kName = "kms-decrypt";
  struct Args {
    KeyRef ref;
    Bytes blob;
    EncryptionContext context;
    CUSTOS_ECALL_FIELDS(ref, blob, context);
  };
  struct Result {
    WipedBuffer plaintext;
    CUSTOS_ECALL_FIELDS(plaintext);
  };
};

struct KmsReEncrypt {
  static constexpr Call kCall = Call::kKmsReEncrypt;
  static constexpr std::string_view kName = "kms-re-encrypt";
  struct Args {
    KeyRef source;
    Bytes blob;
    EncryptionContext source_context;
    KeyRef destination;
    EncryptionContext destination_context;
    CUSTOS_ECALL_FIELDS(source, blob, source_context, destination, destination_context);
  };
  struct Result {
    Bytes blob;
    CUSTOS_ECALL_FIELDS(blob);
  };
};

struct KmsGenerateDataKey {
  static constexpr Call kCall = Call::kKmsGenerateDataKey;
  static constexpr std::string_view kName = "kms-generate-data-key";
  struct Args {
    KeyRef ref;
    uint32_t bytes = 0;
    EncryptionContext context;
    bool with_plaintext = false;
    CUSTOS_ECALL_FIELDS(ref, bytes, context, with_plaintext);
  };
  struct Result {
    Bytes blob;
    WipedBuffer plaintext;  // empty without with_plaintext
    CUSTOS_ECALL_FIELDS(blob, plaintext);
  };
};

struct KmsGenerateRandom {
  static constexpr Call kCall = Call::kKmsGenerateRandom;
  static constexpr std::string_view kName = "kms-generate-random";
  struct Args {
    uint32_t bytes = 0;
    CUSTOS_ECALL_FIELDS(bytes);
  };
  struct Result {
    Bytes random;
    CUSTOS_ECALL_FIELDS(random);
  };
};

struct KmsSign {
  static constexpr Call kCall = Call::kKmsSign;
  static constexpr std::string_view kName = "kms-sign";
  struct Args {
    KeyRef ref;
    Bytes message;
    std::string type;  // "RAW" or "DIGEST"
    CUSTOS_ECALL_FIELDS(ref, message, type);
  };
  struct Result {
    Bytes signature;  // DER ECDSA-Sig-Value
    CUSTOS_ECALL_FIELDS(signature);
  };
};

struct KmsVerify {
  static constexpr Call kCall = Call::kKmsVerify;
  static constexpr std::string_view kName = "kms-verify";
  struct Args {
    KeyRef ref;
    Bytes message;
    std::string type;
    Bytes signature;
    CUSTOS_ECALL_FIELDS(ref, message, type, signature);
  };
  struct Result { CUSTOS_ECALL_NO_FIELDS(); };
};

struct KmsGenerateMac {
  static constexpr Call kCall = Call::kKmsGenerateMac;
  static constexpr std::string_view kName = "kms-generate-mac";
  struct Args {
    KeyRef ref;
    Bytes message;
    CUSTOS_ECALL_FIELDS(ref, message);
  };
  struct Result {
    Bytes mac;  // 32 bytes
    CUSTOS_ECALL_FIELDS(mac);
  };
};

struct KmsVerifyMac {
  static constexpr Call kCall = Call::kKmsVerifyMac;
  static constexpr std::string_view kName = "kms-verify-mac";
  struct Args {
    KeyRef ref;
    Bytes message;
    Bytes mac;
    CUSTOS_ECALL_FIELDS(ref, message, mac);
  };
  struct Result { CUSTOS_ECALL_NO_FIELDS(); };
};

struct KmsNewAccessSecret {
  static constexpr Call kCall = Call::kKmsNewAccessSecret;
  static constexpr std::string_view kName = "kms-new-access-secret";
  struct Args {
    std::string access_key_id;
    uint32_t entropy = kAccessSecretEntropy;  // random bytes: kAccessSecretEntropy or kXksSecretEntropy
    CUSTOS_ECALL_FIELDS(access_key_id, entropy);
  };
  struct Result {
    WipedBuffer secret;  // the secret access key: base64 of `entropy` random bytes
    Bytes wrapped;
    CUSTOS_ECALL_FIELDS(secret, wrapped);
  };
};

struct KmsOpenAccessSecret {
  static constexpr Call kCall = Call::kKmsOpenAccessSecret;
  static constexpr std::string_view kName = "kms-open-access-secret";
  struct Args {
    std::string access_key_id;
    Bytes wrapped;
    CUSTOS_ECALL_FIELDS(access_key_id, wrapped);
  };
  struct Result {
    WipedBuffer secret;
    CUSTOS_ECALL_FIELDS(secret);
  };
};

struct AuditAppend {
  static constexpr Call kCall = Call::kAuditAppend;
  static constexpr std::string_view kName = "audit-append";
  struct Args {
    Bytes anchor;   // empty, or head (40) || signature (64)
    Bytes entries;  // u32 count || var(entry) * count
    CUSTOS_ECALL_FIELDS(anchor, entries);
  };
  struct Result {
    Bytes head;  // u64 seq || hash (32)
    Bytes signature;
    CUSTOS_ECALL_FIELDS(head, signature);
  };
};

// AuditLine: the core's line statement for a head it signed in its current run (protocol/audit/
// chain.h LineMessage); kFailedPrecondition when the head is not among the last ones it signed.
struct AuditLine {
  static constexpr Call kCall = Call::kAuditLine;
  static constexpr std::string_view kName = "audit-line";
  struct Args {
    Bytes head;  // u64 seq || hash (32)
    CUSTOS_ECALL_FIELDS(head);
  };
  struct Result {
    Bytes run_id;     // 16 bytes
    Bytes signature;  // over LineMessage(run_id, seq, hash)
    CUSTOS_ECALL_FIELDS(run_id, signature);
  };
};

// The XKS proxy API's AES-GCM (docs/xks.md): under a key derived from a SYMMETRIC_DEFAULT key
// version, with the AAD the host built from the request (the spec's construction).
struct XksEncrypt {
  static constexpr Call kCall = Call::kXksEncrypt;
  static constexpr std::string_view kName = "xks-encrypt";
  struct Args {
    KeyRef ref;
    WipedBuffer plaintext;
    Bytes aad;
    CUSTOS_ECALL_FIELDS(ref, plaintext, aad);
  };
  struct Result {
    Bytes iv;  // 12 bytes, random
    Bytes ciphertext;
    Bytes tag;  // 16 bytes
    CUSTOS_ECALL_FIELDS(iv, ciphertext, tag);
  };
};

struct XksDecrypt {
  static constexpr Call kCall = Call::kXksDecrypt;
  static constexpr std::string_view kName = "xks-decrypt";
  struct Args {
    KeyRef ref;
    Bytes iv;
    Bytes ciphertext;
    Bytes tag;
    Bytes aad;
    CUSTOS_ECALL_FIELDS(ref, iv, ciphertext, tag, aad);
  };
  struct Result {
    WipedBuffer plaintext;
    CUSTOS_ECALL_FIELDS(plaintext);
  };
};

// KMIP Encrypt and Decrypt (the KMIP server's raw AES; kms_calls.h has the constants): under
// K = HKDF-SHA256(material of a SYMMETRIC_DEFAULT version, salt "", info
// "custos/v1/kmip-aes-128" or "custos/v1/kmip-aes-256", key_bits / 8), key_bits 128 or 256
// (else kInvalidArgument "kmip: key length must be 128 or 256 bits"); or, for a KMIP_AES version
// (kms-import-key), K = the material as registered, key_bits 8 times its size (else
// kInvalidArgument "kmip: key length does not match the registered key"). A ref of another spec
// is kFailedPrecondition, reason kKeyUsage, as for XKS. `mode`: kKmipModeGcm (1), AES-GCM;
// kKmipModeCbcPkcs7 (2), AES-CBC with PKCS#7 padding; kKmipModeCbcNoPadding (3), AES-CBC without
// padding; any other value is kInvalidArgument.
//   GCM: iv empty (the core draws 12 random bytes) or 12 bytes; tag_length 12..16 (the tag is the
//        full tag's first tag_length bytes; decrypt takes a tag of 12..16 bytes); aad at most
//        kMaxKmipAad (8192) bytes; plaintext 0..kMaxKmipData (65536) bytes.
//   CBC: iv empty (16 random bytes) or 16 bytes; aad and tag empty and tag_length 0 (else
//        kInvalidArgument naming the field); plaintext 1..kMaxKmipData bytes, without padding a
//        multiple of 16.
// Every argument is checked before the material is unwrapped. Decrypt failures are kIntegrity,
// reason kCiphertextInvalid: "kmip: ciphertext does not authenticate" (GCM: another key, key
// length, IV, AAD or tag, or any edited byte) or "kmip: bad padding" (CBC with padding; CBC
// has no integrity, and the padding oracle it offers is the client's concern: the message says
// nothing beyond "bad padding").
struct KmipEncrypt {
  static constexpr Call kCall = Call::kKmipEncrypt;
  static constexpr std::string_view kName = "kmip-encrypt";
  struct Args {
    KeyRef ref;
    uint32_t key_bits = 0;  // 128 or 256
    uint32_t mode = 0;      // kKmipModeGcm, kKmipModeCbcPkcs7 or kKmipModeCbcNoPadding
    Bytes iv;               // empty: the core draws one
    WipedBuffer plaintext;
    Bytes aad;                // GCM only
    uint32_t tag_length = 0;  // GCM: 12..16; CBC: 0
    CUSTOS_ECALL_FIELDS(ref, key_bits, mode, iv, plaintext, aad, tag_length);
  };
  struct Result {
    Bytes iv;  // the IV used: as given, or drawn by the core
    Bytes ciphertext;
    Bytes tag;  // GCM: tag_length bytes; CBC: empty
    CUSTOS_ECALL_FIELDS(iv, ciphertext, tag);
  };
};

struct KmipDecrypt {
  static constexpr Call kCall = Call::kKmipDecrypt;
  static constexpr std::string_view kName = "kmip-decrypt";
  struct Args {
    KeyRef ref;
    uint32_t key_bits = 0;
    uint32_t mode = 0;
    Bytes iv;  // 12 bytes (GCM) or 16 (CBC)
    Bytes ciphertext;
    Bytes aad;  // GCM only
    Bytes tag;  // GCM: 12..16 bytes; CBC: empty
    CUSTOS_ECALL_FIELDS(ref, key_bits, mode, iv, ciphertext, aad, tag);
  };
  struct Result {
    WipedBuffer plaintext;
    CUSTOS_ECALL_FIELDS(plaintext);
  };
};

// Registers a client's AES key for the KMIP server (KMIP Register): the core wraps `material` as
// kms-create-key wraps the material it draws (KW, aad with key id, version and spec), so the
// version is a KeyRef like any other. Only spec KMIP_AES with 16 or 32 bytes of material is
// accepted (else kInvalidArgument naming the check, never the bytes); the key id is bounded as
// for kms-create-key.
struct KmsImportKey {
  static constexpr Call kCall = Call::kKmsImportKey;
  static constexpr std::string_view kName = "kms-import-key";
  struct Args {
    std::string key_id;
    uint32_t version = 0;
    std::string spec;      // kSpecKmipAes
    WipedBuffer material;  // the client's AES key, 16 or 32 bytes
    CUSTOS_ECALL_FIELDS(key_id, version, spec, material);
  };
  struct Result {
    Bytes wrapped;  // the material wrapped under the root key
    CUSTOS_ECALL_FIELDS(wrapped);
  };
};

// AllCalls lists every declaration; ecall.cc builds its table of names and arities from it.
using AllCalls =
    std::tuple<Hello, Load, Init, StatusQuery, SigmaRespond, SigmaFinish, Record, JoinStart,
               JoinFinish, JoinComplete, Ping, CustodyUpdate, OriginRebind, KmsCreateKey,
               KmsEncrypt, KmsDecrypt, KmsReEncrypt, KmsGenerateDataKey, KmsGenerateRandom, KmsSign,
               KmsVerify, KmsGenerateMac, KmsVerifyMac, KmsNewAccessSecret, KmsOpenAccessSecret,
               AuditAppend, XksEncrypt, XksDecrypt, KmipEncrypt, KmipDecrypt, KmsImportKey, AuditLine>;

// ---- field codecs ----

inline Bytes EncodeField(const Bytes& v) { return v; }
inline Bytes EncodeField(const std::string& v) { return ToBytes(v); }
inline Bytes EncodeField(uint32_t v) { return U32Arg(v); }
inline Bytes EncodeField(bool v) { return Bytes{static_cast<uint8_t>(v ? 1 : 0)}; }
inline Bytes EncodeField(const KeyRef& v) { return v.Encode(); }
inline Bytes EncodeField(const EncryptionContext& v) { return EncodeEncryptionContext(v); }
inline Bytes EncodeField(const WipedBuffer& v) { return Bytes(v.view().begin(), v.view().end()); }

Status DecodeField(ByteSpan in, Bytes* out);
Status DecodeField(ByteSpan in, std::string* out);
Status DecodeField(ByteSpan in, uint32_t* out);
Status DecodeField(ByteSpan in, bool* out);
Status DecodeField(ByteSpan in, KeyRef* out);
Status DecodeField(ByteSpan in, EncryptionContext* out);
Status DecodeField(ByteSpan in, WipedBuffer* out);

template <typename S>
constexpr size_t FieldCount() {
  return std::tuple_size_v<decltype(std::declval<const S&>().Fields())>;
}

// EncodeFields renders a declaration's Args or Result as the positional wire fields.
template <typename S>
std::vector<Bytes> EncodeFields(const S& s) {
  std::vector<Bytes> out;
  out.reserve(FieldCount<S>());
  std::apply([&](const auto&... f) { (out.push_back(EncodeField(f)), ...); }, s.Fields());
  return out;
}

// FieldName returns the i-th name of kFieldNames ("a, b, c").
inline std::string_view FieldName(std::string_view names, size_t i) {
  for (; i > 0; --i) {
    size_t comma = names.find(',');
    if (comma == std::string_view::npos) return "?";
    names.remove_prefix(comma + 1);
  }
  while (!names.empty() && names.front() == ' ') names.remove_prefix(1);
  return names.substr(0, names.find(','));
}

// DecodeFields parses positional wire fields into a declaration's Args or Result; `call` names
// the call in errors ("ecall kms-encrypt: ref: ...").
template <typename S>
StatusOr<S> DecodeFields(std::span<const Bytes> in, std::string_view call) {
  S s;
  if (in.size() != FieldCount<S>())
    return InvalidArgument("ecall " + std::string(call) + ": " + std::to_string(in.size()) + " fields, expected " +
                           std::to_string(FieldCount<S>()));
  Status st = Status::Ok();
  size_t i = 0;
  std::apply(
      [&](auto&... f) {
        ((st.ok() ? (void)(st = DecodeField(in[i], &f)
                                    .WithContext("ecall " + std::string(call) + ": " +
                                                 std::string(FieldName(S::kFieldNames, i))))
                  : (void)0,
          ++i),
         ...);
      },
      s.Fields());
  if (!st.ok()) return st;
  return s;
}

// Invoke calls `C` through a positional core call (the transport) with typed arguments and
// typed results. The transport takes the encoded arguments over and must wipe them once sent
// (EnclaveProcess::Call does); Invoke wipes the encoded results once decoded (they may hold a
// plaintext or a secret access key). A failed call returns the core's Status as is; results that
// do not match the declaration (a host and core of different builds) are kInternal.
template <typename C, typename Transport>
StatusOr<typename C::Result> Invoke(Transport&& transport, const typename C::Args& args) {
  StatusOr<std::vector<Bytes>> r = transport(C::kCall, EncodeFields(args));
  if (!r.ok()) return r.status();
  StatusOr<typename C::Result> out = DecodeFields<typename C::Result>(*r, C::kName);
  for (Bytes& b : *r) WipeBytes(b);
  if (!out.ok()) return InternalError("trusted core answered " + out.status().message());
  return out;
}

// Serve is the core's side of Invoke: decodes C's arguments, runs `handler` on them and encodes
// its result. A field that does not decode never reaches the handler.
template <typename C, typename Handler>
StatusOr<std::vector<Bytes>> Serve(std::span<const Bytes> args, Handler&& handler) {
  StatusOr<typename C::Args> a = DecodeFields<typename C::Args>(args, C::kName);
  if (!a.ok()) return a.status();
  StatusOr<typename C::Result> r = handler(*a);
  if (!r.ok()) return r.status();
  return EncodeFields(*r);
}

}  // namespace custos::ecall
