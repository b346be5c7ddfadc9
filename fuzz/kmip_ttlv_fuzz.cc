// Fuzzes the KMIP TTLV codec (src/protocol/kmip/ttlv.h), the parser a KMIP server runs on every
// byte a client sends. Each input is used twice:
//   - as a message: Decode must never crash; whatever it accepts must be canonical (Encode gives
//     back exactly the input), decode again to an equal item, be measured by ItemLength to its
//     full size, and be accepted under the default limits if it was accepted under tight ones.
//     Every accessor and lookup is exercised on the decoded tree;
//   - as a recipe for an item (FuzzedItem): Encode must produce bytes that Decode accepts and
//     turns back into the same item.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

#include "protocol/kmip/ttlv.h"

namespace custos::kmip {
namespace {

// Walk calls every accessor and lookup on `item` and its items: exactly the accessor of the
// item's own type succeeds.
void Walk(const Item& item) {
  const ItemType type = item.type();
  if (item.Items().ok() != (type == ItemType::kStructure)) std::abort();
  if (item.AsInteger().ok() != (type == ItemType::kInteger)) std::abort();
  if (item.AsLongInteger().ok() != (type == ItemType::kLongInteger)) std::abort();
  if (item.AsBigInteger().ok() != (type == ItemType::kBigInteger)) std::abort();
  if (item.AsEnumeration().ok() != (type == ItemType::kEnumeration)) std::abort();
  if (item.AsBoolean().ok() != (type == ItemType::kBoolean)) std::abort();
  if (item.AsTextString().ok() != (type == ItemType::kTextString)) std::abort();
  if (item.AsByteString().ok() != (type == ItemType::kByteString)) std::abort();
  if (item.AsDateTime().ok() != (type == ItemType::kDateTime)) std::abort();
  if (item.AsInterval().ok() != (type == ItemType::kInterval)) std::abort();
  if (item.AsDateTimeExtended().ok() != (type == ItemType::kDateTimeExtended)) std::abort();
  if (auto big = item.AsBigInteger(); big.ok() && (big->empty() || big->size() % 8 != 0)) {
    std::abort();
  }
  auto items = item.Items();
  if (!items.ok()) return;
  const std::span<const Item> children = *items;
  for (const Item& child : children) {
    const Item* first = item.FindItem(child.tag());
    std::vector<const Item*> all = item.FindItems(child.tag());
    auto required = item.RequireItem(child.tag());
    if (first == nullptr || all.empty() || all.front() != first || !required.ok() ||
        *required != first) {
      std::abort();
    }
    Walk(child);
  }
}

void FuzzMessage(ByteSpan in) {
  auto item = Decode(in);
  if (!item.ok()) {
    if (item.status().code() != ErrorCode::kInvalidArgument) std::abort();
    // What the default limits refuse, tighter ones refuse too.
    if (Decode(in, {.max_message_bytes = 4096, .max_depth = 4, .max_items = 64}).ok()) {
      std::abort();
    }
    return;
  }
  Bytes encoded = Encode(*item);
  if (encoded.size() != in.size() || !std::equal(encoded.begin(), encoded.end(), in.begin())) {
    std::abort();
  }
  auto again = Decode(encoded);
  if (!again.ok() || !(*again == *item)) std::abort();
  auto length = ItemLength(in);
  if (!length.ok() || *length != in.size()) std::abort();
  Walk(*item);
  auto tight = Decode(in, {.max_message_bytes = 4096, .max_depth = 4, .max_items = 64});
  if (tight.ok() && !(*tight == *item)) std::abort();
}

// Recipe reads an item description from the fuzzer's bytes.
class Recipe {
 public:
  explicit Recipe(ByteSpan in) : in_(in) {}
  uint8_t U8() { return pos_ < in_.size() ? in_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | U8();
    return v;
  }
  ByteSpan Take(size_t n) {
    n = std::min(n, in_.size() - pos_);
    ByteSpan out = in_.subspan(pos_, n);
    pos_ += n;
    return out;
  }
  bool done() const { return pos_ >= in_.size(); }

 private:
  ByteSpan in_;
  size_t pos_ = 0;
};

// FuzzedItem builds an item from the recipe: any type, any value (text strings are ASCII, so
// valid UTF-8), structures at most 8 deep and 16 wide; tags are drawn from both valid ranges.
Item FuzzedItem(Recipe& r, int depth) {
  const uint8_t kind = r.U8();
  const Tag tag = ((kind & 0x80) ? 0x540000 : 0x420001) + (r.U8() % 0xFFFF);
  switch ((kind & 0x7F) % 11) {
    case 0: {
      std::vector<Item> items;
      const size_t n = depth >= 8 ? 0 : r.U8() % 17;
      for (size_t i = 0; i < n && !r.done(); ++i) items.push_back(FuzzedItem(r, depth + 1));
      return Item::Structure(tag, std::move(items));
    }
    case 1:
      return Item::Integer(tag, static_cast<int32_t>(r.U64()));
    case 2:
      return Item::LongInteger(tag, static_cast<int64_t>(r.U64()));
    case 3:
      return Item::BigInteger(tag, r.Take(r.U8() % 40));
    case 4:
      return Item::Enumeration(tag, static_cast<uint32_t>(r.U64()));
    case 5:
      return Item::Boolean(tag, r.U8() & 1);
    case 6: {
      ByteSpan raw = r.Take(r.U8() % 40);
      std::string ascii(raw.begin(), raw.end());
      for (char& c : ascii) c = static_cast<char>(c & 0x7F);
      return Item::TextString(tag, ascii);
    }
    case 7:
      return Item::ByteString(tag, r.Take(r.U8() % 40));
    case 8:
      return Item::DateTime(tag, static_cast<int64_t>(r.U64()));
    case 9:
      return Item::Interval(tag, static_cast<uint32_t>(r.U64()));
    default:
      return Item::DateTimeExtended(tag, static_cast<int64_t>(r.U64()));
  }
}

void FuzzEncoder(ByteSpan in) {
  Recipe recipe(in);
  Item item = FuzzedItem(recipe, 1);
  Bytes encoded = Encode(item);
  auto decoded = Decode(encoded);
  if (!decoded.ok() || !(*decoded == item)) std::abort();
  if (Encode(*decoded) != encoded) std::abort();
}

}  // namespace
}  // namespace custos::kmip

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  custos::ByteSpan in(data, size);
  custos::kmip::FuzzMessage(in);
  custos::kmip::FuzzEncoder(in);
  return 0;
}
