// Fuzzes the KMIP message layer (src/protocol/kmip/message.h) on what a client can send: every
// input that decodes as TTLV is read as a Request Message in 1.4 and 2.0, and each batch item's
// payload through the attribute readers of both encodings (Template-Attribute and Attribute
// items; an Attributes structure), as the server's operations read them. Oracles: nothing
// crashes; a parsed request has as many batch items as its Batch Count says, each with a
// structure payload; an attribute decoded from 1.x encodes back to an Attribute that decodes to
// the same name, index and value; the response the server would build for the request decodes.
#include <cstdint>
#include <cstdlib>

#include "protocol/kmip/message.h"

namespace custos::kmip {
namespace {

void CheckAttributes(const Item& payload, const ProtocolVersion& version) {
  auto attributes = RequestAttributes(payload, version);
  if (!attributes.ok()) return;
  for (const Attribute& a : *attributes) {
    if (version.v2()) {
      if (AttributeTag(a.name) == 0) std::abort();  // 2.0 decoding names only known tags
      if (AttributeNameOf(EncodeAttribute2(a).tag()) != a.name) std::abort();
      continue;
    }
    auto again = DecodeAttribute1(EncodeAttribute1(a));
    if (!again.ok() || again->name != a.name || again->index != a.index || !(again->value == a.value)) std::abort();
  }
}

void Fuzz(ByteSpan data) {
  auto item = Decode(data);
  if (!item.ok()) return;
  for (const ProtocolVersion& assumed : {ProtocolVersion{1, 4}, ProtocolVersion{2, 0}}) {
    ProtocolVersion version = assumed;
    auto request = ParseRequest(*item, &version);
    if (!request.ok()) continue;
    const Item* header = item->FindItem(tags::kRequestHeader);
    if (header == nullptr) std::abort();
    if (static_cast<size_t>(header->FindItem(tags::kBatchCount)->AsInteger().value()) != request->items.size()) std::abort();
    std::vector<ResponseBatchItem> answers;
    for (const RequestBatchItem& b : request->items) {
      if (!b.payload.is_structure()) std::abort();
      CheckAttributes(b.payload, assumed);
      (void)OptText(b.payload, tags::kUniqueIdentifier);
      (void)OptBytes(b.payload, tags::kData);
      answers.push_back(ResponseBatchItem::Failure(&b, {reason::kOperationNotSupported, OperationName(b.operation)}));
    }
    if (!Decode(Encode(BuildResponse(request->version, 0, answers))).ok()) std::abort();
  }
}

}  // namespace
}  // namespace custos::kmip

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::kmip::Fuzz(custos::ByteSpan(data, size));
  return 0;
}
