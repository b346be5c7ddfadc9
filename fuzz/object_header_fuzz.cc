// Fuzzes the object header parser (objects/object_format.h): `custos get` parses the first bytes
// of whatever the storage service returns before it asks anyone for a key. No input may crash;
// whatever decodes must be canonical (re-encoding gives back exactly the header's bytes, so the
// header digest every chunk authenticates has one preimage per header) and describe a layout
// the stream code accepts; a dual-control wrapped key must parse or be refused, never crash.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "protocol/stream/stream.h"
#include "client/objects/object_format.h"
#include "client/objects/transfer.h"

namespace custos::objects {
namespace {

void FuzzHeader(ByteSpan in) {
  auto h = ObjectHeader::Decode(in);
  if (!h.ok()) {
    if (h.status().code() != ErrorCode::kInvalidArgument) std::abort();
    return;
  }
  Bytes enc = h->Encode();
  if (enc.size() != h->EncodedSize() || enc.size() > in.size() || enc.size() > kMaxObjectHeaderSize) std::abort();
  if (!std::equal(enc.begin(), enc.end(), in.begin())) std::abort();
  auto stored = h->StoredSize();
  if (!stored.ok()) std::abort();
  auto body = h->BodyLength();
  if (!body.ok()) std::abort();
  auto layout = files::StreamPlaintextLength(*body, h->chunk_size);
  if (!layout.ok() || layout->plaintext_length != h->plaintext_length) std::abort();
  if (h->mode == ObjectMode::kDualControl) {
    auto w = ParseDualControlWrap(h->wrapped_key);
    if (w.ok() && DualControlKemContext(*h).empty()) std::abort();
  }
}

void FuzzRange(ByteSpan in) {
  std::string text(in.begin(), in.end());
  auto r = ParseRange(text);
  if (r.ok() && r->last && *r->last < r->first) std::abort();
}

}  // namespace
}  // namespace custos::objects

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan in(data, size);
  custos::objects::FuzzHeader(in);
  if (size < 64) custos::objects::FuzzRange(in);
  return 0;
}
