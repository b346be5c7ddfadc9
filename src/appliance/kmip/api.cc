#include "appliance/kmip/api.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <utility>

#include "appliance/ecall/kms_calls.h"
#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/random.h"
#include "protocol/audit/entry.h"

namespace custos::kmip {
namespace {

using json = nlohmann::json;

// Enumeration values (KMIP 1.4 section 9.1.3.2).
constexpr uint32_t kObjectSymmetricKey = 2, kObjectPublicKey = 3, kObjectPrivateKey = 4;
constexpr uint32_t kAlgAes = 3, kAlgEcdsa = 6, kAlgHmacSha256 = 9, kAlgEc = 0x1A;
constexpr uint32_t kFormatX509 = 5;
constexpr uint32_t kSigEcdsaSha256 = 0x0E, kHashSha256 = 4;
constexpr uint32_t kReasonWrongKeyLifecycleState = 0x43;  // KMIP 2.0
constexpr uint32_t kStatePreActive = 1, kStateActive = 2, kStateDeactivated = 3, kStateCompromised = 4,
                   kStateDestroyed = 5, kStateDestroyedCompromised = 6;
constexpr uint32_t kModeCbc = 1, kModeGcm = 9;
constexpr uint32_t kPadNone = 1, kPadPkcs5 = 3;
constexpr uint32_t kRevokeKeyCompromise = 2;
constexpr uint32_t kQueryOperations = 1, kQueryObjects = 2, kQueryServerInformation = 3;
constexpr uint32_t kValid = 1, kInvalid = 2;
constexpr int32_t kUsageSign = 0x01, kUsageVerify = 0x02, kUsageEncrypt = 0x04, kUsageDecrypt = 0x08, kUsageMacGenerate = 0x80, kUsageMacVerify = 0x100;

// The public key of a key pair (a custos ECC_NIST_P256 key, whose id is the private key's) is
// the object "<key id>/public".
constexpr std::string_view kPublicSuffix = "/public";

Status Fail(uint32_t reason, std::string message) { return InvalidArgument(std::move(message)).WithReason(reason); }

// ReasonFor is the KMIP Result Reason of a KMS error (AWS exception name).
// An operation the object's state does not allow is Permission Denied in KMIP 1.x (its error
// tables) and Wrong Key Lifecycle State from 2.0.
uint32_t ReasonFor(const std::string& aws_error, const ProtocolVersion& version) {
  if (aws_error == "NotFoundException") return reason::kItemNotFound;
  if (aws_error == "AccessDeniedException") return reason::kPermissionDenied;
  if (aws_error == "DisabledException" || aws_error == "KMSInvalidStateException")
    return version.v2() ? kReasonWrongKeyLifecycleState : reason::kPermissionDenied;
  if (aws_error == "InvalidKeyUsageException") return reason::kIllegalOperation;
  if (aws_error == "ValidationException" || aws_error == "SerializationException") return reason::kInvalidField;
  if (aws_error == "InvalidCiphertextException" || aws_error == "KMSInvalidMacException" ||
      aws_error == "KMSInvalidSignatureException")
    return reason::kCryptographicFailure;
  if (aws_error == "UnsupportedOperationException") return reason::kFeatureNotSupported;
  return reason::kGeneralFailure;
}

template <typename T, typename U>
T Or(const StatusOr<T>& v, U fallback) {
  return v.ok() ? *v : T(fallback);
}

std::string TagValue(const json& tags, const std::string& key) {
  auto it = tags.find(key);
  return it != tags.end() && it->is_string() ? it->get<std::string>() : std::string();
}

uint32_t StateOf(const json& meta, const json& tags) {
  const std::string state = meta.value("KeyState", "");
  const std::string flavor = TagValue(tags, "kmip:state");
  if (state == "Enabled") return kStateActive;
  if (state == "PendingDeletion") return flavor == "Compromised" ? kStateDestroyedCompromised : kStateDestroyed;
  if (flavor == "PreActive") return kStatePreActive;
  if (flavor == "Compromised") return kStateCompromised;
  return kStateDeactivated;
}

Attribute Attr(const std::string& name, Item value) { return Attribute{name, 0, Retag(value, tags::kAttributeValue)}; }

Item NameValue(const std::string& name) {
  return Item::Structure(tags::kAttributeValue, {Item::TextString(tags::kNameValue, name),
                                                 Item::Enumeration(tags::kNameType, 1)});  // uninterpreted text
}

StatusOr<std::string> NameOf(const Attribute& a) {
  ASSIGN_OR_RETURN(const Item* v, a.value.RequireItem(tags::kNameValue));
  ASSIGN_OR_RETURN(std::string_view s, v->AsTextString());
  if (s.empty() || s.size() > 256) return Fail(reason::kInvalidField, "kmip: a Name must be 1 to 256 characters");
  return std::string(s);
}

bool Custom(const std::string& name) { return name.starts_with("x-") || name.starts_with("y-"); }

// The tag that holds a client-settable attribute: Name, Object Group, and custom ("x-") text
// attributes.
StatusOr<std::pair<std::string, std::string>> SettableTag(const Attribute& a) {
  if (a.name == "Name") {
    ASSIGN_OR_RETURN(std::string n, NameOf(a));
    return std::make_pair(std::string("kmip:name"), n);
  }
  if (a.name == "Object Group" || a.name == "Contact Information") {
    ASSIGN_OR_RETURN(std::string_view g, a.value.AsTextString());
    if (g.size() > 256) return Fail(reason::kInvalidField, "kmip: " + a.name + " is longer than 256 characters");
    return std::make_pair(std::string(a.name == "Object Group" ? "kmip:group" : "kmip:contact"), std::string(g));
  }
  if (Custom(a.name)) {
    auto text = a.value.AsTextString();
    if (!text.ok())
      return Fail(reason::kInvalidField, "kmip: custom attribute " + a.name + ": only Text String values are supported");
    if (a.name.size() > 120 || text->size() > 256)
      return Fail(reason::kInvalidField, "kmip: custom attribute " + a.name + ": name or value too long");
    return std::make_pair("kmip:" + a.name, std::string(*text));
  }
  return Fail(reason::kPermissionDenied, "kmip: attribute " + a.name + " cannot be set by a client");
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

struct KmipApi::Context {
  ProtocolVersion version;
  KmipPeer peer;
  kms::Caller caller;
  std::string placeholder;  // the ID Placeholder: the last object a batch item created
  std::string key_id;       // for the audit entry
  bool public_object = false;  // the request names the public half of a key pair
};

KmipApi::KmipApi(kms::KmsService* service, kms::AuditSink audit, KmipApiOptions options)
    : service_(service), audit_(std::move(audit)), options_(std::move(options)) {}

std::string KmipApi::Principal(const std::string& name) const {
  return "arn:aws:iam::" + options_.account_id + ":user/kmip/" + name;
}

Bytes KmipApi::Handle(ByteSpan request, const KmipPeer& peer) {
  ProtocolVersion version{1, 0};
  std::vector<ResponseBatchItem> out;
  auto decoded = Decode(request, options_.limits);
  StatusOr<RequestMessage> message = decoded.ok() ? ParseRequest(*decoded, &version) : decoded.status();
  if (!message.ok()) {
    out.push_back(ResponseBatchItem::Failure(nullptr, {reason::kInvalidMessage, message.status().message()}));
  } else if (!Supported(message->version)) {
    out.push_back(ResponseBatchItem::Failure(
        nullptr, {reason::kInvalidMessage, "kmip: protocol version " + message->version.ToString() +
                                               " is not supported (2.0 and 1.0 to 1.4 are)"}));
  } else {
    Context ctx;
    ctx.version = message->version;
    ctx.peer = peer;
    ctx.caller = kms::Caller{Principal(peer.name), options_.account_id, "kmip:" + peer.name, true};
    bool failed = false;
    for (const RequestBatchItem& item : message->items) {
      if (failed && message->batch_error_continuation != 1) {
        // Stop (the default): the items after a failure are not run.
        out.push_back(ResponseBatchItem::Failure(&item, {reason::kGeneralFailure, "kmip: not run: an earlier batch item failed"}));
        continue;
      }
      out.push_back(Run(item, ctx));
      failed = failed || out.back().result_status != result::kSuccess;
    }
  }
  Bytes response = Encode(BuildResponse(version, NowSeconds(), out));
  if (message.ok() && message->maximum_response_size && *message->maximum_response_size >= 0 &&
      response.size() > static_cast<size_t>(*message->maximum_response_size)) {
    std::vector<ResponseBatchItem> too_large = {ResponseBatchItem::Failure(
        message->items.size() == 1 ? &message->items[0] : nullptr,
        {reason::kResponseTooLarge, "kmip: the response is larger than the Maximum Response Size"})};
    response = Encode(BuildResponse(version, NowSeconds(), too_large));
  }
  return response;
}

ResponseBatchItem KmipApi::Run(const RequestBatchItem& item, Context& ctx) {
  ctx.key_id.clear();
  StatusOr<Item> payload = Dispatch(item, ctx);
  ResponseBatchItem r;
  r.operation = item.operation;
  r.unique_batch_item_id = item.unique_batch_item_id;
  if (payload.ok()) {
    r.payload = std::move(payload).value();
  } else {
    const uint16_t why = payload.status().reason();
    r = ResponseBatchItem::Failure(&item, {why != 0 ? why : reason::kInvalidField, payload.status().message()});
  }
  if (audit_ && item.operation != op::kDiscoverVersions && item.operation != op::kQuery) {
    audit::Entry e;
    e.request_id = "kmip-" + HexEncode(crypto::RandomBytes(8));
    e.principal = ctx.caller.principal_arn;
    e.access_key_id = ctx.caller.access_key_id;
    e.operation = "KMIP " + OperationName(item.operation);
    e.key_id = ctx.key_id;
    e.outcome = r.result_status == result::kSuccess ? "ok" : ReasonName(r.result_reason);
    e.source = ctx.peer.source;
    e.request_metadata = json{{"protocol", "KMIP " + ctx.version.ToString()}};
    const bool changes = item.operation == op::kCreate || item.operation == op::kCreateKeyPair || item.operation == op::kRegister || item.operation == op::kActivate ||
                         item.operation == op::kRevoke || item.operation == op::kDestroy ||
                         item.operation == op::kAddAttribute || item.operation == op::kModifyAttribute ||
                         item.operation == op::kDeleteAttribute || item.operation == op::kSetAttribute;
    Status s = audit_(e, changes);
    if (!s.ok() && r.result_status == result::kSuccess) {
      // A result is never handed out unaudited.
      r = ResponseBatchItem::Failure(&item, {reason::kGeneralFailure, "kmip: the audit log could not be written, so the request is refused"});
    }
  }
  return r;
}

StatusOr<Item> KmipApi::Dispatch(const RequestBatchItem& item, Context& ctx) {
  const Item& p = item.payload;
  switch (item.operation) {
    case op::kDiscoverVersions: return DiscoverVersions(p, ctx);
    case op::kQuery: return Query(p, ctx);
    case op::kCreate: return Create(p, ctx);
    case op::kGet: return Get(p, ctx);
    case op::kGetAttributes: return GetAttributes(p, ctx);
    case op::kGetAttributeList: return GetAttributeList(p, ctx);
    case op::kAddAttribute:
    case op::kModifyAttribute:
    case op::kDeleteAttribute:
    case op::kSetAttribute: return ChangeAttribute(item.operation, p, ctx);
    case op::kLocate: return Locate(p, ctx);
    case op::kActivate:
    case op::kRevoke:
    case op::kDestroy: return Lifecycle(item.operation, p, ctx);
    case op::kEncrypt: return Crypt(true, p, ctx);
    case op::kDecrypt: return Crypt(false, p, ctx);
    case op::kCreateKeyPair: return CreateKeyPair(p, ctx);
    case op::kRegister: return Register(p, ctx);
    case op::kSign: return Sign(false, p, ctx);
    case op::kSignatureVerify: return Sign(true, p, ctx);
    case op::kMac: return Mac(false, p, ctx);
    case op::kMacVerify: return Mac(true, p, ctx);
    default:
      return Fail(reason::kOperationNotSupported, "kmip: operation " + OperationName(item.operation) + " is not supported");
  }
}

StatusOr<std::string> KmipApi::Uid(const Item& payload, Context& ctx) const {
  ASSIGN_OR_RETURN(auto uid, OptText(payload, tags::kUniqueIdentifier));
  if (!uid && !ctx.placeholder.empty()) uid = ctx.placeholder;
  if (uid) {
    ctx.key_id = uid->substr(0, 128);
    ctx.public_object = uid->ends_with(kPublicSuffix);
    return *uid;
  }
  return Fail(reason::kMissingData, "kmip: Unique Identifier is required (no ID Placeholder in this batch)");
}

kms::KmsOutcome KmipApi::Outcome(std::string_view operation, const json& request, Context& ctx, bool kmip) {
  // The public half of a key pair is the key itself to the KMS service.
  json req = request;
  if (auto it = req.find("KeyId"); it != req.end() && it->is_string() && it->get<std::string>().ends_with(kPublicSuffix)) {
    std::string id = it->get<std::string>();
    *it = id.substr(0, id.size() - kPublicSuffix.size());
  }
  kms::KmsOutcome o = kmip ? service_->ExecuteKmip(operation, req, ctx.caller) : service_->Execute(operation, req, ctx.caller);
  if (!o.key_id.empty()) ctx.key_id = o.key_id;
  return o;
}

StatusOr<json> KmipApi::Service(std::string_view operation, const json& request, Context& ctx, bool kmip) {
  kms::KmsOutcome o = Outcome(operation, request, ctx, kmip);
  if (!o.ok()) return Fail(ReasonFor(o.error_type, ctx.version), "kmip: " + o.message);
  return std::move(o.response);
}

StatusOr<Item> KmipApi::Validity(std::string_view operation, const json& request, std::string_view invalid_error,
                                 const std::string& uid, Context& ctx) {
  kms::KmsOutcome o = Outcome(operation, request, ctx, false);
  uint32_t validity;
  if (o.ok()) validity = kValid;
  else if (o.error_type == invalid_error) validity = kInvalid;
  else return Fail(ReasonFor(o.error_type, ctx.version), "kmip: " + o.message);
  return Item::Structure(tags::kResponsePayload, {Item::TextString(tags::kUniqueIdentifier, uid),
                                                  Item::Enumeration(tags::kValidityIndicator, validity)});
}

StatusOr<Item> KmipApi::DiscoverVersions(const Item& payload, Context&) {
  std::vector<ProtocolVersion> asked;
  for (const Item* v : payload.FindItems(tags::kProtocolVersion)) {
    ASSIGN_OR_RETURN(ProtocolVersion pv, DecodeVersion(*v));
    asked.push_back(pv);
  }
  std::vector<Item> out;
  for (const ProtocolVersion& v : kSupportedVersions)
    if (asked.empty() || std::find(asked.begin(), asked.end(), v) != asked.end()) out.push_back(EncodeVersion(v));
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

StatusOr<Item> KmipApi::Query(const Item& payload, Context&) {
  std::vector<Item> out;
  for (const Item* f : payload.FindItems(tags::kQueryFunction)) {
    ASSIGN_OR_RETURN(uint32_t function, f->AsEnumeration());
    if (function == kQueryOperations) {
      for (uint32_t o : {op::kDiscoverVersions, op::kQuery, op::kCreate, op::kGet, op::kGetAttributes,
                         op::kGetAttributeList, op::kAddAttribute, op::kModifyAttribute, op::kDeleteAttribute,
                         op::kSetAttribute, op::kLocate, op::kActivate, op::kRevoke, op::kDestroy, op::kEncrypt,
                         op::kDecrypt, op::kMac, op::kMacVerify, op::kCreateKeyPair, op::kSign, op::kSignatureVerify, op::kRegister})
        out.push_back(Item::Enumeration(tags::kOperation, o));
    } else if (function == kQueryObjects) {
      for (uint32_t t : {kObjectSymmetricKey, kObjectPublicKey, kObjectPrivateKey}) out.push_back(Item::Enumeration(tags::kObjectType, t));
    } else if (function == kQueryServerInformation) {
      out.push_back(Item::TextString(tags::kVendorIdentification, options_.vendor));
      out.push_back(Item::Structure(tags::kServerInformation));
    }
  }
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

namespace {

// KeyTemplate is what Create and Register read from their attributes: the key's algorithm,
// length and usage, and the client-settable attributes as kmip: tags.
struct KeyTemplate {
  std::optional<uint32_t> algorithm;
  std::optional<int32_t> length, usage;
  std::vector<std::pair<std::string, std::string>> tags;
};

Status ReadTemplate(const std::vector<Attribute>& attributes, const char* operation, KeyTemplate* t) {
  for (const Attribute& a : attributes) {
    if (a.name == "Cryptographic Algorithm") {
      ASSIGN_OR_RETURN(t->algorithm, a.value.AsEnumeration());
    } else if (a.name == "Cryptographic Length") {
      ASSIGN_OR_RETURN(t->length, a.value.AsInteger());
    } else if (a.name == "Cryptographic Usage Mask") {
      ASSIGN_OR_RETURN(t->usage, a.value.AsInteger());
    } else if (a.name == "Name" || a.name == "Object Group" || a.name == "Contact Information" || Custom(a.name)) {
      ASSIGN_OR_RETURN(auto tag, SettableTag(a));
      t->tags.push_back(std::move(tag));
    } else if (a.name != "Cryptographic Parameters" && a.name != "Operation Policy Name") {
      // (Cryptographic Parameters come with each operation; policies are key policies.)
      return Fail(reason::kInvalidField, "kmip: attribute " + a.name + " cannot be given to " + operation);
    }
  }
  return Status::Ok();
}

// TagList is the Tags of a new object: the server's own kmip: tags, Pre-Active, the client's.
StatusOr<json> TagList(const std::vector<std::pair<std::string, std::string>>& own,
                       const std::vector<std::pair<std::string, std::string>>& client) {
  json out = json::array();
  for (const auto& [k, v] : own) out.push_back({{"TagKey", k}, {"TagValue", v}});
  out.push_back({{"TagKey", "kmip:state"}, {"TagValue", "PreActive"}});
  for (const auto& [k, v] : client) out.push_back({{"TagKey", k}, {"TagValue", v}});
  if (out.size() > 50) return Fail(reason::kInvalidField, "kmip: too many attributes (a key holds at most 50 tags)");
  return out;
}

}  // namespace

StatusOr<Item> KmipApi::Create(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(auto type, OptEnum(payload, tags::kObjectType));
  if (!type) return Fail(reason::kMissingData, "kmip: Create needs an Object Type");
  if (*type != kObjectSymmetricKey)
    return Fail(reason::kFeatureNotSupported, "kmip: Create makes Symmetric Keys only (Object Type 2)");
  ASSIGN_OR_RETURN(std::vector<Attribute> attributes, RequestAttributes(payload, ctx.version));
  KeyTemplate t;
  RETURN_IF_ERROR(ReadTemplate(attributes, "Create", &t));
  auto& [algorithm, length, usage, kept] = t;
  if (!algorithm) return Fail(reason::kMissingData, "kmip: Create needs a Cryptographic Algorithm");
  std::string spec;
  if (*algorithm == kAlgAes) {
    if (!length) return Fail(reason::kMissingData, "kmip: Create needs a Cryptographic Length for an AES key");
    if (*length != 128 && *length != 256)
      return Fail(reason::kInvalidField, "kmip: AES keys are 128 or 256 bits, not " + std::to_string(*length));
    spec = std::string(ecall::kSpecSymmetric);
  } else if (*algorithm == kAlgHmacSha256) {
    if (length && *length != 256) return Fail(reason::kInvalidField, "kmip: HMAC-SHA256 keys are 256 bits");
    length = 256;
    spec = std::string(ecall::kSpecHmac256);
  } else {
    return Fail(reason::kFeatureNotSupported,
                "kmip: Create supports Cryptographic Algorithm AES (3) and HMAC-SHA256 (9) only");
  }
  const int32_t allowed = *algorithm == kAlgAes ? (kUsageEncrypt | kUsageDecrypt) : (kUsageMacGenerate | kUsageMacVerify);
  if (!usage) usage = allowed;
  if ((*usage & ~allowed) != 0 || *usage == 0)
    return Fail(reason::kInvalidField, "kmip: Cryptographic Usage Mask " + std::to_string(*usage) + " is not allowed for this key (" +
                                           std::to_string(allowed) + " is)");
  ASSIGN_OR_RETURN(json tagl, TagList({{"kmip:length", std::to_string(*length)}, {"kmip:usage", std::to_string(*usage)}}, kept));
  json req = {{"KeySpec", spec}, {"Description", "KMIP object"}, {"Tags", std::move(tagl)}, {"PreActive", true}};
  ASSIGN_OR_RETURN(json made, Service("KmipCreate", req, ctx));
  std::string uid = made["KeyMetadata"]["KeyId"].get<std::string>();
  ctx.placeholder = uid;
  ctx.key_id = uid;
  {
    std::unique_lock lock(bits_mu_);
    bits_[uid] = static_cast<uint32_t>(*length);
  }
  std::vector<Item> out = {Item::Enumeration(tags::kObjectType, kObjectSymmetricKey),
                           Item::TextString(tags::kUniqueIdentifier, uid)};
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

// Register stores a client's symmetric key (AES-128/256 or HMAC-SHA256, Key Format Type Raw or
// Transparent Symmetric Key). The core wraps it as given (ecall kms-import-key): a registered
// AES key encrypts as itself, so the client's copy and custos's agree; such a key (spec
// KMIP_AES) serves KMIP only, and is never rotated.
StatusOr<Item> KmipApi::Register(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(auto type, OptEnum(payload, tags::kObjectType));
  if (!type) return Fail(reason::kMissingData, "kmip: Register needs an Object Type");
  if (*type != kObjectSymmetricKey)
    return Fail(reason::kFeatureNotSupported, "kmip: Register stores Symmetric Keys only (Object Type 2)");
  ASSIGN_OR_RETURN(const Item* object, payload.RequireItem(tags::kSymmetricKey));
  ASSIGN_OR_RETURN(const Item* block, object->RequireItem(tags::kKeyBlock));
  ASSIGN_OR_RETURN(auto format, OptEnum(*block, tags::kKeyFormatType));
  if (block->FindItem(tags::kKeyWrappingData) != nullptr)
    return Fail(reason::kFeatureNotSupported, "kmip: Register takes unwrapped key material only");
  ASSIGN_OR_RETURN(const Item* value, block->RequireItem(tags::kKeyValue));
  ASSIGN_OR_RETURN(const Item* material_item, value->RequireItem(tags::kKeyMaterial));
  ByteSpan material;
  if (format.value_or(1) == 1) {  // Raw
    ASSIGN_OR_RETURN(material, material_item->AsByteString());
  } else if (*format == 7) {  // Transparent Symmetric Key: a structure holding Key
    ASSIGN_OR_RETURN(const Item* key, material_item->RequireItem(tags::kKey));
    ASSIGN_OR_RETURN(material, key->AsByteString());
  } else {
    return Fail(reason::kFeatureNotSupported, "kmip: Key Format Type must be Raw (1) or Transparent Symmetric Key (7)");
  }
  ASSIGN_OR_RETURN(auto block_alg, OptEnum(*block, tags::kCryptographicAlgorithm));
  ASSIGN_OR_RETURN(auto block_len, OptInt(*block, tags::kCryptographicLength));
  ASSIGN_OR_RETURN(std::vector<Attribute> attributes, RequestAttributes(payload, ctx.version));
  KeyTemplate t{block_alg, block_len, std::nullopt, {}};
  RETURN_IF_ERROR(ReadTemplate(attributes, "Register", &t));
  auto& [algorithm, length, usage, kept] = t;
  if (!algorithm) return Fail(reason::kMissingData, "kmip: Register needs a Cryptographic Algorithm");
  const int32_t bits = static_cast<int32_t>(material.size() * 8);
  if (length && *length != bits)
    return Fail(reason::kInvalidField, "kmip: Cryptographic Length " + std::to_string(*length) + " but the key has " +
                                           std::to_string(bits) + " bits");
  std::string spec;
  int32_t allowed;
  if (*algorithm == kAlgAes) {
    if (bits != 128 && bits != 256) return Fail(reason::kInvalidField, "kmip: AES keys are 128 or 256 bits");
    spec = "KMIP_AES";
    allowed = kUsageEncrypt | kUsageDecrypt;
  } else if (*algorithm == kAlgHmacSha256) {
    if (bits != 256) return Fail(reason::kInvalidField, "kmip: HMAC-SHA256 keys registered here are 256 bits");
    spec = std::string(ecall::kSpecHmac256);
    allowed = kUsageMacGenerate | kUsageMacVerify;
  } else {
    return Fail(reason::kFeatureNotSupported, "kmip: Register supports AES (3) and HMAC-SHA256 (9) keys only");
  }
  if (!usage) usage = allowed;
  if ((*usage & allowed) == 0)
    return Fail(reason::kInvalidField, "kmip: Cryptographic Usage Mask " + std::to_string(*usage) + " allows nothing this key does (" +
                                           std::to_string(allowed) + ")");
  *usage &= allowed;  // what custos will do with it (a client asking for Export as well gets the rest)
  ASSIGN_OR_RETURN(json tagl, TagList({{"kmip:length", std::to_string(bits)}, {"kmip:usage", std::to_string(*usage)}}, kept));
  std::string b64 = Base64Encode(material);
  json req = {{"KeySpec", spec}, {"Material", b64}, {"Description", "KMIP registered key"}, {"Tags", std::move(tagl)},
              {"PreActive", true}};
  WipeBytes(b64);
  StatusOr<json> made = Service("KmipRegister", req, ctx);
  WipeBytes(req["Material"].get_ref<std::string&>());
  if (!made.ok()) return made.status();
  std::string uid = (*made)["KeyMetadata"]["KeyId"].get<std::string>();
  ctx.placeholder = uid;
  ctx.key_id = uid;
  {
    std::unique_lock lock(bits_mu_);
    bits_[uid] = static_cast<uint32_t>(bits);
  }
  return Item::Structure(tags::kResponsePayload, {Item::TextString(tags::kUniqueIdentifier, uid)});
}

StatusOr<Item> KmipApi::Get(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  ASSIGN_OR_RETURN(std::vector<Attribute> attributes, ObjectAttributes(uid, ctx));
  if (!ctx.public_object)
    return Fail(reason::kPermissionDenied,
                "kmip: key material of " + uid +
                    " stays in the trusted core: this server does not export keys (use Encrypt, Decrypt, MAC and Sign)");
  ASSIGN_OR_RETURN(auto format, OptEnum(payload, tags::kKeyFormatType));
  if (format && *format != kFormatX509)
    return Fail(reason::kFeatureNotSupported, "kmip: public keys are returned as X.509 SubjectPublicKeyInfo (Key Format Type 5) only");
  ASSIGN_OR_RETURN(json r, Service("GetPublicKey", {{"KeyId", uid}}, ctx, false));
  ASSIGN_OR_RETURN(Bytes der, Base64Decode(r["PublicKey"].get<std::string>()));
  uint32_t algorithm = kAlgEcdsa;
  for (const Attribute& a : attributes)
    if (a.name == "Cryptographic Algorithm") algorithm = Or(a.value.AsEnumeration(), kAlgEcdsa);
  Item block = Item::Structure(tags::kKeyBlock, {Item::Enumeration(tags::kKeyFormatType, kFormatX509),
                                                 Item::Structure(tags::kKeyValue, {Item::ByteString(tags::kKeyMaterial, der)}),
                                                 Item::Enumeration(tags::kCryptographicAlgorithm, algorithm),
                                                 Item::Integer(tags::kCryptographicLength, 256)});
  return Item::Structure(tags::kResponsePayload, {Item::Enumeration(tags::kObjectType, kObjectPublicKey),
                                                  Item::TextString(tags::kUniqueIdentifier, uid),
                                                  Item::Structure(tags::kPublicKey, {block})});
}

namespace {

// AttributesOf lists the attributes of one object: the key `meta`/`tags` describe, or (`pub`)
// the public half of an ECC key pair.
std::vector<Attribute> AttributesOf(const std::string& uid, bool pub, const json& meta, const json& tags) {
  const std::string spec = meta.value("KeySpec", "");
  const bool aes = spec == ecall::kSpecSymmetric || spec == "KMIP_AES";  // KMIP_AES: a registered key
  const bool ecc = spec == ecall::kSpecEccP256;
  std::vector<Attribute> out;
  out.push_back(Attr("Unique Identifier", Item::TextString(0, uid)));
  out.push_back(Attr("Object Type", Item::Enumeration(0, !ecc ? kObjectSymmetricKey : pub ? kObjectPublicKey : kObjectPrivateKey)));
  std::string alg = TagValue(tags, "kmip:algorithm");
  uint32_t algorithm = aes ? kAlgAes : ecc ? (alg.empty() ? kAlgEcdsa : static_cast<uint32_t>(std::stoul(alg))) : kAlgHmacSha256;
  out.push_back(Attr("Cryptographic Algorithm", Item::Enumeration(0, algorithm)));
  std::string length = TagValue(tags, "kmip:length");
  out.push_back(Attr("Cryptographic Length", Item::Integer(0, length.empty() ? 256 : std::stoi(length))));
  std::string usage = TagValue(tags, pub ? "kmip:pubusage" : "kmip:usage");
  int32_t default_usage = aes ? (kUsageEncrypt | kUsageDecrypt)
                          : ecc ? (pub ? kUsageVerify : kUsageSign)
                                : (kUsageMacGenerate | kUsageMacVerify);
  out.push_back(Attr("Cryptographic Usage Mask", Item::Integer(0, usage.empty() ? default_usage : std::stoi(usage))));
  const uint32_t state = StateOf(meta, tags);
  out.push_back(Attr("State", Item::Enumeration(0, state)));
  const int64_t created = meta.value("CreationDate", int64_t{0});
  out.push_back(Attr("Initial Date", Item::DateTime(0, created)));
  std::string activation = TagValue(tags, "kmip:activation");
  if (!activation.empty()) out.push_back(Attr("Activation Date", Item::DateTime(0, std::stoll(activation))));
  else if (state != kStatePreActive && TagValue(tags, "kmip:state").empty())  // made through the KMS API: active from creation
    out.push_back(Attr("Activation Date", Item::DateTime(0, created)));
  for (auto [tag, name] : {std::pair{"kmip:deactivation", "Deactivation Date"}, std::pair{"kmip:compromise", "Compromise Date"},
                           std::pair{"kmip:destroy", "Destroy Date"}}) {
    std::string v = TagValue(tags, tag);
    if (!v.empty()) out.push_back(Attr(name, Item::DateTime(0, std::stoll(v))));
  }
  std::string name = TagValue(tags, pub ? "kmip:pubname" : "kmip:name");
  if (!name.empty()) out.push_back(Attribute{"Name", 0, NameValue(name)});
  std::string group = TagValue(tags, "kmip:group");
  if (!group.empty()) out.push_back(Attr("Object Group", Item::TextString(0, group)));
  std::string contact = TagValue(tags, "kmip:contact");
  if (!contact.empty()) out.push_back(Attr("Contact Information", Item::TextString(0, contact)));
  for (auto it = tags.begin(); it != tags.end(); ++it) {
    const std::string& k = it.key();
    if (k.starts_with("kmip:x-") || k.starts_with("kmip:y-"))
      out.push_back(Attr(k.substr(5), Item::TextString(0, it->get<std::string>())));
  }
  return out;
}

// Matches: the object has attribute `f` with the same value (a Name by its Name Value).
bool Matches(const std::vector<Attribute>& attributes, const Attribute& f) {
  for (const Attribute& a : attributes) {
    if (a.name != f.name) continue;
    if (a.name == "Name") {
      auto want = NameOf(f), have = NameOf(a);
      if (want.ok() && have.ok() && *want == *have) return true;
    } else if (a.value == f.value) {
      return true;
    }
  }
  return false;
}

}  // namespace

StatusOr<std::vector<Attribute>> KmipApi::ObjectAttributes(const std::string& uid, Context& ctx) {
  ASSIGN_OR_RETURN(json d, Service("KmipDescribe", {{"KeyId", uid}}, ctx));
  const bool ecc = d["KeyMetadata"].value("KeySpec", "") == ecall::kSpecEccP256;
  if (ctx.public_object && !ecc) return Fail(reason::kItemNotFound, "kmip: no object " + uid);
  return AttributesOf(uid, ctx.public_object, d["KeyMetadata"], d["Tags"]);
}

namespace {
// RequestedNames reads the attribute names a Get Attributes request asks for: 1.x Attribute
// Name texts, 2.0 Attribute References (an Enumeration holding a tag, or a structure with an
// Attribute Name).
StatusOr<std::vector<std::string>> RequestedNames(const Item& payload, const ProtocolVersion& version) {
  std::vector<std::string> names;
  if (!version.v2()) {
    for (const Item* n : payload.FindItems(tags::kAttributeName)) {
      ASSIGN_OR_RETURN(std::string_view s, n->AsTextString());
      names.emplace_back(s);
    }
    return names;
  }
  for (const Item* r : payload.FindItems(tags::kAttributeReference)) {
    if (r->is_structure()) {
      ASSIGN_OR_RETURN(const Item* n, r->RequireItem(tags::kAttributeName));
      ASSIGN_OR_RETURN(std::string_view s, n->AsTextString());
      names.emplace_back(s);
    } else {
      ASSIGN_OR_RETURN(uint32_t t, r->AsEnumeration());
      std::string n = AttributeNameOf(t);
      if (n.empty()) continue;  // an attribute this server does not keep: nothing to return
      names.push_back(std::move(n));
    }
  }
  return names;
}
}  // namespace

StatusOr<Item> KmipApi::GetAttributes(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  ASSIGN_OR_RETURN(std::vector<std::string> wanted, RequestedNames(payload, ctx.version));
  ASSIGN_OR_RETURN(std::vector<Attribute> all, ObjectAttributes(uid, ctx));
  std::vector<Item> out = {Item::TextString(tags::kUniqueIdentifier, uid)};
  std::vector<Item> v2;
  for (const Attribute& a : all) {
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), a.name) == wanted.end()) continue;
    if (ctx.version.v2()) {
      if (AttributeTag(a.name) != 0) v2.push_back(EncodeAttribute2(a));
    } else {
      out.push_back(EncodeAttribute1(a));
    }
  }
  if (ctx.version.v2()) out.push_back(Item::Structure(tags::kAttributes, std::move(v2)));
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

StatusOr<Item> KmipApi::GetAttributeList(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  ASSIGN_OR_RETURN(std::vector<Attribute> all, ObjectAttributes(uid, ctx));
  std::vector<Item> out = {Item::TextString(tags::kUniqueIdentifier, uid)};
  for (const Attribute& a : all) {
    if (ctx.version.v2()) {
      if (kmip::Tag t = AttributeTag(a.name); t != 0) out.push_back(Item::Enumeration(tags::kAttributeReference, t));
    } else {
      out.push_back(Item::TextString(tags::kAttributeName, a.name));
    }
  }
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

StatusOr<Item> KmipApi::ChangeAttribute(uint32_t operation, const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  Attribute a;
  if (ctx.version.v2()) {
    if (operation == op::kAddAttribute || operation == op::kSetAttribute || operation == op::kModifyAttribute) {
      ASSIGN_OR_RETURN(const Item* n, payload.RequireItem(tags::kNewAttribute));
      ASSIGN_OR_RETURN(auto list, DecodeAttributes2(*n));
      if (list.size() != 1) return Fail(reason::kInvalidField, "kmip: New Attribute must hold one attribute");
      a = list[0];
    } else {
      if (const Item* c = payload.FindItem(tags::kCurrentAttribute)) {
        ASSIGN_OR_RETURN(auto list, DecodeAttributes2(*c));
        if (list.size() != 1) return Fail(reason::kInvalidField, "kmip: Current Attribute must hold one attribute");
        a = list[0];
      } else {
        ASSIGN_OR_RETURN(auto names, RequestedNames(payload, ctx.version));
        if (names.size() != 1) return Fail(reason::kMissingData, "kmip: Delete Attribute needs one Attribute Reference");
        a.name = names[0];
      }
    }
  } else if (operation == op::kDeleteAttribute) {
    ASSIGN_OR_RETURN(auto name, OptText(payload, tags::kAttributeName));
    if (!name) return Fail(reason::kMissingData, "kmip: Delete Attribute needs an Attribute Name");
    a.name = *name;
  } else {
    if (operation == op::kSetAttribute) return Fail(reason::kOperationNotSupported, "kmip: Set Attribute is a KMIP 2.0 operation");
    ASSIGN_OR_RETURN(const Item* attr, payload.RequireItem(tags::kAttribute));
    ASSIGN_OR_RETURN(a, DecodeAttribute1(*attr));
  }
  if (a.index > 0) return Fail(reason::kInvalidField, "kmip: attribute " + a.name + " has one instance (index 0)");
  ASSIGN_OR_RETURN(std::vector<Attribute> current, ObjectAttributes(uid, ctx));
  auto existing = std::find_if(current.begin(), current.end(), [&](const Attribute& c) { return c.name == a.name; });
  const bool present = existing != current.end();
  std::string tag_key;
  if (operation == op::kDeleteAttribute) {
    if (a.name == "Name") tag_key = ctx.public_object ? "kmip:pubname" : "kmip:name";
    else if (a.name == "Object Group") tag_key = "kmip:group";
    else if (a.name == "Contact Information") tag_key = "kmip:contact";
    else if (Custom(a.name)) tag_key = "kmip:" + a.name;
    else return Fail(reason::kPermissionDenied, "kmip: attribute " + a.name + " cannot be deleted by a client");
    if (!present) return Fail(reason::kItemNotFound, "kmip: object " + uid + " has no attribute " + a.name);
    a.value = existing->value;
    ASSIGN_OR_RETURN(json r, Service("KmipDeleteTags", {{"KeyId", uid}, {"TagKeys", {tag_key}}}, ctx));
    (void)r;
  } else {
    ASSIGN_OR_RETURN(auto tag, SettableTag(a));
    if (ctx.public_object && tag.first == "kmip:name") tag.first = "kmip:pubname";
    if (operation == op::kAddAttribute && present)
      return Fail(reason::kIllegalOperation, "kmip: object " + uid + " already has attribute " + a.name + " (use Modify Attribute)");
    if (operation == op::kModifyAttribute && !present)
      return Fail(reason::kItemNotFound, "kmip: object " + uid + " has no attribute " + a.name + " to modify");
    ASSIGN_OR_RETURN(json r, Service("KmipSetTags", {{"KeyId", uid}, {"Tags", {{{"TagKey", tag.first}, {"TagValue", tag.second}}}}}, ctx));
    (void)r;
  }
  std::vector<Item> out = {Item::TextString(tags::kUniqueIdentifier, uid)};
  if (!ctx.version.v2()) out.push_back(EncodeAttribute1(a));
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

StatusOr<Item> KmipApi::Locate(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::vector<Attribute> filter, RequestAttributes(payload, ctx.version));
  ASSIGN_OR_RETURN(auto max_items, OptInt(payload, tags::kMaximumItems));
  ASSIGN_OR_RETURN(auto offset, OptInt(payload, tags::kOffsetItems));
  for (const Attribute& f : filter)
    if (f.name != "Name" && f.name != "Object Type" && f.name != "State" && f.name != "Cryptographic Algorithm" &&
        f.name != "Cryptographic Length" && f.name != "Object Group" && f.name != "Unique Identifier" &&
        f.name != "Contact Information" && f.name != "Cryptographic Usage Mask" && !Custom(f.name))
      return Fail(reason::kFeatureNotSupported, "kmip: Locate cannot filter on attribute " + f.name);
  ASSIGN_OR_RETURN(json all, Service("KmipList", json::object(), ctx));
  std::vector<std::string> found;
  for (const json& k : all["Keys"]) {
    const std::string spec = k["KeyMetadata"].value("KeySpec", "");
    const std::string id = k["KeyMetadata"]["KeyId"].get<std::string>();
    std::vector<std::pair<std::string, bool>> objects = {{id, false}};
    if (spec == ecall::kSpecEccP256) objects.push_back({id + std::string(kPublicSuffix), true});
    for (const auto& [uid, pub] : objects) {
      std::vector<Attribute> attributes = AttributesOf(uid, pub, k["KeyMetadata"], k["Tags"]);
      bool match = true;
      for (const Attribute& f : filter) match = match && Matches(attributes, f);
      if (match) found.push_back(uid);
    }
  }
  std::vector<Item> out;
  if (ctx.version.v2() || ctx.version.minor >= 3)
    out.push_back(Item::Integer(tags::kLocatedItems, static_cast<int32_t>(found.size())));
  size_t start = static_cast<size_t>(std::max(0, offset.value_or(0)));
  size_t limit = max_items && *max_items > 0 ? static_cast<size_t>(*max_items) : found.size();
  for (size_t i = start; i < found.size() && i - start < limit; ++i)
    out.push_back(Item::TextString(tags::kUniqueIdentifier, found[i]));
  return Item::Structure(tags::kResponsePayload, std::move(out));
}

StatusOr<Item> KmipApi::Lifecycle(uint32_t operation, const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  // The two objects of a key pair are one custos key with one state: the second Activate or
  // Destroy (through the other object) finds the pair there already and succeeds.
  ASSIGN_OR_RETURN(std::vector<Attribute> attributes, ObjectAttributes(uid, ctx));
  uint32_t type = kObjectSymmetricKey, state = 0;
  for (const Attribute& a : attributes) {
    if (a.name == "Object Type") type = Or(a.value.AsEnumeration(), kObjectSymmetricKey);
    if (a.name == "State") state = Or(a.value.AsEnumeration(), 0u);
  }
  const Item done = Item::Structure(tags::kResponsePayload, {Item::TextString(tags::kUniqueIdentifier, uid)});
  if (type != kObjectSymmetricKey) {
    if (operation == op::kActivate && state == kStateActive) return done;
    if (operation == op::kDestroy && (state == kStateDestroyed || state == kStateDestroyedCompromised)) return done;
  }
  if (operation == op::kActivate) {
    ASSIGN_OR_RETURN(json r, Service("KmipActivate", {{"KeyId", uid}}, ctx));
    (void)r;
  } else if (operation == op::kRevoke) {
    ASSIGN_OR_RETURN(const Item* reason_item, payload.RequireItem(tags::kRevocationReason));
    ASSIGN_OR_RETURN(const Item* code, reason_item->RequireItem(tags::kRevocationReasonCode));
    ASSIGN_OR_RETURN(uint32_t c, code->AsEnumeration());
    if (c < 1 || c > 7) return Fail(reason::kInvalidField, "kmip: Revocation Reason Code " + std::to_string(c) + " is not defined");
    ASSIGN_OR_RETURN(json r, Service("KmipRevoke", {{"KeyId", uid}, {"Compromised", c == kRevokeKeyCompromise}}, ctx));
    (void)r;
  } else {
    ASSIGN_OR_RETURN(json r, Service("KmipDestroy", {{"KeyId", uid}}, ctx));
    (void)r;
  }
  return Item::Structure(tags::kResponsePayload, {Item::TextString(tags::kUniqueIdentifier, uid)});
}

StatusOr<uint32_t> KmipApi::KeyBits(const std::string& uid, Context& ctx) {
  {
    std::shared_lock lock(bits_mu_);
    auto it = bits_.find(uid);
    if (it != bits_.end()) return it->second;
  }
  ASSIGN_OR_RETURN(json d, Service("KmipDescribe", {{"KeyId", uid}}, ctx));
  std::string l = TagValue(d["Tags"], "kmip:length");
  uint32_t bits = l.empty() ? 256 : static_cast<uint32_t>(std::stoul(l));
  std::unique_lock lock(bits_mu_);
  bits_[uid] = bits;
  return bits;
}

StatusOr<Item> KmipApi::Crypt(bool encrypt, const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  uint32_t mode = ecall::kKmipModeGcm;
  int32_t tag_length = 16;
  bool random_iv = false;
  if (const Item* cp = payload.FindItem(tags::kCryptographicParameters)) {
    ASSIGN_OR_RETURN(auto alg, OptEnum(*cp, tags::kCryptographicAlgorithm));
    if (alg && *alg != kAlgAes) return Fail(reason::kFeatureNotSupported, "kmip: Encrypt and Decrypt use AES (3) only");
    ASSIGN_OR_RETURN(auto block, OptEnum(*cp, tags::kBlockCipherMode));
    ASSIGN_OR_RETURN(auto padding, OptEnum(*cp, tags::kPaddingMethod));
    ASSIGN_OR_RETURN(auto tl, OptInt(*cp, tags::kTagLength));
    if (const Item* r = cp->FindItem(tags::kRandomIv)) {
      ASSIGN_OR_RETURN(random_iv, r->AsBoolean());
    }
    if (!block || *block == kModeGcm) {
      if (padding && *padding != kPadNone) return Fail(reason::kInvalidField, "kmip: GCM takes no Padding Method");
      mode = ecall::kKmipModeGcm;
      if (tl) tag_length = *tl;
      if (tag_length < 12 || tag_length > 16) return Fail(reason::kInvalidField, "kmip: Tag Length must be 12 to 16 bytes");
    } else if (*block == kModeCbc) {
      if (!padding || *padding == kPadPkcs5) mode = ecall::kKmipModeCbcPkcs7;
      else if (*padding == kPadNone) mode = ecall::kKmipModeCbcNoPadding;
      else return Fail(reason::kFeatureNotSupported, "kmip: CBC supports Padding Method PKCS5 (3) or None (1)");
    } else {
      return Fail(reason::kFeatureNotSupported, "kmip: Block Cipher Mode " + std::to_string(*block) +
                                                     " is not supported (CBC 1 and GCM 9 are)");
    }
  }
  ASSIGN_OR_RETURN(auto data, OptBytes(payload, tags::kData));
  if (!data) return Fail(reason::kMissingData, "kmip: Data is required");
  ASSIGN_OR_RETURN(auto iv, OptBytes(payload, tags::kIvCounterNonce));
  if (iv && random_iv) return Fail(reason::kInvalidField, "kmip: an IV/Counter/Nonce with Random IV true");
  if (!encrypt && !iv) return Fail(reason::kMissingData, "kmip: Decrypt needs the IV/Counter/Nonce");
  ASSIGN_OR_RETURN(auto aad, OptBytes(payload, tags::kAuthenticatedEncryptionAdditionalData));
  if (aad && mode != ecall::kKmipModeGcm) return Fail(reason::kInvalidField, "kmip: additional data is for GCM only");
  // KMIP before 1.4 has no Authenticated Encryption Tag field: the tag follows the ciphertext.
  const bool separate_tag = ctx.version.v2() || ctx.version.minor >= 4;
  ASSIGN_OR_RETURN(uint32_t bits, KeyBits(uid, ctx));
  json req = {{"KeyId", uid}, {"Bits", bits}, {"Mode", mode}};
  if (iv) req["Iv"] = Base64Encode(*iv);
  if (aad) req["Aad"] = Base64Encode(*aad);
  if (encrypt) {
    if (!data->empty()) req["Data"] = Base64Encode(*data);
    req["TagLength"] = tag_length;
    ASSIGN_OR_RETURN(json r, Service("KmipEncrypt", req, ctx));
    ASSIGN_OR_RETURN(Bytes ct, Base64Decode(r["Data"].get<std::string>()));
    ASSIGN_OR_RETURN(Bytes tag, Base64Decode(r["Tag"].get<std::string>()));
    ASSIGN_OR_RETURN(Bytes made_iv, Base64Decode(r["Iv"].get<std::string>()));
    if (!separate_tag) ct.insert(ct.end(), tag.begin(), tag.end());
    std::vector<Item> out = {Item::TextString(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kData, ct)};
    if (!iv) out.push_back(Item::ByteString(tags::kIvCounterNonce, made_iv));
    if (separate_tag && !tag.empty()) out.push_back(Item::ByteString(tags::kAuthenticatedEncryptionTag, tag));
    return Item::Structure(tags::kResponsePayload, std::move(out));
  }
  Bytes ct = *data;
  ASSIGN_OR_RETURN(auto given_tag, OptBytes(payload, tags::kAuthenticatedEncryptionTag));
  Bytes tag;
  if (mode == ecall::kKmipModeGcm) {
    if (given_tag) {
      tag = *given_tag;
    } else if (!separate_tag && ct.size() >= static_cast<size_t>(tag_length)) {
      tag.assign(ct.end() - tag_length, ct.end());
      ct.resize(ct.size() - tag_length);
    } else {
      return Fail(reason::kMissingData, "kmip: GCM Decrypt needs the Authenticated Encryption Tag");
    }
  }
  if (!ct.empty()) req["Data"] = Base64Encode(ct);
  if (!tag.empty()) req["Tag"] = Base64Encode(tag);
  ASSIGN_OR_RETURN(json r, Service("KmipDecrypt", req, ctx));
  ASSIGN_OR_RETURN(Bytes pt, Base64Decode(r["Data"].get<std::string>()));
  Item out = Item::Structure(tags::kResponsePayload,
                             {Item::TextString(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kData, pt)});
  std::fill(pt.begin(), pt.end(), 0);
  return out;
}

namespace {
// PairAttributes reads one attribute container of Create Key Pair (1.x: a Template-Attribute
// of Attribute items; 2.0: an Attributes-like structure of tagged items); absent: none.
StatusOr<std::vector<Attribute>> PairAttributes(const Item& payload, Tag v1, Tag v2, const ProtocolVersion& version) {
  std::vector<Attribute> out;
  const Item* c = payload.FindItem(version.v2() ? v2 : v1);
  if (c == nullptr) return out;
  if (version.v2()) return DecodeAttributes2(*c);
  for (const Item* a : c->FindItems(tags::kAttribute)) {
    ASSIGN_OR_RETURN(Attribute attribute, DecodeAttribute1(*a));
    out.push_back(std::move(attribute));
  }
  return out;
}
}  // namespace

StatusOr<Item> KmipApi::CreateKeyPair(const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(auto common, PairAttributes(payload, tags::kCommonTemplateAttribute, tags::kCommonAttributes, ctx.version));
  ASSIGN_OR_RETURN(auto priv, PairAttributes(payload, tags::kPrivateKeyTemplateAttribute, tags::kPrivateKeyAttributes, ctx.version));
  ASSIGN_OR_RETURN(auto pub, PairAttributes(payload, tags::kPublicKeyTemplateAttribute, tags::kPublicKeyAttributes, ctx.version));
  std::optional<uint32_t> algorithm;
  std::optional<int32_t> length;
  int32_t priv_usage = kUsageSign, pub_usage = kUsageVerify;
  std::vector<std::pair<std::string, std::string>> kept;
  auto read = [&](const std::vector<Attribute>& list, int which) -> Status {  // 0 common, 1 private, 2 public
    for (const Attribute& a : list) {
      if (a.name == "Cryptographic Algorithm") {
        ASSIGN_OR_RETURN(algorithm, a.value.AsEnumeration());
      } else if (a.name == "Cryptographic Length") {
        ASSIGN_OR_RETURN(length, a.value.AsInteger());
      } else if (a.name == "Cryptographic Usage Mask") {
        ASSIGN_OR_RETURN(int32_t m, a.value.AsInteger());
        if (which != 2) priv_usage = m;
        if (which != 1) pub_usage = m;
      } else if (a.name == "Name") {
        ASSIGN_OR_RETURN(std::string n, NameOf(a));
        if (which != 2) kept.push_back({"kmip:name", n});
        if (which != 1) kept.push_back({"kmip:pubname", n});
      } else if (a.name == "Object Group" || a.name == "Contact Information" || Custom(a.name)) {
        ASSIGN_OR_RETURN(auto tag, SettableTag(a));
        kept.push_back(std::move(tag));
      } else if (a.name != "Cryptographic Parameters" && a.name != "Cryptographic Domain Parameters") {
        return Fail(reason::kInvalidField, "kmip: attribute " + a.name + " cannot be given to Create Key Pair");
      }
    }
    return Status::Ok();
  };
  RETURN_IF_ERROR(read(common, 0));
  RETURN_IF_ERROR(read(priv, 1));
  RETURN_IF_ERROR(read(pub, 2));
  if (!algorithm) return Fail(reason::kMissingData, "kmip: Create Key Pair needs a Cryptographic Algorithm");
  if (*algorithm != kAlgEcdsa && *algorithm != kAlgEc)
    return Fail(reason::kFeatureNotSupported, "kmip: Create Key Pair makes ECDSA/EC P-256 keys only (Cryptographic Algorithm 6 or 26)");
  if (length && *length != 256) return Fail(reason::kFeatureNotSupported, "kmip: EC keys are P-256 (Cryptographic Length 256)");
  if ((priv_usage & ~kUsageSign) != 0 || (pub_usage & ~kUsageVerify) != 0)
    return Fail(reason::kInvalidField, "kmip: a P-256 pair signs (private key, usage 1) and verifies (public key, usage 2)");
  ASSIGN_OR_RETURN(json tagl, TagList({{"kmip:algorithm", std::to_string(*algorithm)},
                                       {"kmip:length", "256"},
                                       {"kmip:usage", std::to_string(priv_usage)},
                                       {"kmip:pubusage", std::to_string(pub_usage)}},
                                      kept));
  json req = {{"KeySpec", ecall::kSpecEccP256}, {"KeyUsage", "SIGN_VERIFY"}, {"Description", "KMIP key pair"},
              {"Tags", std::move(tagl)}, {"PreActive", true}};
  ASSIGN_OR_RETURN(json made, Service("KmipCreate", req, ctx));
  std::string uid = made["KeyMetadata"]["KeyId"].get<std::string>();
  ctx.placeholder = uid;
  ctx.key_id = uid;
  return Item::Structure(tags::kResponsePayload, {Item::TextString(tags::kPrivateKeyUniqueIdentifier, uid),
                                                  Item::TextString(tags::kPublicKeyUniqueIdentifier, uid + std::string(kPublicSuffix))});
}

StatusOr<Item> KmipApi::Sign(bool verify, const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  if (!verify && ctx.public_object) return Fail(reason::kIllegalOperation, "kmip: a public key does not sign");
  if (const Item* cp = payload.FindItem(tags::kCryptographicParameters)) {
    ASSIGN_OR_RETURN(auto dsa, OptEnum(*cp, tags::kDigitalSignatureAlgorithm));
    ASSIGN_OR_RETURN(auto alg, OptEnum(*cp, tags::kCryptographicAlgorithm));
    ASSIGN_OR_RETURN(auto hash, OptEnum(*cp, tags::kHashingAlgorithm));
    if ((dsa && *dsa != kSigEcdsaSha256) || (alg && *alg != kAlgEcdsa && *alg != kAlgEc) || (hash && *hash != kHashSha256))
      return Fail(reason::kFeatureNotSupported, "kmip: signatures are ECDSA with SHA-256 (Digital Signature Algorithm 14) only");
  }
  ASSIGN_OR_RETURN(auto data, OptBytes(payload, tags::kData));
  if (!data || data->empty()) return Fail(reason::kMissingData, "kmip: Data is required");
  json req = {{"KeyId", uid}, {"Message", Base64Encode(*data)}, {"MessageType", "RAW"}, {"SigningAlgorithm", "ECDSA_SHA_256"}};
  if (!verify) {
    ASSIGN_OR_RETURN(json r, Service("Sign", req, ctx, false));
    ASSIGN_OR_RETURN(Bytes sig, Base64Decode(r["Signature"].get<std::string>()));
    return Item::Structure(tags::kResponsePayload,
                           {Item::TextString(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kSignatureData, sig)});
  }
  ASSIGN_OR_RETURN(auto sig, OptBytes(payload, tags::kSignatureData));
  if (!sig) return Fail(reason::kMissingData, "kmip: Signature Verify needs Signature Data");
  req["Signature"] = Base64Encode(*sig);
  return Validity("Verify", req, "KMSInvalidSignatureException", uid, ctx);
}

StatusOr<Item> KmipApi::Mac(bool verify, const Item& payload, Context& ctx) {
  ASSIGN_OR_RETURN(std::string uid, Uid(payload, ctx));
  if (const Item* cp = payload.FindItem(tags::kCryptographicParameters)) {
    ASSIGN_OR_RETURN(auto alg, OptEnum(*cp, tags::kCryptographicAlgorithm));
    if (alg && *alg != kAlgHmacSha256) return Fail(reason::kFeatureNotSupported, "kmip: MAC uses HMAC-SHA256 (9) only");
  }
  ASSIGN_OR_RETURN(auto data, OptBytes(payload, tags::kData));
  if (!data || data->empty()) return Fail(reason::kMissingData, "kmip: Data is required");
  json req = {{"KeyId", uid}, {"Message", Base64Encode(*data)}, {"MacAlgorithm", "HMAC_SHA_256"}};
  if (!verify) {
    ASSIGN_OR_RETURN(json r, Service("GenerateMac", req, ctx, false));
    ASSIGN_OR_RETURN(Bytes mac, Base64Decode(r["Mac"].get<std::string>()));
    return Item::Structure(tags::kResponsePayload,
                           {Item::TextString(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kMacData, mac)});
  }
  ASSIGN_OR_RETURN(auto mac, OptBytes(payload, tags::kMacData));
  if (!mac) return Fail(reason::kMissingData, "kmip: MAC Verify needs MAC Data");
  req["Mac"] = Base64Encode(*mac);
  return Validity("VerifyMac", req, "KMSInvalidMacException", uid, ctx);
}

}  // namespace custos::kmip
