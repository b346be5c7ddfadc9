// The custos object format (`custos put|get`; docs/objects.md "Object format"): a header naming
// how the object's data key is held, followed by a STREAM body (files/stream.h) whose every chunk
// carries the header's digest as associated data.
//
//   offset  size  field
//   0       8     magic "CUSTOSOB"
//   8       1     version = 1
//   9       1     suite = 1 (STREAM over AES-256-GCM, 7-byte nonce prefix, SHA-256 header digest)
//   10      1     mode: 1 = appliance (KMS data key), 2 = dual control (KEM to the joint key Y)
//   11      1     flags = 0 (reserved; any other value is refused)
//   12      16    object id (random, drawn per upload)
//   28      4     u32 chunk size (plaintext bytes per chunk, 4 KiB .. 16 MiB)
//   32      7     nonce prefix
//   39      8     u64 plaintext length
//   47      2     u16 K = key reference length (1 .. 1024)
//   49      K     key reference (UTF-8): appliance = the KMS key ARN; dual control = the custody
//                 fingerprint (hex) the object was sealed under
//   49+K    4     u32 W = wrapped key length (1 .. 4096)
//   53+K    W     wrapped key: appliance = the KMS CiphertextBlob of GenerateDataKey with
//                 EncryptionContext {"custos:object-id": hex(object id)}; dual control =
//                 Y (33) || R (33) || wrap nonce (12) || AES-256-GCM(KEK, DEK, aad = prefix) (48)
//                 with prefix = header[0 .. 53+K+66) and KEK = KEM(S = r*Y; context =
//                 "custos/v1/object" || SHA-256(prefix))
//
//   header digest = SHA-256("custos/v1/object-header" || header)  — the AAD of every chunk
//   body          = STREAM chunks (chunk size + 16 bytes each, the last one shorter)
//
// The object's stored size is fixed by the header: header length + StreamCiphertextLength(
// plaintext length, chunk size); any other size is a truncated or extended object, which a reader
// refuses before decrypting anything (even for a range that does not reach the end).
#pragma once

#include <cstdint>
#include <string>

#include "common/bytes.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/p256.h"

namespace custos::objects {

inline constexpr char kObjectMagic[] = "CUSTOSOB";
inline constexpr size_t kObjectFixedSize = 49;  // through the key reference length field
inline constexpr size_t kMaxKeyRefSize = 1024;
inline constexpr size_t kMaxWrappedKeySize = 4096;
// kMaxObjectHeaderSize bounds what a reader fetches before it knows the header's length.
inline constexpr size_t kMaxObjectHeaderSize = kObjectFixedSize + kMaxKeyRefSize + 4 + kMaxWrappedKeySize;
inline constexpr size_t kDualControlWrappedKeySize = 33 + 33 + 12 + 48;

enum class ObjectMode : uint8_t { kAppliance = 1, kDualControl = 2 };

// ObjectHeader is a parsed (or to-be-written) header.
struct ObjectHeader {
  ObjectMode mode = ObjectMode::kAppliance;
  Bytes object_id;     // 16
  uint32_t chunk_size = 0;
  Bytes nonce_prefix;  // 7
  uint64_t plaintext_length = 0;
  std::string key_ref;
  Bytes wrapped_key;

  // Encode writes the header; it does not validate (Decode does).
  Bytes Encode() const;
  size_t EncodedSize() const { return kObjectFixedSize + key_ref.size() + 4 + wrapped_key.size(); }
  // Digest is the associated data of every body chunk.
  Bytes Digest() const;
  // ObjectIdHex is the object id as the appliance's encryption context carries it.
  std::string ObjectIdHex() const;
  // BodyLength is the STREAM ciphertext length for plaintext_length; StoredSize adds the header.
  StatusOr<uint64_t> BodyLength() const;
  StatusOr<uint64_t> StoredSize() const;

  // Decode parses a header at the start of `b` (which may continue with body bytes) and names
  // the first bad field: kInvalidArgument if `b` is not a custos object, is malformed, or is
  // shorter than the header its length fields announce ("truncated header").
  static StatusOr<ObjectHeader> Decode(ByteSpan b);
};

// LooksLikeObject reports whether `b` starts with the object magic.
bool LooksLikeObject(ByteSpan b);

// Dual control: the wrapped key binds the header prefix (everything up to and including R).
struct DualControlWrap {
  crypto::Point y, r;
  Bytes wrap_nonce;   // 12
  Bytes wrapped_dek;  // 48
};
StatusOr<DualControlWrap> ParseDualControlWrap(ByteSpan wrapped_key);

// SealDualControlKey fills h.key_ref (= `custody_fingerprint_hex`) and h.wrapped_key with a
// fresh KEM to `y` and returns the DEK. All other fields of `h` must already be set, since the
// wrapped key's AAD covers them.
StatusOr<SecretBytes> SealDualControlKey(ObjectHeader& h, const crypto::Point& y,
                                         const std::string& custody_fingerprint_hex);
// DualControlKemContext is the context the KEM and the keepers' partial requests name.
Bytes DualControlKemContext(const ObjectHeader& h);
// OpenDualControlKey opens the DEK with the combined point S = y*R; kIntegrity if S is wrong or
// the header was altered.
StatusOr<SecretBytes> OpenDualControlKey(const ObjectHeader& h, const crypto::Point& s);

}  // namespace custos::objects
