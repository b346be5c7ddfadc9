// Encodings of the KMS call arguments and the ciphertext blob header (ecall/kms_calls.h;
// docs/protocol.md "KMS calls", "KMS ciphertext blob"). Every decoder here reads bytes the
// untrusted host wrote (or a client handed it), so each one bounds every length, refuses
// trailing bytes and names the field that failed.
#include "appliance/ecall/kms_calls.h"

namespace custos::ecall {
namespace {

constexpr std::string_view kBlobMagic = "CKC1";
constexpr uint8_t kBlobSuite = 1;
// Bounds of the fields a KeyRef and a blob header carry. A key id is the host's name for a key
// (AWS key ids are UUIDs; ARNs stay below 2048 bytes); a spec is one of a few short names;
// wrapped material is nonce || material (at most 32 bytes) || tag.
constexpr size_t kMaxKeyIdSize = 2048;
constexpr size_t kMaxSpecSize = 64;
constexpr size_t kMaxWrappedSize = 1024;
// Encryption context bounds: a context is a handful of short strings in practice.
constexpr uint32_t kMaxContextPairs = 64;
constexpr size_t kMaxContextField = 8 * 1024;
// What follows the header of a blob: salt, nonce, then at least the tag.
constexpr size_t kBlobSaltSize = 32;
constexpr size_t kBlobNonceSize = 12;
constexpr size_t kBlobTagSize = 16;

}  // namespace

Bytes KeyRef::Encode() const {
  ByteWriter w;
  w.Var(key_id).U32(version).Var(spec).Var(wrapped);
  return w.Take();
}

StatusOr<KeyRef> KeyRef::Decode(ByteSpan encoded) {
  ByteReader r(encoded);
  KeyRef ref;
  ASSIGN_OR_RETURN(ByteSpan id, r.Var("kms key ref: key id", kMaxKeyIdSize));
  if (id.empty()) return InvalidArgument("kms key ref: empty key id");
  ref.key_id = ToString(id);
  ASSIGN_OR_RETURN(ref.version, r.U32("kms key ref: version"));
  ASSIGN_OR_RETURN(ByteSpan spec, r.Var("kms key ref: spec", kMaxSpecSize));
  if (spec.empty()) return InvalidArgument("kms key ref: empty spec");
  ref.spec = ToString(spec);
  ASSIGN_OR_RETURN(ByteSpan wrapped, r.Var("kms key ref: wrapped material", kMaxWrappedSize));
  ref.wrapped.assign(wrapped.begin(), wrapped.end());
  RETURN_IF_ERROR(r.ExpectEnd("kms key ref"));
  return ref;
}

Bytes EncodeEncryptionContext(const EncryptionContext& context) {
  ByteWriter w;
  w.U32(static_cast<uint32_t>(context.size()));
  for (const auto& [key, value] : context) w.Var(key).Var(value);
  return w.Take();
}

StatusOr<EncryptionContext> DecodeEncryptionContext(ByteSpan encoded) {
  ByteReader r(encoded);
  ASSIGN_OR_RETURN(uint32_t count, r.U32("encryption context: count"));
  if (count > kMaxContextPairs)
    return InvalidArgument("encryption context: more than " + std::to_string(kMaxContextPairs) +
                           " pairs");
  EncryptionContext context;
  const std::string* previous = nullptr;
  for (uint32_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(ByteSpan key, r.Var("encryption context: key", kMaxContextField));
    ASSIGN_OR_RETURN(ByteSpan value, r.Var("encryption context: value", kMaxContextField));
    std::string k = ToString(key);
    // One encoding per context: keys strictly increasing in byte order (std::map's order), so
    // the bytes a blob's AAD was computed over are the only ones that decode to its context.
    if (previous != nullptr && !(*previous < k))
      return InvalidArgument("encryption context: keys are duplicated or not in byte order");
    auto [it, inserted] = context.emplace(std::move(k), ToString(value));
    previous = &it->first;
  }
  RETURN_IF_ERROR(r.ExpectEnd("encryption context"));
  return context;
}

StatusOr<CiphertextHeader> ParseCiphertextHeader(ByteSpan blob) {
  ByteReader r(blob);
  ASSIGN_OR_RETURN(ByteSpan magic, r.Raw(kBlobMagic.size(), "kms ciphertext: magic"));
  if (ToString(magic) != kBlobMagic) return InvalidArgument("kms ciphertext: bad magic");
  ASSIGN_OR_RETURN(uint8_t suite, r.U8("kms ciphertext: suite"));
  if (suite != kBlobSuite)
    return InvalidArgument("kms ciphertext: unknown suite " + std::to_string(suite));
  CiphertextHeader h;
  ASSIGN_OR_RETURN(ByteSpan id, r.Var("kms ciphertext: key id", kMaxKeyIdSize));
  if (id.empty()) return InvalidArgument("kms ciphertext: empty key id");
  h.key_id = ToString(id);
  ASSIGN_OR_RETURN(h.version, r.U32("kms ciphertext: version"));
  if (r.remaining() < kBlobSaltSize + kBlobNonceSize + kBlobTagSize)
    return InvalidArgument("kms ciphertext: too short");
  return h;
}

Bytes U32Arg(uint32_t v) {
  ByteWriter w;
  w.U32(v);
  return w.Take();
}

StatusOr<uint32_t> ParseU32Arg(ByteSpan arg, const char* field) {
  if (arg.size() != 4) return InvalidArgument(std::string(field) + " must be a 4-byte integer");
  ByteReader r(arg);
  return r.U32(field);
}

}  // namespace custos::ecall
