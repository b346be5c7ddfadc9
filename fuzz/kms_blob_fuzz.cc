// Fuzzes the KMS encodings of ecall/kms_calls.h that carry outside input: ParseCiphertextHeader
// (a ciphertext blob comes from any KMS client, and the host reads it to find the key before the
// core sees it), KeyRef::Decode and DecodeEncryptionContext (the core decodes both from every
// KMS request the untrusted host sends). None may crash on any bytes; whatever decodes must be
// canonical: the encoding of the decoded value is exactly the input, so there is one byte string
// per key reference and per context (the context's bytes are part of a blob's AAD).
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "appliance/ecall/kms_calls.h"

namespace custos::ecall {
namespace {

bool SameBytes(ByteSpan a, ByteSpan b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

void FuzzHeader(ByteSpan in) {
  auto h = ParseCiphertextHeader(in);
  if (!h.ok()) {
    if (h.status().code() != ErrorCode::kInvalidArgument) std::abort();
    return;
  }
  // What the header says must be what the blob starts with, followed by at least salt (32),
  // nonce (12) and tag (16).
  if (h->key_id.empty()) std::abort();
  ByteWriter w;
  w.Raw(AsBytes("CKC1")).U8(1).Var(h->key_id).U32(h->version);
  const Bytes& head = w.bytes();
  if (in.size() < head.size() + 60) std::abort();
  if (!SameBytes(in.first(head.size()), head)) std::abort();
}

void FuzzKeyRef(ByteSpan in) {
  auto ref = KeyRef::Decode(in);
  if (!ref.ok()) {
    if (ref.status().code() != ErrorCode::kInvalidArgument) std::abort();
    return;
  }
  if (ref->key_id.empty() || ref->spec.empty()) std::abort();
  if (!SameBytes(ref->Encode(), in)) std::abort();
}

void FuzzContext(ByteSpan in) {
  auto ctx = DecodeEncryptionContext(in);
  if (!ctx.ok()) {
    if (ctx.status().code() != ErrorCode::kInvalidArgument) std::abort();
    return;
  }
  if (ctx->size() > 64) std::abort();
  if (!SameBytes(EncodeEncryptionContext(*ctx), in)) std::abort();
}

void FuzzU32(ByteSpan in) {
  auto v = ParseU32Arg(in, "n");
  if (v.ok() != (in.size() == 4)) std::abort();
  if (v.ok() && !SameBytes(U32Arg(*v), in)) std::abort();
}

}  // namespace
}  // namespace custos::ecall

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::ecall;
  custos::ByteSpan in(data, size);
  FuzzHeader(in);
  FuzzKeyRef(in);
  FuzzContext(in);
  FuzzU32(in);
  return 0;
}
