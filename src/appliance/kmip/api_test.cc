// Tests for the KMIP server's operations (kmip/api.h) against a real trusted core (in process)
// and SQLite store: every operation in KMIP 1.4, the 1.2 and 2.0 encodings where they differ,
// the lifecycle and its refusals (unknown object, wrong state, revoked, destroyed), the key
// policy, KMIP objects as KMS keys (and the reserved kmip: tags), malformed messages, the audit
// entries (principal, outcome, never a plaintext). The TLS transport and PyKMIP are in
// tests/kmip.
#include "appliance/kmip/api.h"

#include "appliance/enclave/core_testing.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "protocol/kmip/message.h"
#include "tests/testing/testing.h"

namespace custos::kmip {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr ProtocolVersion k14{1, 4}, k12{1, 2}, k20{2, 0};

Item Text(Tag t, std::string_view s) { return Item::TextString(t, s); }
Item Enum(Tag t, uint32_t v) { return Item::Enumeration(t, v); }
Item Attr1(std::string_view name, Item value) {
  return EncodeAttribute1(Attribute{std::string(name), 0, Retag(value, tags::kAttributeValue)});
}
Item Name1(std::string_view name) {
  return Attr1("Name", Item::Structure(0, {Text(tags::kNameValue, name), Enum(tags::kNameType, 1)}));
}

// Result is one batch item's answer.
struct Result {
  uint32_t status = 99, reason = 0;
  std::string message;
  std::optional<Item> payload;
  const Item* Find(Tag t) const { return payload ? payload->FindItem(t) : nullptr; }
  std::string Text(Tag t) const {
    const Item* i = Find(t);
    return i ? std::string(i->AsTextString().value()) : "";
  }
  Bytes Data(Tag t) const {
    const Item* i = Find(t);
    if (!i) return {};
    ByteSpan b = i->AsByteString().value();
    return Bytes(b.begin(), b.end());
  }
};

class KmipApiTest : public enclave::CoreFixture {
 protected:
  void SetUp() override {
    CoreFixture::SetUp();
    core_ = NewCore();
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kInit, {}).status());
    auto st = store::OpenSqliteStore(dir_ + "/custos.db");
    ASSERT_OK(st.status());
    store_ = std::move(*st);
    enclave::EnclaveCore* core = core_.get();
    service_ = std::make_unique<kms::KmsService>(
        store_.get(), [core](ecall::Call c, std::vector<Bytes> a) { return enclave::Call(*core, c, std::move(a)); },
        kms::ServiceOptions{});
    ASSERT_OK(service_->Load());
    kms::AuditSink sink = [this](const audit::Entry& e, bool durable) {
      json j = e.ToJson();
      j["durable"] = durable;
      audit_.push_back(j);
      return Status::Ok();
    };
    api_ = std::make_unique<KmipApi>(service_.get(), sink, KmipApiOptions{});
  }

  // Send sends one message of batch items {operation, payload items} and returns the answers.
  std::vector<Result> SendBatch(const std::vector<std::pair<uint32_t, std::vector<Item>>>& ops,
                                ProtocolVersion v = k14, const std::string& client = "app1") {
    std::vector<Item> message = {Item::Structure(
        tags::kRequestHeader, {EncodeVersion(v), Item::Integer(tags::kBatchCount, static_cast<int32_t>(ops.size()))})};
    uint8_t id = 0;
    for (const auto& [op, items] : ops) {
      std::vector<Item> b = {Enum(tags::kOperation, op)};
      if (ops.size() > 1) b.push_back(Item::ByteString(tags::kUniqueBatchItemId, Bytes{++id}));
      b.push_back(Item::Structure(tags::kRequestPayload, items));
      message.push_back(Item::Structure(tags::kBatchItem, std::move(b)));
    }
    return Parse(api_->Handle(Encode(Item::Structure(tags::kRequestMessage, std::move(message))), {client, "10.1.2.3:999"}));
  }
  Result Send(uint32_t op, std::vector<Item> items, ProtocolVersion v = k14, const std::string& client = "app1") {
    auto r = SendBatch({{op, std::move(items)}}, v, client);
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? Result{} : r[0];
  }
  std::vector<Result> Parse(const Bytes& response) {
    auto item = Decode(response);
    EXPECT_TRUE(item.ok()) << item.status().ToString();
    std::vector<Result> out;
    if (!item.ok()) return out;
    EXPECT_EQ(item->tag(), tags::kResponseMessage);
    last_version_ = DecodeVersion(*item->FindItem(tags::kResponseHeader)->FindItem(tags::kProtocolVersion)).value();
    for (const Item* b : item->FindItems(tags::kBatchItem)) {
      Result r;
      r.status = b->FindItem(tags::kResultStatus)->AsEnumeration().value();
      if (const Item* x = b->FindItem(tags::kResultReason)) r.reason = x->AsEnumeration().value();
      if (const Item* x = b->FindItem(tags::kResultMessage)) r.message = std::string(x->AsTextString().value());
      if (const Item* x = b->FindItem(tags::kResponsePayload)) r.payload = *x;
      out.push_back(std::move(r));
    }
    return out;
  }

  std::string CreateAes(int bits = 256, std::string_view name = "", ProtocolVersion v = k14) {
    std::vector<Item> attrs;
    std::vector<Item> payload = {Enum(tags::kObjectType, 2)};
    if (v.v2()) {
      std::vector<Item> a = {Enum(tags::kCryptographicAlgorithm, 3), Item::Integer(tags::kCryptographicLength, bits),
                             Item::Integer(tags::kCryptographicUsageMask, 12)};
      if (!name.empty()) a.push_back(Item::Structure(tags::kName, {Text(tags::kNameValue, name), Enum(tags::kNameType, 1)}));
      payload.push_back(Item::Structure(tags::kAttributes, a));
    } else {
      attrs = {Attr1("Cryptographic Algorithm", Enum(0, 3)), Attr1("Cryptographic Length", Item::Integer(0, bits)),
               Attr1("Cryptographic Usage Mask", Item::Integer(0, 12))};
      if (!name.empty()) attrs.push_back(Name1(name));
      payload.push_back(Item::Structure(tags::kTemplateAttribute, attrs));
    }
    Result r = Send(op::kCreate, payload, v);
    EXPECT_EQ(r.status, 0u) << r.message;
    return r.Text(tags::kUniqueIdentifier);
  }
  std::string ActiveAes(int bits = 256) {
    std::string uid = CreateAes(bits);
    EXPECT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, uid)}).status, 0u);
    return uid;
  }
  // Attrs reads every attribute of `uid` (1.4) by name.
  std::map<std::string, Item> Attrs(const std::string& uid) {
    Result r = Send(op::kGetAttributes, {Text(tags::kUniqueIdentifier, uid)});
    std::map<std::string, Item> out;
    EXPECT_EQ(r.status, 0u) << r.message;
    if (!r.payload) return out;
    for (const Item* a : r.payload->FindItems(tags::kAttribute)) {
      Attribute at = DecodeAttribute1(*a).value();
      out.emplace(at.name, at.value);
    }
    return out;
  }
  uint32_t State(const std::string& uid) { return Attrs(uid).at("State").AsEnumeration().value(); }
  std::vector<Item> GcmParams(int tag = 16) {
    return {Item::Structure(tags::kCryptographicParameters, {Enum(tags::kBlockCipherMode, 9), Enum(tags::kCryptographicAlgorithm, 3),
                                                            Item::Integer(tags::kTagLength, tag)})};
  }
  Result Encrypt(const std::string& uid, std::string_view plaintext, ProtocolVersion v = k14, std::vector<Item> extra = {}) {
    std::vector<Item> p = {Text(tags::kUniqueIdentifier, uid)};
    for (Item& i : extra) p.push_back(i);
    p.push_back(Item::ByteString(tags::kData, AsBytes(plaintext)));
    return Send(op::kEncrypt, p, v);
  }
  kms::KmsOutcome Kms(std::string_view op, const json& req) {
    return service_->Execute(op, req, kms::Caller{"arn:aws:iam::000000000000:user/alice", "000000000000", "AK", false});
  }

  std::unique_ptr<enclave::EnclaveCore> core_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<kms::KmsService> service_;
  std::unique_ptr<KmipApi> api_;
  std::vector<json> audit_;
  ProtocolVersion last_version_;
};

TEST_F(KmipApiTest, DiscoverVersionsAnswersWhatTheServerSpeaks) {
  Result all = Send(op::kDiscoverVersions, {});
  ASSERT_EQ(all.status, 0u);
  std::vector<std::string> versions;
  for (const Item* v : all.payload->FindItems(tags::kProtocolVersion)) versions.push_back(DecodeVersion(*v)->ToString());
  EXPECT_THAT(versions, ::testing::ElementsAre("2.0", "1.4", "1.3", "1.2", "1.1", "1.0"));
  // The client's list, intersected, in the server's order of preference.
  Result some = Send(op::kDiscoverVersions, {EncodeVersion({1, 2}), EncodeVersion({3, 0}), EncodeVersion({2, 0})});
  versions.clear();
  for (const Item* v : some.payload->FindItems(tags::kProtocolVersion)) versions.push_back(DecodeVersion(*v)->ToString());
  EXPECT_THAT(versions, ::testing::ElementsAre("2.0", "1.2"));
  // Query lists the operations and the object type.
  Result q = Send(op::kQuery, {Enum(tags::kQueryFunction, 1), Enum(tags::kQueryFunction, 2), Enum(tags::kQueryFunction, 3)});
  ASSERT_EQ(q.status, 0u);
  std::vector<uint32_t> ops;
  for (const Item* o : q.payload->FindItems(tags::kOperation)) ops.push_back(o->AsEnumeration().value());
  for (uint32_t o : {op::kCreate, op::kGet, op::kLocate, op::kEncrypt, op::kDecrypt, op::kRevoke, op::kDestroy, op::kMac})
    EXPECT_THAT(ops, ::testing::Contains(o));
  EXPECT_EQ(q.Text(tags::kVendorIdentification), "custos");
}

TEST_F(KmipApiTest, CreateActivateEncryptDecryptGcmAndCbc) {
  std::string uid = CreateAes(256, "orders");
  ASSERT_FALSE(uid.empty());
  auto a = Attrs(uid);
  EXPECT_EQ(a.at("State").AsEnumeration().value(), 1u);  // Pre-Active
  EXPECT_EQ(a.at("Cryptographic Algorithm").AsEnumeration().value(), 3u);
  EXPECT_EQ(a.at("Cryptographic Length").AsInteger().value(), 256);
  EXPECT_EQ(a.at("Object Type").AsEnumeration().value(), 2u);
  EXPECT_EQ(a.at("Name").FindItem(tags::kNameValue)->AsTextString().value(), "orders");
  // Pre-Active: no cryptography yet.
  Result early = Encrypt(uid, "too early", k14, GcmParams());
  EXPECT_EQ(early.status, 1u);
  EXPECT_EQ(early.reason, reason::kPermissionDenied);
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, uid)}).status, 0u);
  EXPECT_EQ(State(uid), 2u);
  // Activate twice: only a Pre-Active object can be.
  EXPECT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, uid)}).reason, reason::kPermissionDenied);

  // GCM, server-made IV, AAD, separate tag (1.4).
  Item aad = Item::ByteString(tags::kAuthenticatedEncryptionAdditionalData, AsBytes("hdr"));
  std::vector<Item> extra = GcmParams();
  extra.push_back(aad);
  Result enc = Encrypt(uid, "secret payload 1", k14, extra);
  ASSERT_EQ(enc.status, 0u) << enc.message;
  Bytes ct = enc.Data(tags::kData), iv = enc.Data(tags::kIvCounterNonce), tag = enc.Data(tags::kAuthenticatedEncryptionTag);
  EXPECT_EQ(ct.size(), 16u);
  EXPECT_EQ(iv.size(), 12u);
  EXPECT_EQ(tag.size(), 16u);
  EXPECT_NE(ct, ToBytes("secret payload 1"));
  auto decrypt = [&](Bytes c, Bytes t, std::string_view with_aad) {
    std::vector<Item> p = {Text(tags::kUniqueIdentifier, uid)};
    for (Item& i : GcmParams()) p.push_back(i);
    p.push_back(Item::ByteString(tags::kData, c));
    p.push_back(Item::ByteString(tags::kIvCounterNonce, iv));
    p.push_back(Item::ByteString(tags::kAuthenticatedEncryptionAdditionalData, AsBytes(with_aad)));
    p.push_back(Item::ByteString(tags::kAuthenticatedEncryptionTag, t));
    return Send(op::kDecrypt, p);
  };
  Result dec = decrypt(ct, tag, "hdr");
  ASSERT_EQ(dec.status, 0u) << dec.message;
  EXPECT_EQ(dec.Data(tags::kData), ToBytes("secret payload 1"));
  Bytes bad_tag = tag;
  bad_tag[0] ^= 1;
  Result tampered = decrypt(ct, bad_tag, "hdr");
  EXPECT_EQ(tampered.reason, reason::kCryptographicFailure) << tampered.message;
  EXPECT_EQ(decrypt(ct, tag, "other").reason, reason::kCryptographicFailure);

  // CBC with PKCS5 padding and a client IV.
  Bytes civ(16, 7);
  std::vector<Item> cbc = {Item::Structure(tags::kCryptographicParameters, {Enum(tags::kBlockCipherMode, 1), Enum(tags::kPaddingMethod, 3)}),
                           Item::ByteString(tags::kIvCounterNonce, civ)};
  Result c = Encrypt(uid, "cbc text", k14, cbc);
  ASSERT_EQ(c.status, 0u) << c.message;
  EXPECT_EQ(c.Data(tags::kData).size(), 16u);
  EXPECT_EQ(c.Find(tags::kIvCounterNonce), nullptr);  // the client's IV is not echoed
  std::vector<Item> p = {Text(tags::kUniqueIdentifier, uid), cbc[0], Item::ByteString(tags::kData, c.Data(tags::kData)), cbc[1]};
  Result cd = Send(op::kDecrypt, p);
  ASSERT_EQ(cd.status, 0u) << cd.message;
  EXPECT_EQ(cd.Data(tags::kData), ToBytes("cbc text"));
  // GCM with additional data is refused for CBC; an unsupported mode names itself.
  cbc.push_back(aad);
  EXPECT_EQ(Encrypt(uid, "x", k14, cbc).reason, reason::kInvalidField);
  Result ecb = Encrypt(uid, "x", k14, {Item::Structure(tags::kCryptographicParameters, {Enum(tags::kBlockCipherMode, 2)})});
  EXPECT_EQ(ecb.reason, reason::kFeatureNotSupported);
  EXPECT_THAT(ecb.message, HasSubstr("Block Cipher Mode 2"));
}

TEST_F(KmipApiTest, Kmip12CarriesTheGcmTagAfterTheCiphertextAnd128BitKeysDiffer) {
  std::string uid = ActiveAes(128);
  Result enc = Encrypt(uid, "sixteen byte msg", k12, GcmParams());
  ASSERT_EQ(enc.status, 0u) << enc.message;
  EXPECT_EQ(last_version_, k12);
  EXPECT_EQ(enc.Data(tags::kData).size(), 32u);  // ciphertext || tag
  EXPECT_EQ(enc.Find(tags::kAuthenticatedEncryptionTag), nullptr);
  std::vector<Item> p = {Text(tags::kUniqueIdentifier, uid)};
  for (Item& i : GcmParams()) p.push_back(i);
  p.push_back(Item::ByteString(tags::kData, enc.Data(tags::kData)));
  p.push_back(Item::ByteString(tags::kIvCounterNonce, enc.Data(tags::kIvCounterNonce)));
  Result dec = Send(op::kDecrypt, p, k12);
  ASSERT_EQ(dec.status, 0u) << dec.message;
  EXPECT_EQ(dec.Data(tags::kData), ToBytes("sixteen byte msg"));
  EXPECT_EQ(Attrs(uid).at("Cryptographic Length").AsInteger().value(), 128);
  // Lengths other than 128 and 256 are refused at Create.
  Result bad = Send(op::kCreate, {Enum(tags::kObjectType, 2),
                                  Item::Structure(tags::kTemplateAttribute, {Attr1("Cryptographic Algorithm", Enum(0, 3)),
                                                                             Attr1("Cryptographic Length", Item::Integer(0, 192))})});
  EXPECT_EQ(bad.reason, reason::kInvalidField);
  EXPECT_THAT(bad.message, HasSubstr("128 or 256"));
}

TEST_F(KmipApiTest, Kmip20AttributesAreTaggedItems) {
  std::string uid = CreateAes(256, "v2-key", k20);
  ASSERT_FALSE(uid.empty());
  Result r = Send(op::kGetAttributes, {Text(tags::kUniqueIdentifier, uid), Enum(tags::kAttributeReference, tags::kState),
                                       Enum(tags::kAttributeReference, tags::kName)},
                  k20);
  ASSERT_EQ(r.status, 0u) << r.message;
  const Item* attrs = r.Find(tags::kAttributes);
  ASSERT_NE(attrs, nullptr);
  EXPECT_EQ(attrs->FindItem(tags::kState)->AsEnumeration().value(), 1u);
  EXPECT_EQ(attrs->FindItem(tags::kName)->FindItem(tags::kNameValue)->AsTextString().value(), "v2-key");
  EXPECT_EQ(attrs->FindItem(tags::kCryptographicLength), nullptr);  // not asked for
  Result list = Send(op::kGetAttributeList, {Text(tags::kUniqueIdentifier, uid)}, k20);
  std::vector<uint32_t> refs;
  for (const Item* i : list.payload->FindItems(tags::kAttributeReference)) refs.push_back(i->AsEnumeration().value());
  EXPECT_THAT(refs, ::testing::Contains(tags::kCryptographicAlgorithm));
  // Set Attribute (2.0) of an Object Group, read back in 1.4.
  Result set = Send(op::kSetAttribute,
                    {Text(tags::kUniqueIdentifier, uid), Item::Structure(tags::kNewAttribute, {Text(tags::kObjectGroup, "db")})}, k20);
  ASSERT_EQ(set.status, 0u) << set.message;
  EXPECT_EQ(Attrs(uid).at("Object Group").AsTextString().value(), "db");
}

TEST_F(KmipApiTest, LifecycleRefusalsRevokeAndDestroy) {
  std::string uid = ActiveAes();
  Result destroy_active = Send(op::kDestroy, {Text(tags::kUniqueIdentifier, uid)});
  EXPECT_EQ(destroy_active.reason, reason::kPermissionDenied);
  EXPECT_THAT(destroy_active.message, HasSubstr("revoke it first"));
  Item reason_unspecified = Item::Structure(tags::kRevocationReason, {Enum(tags::kRevocationReasonCode, 1)});
  ASSERT_EQ(Send(op::kRevoke, {Text(tags::kUniqueIdentifier, uid), reason_unspecified}).status, 0u);
  EXPECT_EQ(State(uid), 3u);  // Deactivated
  EXPECT_TRUE(Attrs(uid).contains("Deactivation Date"));
  Result revoked = Encrypt(uid, "after revoke", k14, GcmParams());
  EXPECT_EQ(revoked.reason, reason::kPermissionDenied) << revoked.message;
  ASSERT_EQ(Send(op::kDestroy, {Text(tags::kUniqueIdentifier, uid)}).status, 0u);
  EXPECT_EQ(State(uid), 5u);  // Destroyed, until the deletion window ends
  EXPECT_EQ(Encrypt(uid, "after destroy", k14, GcmParams()).reason, reason::kPermissionDenied);
  EXPECT_EQ(Send(op::kDestroy, {Text(tags::kUniqueIdentifier, uid)}).reason, reason::kPermissionDenied);
  // KMIP 2.0 has a reason of its own for it: Wrong Key Lifecycle State (0x43).
  EXPECT_EQ(Send(op::kDestroy, {Text(tags::kUniqueIdentifier, uid)}, k20).reason, 0x43u);
  // The KMS API sees the same key pending deletion, with its 7-day window.
  kms::KmsOutcome d = Kms("DescribeKey", {{"KeyId", uid}});
  ASSERT_TRUE(d.ok()) << d.message;
  EXPECT_EQ(d.response["KeyMetadata"]["KeyState"], "PendingDeletion");
  EXPECT_EQ(d.response["KeyMetadata"]["PendingDeletionWindowInDays"], 7);

  // A compromise is remembered through destruction.
  std::string other = ActiveAes();
  Item compromise = Item::Structure(tags::kRevocationReason, {Enum(tags::kRevocationReasonCode, 2)});
  ASSERT_EQ(Send(op::kRevoke, {Text(tags::kUniqueIdentifier, other), compromise}).status, 0u);
  EXPECT_EQ(State(other), 4u);
  ASSERT_EQ(Send(op::kDestroy, {Text(tags::kUniqueIdentifier, other)}).status, 0u);
  EXPECT_EQ(State(other), 6u);

  // Unknown objects, every operation.
  const std::string unknown = "00000000-0000-4000-8000-000000000000";
  for (uint32_t o : {op::kGetAttributes, op::kActivate, op::kDestroy, op::kGet}) {
    Result r = Send(o, {Text(tags::kUniqueIdentifier, unknown)});
    EXPECT_EQ(r.reason, reason::kItemNotFound) << OperationName(o) << ": " << r.message;
  }
  EXPECT_EQ(Encrypt(unknown, "x", k14, GcmParams()).reason, reason::kItemNotFound);
}

TEST_F(KmipApiTest, GetRefusesKeyMaterialAndSaysWhy) {
  std::string uid = ActiveAes();
  Result r = Send(op::kGet, {Text(tags::kUniqueIdentifier, uid)});
  EXPECT_EQ(r.status, 1u);
  EXPECT_EQ(r.reason, reason::kPermissionDenied);
  EXPECT_THAT(r.message, HasSubstr("does not export keys"));
  EXPECT_FALSE(r.payload.has_value());
}

TEST_F(KmipApiTest, LocateAndCustomAttributes) {
  std::string a = CreateAes(256, "alpha"), b = CreateAes(128, "beta");
  ActiveAes();
  auto locate = [&](std::vector<Item> attrs, std::vector<Item> more = {}) {
    std::vector<Item> p = std::move(more);
    for (Item& i : attrs) p.push_back(i);
    Result r = Send(op::kLocate, p);
    EXPECT_EQ(r.status, 0u) << r.message;
    std::vector<std::string> ids;
    if (r.payload)
      for (const Item* i : r.payload->FindItems(tags::kUniqueIdentifier)) ids.emplace_back(i->AsTextString().value());
    return ids;
  };
  EXPECT_THAT(locate({Name1("beta")}), ::testing::ElementsAre(b));
  EXPECT_THAT(locate({Attr1("State", Enum(0, 1))}), ::testing::UnorderedElementsAre(a, b));
  EXPECT_THAT(locate({Attr1("Cryptographic Length", Item::Integer(0, 128))}), ::testing::ElementsAre(b));
  EXPECT_EQ(locate({}).size(), 3u);
  EXPECT_EQ(locate({}, {Item::Integer(tags::kMaximumItems, 2)}).size(), 2u);
  EXPECT_TRUE(locate({Name1("nobody")}).empty());

  // Custom attributes: add, refuse a second add, modify, delete, refuse deleting what is gone.
  Item owner = Attr1("x-owner", Text(0, "team-a"));
  ASSERT_EQ(Send(op::kAddAttribute, {Text(tags::kUniqueIdentifier, a), owner}).status, 0u);
  EXPECT_EQ(Attrs(a).at("x-owner").AsTextString().value(), "team-a");
  EXPECT_EQ(Send(op::kAddAttribute, {Text(tags::kUniqueIdentifier, a), owner}).reason, reason::kIllegalOperation);
  EXPECT_THAT(locate({Attr1("x-owner", Text(0, "team-a"))}), ::testing::ElementsAre(a));
  ASSERT_EQ(Send(op::kModifyAttribute, {Text(tags::kUniqueIdentifier, a), Attr1("x-owner", Text(0, "team-b"))}).status, 0u);
  EXPECT_EQ(Attrs(a).at("x-owner").AsTextString().value(), "team-b");
  ASSERT_EQ(Send(op::kDeleteAttribute, {Text(tags::kUniqueIdentifier, a), Text(tags::kAttributeName, "x-owner")}).status, 0u);
  EXPECT_FALSE(Attrs(a).contains("x-owner"));
  EXPECT_EQ(Send(op::kDeleteAttribute, {Text(tags::kUniqueIdentifier, a), Text(tags::kAttributeName, "x-owner")}).reason,
            reason::kItemNotFound);
  // The server's own attributes are not the client's to change.
  Result st = Send(op::kModifyAttribute, {Text(tags::kUniqueIdentifier, a), Attr1("State", Enum(0, 2))});
  EXPECT_EQ(st.reason, reason::kPermissionDenied);
}

TEST_F(KmipApiTest, KmipObjectsAreKmsKeysAndTheReservedTagsAreKmips) {
  std::string uid = ActiveAes();
  // The KMS API encrypts and decrypts with the KMIP-made key.
  kms::KmsOutcome enc = Kms("Encrypt", {{"KeyId", uid}, {"Plaintext", Base64Encode(AsBytes("via kms"))}});
  ASSERT_TRUE(enc.ok()) << enc.message;
  kms::KmsOutcome dec = Kms("Decrypt", {{"CiphertextBlob", enc.response["CiphertextBlob"]}});
  ASSERT_TRUE(dec.ok()) << dec.message;
  EXPECT_EQ(dec.response["Plaintext"], Base64Encode(AsBytes("via kms")));
  // KMS callers see the kmip: tags but cannot set or remove them.
  kms::KmsOutcome tags = Kms("ListResourceTags", {{"KeyId", uid}});
  EXPECT_THAT(tags.response.dump(), HasSubstr("kmip:length"));
  kms::KmsOutcome set = Kms("TagResource", {{"KeyId", uid}, {"Tags", {{{"TagKey", "kmip:state"}, {"TagValue", "PreActive"}}}}});
  EXPECT_EQ(set.error_type, "ValidationException");
  EXPECT_THAT(set.message, HasSubstr("reserved"));
  EXPECT_EQ(Kms("UntagResource", {{"KeyId", uid}, {"TagKeys", {"kmip:state"}}}).error_type, "ValidationException");
  // A key made through the KMS API is an Active object to KMIP; DisableKey makes it Deactivated.
  kms::KmsOutcome made = Kms("CreateKey", json::object());
  std::string kid = made.response["KeyMetadata"]["KeyId"];
  EXPECT_EQ(State(kid), 2u);
  ASSERT_TRUE(Kms("DisableKey", {{"KeyId", kid}}).ok());
  EXPECT_EQ(State(kid), 3u);
}

TEST_F(KmipApiTest, TheKeyPolicyDecidesForTheCertificatesName) {
  std::string uid = ActiveAes();
  // A policy that lets only user/kmip/app1 encrypt.
  json policy = {{"Version", "2012-10-17"},
                 {"Statement",
                  {{{"Effect", "Allow"}, {"Principal", {{"AWS", "arn:aws:iam::000000000000:root"}}}, {"Action", "kms:*"}, {"Resource", "*"}},
                   {{"Effect", "Deny"},
                    {"Principal", {{"AWS", "arn:aws:iam::000000000000:user/kmip/intruder"}}},
                    {"Action", "kms:Encrypt"},
                    {"Resource", "*"}}}}};
  ASSERT_TRUE(Kms("PutKeyPolicy", {{"KeyId", uid}, {"PolicyName", "default"}, {"Policy", policy.dump()}}).ok());
  EXPECT_EQ(Encrypt(uid, "ok", k14, GcmParams()).status, 0u);
  std::vector<Item> p = {Text(tags::kUniqueIdentifier, uid)};
  for (Item& i : GcmParams()) p.push_back(i);
  p.push_back(Item::ByteString(tags::kData, AsBytes("no")));
  Result denied = Send(op::kEncrypt, p, k14, "intruder");
  EXPECT_EQ(denied.reason, reason::kPermissionDenied);
  EXPECT_THAT(denied.message, HasSubstr("user/kmip/intruder"));
}

TEST_F(KmipApiTest, MacAndMacVerify) {
  Result made = Send(op::kCreate, {Enum(tags::kObjectType, 2),
                                   Item::Structure(tags::kTemplateAttribute, {Attr1("Cryptographic Algorithm", Enum(0, 9)),
                                                                              Attr1("Cryptographic Usage Mask", Item::Integer(0, 0x180))})});
  ASSERT_EQ(made.status, 0u) << made.message;
  std::string uid = made.Text(tags::kUniqueIdentifier);
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, uid)}).status, 0u);
  Result mac = Send(op::kMac, {Text(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kData, AsBytes("message"))});
  ASSERT_EQ(mac.status, 0u) << mac.message;
  Bytes m = mac.Data(tags::kMacData);
  EXPECT_EQ(m.size(), 32u);
  Result again = Send(op::kMac, {Text(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kData, AsBytes("message"))});
  EXPECT_EQ(again.Data(tags::kMacData), m);
  auto verify = [&](std::string_view data, const Bytes& mac_data) {
    Result r = Send(op::kMacVerify, {Text(tags::kUniqueIdentifier, uid), Item::ByteString(tags::kData, AsBytes(data)),
                                     Item::ByteString(tags::kMacData, mac_data)});
    EXPECT_EQ(r.status, 0u) << r.message;
    return r.Find(tags::kValidityIndicator) ? r.Find(tags::kValidityIndicator)->AsEnumeration().value() : 0u;
  };
  EXPECT_EQ(verify("message", m), 1u);
  EXPECT_EQ(verify("massage", m), 2u);
  // An AES key does not MAC.
  std::string aes = ActiveAes();
  EXPECT_EQ(Send(op::kMac, {Text(tags::kUniqueIdentifier, aes), Item::ByteString(tags::kData, AsBytes("m"))}).reason,
            reason::kIllegalOperation);
}

TEST_F(KmipApiTest, KeyPairSignVerifyAndPublicKeyGet) {
  Item common = Item::Structure(tags::kCommonTemplateAttribute, {Attr1("Cryptographic Algorithm", Enum(0, 6)),
                                                                 Attr1("Cryptographic Length", Item::Integer(0, 256))});
  Item priv = Item::Structure(tags::kPrivateKeyTemplateAttribute, {Name1("signer"), Attr1("Cryptographic Usage Mask", Item::Integer(0, 1))});
  Item pub = Item::Structure(tags::kPublicKeyTemplateAttribute, {Name1("signer-pub"), Attr1("Cryptographic Usage Mask", Item::Integer(0, 2))});
  Result made = Send(op::kCreateKeyPair, {common, priv, pub});
  ASSERT_EQ(made.status, 0u) << made.message;
  std::string sk = made.Text(tags::kPrivateKeyUniqueIdentifier), pk = made.Text(tags::kPublicKeyUniqueIdentifier);
  EXPECT_EQ(pk, sk + "/public");
  EXPECT_EQ(Attrs(sk).at("Object Type").AsEnumeration().value(), 4u);
  EXPECT_EQ(Attrs(pk).at("Object Type").AsEnumeration().value(), 3u);
  EXPECT_EQ(Attrs(pk).at("Name").FindItem(tags::kNameValue)->AsTextString().value(), "signer-pub");
  EXPECT_EQ(State(pk), 1u);
  // One state for the pair: activating either activates both; the second Activate succeeds.
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, sk)}).status, 0u);
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, pk)}).status, 0u);
  EXPECT_EQ(State(pk), 2u);
  Item params = Item::Structure(tags::kCryptographicParameters, {Enum(tags::kDigitalSignatureAlgorithm, 0x0E)});
  Result sig = Send(op::kSign, {Text(tags::kUniqueIdentifier, sk), params, Item::ByteString(tags::kData, AsBytes("to be signed"))});
  ASSERT_EQ(sig.status, 0u) << sig.message;
  Bytes der = sig.Data(tags::kSignatureData);
  EXPECT_GE(der.size(), 8u);
  auto verify = [&](const std::string& uid, std::string_view data) {
    Result r = Send(op::kSignatureVerify, {Text(tags::kUniqueIdentifier, uid), params, Item::ByteString(tags::kData, AsBytes(data)),
                                           Item::ByteString(tags::kSignatureData, der)});
    EXPECT_EQ(r.status, 0u) << r.message;
    return r.Find(tags::kValidityIndicator) ? r.Find(tags::kValidityIndicator)->AsEnumeration().value() : 0u;
  };
  EXPECT_EQ(verify(pk, "to be signed"), 1u);
  EXPECT_EQ(verify(sk, "to be signed"), 1u);
  EXPECT_EQ(verify(pk, "to be signeD"), 2u);
  // The public key signs nothing; its Get answers an X.509 SubjectPublicKeyInfo.
  EXPECT_EQ(Send(op::kSign, {Text(tags::kUniqueIdentifier, pk), Item::ByteString(tags::kData, AsBytes("x"))}).reason,
            reason::kIllegalOperation);
  Result got = Send(op::kGet, {Text(tags::kUniqueIdentifier, pk)});
  ASSERT_EQ(got.status, 0u) << got.message;
  EXPECT_EQ(got.Find(tags::kObjectType)->AsEnumeration().value(), 3u);
  const Item* block = got.Find(tags::kPublicKey)->FindItem(tags::kKeyBlock);
  EXPECT_EQ(block->FindItem(tags::kKeyFormatType)->AsEnumeration().value(), 5u);
  ByteSpan spki = block->FindItem(tags::kKeyValue)->FindItem(tags::kKeyMaterial)->AsByteString().value();
  kms::KmsOutcome kp = Kms("GetPublicKey", {{"KeyId", sk}});
  EXPECT_EQ(kp.response["PublicKey"], Base64Encode(spki));
  EXPECT_EQ(Send(op::kGet, {Text(tags::kUniqueIdentifier, sk)}).reason, reason::kPermissionDenied);
  // Locate finds both halves by type.
  Result loc = Send(op::kLocate, {Attr1("Object Type", Enum(0, 3))});
  ASSERT_TRUE(loc.payload);
  EXPECT_EQ(loc.payload->FindItems(tags::kUniqueIdentifier).size(), 1u);
  EXPECT_EQ(loc.Text(tags::kUniqueIdentifier), pk);
  // "/public" of a symmetric key is no object.
  std::string aes = ActiveAes();
  EXPECT_EQ(Send(op::kGetAttributes, {Text(tags::kUniqueIdentifier, aes + "/public")}).reason, reason::kItemNotFound);
  // RSA is not made.
  Item rsa = Item::Structure(tags::kCommonTemplateAttribute, {Attr1("Cryptographic Algorithm", Enum(0, 4)),
                                                              Attr1("Cryptographic Length", Item::Integer(0, 2048))});
  EXPECT_EQ(Send(op::kCreateKeyPair, {rsa}).reason, reason::kFeatureNotSupported);
}

TEST_F(KmipApiTest, RegisterStoresTheClientsKeyAsGiven) {
  Bytes key = crypto::RandomBytes(16);
  auto reg = [&](uint32_t alg, ByteSpan material, std::vector<Item> attrs = {}) {
    Item block = Item::Structure(tags::kKeyBlock, {Enum(tags::kKeyFormatType, 1),
                                                   Item::Structure(tags::kKeyValue, {Item::ByteString(tags::kKeyMaterial, material)}),
                                                   Enum(tags::kCryptographicAlgorithm, alg),
                                                   Item::Integer(tags::kCryptographicLength, static_cast<int32_t>(material.size() * 8))});
    return Send(op::kRegister, {Enum(tags::kObjectType, 2), Item::Structure(tags::kTemplateAttribute, attrs),
                                Item::Structure(tags::kSymmetricKey, {block})});
  };
  Result r = reg(3, key, {Name1("imported")});
  ASSERT_EQ(r.status, 0u) << r.message;
  std::string uid = r.Text(tags::kUniqueIdentifier);
  EXPECT_EQ(State(uid), 1u);
  EXPECT_EQ(Attrs(uid).at("Cryptographic Length").AsInteger().value(), 128);
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, uid)}).status, 0u);
  Result enc = Encrypt(uid, "registered", k14, GcmParams());
  ASSERT_EQ(enc.status, 0u) << enc.message;
  // What the server made opens under the client's own copy of the key.
  auto gcm = crypto::AesGcm::Create(SecretBytes::CopyFrom(key));
  ASSERT_OK(gcm.status());
  auto opened = gcm->OpenSecret(enc.Data(tags::kIvCounterNonce), Concat({enc.Data(tags::kData), enc.Data(tags::kAuthenticatedEncryptionTag)}), {});
  ASSERT_OK(opened.status());
  EXPECT_EQ(Bytes(opened->Expose().begin(), opened->Expose().end()), ToBytes("registered"));
  // Not for the KMS API, never rotated.
  EXPECT_EQ(Kms("Encrypt", {{"KeyId", uid}, {"Plaintext", Base64Encode(AsBytes("x"))}}).error_type, "InvalidKeyUsageException");
  EXPECT_EQ(Kms("EnableKeyRotation", {{"KeyId", uid}}).error_type, "UnsupportedOperationException");
  // An HMAC key registered MACs as itself.
  Bytes hkey = crypto::RandomBytes(32);
  Result h = reg(9, hkey);
  ASSERT_EQ(h.status, 0u) << h.message;
  std::string hid = h.Text(tags::kUniqueIdentifier);
  ASSERT_EQ(Send(op::kActivate, {Text(tags::kUniqueIdentifier, hid)}).status, 0u);
  Result mac = Send(op::kMac, {Text(tags::kUniqueIdentifier, hid), Item::ByteString(tags::kData, AsBytes("m"))});
  crypto::Digest want = crypto::HmacSha256(hkey, AsBytes("m"));
  EXPECT_EQ(mac.Data(tags::kMacData), Bytes(want.begin(), want.end()));
  // Refusals: a length that does not match, a 192-bit AES key, a wrapped key, another object type.
  EXPECT_EQ(reg(3, crypto::RandomBytes(24)).reason, reason::kInvalidField);
  Result other = Send(op::kRegister, {Enum(tags::kObjectType, 7)});
  EXPECT_EQ(other.reason, reason::kFeatureNotSupported);
}

TEST_F(KmipApiTest, BatchWithIdPlaceholderAndStopOnError) {
  std::vector<Item> attrs = {Enum(tags::kObjectType, 2),
                             Item::Structure(tags::kTemplateAttribute, {Attr1("Cryptographic Algorithm", Enum(0, 3)),
                                                                        Attr1("Cryptographic Length", Item::Integer(0, 256))})};
  auto r = SendBatch({{op::kCreate, attrs}, {op::kActivate, {}}, {op::kDestroy, {}}, {op::kGetAttributes, {}}});
  ASSERT_EQ(r.size(), 4u);
  EXPECT_EQ(r[0].status, 0u);
  EXPECT_EQ(r[1].status, 0u);  // the ID Placeholder: the object item 1 created
  EXPECT_EQ(r[2].reason, reason::kPermissionDenied);  // an Active object is not destroyed
  EXPECT_EQ(r[3].status, 1u);  // not run: Stop is the default continuation option
  EXPECT_THAT(r[3].message, HasSubstr("not run"));
  EXPECT_EQ(State(r[0].Text(tags::kUniqueIdentifier)), 2u);
}

TEST_F(KmipApiTest, MalformedMessagesGetInvalidMessage) {
  auto one = [&](const Bytes& bytes) {
    auto r = Parse(api_->Handle(bytes, {"app1", "x"}));
    EXPECT_EQ(r.size(), 1u);
    return r.empty() ? Result{} : r[0];
  };
  EXPECT_EQ(one(Bytes{1, 2, 3}).reason, reason::kInvalidMessage);
  // Nested 40 deep: beyond the decoder's limit.
  Item deep = Item::Structure(tags::kRequestPayload);
  for (int i = 0; i < 40; ++i) deep = Item::Structure(tags::kRequestPayload, {deep});
  Result r = one(Encode(Item::Structure(tags::kRequestMessage, {deep})));
  EXPECT_EQ(r.reason, reason::kInvalidMessage);
  EXPECT_THAT(r.message, HasSubstr("nested"));
  // A Response Message sent as a request; a batch count that lies; an unsupported version.
  EXPECT_EQ(one(Encode(Item::Structure(tags::kResponseMessage))).reason, reason::kInvalidMessage);
  Item lie = Item::Structure(tags::kRequestMessage,
                             {Item::Structure(tags::kRequestHeader, {EncodeVersion(k14), Item::Integer(tags::kBatchCount, 2)}),
                              Item::Structure(tags::kBatchItem, {Enum(tags::kOperation, op::kQuery), Item::Structure(tags::kRequestPayload)})});
  Result batch = one(Encode(lie));
  EXPECT_THAT(batch.message, HasSubstr("Batch Count 2 but 1"));
  Result v = Send(op::kQuery, {}, {3, 0});
  EXPECT_EQ(v.reason, reason::kInvalidMessage);
  EXPECT_THAT(v.message, HasSubstr("3.0 is not supported"));
  Result unknown = Send(0x2A, {});
  EXPECT_EQ(unknown.reason, reason::kOperationNotSupported);
}

TEST_F(KmipApiTest, EveryOperationIsAuditedWithoutPlaintexts) {
  std::string uid = ActiveAes();
  audit_.clear();
  ASSERT_EQ(Encrypt(uid, "PLAINTEXT-MARKER-7", k14, GcmParams()).status, 0u);
  EXPECT_EQ(Send(op::kDestroy, {Text(tags::kUniqueIdentifier, uid)}).status, 1u);
  ASSERT_EQ(audit_.size(), 2u);
  EXPECT_EQ(audit_[0]["operation"], "KMIP Encrypt");
  EXPECT_EQ(audit_[0]["outcome"], "ok");
  EXPECT_EQ(audit_[0]["principal"], "arn:aws:iam::000000000000:user/kmip/app1");
  EXPECT_EQ(audit_[0]["key_id"], uid);
  EXPECT_EQ(audit_[0]["durable"], false);
  EXPECT_EQ(audit_[1]["operation"], "KMIP Destroy");
  EXPECT_EQ(audit_[1]["outcome"], "Permission Denied");
  EXPECT_EQ(audit_[1]["durable"], true);
  for (const json& e : audit_) EXPECT_THAT(e.dump(), Not(HasSubstr("PLAINTEXT-MARKER-7")));
}

}  // namespace
}  // namespace custos::kmip
