#include "protocol/kmip/message.h"

#include <array>
#include <cstdio>
#include <utility>

namespace custos::kmip {
namespace {

std::string Hex(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%02X", v);
  return buf;
}

std::string TagHex(Tag t) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%06X", t);
  return buf;
}

struct NamedTag {
  const char* name;
  Tag tag;
};
// The standard attributes this server reads or answers (1.4 section 3; 2.0 section 4).
constexpr std::array<NamedTag, 17> kAttributeTags = {{
    {"Unique Identifier", tags::kUniqueIdentifier},
    {"Name", tags::kName},
    {"Object Type", tags::kObjectType},
    {"Cryptographic Algorithm", tags::kCryptographicAlgorithm},
    {"Cryptographic Length", tags::kCryptographicLength},
    {"Cryptographic Usage Mask", tags::kCryptographicUsageMask},
    {"Cryptographic Parameters", tags::kCryptographicParameters},
    {"State", tags::kState},
    {"Initial Date", tags::kInitialDate},
    {"Activation Date", tags::kActivationDate},
    {"Deactivation Date", tags::kDeactivationDate},
    {"Destroy Date", tags::kDestroyDate},
    {"Compromise Date", tags::kCompromiseDate},
    {"Revocation Reason", tags::kRevocationReason},
    {"Object Group", tags::kObjectGroup},
    {"Last Change Date", tags::kLastChangeDate},
    {"Contact Information", tags::kContactInformation},
}};

}  // namespace

std::string OperationName(uint32_t operation) {
  switch (operation) {
    case op::kCreate: return "Create";
    case op::kCreateKeyPair: return "Create Key Pair";
    case op::kRegister: return "Register";
    case op::kLocate: return "Locate";
    case op::kGet: return "Get";
    case op::kGetAttributes: return "Get Attributes";
    case op::kGetAttributeList: return "Get Attribute List";
    case op::kAddAttribute: return "Add Attribute";
    case op::kModifyAttribute: return "Modify Attribute";
    case op::kDeleteAttribute: return "Delete Attribute";
    case op::kActivate: return "Activate";
    case op::kRevoke: return "Revoke";
    case op::kDestroy: return "Destroy";
    case op::kQuery: return "Query";
    case op::kDiscoverVersions: return "Discover Versions";
    case op::kEncrypt: return "Encrypt";
    case op::kDecrypt: return "Decrypt";
    case op::kSign: return "Sign";
    case op::kSignatureVerify: return "Signature Verify";
    case op::kMac: return "MAC";
    case op::kMacVerify: return "MAC Verify";
    case op::kSetAttribute: return "Set Attribute";
    default: return "Unknown (" + Hex(operation) + ")";
  }
}

std::string ReasonName(uint32_t r) {
  switch (r) {
    case reason::kItemNotFound: return "Item Not Found";
    case reason::kResponseTooLarge: return "Response Too Large";
    case reason::kInvalidMessage: return "Invalid Message";
    case reason::kOperationNotSupported: return "Operation Not Supported";
    case reason::kMissingData: return "Missing Data";
    case reason::kInvalidField: return "Invalid Field";
    case reason::kFeatureNotSupported: return "Feature Not Supported";
    case reason::kCryptographicFailure: return "Cryptographic Failure";
    case reason::kIllegalOperation: return "Illegal Operation";
    case reason::kPermissionDenied: return "Permission Denied";
    case reason::kGeneralFailure: return "General Failure";
    default: return "Reason " + Hex(r);
  }
}

bool Supported(const ProtocolVersion& version) {
  for (const ProtocolVersion& v : kSupportedVersions)
    if (v == version) return true;
  return false;
}

Item EncodeVersion(const ProtocolVersion& version) {
  return Item::Structure(tags::kProtocolVersion, {Item::Integer(tags::kProtocolVersionMajor, version.major),
                                                  Item::Integer(tags::kProtocolVersionMinor, version.minor)});
}

StatusOr<ProtocolVersion> DecodeVersion(const Item& item) {
  ProtocolVersion v;
  ASSIGN_OR_RETURN(const Item* major, item.RequireItem(tags::kProtocolVersionMajor));
  ASSIGN_OR_RETURN(v.major, major->AsInteger());
  ASSIGN_OR_RETURN(const Item* minor, item.RequireItem(tags::kProtocolVersionMinor));
  ASSIGN_OR_RETURN(v.minor, minor->AsInteger());
  return v;
}

StatusOr<RequestMessage> ParseRequest(const Item& message, ProtocolVersion* version_out) {
  if (message.tag() != tags::kRequestMessage || !message.is_structure())
    return InvalidArgument("kmip: the message is not a Request Message structure (tag " + TagHex(message.tag()) + ")");
  RequestMessage out;
  ASSIGN_OR_RETURN(const Item* header, message.RequireItem(tags::kRequestHeader));
  ASSIGN_OR_RETURN(const Item* version, header->RequireItem(tags::kProtocolVersion));
  ASSIGN_OR_RETURN(out.version, DecodeVersion(*version));
  if (version_out) *version_out = out.version;
  if (const Item* m = header->FindItem(tags::kMaximumResponseSize)) {
    ASSIGN_OR_RETURN(int32_t max, m->AsInteger());
    out.maximum_response_size = max;
  }
  if (const Item* b = header->FindItem(tags::kBatchErrorContinuationOption)) {
    ASSIGN_OR_RETURN(out.batch_error_continuation, b->AsEnumeration());
  }
  ASSIGN_OR_RETURN(const Item* count_item, header->RequireItem(tags::kBatchCount));
  ASSIGN_OR_RETURN(int32_t count, count_item->AsInteger());
  std::vector<const Item*> batch = message.FindItems(tags::kBatchItem);
  if (batch.empty()) return InvalidArgument("kmip: the request has no Batch Item");
  if (count < 0 || static_cast<size_t>(count) != batch.size())
    return InvalidArgument("kmip: Batch Count " + std::to_string(count) + " but " + std::to_string(batch.size()) +
                           " Batch Items");
  for (const Item* b : batch) {
    RequestBatchItem item;
    ASSIGN_OR_RETURN(const Item* operation, b->RequireItem(tags::kOperation));
    ASSIGN_OR_RETURN(item.operation, operation->AsEnumeration());
    if (const Item* id = b->FindItem(tags::kUniqueBatchItemId)) {
      ASSIGN_OR_RETURN(ByteSpan v, id->AsByteString());
      item.unique_batch_item_id = Bytes(v.begin(), v.end());
    } else if (batch.size() > 1) {
      return InvalidArgument("kmip: a batch of several items needs a Unique Batch Item ID in each");
    }
    ASSIGN_OR_RETURN(const Item* payload, b->RequireItem(tags::kRequestPayload));
    if (!payload->is_structure()) return InvalidArgument("kmip: Request Payload is not a structure");
    item.payload = *payload;
    out.items.push_back(std::move(item));
  }
  return out;
}

ResponseBatchItem ResponseBatchItem::Failure(const RequestBatchItem* request, const KmipError& error) {
  ResponseBatchItem r;
  if (request) {
    r.operation = request->operation;
    r.unique_batch_item_id = request->unique_batch_item_id;
  }
  r.result_status = result::kOperationFailed;
  r.result_reason = error.reason;
  r.result_message = error.message;
  return r;
}

Item BuildResponse(const ProtocolVersion& version, int64_t now, const std::vector<ResponseBatchItem>& items) {
  std::vector<Item> message;
  message.push_back(Item::Structure(
      tags::kResponseHeader, {EncodeVersion(version), Item::DateTime(tags::kTimeStamp, now),
                              Item::Integer(tags::kBatchCount, static_cast<int32_t>(items.size()))}));
  for (const ResponseBatchItem& r : items) {
    std::vector<Item> b;
    if (r.operation != 0) b.push_back(Item::Enumeration(tags::kOperation, r.operation));
    if (r.unique_batch_item_id) b.push_back(Item::ByteString(tags::kUniqueBatchItemId, *r.unique_batch_item_id));
    b.push_back(Item::Enumeration(tags::kResultStatus, r.result_status));
    if (r.result_status != result::kSuccess) {
      b.push_back(Item::Enumeration(tags::kResultReason, r.result_reason));
      if (!r.result_message.empty()) b.push_back(Item::TextString(tags::kResultMessage, r.result_message));
    }
    if (r.payload) b.push_back(*r.payload);
    message.push_back(Item::Structure(tags::kBatchItem, std::move(b)));
  }
  return Item::Structure(tags::kResponseMessage, std::move(message));
}

Tag AttributeTag(std::string_view name) {
  for (const NamedTag& t : kAttributeTags)
    if (name == t.name) return t.tag;
  return 0;
}

std::string AttributeNameOf(Tag tag) {
  for (const NamedTag& t : kAttributeTags)
    if (tag == t.tag) return t.name;
  return "";
}

Item Retag(const Item& item, Tag tag) {
  switch (item.type()) {
    case ItemType::kStructure: {
      auto items = item.Items();
      return Item::Structure(tag, std::vector<Item>(items->begin(), items->end()));
    }
    case ItemType::kInteger: return Item::Integer(tag, *item.AsInteger());
    case ItemType::kLongInteger: return Item::LongInteger(tag, *item.AsLongInteger());
    case ItemType::kBigInteger: return Item::BigInteger(tag, *item.AsBigInteger());
    case ItemType::kEnumeration: return Item::Enumeration(tag, *item.AsEnumeration());
    case ItemType::kBoolean: return Item::Boolean(tag, *item.AsBoolean());
    case ItemType::kTextString: return Item::TextString(tag, *item.AsTextString());
    case ItemType::kByteString: return Item::ByteString(tag, *item.AsByteString());
    case ItemType::kDateTime: return Item::DateTime(tag, *item.AsDateTime());
    case ItemType::kInterval: return Item::Interval(tag, *item.AsInterval());
    case ItemType::kDateTimeExtended: return Item::DateTimeExtended(tag, *item.AsDateTimeExtended());
  }
  return item;
}

StatusOr<Attribute> DecodeAttribute1(const Item& attribute) {
  if (attribute.tag() != tags::kAttribute || !attribute.is_structure())
    return InvalidArgument("kmip: expected an Attribute structure, found tag " + TagHex(attribute.tag()));
  Attribute a;
  ASSIGN_OR_RETURN(const Item* name, attribute.RequireItem(tags::kAttributeName));
  ASSIGN_OR_RETURN(std::string_view n, name->AsTextString());
  a.name = std::string(n);
  if (a.name.empty() || a.name.size() > 128) return InvalidArgument("kmip: an Attribute Name must be 1 to 128 characters");
  if (const Item* index = attribute.FindItem(tags::kAttributeIndex)) {
    ASSIGN_OR_RETURN(a.index, index->AsInteger());
    if (a.index < 0) return InvalidArgument("kmip: attribute " + a.name + ": negative Attribute Index");
  }
  const Item* value = attribute.FindItem(tags::kAttributeValue);
  if (value) a.value = *value;
  else a.value = Item::Structure(tags::kAttributeValue);  // absent: allowed in Delete Attribute
  return a;
}

Item EncodeAttribute1(const Attribute& a) {
  std::vector<Item> items = {Item::TextString(tags::kAttributeName, a.name)};
  if (a.index != 0) items.push_back(Item::Integer(tags::kAttributeIndex, a.index));
  items.push_back(Retag(a.value, tags::kAttributeValue));
  return Item::Structure(tags::kAttribute, std::move(items));
}

StatusOr<std::vector<Attribute>> DecodeAttributes2(const Item& attributes) {
  ASSIGN_OR_RETURN(auto items, attributes.Items());
  std::vector<Attribute> out;
  for (const Item& i : items) {
    std::string name = AttributeNameOf(i.tag());
    if (name.empty()) return InvalidArgument("kmip: attribute tag " + TagHex(i.tag()) + " is not supported");
    out.push_back(Attribute{std::move(name), 0, Retag(i, tags::kAttributeValue)});
  }
  return out;
}

Item EncodeAttribute2(const Attribute& a) { return Retag(a.value, AttributeTag(a.name)); }

StatusOr<std::vector<Attribute>> RequestAttributes(const Item& payload, const ProtocolVersion& version) {
  std::vector<Attribute> out;
  if (version.v2()) {
    if (const Item* attributes = payload.FindItem(tags::kAttributes)) return DecodeAttributes2(*attributes);
    return out;
  }
  std::vector<const Item*> sources = {&payload};
  if (const Item* t = payload.FindItem(tags::kTemplateAttribute)) sources.push_back(t);
  for (const Item* source : sources) {
    for (const Item* a : source->FindItems(tags::kAttribute)) {
      ASSIGN_OR_RETURN(Attribute attribute, DecodeAttribute1(*a));
      out.push_back(std::move(attribute));
    }
    if (source != &payload && source->FindItem(tags::kName))
      return InvalidArgument("kmip: Template-Attribute Name (a template's name) is not supported");
  }
  return out;
}

StatusOr<std::optional<std::string>> OptText(const Item& payload, Tag tag) {
  const Item* i = payload.FindItem(tag);
  if (!i) return std::optional<std::string>();
  ASSIGN_OR_RETURN(std::string_view v, i->AsTextString());
  return std::optional<std::string>(std::string(v));
}

StatusOr<std::optional<uint32_t>> OptEnum(const Item& payload, Tag tag) {
  const Item* i = payload.FindItem(tag);
  if (!i) return std::optional<uint32_t>();
  ASSIGN_OR_RETURN(uint32_t v, i->AsEnumeration());
  return std::optional<uint32_t>(v);
}

StatusOr<std::optional<int32_t>> OptInt(const Item& payload, Tag tag) {
  const Item* i = payload.FindItem(tag);
  if (!i) return std::optional<int32_t>();
  ASSIGN_OR_RETURN(int32_t v, i->AsInteger());
  return std::optional<int32_t>(v);
}

StatusOr<std::optional<Bytes>> OptBytes(const Item& payload, Tag tag) {
  const Item* i = payload.FindItem(tag);
  if (!i) return std::optional<Bytes>();
  ASSIGN_OR_RETURN(ByteSpan v, i->AsByteString());
  return std::optional<Bytes>(Bytes(v.begin(), v.end()));
}

}  // namespace custos::kmip
