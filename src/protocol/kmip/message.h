// KMIP's message layer (KMIP 1.4 section 7 "Message Contents" and 9.1; 2.0 sections 8 and 9):
// the request and response envelopes, their batch items, and attributes in both encodings
// (1.x: Attribute {Attribute Name, Attribute Index, Attribute Value}; 2.0: an Attributes
// structure holding each attribute under its own tag). Pure code: what a server does with an
// operation is appliance/kmip's business. docs/kmip.md "Messages".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"
#include "protocol/kmip/tags.h"
#include "protocol/kmip/ttlv.h"

namespace custos::kmip {

// Enumerations of the specification used by this server (KMIP 1.4 section 9.1.3.2; the values
// are unchanged in 2.0).
namespace op {
inline constexpr uint32_t kCreate = 0x01, kCreateKeyPair = 0x02, kRegister = 0x03, kLocate = 0x08,
                          kGet = 0x0A, kGetAttributes = 0x0B, kGetAttributeList = 0x0C,
                          kAddAttribute = 0x0D, kModifyAttribute = 0x0E, kDeleteAttribute = 0x0F,
                          kActivate = 0x12, kRevoke = 0x13, kDestroy = 0x14, kQuery = 0x18,
                          kDiscoverVersions = 0x1E, kEncrypt = 0x1F, kDecrypt = 0x20, kSign = 0x21,
                          kSignatureVerify = 0x22, kMac = 0x23, kMacVerify = 0x24,
                          kSetAttribute = 0x31;
}  // namespace op
// OperationName is the specification's name ("Discover Versions"), or "Unknown (0x..)".
std::string OperationName(uint32_t operation);

namespace reason {
inline constexpr uint32_t kItemNotFound = 0x01, kResponseTooLarge = 0x02, kInvalidMessage = 0x04,
                          kOperationNotSupported = 0x05, kMissingData = 0x06, kInvalidField = 0x07,
                          kFeatureNotSupported = 0x08, kCryptographicFailure = 0x0A,
                          kIllegalOperation = 0x0B, kPermissionDenied = 0x0C,
                          kGeneralFailure = 0x100;
}  // namespace reason
// ReasonName is the specification's name of a Result Reason ("Item Not Found").
std::string ReasonName(uint32_t reason);

namespace result {
inline constexpr uint32_t kSuccess = 0, kOperationFailed = 1;
}

// ProtocolVersion: 1.0 to 1.4 share one message format; 2.0 changes attributes.
struct ProtocolVersion {
  int32_t major = 1;
  int32_t minor = 0;
  bool v2() const { return major >= 2; }
  std::string ToString() const { return std::to_string(major) + "." + std::to_string(minor); }
  bool operator==(const ProtocolVersion&) const = default;
};

// kSupportedVersions: what Discover Versions answers, newest first.
inline const std::vector<ProtocolVersion> kSupportedVersions = {{2, 0}, {1, 4}, {1, 3}, {1, 2}, {1, 1}, {1, 0}};
bool Supported(const ProtocolVersion& version);

Item EncodeVersion(const ProtocolVersion& version);
StatusOr<ProtocolVersion> DecodeVersion(const Item& item);

// KmipError is a refusal an operation answers: a Result Reason and a message safe to return.
struct KmipError {
  uint32_t reason = reason::kGeneralFailure;
  std::string message;
};

// RequestBatchItem is one operation of a request.
struct RequestBatchItem {
  uint32_t operation = 0;
  std::optional<Bytes> unique_batch_item_id;
  Item payload = Item::Structure(tags::kRequestPayload);
};

// RequestMessage is a decoded request. Authentication, asynchronous indicators and the other
// header fields a TLS-authenticated synchronous server ignores are not kept.
struct RequestMessage {
  ProtocolVersion version;
  std::optional<int32_t> maximum_response_size;
  // Batch Error Continuation Option: 1 Continue, 2 Stop (default), 3 Undo.
  uint32_t batch_error_continuation = 2;
  std::vector<RequestBatchItem> items;
};

// ParseRequest checks the envelope: a Request Message holding one Request Header (with a
// Protocol Version and a Batch Count equal to the number of Batch Items) and at least one Batch
// Item, each with an Operation and a Request Payload structure. A refusal is kInvalidArgument
// naming the check. The version is returned even when the rest fails (in *version, if the
// header could be read), so the error response can be in the client's version.
StatusOr<RequestMessage> ParseRequest(const Item& message, ProtocolVersion* version = nullptr);

// ResponseBatchItem is one operation's answer: a payload on success, a reason and message on
// failure.
struct ResponseBatchItem {
  uint32_t operation = 0;  // 0: omitted (a message whose operation could not be read)
  std::optional<Bytes> unique_batch_item_id;
  uint32_t result_status = result::kSuccess;
  uint32_t result_reason = 0;
  std::string result_message;
  std::optional<Item> payload;

  static ResponseBatchItem Failure(const RequestBatchItem* request, const KmipError& error);
};

// BuildResponse is the Response Message for `items`, stamped with `now` (POSIX seconds).
Item BuildResponse(const ProtocolVersion& version, int64_t now, const std::vector<ResponseBatchItem>& items);

// Attribute is one attribute in neutral form: its name ("Cryptographic Length", "x-owner"), its
// index (1.x only; 0 when absent) and its value, whose tag is kAttributeValue.
struct Attribute {
  std::string name;
  int32_t index = 0;
  Item value = Item::Integer(tags::kAttributeValue, 0);
};

// AttributeTag is the tag of a standard attribute's value in 2.0's encoding (0 for a name this
// server does not know, e.g. a custom "x-" attribute); AttributeNameOf its inverse ("" if not
// known).
Tag AttributeTag(std::string_view name);
std::string AttributeNameOf(Tag tag);

// Retag returns `item` with another tag (structures keep their items).
Item Retag(const Item& item, Tag tag);

// DecodeAttribute1 reads a 1.x Attribute structure.
StatusOr<Attribute> DecodeAttribute1(const Item& attribute);
// EncodeAttribute1 writes one as a 1.x Attribute structure.
Item EncodeAttribute1(const Attribute& attribute);
// DecodeAttributes2 reads the items of a 2.0 Attributes structure (or of New/Current Attribute);
// an item whose tag names no attribute this server knows is kInvalidArgument naming the tag.
StatusOr<std::vector<Attribute>> DecodeAttributes2(const Item& attributes);
// EncodeAttribute2 writes one attribute under its own tag (custom "x-" attributes are left
// out of 2.0 answers: they have no tag; the caller skips names AttributeTag does not know).
Item EncodeAttribute2(const Attribute& attribute);

// RequestAttributes reads the attributes a Create/Register/Locate payload carries, in either
// encoding: 1.x Template-Attribute (its Attribute items and Name items) or bare Attribute
// items; 2.0 an Attributes structure.
StatusOr<std::vector<Attribute>> RequestAttributes(const Item& payload, const ProtocolVersion& version);

// Typed field readers on a payload: a missing optional field is nullopt; a present field of
// the wrong type is kInvalidArgument naming it.
StatusOr<std::optional<std::string>> OptText(const Item& payload, Tag tag);
StatusOr<std::optional<uint32_t>> OptEnum(const Item& payload, Tag tag);
StatusOr<std::optional<int32_t>> OptInt(const Item& payload, Tag tag);
StatusOr<std::optional<Bytes>> OptBytes(const Item& payload, Tag tag);

}  // namespace custos::kmip
