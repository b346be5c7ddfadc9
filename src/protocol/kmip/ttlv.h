// KMIP's binary message encoding, TTLV (OASIS KMIP Specification 1.x section 9.1 "TTLV
// Encoding", 2.0 section 9 "Message Encoding"); docs/kmip.md "TTLV (KMIP encoding)". Pure code:
// no I/O. A server reads a message's first 8 bytes, asks ItemLength how many bytes the message
// occupies, reads them and calls Decode; it answers with Encode.
//
// Every item is
//
//   tag (3 bytes, big-endian) || type (1 byte) || length (4 bytes, big-endian) || value || padding
//
// where length counts the value without padding and the padding (zero bytes) brings value +
// padding to a multiple of 8. The value of each type:
//
//   0x01 Structure           the concatenated encodings of its items     length a multiple of 8
//   0x02 Integer             int32, two's complement                     length 4, 4 padding
//   0x03 Long Integer        int64, two's complement                     length 8
//   0x04 Big Integer         two's complement, sign-extended on the left length 8, 16, ...
//   0x05 Enumeration         uint32                                      length 4, 4 padding
//   0x06 Boolean             uint64 0 (false) or 1 (true)                length 8
//   0x07 Text String         UTF-8                                       any length, padded
//   0x08 Byte String         bytes                                       any length, padded
//   0x09 Date-Time           int64 POSIX time, seconds                   length 8
//   0x0A Interval            uint32 seconds                              length 4, 4 padding
//   0x0B Date-Time Extended  int64 POSIX time, microseconds (KMIP 2.0)   length 8
//
// Tags are 0x42XXXX (defined by the specification) or 0x54XXXX (extensions); tags.h names the
// ones of the message envelope.
//
// The codec knows types, not meanings: which tag carries which type, which items a message
// must hold and what the protocol version allows are the server's checks, on the decoded item.
//
// Decode is strict: an input is accepted only if it is exactly the encoding Encode gives for
// the decoded item (no trailing bytes, exact lengths, zero padding), so Encode(Decode(x)) == x.
// It is bounded by DecodeLimits and refuses with kInvalidArgument, naming the check and the
// byte offset of the item that failed: "kmip ttlv: at offset 24: tag 0x420008: boolean value
// must be 0 or 1". Messages never contain value bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"

namespace custos::kmip {

// Tag is a 24-bit KMIP tag (0x420001-0x42FFFF or 0x540000-0x54FFFF on the wire).
using Tag = uint32_t;

// ItemType is the type byte of an item.
enum class ItemType : uint8_t {
  kStructure = 0x01,
  kInteger = 0x02,
  kLongInteger = 0x03,
  kBigInteger = 0x04,
  kEnumeration = 0x05,
  kBoolean = 0x06,
  kTextString = 0x07,
  kByteString = 0x08,
  kDateTime = 0x09,
  kInterval = 0x0A,
  kDateTimeExtended = 0x0B,
};

// ItemTypeName returns the specification's name of `type` ("Text String", "Date-Time", ...).
const char* ItemTypeName(ItemType type);

// Item is one TTLV item: a tag, a type and a value of that type; a structure's value is its
// items, in order. Items are plain values (copyable, comparable with ==). The bytes of Text
// String, Byte String and Big Integer values (which may be key material or a password) are
// wiped when the item is destroyed or assigned over; the views the accessors return are valid
// while the item lives and is not assigned to.
class Item {
 public:
  // Constructors, one per type. Tags are not checked here: Encode requires tag <= 0xFFFFFF.
  static Item Structure(Tag tag, std::vector<Item> items = {});
  static Item Integer(Tag tag, int32_t value);
  static Item LongInteger(Tag tag, int64_t value);
  // BigInteger takes a two's complement big-endian value of any length and sign-extends it on
  // the left to a multiple of 8 bytes (an empty value is zero: 8 zero bytes). A decoded Big
  // Integer keeps its wire bytes, so 16 bytes of sign extension stay 16 bytes.
  static Item BigInteger(Tag tag, ByteSpan twos_complement);
  static Item Enumeration(Tag tag, uint32_t value);
  static Item Boolean(Tag tag, bool value);
  // TextString takes UTF-8; Encode does not check it, Decode refuses anything else.
  static Item TextString(Tag tag, std::string_view utf8);
  static Item ByteString(Tag tag, ByteSpan bytes);
  static Item DateTime(Tag tag, int64_t posix_seconds);
  static Item Interval(Tag tag, uint32_t seconds);
  static Item DateTimeExtended(Tag tag, int64_t posix_microseconds);

  Item(const Item& other) = default;
  Item(Item&& other) noexcept = default;
  Item& operator=(const Item& other);
  Item& operator=(Item&& other) noexcept;
  ~Item();

  Tag tag() const { return tag_; }
  ItemType type() const { return type_; }
  bool is_structure() const { return type_ == ItemType::kStructure; }

  // Typed accessors. Each fails with kInvalidArgument naming the tag, the expected type and the
  // item's type ("kmip ttlv: tag 0x42000D: expected Integer, found Text String") when the item
  // is of another type. Bind a result before iterating over it: in C++20,
  // `for (const Item& i : *item.Items())` iterates over a destroyed temporary.
  StatusOr<std::span<const Item>> Items() const;  // a structure's items
  StatusOr<int32_t> AsInteger() const;
  StatusOr<int64_t> AsLongInteger() const;
  StatusOr<ByteSpan> AsBigInteger() const;  // two's complement, big-endian, length 8k
  StatusOr<uint32_t> AsEnumeration() const;
  StatusOr<bool> AsBoolean() const;
  StatusOr<std::string_view> AsTextString() const;
  StatusOr<ByteSpan> AsByteString() const;
  StatusOr<int64_t> AsDateTime() const;
  StatusOr<uint32_t> AsInterval() const;
  StatusOr<int64_t> AsDateTimeExtended() const;

  // FindItem returns this structure's first item with `tag`, or null (also when this item is
  // not a structure). FindItems returns all of them, in order. RequireItem is FindItem that
  // fails with kInvalidArgument naming both tags when there is none, or when this item is not a
  // structure. The pointers are valid while this item lives and is not assigned to.
  const Item* FindItem(Tag tag) const;
  std::vector<const Item*> FindItems(Tag tag) const;
  StatusOr<const Item*> RequireItem(Tag tag) const;

  bool operator==(const Item& other) const = default;

 private:
  // Which alternative holds the value is fixed by type_: Structure -> items; Integer -> int32;
  // Long Integer, Date-Time, Date-Time Extended -> int64; Enumeration, Interval -> uint32;
  // Boolean -> bool; Big Integer, Text String, Byte String -> Bytes.
  using Value = std::variant<std::vector<Item>, int32_t, int64_t, uint32_t, bool, Bytes>;

  Item(Tag tag, ItemType type, Value value) : tag_(tag), type_(type), value_(std::move(value)) {}
  Status WrongType(ItemType expected) const;
  void Wipe();

  Tag tag_ = 0;
  ItemType type_ = ItemType::kStructure;
  Value value_;
};

// DecodeLimits bound what Decode and ItemLength accept, before anything is allocated for it.
struct DecodeLimits {
  size_t max_message_bytes = 1 << 20;  // the whole encoding, header included
  size_t max_depth = 32;               // structures nested in structures; the top one is 1
  size_t max_items = 16384;            // items in the message, the top one included
};

// kMaxDepthCeiling caps DecodeLimits::max_depth (Decode recurses once per nested structure):
// a larger limit is treated as this one.
inline constexpr size_t kMaxDepthCeiling = 256;

// kHeaderBytes is the size of an item's tag, type and length.
inline constexpr size_t kHeaderBytes = 8;

// Encode returns the TTLV encoding of `item`. It cannot fail for items built with the
// constructors above and tags <= 0xFFFFFF; an item whose tag exceeds 24 bits or whose encoding
// would exceed the 32-bit length field is a programming error and aborts the process rather
// than emit a wrong length. The output is sized once, so a secret value is never left behind in
// a reallocated buffer; wiping the output is the caller's business.
Bytes Encode(const Item& item);

// Decode parses exactly one item from `message` (a whole KMIP message is one structure), with
// the checks in this file's comment: tag range, known type, per-type length, zero padding,
// Boolean 0 or 1, valid UTF-8, structure items that fit their structure exactly, no trailing
// bytes, and the limits. Refusals are kInvalidArgument.
StatusOr<Item> Decode(ByteSpan message, const DecodeLimits& limits = {});

// ItemLength reads the first kHeaderBytes of `header` (more bytes are ignored) and returns the
// number of bytes the whole item occupies, header and padding included, so that a reader of a
// stream knows how much to read before calling Decode. It applies the checks that need only
// the header (tag range, known type, per-type length, limits.max_message_bytes) and refuses
// fewer than 8 bytes.
StatusOr<size_t> ItemLength(ByteSpan header, const DecodeLimits& limits = {});

}  // namespace custos::kmip
