// TTLV encoding and strict, bounded decoding (ttlv.h; docs/kmip.md "TTLV (KMIP encoding)").
#include "protocol/kmip/ttlv.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <utility>

#include "common/secret.h"
#include "protocol/kmip/tags.h"

namespace custos::kmip {
namespace {

std::string TagHex(Tag tag) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%06X", static_cast<unsigned>(tag));
  return buf;
}

// Refuse builds every decoding refusal: "kmip ttlv: at offset 24: tag 0x420008: boolean value
// must be 0 or 1". The offset is that of the item's first byte in the message.
Status Refuse(size_t offset, const std::string& what) {
  return InvalidArgument("kmip ttlv: at offset " + std::to_string(offset) + ": " + what);
}
Status Refuse(size_t offset, Tag tag, const std::string& what) {
  return Refuse(offset, "tag " + TagHex(tag) + ": " + what);
}

bool IsValidTag(Tag tag) {
  return (tag >= tags::kFirstStandardTag && tag <= tags::kLastStandardTag) ||
         (tag >= tags::kFirstExtensionTag && tag <= tags::kLastExtensionTag);
}

uint32_t ReadU32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | uint32_t{p[3]};
}
uint64_t ReadU64(const uint8_t* p) { return uint64_t{ReadU32(p)} << 32 | ReadU32(p + 4); }

void PutU32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}
void AppendU32(Bytes& out, uint32_t v) {
  uint8_t b[4];
  PutU32(b, v);
  out.insert(out.end(), b, b + 4);
}
void AppendU64(Bytes& out, uint64_t v) {
  AppendU32(out, static_cast<uint32_t>(v >> 32));
  AppendU32(out, static_cast<uint32_t>(v));
}

// PaddedLength is `length` rounded up to a multiple of 8 (64-bit: no overflow for any u32).
uint64_t PaddedLength(uint64_t length) { return (length + 7) & ~uint64_t{7}; }

// FirstInvalidUtf8 returns the index of the first byte that does not start a well-formed UTF-8
// sequence (RFC 3629 section 4: no overlong forms, no surrogates, nothing above U+10FFFF), or
// s.size() if there is none.
size_t FirstInvalidUtf8(ByteSpan s) {
  size_t i = 0;
  while (i < s.size()) {
    uint8_t b = s[i];
    if (b < 0x80) {
      ++i;
      continue;
    }
    size_t trail;
    uint8_t lo = 0x80, hi = 0xBF;  // the range of the second byte
    if (b >= 0xC2 && b <= 0xDF) {
      trail = 1;
    } else if (b == 0xE0) {
      trail = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      trail = 2;
    } else if (b == 0xED) {
      trail = 2, hi = 0x9F;
    } else if (b == 0xF0) {
      trail = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      trail = 3;
    } else if (b == 0xF4) {
      trail = 3, hi = 0x8F;
    } else {
      return i;
    }
    if (s.size() - i - 1 < trail || s[i + 1] < lo || s[i + 1] > hi) return i;
    for (size_t k = 2; k <= trail; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return i;
    }
    i += trail + 1;
  }
  return s.size();
}

// Header is an item's tag, type and length, checked on their own.
struct Header {
  Tag tag;
  ItemType type;
  uint32_t length;  // of the value, without padding
  uint64_t total;   // header, value and padding
};

// ParseHeader applies the checks that need only an item's 8 header bytes at `p` (the item
// starts at `offset` in the message).
StatusOr<Header> ParseHeader(const uint8_t* p, size_t offset) {
  Tag tag = Tag{p[0]} << 16 | Tag{p[1]} << 8 | Tag{p[2]};
  if (!IsValidTag(tag)) {
    return Refuse(offset, "tag " + TagHex(tag) +
                              " is neither a KMIP tag (0x420001-0x42FFFF) nor an extension tag "
                              "(0x540000-0x54FFFF)");
  }
  uint8_t type_byte = p[3];
  if (type_byte < 0x01 || type_byte > 0x0B) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", type_byte);
    return Refuse(offset, tag, std::string("unknown item type ") + buf);
  }
  auto type = static_cast<ItemType>(type_byte);
  uint32_t length = ReadU32(p + 4);
  auto exact = [&](uint32_t want) -> Status {
    if (length == want) return Status::Ok();
    return Refuse(offset, tag,
                  std::string(ItemTypeName(type)) + " length must be " + std::to_string(want) +
                      ", not " + std::to_string(length));
  };
  switch (type) {
    case ItemType::kInteger:
    case ItemType::kEnumeration:
    case ItemType::kInterval:
      RETURN_IF_ERROR(exact(4));
      break;
    case ItemType::kLongInteger:
    case ItemType::kBoolean:
    case ItemType::kDateTime:
    case ItemType::kDateTimeExtended:
      RETURN_IF_ERROR(exact(8));
      break;
    case ItemType::kBigInteger:
      if (length == 0 || length % 8 != 0) {
        return Refuse(
            offset, tag,
            "Big Integer length must be a non-zero multiple of 8, not " + std::to_string(length));
      }
      break;
    case ItemType::kStructure:
      if (length % 8 != 0) {
        return Refuse(offset, tag,
                      "Structure length must be a multiple of 8, not " + std::to_string(length));
      }
      break;
    case ItemType::kTextString:
    case ItemType::kByteString:
      break;
  }
  return Header{tag, type, length, kHeaderBytes + PaddedLength(length)};
}

// Decoder walks one message. It recurses once per nested structure, at most
// min(max_depth, kMaxDepthCeiling) deep, and allocates only for items whose bytes it has
// already seen to be present.
class Decoder {
 public:
  Decoder(ByteSpan in, const DecodeLimits& limits)
      : in_(in), limits_(limits), max_depth_(std::min(limits.max_depth, kMaxDepthCeiling)) {}

  // ParseItem decodes the item at `pos`, which must end by `end`, and advances `pos` past it.
  // `enclosing` is the number of structures around it.
  StatusOr<Item> ParseItem(size_t& pos, size_t end, size_t enclosing) {
    const size_t offset = pos;
    const size_t available = end - pos;
    if (available < kHeaderBytes) {
      if (enclosing == 0) {
        return Refuse(offset,
                      "truncated: " + std::to_string(available) + " bytes, an item header needs 8");
      }
      return Refuse(offset, "structure ends inside an item header");
    }
    ASSIGN_OR_RETURN(Header h, ParseHeader(in_.data() + pos, offset));
    if (++items_ > limits_.max_items) {
      return Refuse(offset, "more than " + std::to_string(limits_.max_items) + " items");
    }
    if (h.total > available) {
      if (enclosing == 0) {
        return Refuse(offset, h.tag,
                      "item of " + std::to_string(h.total) + " bytes, only " +
                          std::to_string(available) + " given");
      }
      return Refuse(offset, h.tag,
                    "item of " + std::to_string(h.total) + " bytes overruns its structure (" +
                        std::to_string(available) + " bytes left)");
    }
    ByteSpan value = in_.subspan(pos + kHeaderBytes, h.length);
    ByteSpan padding = in_.subspan(pos + kHeaderBytes + h.length,
                                   static_cast<size_t>(h.total) - kHeaderBytes - h.length);
    if (std::any_of(padding.begin(), padding.end(), [](uint8_t b) { return b != 0; })) {
      return Refuse(offset, h.tag, "non-zero padding");
    }
    pos += static_cast<size_t>(h.total);

    switch (h.type) {
      case ItemType::kStructure: {
        if (enclosing + 1 > max_depth_) {
          return Refuse(offset, h.tag,
                        "structures nested more than " + std::to_string(max_depth_) + " deep");
        }
        std::vector<Item> items;
        size_t child = offset + kHeaderBytes;
        const size_t child_end = child + h.length;
        while (child < child_end) {
          ASSIGN_OR_RETURN(Item item, ParseItem(child, child_end, enclosing + 1));
          items.push_back(std::move(item));
        }
        return Item::Structure(h.tag, std::move(items));
      }
      case ItemType::kInteger:
        return Item::Integer(h.tag, static_cast<int32_t>(ReadU32(value.data())));
      case ItemType::kLongInteger:
        return Item::LongInteger(h.tag, static_cast<int64_t>(ReadU64(value.data())));
      case ItemType::kBigInteger:
        return Item::BigInteger(h.tag, value);  // already a multiple of 8: kept as is
      case ItemType::kEnumeration:
        return Item::Enumeration(h.tag, ReadU32(value.data()));
      case ItemType::kBoolean: {
        uint64_t v = ReadU64(value.data());
        if (v > 1) return Refuse(offset, h.tag, "boolean value must be 0 or 1");
        return Item::Boolean(h.tag, v == 1);
      }
      case ItemType::kTextString: {
        size_t bad = FirstInvalidUtf8(value);
        if (bad != value.size()) {
          return Refuse(
              offset, h.tag,
              "text string is not valid UTF-8 (at value byte " + std::to_string(bad) + ")");
        }
        return Item::TextString(
            h.tag, std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
      }
      case ItemType::kByteString:
        return Item::ByteString(h.tag, value);
      case ItemType::kDateTime:
        return Item::DateTime(h.tag, static_cast<int64_t>(ReadU64(value.data())));
      case ItemType::kInterval:
        return Item::Interval(h.tag, ReadU32(value.data()));
      case ItemType::kDateTimeExtended:
        return Item::DateTimeExtended(h.tag, static_cast<int64_t>(ReadU64(value.data())));
    }
    return Refuse(offset, h.tag, "unknown item type");  // unreachable: ParseHeader checked it
  }

 private:
  ByteSpan in_;
  const DecodeLimits& limits_;
  size_t max_depth_;
  size_t items_ = 0;
};

// EncodedSize is the number of bytes Encode writes for `item`.
uint64_t EncodedSize(const Item& item) {
  switch (item.type()) {
    case ItemType::kStructure: {
      uint64_t n = kHeaderBytes;
      const std::span<const Item> items = *item.Items();
      for (const Item& child : items) n += EncodedSize(child);
      return n;
    }
    case ItemType::kBigInteger:
      return kHeaderBytes + item.AsBigInteger()->size();
    case ItemType::kTextString:
      return kHeaderBytes + PaddedLength(item.AsTextString()->size());
    case ItemType::kByteString:
      return kHeaderBytes + PaddedLength(item.AsByteString()->size());
    default:
      return kHeaderBytes + 8;  // every fixed-size value fills 8 bytes with its padding
  }
}

// CheckedLength aborts on a value the 32-bit length field cannot hold (Encode's documented
// precondition): emitting a truncated length would desynchronise the peer.
uint32_t CheckedLength(uint64_t length) {
  if (length > std::numeric_limits<uint32_t>::max()) std::abort();
  return static_cast<uint32_t>(length);
}

void AppendHeader(Bytes& out, const Item& item, uint32_t length) {
  if (item.tag() > 0xFFFFFF) std::abort();
  out.push_back(static_cast<uint8_t>(item.tag() >> 16));
  out.push_back(static_cast<uint8_t>(item.tag() >> 8));
  out.push_back(static_cast<uint8_t>(item.tag()));
  out.push_back(static_cast<uint8_t>(item.type()));
  AppendU32(out, length);
}

void AppendPadded(Bytes& out, const Item& item, ByteSpan value) {
  AppendHeader(out, item, CheckedLength(value.size()));
  out.insert(out.end(), value.begin(), value.end());
  out.resize(out.size() + static_cast<size_t>(PaddedLength(value.size()) - value.size()), 0);
}

void AppendItem(Bytes& out, const Item& item) {
  switch (item.type()) {
    case ItemType::kStructure: {
      const size_t start = out.size();
      AppendHeader(out, item, 0);  // the length is written once the items are
      const std::span<const Item> items = *item.Items();
      for (const Item& child : items) AppendItem(out, child);
      PutU32(out.data() + start + 4, CheckedLength(out.size() - start - kHeaderBytes));
      return;
    }
    case ItemType::kInteger:
      AppendHeader(out, item, 4);
      AppendU64(out, uint64_t{static_cast<uint32_t>(*item.AsInteger())} << 32);
      return;
    case ItemType::kEnumeration:
      AppendHeader(out, item, 4);
      AppendU64(out, uint64_t{*item.AsEnumeration()} << 32);
      return;
    case ItemType::kInterval:
      AppendHeader(out, item, 4);
      AppendU64(out, uint64_t{*item.AsInterval()} << 32);
      return;
    case ItemType::kLongInteger:
      AppendHeader(out, item, 8);
      AppendU64(out, static_cast<uint64_t>(*item.AsLongInteger()));
      return;
    case ItemType::kBoolean:
      AppendHeader(out, item, 8);
      AppendU64(out, *item.AsBoolean() ? 1 : 0);
      return;
    case ItemType::kDateTime:
      AppendHeader(out, item, 8);
      AppendU64(out, static_cast<uint64_t>(*item.AsDateTime()));
      return;
    case ItemType::kDateTimeExtended:
      AppendHeader(out, item, 8);
      AppendU64(out, static_cast<uint64_t>(*item.AsDateTimeExtended()));
      return;
    case ItemType::kBigInteger:
      AppendPadded(out, item, *item.AsBigInteger());  // a multiple of 8: no padding
      return;
    case ItemType::kTextString:
      AppendPadded(out, item, AsBytes(*item.AsTextString()));
      return;
    case ItemType::kByteString:
      AppendPadded(out, item, *item.AsByteString());
      return;
  }
}

}  // namespace

const char* ItemTypeName(ItemType type) {
  switch (type) {
    case ItemType::kStructure:
      return "Structure";
    case ItemType::kInteger:
      return "Integer";
    case ItemType::kLongInteger:
      return "Long Integer";
    case ItemType::kBigInteger:
      return "Big Integer";
    case ItemType::kEnumeration:
      return "Enumeration";
    case ItemType::kBoolean:
      return "Boolean";
    case ItemType::kTextString:
      return "Text String";
    case ItemType::kByteString:
      return "Byte String";
    case ItemType::kDateTime:
      return "Date-Time";
    case ItemType::kInterval:
      return "Interval";
    case ItemType::kDateTimeExtended:
      return "Date-Time Extended";
  }
  return "unknown type";
}

Item Item::Structure(Tag tag, std::vector<Item> items) {
  return Item(tag, ItemType::kStructure, std::move(items));
}
Item Item::Integer(Tag tag, int32_t value) { return Item(tag, ItemType::kInteger, value); }
Item Item::LongInteger(Tag tag, int64_t value) { return Item(tag, ItemType::kLongInteger, value); }
Item Item::BigInteger(Tag tag, ByteSpan twos_complement) {
  const size_t n = twos_complement.size();
  const size_t extend = n == 0 ? 8 : (8 - n % 8) % 8;
  const uint8_t sign = (n > 0 && (twos_complement[0] & 0x80) != 0) ? 0xFF : 0x00;
  Bytes value;
  value.reserve(extend + n);
  value.assign(extend, sign);
  value.insert(value.end(), twos_complement.begin(), twos_complement.end());
  return Item(tag, ItemType::kBigInteger, std::move(value));
}
Item Item::Enumeration(Tag tag, uint32_t value) { return Item(tag, ItemType::kEnumeration, value); }
Item Item::Boolean(Tag tag, bool value) { return Item(tag, ItemType::kBoolean, value); }
Item Item::TextString(Tag tag, std::string_view utf8) {
  return Item(tag, ItemType::kTextString, Bytes(utf8.begin(), utf8.end()));
}
Item Item::ByteString(Tag tag, ByteSpan bytes) {
  return Item(tag, ItemType::kByteString, Bytes(bytes.begin(), bytes.end()));
}
Item Item::DateTime(Tag tag, int64_t posix_seconds) {
  return Item(tag, ItemType::kDateTime, posix_seconds);
}
Item Item::Interval(Tag tag, uint32_t seconds) { return Item(tag, ItemType::kInterval, seconds); }
Item Item::DateTimeExtended(Tag tag, int64_t posix_microseconds) {
  return Item(tag, ItemType::kDateTimeExtended, posix_microseconds);
}

Item& Item::operator=(const Item& other) {
  if (this != &other) {
    Item copy(other);  // first: `other` may live inside this item
    *this = std::move(copy);
  }
  return *this;
}

Item& Item::operator=(Item&& other) noexcept {
  if (this != &other) {
    Wipe();
    tag_ = other.tag_;
    type_ = other.type_;
    value_ = std::move(other.value_);
  }
  return *this;
}

Item::~Item() { Wipe(); }

void Item::Wipe() {
  if (auto* bytes = std::get_if<Bytes>(&value_)) WipeBytes(*bytes);
}

Status Item::WrongType(ItemType expected) const {
  return InvalidArgument("kmip ttlv: tag " + TagHex(tag_) + ": expected " + ItemTypeName(expected) +
                         ", found " + ItemTypeName(type_));
}

StatusOr<std::span<const Item>> Item::Items() const {
  if (type_ != ItemType::kStructure) return WrongType(ItemType::kStructure);
  return std::span<const Item>(std::get<std::vector<Item>>(value_));
}
StatusOr<int32_t> Item::AsInteger() const {
  if (type_ != ItemType::kInteger) return WrongType(ItemType::kInteger);
  return std::get<int32_t>(value_);
}
StatusOr<int64_t> Item::AsLongInteger() const {
  if (type_ != ItemType::kLongInteger) return WrongType(ItemType::kLongInteger);
  return std::get<int64_t>(value_);
}
StatusOr<ByteSpan> Item::AsBigInteger() const {
  if (type_ != ItemType::kBigInteger) return WrongType(ItemType::kBigInteger);
  return ByteSpan(std::get<Bytes>(value_));
}
StatusOr<uint32_t> Item::AsEnumeration() const {
  if (type_ != ItemType::kEnumeration) return WrongType(ItemType::kEnumeration);
  return std::get<uint32_t>(value_);
}
StatusOr<bool> Item::AsBoolean() const {
  if (type_ != ItemType::kBoolean) return WrongType(ItemType::kBoolean);
  return std::get<bool>(value_);
}
StatusOr<std::string_view> Item::AsTextString() const {
  if (type_ != ItemType::kTextString) return WrongType(ItemType::kTextString);
  const Bytes& b = std::get<Bytes>(value_);
  return std::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
StatusOr<ByteSpan> Item::AsByteString() const {
  if (type_ != ItemType::kByteString) return WrongType(ItemType::kByteString);
  return ByteSpan(std::get<Bytes>(value_));
}
StatusOr<int64_t> Item::AsDateTime() const {
  if (type_ != ItemType::kDateTime) return WrongType(ItemType::kDateTime);
  return std::get<int64_t>(value_);
}
StatusOr<uint32_t> Item::AsInterval() const {
  if (type_ != ItemType::kInterval) return WrongType(ItemType::kInterval);
  return std::get<uint32_t>(value_);
}
StatusOr<int64_t> Item::AsDateTimeExtended() const {
  if (type_ != ItemType::kDateTimeExtended) return WrongType(ItemType::kDateTimeExtended);
  return std::get<int64_t>(value_);
}

const Item* Item::FindItem(Tag tag) const {
  if (type_ != ItemType::kStructure) return nullptr;
  for (const Item& item : std::get<std::vector<Item>>(value_)) {
    if (item.tag_ == tag) return &item;
  }
  return nullptr;
}

std::vector<const Item*> Item::FindItems(Tag tag) const {
  std::vector<const Item*> found;
  if (type_ != ItemType::kStructure) return found;
  for (const Item& item : std::get<std::vector<Item>>(value_)) {
    if (item.tag_ == tag) found.push_back(&item);
  }
  return found;
}

StatusOr<const Item*> Item::RequireItem(Tag tag) const {
  if (type_ != ItemType::kStructure) return WrongType(ItemType::kStructure);
  if (const Item* item = FindItem(tag)) return item;
  return InvalidArgument("kmip ttlv: tag " + TagHex(tag_) + ": structure has no item with tag " +
                         TagHex(tag));
}

Bytes Encode(const Item& item) {
  const uint64_t size = EncodedSize(item);
  if (size > std::numeric_limits<size_t>::max()) std::abort();
  Bytes out;
  out.reserve(static_cast<size_t>(size));
  AppendItem(out, item);
  return out;
}

StatusOr<Item> Decode(ByteSpan message, const DecodeLimits& limits) {
  if (message.size() > limits.max_message_bytes) {
    return Refuse(0, "message of " + std::to_string(message.size()) +
                         " bytes exceeds the limit of " + std::to_string(limits.max_message_bytes) +
                         " bytes");
  }
  Decoder decoder(message, limits);
  size_t pos = 0;
  ASSIGN_OR_RETURN(Item item, decoder.ParseItem(pos, message.size(), 0));
  if (pos != message.size()) {
    return Refuse(pos, std::to_string(message.size() - pos) + " trailing bytes after the item");
  }
  return item;
}

StatusOr<size_t> ItemLength(ByteSpan header, const DecodeLimits& limits) {
  if (header.size() < kHeaderBytes) {
    return Refuse(0,
                  "truncated: " + std::to_string(header.size()) + " bytes, an item header needs 8");
  }
  ASSIGN_OR_RETURN(Header h, ParseHeader(header.data(), 0));
  if (h.total > limits.max_message_bytes) {
    return Refuse(0, h.tag,
                  "message of " + std::to_string(h.total) + " bytes exceeds the limit of " +
                      std::to_string(limits.max_message_bytes) + " bytes");
  }
  return static_cast<size_t>(h.total);
}

}  // namespace custos::kmip
