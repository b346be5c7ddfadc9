// Tests for the XKS proxy API (kms/xks.h) as AWS KMS drives it: SigV4-signed requests (service
// kms-xks-proxy, any region) against a real trusted core (in process) and SQLite store. Every
// operation; the spec's AAD construction and its CDIV worked example; every error name of the
// spec's table with its HTTP status; credentials per URI prefix and their rotation; the audit
// entries (requestMetadata, never the plaintext).
#include "appliance/kms/xks.h"

#include <thread>

#include "appliance/enclave/core_testing.h"
#include "appliance/kms/policy.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::kms {
namespace {

using json = nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

class XksTest : public enclave::CoreFixture {
 protected:
  void SetUp() override {
    CoreFixture::SetUp();
    core_ = NewCore();
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
    ASSERT_OK(enclave::Call(*core_, ecall::Call::kInit, {}).status());
    auto st = store::OpenSqliteStore(dir_ + "/custos.db");
    ASSERT_OK(st.status());
    store_ = std::move(*st);
    service_ = std::make_unique<KmsService>(store_.get(), Core(*core_), ServiceOptions{});
    ASSERT_OK(service_->Load());
    xks_ = MakeApi(Core(*core_));
    auto cred = xks_->CreateCredential("/tenant-a", "first");
    ASSERT_OK(cred.status());
    cred_ = std::move(*cred);
    key_ = NewKey();
  }

  CoreCall Core(enclave::EnclaveCore& core) {
    return [&core](ecall::Call c, std::vector<Bytes> a) { return enclave::Call(core, c, std::move(a)); };
  }

  std::unique_ptr<XksApi> MakeApi(CoreCall core, XksOptions options = {}) {
    AuditSink sink = [this](const audit::Entry& e, bool) {
      std::lock_guard lock(audit_mu_);
      audit_.push_back(e.ToJson());
      return audit_fails_ ? Unavailable("disk full") : Status::Ok();
    };
    return std::make_unique<XksApi>(service_.get(), store_.get(), std::move(core), sink, std::move(options));
  }

  std::string NewKey(const json& req = json::object()) {
    KmsOutcome o = service_->Execute("CreateKey", req, admin_);
    EXPECT_TRUE(o.ok()) << o.message;
    return o.response["KeyMetadata"].value("KeyId", "");
  }

  // Send signs and sends one XKS request; returns status and the JSON answer.
  struct Answer {
    int status = 0;
    json body;
  };
  Answer Send(const std::string& path, const json& body, const NewXksCredential* cred = nullptr,
              std::string method = "POST", std::time_t when = 0, XksApi* api = nullptr) {
    const NewXksCredential& c = cred ? *cred : cred_;
    net::HttpRequest req;
    req.method = std::move(method);
    req.target = path;
    req.body = body.is_null() ? "" : body.dump();
    req.headers["host"] = "xks.example.com";
    req.headers["content-type"] = "application/json";
    req.remote = "10.0.0.7:4242";
    SigV4Credentials sc{c.access_key_id, SecretBytes::CopyFrom(c.secret_access_key.Expose()), "", nullptr};
    EXPECT_OK(SignSigV4(req, sc, "eu-west-1", "kms-xks-proxy", when ? when : std::time(nullptr)));
    net::HttpResponse r = (api ? api : xks_.get())->Handle(req);
    return {r.status, json::parse(r.body, nullptr, false)};
  }

  static json Meta(const std::string& op = "Encrypt") {
    return {{"awsPrincipalArn", "arn:aws:iam::123456789012:user/Alice"},
            {"kmsKeyArn", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
            {"kmsOperation", op},
            {"kmsRequestId", "4112f4d6-db54-4af4-ae30-c55a22a8dfae"},
            {"kmsViaService", "ebs"}};
  }
  std::string KeyPath(const std::string& key, const std::string& op, const std::string& prefix = "/tenant-a") {
    return prefix + "/kms/xks/v1/keys/" + key + "/" + op;
  }
  json EncryptReq(std::string_view plaintext, std::string_view aad = "") {
    json r = {{"requestMetadata", Meta()}, {"plaintext", Base64Encode(AsBytes(plaintext))}, {"encryptionAlgorithm", "AES_GCM"}};
    if (!aad.empty()) r["additionalAuthenticatedData"] = Base64Encode(AsBytes(aad));
    return r;
  }
  static json DecryptReq(const json& enc, std::string_view aad = "") {
    json r = {{"requestMetadata", Meta("Decrypt")},
              {"ciphertext", enc["ciphertext"]},
              {"ciphertextMetadata", enc["ciphertextMetadata"]},
              {"initializationVector", enc["initializationVector"]},
              {"authenticationTag", enc["authenticationTag"]},
              {"encryptionAlgorithm", "AES_GCM"}};
    if (!aad.empty()) r["additionalAuthenticatedData"] = Base64Encode(AsBytes(aad));
    return r;
  }
  void ExpectError(const Answer& a, int status, const std::string& name) {
    EXPECT_EQ(a.status, status) << a.body.dump();
    EXPECT_EQ(a.body.value("errorName", ""), name) << a.body.dump();
    std::string m = a.body.value("errorMessage", "");
    EXPECT_LT(m.size(), 512u);
    for (char ch : m) EXPECT_TRUE(ch >= 0x20 && ch <= 0x7e) << m;
  }

  std::unique_ptr<enclave::EnclaveCore> core_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<KmsService> service_;
  std::unique_ptr<XksApi> xks_;
  NewXksCredential cred_;
  std::string key_;
  Caller admin_{"arn:aws:iam::000000000000:root", "000000000000", "CKIAADMIN"};
  std::mutex audit_mu_;
  std::vector<json> audit_;
  bool audit_fails_ = false;
};

// Appendix C's worked example: 33 bytes of AAD, 13 of ciphertextMetadata, 12 of IV, 12 of
// ciphertext, 16 of tag hash to qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=.
TEST(XksCdiv, MatchesTheSpecsWorkedExample) {
  Bytes aad = ToBytes("project=nile,department=marketing");
  Bytes metadata = ToBytes("key_version=1");
  Bytes iv = *HexDecode("1ccae5470f39700254779031");
  Bytes ct = *HexDecode("821c642b5b71783367deaf18");
  Bytes tag = *HexDecode("bc1c4dda7707d6812447c5955e99b261");
  EXPECT_EQ(HexEncode(XksApi::Cdiv(aad, metadata, iv, ct, tag)),
            "a8703f2260bd8791ec2d15ea0b23e65a0631eedcf2a13a65cc82db3f47cf5ec7");
  EXPECT_EQ(Base64Encode(XksApi::Cdiv(aad, metadata, iv, ct, tag)), "qHA/ImC9h5HsLRXqCyPmWgYx7tzyoTplzILbP0fPXsc=");
  // The spec's example request and response payloads decode to those bytes.
  EXPECT_EQ(*Base64Decode("cHJvamVjdD1uaWxlLGRlcGFydG1lbnQ9bWFya2V0aW5n"), aad);
  EXPECT_EQ(*Base64Decode("a2V5X3ZlcnNpb249MQ=="), metadata);
  EXPECT_EQ(*Base64Decode("HMrlRw85cAJUd5Ax"), iv);
  EXPECT_EQ(*Base64Decode("ghxkK1txeDNn3q8Y"), ct);
  EXPECT_EQ(*Base64Decode("vBxN2ncH1oEkR8WVXpmyYQ=="), tag);
}

TEST_F(XksTest, EveryOperationAsAwsKmsCallsIt) {
  // GetKeyMetadata, by key id and by alias name (without "alias/").
  ASSERT_TRUE(service_->Execute("CreateAlias", {{"AliasName", "alias/ebs-master"}, {"TargetKeyId", key_}}, admin_).ok());
  for (const std::string& ext : {key_, std::string("ebs-master")}) {
    Answer m = Send(KeyPath(ext, "metadata"), {{"requestMetadata", Meta("CreateKey")}});
    ASSERT_EQ(m.status, 200) << m.body.dump();
    EXPECT_EQ(m.body, (json{{"keySpec", "AES_256"}, {"keyUsage", {"ENCRYPT", "DECRYPT"}}, {"keyStatus", "ENABLED"}}));
  }
  // Encrypt with AAD and a CDIV; the fields apart, the IV 12 bytes, the tag 16.
  json req = EncryptReq("Hello World!", "project=nile,department=marketing");
  req["ciphertextDataIntegrityValueAlgorithm"] = "SHA_256";
  Answer e = Send(KeyPath("ebs-master", "encrypt"), req);
  ASSERT_EQ(e.status, 200) << e.body.dump();
  Bytes iv = *Base64Decode(e.body["initializationVector"].get<std::string>());
  Bytes ct = *Base64Decode(e.body["ciphertext"].get<std::string>());
  Bytes tag = *Base64Decode(e.body["authenticationTag"].get<std::string>());
  Bytes meta = *Base64Decode(e.body["ciphertextMetadata"].get<std::string>());
  EXPECT_EQ(iv.size(), 12u);
  EXPECT_EQ(ct.size(), 12u);
  EXPECT_EQ(tag.size(), 16u);
  EXPECT_LE(meta.size(), 20u);
  EXPECT_EQ(e.body["ciphertextDataIntegrityValue"],
            Base64Encode(XksApi::Cdiv(ToBytes("project=nile,department=marketing"), meta, iv, ct, tag)));
  // Without a CDIV algorithm there is no CDIV.
  EXPECT_FALSE(Send(KeyPath(key_, "encrypt"), EncryptReq("x")).body.contains("ciphertextDataIntegrityValue"));
  // Decrypt.
  Answer d = Send(KeyPath(key_, "decrypt"), DecryptReq(e.body, "project=nile,department=marketing"));
  ASSERT_EQ(d.status, 200) << d.body.dump();
  EXPECT_EQ(d.body, (json{{"plaintext", Base64Encode(AsBytes("Hello World!"))}}));
  // The spec's sizes: 4300 bytes of plaintext, 8192 of AAD.
  std::string big(4300, 'p'), big_aad(8192, 'a');
  Answer eb = Send(KeyPath(key_, "encrypt"), EncryptReq(big, big_aad));
  ASSERT_EQ(eb.status, 200) << eb.body.dump();
  Answer db = Send(KeyPath(key_, "decrypt"), DecryptReq(eb.body, big_aad));
  EXPECT_EQ(db.body.value("plaintext", ""), Base64Encode(AsBytes(big)));
  // GetHealthStatus: a deep check on the proxy's own test key.
  Answer h = Send("/tenant-a/kms/xks/v1/health", {{"requestMetadata", {{"kmsRequestId", "h-1"}, {"kmsOperation", "KmsHealthCheck"}}}});
  ASSERT_EQ(h.status, 200) << h.body.dump();
  EXPECT_EQ(h.body["xksProxyFleetSize"], 1);
  EXPECT_EQ(h.body["ekmFleetDetails"][0]["healthStatus"], "ACTIVE");
  for (const char* f : {"xksProxyVendor", "xksProxyModel", "ekmVendor"}) EXPECT_TRUE(h.body[f].is_string()) << f;
  EXPECT_TRUE(service_->Execute("DescribeKey", {{"KeyId", "alias/custos/xks-health-check"}}, admin_).ok());

  // Every request is audited with AWS's requestMetadata and the credential's principal; no
  // plaintext, AAD or ciphertext reaches the log.
  std::lock_guard lock(audit_mu_);
  ASSERT_GE(audit_.size(), 7u);
  for (const json& entry : audit_) {
    std::string text = entry.dump();
    EXPECT_THAT(text, Not(HasSubstr(Base64Encode(AsBytes("Hello World!")))));
    EXPECT_THAT(text, Not(HasSubstr("project=nile")));
    EXPECT_EQ(entry["principal"], cred_.principal_arn);
  }
  const json& enc_entry = audit_[2];
  EXPECT_EQ(enc_entry["operation"], "XksEncrypt");
  EXPECT_EQ(enc_entry["key_id"], key_);
  EXPECT_EQ(enc_entry["outcome"], "ok");
  EXPECT_EQ(enc_entry["request_metadata"]["kmsRequestId"], "4112f4d6-db54-4af4-ae30-c55a22a8dfae");
  EXPECT_EQ(enc_entry["request_metadata"]["awsPrincipalArn"], "arn:aws:iam::123456789012:user/Alice");
  EXPECT_EQ(enc_entry["request_metadata"]["kmsViaService"], "ebs");
}

// The AAD is len16(aad) || aad || len8(metadata) || metadata: moving bytes between the two, or
// changing either, does not decrypt. Key rotation: old ciphertexts name their version.
TEST_F(XksTest, AadAndMetadataAreBoundAndVersionsDecrypt) {
  Answer e = Send(KeyPath(key_, "encrypt"), EncryptReq("secret data key", "ctx"));
  ASSERT_EQ(e.status, 200);
  auto refused = [&](const json& req) { ExpectError(Send(KeyPath(key_, "decrypt"), req), 400, "InvalidCiphertextException"); };
  refused(DecryptReq(e.body, "ctX"));
  refused(DecryptReq(e.body));  // no AAD
  // The spec's example: encrypt without AAD, then pass the ciphertextMetadata as the AAD.
  Answer bare = Send(KeyPath(key_, "encrypt"), EncryptReq("secret data key"));
  json moved = DecryptReq(bare.body);
  moved["additionalAuthenticatedData"] = moved["ciphertextMetadata"];
  moved.erase("ciphertextMetadata");
  refused(moved);
  for (const char* field : {"ciphertext", "initializationVector", "authenticationTag"}) {
    json t = DecryptReq(e.body, "ctx");
    Bytes b = *Base64Decode(t[field].get<std::string>());
    b[0] ^= 1;
    t[field] = Base64Encode(b);
    refused(t);
  }
  json other_version = DecryptReq(e.body, "ctx");
  other_version["ciphertextMetadata"] = Base64Encode(Bytes{1, 0, 0, 0, 9});
  refused(other_version);
  json foreign = DecryptReq(e.body, "ctx");
  foreign["ciphertextMetadata"] = Base64Encode(AsBytes("key_version=1"));
  refused(foreign);
  // Another key's ciphertext.
  std::string other = NewKey();
  ExpectError(Send(KeyPath(other, "decrypt"), DecryptReq(e.body, "ctx")), 400, "InvalidCiphertextException");

  // Rotation: new ciphertexts under version 2, the old one still decrypts under version 1.
  ASSERT_TRUE(service_->Execute("RotateKeyOnDemand", {{"KeyId", key_}}, admin_).ok());
  Answer e2 = Send(KeyPath(key_, "encrypt"), EncryptReq("after rotation"));
  EXPECT_EQ(*Base64Decode(e2.body["ciphertextMetadata"].get<std::string>()), (Bytes{1, 0, 0, 0, 2}));
  EXPECT_EQ(Send(KeyPath(key_, "decrypt"), DecryptReq(e.body, "ctx")).body.value("plaintext", ""),
            Base64Encode(AsBytes("secret data key")));
  EXPECT_EQ(Send(KeyPath(key_, "decrypt"), DecryptReq(e2.body)).body.value("plaintext", ""),
            Base64Encode(AsBytes("after rotation")));
}

// Every error name of the spec's table, with its HTTP status, from a real cause.
TEST_F(XksTest, EveryErrorNameOfTheSpec) {
  // 400 ValidationException: missing request metadata, a body that is not JSON, a missing or
  // malformed field.
  json no_id = EncryptReq("x");
  no_id["requestMetadata"].erase("kmsRequestId");
  ExpectError(Send(KeyPath(key_, "encrypt"), no_id), 400, "ValidationException");
  ExpectError(Send(KeyPath(key_, "encrypt"), json("not an object")), 400, "ValidationException");
  json no_pt = EncryptReq("x");
  no_pt.erase("plaintext");
  ExpectError(Send(KeyPath(key_, "encrypt"), no_pt), 400, "ValidationException");
  json bad_b64 = EncryptReq("x");
  bad_b64["plaintext"] = "@@@";
  ExpectError(Send(KeyPath(key_, "encrypt"), bad_b64), 400, "ValidationException");
  // 400 InvalidStateException: the key is disabled (and its metadata says DISABLED).
  std::string disabled = NewKey();
  ASSERT_TRUE(service_->Execute("DisableKey", {{"KeyId", disabled}}, admin_).ok());
  ExpectError(Send(KeyPath(disabled, "encrypt"), EncryptReq("x")), 400, "InvalidStateException");
  EXPECT_EQ(Send(KeyPath(disabled, "metadata"), {{"requestMetadata", Meta("DescribeKey")}}).body["keyStatus"], "DISABLED");
  // 400 InvalidCiphertextException: above (AadAndMetadataAreBound...); here a missing tag's
  // metadata.
  json broken = DecryptReq(Send(KeyPath(key_, "encrypt"), EncryptReq("x")).body);
  broken.erase("ciphertextMetadata");
  ExpectError(Send(KeyPath(key_, "decrypt"), broken), 400, "InvalidCiphertextException");
  // 400 InvalidKeyUsageException: a signing key is not an AES key.
  std::string signing = NewKey({{"KeySpec", "ECC_NIST_P256"}, {"KeyUsage", "SIGN_VERIFY"}});
  ExpectError(Send(KeyPath(signing, "encrypt"), EncryptReq("x")), 400, "InvalidKeyUsageException");
  EXPECT_EQ(Send(KeyPath(signing, "metadata"), {{"requestMetadata", Meta("DescribeKey")}}).body["keyUsage"],
            (json{"SIGN", "VERIFY"}));
  // 401 AuthenticationFailedException: a wrong secret, a stale signature, a credential of
  // another URI prefix, a KMS API access key.
  NewXksCredential wrong{cred_.access_key_id, SecretBytes::CopyFrom(std::string_view("wrong-secret")), "/tenant-a", "", ""};
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq("x"), &wrong), 401, "AuthenticationFailedException");
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq("x"), nullptr, "POST", std::time(nullptr) - 3600), 401,
              "AuthenticationFailedException");
  auto other_prefix = xks_->CreateCredential("/tenant-b", "");
  ASSERT_OK(other_prefix.status());
  Answer cross = Send(KeyPath(key_, "encrypt"), EncryptReq("x"), &*other_prefix);
  ExpectError(cross, 401, "AuthenticationFailedException");
  EXPECT_THAT(cross.body.value("errorMessage", ""), HasSubstr("another URI prefix"));
  EXPECT_EQ(Send(KeyPath(key_, "encrypt", "/tenant-b"), EncryptReq("x"), &*other_prefix).status, 200);
  ASSERT_OK(store_->PutAccessKey({"CKIAKMSAPIONLY000001", "app", "arn:aws:iam::000000000000:user/app", Bytes{1, 2, 3}, 0}));
  NewXksCredential kms_key{"CKIAKMSAPIONLY000001", SecretBytes::CopyFrom(std::string_view("x")), "", "", ""};
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq("x"), &kms_key), 401, "AuthenticationFailedException");
  // 403 AccessDeniedException: the key policy denies this credential's principal.
  std::string guarded = NewKey();
  json policy = json::parse(DefaultKeyPolicy("000000000000"));
  policy["Statement"].push_back({{"Sid", "no-xks-encrypt"}, {"Effect", "Deny"}, {"Principal", {{"AWS", cred_.principal_arn}}},
                                 {"Action", "kms:Encrypt"}, {"Resource", "*"}});
  ASSERT_TRUE(service_->Execute("PutKeyPolicy", {{"KeyId", guarded}, {"PolicyName", "default"}, {"Policy", policy.dump()}}, admin_).ok());
  ExpectError(Send(KeyPath(guarded, "encrypt"), EncryptReq("x")), 403, "AccessDeniedException");
  EXPECT_EQ(Send(KeyPath(guarded, "metadata"), {{"requestMetadata", Meta("DescribeKey")}}).status, 200);
  // 404 KeyNotFoundException and InvalidUriPathException.
  ExpectError(Send(KeyPath("no-such-key", "encrypt"), EncryptReq("x")), 404, "KeyNotFoundException");
  ExpectError(Send(KeyPath("00000000-0000-0000-0000-000000000000", "metadata"), {{"requestMetadata", Meta()}}), 404,
              "KeyNotFoundException");
  ExpectError(Send(KeyPath(key_, "frobnicate"), EncryptReq("x")), 404, "InvalidUriPathException");
  ExpectError(Send("/tenant-a/kms/xks/v1/keys", EncryptReq("x")), 404, "InvalidUriPathException");
  ExpectError(Send("/tenant a/kms/xks/v1/health", EncryptReq("x")), 404, "InvalidUriPathException");
  // 405 for a GET, before authentication.
  Answer get = Send(KeyPath(key_, "encrypt"), json(), nullptr, "GET");
  EXPECT_EQ(get.status, 405);
  // 501 UnsupportedOperationException: another algorithm, another CDIV hash, more than this
  // proxy supports.
  json cbc = EncryptReq("x");
  cbc["encryptionAlgorithm"] = "AES_CBC";
  ExpectError(Send(KeyPath(key_, "encrypt"), cbc), 501, "UnsupportedOperationException");
  json sha1 = EncryptReq("x");
  sha1["ciphertextDataIntegrityValueAlgorithm"] = "SHA_1";
  ExpectError(Send(KeyPath(key_, "encrypt"), sha1), 501, "UnsupportedOperationException");
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq(std::string(8193, 'x'))), 501, "UnsupportedOperationException");
  // 429 ThrottlingException: a proxy limited to 3 requests per second and URI prefix.
  XksOptions slow;
  slow.max_requests_per_second = 3;
  auto limited = MakeApi(Core(*core_), slow);
  int throttled = 0;
  for (int i = 0; i < 6; ++i) {
    Answer a = Send(KeyPath(key_, "metadata"), {{"requestMetadata", Meta()}}, nullptr, "POST", 0, limited.get());
    if (a.status == 429) {
      ExpectError(a, 429, "ThrottlingException");
      ++throttled;
    }
  }
  EXPECT_EQ(throttled, 3);
  // 503 DependencyTimeoutException: a sealed core cannot open the credential.
  auto sealed_core = NewCore();
  ASSERT_OK(enclave::Call(*sealed_core, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  auto sealed = MakeApi(Core(*sealed_core));
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq("x"), nullptr, "POST", 0, sealed.get()), 503,
              "DependencyTimeoutException");
  // 500 InternalException: an answer that cannot be audited is not handed out.
  audit_fails_ = true;
  ExpectError(Send(KeyPath(key_, "encrypt"), EncryptReq("x")), 500, "InternalException");
  audit_fails_ = false;
}

// Two credentials per prefix at once: AWS KMS switches to the new one, then the old one is
// deleted and refused at once.
TEST_F(XksTest, CredentialsRotateWithoutDowntime) {
  auto second = xks_->CreateCredential("/tenant-a", "second");
  ASSERT_OK(second.status());
  EXPECT_EQ(second->access_key_id.size(), 24u);
  for (char c : second->access_key_id) EXPECT_TRUE((c >= 'A' && c <= 'Z') || (c >= '2' && c <= '7')) << c;
  EXPECT_EQ(second->secret_access_key.size(), 44u);
  EXPECT_EQ(Send(KeyPath(key_, "metadata"), {{"requestMetadata", Meta()}}).status, 200);
  EXPECT_EQ(Send(KeyPath(key_, "metadata"), {{"requestMetadata", Meta()}}, &*second).status, 200);
  auto listed = xks_->ListCredentials();
  ASSERT_OK(listed.status());
  ASSERT_EQ(listed->size(), 2u);
  EXPECT_EQ((*listed)[0].uri_prefix, "/tenant-a");
  ASSERT_OK(xks_->DeleteCredential(cred_.access_key_id));
  ExpectError(Send(KeyPath(key_, "metadata"), {{"requestMetadata", Meta()}}), 401, "AuthenticationFailedException");
  EXPECT_EQ(Send(KeyPath(key_, "metadata"), {{"requestMetadata", Meta()}}, &*second).status, 200);
  EXPECT_EQ(xks_->DeleteCredential(cred_.access_key_id).code(), ErrorCode::kNotFound);
  EXPECT_EQ(xks_->ListCredentials()->size(), 1u);
  // Bad prefixes and names are refused.
  EXPECT_EQ(xks_->CreateCredential("tenant", "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(xks_->CreateCredential("/a b", "").status().code(), ErrorCode::kInvalidArgument);
  for (const char* bad : {"/", "/a/", "/a//b", "//a", "/a.b"})
    EXPECT_EQ(xks_->CreateCredential(bad, "").status().code(), ErrorCode::kInvalidArgument) << bad;
  EXPECT_OK(xks_->CreateCredential("/a/b_c/D-9", "").status());
  EXPECT_EQ(xks_->CreateCredential("/" + std::string(120, 'a'), "").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(xks_->CreateCredential("/ok", "bad/name").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(xks_->CreateCredential("/tenant-a", "second").status().code(), ErrorCode::kAlreadyExists);
}

}  // namespace
}  // namespace custos::kms
