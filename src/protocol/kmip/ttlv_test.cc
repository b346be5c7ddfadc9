// Tests for the KMIP TTLV codec (ttlv.h): the specification's encoding examples and the KMIP 1.1
// test case "Discover Versions" byte for byte (testdata/ttlv_vectors.json, which names its
// sources: KMIP Specification 1.4 section 9.1.2 and KMIP Test Cases 1.1 section 16.1), round
// trips of every type at the padding edges, hand-computed encodings, the typed accessors and
// lookups, ItemLength, and every refusal of Decode with its message and offset.
#include "protocol/kmip/ttlv.h"

#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/file.h"
#include "gmock/gmock.h"
#include "protocol/kmip/tags.h"
#include "tests/testing/testing.h"

namespace custos::kmip {
namespace {

using ::testing::HasSubstr;

// Hex decodes the specification's notation: hex digits with spaces and '|' as separators.
Bytes Hex(std::string_view spaced) {
  std::string hex;
  for (char c : spaced) {
    if (c != ' ' && c != '|' && c != '\n') hex.push_back(c);
  }
  auto bytes = HexDecode(hex);
  EXPECT_TRUE(bytes.ok()) << spaced;
  return bytes.ok() ? *bytes : Bytes{};
}

std::string HexOf(const Item& item) { return HexEncode(Encode(item)); }

std::string Lower(std::string_view spaced) { return HexEncode(Hex(spaced)); }

// ExpectRefused decodes `input` and expects kInvalidArgument with exactly `message`.
void ExpectRefused(ByteSpan input, const std::string& message, const DecodeLimits& limits = {}) {
  auto item = Decode(input, limits);
  ASSERT_FALSE(item.ok()) << "accepted: " << HexEncode(input);
  EXPECT_EQ(item.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(item.status().message(), message);
}

nlohmann::json LoadVectors() {
  auto text = ReadFileString(testing::ProjectPath("src/protocol/kmip/testdata/ttlv_vectors.json"));
  EXPECT_TRUE(text.ok()) << text.status().ToString();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json::object();
}

// SpecItem builds the item a specification example describes (tag 0x420020 throughout).
Item SpecItem(const nlohmann::json& v) {
  const std::string type = v["type"];
  const Tag tag = tags::kCompromiseDate;
  if (type == "Integer") return Item::Integer(tag, v["value"].get<int32_t>());
  if (type == "Long Integer") return Item::LongInteger(tag, v["value"].get<int64_t>());
  if (type == "Big Integer") return Item::BigInteger(tag, Hex(v["value"].get<std::string>()));
  if (type == "Enumeration") return Item::Enumeration(tag, v["value"].get<uint32_t>());
  if (type == "Boolean") return Item::Boolean(tag, v["value"].get<bool>());
  if (type == "Text String") return Item::TextString(tag, v["value"].get<std::string>());
  if (type == "Byte String") return Item::ByteString(tag, Hex(v["value"].get<std::string>()));
  if (type == "Date-Time") return Item::DateTime(tag, v["value"].get<int64_t>());
  if (type == "Interval") return Item::Interval(tag, v["value"].get<uint32_t>());
  // The structure example: an Enumeration 254 (tag 0x420004) then an Integer 255 (0x420005).
  return Item::Structure(tag, {Item::Enumeration(0x420004, 254), Item::Integer(0x420005, 255)});
}

TEST(TtlvVectors, SpecificationExamplesByteForByte) {
  auto doc = LoadVectors();
  const auto& vectors = doc["spec_examples"]["vectors"];
  ASSERT_EQ(vectors.size(), 10u);
  for (const auto& v : vectors) {
    SCOPED_TRACE(v["name"].get<std::string>());
    Item item = SpecItem(v);
    Bytes wire = Hex(v["hex"].get<std::string>());
    EXPECT_EQ(HexOf(item), HexEncode(wire));
    auto decoded = Decode(wire);
    ASSERT_OK(decoded.status());
    EXPECT_EQ(*decoded, item);
    auto length = ItemLength(wire);
    ASSERT_OK(length.status());
    EXPECT_EQ(*length, wire.size());
  }
}

Item ProtocolVersion(int32_t major, int32_t minor) {
  return Item::Structure(tags::kProtocolVersion,
                         {Item::Integer(tags::kProtocolVersionMajor, major),
                          Item::Integer(tags::kProtocolVersionMinor, minor)});
}

const nlohmann::json& Message(const nlohmann::json& doc, const std::string& name) {
  for (const auto& v : doc["messages"]["vectors"]) {
    if (v["name"] == name) return v;
  }
  static const nlohmann::json none = nlohmann::json::object();
  ADD_FAILURE() << "no vector " << name;
  return none;
}

TEST(TtlvVectors, DiscoverVersionsRequestOfTheKmipTestCases) {
  auto doc = LoadVectors();
  Bytes wire = Hex(Message(doc, "discover_versions_request").value("hex", ""));
  constexpr uint32_t kDiscoverVersions = 0x1E;
  Item request = Item::Structure(
      tags::kRequestMessage,
      {Item::Structure(tags::kRequestHeader,
                       {ProtocolVersion(1, 1), Item::Integer(tags::kBatchCount, 1)}),
       Item::Structure(tags::kBatchItem, {Item::Enumeration(tags::kOperation, kDiscoverVersions),
                                          Item::Structure(tags::kRequestPayload)})});
  EXPECT_EQ(HexOf(request), HexEncode(wire));
  auto decoded = Decode(wire);
  ASSERT_OK(decoded.status());
  EXPECT_EQ(*decoded, request);

  // What a server reads from it, through the lookups.
  auto header = decoded->RequireItem(tags::kRequestHeader);
  ASSERT_OK(header.status());
  auto version = (*header)->RequireItem(tags::kProtocolVersion);
  ASSERT_OK(version.status());
  auto major = (*version)->RequireItem(tags::kProtocolVersionMajor);
  ASSERT_OK(major.status());
  EXPECT_EQ(*(*major)->AsInteger(), 1);
  const Item* batch = decoded->FindItem(tags::kBatchItem);
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(*batch->FindItem(tags::kOperation)->AsEnumeration(), kDiscoverVersions);
  EXPECT_TRUE(batch->FindItem(tags::kRequestPayload)->Items()->empty());
}

TEST(TtlvVectors, DiscoverVersionsResponseOfTheKmipTestCases) {
  auto doc = LoadVectors();
  Bytes wire = Hex(Message(doc, "discover_versions_response").value("hex", ""));
  Item response = Item::Structure(
      tags::kResponseMessage,
      {Item::Structure(tags::kResponseHeader,
                       {ProtocolVersion(1, 1), Item::DateTime(tags::kTimeStamp, 0x4ED73ED7),
                        Item::Integer(tags::kBatchCount, 1)}),
       Item::Structure(
           tags::kBatchItem,
           {Item::Enumeration(tags::kOperation, 0x1E), Item::Enumeration(tags::kResultStatus, 0),
            Item::Structure(tags::kResponsePayload,
                            {ProtocolVersion(1, 1), ProtocolVersion(1, 0)})})});
  auto decoded = Decode(wire);
  ASSERT_OK(decoded.status());
  EXPECT_EQ(*decoded, response);
  EXPECT_EQ(HexEncode(Encode(*decoded)), HexEncode(wire));

  const Item* payload = decoded->FindItem(tags::kBatchItem)->FindItem(tags::kResponsePayload);
  ASSERT_NE(payload, nullptr);
  auto versions = payload->FindItems(tags::kProtocolVersion);
  ASSERT_EQ(versions.size(), 2u);
  EXPECT_EQ(*versions[0]->FindItem(tags::kProtocolVersionMinor)->AsInteger(), 1);
  EXPECT_EQ(*versions[1]->FindItem(tags::kProtocolVersionMinor)->AsInteger(), 0);
  EXPECT_EQ(*decoded->FindItem(tags::kResponseHeader)->FindItem(tags::kTimeStamp)->AsDateTime(),
            0x4ED73ED7);
}

// The fuzz target's seeds (fuzz/corpus/kmip_ttlv_fuzz) are valid messages, so that the fuzzer
// starts from accepted inputs.
TEST(TtlvVectors, FuzzSeedsDecode) {
  size_t seeds = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(testing::ProjectPath("fuzz/corpus/kmip_ttlv_fuzz"))) {
    SCOPED_TRACE(entry.path().string());
    auto bytes = ReadFileBytes(entry.path().string());
    ASSERT_OK(bytes.status());
    auto item = Decode(*bytes);
    ASSERT_OK(item.status());
    EXPECT_EQ(Encode(*item), *bytes);
    ++seeds;
  }
  EXPECT_GE(seeds, 5u);
}

// ---- round trips and hand-computed encodings ----

std::string Repeat(char c, size_t n) { return std::string(n, c); }

TEST(TtlvRoundTrip, EveryTypeAtItsEdges) {
  const Tag t = tags::kUniqueIdentifier;
  std::vector<Item> items = {
      Item::Integer(t, 0),
      Item::Integer(t, -1),
      Item::Integer(t, std::numeric_limits<int32_t>::min()),
      Item::Integer(t, std::numeric_limits<int32_t>::max()),
      Item::LongInteger(t, -2),
      Item::LongInteger(t, std::numeric_limits<int64_t>::min()),
      Item::LongInteger(t, std::numeric_limits<int64_t>::max()),
      Item::BigInteger(t, {}),
      Item::BigInteger(t, Hex("80")),
      Item::BigInteger(t, Hex("7F")),
      Item::BigInteger(t, Hex("FF 00 00 00 00 00 00 00 01")),
      Item::BigInteger(t, Hex("00000000000000000000000000000001")),
      Item::Enumeration(t, 0),
      Item::Enumeration(t, 0xFFFFFFFF),
      Item::Boolean(t, false),
      Item::Boolean(t, true),
      Item::TextString(t, ""),
      Item::TextString(t, "a"),
      Item::TextString(t, Repeat('b', 7)),
      Item::TextString(t, Repeat('c', 8)),
      Item::TextString(t, Repeat('d', 9)),
      Item::TextString(t, "\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E"),  // e-acute, euro, G clef
      Item::ByteString(t, {}),
      Item::ByteString(t, Hex("00")),
      Item::ByteString(t, Hex("01020304050607")),
      Item::ByteString(t, Hex("0102030405060708")),
      Item::ByteString(t, Hex("010203040506070809")),
      Item::DateTime(t, -1),
      Item::DateTime(t, 1205495800),
      Item::Interval(t, 0xFFFFFFFF),
      Item::DateTimeExtended(t, -1'000'000),
      Item::DateTimeExtended(t, 1'205'495'800'123'456),
      Item::Structure(t),
      Item::Structure(0x540001, {Item::Structure(t, {Item::Structure(t)})}),
  };
  std::vector<Item> all = items;
  items.push_back(Item::Structure(tags::kRequestPayload, std::move(all)));
  for (const Item& item : items) {
    SCOPED_TRACE(std::string(ItemTypeName(item.type())) + " " + HexOf(item));
    Bytes wire = Encode(item);
    EXPECT_EQ(wire.size() % 8, 0u);
    auto decoded = Decode(wire);
    ASSERT_OK(decoded.status());
    EXPECT_EQ(*decoded, item);
    EXPECT_EQ(Encode(*decoded), wire);
    EXPECT_EQ(*ItemLength(wire), wire.size());
  }
}

TEST(TtlvEncode, HandComputedBytes) {
  const Tag t = tags::kUniqueIdentifier;  // 42 00 94
  EXPECT_EQ(HexOf(Item::Integer(t, -1)), Lower("420094 | 02 | 00000004 | FFFFFFFF 00000000"));
  EXPECT_EQ(HexOf(Item::Integer(t, std::numeric_limits<int32_t>::min())),
            Lower("420094 | 02 | 00000004 | 80000000 00000000"));
  EXPECT_EQ(HexOf(Item::LongInteger(t, -2)), Lower("420094 | 03 | 00000008 | FFFFFFFFFFFFFFFE"));
  EXPECT_EQ(HexOf(Item::BigInteger(t, Hex("80"))),
            Lower("420094 | 04 | 00000008 | FFFFFFFFFFFFFF80"));
  EXPECT_EQ(HexOf(Item::BigInteger(t, Hex("0080"))),
            Lower("420094 | 04 | 00000008 | 0000000000000080"));
  EXPECT_EQ(HexOf(Item::BigInteger(t, {})), Lower("420094 | 04 | 00000008 | 0000000000000000"));
  EXPECT_EQ(HexOf(Item::BigInteger(t, Hex("FF0000000000000001"))),
            Lower("420094 | 04 | 00000010 | FFFFFFFFFFFFFFFF 0000000000000001"));
  EXPECT_EQ(HexOf(Item::Enumeration(t, 0x80000001)),
            Lower("420094 | 05 | 00000004 | 80000001 00000000"));
  EXPECT_EQ(HexOf(Item::Boolean(t, false)), Lower("420094 | 06 | 00000008 | 0000000000000000"));
  EXPECT_EQ(HexOf(Item::TextString(t, "")), Lower("420094 | 07 | 00000000"));
  EXPECT_EQ(HexOf(Item::TextString(t, "a")), Lower("420094 | 07 | 00000001 | 61 00000000000000"));
  EXPECT_EQ(HexOf(Item::TextString(t, "abcdefg")),
            Lower("420094 | 07 | 00000007 | 61626364656667 00"));
  EXPECT_EQ(HexOf(Item::TextString(t, "abcdefgh")),
            Lower("420094 | 07 | 00000008 | 6162636465666768"));
  EXPECT_EQ(HexOf(Item::ByteString(t, Hex("010203040506070809"))),
            Lower("420094 | 08 | 00000009 | 0102030405060708 09 00000000000000"));
  EXPECT_EQ(HexOf(Item::ByteString(t, {})), Lower("420094 | 08 | 00000000"));
  EXPECT_EQ(HexOf(Item::DateTime(t, -1)), Lower("420094 | 09 | 00000008 | FFFFFFFFFFFFFFFF"));
  EXPECT_EQ(HexOf(Item::Interval(t, 1)), Lower("420094 | 0A | 00000004 | 00000001 00000000"));
  EXPECT_EQ(HexOf(Item::DateTimeExtended(t, 1)),
            Lower("420094 | 0B | 00000008 | 0000000000000001"));
  EXPECT_EQ(HexOf(Item::Structure(tags::kRequestPayload)), Lower("420079 | 01 | 00000000"));
  EXPECT_EQ(HexOf(Item::Structure(tags::kRequestPayload, {Item::TextString(t, "k-1")})),
            Lower("420079 | 01 | 00000010 | 420094 | 07 | 00000003 | 6B2D31 0000000000"));
}

// ---- accessors and lookups ----

TEST(TtlvItem, TypedAccessorsNameTheTagAndTheTypes) {
  Item count = Item::Integer(tags::kBatchCount, 3);
  EXPECT_EQ(*count.AsInteger(), 3);
  auto text = count.AsTextString();
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(text.status().message(),
            "kmip ttlv: tag 0x42000D: expected Text String, found Integer");
  EXPECT_EQ(count.Items().status().message(),
            "kmip ttlv: tag 0x42000D: expected Structure, found Integer");
  EXPECT_FALSE(count.AsLongInteger().ok());
  EXPECT_FALSE(count.AsEnumeration().ok());
  EXPECT_FALSE(count.AsBoolean().ok());
  EXPECT_FALSE(count.AsByteString().ok());
  EXPECT_FALSE(count.AsBigInteger().ok());
  EXPECT_FALSE(count.AsDateTime().ok());
  EXPECT_FALSE(count.AsInterval().ok());
  EXPECT_FALSE(count.AsDateTimeExtended().ok());

  // Same representation, other type: still refused.
  Item when = Item::DateTime(tags::kTimeStamp, 5);
  EXPECT_EQ(when.AsLongInteger().status().message(),
            "kmip ttlv: tag 0x420092: expected Long Integer, found Date-Time");
  EXPECT_EQ(when.AsDateTimeExtended().status().message(),
            "kmip ttlv: tag 0x420092: expected Date-Time Extended, found Date-Time");
  EXPECT_EQ(Item::Interval(1, 2).AsEnumeration().status().message(),
            "kmip ttlv: tag 0x000001: expected Enumeration, found Interval");
  EXPECT_FALSE(Item::ByteString(1, Hex("00")).AsTextString().ok());
  EXPECT_FALSE(Item::BigInteger(1, Hex("00")).AsByteString().ok());

  EXPECT_EQ(*Item::LongInteger(1, -7).AsLongInteger(), -7);
  EXPECT_EQ(*Item::Enumeration(1, 9).AsEnumeration(), 9u);
  EXPECT_EQ(*Item::Boolean(1, true).AsBoolean(), true);
  EXPECT_EQ(*Item::TextString(1, "x").AsTextString(), "x");
  EXPECT_EQ(HexEncode(*Item::ByteString(1, Hex("0A0B")).AsByteString()), "0a0b");
  EXPECT_EQ(HexEncode(*Item::BigInteger(1, Hex("0A0B")).AsBigInteger()), "0000000000000a0b");
  EXPECT_EQ(*Item::DateTime(1, -3).AsDateTime(), -3);
  EXPECT_EQ(*Item::Interval(1, 60).AsInterval(), 60u);
  EXPECT_EQ(*Item::DateTimeExtended(1, 4).AsDateTimeExtended(), 4);
}

TEST(TtlvItem, FindFirstAndAllItemsWithATag) {
  Item batch = Item::Structure(
      tags::kRequestMessage,
      {Item::Integer(tags::kBatchCount, 2), Item::TextString(tags::kUniqueIdentifier, "first"),
       Item::Integer(tags::kBatchCount, 3), Item::TextString(tags::kUniqueIdentifier, "second")});
  ASSERT_NE(batch.FindItem(tags::kUniqueIdentifier), nullptr);
  EXPECT_EQ(*batch.FindItem(tags::kUniqueIdentifier)->AsTextString(), "first");
  auto ids = batch.FindItems(tags::kUniqueIdentifier);
  ASSERT_EQ(ids.size(), 2u);
  EXPECT_EQ(*ids[0]->AsTextString(), "first");
  EXPECT_EQ(*ids[1]->AsTextString(), "second");
  EXPECT_EQ(batch.FindItem(tags::kOperation), nullptr);
  EXPECT_TRUE(batch.FindItems(tags::kOperation).empty());
  auto missing = batch.RequireItem(tags::kOperation);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            "kmip ttlv: tag 0x420078: structure has no item with tag 0x42005C");
  EXPECT_EQ(*(*batch.RequireItem(tags::kBatchCount))->AsInteger(), 2);

  // An item that is not a structure has no items.
  Item leaf = Item::Integer(tags::kBatchCount, 1);
  EXPECT_EQ(leaf.FindItem(tags::kBatchCount), nullptr);
  EXPECT_TRUE(leaf.FindItems(tags::kBatchCount).empty());
  EXPECT_EQ(leaf.RequireItem(tags::kBatchCount).status().message(),
            "kmip ttlv: tag 0x42000D: expected Structure, found Integer");
}

TEST(TtlvItem, ValueSemantics) {
  Item a = Item::Structure(tags::kRequestPayload,
                           {Item::ByteString(tags::kUniqueIdentifier, Hex("0102")),
                            Item::Structure(tags::kBatchItem, {Item::Boolean(1, true)})});
  Item b = a;
  EXPECT_EQ(a, b);
  b = Item::TextString(tags::kUniqueIdentifier, "other");
  EXPECT_NE(a, b);
  EXPECT_EQ(*b.AsTextString(), "other");
  // Assigning an item its own descendant (copied first) and itself.
  a = *a.FindItem(tags::kBatchItem);
  EXPECT_EQ(a.tag(), tags::kBatchItem);
  EXPECT_EQ(*a.FindItem(1)->AsBoolean(), true);
  const Item& self = a;
  a = self;
  EXPECT_EQ(a.tag(), tags::kBatchItem);
  Item moved = std::move(a);
  EXPECT_EQ(moved.tag(), tags::kBatchItem);
  // Same bytes, other type or tag: not equal.
  EXPECT_NE(Item::ByteString(1, Hex("00")), Item::TextString(1, std::string(1, '\0')));
  EXPECT_NE(Item::Enumeration(1, 5), Item::Interval(1, 5));
  EXPECT_NE(Item::Integer(1, 5), Item::Integer(2, 5));
}

// ---- ItemLength ----

TEST(TtlvItemLength, TellsTheWholeItemFromItsHeader) {
  EXPECT_EQ(*ItemLength(Hex("420078 | 01 | 00000060")), 104u);
  EXPECT_EQ(*ItemLength(Hex("420094 | 07 | 00000009 | 61")), 24u);  // extra bytes ignored
  EXPECT_EQ(*ItemLength(Hex("420094 | 08 | 00000000")), 8u);
  EXPECT_EQ(*ItemLength(Hex("420094 | 02 | 00000004")), 16u);
  // The largest claim a 32-bit length can make, refused by the limit before any read.
  EXPECT_EQ(ItemLength(Hex("420094 | 08 | FFFFFFFF")).status().message(),
            "kmip ttlv: at offset 0: tag 0x420094: message of 4294967304 bytes exceeds the limit "
            "of 1048576 bytes");
  EXPECT_EQ(*ItemLength(Hex("420094 | 08 | FFFFFFFF"), {.max_message_bytes = size_t{1} << 33}),
            4294967304u);
  EXPECT_EQ(ItemLength(Hex("420078 | 01 | 00100000")).status().message(),
            "kmip ttlv: at offset 0: tag 0x420078: message of 1048584 bytes exceeds the limit of "
            "1048576 bytes");
  EXPECT_EQ(*ItemLength(Hex("420078 | 01 | 000FFFF8")), 1048576u);
  EXPECT_EQ(ItemLength(Hex("420078 | 01 | 000000")).status().message(),
            "kmip ttlv: at offset 0: truncated: 7 bytes, an item header needs 8");
  EXPECT_EQ(ItemLength(Hex("420078 | 0C | 00000008")).status().message(),
            "kmip ttlv: at offset 0: tag 0x420078: unknown item type 0x0C");
  EXPECT_EQ(ItemLength(Hex("420094 | 02 | 00000008")).status().message(),
            "kmip ttlv: at offset 0: tag 0x420094: Integer length must be 4, not 8");
  EXPECT_EQ(ItemLength(Hex("120078 | 01 | 00000008")).status().message(),
            "kmip ttlv: at offset 0: tag 0x120078 is neither a KMIP tag (0x420001-0x42FFFF) nor "
            "an extension tag (0x540000-0x54FFFF)");
}

// ---- refusals ----

TEST(TtlvDecode, RefusesTruncatedInputAndTrailingBytes) {
  ExpectRefused({}, "kmip ttlv: at offset 0: truncated: 0 bytes, an item header needs 8");
  ExpectRefused(Hex("4200940200"),
                "kmip ttlv: at offset 0: truncated: 5 bytes, an item header needs 8");
  ExpectRefused(Hex("420094 | 07 | 00000010 | 6162636465666768"),
                "kmip ttlv: at offset 0: tag 0x420094: item of 24 bytes, only 16 given");
  ExpectRefused(Hex("420094 | 02 | 00000004 | 00000001"),
                "kmip ttlv: at offset 0: tag 0x420094: item of 16 bytes, only 12 given");
  // A claimed length of 4 GiB with 8 bytes present: refused without allocating it.
  ExpectRefused(Hex("420094 | 08 | FFFFFFF8 | 0000000000000000"),
                "kmip ttlv: at offset 0: tag 0x420094: item of 4294967296 bytes, only 16 given");
  ExpectRefused(Hex("420094 | 02 | 00000004 | 00000001 00000000 | 42"),
                "kmip ttlv: at offset 16: 1 trailing bytes after the item");
  ExpectRefused(Hex("420094 | 02 | 00000004 | 00000001 00000000 | 420094 | 02 | 00000004 | "
                    "00000001 00000000"),
                "kmip ttlv: at offset 16: 16 trailing bytes after the item");
}

TEST(TtlvDecode, RefusesTagsOutsideTheKmipRanges) {
  for (const char* tag :
       {"000000", "000001", "420000", "41FFFF", "430000", "53FFFF", "550000", "FFFFFF"}) {
    ExpectRefused(Hex(std::string(tag) + "02000000040000000100000000"),
                  std::string("kmip ttlv: at offset 0: tag 0x") + tag +
                      " is neither a KMIP tag (0x420001-0x42FFFF) nor an extension tag "
                      "(0x540000-0x54FFFF)");
  }
  for (const char* tag : {"420001", "42FFFF", "540000", "54FFFF"}) {
    EXPECT_OK(Decode(Hex(std::string(tag) + "02000000040000000100000000")).status());
  }
}

TEST(TtlvDecode, RefusesUnknownTypeBytes) {
  for (const char* type : {"00", "0C", "0D", "80", "FF"}) {
    ExpectRefused(Hex(std::string("420094") + type + "000000080000000000000000"),
                  std::string("kmip ttlv: at offset 0: tag 0x420094: unknown item type 0x") + type);
  }
}

TEST(TtlvDecode, RefusesWrongLengthsPerType) {
  struct Case {
    const char* hex;
    const char* message;
  };
  const Case cases[] = {
      {"420094 02 00000008 0000000000000001", "Integer length must be 4, not 8"},
      {"420094 02 00000000", "Integer length must be 4, not 0"},
      {"420094 05 00000002 0001000000000000", "Enumeration length must be 4, not 2"},
      {"420094 0A 00000008 0000000000000001", "Interval length must be 4, not 8"},
      {"420094 03 00000004 0000000100000000", "Long Integer length must be 8, not 4"},
      {"420094 06 00000004 0000000100000000", "Boolean length must be 8, not 4"},
      {"420094 06 00000001 0100000000000000", "Boolean length must be 8, not 1"},
      {"420094 09 00000007 00000000000001 00", "Date-Time length must be 8, not 7"},
      {"420094 0B 00000010 00000000000000000000000000000001",
       "Date-Time Extended length must be 8, not 16"},
      {"420094 04 00000000", "Big Integer length must be a non-zero multiple of 8, not 0"},
      {"420094 04 0000000C 000000000000000000000001 00000000",
       "Big Integer length must be a non-zero multiple of 8, not 12"},
      {"420094 04 00000001 01 00000000000000",
       "Big Integer length must be a non-zero multiple of 8, not 1"},
      {"420078 01 0000000C 420094 08 00000000 00000000",
       "Structure length must be a multiple of 8, not 12"},
  };
  for (const Case& c : cases) {
    ExpectRefused(Hex(c.hex), "kmip ttlv: at offset 0: tag 0x" + std::string(c.hex).substr(0, 6) +
                                  ": " + c.message);
  }
}

TEST(TtlvDecode, RefusesABooleanOtherThanZeroOrOne) {
  // Request Message (8) || Integer (16) || Boolean at offset 24.
  ExpectRefused(Hex("420078 01 00000020 | 42000D 02 00000004 00000001 00000000 |"
                    "420008 06 00000008 0000000000000002"),
                "kmip ttlv: at offset 24: tag 0x420008: boolean value must be 0 or 1");
  ExpectRefused(Hex("420008 06 00000008 0100000000000000"),
                "kmip ttlv: at offset 0: tag 0x420008: boolean value must be 0 or 1");
  ExpectRefused(Hex("420008 06 00000008 FFFFFFFFFFFFFFFF"),
                "kmip ttlv: at offset 0: tag 0x420008: boolean value must be 0 or 1");
  EXPECT_EQ(*Decode(Hex("420008 06 00000008 0000000000000000"))->AsBoolean(), false);
}

TEST(TtlvDecode, RefusesNonZeroPadding) {
  const char* cases[] = {
      "420094 02 00000004 00000001 00000001",
      "420094 05 00000004 00000001 80000000",
      "420094 0A 00000004 00000001 00010000",
      "420094 07 00000001 61 00000000000001",
      "420094 07 00000007 61626364656667 20",
      "420094 08 00000009 0102030405060708 09 FF000000000000",
  };
  for (const char* hex : cases) {
    ExpectRefused(Hex(hex), "kmip ttlv: at offset 0: tag 0x420094: non-zero padding");
  }
  // Inside a structure, at the item's own offset.
  ExpectRefused(
      Hex("420079 01 00000018 | 420094 08 00000000 | 420094 08 00000001 AA 00000000000001"),
      "kmip ttlv: at offset 16: tag 0x420094: non-zero padding");
}

TEST(TtlvDecode, RefusesInvalidUtf8) {
  struct Case {
    const char* value;
    size_t bad;
  };
  const Case cases[] = {
      {"80", 0},               // a continuation byte alone
      {"61C0AF", 1},           // overlong '/'
      {"E080AF", 0},           // overlong, three bytes
      {"F08080AF", 0},         // overlong, four bytes
      {"6162EDA080", 2},       // a UTF-16 surrogate (U+D800)
      {"F4908080", 0},         // above U+10FFFF
      {"F5808080", 0},         // a byte that never occurs
      {"FF", 0},               // idem
      {"E282", 0},             // truncated euro sign
      {"C3A9E282", 2},         // valid, then truncated
      {"C328", 0},             // a lead byte followed by ASCII
      {"F09D849E F09D84", 4},  // valid G clef, then truncated
  };
  for (const Case& c : cases) {
    Bytes value = Hex(c.value);
    Item item = Item::TextString(
        tags::kUniqueIdentifier,
        std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    ExpectRefused(Encode(item),
                  "kmip ttlv: at offset 0: tag 0x420094: text string is not valid UTF-8 (at value "
                  "byte " +
                      std::to_string(c.bad) + ")");
  }
  // The same bytes are a fine Byte String, and the edges of valid UTF-8 are accepted.
  EXPECT_OK(Decode(Encode(Item::ByteString(tags::kUniqueIdentifier, Hex("C0AF")))).status());
  for (const char* ok : {"00", "7F", "C280", "DFBF", "E0A080", "ED9FBF", "EE8080", "EFBFBF",
                         "F0908080", "F48FBFBF"}) {
    SCOPED_TRACE(ok);
    Bytes value = Hex(ok);
    Item item = Item::TextString(
        tags::kUniqueIdentifier,
        std::string_view(reinterpret_cast<const char*>(value.data()), value.size()));
    EXPECT_OK(Decode(Encode(item)).status());
  }
}

TEST(TtlvDecode, RefusesItemsThatOverrunTheirStructure) {
  // The structure holds 16 bytes; its item claims 24 (a 9-byte string, padded to 16).
  ExpectRefused(Hex("420079 01 00000010 | 420094 07 00000009 6162636465666768"
                    "| 69 00000000000000"),
                "kmip ttlv: at offset 8: tag 0x420094: item of 24 bytes overruns its structure "
                "(16 bytes left)");
  // The structure holds 8 bytes: a header alone, whose Integer needs 8 more.
  ExpectRefused(Hex("420079 01 00000008 | 42000D 02 00000004 | 00000001 00000000"),
                "kmip ttlv: at offset 8: tag 0x42000D: item of 16 bytes overruns its structure (8 "
                "bytes left)");
  // A nested structure that overruns its parent, though not the message.
  ExpectRefused(Hex("420078 01 00000018 | 420077 01 00000018 | 42000D 02 00000004 00000001 "
                    "00000000 | 42000D 02 00000004 00000001 00000000"),
                "kmip ttlv: at offset 8: tag 0x420077: item of 32 bytes overruns its structure (24 "
                "bytes left)");
  // The message-level length shorter than its content: the rest is trailing.
  ExpectRefused(Hex("420079 01 00000000 | 42000D 02 00000004 00000001 00000000"),
                "kmip ttlv: at offset 8: 16 trailing bytes after the item");
}

// Nested builds `depth` structures, each holding the next; the innermost holds an Integer.
Item Nested(size_t depth) {
  Item item = Item::Integer(tags::kBatchCount, 1);
  for (size_t i = 0; i < depth; ++i) item = Item::Structure(tags::kBatchItem, {std::move(item)});
  return item;
}

TEST(TtlvDecode, RefusesNestingBeyondTheDepthLimit) {
  EXPECT_OK(Decode(Encode(Nested(32))).status());
  // The 33rd structure starts after 32 headers.
  ExpectRefused(Encode(Nested(33)),
                "kmip ttlv: at offset 256: tag 0x42000F: structures nested more than 32 deep");
  ExpectRefused(Encode(Nested(3)),
                "kmip ttlv: at offset 16: tag 0x42000F: structures nested more than 2 deep",
                {.max_depth = 2});
  EXPECT_OK(Decode(Encode(Nested(2)), {.max_depth = 2}).status());
  ExpectRefused(Encode(Nested(1)),
                "kmip ttlv: at offset 0: tag 0x42000F: structures nested more than 0 deep",
                {.max_depth = 0});
  // A limit above the ceiling is the ceiling.
  DecodeLimits deep{.max_depth = 100000};
  EXPECT_OK(Decode(Encode(Nested(kMaxDepthCeiling)), deep).status());
  ExpectRefused(Encode(Nested(kMaxDepthCeiling + 1)),
                "kmip ttlv: at offset 2048: tag 0x42000F: structures nested more than 256 deep",
                deep);
}

Item Flat(size_t items) {
  std::vector<Item> all;
  for (size_t i = 0; i < items; ++i) all.push_back(Item::Integer(tags::kBatchCount, 1));
  return Item::Structure(tags::kRequestPayload, std::move(all));
}

TEST(TtlvDecode, RefusesMoreItemsThanTheLimit) {
  EXPECT_OK(Decode(Encode(Flat(16383))).status());  // 16384 with the structure
  // The 16385th item starts after the header and 16383 Integers.
  ExpectRefused(Encode(Flat(16384)), "kmip ttlv: at offset " + std::to_string(8 + 16383 * 16) +
                                         ": more than 16384 items");
  ExpectRefused(Encode(Flat(3)), "kmip ttlv: at offset 40: more than 3 items", {.max_items = 3});
  EXPECT_OK(Decode(Encode(Flat(2)), {.max_items = 3}).status());
}

TEST(TtlvDecode, RefusesMessagesAboveTheSizeLimit) {
  // A Byte String that fills exactly 1 MiB is accepted; 8 bytes more are not.
  Bytes fill((1 << 20) - 8, 0x5A);
  EXPECT_OK(Decode(Encode(Item::ByteString(tags::kUniqueIdentifier, fill))).status());
  fill.resize(fill.size() + 8);
  ExpectRefused(Encode(Item::ByteString(tags::kUniqueIdentifier, fill)),
                "kmip ttlv: at offset 0: message of 1048584 bytes exceeds the limit of 1048576 "
                "bytes");
  ExpectRefused(Encode(Item::TextString(tags::kUniqueIdentifier, "0123456789")),
                "kmip ttlv: at offset 0: message of 24 bytes exceeds the limit of 16 bytes",
                {.max_message_bytes = 16});
}

TEST(TtlvDecode, AcceptsOnlyCanonicalEncodings) {
  // Every refusal above is a non-canonical or malformed input; what is accepted re-encodes to
  // the same bytes, including a Big Integer with more sign extension than it needs.
  Bytes wide = Hex("420094 04 00000010 FFFFFFFFFFFFFFFF FFFFFFFFFFFFFF80");
  auto item = Decode(wide);
  ASSERT_OK(item.status());
  EXPECT_EQ(item->AsBigInteger()->size(), 16u);
  EXPECT_EQ(Encode(*item), wide);
  EXPECT_NE(*item, Item::BigInteger(tags::kUniqueIdentifier, Hex("80")));
}

}  // namespace
}  // namespace custos::kmip
