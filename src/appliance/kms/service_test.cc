// The KMS operations and the AWS JSON front end, in process: a real trusted core (EnclaveCore
// with the sim TEE, unsealed by kInit), a real SQLite store in a temporary directory, and
// requests signed with SigV4 as an SDK signs them. The same API driven by the AWS CLI, boto3
// and the JavaScript SDK against a real server is tests/conformance/.
#include "appliance/kms/service.h"

#include <atomic>
#include <chrono>
#include <regex>
#include <thread>
#include <set>

#include "appliance/enclave/core_testing.h"
#include "crypto/aead.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "appliance/kms/api.h"
#include "appliance/kms/policy.h"
#include "tests/testing/testing.h"
#include "tests/testing/forwarding_store.h"

namespace custos::kms {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;

class KmsServiceTest : public enclave::CoreFixture {
 protected:
  void SetUp() override {
    CoreFixture::SetUp();
    core_ = NewCore();
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kInit, {}).status());
    auto st = store::OpenSqliteStore(dir_ + "/custos.db");
    ASSERT_OK(st.status());
    store_ = std::move(*st);
    ServiceOptions o;
    o.now = [this] { return now_; };
    service_ = std::make_unique<KmsService>(store_.get(), CoreCall(), o);
    Rebuild();
  }

  CoreCall Caller() {
    return [this](ecall::Call c, std::vector<Bytes> a) { return enclave::Call(*core_, c, std::move(a)); };
  }

  void Rebuild() {
    ServiceOptions o;
    o.now = [this] { return now_; };
    service_ = std::make_unique<KmsService>(store_.get(), Caller(), o);
    ASSERT_OK(service_->Load());
  }

  KmsOutcome Run(std::string_view op, const json& req, const kms::Caller* who = nullptr) {
    return service_->Execute(op, req, who ? *who : alice_);
  }

  json Ok(std::string_view op, const json& req, const kms::Caller* who = nullptr) {
    KmsOutcome o = Run(op, req, who);
    EXPECT_TRUE(o.ok()) << op << ": " << o.error_type << ": " << o.message;
    return o.response;
  }

  std::string Err(std::string_view op, const json& req, const kms::Caller* who = nullptr) {
    KmsOutcome o = Run(op, req, who);
    EXPECT_FALSE(o.ok()) << op << " unexpectedly succeeded";
    return o.error_type;
  }

  std::string NewKey(const json& extra = json::object()) {
    json req = extra;
    json r = Ok("CreateKey", req);
    return r["KeyMetadata"]["KeyId"].get<std::string>();
  }

  static std::string B64(std::string_view s) { return Base64Encode(AsBytes(s)); }

  std::unique_ptr<enclave::EnclaveCore> core_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<KmsService> service_;
  int64_t now_ = 1'800'000'000;
  kms::Caller alice_{"arn:aws:iam::000000000000:user/alice", "000000000000", "CKIAALICE"};
  kms::Caller bob_{"arn:aws:iam::000000000000:user/bob", "000000000000", "CKIABOB"};
  kms::Caller mallory_{"arn:aws:iam::999999999999:user/mallory", "999999999999", "CKIAMAL"};
};

// The core's errors become AWS errors by reason, from one table: every reason has its row.
TEST(KmsCoreErrors, EveryCoreReasonHasAnAwsError) {
  EXPECT_EQ(CoreErrorFor(ecall::Reason::kNone), nullptr);
  std::set<std::string> types;
  for (uint16_t r = 1; r <= ecall::kMaxReason; ++r) {
    const CoreError* e = CoreErrorFor(static_cast<ecall::Reason>(r));
    ASSERT_NE(e, nullptr) << ecall::ReasonName(static_cast<ecall::Reason>(r)) << " has no AWS error";
    ASSERT_NE(AwsErrorType(e->error), nullptr);
    types.insert(AwsErrorType(e->error));
  }
  EXPECT_GE(types.size(), 6u);
}

// Every AWS error the service can answer has a name and a status in the one table.
TEST(KmsAwsErrors, EveryAwsErrorHasANameAndAStatus) {
  EXPECT_EQ(AwsErrorType(AwsError::kNone), nullptr);
  std::set<std::string> names;
  for (uint16_t e = 1; e <= kMaxAwsError; ++e) {
    const char* type = AwsErrorType(static_cast<AwsError>(e));
    ASSERT_NE(type, nullptr) << "AwsError " << e << " has no row";
    EXPECT_THAT(std::string(type), ::testing::EndsWith("Exception"));
    int http = AwsErrorHttpStatus(static_cast<AwsError>(e));
    EXPECT_TRUE(http == 400 || http == 500 || http == 503) << type;
    names.insert(type);
  }
  EXPECT_EQ(names.size(), kMaxAwsError) << "two AwsErrors share a name";
  EXPECT_STREQ(AwsErrorType(AwsError::kDependencyTimeout), "DependencyTimeoutException");
  EXPECT_EQ(AwsErrorHttpStatus(AwsError::kDependencyTimeout), 503);
  EXPECT_EQ(AwsErrorHttpStatus(AwsError::kInternal), 500);
}

TEST_F(KmsServiceTest, EncryptDecryptWithContextAndTheBlobNamesItsKey) {
  std::string id = NewKey({{"Description", "orders"}});
  json ctx = {{"tenant", "a"}, {"purpose", "test"}};
  json enc = Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("hello")}, {"EncryptionContext", ctx}});
  EXPECT_THAT(enc["KeyId"].get<std::string>(), HasSubstr(id));
  // Decrypt without a KeyId: the blob names its key.
  json dec = Ok("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}, {"EncryptionContext", ctx}});
  EXPECT_EQ(dec["Plaintext"], B64("hello"));
  EXPECT_THAT(dec["KeyId"].get<std::string>(), HasSubstr(id));
  // The context is authenticated.
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}), "InvalidCiphertextException");
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}, {"EncryptionContext", {{"tenant", "b"}, {"purpose", "test"}}}}),
            "InvalidCiphertextException");
  // Naming another key than the blob's.
  std::string other = NewKey();
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}, {"KeyId", other}, {"EncryptionContext", ctx}}),
            "IncorrectKeyException");
  // Tampered blobs: every byte position refused.
  Bytes blob = *Base64Decode(enc["CiphertextBlob"].get<std::string>());
  for (size_t i = 0; i < blob.size(); i += 7) {
    Bytes t = blob;
    t[i] ^= 0x01;
    std::string e = Err("Decrypt", {{"CiphertextBlob", Base64Encode(t)}, {"EncryptionContext", ctx}});
    EXPECT_TRUE(e == "InvalidCiphertextException" || e == "NotFoundException") << "byte " << i << ": " << e;
  }
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", "not base64!"}}), "SerializationException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", Base64Encode(Bytes(4097, 1))}}), "ValidationException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}}), "ValidationException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", 5}, {"Plaintext", B64("x")}}), "SerializationException");
}

TEST_F(KmsServiceTest, KeyStatesDisabledPendingDeletionCancelAndExpiry) {
  std::string id = NewKey();
  Ok("CreateAlias", {{"AliasName", "alias/orders"}, {"TargetKeyId", id}});
  json enc = Ok("Encrypt", {{"KeyId", "alias/orders"}, {"Plaintext", B64("x")}});
  Ok("DisableKey", {{"KeyId", id}});
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}), "DisabledException");
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}), "DisabledException");
  Ok("EnableKey", {{"KeyId", id}});
  EXPECT_EQ(Err("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 3}}), "ValidationException");
  EXPECT_EQ(Err("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 31}}), "ValidationException");
  json del = Ok("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}});
  EXPECT_EQ(del["KeyState"], "PendingDeletion");
  EXPECT_EQ(del["DeletionDate"].get<int64_t>(), now_ + 7 * 86400);
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}), "KMSInvalidStateException");
  EXPECT_EQ(Err("EnableKey", {{"KeyId", id}}), "KMSInvalidStateException");
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", id}})["KeyMetadata"]["KeyState"], "PendingDeletion");
  Ok("CancelKeyDeletion", {{"KeyId", id}});
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", id}})["KeyMetadata"]["KeyState"], "Disabled");
  EXPECT_EQ(Err("CancelKeyDeletion", {{"KeyId", id}}), "KMSInvalidStateException");
  // Scheduled again, then the window passes: maintenance deletes the key and its alias.
  Ok("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}});
  now_ += 6 * 86400;
  ASSERT_OK(service_->RunMaintenance());
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", id}})["KeyMetadata"]["KeyState"], "PendingDeletion");
  now_ += 2 * 86400;
  ASSERT_OK(service_->RunMaintenance());
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", id}}), "NotFoundException");
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", "alias/orders"}}), "NotFoundException");
  Rebuild();  // and it stays deleted in the store
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", id}}), "NotFoundException");
}

TEST_F(KmsServiceTest, RotationKeepsOldCiphertextsAndRotatesAutomatically) {
  std::string id = NewKey();
  json before = Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("v1")}});
  Ok("RotateKeyOnDemand", {{"KeyId", id}});
  json after = Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("v2")}});
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", before["CiphertextBlob"]}})["Plaintext"], B64("v1"));
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", after["CiphertextBlob"]}})["Plaintext"], B64("v2"));
  auto h1 = ecall::ParseCiphertextHeader(*Base64Decode(before["CiphertextBlob"].get<std::string>()));
  auto h2 = ecall::ParseCiphertextHeader(*Base64Decode(after["CiphertextBlob"].get<std::string>()));
  EXPECT_EQ(h1->version, 1u);
  EXPECT_EQ(h2->version, 2u);
  json rot = Ok("ListKeyRotations", {{"KeyId", id}});
  ASSERT_EQ(rot["Rotations"].size(), 1u);
  EXPECT_EQ(rot["Rotations"][0]["RotationType"], "ON_DEMAND");

  EXPECT_EQ(Err("EnableKeyRotation", {{"KeyId", id}, {"RotationPeriodInDays", 30}}), "ValidationException");
  Ok("EnableKeyRotation", {{"KeyId", id}, {"RotationPeriodInDays", 90}});
  json st = Ok("GetKeyRotationStatus", {{"KeyId", id}});
  EXPECT_TRUE(st["KeyRotationEnabled"].get<bool>());
  EXPECT_EQ(st["NextRotationDate"].get<int64_t>(), now_ + 90 * 86400);
  now_ += 91 * 86400;
  ASSERT_OK(service_->RunMaintenance());
  rot = Ok("ListKeyRotations", {{"KeyId", id}});
  ASSERT_EQ(rot["Rotations"].size(), 2u);
  EXPECT_EQ(rot["Rotations"][1]["RotationType"], "AUTOMATIC");
  Rebuild();
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", before["CiphertextBlob"]}})["Plaintext"], B64("v1"));
  Ok("DisableKeyRotation", {{"KeyId", id}});
  EXPECT_FALSE(Ok("GetKeyRotationStatus", {{"KeyId", id}})["KeyRotationEnabled"].get<bool>());

  std::string hmac = NewKey({{"KeySpec", "HMAC_256"}, {"KeyUsage", "GENERATE_VERIFY_MAC"}});
  EXPECT_EQ(Err("RotateKeyOnDemand", {{"KeyId", hmac}}), "UnsupportedOperationException");
}

TEST_F(KmsServiceTest, KeyPoliciesAreEvaluatedPrincipalActionAndContext) {
  std::string id = NewKey();
  json policy = {
      {"Version", "2012-10-17"},
      {"Statement",
       {{{"Sid", "admin"}, {"Effect", "Allow"}, {"Principal", {{"AWS", alice_.principal_arn}}}, {"Action", "kms:*"}, {"Resource", "*"}},
        {{"Sid", "bob-tenant-a"},
         {"Effect", "Allow"},
         {"Principal", {{"AWS", bob_.principal_arn}}},
         {"Action", {"kms:Encrypt", "kms:Decrypt"}},
         {"Resource", "*"},
         {"Condition", {{"StringEquals", {{"kms:EncryptionContext:tenant", "a"}}}}}}}}};
  Ok("PutKeyPolicy", {{"KeyId", id}, {"PolicyName", "default"}, {"Policy", policy.dump()}});
  EXPECT_EQ(Ok("GetKeyPolicy", {{"KeyId", id}})["Policy"], policy.dump());
  // bob: only with tenant=a, only Encrypt/Decrypt.
  json ok = Ok("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}, {"EncryptionContext", {{"tenant", "a"}}}}, &bob_);
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}, {"EncryptionContext", {{"tenant", "b"}}}}, &bob_),
            "AccessDeniedException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}, &bob_), "AccessDeniedException");
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", id}}, &bob_), "AccessDeniedException");
  EXPECT_EQ(Err("DisableKey", {{"KeyId", id}}, &bob_), "AccessDeniedException");
  // another account: nothing.
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}, {"EncryptionContext", {{"tenant", "a"}}}}, &mallory_),
            "AccessDeniedException");
  // The default policy lets every principal of the account in, and no one else.
  std::string open = NewKey();
  Ok("DescribeKey", {{"KeyId", open}}, &bob_);
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", open}}, &mallory_), "AccessDeniedException");
  // Explicit deny wins over the account-wide allow.
  json deny = json::parse(DefaultKeyPolicy("000000000000"));
  deny["Statement"].push_back({{"Sid", "no-bob-decrypt"}, {"Effect", "Deny"}, {"Principal", {{"AWS", bob_.principal_arn}}},
                               {"Action", "kms:Decrypt"}, {"Resource", "*"}});
  Ok("PutKeyPolicy", {{"KeyId", open}, {"Policy", deny.dump()}});
  json enc = Ok("Encrypt", {{"KeyId", open}, {"Plaintext", B64("x")}}, &bob_);
  EXPECT_EQ(Err("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}}, &bob_), "AccessDeniedException");
  Ok("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}});
  // Lockout safety check, malformed policies, other policy names.
  json lockout = {{"Statement", {{{"Effect", "Allow"}, {"Principal", {{"AWS", bob_.principal_arn}}}, {"Action", "kms:Encrypt"}, {"Resource", "*"}}}}};
  EXPECT_EQ(Err("PutKeyPolicy", {{"KeyId", open}, {"Policy", lockout.dump()}}), "MalformedPolicyDocumentException");
  EXPECT_EQ(Err("PutKeyPolicy", {{"KeyId", open}, {"Policy", "{not json"}}), "MalformedPolicyDocumentException");
  EXPECT_EQ(Err("GetKeyPolicy", {{"KeyId", open}, {"PolicyName", "other"}}), "NotFoundException");
  // Policies survive a restart (parsed again from the store).
  Rebuild();
  EXPECT_EQ(Err("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}, &bob_), "AccessDeniedException");
}

TEST_F(KmsServiceTest, AliasesTagsListingAndPaging) {
  std::string a = NewKey({{"Tags", {{{"TagKey", "team"}, {"TagValue", "red"}}}}});
  std::string b = NewKey();
  Ok("CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", a}});
  EXPECT_EQ(Err("CreateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", b}}), "AlreadyExistsException");
  EXPECT_EQ(Err("CreateAlias", {{"AliasName", "app"}, {"TargetKeyId", b}}), "ValidationException");
  EXPECT_EQ(Err("CreateAlias", {{"AliasName", "alias/x"}, {"TargetKeyId", "alias/app"}}), "ValidationException");
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", "arn:aws:kms:us-east-1:000000000000:alias/app"}})["KeyMetadata"]["KeyId"], a);
  Ok("UpdateAlias", {{"AliasName", "alias/app"}, {"TargetKeyId", b}});
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", "alias/app"}})["KeyMetadata"]["KeyId"], b);
  EXPECT_EQ(Ok("ListAliases", {{"KeyId", b}})["Aliases"].size(), 1u);
  EXPECT_EQ(Ok("ListAliases", {{"KeyId", a}})["Aliases"].size(), 0u);
  Ok("DeleteAlias", {{"AliasName", "alias/app"}});
  EXPECT_EQ(Err("DeleteAlias", {{"AliasName", "alias/app"}}), "NotFoundException");

  Ok("TagResource", {{"KeyId", a}, {"Tags", {{{"TagKey", "env"}, {"TagValue", "prod"}}}}});
  json tags = Ok("ListResourceTags", {{"KeyId", a}});
  ASSERT_EQ(tags["Tags"].size(), 2u);
  Ok("UntagResource", {{"KeyId", a}, {"TagKeys", {"team"}}});
  tags = Ok("ListResourceTags", {{"KeyId", a}});
  ASSERT_EQ(tags["Tags"].size(), 1u);
  EXPECT_EQ(tags["Tags"][0]["TagKey"], "env");

  for (int i = 0; i < 3; ++i) NewKey();
  std::set<std::string> seen;
  json page = Ok("ListKeys", {{"Limit", 2}});
  for (;;) {
    for (auto& k : page["Keys"]) seen.insert(k["KeyId"].get<std::string>());
    if (!page["Truncated"].get<bool>()) break;
    page = Ok("ListKeys", {{"Limit", 2}, {"Marker", page["NextMarker"]}});
  }
  EXPECT_EQ(seen.size(), 5u);
  EXPECT_EQ(Err("ListKeys", {{"Limit", 0}}), "ValidationException");
  EXPECT_EQ(Err("ListKeys", {{"Marker", "bogus"}}), "ValidationException");
  EXPECT_EQ(Err("DescribeKey", {{"KeyId", "00000000-0000-4000-8000-000000000000"}}), "NotFoundException");
  EXPECT_EQ(Err("NoSuchOperation", json::object()), "UnknownOperationException");
}

TEST_F(KmsServiceTest, SignVerifyMacDataKeysRandomAndKeyUsage) {
  std::string sym = NewKey();
  std::string ecc = NewKey({{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "SIGN_VERIFY"}});
  std::string mac = NewKey({{"KeySpec", "HMAC_256"}, {"KeyUsage", "GENERATE_VERIFY_MAC"}});
  EXPECT_EQ(Err("CreateKey", {{"KeySpec", "RSA_2048"}}), "ValidationException");
  EXPECT_EQ(Err("CreateKey", {{"KeySpec", "HMAC_256"}, {"KeyUsage", "ENCRYPT_DECRYPT"}}), "ValidationException");

  json sig = Ok("Sign", {{"KeyId", ecc}, {"Message", B64("msg")}, {"SigningAlgorithm", "ECDSA_SHA_256"}});
  json ver = Ok("Verify", {{"KeyId", ecc}, {"Message", B64("msg")}, {"Signature", sig["Signature"]}, {"SigningAlgorithm", "ECDSA_SHA_256"}});
  EXPECT_TRUE(ver["SignatureValid"].get<bool>());
  EXPECT_EQ(Err("Verify", {{"KeyId", ecc}, {"Message", B64("other")}, {"Signature", sig["Signature"]}, {"SigningAlgorithm", "ECDSA_SHA_256"}}),
            "KMSInvalidSignatureException");
  EXPECT_FALSE(Ok("GetPublicKey", {{"KeyId", ecc}})["PublicKey"].get<std::string>().empty());
  EXPECT_EQ(Err("Sign", {{"KeyId", sym}, {"Message", B64("m")}, {"SigningAlgorithm", "ECDSA_SHA_256"}}), "InvalidKeyUsageException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", mac}, {"Plaintext", B64("m")}}), "InvalidKeyUsageException");
  EXPECT_EQ(Err("Encrypt", {{"KeyId", ecc}, {"Plaintext", B64("m")}}), "InvalidKeyUsageException");

  json m = Ok("GenerateMac", {{"KeyId", mac}, {"Message", B64("m")}, {"MacAlgorithm", "HMAC_SHA_256"}});
  EXPECT_TRUE(Ok("VerifyMac", {{"KeyId", mac}, {"Message", B64("m")}, {"Mac", m["Mac"]}, {"MacAlgorithm", "HMAC_SHA_256"}})["MacValid"].get<bool>());
  EXPECT_EQ(Err("VerifyMac", {{"KeyId", mac}, {"Message", B64("n")}, {"Mac", m["Mac"]}, {"MacAlgorithm", "HMAC_SHA_256"}}),
            "KMSInvalidMacException");

  json dk = Ok("GenerateDataKey", {{"KeyId", sym}, {"KeySpec", "AES_256"}, {"EncryptionContext", {{"k", "v"}}}});
  EXPECT_EQ(Base64Decode(dk["Plaintext"].get<std::string>())->size(), 32u);
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", dk["CiphertextBlob"]}, {"EncryptionContext", {{"k", "v"}}}})["Plaintext"], dk["Plaintext"]);
  json wp = Ok("GenerateDataKeyWithoutPlaintext", {{"KeyId", sym}, {"NumberOfBytes", 64}});
  EXPECT_FALSE(wp.contains("Plaintext"));
  EXPECT_EQ(Base64Decode(Ok("Decrypt", {{"CiphertextBlob", wp["CiphertextBlob"]}})["Plaintext"].get<std::string>())->size(), 64u);
  EXPECT_EQ(Err("GenerateDataKey", {{"KeyId", sym}}), "ValidationException");
  EXPECT_EQ(Err("GenerateDataKey", {{"KeyId", sym}, {"KeySpec", "AES_256"}, {"NumberOfBytes", 32}}), "ValidationException");
  json re = Ok("ReEncrypt", {{"CiphertextBlob", dk["CiphertextBlob"]}, {"SourceEncryptionContext", {{"k", "v"}}},
                             {"DestinationKeyId", NewKey()}});
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", re["CiphertextBlob"]}})["Plaintext"], dk["Plaintext"]);

  EXPECT_EQ(Base64Decode(Ok("GenerateRandom", {{"NumberOfBytes", 1024}})["Plaintext"].get<std::string>())->size(), 1024u);
  EXPECT_EQ(Err("GenerateRandom", {{"NumberOfBytes", 0}}), "ValidationException");
  EXPECT_EQ(Err("GenerateRandom", {{"NumberOfBytes", 1025}}), "ValidationException");
}

// KMIP Register: only the KMIP server's caller may register; the key is made as CreateKey makes
// one (Pre-Active, reserved kmip: tags, default policy) with spec KMIP_AES; after KmipActivate,
// KmipEncrypt uses the registered material as the AES key (opened here with it); the KMS API's
// cryptographic operations and rotation refuse the key by name.
TEST_F(KmsServiceTest, KmipRegisterMakesAKeyOnlyKmipEncryptAndDecryptUse) {
  kms::Caller kmip{"arn:aws:iam::000000000000:user/kmip-client", "000000000000", "", true};
  auto kmip_run = [this](std::string_view op, const json& req, const kms::Caller& who) {
    return service_->ExecuteKmip(op, req, who);
  };
  SecretBytes material = crypto::RandomSecret(32);
  const std::string material_b64 = Base64Encode(material.Expose());
  json tags = json::array({{{"TagKey", "kmip:state"}, {"TagValue", "PreActive"}},
                           {{"TagKey", "kmip:length"}, {"TagValue", "256"}},
                           {{"TagKey", "team"}, {"TagValue", "payments"}}});
  json req = {{"Material", material_b64},
              {"Tags", tags},
              {"Description", "registered"},
              {"PreActive", true}};

  // Only the KMIP server's caller.
  KmsOutcome denied = kmip_run("KmipRegister", req, alice_);
  EXPECT_EQ(denied.error_type, "AccessDeniedException");
  EXPECT_EQ(Err("KmipRegister", req), "UnknownOperationException");  // not on the KMS API
  // Material: present, base64, 16 or 32 bytes.
  EXPECT_EQ(kmip_run("KmipRegister", {{"Tags", tags}}, kmip).error_type, "ValidationException");
  EXPECT_EQ(kmip_run("KmipRegister", {{"Material", "not base64!"}}, kmip).error_type,
            "SerializationException");
  for (size_t n : {size_t{0}, size_t{15}, size_t{24}, size_t{33}}) {
    KmsOutcome o = kmip_run("KmipRegister", {{"Material", Base64Encode(Bytes(n, 7))}}, kmip);
    EXPECT_EQ(o.error_type, "ValidationException") << n;
    EXPECT_THAT(o.message, HasSubstr("Material must be 16 or 32 bytes")) << n;
  }
  EXPECT_EQ(
      kmip_run("KmipRegister", {{"Material", material_b64}, {"Policy", "{"}}, kmip).error_type,
      "MalformedPolicyDocumentException");

  KmsOutcome made = kmip_run("KmipRegister", req, kmip);
  ASSERT_TRUE(made.ok()) << made.error_type << ": " << made.message;
  const json& meta = made.response["KeyMetadata"];
  const std::string id = meta["KeyId"].get<std::string>();
  EXPECT_EQ(made.key_id, id);
  EXPECT_EQ(meta["KeySpec"], "KMIP_AES");
  EXPECT_EQ(meta["KeyUsage"], "ENCRYPT_DECRYPT");
  EXPECT_EQ(meta["KeyState"], "Disabled");
  EXPECT_EQ(meta["Origin"], "EXTERNAL");
  EXPECT_EQ(meta["Description"], "registered");
  EXPECT_FALSE(meta.contains("EncryptionAlgorithms"));
  EXPECT_THAT(made.response.dump(), ::testing::Not(HasSubstr(material_b64)));
  // The store holds the material wrapped only.
  auto versions = store_->ListKeyVersions(id);
  ASSERT_OK(versions.status());
  ASSERT_EQ(versions->size(), 1u);
  EXPECT_EQ((*versions)[0].wrapped_material.size(), 12u + 32u + 16u);
  EXPECT_EQ(HexEncode((*versions)[0].wrapped_material).find(HexEncode(material.Expose())),
            std::string::npos);
  json listed = Ok("ListResourceTags", {{"KeyId", id}});
  EXPECT_EQ(listed["Tags"].size(), 3u);
  json described = Ok("DescribeKey", {{"KeyId", id}});
  EXPECT_EQ(described["KeyMetadata"]["KeySpec"], "KMIP_AES");
  EXPECT_FALSE(described["KeyMetadata"].contains("EncryptionAlgorithms"));

  // Pre-Active: no encryption until activated.
  json enc_req = {{"KeyId", id},
                  {"Bits", 256},
                  {"Mode", ecall::kKmipModeGcm},
                  {"Data", B64("shared key")},
                  {"Aad", B64("aad")}};
  EXPECT_EQ(kmip_run("KmipEncrypt", enc_req, kmip).error_type, "DisabledException");
  KmsOutcome activated = kmip_run("KmipActivate", {{"KeyId", id}}, kmip);
  ASSERT_TRUE(activated.ok()) << activated.error_type << ": " << activated.message;

  KmsOutcome enc = kmip_run("KmipEncrypt", enc_req, kmip);
  ASSERT_TRUE(enc.ok()) << enc.error_type << ": " << enc.message;
  Bytes iv = *Base64Decode(enc.response["Iv"].get<std::string>());
  Bytes ct = *Base64Decode(enc.response["Data"].get<std::string>());
  Bytes tag = *Base64Decode(enc.response["Tag"].get<std::string>());
  Bytes opened(ct.size());
  ASSERT_OK(crypto::AesGcm::Create(material)->OpenDetached(iv, ct, tag, ToBytes("aad"), opened));
  EXPECT_EQ(opened, ToBytes("shared key"));
  KmsOutcome dec = kmip_run("KmipDecrypt",
                            {{"KeyId", id},
                             {"Bits", 256},
                             {"Mode", ecall::kKmipModeGcm},
                             {"Iv", Base64Encode(iv)},
                             {"Data", Base64Encode(ct)},
                             {"Aad", B64("aad")},
                             {"Tag", Base64Encode(tag)}},
                            kmip);
  ASSERT_TRUE(dec.ok()) << dec.error_type << ": " << dec.message;
  EXPECT_EQ(dec.response["Data"], B64("shared key"));
  // A 128-bit request on the 256-bit registered key.
  json short_req = enc_req;
  short_req["Bits"] = 128;
  KmsOutcome mismatch = kmip_run("KmipEncrypt", short_req, kmip);
  EXPECT_EQ(mismatch.error_type, "ValidationException");
  EXPECT_THAT(mismatch.message, HasSubstr("key length does not match the registered key"));

  // The KMS API's cryptographic operations refuse it, naming the spec.
  std::string sym = NewKey();
  json blob = Ok("Encrypt", {{"KeyId", sym}, {"Plaintext", B64("x")}})["CiphertextBlob"];
  ByteWriter named;  // a blob header naming the registered key
  named.Raw(AsBytes("CKC1")).U8(1).Var(id).U32(1).Raw(Bytes(32 + 12 + 1 + 16, 0));
  struct Refused {
    const char* op;
    json body;
  };
  const Refused refused[] = {
      {"Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}},
      {"Decrypt", {{"CiphertextBlob", Base64Encode(named.bytes())}}},
      {"GenerateDataKey", {{"KeyId", id}, {"KeySpec", "AES_256"}}},
      {"GenerateDataKeyWithoutPlaintext", {{"KeyId", id}, {"NumberOfBytes", 32}}},
      {"ReEncrypt", {{"CiphertextBlob", blob}, {"DestinationKeyId", id}}},
      {"GenerateMac", {{"KeyId", id}, {"Message", B64("m")}, {"MacAlgorithm", "HMAC_SHA_256"}}},
      {"VerifyMac",
       {{"KeyId", id}, {"Message", B64("m")}, {"Mac", B64("m")}, {"MacAlgorithm", "HMAC_SHA_256"}}},
      {"Sign", {{"KeyId", id}, {"Message", B64("m")}, {"SigningAlgorithm", "ECDSA_SHA_256"}}},
      {"Verify",
       {{"KeyId", id},
        {"Message", B64("m")},
        {"Signature", B64("s")},
        {"SigningAlgorithm", "ECDSA_SHA_256"}}},
  };
  for (const Refused& r : refused) {
    KmsOutcome o = Run(r.op, r.body);
    EXPECT_EQ(o.error_type, "InvalidKeyUsageException") << r.op << ": " << o.message;
    EXPECT_THAT(o.message, HasSubstr("is a KMIP_AES key")) << r.op;
  }
  // Rotation would replace the client's key.
  for (const char* op : {"EnableKeyRotation", "RotateKeyOnDemand"}) {
    KmsOutcome o = Run(op, {{"KeyId", id}});
    EXPECT_EQ(o.error_type, "UnsupportedOperationException") << op;
    EXPECT_THAT(o.message, HasSubstr("a registered KMIP key cannot be rotated")) << op;
  }
  // An alias cannot be moved between a KMIP_AES key and a SYMMETRIC_DEFAULT one.
  Ok("CreateAlias", {{"AliasName", "alias/orders"}, {"TargetKeyId", sym}});
  EXPECT_EQ(Err("UpdateAlias", {{"AliasName", "alias/orders"}, {"TargetKeyId", id}}),
            "ValidationException");
  // The key survives a reload from the store as it was made.
  Rebuild();
  EXPECT_TRUE(kmip_run("KmipEncrypt", enc_req, kmip).ok());
  EXPECT_EQ(Ok("DescribeKey", {{"KeyId", id}})["KeyMetadata"]["KeySpec"], "KMIP_AES");
}

TEST_F(KmsServiceTest, SealedCoreAnswersDependencyTimeout) {
  std::string id = NewKey();
  auto sealed = NewCore();  // loaded but never initialised or unsealed
  ASSERT_OK(enclave::Call(*sealed, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  KmsService s(store_.get(), [&](ecall::Call c, std::vector<Bytes> a) { return enclave::Call(*sealed, c, std::move(a)); }, {});
  ASSERT_OK(s.Load());
  KmsOutcome o = s.Execute("Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}, alice_);
  EXPECT_EQ(o.error_type, "DependencyTimeoutException");
  EXPECT_EQ(o.http_status, 503);
  // Metadata needs no key material.
  EXPECT_TRUE(s.Execute("DescribeKey", {{"KeyId", id}}, alice_).ok());
}

// ---- the HTTP front end: SigV4, AWS error shapes, audit ----

class KmsApiTest : public KmsServiceTest {
 protected:
  void SetUp() override {
    KmsServiceTest::SetUp();
    SigV4Options sig;
    sig.region = "us-east-1";
    api_ = std::make_unique<KmsApi>(service_.get(), store_.get(), Caller(),
                                    [this](const audit::Entry& e, bool durable) -> Status {
                                      if (fail_audit_) return Unavailable("disk full");
                                      audit_.push_back(e.ToJson());
                                      durable_.push_back(durable);
                                      return Status::Ok();
                                    },
                                    sig);
    auto k = api_->CreateAccessKey("alice");
    ASSERT_OK(k.status());
    cred_.access_key_id = k->access_key_id;
    cred_.secret_access_key = std::move(k->secret_access_key);
    EXPECT_EQ(k->principal_arn, "arn:aws:iam::000000000000:user/alice");
    EXPECT_EQ(api_->CreateAccessKey("alice").status().code(), ErrorCode::kAlreadyExists);
    EXPECT_EQ(api_->CreateAccessKey("bad name!").status().code(), ErrorCode::kInvalidArgument);
  }

  net::HttpRequest Request(std::string_view op, const std::string& body) {
    net::HttpRequest r;
    r.method = "POST";
    r.target = "/";
    r.body = body;
    r.remote = "127.0.0.1:1";
    r.headers["host"] = "kms.test";
    r.headers["content-type"] = "application/x-amz-json-1.1";
    r.headers["x-amz-target"] = "TrentService." + std::string(op);
    return r;
  }

  net::HttpResponse Send(std::string_view op, const json& body, std::time_t when = 0) {
    net::HttpRequest r = Request(op, body.dump());
    EXPECT_OK(SignSigV4(r, cred_, "us-east-1", "kms", when ? when : std::time(nullptr)));
    return api_->Handle(r);
  }

  static std::string Type(const net::HttpResponse& r) {
    json j = json::parse(r.body, nullptr, false);
    return j.is_object() ? j.value("__type", "") : "";
  }

  std::unique_ptr<KmsApi> api_;
  SigV4Credentials cred_;
  std::vector<json> audit_;
  std::vector<bool> durable_;  // per audited request: whether it asked for an fsync
  bool fail_audit_ = false;
};

TEST_F(KmsApiTest, SignedRequestsWorkAndEveryRefusalHasItsAwsError) {
  auto r = Send("CreateKey", json::object());
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.content_type, "application/x-amz-json-1.1");
  EXPECT_FALSE(r.headers["x-amzn-requestid"].empty());
  std::string id = json::parse(r.body)["KeyMetadata"]["KeyId"];
  std::string secret_plain = Base64Encode(AsBytes("attack at dawn"));
  r = Send("Encrypt", {{"KeyId", id}, {"Plaintext", secret_plain}});
  ASSERT_EQ(r.status, 200) << r.body;
  std::string blob = json::parse(r.body)["CiphertextBlob"];

  // Unsigned, wrong secret, unknown key id, stale, another region.
  net::HttpRequest unsigned_req = Request("Encrypt", json{{"KeyId", id}, {"Plaintext", "eA=="}}.dump());
  r = api_->Handle(unsigned_req);
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(Type(r), "MissingAuthenticationTokenException");
  SigV4Credentials wrong{cred_.access_key_id, SecretBytes::CopyFrom(std::string_view("0123456789012345678901234567890123456789")), "", nullptr};
  net::HttpRequest w = Request("Encrypt", "{}");
  ASSERT_OK(SignSigV4(w, wrong, "us-east-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(w)), "InvalidSignatureException");
  SigV4Credentials unknown{"CKIAUNKNOWNUNKNOWN00", cred_.secret_access_key.Clone(), "", nullptr};
  net::HttpRequest u = Request("Encrypt", "{}");
  ASSERT_OK(SignSigV4(u, unknown, "us-east-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(u)), "UnrecognizedClientException");
  EXPECT_EQ(Type(Send("Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}}, std::time(nullptr) - 3600)), "InvalidSignatureException");
  net::HttpRequest reg = Request("Encrypt", "{}");
  ASSERT_OK(SignSigV4(reg, cred_, "eu-west-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(reg)), "InvalidSignatureException");
  // A body changed after signing.
  net::HttpRequest t = Request("Encrypt", json{{"KeyId", id}, {"Plaintext", "eA=="}}.dump());
  ASSERT_OK(SignSigV4(t, cred_, "us-east-1", "kms", std::time(nullptr)));
  t.body = json{{"KeyId", id}, {"Plaintext", "eQ=="}}.dump();
  EXPECT_EQ(Type(api_->Handle(t)), "InvalidSignatureException");
  // Malformed Authorization header.
  net::HttpRequest m = Request("Encrypt", "{}");
  m.headers["authorization"] = "AWS4-HMAC-SHA256 Credential=garbage";
  m.headers["x-amz-date"] = "20260101T000000Z";
  EXPECT_EQ(Type(api_->Handle(m)), "IncompleteSignatureException");

  // Malformed bodies and targets.
  net::HttpRequest bad = Request("Encrypt", "{not json");
  ASSERT_OK(SignSigV4(bad, cred_, "us-east-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(bad)), "SerializationException");
  EXPECT_EQ(Type(Send("Encrypt", {{"KeyId", id}, {"Plaintext", "%%%"}})), "SerializationException");
  EXPECT_EQ(Type(Send("Frobnicate", json::object())), "UnknownOperationException");
  net::HttpRequest nt = Request("Encrypt", "{}");
  nt.headers.erase("x-amz-target");
  ASSERT_OK(SignSigV4(nt, cred_, "us-east-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(nt)), "UnknownOperationException");

  // Tampered and foreign ciphertexts.
  Bytes b = *Base64Decode(blob);
  b[b.size() - 1] ^= 1;
  EXPECT_EQ(Type(Send("Decrypt", {{"CiphertextBlob", Base64Encode(b)}})), "InvalidCiphertextException");
  EXPECT_EQ(Type(Send("Decrypt", {{"CiphertextBlob", Base64Encode(crypto::RandomBytes(120))}})), "InvalidCiphertextException");

  // ... and the service still serves.
  r = Send("Decrypt", {{"CiphertextBlob", blob}});
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(json::parse(r.body)["Plaintext"], secret_plain);

  // Every authenticated request was audited, with its outcome, and no entry holds the plaintext
  // or the blob. Requests that never authenticated (unsigned, bad or unknown signatures, unknown
  // targets) are counted in the metrics, not written to the signed chain.
  ASSERT_EQ(audit_.size(), 7u);
  EXPECT_EQ(audit_[0]["operation"], "CreateKey");
  EXPECT_EQ(audit_[0]["outcome"], "ok");
  EXPECT_EQ(audit_[0]["principal"], "arn:aws:iam::000000000000:user/alice");
  EXPECT_EQ(audit_[1]["key_id"], id);
  // A key-state change's entry asks for an fsync before the answer; a data-path one does not.
  ASSERT_EQ(durable_.size(), audit_.size());
  for (size_t i = 0; i < audit_.size(); ++i)
    EXPECT_EQ(durable_[i], audit_[i]["operation"] != "Encrypt" && audit_[i]["operation"] != "Decrypt")
        << audit_[i].dump();
  bool saw_denied = false;
  for (const json& e : audit_) {
    std::string dump = e.dump();
    EXPECT_EQ(dump.find(secret_plain), std::string::npos);
    EXPECT_EQ(dump.find(blob.substr(0, 40)), std::string::npos);
    saw_denied |= e["outcome"] == "MissingAuthenticationTokenException" || e["outcome"] == "InvalidSignatureException";
    EXPECT_FALSE(e["access_key_id"].get<std::string>().empty()) << dump;
    // docs/audit.md: RFC 3339 UTC with milliseconds, as the request path writes it.
    EXPECT_TRUE(std::regex_match(e["time"].get<std::string>(),
                                 std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)"))) << dump;
  }
  EXPECT_FALSE(saw_denied);
  std::string counted = api_->metrics().Render();
  EXPECT_THAT(counted, HasSubstr("custos_kms_requests_total{operation=\"Encrypt\",outcome=\"MissingAuthenticationTokenException\"} 1"));
  EXPECT_THAT(counted, HasSubstr("custos_kms_requests_total{operation=\"Encrypt\",outcome=\"InvalidSignatureException\"} 4"));

  // A request whose audit entry cannot be written is refused.
  fail_audit_ = true;
  r = Send("Encrypt", {{"KeyId", id}, {"Plaintext", "eA=="}});
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(Type(r), "KMSInternalException");
  fail_audit_ = false;

  std::string metrics = api_->metrics().Render();
  EXPECT_THAT(metrics, HasSubstr("custos_kms_requests_total{operation=\"Encrypt\",outcome=\"ok\"} 1"));
  EXPECT_THAT(metrics, HasSubstr("custos_kms_request_duration_seconds_bucket{operation=\"Decrypt\""));
}

// A burst of bad signatures from one address is throttled after 50 (ThrottlingException,
// checked before any signature work) and writes no audit row; a good client from the same
// address, with its own key, is served throughout.
TEST_F(KmsApiTest, BadSignatureBurstIsThrottledWhileAGoodClientIsServed) {
  SigV4Credentials forged{cred_.access_key_id, SecretBytes::CopyFrom(std::string_view("0123456789012345678901234567890123456789")), "", nullptr};
  SigV4Credentials stranger{"CKIASTRANGERSTRANGER", cred_.secret_access_key.Clone(), "", nullptr};
  size_t audited = audit_.size();
  int throttled = 0, invalid = 0;
  for (int i = 0; i < 120; ++i) {
    net::HttpRequest bad = Request("Encrypt", "{}");
    ASSERT_OK(SignSigV4(bad, stranger, "us-east-1", "kms", std::time(nullptr)));
    std::string type = Type(api_->Handle(bad));
    throttled += type == "ThrottlingException";
    invalid += type == "UnrecognizedClientException";
    if (i % 10 == 0) {
      ASSERT_EQ(Send("ListKeys", json::object()).status, 200) << "good client refused at " << i;
    }
  }
  EXPECT_EQ(invalid, 50);
  EXPECT_EQ(throttled, 70);
  // Another claimed key id from the same address has its own budget; the real key still works.
  net::HttpRequest wrong = Request("Encrypt", "{}");
  ASSERT_OK(SignSigV4(wrong, forged, "us-east-1", "kms", std::time(nullptr)));
  EXPECT_EQ(Type(api_->Handle(wrong)), "InvalidSignatureException");
  EXPECT_EQ(audit_.size(), audited + 12);  // only the 12 good ListKeys
  EXPECT_THAT(api_->metrics().Render(),
              HasSubstr("custos_kms_requests_total{operation=\"Encrypt\",outcome=\"ThrottlingException\"} 70"));
}


// ---- several nodes on one store (issue 15) ----

// FlakyStore passes every call to a real store, except StateVersion and StateChangesSince while
// `down` is set: the database is unreachable for this node.
class FlakyStore : public custos::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<bool> down{false};

  StatusOr<uint64_t> StateVersion() override {
    if (down) return Unavailable("store: state version: server closed the connection");
    return ForwardingStore::StateVersion();
  }
  StatusOr<std::vector<store::StateChange>> StateChangesSince(uint64_t v, size_t limit) override {
    if (down) return Unavailable("store: state changes: server closed the connection");
    return ForwardingStore::StateChangesSince(v, limit);
  }
};

// Two nodes: two services with their own store connections on one database file, sharing the
// root key (the same core, as joined nodes share it).
class KmsClusterTest : public KmsServiceTest {
 protected:
  void SetUp() override {
    KmsServiceTest::SetUp();
    auto st = store::OpenSqliteStore(dir_ + "/custos.db", store::StoreOptions{"node-2"});
    ASSERT_OK(st.status());
    other_store_ = std::make_unique<FlakyStore>(std::move(*st));
    ServiceOptions o;
    o.now = [this] { return now_; };
    o.max_staleness = std::chrono::milliseconds(200);
    other_ = std::make_unique<KmsService>(other_store_.get(), Caller(), o);
    ASSERT_OK(other_->Load());
  }
  json OkOn(KmsService& node, std::string_view op, const json& req) {
    KmsOutcome o = node.Execute(op, req, alice_);
    EXPECT_TRUE(o.ok()) << op << ": " << o.error_type << ": " << o.message;
    return o.response;
  }
  std::string ErrOn(KmsService& node, std::string_view op, const json& req) {
    KmsOutcome o = node.Execute(op, req, alice_);
    EXPECT_FALSE(o.ok()) << op << " unexpectedly succeeded";
    return o.error_type + ": " + o.message;
  }
  std::unique_ptr<FlakyStore> other_store_;
  std::unique_ptr<KmsService> other_;
};

TEST_F(KmsClusterTest, AKeyMadeOnOneNodeServesOnTheOtherAfterARefresh) {
  std::string id = NewKey();
  ASSERT_OK(other_->Refresh());
  json enc = OkOn(*other_, "Encrypt", {{"KeyId", id}, {"Plaintext", B64("across nodes")}});
  json dec = Ok("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}});
  EXPECT_EQ(dec["Plaintext"], B64("across nodes"));
  // An alias made on the second node resolves on the first once it refreshes.
  OkOn(*other_, "CreateAlias", {{"AliasName", "alias/shared"}, {"TargetKeyId", id}});
  ASSERT_OK(service_->Refresh());
  Ok("Encrypt", {{"KeyId", "alias/shared"}, {"Plaintext", B64("x")}});
}

TEST_F(KmsClusterTest, AKeyMadeOnAnotherNodeIsFoundBeforeTheNextRefresh) {
  ASSERT_OK(other_->Refresh());  // fresh, and behind from here on
  std::string id = NewKey();
  Ok("CreateAlias", {{"AliasName", "alias/new"}, {"TargetKeyId", id}});
  // No refresh: the miss makes node 2 catch up with the store and look again.
  json enc = OkOn(*other_, "Encrypt", {{"KeyId", "alias/new"}, {"Plaintext", B64("at once")}});
  EXPECT_EQ(Ok("Decrypt", {{"CiphertextBlob", enc["CiphertextBlob"]}})["Plaintext"], B64("at once"));
  // The same for a ciphertext naming a key node 2 has not seen yet.
  std::string id2 = NewKey();
  json enc2 = Ok("Encrypt", {{"KeyId", id2}, {"Plaintext", B64("other way")}});
  EXPECT_EQ(OkOn(*other_, "Decrypt", {{"CiphertextBlob", enc2["CiphertextBlob"]}})["Plaintext"],
            B64("other way"));
  // A key that exists nowhere is still NotFound.
  EXPECT_THAT(ErrOn(*other_, "Encrypt", {{"KeyId", "11111111-2222-3333-4444-555555555555"},
                                         {"Plaintext", B64("x")}}),
              HasSubstr("NotFoundException"));
}

TEST_F(KmsClusterTest, ADisableOnOneNodeIsInForceOnTheOtherAfterItsNextRefresh) {
  std::string id = NewKey();
  ASSERT_OK(other_->Refresh());
  OkOn(*other_, "Encrypt", {{"KeyId", id}, {"Plaintext", B64("before")}});
  Ok("DisableKey", {{"KeyId", id}});
  ASSERT_OK(other_->Refresh());
  EXPECT_THAT(ErrOn(*other_, "Encrypt", {{"KeyId", id}, {"Plaintext", B64("after")}}),
              HasSubstr("DisabledException"));
  // Deletion scheduled on one node, cancelled on the other: both agree afterwards.
  OkOn(*other_, "EnableKey", {{"KeyId", id}});
  Ok("ScheduleKeyDeletion", {{"KeyId", id}, {"PendingWindowInDays", 7}});
  OkOn(*other_, "CancelKeyDeletion", {{"KeyId", id}});  // catches up before it changes anything
  ASSERT_OK(service_->Refresh());
  json meta = Ok("DescribeKey", {{"KeyId", id}});
  EXPECT_EQ(meta["KeyMetadata"]["KeyState"], "Disabled");  // AWS: a cancelled key is Disabled
}

TEST_F(KmsClusterTest, AChangeFromAStaleCopyDoesNotUndoAnotherNodesChange) {
  std::string id = NewKey();
  ASSERT_OK(other_->Refresh());
  // Node 1 disables the key; node 2 has not refreshed and replaces the key policy: its change
  // must not write back the Enabled state it still has cached.
  std::string policy = store_->GetKey(id)->policy;
  Ok("DisableKey", {{"KeyId", id}});
  OkOn(*other_, "PutKeyPolicy", {{"KeyId", id}, {"PolicyName", "default"}, {"Policy", policy}});
  auto stored = store_->GetKey(id);
  ASSERT_OK(stored.status());
  EXPECT_EQ(stored->key_state, "Disabled");
  EXPECT_EQ(stored->revision, 3u);  // created, disabled, policy replaced
  // A stale write straight to the store is refused by the revision check.
  store::KeyRecord stale = *stored;
  stale.revision -= 1;
  stale.key_state = "Enabled";
  EXPECT_EQ(store_->UpdateKey(stale).code(), ErrorCode::kAborted);
  EXPECT_EQ(store_->GetKey(id)->key_state, "Disabled");
}

TEST_F(KmsClusterTest, ANodeThatCannotConfirmItsCacheStopsServingAndResumes) {
  std::string id = NewKey();
  ASSERT_OK(other_->Refresh());
  EXPECT_TRUE(other_->Fresh());
  other_store_->down = true;
  EXPECT_FALSE(other_->Refresh().ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(250));  // past max_staleness (200 ms)
  EXPECT_FALSE(other_->Fresh());
  // Meanwhile node 1 disables the key: node 2 must not keep using its stale Enabled copy.
  Ok("DisableKey", {{"KeyId", id}});
  EXPECT_THAT(ErrOn(*other_, "Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}),
              HasSubstr("DependencyTimeoutException"));
  other_store_->down = false;
  ASSERT_OK(other_->Refresh());
  EXPECT_TRUE(other_->Fresh());
  EXPECT_THAT(ErrOn(*other_, "Encrypt", {{"KeyId", id}, {"Plaintext", B64("x")}}),
              HasSubstr("DisabledException"));
}

}  // namespace
}  // namespace custos::kms
