// The KMS calls of the trusted core (enclave/kms_ops.h), driven in-process through the call
// interface as the host drives them: every call's happy path and its documented refusals, the
// key-wrapping bindings (key id, version, spec, root key), the ciphertext blob's integrity, the
// audit chain across restarts, and one run through the real, seccomp-filtered custos-enclave
// process.
#include "appliance/enclave/kms_ops.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <climits>
#include <filesystem>

#include "protocol/audit/chain.h"
#include "crypto/aead.h"
#include "crypto/aes_cbc.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/enclave/core_testing.h"
#include "gmock/gmock.h"

extern char** environ;

namespace custos::enclave {
namespace {

using ecall::KeyRef;
using ::testing::HasSubstr;

#define EXPECT_REFUSED(expr, want_code, text)                                       \
  do {                                                                              \
    auto _refused = (expr);                                                         \
    EXPECT_EQ(_refused.status().code(), want_code) << _refused.status().ToString(); \
    EXPECT_THAT(_refused.status().message(), HasSubstr(text));                      \
  } while (0)

// Key is one created CMK version as the host keeps it.
struct Key {
  KeyRef ref;
  Bytes public_key;
  Bytes Ref() const { return ref.Encode(); }
};

Bytes Ctx(const ecall::EncryptionContext& c) { return ecall::EncodeEncryptionContext(c); }

// Evp owns an EVP_PKEY parsed from a SubjectPublicKeyInfo.
struct Evp {
  EVP_PKEY* key = nullptr;
  explicit Evp(ByteSpan spki) {
    const unsigned char* p = spki.data();
    key = d2i_PUBKEY(nullptr, &p, static_cast<long>(spki.size()));
    if (key != nullptr && p != spki.data() + spki.size()) {  // trailing bytes
      EVP_PKEY_free(key);
      key = nullptr;
    }
  }
  ~Evp() { EVP_PKEY_free(key); }
};

// OpensslVerifies checks a DER signature with OpenSSL directly, outside custos' code.
bool OpensslVerifies(ByteSpan spki, ByteSpan message, ByteSpan der_signature) {
  Evp pub(spki);
  if (pub.key == nullptr) return false;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = md != nullptr &&
            EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, pub.key) == 1 &&
            EVP_DigestVerify(md, der_signature.data(), der_signature.size(), message.data(),
                             message.size()) == 1;
  EVP_MD_CTX_free(md);
  return ok;
}

class KmsOpsTest : public CoreFixture {
 protected:
  // Unsealed returns a core that ran kInit (its own root key).
  std::unique_ptr<EnclaveCore> Unsealed(Bytes* envelope = nullptr, Bytes* origin = nullptr) {
    auto core = NewCore();
    EXPECT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}})
                  .status());
    auto init = Call(*core, ecall::Call::kInit, {});
    EXPECT_OK(init.status());
    if (init.ok() && envelope != nullptr) *envelope = (*init)[0];
    if (init.ok() && origin != nullptr) *origin = (*init)[1];
    return core;
  }

  // Joined returns a new core that joined `peer` (same root key, fresh process state).
  std::unique_ptr<EnclaveCore> Joined(EnclaveCore& peer) {
    auto core = NewCore();
    EXPECT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}})
                  .status());
    EXPECT_OK(Join(*core, peer));
    return core;
  }

  static Key Create(EnclaveCore& core, const std::string& id, uint32_t version,
                    std::string_view spec) {
    auto r = Call(core, ecall::Call::kKmsCreateKey,
                  {ToBytes(id), ecall::U32Arg(version), ToBytes(spec)});
    EXPECT_OK(r.status());
    Key k;
    k.ref = KeyRef{id, version, std::string(spec), r.ok() ? (*r)[0] : Bytes{}};
    if (r.ok()) k.public_key = (*r)[1];
    return k;
  }

  static Bytes Encrypt(EnclaveCore& core, const Key& k, ByteSpan plaintext, const Bytes& ctx) {
    auto r = Call(core, ecall::Call::kKmsEncrypt,
                  {k.Ref(), Bytes(plaintext.begin(), plaintext.end()), ctx});
    EXPECT_OK(r.status());
    return r.ok() ? (*r)[0] : Bytes{};
  }

  static StatusOr<std::vector<Bytes>> Decrypt(EnclaveCore& core, const Key& k, const Bytes& blob,
                                              const Bytes& ctx) {
    return Call(core, ecall::Call::kKmsDecrypt, {k.Ref(), blob, ctx});
  }
};

// Dummy arguments of the right arity for every KMS call.
std::vector<std::pair<ecall::Call, std::vector<Bytes>>> EveryKmsCall() {
  std::vector<std::pair<ecall::Call, std::vector<Bytes>>> out;
  for (ecall::Call c :
       {ecall::Call::kKmsCreateKey, ecall::Call::kKmsEncrypt, ecall::Call::kKmsDecrypt,
        ecall::Call::kKmsReEncrypt, ecall::Call::kKmsGenerateDataKey,
        ecall::Call::kKmsGenerateRandom, ecall::Call::kKmsSign, ecall::Call::kKmsVerify,
        ecall::Call::kKmsGenerateMac, ecall::Call::kKmsVerifyMac, ecall::Call::kKmsNewAccessSecret,
        ecall::Call::kKmsOpenAccessSecret, ecall::Call::kAuditAppend, ecall::Call::kXksEncrypt,
        ecall::Call::kXksDecrypt, ecall::Call::kKmipEncrypt, ecall::Call::kKmipDecrypt,
        ecall::Call::kKmsImportKey, ecall::Call::kAuditLine})
    out.push_back(
        {c, std::vector<Bytes>(static_cast<size_t>(ecall::ArgCount(c)), Bytes{0, 0, 0, 1})});
  return out;
}

TEST_F(KmsOpsTest, SealedCoreRefusesEveryKmsCall) {
  auto unloaded = NewCore();
  Bytes envelope, origin;
  Unsealed(&envelope, &origin);
  auto sealed = NewCore();  // loaded with an envelope, no quorum yet
  ASSERT_OK(Call(*sealed, ecall::Call::kLoad, {ToBytes(custody_.json), envelope, origin, Bytes{}})
                .status());
  for (EnclaveCore* core : {unloaded.get(), sealed.get()}) {
    for (const auto& [call, args] : EveryKmsCall()) {
      auto r = Call(*core, call, args);
      EXPECT_EQ(r.status().code(), ErrorCode::kFailedPrecondition) << ecall::CallName(call);
      EXPECT_EQ(r.status().message(), "enclave: sealed") << ecall::CallName(call);
    }
    EXPECT_FALSE(StatusOf(*core).contains("audit_public_key"));
  }
}

TEST_F(KmsOpsTest, CreateKeyForEachSpec) {
  auto core = Unsealed();
  Key sym = Create(*core, "k-sym", 1, ecall::kSpecSymmetric);
  Key hmac = Create(*core, "k-hmac", 1, ecall::kSpecHmac256);
  Key ecc = Create(*core, "k-ecc", 1, ecall::kSpecEccP256);
  // nonce (12) || 32 bytes of material || tag (16)
  for (const Key* k : {&sym, &hmac, &ecc}) EXPECT_EQ(k->ref.wrapped.size(), 60u) << k->ref.spec;
  EXPECT_TRUE(sym.public_key.empty());
  EXPECT_TRUE(hmac.public_key.empty());
  // ECC: a P-256 SubjectPublicKeyInfo (DER), as AWS GetPublicKey returns it.
  ASSERT_EQ(ecc.public_key.size(), 91u);
  Evp pub(ecc.public_key);
  ASSERT_NE(pub.key, nullptr);
  EXPECT_TRUE(EVP_PKEY_is_a(pub.key, "EC"));
  char group[64] = {};
  size_t group_len = 0;
  ASSERT_EQ(EVP_PKEY_get_utf8_string_param(pub.key, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                           sizeof(group), &group_len),
            1);
  EXPECT_EQ(std::string(group), "prime256v1");
  // Fresh material each time, even for the same id and version.
  Key again = Create(*core, "k-sym", 1, ecall::kSpecSymmetric);
  EXPECT_NE(again.ref.wrapped, sym.ref.wrapped);
  Key ecc2 = Create(*core, "k-ecc", 1, ecall::kSpecEccP256);
  EXPECT_NE(ecc2.public_key, ecc.public_key);

  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsCreateKey,
                      {ToBytes("k"), ecall::U32Arg(1), ToBytes("RSA_2048")}),
                 ErrorCode::kInvalidArgument, "kms: unsupported key spec");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsCreateKey,
                      {ToBytes("k"), Bytes{0, 1}, ToBytes(ecall::kSpecSymmetric)}),
                 ErrorCode::kInvalidArgument, "ecall kms-create-key: version: must be a 4-byte integer");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsCreateKey,
                      {Bytes{}, ecall::U32Arg(1), ToBytes(ecall::kSpecSymmetric)}),
                 ErrorCode::kInvalidArgument, "key id must be 1 to 2048 bytes");
}

TEST_F(KmsOpsTest, EncryptDecryptRoundTripWithTheDocumentedBlob) {
  auto core = Unsealed();
  Key k = Create(*core, "key-1", 3, ecall::kSpecSymmetric);
  Bytes ctx = Ctx({{"purpose", "test"}, {"tenant", "a"}});
  Bytes plaintext = ToBytes("attack at dawn");
  Bytes blob = Encrypt(*core, k, plaintext, ctx);
  // "CKC1" || suite 1 || var(key id) || u32 version || salt (32) || nonce (12) || ct || tag (16)
  ByteWriter header;
  header.Raw(AsBytes("CKC1")).U8(1).Var("key-1").U32(3);
  ASSERT_EQ(blob.size(), header.bytes().size() + 32 + 12 + plaintext.size() + 16);
  EXPECT_TRUE(std::equal(header.bytes().begin(), header.bytes().end(), blob.begin()));
  auto h = ecall::ParseCiphertextHeader(blob);
  ASSERT_OK(h.status());
  EXPECT_EQ(h->key_id, "key-1");
  EXPECT_EQ(h->version, 3u);
  // The plaintext does not appear in the blob, and each blob is fresh (salt and nonce).
  EXPECT_EQ(std::search(blob.begin(), blob.end(), plaintext.begin(), plaintext.end()), blob.end());
  Bytes blob2 = Encrypt(*core, k, plaintext, ctx);
  EXPECT_NE(Bytes(blob.begin() + 17, blob.begin() + 17 + 44),
            Bytes(blob2.begin() + 17, blob2.begin() + 17 + 44));

  auto back = Decrypt(*core, k, blob, ctx);
  ASSERT_OK(back.status());
  EXPECT_EQ((*back)[0], plaintext);
  // Empty context, and the largest plaintext.
  Bytes big(ecall::kMaxKmsPlaintext, 0x5c);
  Bytes big_blob = Encrypt(*core, k, big, Ctx({}));
  auto big_back = Decrypt(*core, k, big_blob, Ctx({}));
  ASSERT_OK(big_back.status());
  EXPECT_EQ((*big_back)[0], big);

  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                      {k.Ref(), Bytes(ecall::kMaxKmsPlaintext + 1, 1), Ctx({})}),
                 ErrorCode::kInvalidArgument, "plaintext must be 1 to 4096 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt, {k.Ref(), Bytes{}, Ctx({})}),
                 ErrorCode::kInvalidArgument, "plaintext must be 1 to 4096 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt, {k.Ref(), plaintext, Bytes{0, 0, 0}}),
                 ErrorCode::kInvalidArgument, "encryption context");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt, {Bytes{1, 2, 3}, plaintext, Ctx({})}),
                 ErrorCode::kInvalidArgument, "kms key ref");
}

TEST_F(KmsOpsTest, DecryptRefusesWrongContextAndEveryTamperedRegion) {
  auto core = Unsealed();
  Key k = Create(*core, "key-1", 1, ecall::kSpecSymmetric);
  Bytes ctx = Ctx({{"a", "1"}});
  Bytes blob = Encrypt(*core, k, ToBytes("sixteen byte msg"), ctx);
  for (const Bytes& other :
       {Ctx({}), Ctx({{"a", "2"}}), Ctx({{"a", "1"}, {"b", "1"}}), Ctx({{"A", "1"}})})
    EXPECT_REFUSED(Decrypt(*core, k, blob, other), ErrorCode::kIntegrity,
                   "kms: ciphertext does not authenticate");
  EXPECT_REFUSED(Decrypt(*core, k, blob, Bytes{0, 0, 0, 1}), ErrorCode::kInvalidArgument,
                 "encryption context");

  const size_t header = 4 + 1 + 4 + 5 + 4;
  struct Region {
    const char* name;
    size_t from, to;
    ErrorCode code;
    const char* text;
  };
  const Region regions[] = {
      {"magic", 0, 4, ErrorCode::kInvalidArgument, "bad magic"},
      {"suite", 4, 5, ErrorCode::kInvalidArgument, "unknown suite"},
      {"key id", 9, 14, ErrorCode::kInvalidArgument, "kms: ciphertext names another key"},
      {"version", 14, 18, ErrorCode::kInvalidArgument, "kms: ciphertext names another key"},
      {"salt", header, header + 32, ErrorCode::kIntegrity, "kms: ciphertext does not authenticate"},
      {"nonce", header + 32, header + 44, ErrorCode::kIntegrity,
       "kms: ciphertext does not authenticate"},
      {"ciphertext", header + 44, blob.size() - 16, ErrorCode::kIntegrity,
       "kms: ciphertext does not authenticate"},
      {"tag", blob.size() - 16, blob.size(), ErrorCode::kIntegrity,
       "kms: ciphertext does not authenticate"},
  };
  for (const Region& r : regions) {
    for (size_t i = r.from; i < r.to; ++i) {
      SCOPED_TRACE(std::string(r.name) + " byte " + std::to_string(i));
      Bytes bad = blob;
      bad[i] ^= 0x01;
      EXPECT_REFUSED(Decrypt(*core, k, bad, ctx), r.code, r.text);
    }
  }
  // Key id length, truncation and an appended byte.
  Bytes bad_len = blob;
  bad_len[8] ^= 0x01;
  EXPECT_EQ(Decrypt(*core, k, bad_len, ctx).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_REFUSED(Decrypt(*core, k, Bytes(blob.begin(), blob.end() - 1), ctx), ErrorCode::kIntegrity,
                 "does not authenticate");
  EXPECT_REFUSED(Decrypt(*core, k, Bytes(blob.begin(), blob.begin() + header + 59), ctx),
                 ErrorCode::kInvalidArgument, "too short");
  Bytes longer = blob;
  longer.push_back(0);
  EXPECT_REFUSED(Decrypt(*core, k, longer, ctx), ErrorCode::kIntegrity, "does not authenticate");
  // The untouched blob still decrypts.
  EXPECT_OK(Decrypt(*core, k, blob, ctx).status());
}

TEST_F(KmsOpsTest, DecryptRefusesAnotherKeysOrVersionsRef) {
  auto core = Unsealed();
  Key a1 = Create(*core, "key-a", 1, ecall::kSpecSymmetric);
  Key a2 = Create(*core, "key-a", 2, ecall::kSpecSymmetric);
  Key b1 = Create(*core, "key-b", 1, ecall::kSpecSymmetric);
  Bytes blob = Encrypt(*core, a1, ToBytes("for a1"), Ctx({}));
  EXPECT_REFUSED(Decrypt(*core, b1, blob, Ctx({})), ErrorCode::kInvalidArgument,
                 "kms: ciphertext names another key");
  EXPECT_REFUSED(Decrypt(*core, a2, blob, Ctx({})), ErrorCode::kInvalidArgument,
                 "kms: ciphertext names another key");
  // A ref with a1's name but a2's material: the name matches, the material does not unwrap.
  Key forged = a1;
  forged.ref.wrapped = a2.ref.wrapped;
  EXPECT_REFUSED(Decrypt(*core, forged, blob, Ctx({})), ErrorCode::kIntegrity,
                 "kms: key material does not unwrap");
  EXPECT_OK(Decrypt(*core, a1, blob, Ctx({})).status());
}

TEST_F(KmsOpsTest, WrappedMaterialMovedToAnotherIdVersionOrSpecDoesNotUnwrap) {
  auto core = Unsealed();
  Key sym = Create(*core, "key-a", 1, ecall::kSpecSymmetric);
  Key hmac = Create(*core, "key-h", 1, ecall::kSpecHmac256);
  const Bytes msg = ToBytes("m");
  auto moved = [&](std::string id, uint32_t version, std::string_view spec, const Bytes& wrapped) {
    return KeyRef{std::move(id), version, std::string(spec), wrapped}.Encode();
  };
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                      {moved("key-b", 1, ecall::kSpecSymmetric, sym.ref.wrapped), msg, Ctx({})}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                      {moved("key-a", 2, ecall::kSpecSymmetric, sym.ref.wrapped), msg, Ctx({})}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  // Symmetric material presented as an HMAC key, and HMAC material as a symmetric key.
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateMac,
                      {moved("key-a", 1, ecall::kSpecHmac256, sym.ref.wrapped), msg}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                      {moved("key-h", 1, ecall::kSpecSymmetric, hmac.ref.wrapped), msg, Ctx({})}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  for (size_t i = 0; i < sym.ref.wrapped.size(); ++i) {
    Bytes bad = sym.ref.wrapped;
    bad[i] ^= 0x80;
    EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                        {moved("key-a", 1, ecall::kSpecSymmetric, bad), msg, Ctx({})}),
                   ErrorCode::kIntegrity, "kms: key material does not unwrap");
  }
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt,
                      {moved("key-a", 1, ecall::kSpecSymmetric, Bytes(27, 0)), msg, Ctx({})}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
}

TEST_F(KmsOpsTest, AnotherRootCannotUnwrapOrDecrypt) {
  auto core = Unsealed();
  auto other = Unsealed();  // its own kInit: another root key
  Key k = Create(*core, "key-a", 1, ecall::kSpecSymmetric);
  Key e = Create(*core, "key-e", 1, ecall::kSpecEccP256);
  Bytes blob = Encrypt(*core, k, ToBytes("secret"), Ctx({}));
  EXPECT_REFUSED(Decrypt(*other, k, blob, Ctx({})), ErrorCode::kIntegrity,
                 "kms: key material does not unwrap");
  EXPECT_REFUSED(Call(*other, ecall::Call::kKmsEncrypt, {k.Ref(), ToBytes("x"), Ctx({})}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  EXPECT_REFUSED(Call(*other, ecall::Call::kKmsSign, {e.Ref(), ToBytes("x"), ToBytes("RAW")}),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
  EXPECT_NE(StatusOf(*core)["audit_public_key"], StatusOf(*other)["audit_public_key"]);
}

TEST_F(KmsOpsTest, KeyUsageIsCheckedForEveryOperation) {
  auto core = Unsealed();
  Key sym = Create(*core, "s", 1, ecall::kSpecSymmetric);
  Key hmac = Create(*core, "h", 1, ecall::kSpecHmac256);
  Key ecc = Create(*core, "e", 1, ecall::kSpecEccP256);
  Bytes blob = Encrypt(*core, sym, ToBytes("x"), Ctx({}));
  const ErrorCode fp = ErrorCode::kFailedPrecondition;
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsEncrypt, {hmac.Ref(), ToBytes("x"), Ctx({})}), fp,
                 "kms: key usage does not allow encrypt");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsDecrypt, {ecc.Ref(), blob, Ctx({})}), fp,
                 "kms: key usage does not allow decrypt");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateDataKey,
                      {ecc.Ref(), ecall::U32Arg(32), Ctx({}), Bytes{1}}),
                 fp, "kms: key usage does not allow generate data key");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsReEncrypt, {sym.Ref(), blob, Ctx({}), hmac.Ref(), Ctx({})}), fp,
      "kms: key usage does not allow encrypt");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsReEncrypt, {ecc.Ref(), blob, Ctx({}), sym.Ref(), Ctx({})}), fp,
      "kms: key usage does not allow decrypt");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsSign, {sym.Ref(), ToBytes("x"), ToBytes("RAW")}), fp,
                 "kms: key usage does not allow sign");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsVerify, {hmac.Ref(), ToBytes("x"), ToBytes("RAW"), Bytes{0x30}}),
      fp, "kms: key usage does not allow verify");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateMac, {sym.Ref(), ToBytes("x")}), fp,
                 "kms: key usage does not allow generate mac");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerifyMac, {ecc.Ref(), ToBytes("x"), Bytes(32, 0)}),
                 fp, "kms: key usage does not allow verify mac");
}

TEST_F(KmsOpsTest, ReEncryptMovesACiphertextToAnotherKeyAndContext) {
  auto core = Unsealed();
  Key a = Create(*core, "key-a", 1, ecall::kSpecSymmetric);
  Key b = Create(*core, "key-b", 4, ecall::kSpecSymmetric);
  Bytes blob = Encrypt(*core, a, ToBytes("moving"), Ctx({{"from", "a"}}));
  auto r = Call(*core, ecall::Call::kKmsReEncrypt,
                {a.Ref(), blob, Ctx({{"from", "a"}}), b.Ref(), Ctx({{"to", "b"}})});
  ASSERT_OK(r.status());
  auto h = ecall::ParseCiphertextHeader((*r)[0]);
  ASSERT_OK(h.status());
  EXPECT_EQ(h->key_id, "key-b");
  EXPECT_EQ(h->version, 4u);
  auto back = Decrypt(*core, b, (*r)[0], Ctx({{"to", "b"}}));
  ASSERT_OK(back.status());
  EXPECT_EQ((*back)[0], ToBytes("moving"));
  EXPECT_REFUSED(Decrypt(*core, b, (*r)[0], Ctx({{"from", "a"}})), ErrorCode::kIntegrity,
                 "does not authenticate");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsReEncrypt, {a.Ref(), blob, Ctx({}), b.Ref(), Ctx({})}),
      ErrorCode::kIntegrity, "kms: ciphertext does not authenticate");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsReEncrypt,
                      {b.Ref(), blob, Ctx({{"from", "a"}}), a.Ref(), Ctx({})}),
                 ErrorCode::kInvalidArgument, "kms: ciphertext names another key");
}

TEST_F(KmsOpsTest, GenerateDataKeyWithAndWithoutPlaintext) {
  auto core = Unsealed();
  Key k = Create(*core, "key-a", 1, ecall::kSpecSymmetric);
  Bytes ctx = Ctx({{"bucket", "b1"}});
  auto with =
      Call(*core, ecall::Call::kKmsGenerateDataKey, {k.Ref(), ecall::U32Arg(32), ctx, Bytes{1}});
  ASSERT_OK(with.status());
  ASSERT_EQ(with->size(), 2u);
  EXPECT_EQ((*with)[1].size(), 32u);
  auto opened = Decrypt(*core, k, (*with)[0], ctx);
  ASSERT_OK(opened.status());
  EXPECT_EQ((*opened)[0], (*with)[1]);

  auto without =
      Call(*core, ecall::Call::kKmsGenerateDataKey, {k.Ref(), ecall::U32Arg(32), ctx, Bytes{0}});
  ASSERT_OK(without.status());
  EXPECT_TRUE((*without)[1].empty());
  auto key = Decrypt(*core, k, (*without)[0], ctx);
  ASSERT_OK(key.status());
  EXPECT_EQ((*key)[0].size(), 32u);
  EXPECT_NE((*key)[0], (*with)[1]);

  auto largest =
      Call(*core, ecall::Call::kKmsGenerateDataKey, {k.Ref(), ecall::U32Arg(1024), ctx, Bytes{1}});
  ASSERT_OK(largest.status());
  EXPECT_EQ((*largest)[1].size(), 1024u);
  for (uint32_t n : {0u, 1025u})
    EXPECT_REFUSED(
        Call(*core, ecall::Call::kKmsGenerateDataKey, {k.Ref(), ecall::U32Arg(n), ctx, Bytes{1}}),
        ErrorCode::kInvalidArgument, "a data key must be 1 to 1024 bytes");
  for (const Bytes& flag : {Bytes{}, Bytes{2}, Bytes{1, 0}})
    EXPECT_REFUSED(
        Call(*core, ecall::Call::kKmsGenerateDataKey, {k.Ref(), ecall::U32Arg(32), ctx, flag}),
        ErrorCode::kInvalidArgument, "with_plaintext");
}

TEST_F(KmsOpsTest, GenerateRandomHonoursItsBounds) {
  auto core = Unsealed();
  for (uint32_t n : {1u, 32u, 1024u}) {
    auto r = Call(*core, ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(n)});
    ASSERT_OK(r.status());
    EXPECT_EQ((*r)[0].size(), n);
  }
  auto a = Call(*core, ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(32)});
  auto b = Call(*core, ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(32)});
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_NE((*a)[0], (*b)[0]);
  for (uint32_t n : {0u, 1025u})
    EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(n)}),
                   ErrorCode::kInvalidArgument, "random output must be 1 to 1024 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateRandom, {Bytes{1}}),
                 ErrorCode::kInvalidArgument, "4-byte integer");
}

TEST_F(KmsOpsTest, SignProducesDerSignaturesThatOpensslAndVerifyAccept) {
  auto core = Unsealed();
  Key k = Create(*core, "key-e", 1, ecall::kSpecEccP256);
  Bytes message = ToBytes("a message to sign");
  auto raw = Call(*core, ecall::Call::kKmsSign, {k.Ref(), message, ToBytes("RAW")});
  ASSERT_OK(raw.status());
  const Bytes& sig = (*raw)[0];
  EXPECT_EQ(sig[0], 0x30);  // DER SEQUENCE, not P1363
  EXPECT_GE(sig.size(), 8u);
  EXPECT_LE(sig.size(), 72u);
  EXPECT_TRUE(OpensslVerifies(k.public_key, message, sig));
  EXPECT_FALSE(OpensslVerifies(k.public_key, ToBytes("another message"), sig));
  EXPECT_OK(Call(*core, ecall::Call::kKmsVerify, {k.Ref(), message, ToBytes("RAW"), sig}).status());

  // DIGEST: the caller hashed; a signature over the digest is a signature over the message.
  crypto::Digest d = crypto::Sha256(message);
  Bytes digest(d.begin(), d.end());
  auto over_digest = Call(*core, ecall::Call::kKmsSign, {k.Ref(), digest, ToBytes("DIGEST")});
  ASSERT_OK(over_digest.status());
  EXPECT_TRUE(OpensslVerifies(k.public_key, message, (*over_digest)[0]));
  EXPECT_OK(
      Call(*core, ecall::Call::kKmsVerify, {k.Ref(), message, ToBytes("RAW"), (*over_digest)[0]})
          .status());
  EXPECT_OK(
      Call(*core, ecall::Call::kKmsVerify, {k.Ref(), digest, ToBytes("DIGEST"), sig}).status());

  const ErrorCode integrity = ErrorCode::kIntegrity;
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerify,
                      {k.Ref(), ToBytes("another message"), ToBytes("RAW"), sig}),
                 integrity, "kms: signature does not verify");
  // Signed by another key of the same spec.
  Key other = Create(*core, "key-f", 1, ecall::kSpecEccP256);
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerify, {other.Ref(), message, ToBytes("RAW"), sig}),
                 integrity, "kms: signature does not verify");
  Bytes flipped = sig;
  flipped[flipped.size() - 1] ^= 1;
  Bytes trailing = sig;
  trailing.push_back(0);
  for (const Bytes& bad : {flipped, trailing, Bytes{}, Bytes(64, 1), Bytes{0x30, 0x00}})
    EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerify, {k.Ref(), message, ToBytes("RAW"), bad}),
                   integrity, "kms: signature does not verify");

  const ErrorCode invalid = ErrorCode::kInvalidArgument;
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsSign, {k.Ref(), message, ToBytes("raw")}), invalid,
                 "RAW or DIGEST");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsSign, {k.Ref(), Bytes(31, 1), ToBytes("DIGEST")}),
                 invalid, "32 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsSign, {k.Ref(), Bytes{}, ToBytes("RAW")}), invalid,
                 "1 to 4096 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsSign, {k.Ref(), Bytes(4097, 1), ToBytes("RAW")}),
                 invalid, "1 to 4096 bytes");
  EXPECT_OK(Call(*core, ecall::Call::kKmsSign, {k.Ref(), Bytes(4096, 1), ToBytes("RAW")}).status());
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerify, {k.Ref(), message, ToBytes("PSS"), sig}),
                 invalid, "RAW or DIGEST");
}

TEST_F(KmsOpsTest, MacsVerifyAndRefuseEveryMismatch) {
  auto core = Unsealed();
  Key k = Create(*core, "key-h", 1, ecall::kSpecHmac256);
  Key other = Create(*core, "key-i", 1, ecall::kSpecHmac256);
  Bytes message = ToBytes("authenticate me");
  auto mac = Call(*core, ecall::Call::kKmsGenerateMac, {k.Ref(), message});
  ASSERT_OK(mac.status());
  ASSERT_EQ((*mac)[0].size(), 32u);
  auto again = Call(*core, ecall::Call::kKmsGenerateMac, {k.Ref(), message});
  ASSERT_OK(again.status());
  EXPECT_EQ((*again)[0], (*mac)[0]);  // deterministic
  EXPECT_OK(Call(*core, ecall::Call::kKmsVerifyMac, {k.Ref(), message, (*mac)[0]}).status());

  Bytes flipped = (*mac)[0];
  flipped[0] ^= 1;
  Bytes shorter((*mac)[0].begin(), (*mac)[0].end() - 1);
  Bytes longer = (*mac)[0];
  longer.push_back(0);
  for (const Bytes& bad : {flipped, shorter, longer, Bytes{}})
    EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerifyMac, {k.Ref(), message, bad}),
                   ErrorCode::kIntegrity, "kms: mac does not verify");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsVerifyMac, {k.Ref(), ToBytes("authenticate mE"), (*mac)[0]}),
      ErrorCode::kIntegrity, "kms: mac does not verify");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsVerifyMac, {other.Ref(), message, (*mac)[0]}),
                 ErrorCode::kIntegrity, "kms: mac does not verify");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateMac, {k.Ref(), Bytes(4097, 1)}),
                 ErrorCode::kInvalidArgument, "message must be 1 to 4096 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsGenerateMac, {k.Ref(), Bytes{}}),
                 ErrorCode::kInvalidArgument, "message must be 1 to 4096 bytes");
}

TEST_F(KmsOpsTest, AccessSecretsRoundTripOnlyUnderTheirId) {
  auto core = Unsealed();
  auto made = Call(*core, ecall::Call::kKmsNewAccessSecret, {ToBytes("AKIAEXAMPLE0001"), ecall::U32Arg(30)});
  ASSERT_OK(made.status());
  const Bytes& secret = (*made)[0];
  const Bytes& wrapped = (*made)[1];
  ASSERT_EQ(secret.size(), kAccessSecretSize);
  for (uint8_t c : secret)
    EXPECT_TRUE(std::isalnum(c) || c == '+' || c == '/') << static_cast<int>(c);
  EXPECT_EQ(wrapped.size(), 12u + 40u + 16u);
  auto opened =
      Call(*core, ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAEXAMPLE0001"), wrapped});
  ASSERT_OK(opened.status());
  EXPECT_EQ((*opened)[0], secret);
  auto second = Call(*core, ecall::Call::kKmsNewAccessSecret, {ToBytes("AKIAEXAMPLE0001"), ecall::U32Arg(30)});
  ASSERT_OK(second.status());
  EXPECT_NE((*second)[0], secret);

  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAEXAMPLE0002"), wrapped}),
      ErrorCode::kIntegrity, "access secret does not unwrap");
  Bytes bad = wrapped;
  bad[20] ^= 1;
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAEXAMPLE0001"), bad}),
                 ErrorCode::kIntegrity, "access secret does not unwrap");
  auto other = Unsealed();
  EXPECT_REFUSED(
      Call(*other, ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAEXAMPLE0001"), wrapped}),
      ErrorCode::kIntegrity, "access secret does not unwrap");
  // A CMK's wrapped material is not an access secret (different key and AAD).
  Key k = Create(*core, "AKIAEXAMPLE0001", 1, ecall::kSpecSymmetric);
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAEXAMPLE0001"), k.ref.wrapped}),
      ErrorCode::kIntegrity, "access secret does not unwrap");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsNewAccessSecret, {Bytes{}, ecall::U32Arg(30)}),
                 ErrorCode::kInvalidArgument, "access key id must be 1 to 128 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsNewAccessSecret, {Bytes(129, 'A'), ecall::U32Arg(30)}),
                 ErrorCode::kInvalidArgument, "access key id must be 1 to 128 bytes");
}

// XKS credentials carry 256 bits: 32 random bytes, 44 base64 characters, opened like any.
TEST_F(KmsOpsTest, XksSecretsHave256BitsAndOpenLikeAccessSecrets) {
  auto core = Unsealed();
  auto made = Call(*core, ecall::Call::kKmsNewAccessSecret, {ToBytes("XKSEXAMPLE00000000001"), ecall::U32Arg(32)});
  ASSERT_OK(made.status());
  EXPECT_EQ((*made)[0].size(), kXksSecretSize);
  EXPECT_EQ(Base64Decode(std::string((*made)[0].begin(), (*made)[0].end()))->size(), 32u);
  auto opened = Call(*core, ecall::Call::kKmsOpenAccessSecret, {ToBytes("XKSEXAMPLE00000000001"), (*made)[1]});
  ASSERT_OK(opened.status());
  EXPECT_EQ((*opened)[0], (*made)[0]);
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsNewAccessSecret, {ToBytes("XKSEXAMPLE00000000001"), ecall::U32Arg(16)}),
                 ErrorCode::kInvalidArgument, "an access secret carries 30 or 32 random bytes");
}

// xks-encrypt / xks-decrypt: AES-256-GCM with the host's AAD, IV and tag apart; anything
// edited, another AAD, another key or version, or a non-AES key is refused.
TEST_F(KmsOpsTest, XksEncryptDecryptAuthenticatesEverything) {
  auto core = Unsealed();
  Key k = Create(*core, "xks-key", 1, ecall::kSpecSymmetric);
  Bytes pt = ToBytes("Hello World!");
  Bytes aad = ToBytes("project=nile,department=marketing");
  auto enc = Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), pt, aad});
  ASSERT_OK(enc.status());
  const Bytes iv = (*enc)[0], ct = (*enc)[1], tag = (*enc)[2];
  EXPECT_EQ(iv.size(), 12u);
  EXPECT_EQ(ct.size(), pt.size());
  EXPECT_EQ(tag.size(), 16u);
  EXPECT_NE(ct, pt);
  auto dec = Call(*core, ecall::Call::kXksDecrypt, {k.Ref(), iv, ct, tag, aad});
  ASSERT_OK(dec.status());
  EXPECT_EQ((*dec)[0], pt);
  // A fresh IV every time.
  auto again = Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), pt, aad});
  ASSERT_OK(again.status());
  EXPECT_NE((*again)[0], iv);

  auto refused = [&](const Bytes& i, const Bytes& c, const Bytes& t, const Bytes& a, const Key& key) {
    EXPECT_REFUSED(Call(*core, ecall::Call::kXksDecrypt, {key.Ref(), i, c, t, a}), ErrorCode::kIntegrity,
                   "xks ciphertext does not authenticate");
  };
  Bytes bad = ct;
  bad[0] ^= 1;
  refused(iv, bad, tag, aad, k);
  bad = tag;
  bad[15] ^= 1;
  refused(iv, ct, bad, aad, k);
  bad = iv;
  bad[3] ^= 1;
  refused(bad, ct, tag, aad, k);
  refused(iv, ct, tag, ToBytes("project=nile"), k);
  refused(iv, ct, tag, {}, k);
  refused(Bytes(16, 1), ct, tag, aad, k);
  Key other = Create(*core, "xks-key", 2, ecall::kSpecSymmetric);  // another version
  refused(iv, ct, tag, aad, other);
  // The KMS blob construction and XKS never share a key: the same material's blob key differs.
  Key mac = Create(*core, "mac-key", 1, ecall::kSpecHmac256);
  EXPECT_REFUSED(Call(*core, ecall::Call::kXksEncrypt, {mac.Ref(), pt, aad}), ErrorCode::kFailedPrecondition,
                 "does not allow encrypt");
  EXPECT_REFUSED(Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), Bytes{}, aad}), ErrorCode::kInvalidArgument,
                 "plaintext must be 1 to 8192 bytes");
  EXPECT_OK(Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), Bytes(8192, 7), Bytes(ecall::kMaxXksAad, 1)}).status());
  EXPECT_REFUSED(Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), pt, Bytes(ecall::kMaxXksAad + 1, 1)}),
                 ErrorCode::kInvalidArgument, "xks aad must be");
}

// ---- KMIP raw AES (kmip-encrypt, kmip-decrypt) ----

using KmipEnc = ecall::KmipEncrypt::Args;
using KmipDec = ecall::KmipDecrypt::Args;

KmipEnc KmipEncArgs(const Key& k, uint32_t key_bits, uint32_t mode, Bytes iv, ByteSpan plaintext,
                    Bytes aad, uint32_t tag_length) {
  return KmipEnc{k.ref,          key_bits,  mode, std::move(iv), WipedBuffer::CopyOf(plaintext),
                 std::move(aad), tag_length};
}

KmipDec KmipDecArgs(const Key& k, uint32_t key_bits, uint32_t mode, Bytes iv, Bytes ciphertext,
                    Bytes aad, Bytes tag) {
  return KmipDec{k.ref,          key_bits,      mode, std::move(iv), std::move(ciphertext),
                 std::move(aad), std::move(tag)};
}

// KmipEncrypt/KmipDecrypt run the typed calls through the byte encoding, as the host will.
StatusOr<ecall::KmipEncrypt::Result> KmipEncrypt(EnclaveCore& core, const KmipEnc& a) {
  return ecall::Invoke<ecall::KmipEncrypt>(
      [&core](ecall::Call call, std::vector<Bytes> args) {
        return Call(core, call, std::move(args));
      },
      a);
}
StatusOr<ecall::KmipDecrypt::Result> KmipDecrypt(EnclaveCore& core, const KmipDec& a) {
  return ecall::Invoke<ecall::KmipDecrypt>(
      [&core](ecall::Call call, std::vector<Bytes> args) {
        return Call(core, call, std::move(args));
      },
      a);
}

Bytes PlainOf(const StatusOr<ecall::KmipDecrypt::Result>& r) {
  return r.ok() ? Bytes(r->plaintext.view().begin(), r->plaintext.view().end()) : Bytes{};
}

#define EXPECT_CIPHERTEXT_INVALID(expr, text)                                                   \
  do {                                                                                          \
    auto _refused = (expr);                                                                     \
    EXPECT_EQ(_refused.status().code(), ErrorCode::kIntegrity) << _refused.status().ToString(); \
    EXPECT_EQ(_refused.status().message(), std::string("enclave: ") + (text));                  \
    EXPECT_EQ(_refused.status().reason(),                                                       \
              static_cast<uint16_t>(ecall::Reason::kCiphertextInvalid));                        \
  } while (0)

// GCM: 128- and 256-bit keys, tag lengths 12 to 16, with and without AAD, empty and largest
// plaintexts; an IV the core draws (fresh each time) or the client's.
TEST_F(KmsOpsTest, KmipGcmRoundTripsEveryKeyLengthTagLengthAndSize) {
  auto core = Unsealed();
  Key k = Create(*core, "kmip-key", 1, ecall::kSpecSymmetric);
  const Bytes plaintexts[] = {Bytes{}, ToBytes("Hello KMIP"),
                              crypto::RandomBytes(ecall::kMaxKmipData)};
  const Bytes aads[] = {Bytes{}, ToBytes("header"), Bytes(ecall::kMaxKmipAad, 0x5a)};
  for (uint32_t bits : {128u, 256u}) {
    for (uint32_t tag_length : {12u, 13u, 16u}) {
      for (const Bytes& pt : plaintexts) {
        for (const Bytes& aad : aads) {
          SCOPED_TRACE(::testing::Message() << bits << " bits, tag " << tag_length << ", "
                                            << pt.size() << " bytes, aad " << aad.size());
          auto enc = KmipEncrypt(
              *core, KmipEncArgs(k, bits, ecall::kKmipModeGcm, {}, pt, aad, tag_length));
          ASSERT_OK(enc.status());
          EXPECT_EQ(enc->iv.size(), 12u);
          EXPECT_EQ(enc->ciphertext.size(), pt.size());
          EXPECT_EQ(enc->tag.size(), tag_length);
          if (!pt.empty()) {
            EXPECT_NE(enc->ciphertext, pt);
          }
          auto dec = KmipDecrypt(*core, KmipDecArgs(k, bits, ecall::kKmipModeGcm, enc->iv,
                                                    enc->ciphertext, aad, enc->tag));
          ASSERT_OK(dec.status());
          EXPECT_EQ(PlainOf(dec), pt);
        }
      }
    }
  }
  // A fresh IV each time; a given IV is used as given (and the same IV, key and message give
  // the same ciphertext: GCM is deterministic in its IV).
  Bytes pt = ToBytes("same message");
  auto a = KmipEncrypt(*core, KmipEncArgs(k, 256, ecall::kKmipModeGcm, {}, pt, {}, 16));
  auto b = KmipEncrypt(*core, KmipEncArgs(k, 256, ecall::kKmipModeGcm, {}, pt, {}, 16));
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_NE(a->iv, b->iv);
  Bytes iv = crypto::RandomBytes(12);
  auto c = KmipEncrypt(*core, KmipEncArgs(k, 256, ecall::kKmipModeGcm, iv, pt, {}, 16));
  auto d = KmipEncrypt(*core, KmipEncArgs(k, 256, ecall::kKmipModeGcm, iv, pt, {}, 12));
  ASSERT_OK(c.status());
  ASSERT_OK(d.status());
  EXPECT_EQ(c->iv, iv);
  EXPECT_EQ(c->ciphertext, d->ciphertext);
  EXPECT_EQ(d->tag,
            Bytes(c->tag.begin(), c->tag.begin() + 12));  // a short tag is the long one's start
}

// CBC with PKCS#7 padding (any length, a whole block more for whole blocks) and without (whole
// blocks only, the ciphertext as long), 128- and 256-bit keys; no tag.
TEST_F(KmsOpsTest, KmipCbcRoundTripsWithAndWithoutPadding) {
  auto core = Unsealed();
  Key k = Create(*core, "kmip-key", 1, ecall::kSpecSymmetric);
  for (uint32_t bits : {128u, 256u}) {
    for (size_t n :
         {size_t{1}, size_t{15}, size_t{16}, size_t{17}, size_t{100}, ecall::kMaxKmipData}) {
      SCOPED_TRACE(::testing::Message() << bits << " bits, padded, " << n << " bytes");
      Bytes pt = crypto::RandomBytes(n);
      auto enc = KmipEncrypt(*core, KmipEncArgs(k, bits, ecall::kKmipModeCbcPkcs7, {}, pt, {}, 0));
      ASSERT_OK(enc.status());
      EXPECT_EQ(enc->iv.size(), 16u);
      EXPECT_EQ(enc->ciphertext.size(), (n / 16 + 1) * 16);
      EXPECT_TRUE(enc->tag.empty());
      auto dec = KmipDecrypt(
          *core, KmipDecArgs(k, bits, ecall::kKmipModeCbcPkcs7, enc->iv, enc->ciphertext, {}, {}));
      ASSERT_OK(dec.status());
      EXPECT_EQ(PlainOf(dec), pt);
    }
    for (size_t n : {size_t{16}, size_t{48}, ecall::kMaxKmipData}) {
      SCOPED_TRACE(::testing::Message() << bits << " bits, unpadded, " << n << " bytes");
      Bytes pt = crypto::RandomBytes(n);
      Bytes iv = crypto::RandomBytes(16);
      auto enc =
          KmipEncrypt(*core, KmipEncArgs(k, bits, ecall::kKmipModeCbcNoPadding, iv, pt, {}, 0));
      ASSERT_OK(enc.status());
      EXPECT_EQ(enc->iv, iv);
      EXPECT_EQ(enc->ciphertext.size(), n);
      EXPECT_TRUE(enc->tag.empty());
      auto dec = KmipDecrypt(
          *core, KmipDecArgs(k, bits, ecall::kKmipModeCbcNoPadding, iv, enc->ciphertext, {}, {}));
      ASSERT_OK(dec.status());
      EXPECT_EQ(PlainOf(dec), pt);
    }
  }
  auto a =
      KmipEncrypt(*core, KmipEncArgs(k, 128, ecall::kKmipModeCbcPkcs7, {}, ToBytes("m"), {}, 0));
  auto b =
      KmipEncrypt(*core, KmipEncArgs(k, 128, ecall::kKmipModeCbcPkcs7, {}, ToBytes("m"), {}, 0));
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_NE(a->iv, b->iv);
}

// The KMIP key is HKDF-SHA256(material, "", "custos/v1/kmip-aes-<bits>", bits / 8): ciphertexts
// the core makes open under that key computed here from material the test chose, and under
// nothing else (the material itself, the other length's key, the XKS key).
TEST(KmsKeyringTest, KmipKeyIsHkdfOfTheMaterialPerKeyLength) {
  SecretBytes root = crypto::RandomSecret(32);
  auto keyring = KmsKeyring::Derive(root);
  auto wrapper = KmsKeyring::Derive(root);
  ASSERT_OK(keyring.status());
  ASSERT_OK(wrapper.status());
  SecretBytes material = crypto::RandomSecret(32);
  Key k;
  k.ref = KeyRef{"kmip-known", 7, std::string(ecall::kSpecSymmetric),
                 wrapper->WrapMaterial("kmip-known", 7, ecall::kSpecSymmetric, material)};
  KmsOperations ops(std::move(keyring).value());
  auto serve = [&ops](ecall::Call call, std::vector<Bytes> args) {
    return ops.Serve(ecall::Request{call, std::move(args)});
  };
  auto derive = [&material](std::string_view info, size_t n) {
    auto key = crypto::Hkdf(material.Expose(), {}, AsBytes(info), n);
    EXPECT_OK(key.status());
    return std::move(key).value();
  };
  SecretBytes k128 = derive("custos/v1/kmip-aes-128", 16);
  SecretBytes k256 = derive("custos/v1/kmip-aes-256", 32);
  SecretBytes xks = derive("custos/v1/xks-aes-gcm", 32);
  Bytes pt = ToBytes("known material, known key");
  Bytes aad = ToBytes("aad");

  for (uint32_t bits : {128u, 256u}) {
    SCOPED_TRACE(bits);
    const SecretBytes& mine = bits == 128 ? k128 : k256;
    const SecretBytes& other = bits == 128 ? k256 : k128;
    auto enc = ecall::Invoke<ecall::KmipEncrypt>(
        serve, KmipEncArgs(k, bits, ecall::kKmipModeGcm, {}, pt, aad, 14));
    ASSERT_OK(enc.status());
    Bytes out(pt.size());
    ASSERT_OK(
        crypto::AesGcm::Create(mine)->OpenDetached(enc->iv, enc->ciphertext, enc->tag, aad, out));
    EXPECT_EQ(out, pt);
    for (const SecretBytes* wrong : {&other, static_cast<const SecretBytes*>(&xks),
                                     static_cast<const SecretBytes*>(&material)})
      EXPECT_EQ(crypto::AesGcm::Create(*wrong)
                    ->OpenDetached(enc->iv, enc->ciphertext, enc->tag, aad, out)
                    .code(),
                ErrorCode::kIntegrity);
    // And the other way: what this test seals under the derived key, the core opens.
    Bytes iv = crypto::RandomBytes(12), ct(pt.size()), tag(16);
    ASSERT_OK(crypto::AesGcm::Create(mine)->SealDetached(iv, pt, aad, ct, tag));
    auto dec = ecall::Invoke<ecall::KmipDecrypt>(
        serve, KmipDecArgs(k, bits, ecall::kKmipModeGcm, iv, ct, aad, tag));
    ASSERT_OK(dec.status());
    EXPECT_EQ(PlainOf(dec), pt);

    for (uint32_t mode : {ecall::kKmipModeCbcPkcs7, ecall::kKmipModeCbcNoPadding}) {
      const auto padding =
          mode == ecall::kKmipModeCbcPkcs7 ? crypto::CbcPadding::kPkcs7 : crypto::CbcPadding::kNone;
      Bytes block_pt = crypto::RandomBytes(32);
      auto cbc =
          ecall::Invoke<ecall::KmipEncrypt>(serve, KmipEncArgs(k, bits, mode, {}, block_pt, {}, 0));
      ASSERT_OK(cbc.status());
      auto opened = crypto::AesCbc::Create(mine, padding)->Decrypt(cbc->iv, cbc->ciphertext);
      ASSERT_OK(opened.status());
      EXPECT_EQ(HexEncode(opened->Expose()), HexEncode(block_pt));
    }
  }
}

// Every documented refusal: key usage, key length, mode, IV, tag length, AAD and tag with CBC,
// sizes; then decryption of anything edited or opened under another key, length, IV or AAD.
TEST_F(KmsOpsTest, KmipRefusesBadArgumentsAndEditedCiphertexts) {
  auto core = Unsealed();
  Key k = Create(*core, "kmip-key", 1, ecall::kSpecSymmetric);
  Key mac = Create(*core, "mac-key", 1, ecall::kSpecHmac256);
  const uint32_t gcm = ecall::kKmipModeGcm, cbc = ecall::kKmipModeCbcPkcs7,
                 raw = ecall::kKmipModeCbcNoPadding;
  Bytes pt = ToBytes("attack at dawn");
  Bytes aad = ToBytes("aad");
  const auto kInvalid = ErrorCode::kInvalidArgument;

  // Arguments, on encrypt.
  EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(mac, 256, gcm, {}, pt, aad, 16)),
                 ErrorCode::kFailedPrecondition, "kms: key usage does not allow encrypt");
  for (uint32_t bits : {0u, 64u, 192u, 512u, 16u, 32u})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, bits, gcm, {}, pt, aad, 16)), kInvalid,
                   "kmip: key length must be 128 or 256 bits");
  for (uint32_t mode : {0u, 4u, 0xffffffffu})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 256, mode, {}, pt, {}, 0)), kInvalid,
                   "kmip: mode must be");
  for (size_t n : {1, 8, 11, 13, 16})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 256, gcm, Bytes(n), pt, aad, 16)), kInvalid,
                   "kmip: an AES-GCM IV must be 12 bytes");
  for (size_t n : {1, 12, 15, 17, 32})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 256, cbc, Bytes(n), pt, {}, 0)), kInvalid,
                   "kmip: an AES-CBC IV must be 16 bytes");
  for (uint32_t t : {0u, 4u, 11u, 17u, 32u})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 256, gcm, {}, pt, aad, t)), kInvalid,
                   "kmip: an AES-GCM tag length must be 12 to 16 bytes");
  EXPECT_REFUSED(
      KmipEncrypt(*core, KmipEncArgs(k, 256, gcm, {}, Bytes(ecall::kMaxKmipData + 1), aad, 16)),
      kInvalid, "kmip: plaintext must be 0 to 65536 bytes");
  EXPECT_REFUSED(
      KmipEncrypt(*core, KmipEncArgs(k, 256, gcm, {}, pt, Bytes(ecall::kMaxKmipAad + 1), 16)),
      kInvalid, "kmip: aad must be 0 to 8192 bytes");
  for (uint32_t mode : {cbc, raw}) {
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 128, mode, {}, Bytes(16), aad, 0)), kInvalid,
                   "kmip: AES-CBC takes no aad");
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 128, mode, {}, Bytes(16), {}, 16)), kInvalid,
                   "kmip: AES-CBC takes no tag length");
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 128, mode, {}, Bytes{}, {}, 0)), kInvalid,
                   "kmip: plaintext must be");
  }
  EXPECT_REFUSED(
      KmipEncrypt(*core, KmipEncArgs(k, 128, cbc, {}, Bytes(ecall::kMaxKmipData + 1), {}, 0)),
      kInvalid, "kmip: plaintext must be 1 to 65536 bytes");
  for (size_t n : {size_t{1}, size_t{15}, size_t{17}, ecall::kMaxKmipData + 16})
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(k, 128, raw, {}, Bytes(n), {}, 0)), kInvalid,
                   "kmip: plaintext must be a multiple of 16 bytes, 16 to 65536 bytes (AES-CBC "
                   "without padding)");
  // A field that does not decode is the ecall layer's refusal; the handler is not reached.
  {
    std::vector<Bytes> args = ecall::EncodeFields(KmipEncArgs(k, 256, gcm, {}, pt, aad, 16));
    args[1] = Bytes{1, 0};
    EXPECT_REFUSED(Call(*core, ecall::Call::kKmipEncrypt, args), kInvalid,
                   "ecall kmip-encrypt: key_bits");
  }

  // Arguments, on decrypt.
  auto enc = KmipEncrypt(*core, KmipEncArgs(k, 256, gcm, {}, pt, aad, 16));
  ASSERT_OK(enc.status());
  const Bytes iv = enc->iv, ct = enc->ciphertext, tag = enc->tag;
  ASSERT_OK(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, aad, tag)).status());
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(mac, 256, gcm, iv, ct, aad, tag)),
                 ErrorCode::kFailedPrecondition, "kms: key usage does not allow decrypt");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 192, gcm, iv, ct, aad, tag)), kInvalid,
                 "kmip: key length must be 128 or 256 bits");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 256, 9, iv, ct, aad, tag)), kInvalid,
                 "kmip: mode must be");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, {}, ct, aad, tag)), kInvalid,
                 "kmip: an AES-GCM IV must be 12 bytes");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, Bytes(16), ct, aad, tag)), kInvalid,
                 "kmip: an AES-GCM IV must be 12 bytes");
  for (size_t t : {0, 11, 17})
    EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, aad, Bytes(t))), kInvalid,
                   "kmip: an AES-GCM tag must be 12 to 16 bytes");
  EXPECT_REFUSED(
      KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, Bytes(ecall::kMaxKmipAad + 1), tag)),
      kInvalid, "kmip: aad must be 0 to 8192 bytes");
  EXPECT_REFUSED(
      KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, Bytes(ecall::kMaxKmipData + 1), aad, tag)),
      kInvalid, "kmip: ciphertext must be 0 to 65536 bytes");

  // GCM: anything edited, or another key, length, version, IV or AAD, does not authenticate.
  const std::string no_auth = "kmip: ciphertext does not authenticate";
  Bytes bad = tag;
  bad[15] ^= 0x01;
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, aad, bad)),
                            no_auth);
  // The tag length is not bound to the ciphertext (GCM truncates): the first 12 to 15 bytes of a
  // 16-byte tag authenticate too, so decrypting takes down to 96 bits of tag from anyone.
  for (size_t t : {12, 15}) {
    auto cut =
        KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, aad,
                                       Bytes(tag.begin(), tag.begin() + static_cast<long>(t))));
    ASSERT_OK(cut.status());
    EXPECT_EQ(PlainOf(cut), pt);
    bad = Bytes(tag.begin(), tag.begin() + static_cast<long>(t));
    bad[0] ^= 0x80;
    EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, aad, bad)),
                              no_auth);
  }
  bad = ct;
  bad[0] ^= 0x01;
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, bad, aad, tag)),
                            no_auth);
  bad = iv;
  bad[0] ^= 0x01;
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, bad, ct, aad, tag)),
                            no_auth);
  EXPECT_CIPHERTEXT_INVALID(
      KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, ToBytes("aae"), tag)), no_auth);
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, iv, ct, {}, tag)), no_auth);
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 128, gcm, iv, ct, aad, tag)),
                            no_auth);
  Key other = Create(*core, "kmip-key", 2, ecall::kSpecSymmetric);
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(other, 256, gcm, iv, ct, aad, tag)),
                            no_auth);
  // The XKS key of the same version is another key: an XKS ciphertext is not a KMIP one.
  auto xks = Call(*core, ecall::Call::kXksEncrypt, {k.Ref(), pt, aad});
  ASSERT_OK(xks.status());
  EXPECT_CIPHERTEXT_INVALID(
      KmipDecrypt(*core, KmipDecArgs(k, 256, gcm, (*xks)[0], (*xks)[1], aad, (*xks)[2])), no_auth);

  // CBC: no AAD, no tag, whole blocks; a malformed last block is "bad padding" and nothing more.
  auto cenc = KmipEncrypt(*core, KmipEncArgs(k, 128, cbc, {}, pt, {}, 0));
  ASSERT_OK(cenc.status());
  const Bytes civ = cenc->iv, cct = cenc->ciphertext;
  ASSERT_EQ(cct.size(), 16u);
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, civ, cct, aad, {})), kInvalid,
                 "kmip: AES-CBC takes no aad");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, civ, cct, {}, Bytes(16))), kInvalid,
                 "kmip: AES-CBC takes no tag");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, Bytes(12), cct, {}, {})), kInvalid,
                 "kmip: an AES-CBC IV must be 16 bytes");
  EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, {}, cct, {}, {})), kInvalid,
                 "kmip: an AES-CBC IV must be 16 bytes");
  for (size_t n : {size_t{0}, size_t{15}, size_t{17}, ecall::kMaxKmipData + 32})
    EXPECT_REFUSED(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, civ, Bytes(n), {}, {})), kInvalid,
                   "kmip: ciphertext must be a multiple of 16 bytes, 16 to 65552 bytes");
  EXPECT_REFUSED(
      KmipDecrypt(*core, KmipDecArgs(k, 128, raw, civ, Bytes(ecall::kMaxKmipData + 16), {}, {})),
      kInvalid,
      "kmip: ciphertext must be a multiple of 16 bytes, 16 to 65536 bytes (AES-CBC without "
      "padding)");
  // "attack at dawn" is 14 bytes: the pad is 02 02. An IV edited in its last byte edits the
  // pad: 02 03 is bad padding; 02 01 is good padding and another message (CBC has no integrity).
  bad = civ;
  bad[15] ^= 0x01;
  EXPECT_CIPHERTEXT_INVALID(KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, bad, cct, {}, {})),
                            "kmip: bad padding");
  bad = civ;
  bad[15] ^= 0x03;
  auto edited = KmipDecrypt(*core, KmipDecArgs(k, 128, cbc, bad, cct, {}, {}));
  ASSERT_OK(edited.status());
  EXPECT_EQ(PlainOf(edited), Concat({pt, Bytes{0x02}}));
  // A plaintext of whole blocks encrypted unpadded and decrypted padded: its last byte, 0x00,
  // is no pad length.
  auto unpadded = KmipEncrypt(*core, KmipEncArgs(k, 256, raw, {}, Bytes(32, 0), {}, 0));
  ASSERT_OK(unpadded.status());
  EXPECT_CIPHERTEXT_INVALID(
      KmipDecrypt(*core, KmipDecArgs(k, 256, cbc, unpadded->iv, unpadded->ciphertext, {}, {})),
      "kmip: bad padding");
  // Unpadded decryption checks nothing: under the wrong key length it returns other bytes.
  auto wrong_length =
      KmipDecrypt(*core, KmipDecArgs(k, 128, raw, unpadded->iv, unpadded->ciphertext, {}, {}));
  ASSERT_OK(wrong_length.status());
  EXPECT_NE(PlainOf(wrong_length), Bytes(32, 0));
}

// ---- imported KMIP keys (kms-import-key, spec KMIP_AES) ----

// ImportKmipKey registers `material` through the typed call, as the host does.
StatusOr<Key> ImportKmipKey(EnclaveCore& core, const std::string& id, uint32_t version,
                            std::string_view spec, ByteSpan material) {
  auto r = ecall::Invoke<ecall::KmsImportKey>(
      [&core](ecall::Call call, std::vector<Bytes> args) {
        return Call(core, call, std::move(args));
      },
      ecall::KmsImportKey::Args{id, version, std::string(spec), WipedBuffer::CopyOf(material)});
  if (!r.ok()) return r.status();
  Key k;
  k.ref = KeyRef{id, version, std::string(spec), std::move(r->wrapped)};
  return k;
}

// A registered key is the client's AES key itself: what the core encrypts opens under the
// material the test chose (GCM and CBC), what the test seals the core opens, and the key the
// core would have derived from that material (SYMMETRIC_DEFAULT's HKDF) opens nothing.
TEST_F(KmsOpsTest, ImportedKmipKeyIsUsedAsGivenWithoutDerivation) {
  auto core = Unsealed();
  for (size_t n : {size_t{16}, size_t{32}}) {
    SCOPED_TRACE(n);
    const uint32_t bits = static_cast<uint32_t>(n * 8);
    SecretBytes material = crypto::RandomSecret(n);
    auto k = ImportKmipKey(*core, "registered-" + std::to_string(n), 1, ecall::kSpecKmipAes,
                           material.Expose());
    ASSERT_OK(k.status());
    EXPECT_EQ(k->ref.wrapped.size(), 12 + n + 16);  // wrapped as kms-create-key wraps
    // The same material imported again wraps under a fresh nonce.
    auto again = ImportKmipKey(*core, k->ref.key_id, 1, ecall::kSpecKmipAes, material.Expose());
    ASSERT_OK(again.status());
    EXPECT_NE(again->ref.wrapped, k->ref.wrapped);

    Bytes pt = ToBytes("the client holds this key too");
    Bytes aad = ToBytes("aad");
    auto enc = KmipEncrypt(*core, KmipEncArgs(*k, bits, ecall::kKmipModeGcm, {}, pt, aad, 16));
    ASSERT_OK(enc.status());
    Bytes out(pt.size());
    auto gcm = crypto::AesGcm::Create(material);
    ASSERT_OK(gcm.status());
    ASSERT_OK(gcm->OpenDetached(enc->iv, enc->ciphertext, enc->tag, aad, out));
    EXPECT_EQ(out, pt);
    auto derived =
        crypto::Hkdf(material.Expose(), {},
                     AsBytes(bits == 128 ? "custos/v1/kmip-aes-128" : "custos/v1/kmip-aes-256"), n);
    ASSERT_OK(derived.status());
    EXPECT_EQ(crypto::AesGcm::Create(*derived)
                  ->OpenDetached(enc->iv, enc->ciphertext, enc->tag, aad, out)
                  .code(),
              ErrorCode::kIntegrity);
    // The client's ciphertext (sealed here) opens in the core.
    Bytes iv = crypto::RandomBytes(12), ct(pt.size()), tag(16);
    ASSERT_OK(gcm->SealDetached(iv, pt, aad, ct, tag));
    auto dec = KmipDecrypt(*core, KmipDecArgs(*k, bits, ecall::kKmipModeGcm, iv, ct, aad, tag));
    ASSERT_OK(dec.status());
    EXPECT_EQ(PlainOf(dec), pt);
    // CBC with PKCS#7 padding, both ways.
    auto cbc_enc =
        KmipEncrypt(*core, KmipEncArgs(*k, bits, ecall::kKmipModeCbcPkcs7, {}, pt, {}, 0));
    ASSERT_OK(cbc_enc.status());
    auto cbc = crypto::AesCbc::Create(material, crypto::CbcPadding::kPkcs7);
    ASSERT_OK(cbc.status());
    auto opened = cbc->Decrypt(cbc_enc->iv, cbc_enc->ciphertext);
    ASSERT_OK(opened.status());
    EXPECT_EQ(HexEncode(opened->Expose()), HexEncode(pt));
    Bytes cbc_iv = crypto::RandomBytes(16);
    auto client_ct = cbc->Encrypt(cbc_iv, pt);
    ASSERT_OK(client_ct.status());
    auto cbc_dec = KmipDecrypt(
        *core, KmipDecArgs(*k, bits, ecall::kKmipModeCbcPkcs7, cbc_iv, *client_ct, {}, {}));
    ASSERT_OK(cbc_dec.status());
    EXPECT_EQ(PlainOf(cbc_dec), pt);

    // key_bits must be the registered key's length, on both directions.
    const uint32_t other_bits = bits == 128 ? 256 : 128;
    EXPECT_REFUSED(
        KmipEncrypt(*core, KmipEncArgs(*k, other_bits, ecall::kKmipModeGcm, {}, pt, aad, 16)),
        ErrorCode::kInvalidArgument, "kmip: key length does not match the registered key");
    EXPECT_REFUSED(
        KmipDecrypt(*core, KmipDecArgs(*k, other_bits, ecall::kKmipModeGcm, iv, ct, aad, tag)),
        ErrorCode::kInvalidArgument, "kmip: key length does not match the registered key");
    EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(*k, 192, ecall::kKmipModeGcm, {}, pt, aad, 16)),
                   ErrorCode::kInvalidArgument, "kmip: key length must be 128 or 256 bits");

    // The wrapping binds the spec: the blob presented as SYMMETRIC_DEFAULT (which would derive)
    // does not unwrap, and a SYMMETRIC_DEFAULT blob presented as KMIP_AES does not either.
    Key as_symmetric = *k;
    as_symmetric.ref.spec = std::string(ecall::kSpecSymmetric);
    EXPECT_REFUSED(
        KmipEncrypt(*core, KmipEncArgs(as_symmetric, bits, ecall::kKmipModeGcm, {}, pt, aad, 16)),
        ErrorCode::kIntegrity, "kms: key material does not unwrap");
  }
  Key sym = Create(*core, "generated", 1, ecall::kSpecSymmetric);
  Key as_imported = sym;
  as_imported.ref.spec = std::string(ecall::kSpecKmipAes);
  EXPECT_REFUSED(KmipEncrypt(*core, KmipEncArgs(as_imported, 256, ecall::kKmipModeGcm, {},
                                                ToBytes("m"), {}, 16)),
                 ErrorCode::kIntegrity, "kms: key material does not unwrap");
}

// kms-import-key takes only KMIP_AES with 16 or 32 bytes, and its refusals never echo the
// material; kms-create-key cannot make a KMIP_AES key (there is nothing to draw: it is imported).
TEST_F(KmsOpsTest, ImportKeyRefusesOtherSpecsAndSizes) {
  auto core = Unsealed();
  Bytes material = crypto::RandomBytes(32);
  for (std::string_view spec : {ecall::kSpecSymmetric, ecall::kSpecEccP256, std::string_view("AES_256")}) {
    auto r = ImportKmipKey(*core, "k", 1, spec, material);
    EXPECT_REFUSED(r, ErrorCode::kInvalidArgument, "kms: an imported key's spec must be KMIP_AES or HMAC_256");
  }
  // An imported HMAC_256 key is 32 bytes, and MACs as given.
  EXPECT_REFUSED(ImportKmipKey(*core, "h", 1, ecall::kSpecHmac256, crypto::RandomBytes(16)), ErrorCode::kInvalidArgument,
                 "kms: an imported HMAC_256 key must be 32 bytes");
  auto hmac = ImportKmipKey(*core, "h", 1, ecall::kSpecHmac256, material);
  ASSERT_OK(hmac.status());
  auto mac = Call(*core, ecall::Call::kKmsGenerateMac, {hmac->Ref(), ToBytes("message")});
  ASSERT_OK(mac.status());
  crypto::Digest want = crypto::HmacSha256(material, AsBytes("message"));
  EXPECT_EQ((*mac)[0], Bytes(want.begin(), want.end()));
  for (size_t n : {size_t{0}, size_t{1}, size_t{15}, size_t{17}, size_t{24}, size_t{31}, size_t{33},
                   size_t{64}}) {
    Bytes m = crypto::RandomBytes(n);
    auto r = ImportKmipKey(*core, "k", 1, ecall::kSpecKmipAes, m);
    EXPECT_REFUSED(r, ErrorCode::kInvalidArgument,
                   "kms: imported key material must be 16 or 32 bytes (AES-128 or AES-256)");
    // The material never shows in the message. (Checked from 8 bytes: the hex of one random
    // byte, "56" say, can occur in the message's own text, "AES-256", once in 256 runs.)
    if (n >= 8) {
      EXPECT_THAT(r.status().message(), ::testing::Not(HasSubstr(HexEncode(m))));
    }
  }
  EXPECT_REFUSED(ImportKmipKey(*core, "", 1, ecall::kSpecKmipAes, material),
                 ErrorCode::kInvalidArgument, "kms: key id must be 1 to 2048 bytes");
  EXPECT_REFUSED(ImportKmipKey(*core, std::string(2049, 'k'), 1, ecall::kSpecKmipAes, material),
                 ErrorCode::kInvalidArgument, "kms: key id must be 1 to 2048 bytes");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsImportKey,
                      {ToBytes("k"), Bytes{0, 1}, ToBytes(ecall::kSpecKmipAes), material}),
                 ErrorCode::kInvalidArgument,
                 "ecall kms-import-key: version: must be a 4-byte integer");
  EXPECT_REFUSED(Call(*core, ecall::Call::kKmsCreateKey,
                      {ToBytes("k"), ecall::U32Arg(1), ToBytes(ecall::kSpecKmipAes)}),
                 ErrorCode::kInvalidArgument, "kms: unsupported key spec");
}

// Every KMS and XKS call that takes a key refuses a KMIP_AES key by its spec, before unwrapping
// (reason key-usage): a registered key serves only kmip-encrypt and kmip-decrypt.
TEST_F(KmsOpsTest, KmsCallsRefuseAnImportedKmipKey) {
  auto core = Unsealed();
  auto imported =
      ImportKmipKey(*core, "registered", 1, ecall::kSpecKmipAes, crypto::RandomBytes(32));
  ASSERT_OK(imported.status());
  const Key& kmip = *imported;
  Key sym = Create(*core, "s", 1, ecall::kSpecSymmetric);
  Bytes blob = Encrypt(*core, sym, ToBytes("x"), Ctx({}));
  // A blob that names the imported key, as a host could present one.
  ByteWriter named;
  named.Raw(AsBytes("CKC1")).U8(1).Var(kmip.ref.key_id).U32(1).Raw(Bytes(32 + 12 + 1 + 16, 0));
  const Bytes kmip_blob = named.Take();
  const ErrorCode fp = ErrorCode::kFailedPrecondition;
  struct Refused {
    ecall::Call call;
    std::vector<Bytes> args;
    const char* op;
  };
  const Refused calls[] = {
      {ecall::Call::kKmsEncrypt, {kmip.Ref(), ToBytes("x"), Ctx({})}, "encrypt"},
      {ecall::Call::kKmsDecrypt, {kmip.Ref(), kmip_blob, Ctx({})}, "decrypt"},
      {ecall::Call::kKmsGenerateDataKey,
       {kmip.Ref(), ecall::U32Arg(32), Ctx({}), Bytes{1}},
       "generate data key"},
      {ecall::Call::kKmsReEncrypt, {sym.Ref(), blob, Ctx({}), kmip.Ref(), Ctx({})}, "encrypt"},
      {ecall::Call::kKmsReEncrypt, {kmip.Ref(), kmip_blob, Ctx({}), sym.Ref(), Ctx({})}, "decrypt"},
      {ecall::Call::kKmsSign, {kmip.Ref(), ToBytes("x"), ToBytes("RAW")}, "sign"},
      {ecall::Call::kKmsVerify, {kmip.Ref(), ToBytes("x"), ToBytes("RAW"), Bytes{0x30}}, "verify"},
      {ecall::Call::kKmsGenerateMac, {kmip.Ref(), ToBytes("x")}, "generate mac"},
      {ecall::Call::kKmsVerifyMac, {kmip.Ref(), ToBytes("x"), Bytes(32, 0)}, "verify mac"},
      {ecall::Call::kXksEncrypt, {kmip.Ref(), ToBytes("x"), ToBytes("aad")}, "encrypt"},
      {ecall::Call::kXksDecrypt, {kmip.Ref(), Bytes(12), Bytes(1), Bytes(16), Bytes{}}, "decrypt"},
  };
  for (const Refused& c : calls) {
    SCOPED_TRACE(ecall::CallName(c.call));
    auto r = Call(*core, c.call, c.args);
    EXPECT_REFUSED(r, fp, std::string("kms: key usage does not allow ") + c.op);
    EXPECT_EQ(r.status().reason(), static_cast<uint16_t>(ecall::Reason::kKeyUsage));
  }
}

// ---- audit chain ----

Bytes Entries(const std::vector<std::string>& entries) {
  ByteWriter w;
  w.U32(static_cast<uint32_t>(entries.size()));
  for (const std::string& e : entries) w.Var(e);
  return w.Take();
}

// Chain recomputes the head after `entries` from `from`, as an offline verifier would.
audit::Head Chain(audit::Head from, const std::vector<std::string>& entries) {
  for (const std::string& e : entries) {
    ++from.seq;
    from.hash = audit::EntryHash(from.hash, from.seq, e);
  }
  return from;
}

crypto::VerifyingKey AuditKeyOf(EnclaveCore& core) {
  nlohmann::json s = StatusOf(core);
  auto bytes = HexDecode(s.value("audit_public_key", std::string()));
  EXPECT_OK(bytes.status());
  EXPECT_EQ(bytes.ok() ? bytes->size() : 0, 33u);
  auto key = crypto::VerifyingKey::Decode(bytes.ok() ? *bytes : Bytes{});
  if (!key.ok()) {
    ADD_FAILURE() << "audit_public_key does not decode";
    return crypto::SigningKey::Generate().verifying_key();
  }
  return *key;
}

TEST_F(KmsOpsTest, AuditAppendsChainAndSignHeads) {
  auto core = Unsealed();
  crypto::VerifyingKey audit_key = AuditKeyOf(*core);
  std::vector<std::string> first = {R"({"op":"CreateKey"})", R"({"op":"Encrypt"})"};
  auto r1 = Call(*core, ecall::Call::kAuditAppend, {Bytes{}, Entries(first)});
  ASSERT_OK(r1.status());
  audit::Head want1 = Chain({0, audit::GenesisHash()}, first);
  EXPECT_EQ((*r1)[0], audit::EncodeHead(want1.seq, want1.hash));
  ASSERT_EQ((*r1)[1].size(), 64u);
  EXPECT_OK(audit_key.Verify(audit::CheckpointMessage(want1.seq, want1.hash), (*r1)[1]));

  Bytes anchor1 = Concat({(*r1)[0], (*r1)[1]});
  std::vector<std::string> second = {R"({"op":"Decrypt"})"};
  auto r2 = Call(*core, ecall::Call::kAuditAppend, {anchor1, Entries(second)});
  ASSERT_OK(r2.status());
  audit::Head want2 = Chain(want1, second);
  EXPECT_EQ(want2.seq, 3u);
  EXPECT_EQ((*r2)[0], audit::EncodeHead(want2.seq, want2.hash));
  EXPECT_OK(audit_key.Verify(audit::CheckpointMessage(want2.seq, want2.hash), (*r2)[1]));
  Bytes anchor2 = Concat({(*r2)[0], (*r2)[1]});

  const ErrorCode fp = ErrorCode::kFailedPrecondition;
  // A stale anchor (genuinely signed, but not the last head), an empty anchor once a head is
  // signed, and a fork (same seq, another hash) are refused.
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend, {anchor1, Entries(second)}), fp,
                 "audit: anchor is not the current head");
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend, {Bytes{}, Entries(second)}), fp,
                 "audit: anchor is not the current head");
  Bytes fork = anchor2;
  fork[8] ^= 1;
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend, {fork, Entries(second)}), fp,
                 "audit: anchor is not the current head");
  // Malformed requests.
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend, {anchor2, Entries({})}),
                 ErrorCode::kInvalidArgument, "audit: no entries");
  Bytes trailing = Entries(second);
  trailing.push_back(0);
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend, {anchor2, trailing}),
                 ErrorCode::kInvalidArgument, "trailing bytes");
  EXPECT_REFUSED(
      Call(*core, ecall::Call::kAuditAppend, {anchor2, Bytes{0, 0, 0, 2, 0, 0, 0, 1, 'x'}}),
      ErrorCode::kInvalidArgument, "audit: entry");
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditAppend,
                      {Bytes(anchor2.begin(), anchor2.end() - 1), Entries(second)}),
                 ErrorCode::kInvalidArgument, "anchor must be");
  // None of the refusals moved the head: the current one still extends.
  auto r3 = Call(*core, ecall::Call::kAuditAppend, {anchor2, Entries({"e4", "e5"})});
  ASSERT_OK(r3.status());
  EXPECT_EQ((*r3)[0], audit::EncodeHead(5, Chain(want2, {"e4", "e5"}).hash));
}

// The line statement (docs/protocol.md "Audit witness"): the core vouches, under one run id,
// for heads it signed in its current run, and for nothing else.
TEST_F(KmsOpsTest, AuditLineVouchesOnlyForHeadsSignedInThisRun) {
  auto core = Unsealed();
  crypto::VerifyingKey audit_key = AuditKeyOf(*core);
  const ErrorCode fp = ErrorCode::kFailedPrecondition;
  // Nothing signed yet in this run: not even the genesis head.
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditLine, {audit::EncodeHead(0, audit::GenesisHash())}), fp,
                 "is not one this core signed recently in its current run");
  auto r1 = Call(*core, ecall::Call::kAuditAppend, {Bytes{}, Entries({"a", "b"})});
  ASSERT_OK(r1.status());
  auto r2 = Call(*core, ecall::Call::kAuditAppend, {Concat({(*r1)[0], (*r1)[1]}), Entries({"c"})});
  ASSERT_OK(r2.status());
  Bytes run_id;
  for (const Bytes& head : {(*r1)[0], (*r2)[0]}) {
    auto line = Call(*core, ecall::Call::kAuditLine, {head});
    ASSERT_OK(line.status());
    ASSERT_EQ((*line)[0].size(), audit::kRunIdSize);
    if (run_id.empty()) run_id = (*line)[0];
    EXPECT_EQ((*line)[0], run_id);  // one run, one id
    auto h = audit::DecodeHead(head);
    ASSERT_OK(h.status());
    EXPECT_OK(audit_key.Verify(audit::LineMessage(run_id, h->seq, h->hash), (*line)[1]));
    // The signature is over the line message, not a checkpoint: it cannot stand for one.
    EXPECT_FALSE(audit_key.Verify(audit::CheckpointMessage(h->seq, h->hash), (*line)[1]).ok());
  }
  // A head it did not sign: another hash at a signed seq, a seq between, a seq beyond.
  Bytes other = (*r2)[0];
  other[8] ^= 1;
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditLine, {other}), fp, "head seq 3 is not one this core signed");
  auto h1 = audit::DecodeHead((*r1)[0]);
  ASSERT_OK(h1.status());
  Bytes between = audit::EncodeHead(1, audit::EntryHash(audit::GenesisHash(), 1, "a"));
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditLine, {between}), fp, "head seq 1 is not one");
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditLine, {audit::EncodeHead(9, h1->hash)}), fp, "head seq 9 is not one");
  EXPECT_REFUSED(Call(*core, ecall::Call::kAuditLine, {Bytes{1, 2, 3}}), ErrorCode::kInvalidArgument, "");

}

// Another run (a restarted core: a new KmsOperations over the same root key) that anchors on
// a head the first run signed has another run id and vouches for nothing the first run signed
// until it signs itself.
TEST_F(KmsOpsTest, AuditLineOfAnotherRunHasAnotherIdAndStartsEmpty) {
  SecretBytes root = SecretBytes::CopyFrom(crypto::RandomBytes(32));
  auto keyring1 = KmsKeyring::Derive(root);
  auto keyring2 = KmsKeyring::Derive(root);
  ASSERT_OK(keyring1.status());
  ASSERT_OK(keyring2.status());
  KmsOperations first(std::move(*keyring1)), second(std::move(*keyring2));
  auto serve = [](KmsOperations& ops, ecall::Call call, std::vector<Bytes> args) {
    return ops.Serve(ecall::Request{call, std::move(args)});
  };
  auto r1 = serve(first, ecall::Call::kAuditAppend, {Bytes{}, Entries({"a"})});
  ASSERT_OK(r1.status());
  auto line1 = serve(first, ecall::Call::kAuditLine, {(*r1)[0]});
  ASSERT_OK(line1.status());
  EXPECT_REFUSED(serve(second, ecall::Call::kAuditLine, {(*r1)[0]}), ErrorCode::kFailedPrecondition,
                 "is not one this core signed");
  auto r2 = serve(second, ecall::Call::kAuditAppend, {Concat({(*r1)[0], (*r1)[1]}), Entries({"b"})});
  ASSERT_OK(r2.status());
  auto line2 = serve(second, ecall::Call::kAuditLine, {(*r2)[0]});
  ASSERT_OK(line2.status());
  EXPECT_EQ((*line2)[0].size(), audit::kRunIdSize);
  EXPECT_NE((*line2)[0], (*line1)[0]);
}

TEST_F(KmsOpsTest, AuditAfterRestartAcceptsTheStoredAnchorAndRefusesAForgedOne) {
  auto core = Unsealed();
  auto r1 = Call(*core, ecall::Call::kAuditAppend, {Bytes{}, Entries({"one", "two"})});
  ASSERT_OK(r1.status());
  Bytes stored = Concat({(*r1)[0], (*r1)[1]});

  // A restarted core (same root key, learnt through a join): same audit key, and the stored
  // signed head is accepted once, by its signature.
  auto restarted = Joined(*core);
  ASSERT_FALSE(restarted->sealed());
  crypto::VerifyingKey key = AuditKeyOf(*restarted);
  EXPECT_TRUE(key == AuditKeyOf(*core));
  // Forged anchors: another hash under the genuine signature, another seq, a signature by
  // another key, a zero signature.
  Bytes other_hash = stored;
  other_hash[20] ^= 1;
  Bytes other_seq = stored;
  other_seq[7] ^= 1;
  audit::Head fake{2, crypto::RandomBytes(32)};
  Bytes foreign =
      Concat({audit::EncodeHead(fake.seq, fake.hash),
              crypto::SigningKey::Generate().Sign(audit::CheckpointMessage(fake.seq, fake.hash))});
  Bytes zero_sig = Concat({(*r1)[0], Bytes(64, 0)});
  for (const Bytes& forged : {other_hash, other_seq, foreign, zero_sig})
    EXPECT_REFUSED(Call(*restarted, ecall::Call::kAuditAppend, {forged, Entries({"three"})}),
                   ErrorCode::kIntegrity, "audit: anchor signature does not verify");
  auto r2 = Call(*restarted, ecall::Call::kAuditAppend, {stored, Entries({"three"})});
  ASSERT_OK(r2.status());
  audit::Head want = Chain(Chain({0, audit::GenesisHash()}, {"one", "two"}), {"three"});
  EXPECT_EQ((*r2)[0], audit::EncodeHead(3, want.hash));
  EXPECT_OK(key.Verify(audit::CheckpointMessage(3, want.hash), (*r2)[1]));
  // From now on the restarted core holds its own head: the older stored anchor is stale.
  EXPECT_REFUSED(Call(*restarted, ecall::Call::kAuditAppend, {stored, Entries({"four"})}),
                 ErrorCode::kFailedPrecondition, "audit: anchor is not the current head");
  // A core with another root key has another audit key: the stored anchor does not verify there.
  auto stranger = Unsealed();
  EXPECT_REFUSED(Call(*stranger, ecall::Call::kAuditAppend, {stored, Entries({"x"})}),
                 ErrorCode::kIntegrity, "audit: anchor signature does not verify");
}

TEST_F(KmsOpsTest, EveryWayToTheRootKeyDerivesTheSameKeyring) {
  Bytes envelope, origin;
  auto first = Unsealed(&envelope, &origin);
  Key k = Create(*first, "key-a", 1, ecall::kSpecSymmetric);
  Bytes blob = Encrypt(*first, k, ToBytes("survives restarts"), Ctx({}));
  // Quorum unseal of the stored envelope (1 provider + 2 customers).
  auto unsealed = NewCore();
  ASSERT_OK(Call(*unsealed, ecall::Call::kLoad, {ToBytes(custody_.json), envelope, origin, Bytes{}})
                .status());
  EXPECT_EQ(Call(*unsealed, ecall::Call::kKmsDecrypt, {k.Ref(), blob, Ctx({})}).status().message(),
            "enclave: sealed");
  for (const char* id : {"P1", "C1", "C2"}) ASSERT_OK(Release(*unsealed, K(id)).status());
  ASSERT_FALSE(unsealed->sealed());
  // Join.
  auto joined = Joined(*first);
  for (EnclaveCore* core : {unsealed.get(), joined.get()}) {
    auto back = Decrypt(*core, k, blob, Ctx({}));
    ASSERT_OK(back.status());
    EXPECT_EQ((*back)[0], ToBytes("survives restarts"));
    EXPECT_EQ(StatusOf(*core)["audit_public_key"], StatusOf(*first)["audit_public_key"]);
  }
}

TEST(KmsKeyringTest, DerivationIsAFunctionOfTheRootKey) {
  SecretBytes root = crypto::RandomSecret(32);
  auto a = KmsKeyring::Derive(root);
  auto b = KmsKeyring::Derive(root);
  auto c = KmsKeyring::Derive(crypto::RandomSecret(32));
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  ASSERT_OK(c.status());
  EXPECT_TRUE(a->audit_key().verifying_key() == b->audit_key().verifying_key());
  EXPECT_FALSE(a->audit_key().verifying_key() == c->audit_key().verifying_key());
  SecretBytes material = crypto::RandomSecret(32);
  Bytes wrapped = a->WrapMaterial("id", 1, ecall::kSpecSymmetric, material);
  auto opened = b->UnwrapMaterial(KeyRef{"id", 1, std::string(ecall::kSpecSymmetric), wrapped});
  ASSERT_OK(opened.status());
  EXPECT_TRUE(opened->ConstantTimeEquals(material));
  EXPECT_EQ(c->UnwrapMaterial(KeyRef{"id", 1, std::string(ecall::kSpecSymmetric), wrapped})
                .status()
                .code(),
            ErrorCode::kIntegrity);
  // The audit key is the documented derivation: HKDF(root, "", "custos/v1/audit-signing-key" ||
  // u8 counter), the first candidate that is a valid scalar (counter 0 but for ~2^-32 of roots).
  ByteWriter info;
  info.Raw(AsBytes("custos/v1/audit-signing-key")).U8(0);
  auto d = crypto::Hkdf(root.Expose(), {}, info.bytes(), 32);
  ASSERT_OK(d.status());
  auto expected = crypto::SigningKey::FromScalarBytes(*d);
  ASSERT_OK(expected.status());
  EXPECT_TRUE(expected->verifying_key() == a->audit_key().verifying_key());
}

// ---- the real trusted-core process ----

// RealCore runs custos-enclave (next to this test binary) under its seccomp filter and speaks
// the call interface to it over a socket pair, as host/enclave_process.cc does.
class RealCore {
 public:
  static std::unique_ptr<RealCore> Start(const std::string& key_dir) {
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) return nullptr;
    std::string binary =
        (std::filesystem::path(std::string(exe, static_cast<size_t>(n))).parent_path() /
         "custos-enclave")
            .string();
    if (access(binary.c_str(), X_OK) != 0) return nullptr;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return nullptr;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, sv[1], 3);
    std::vector<std::string> args = {binary, "--fd", "3", "--tee", "sim", "--sim-key-dir", key_dir};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(sv[1]);
    if (rc != 0) {
      close(sv[0]);
      return nullptr;
    }
    return std::unique_ptr<RealCore>(new RealCore(pid, sv[0]));
  }
  ~RealCore() {
    close(fd_);
    waitpid(pid_, nullptr, 0);  // the core exits when its socket closes
  }
  StatusOr<std::vector<Bytes>> Call(ecall::Call call, std::vector<Bytes> args) {
    RETURN_IF_ERROR(ecall::WriteFrame(fd_, ecall::Request{call, std::move(args)}.Encode()));
    ASSIGN_OR_RETURN(Bytes answer, reader_.Next());
    ASSIGN_OR_RETURN(ecall::Response resp, ecall::Response::Decode(answer));
    RETURN_IF_ERROR(resp.ToStatus());
    return std::move(resp.results);
  }
  pid_t pid() const { return pid_; }

 private:
  RealCore(pid_t pid, int fd) : pid_(pid), fd_(fd), reader_(fd) {}
  pid_t pid_;
  int fd_;
  ecall::FrameReader reader_;
};

TEST_F(KmsOpsTest, TheSeccompFilteredProcessServesEveryKmsCall) {
  auto core = RealCore::Start(dir_ + "/real-sim");
  if (core == nullptr) GTEST_SKIP() << "custos-enclave is not built next to this test";
  ASSERT_OK(core->Call(ecall::Call::kHello, {}).status());
  ASSERT_OK(
      core->Call(ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  ASSERT_OK(core->Call(ecall::Call::kInit, {}).status());
  auto status = core->Call(ecall::Call::kStatus, {Bytes{}});
  ASSERT_OK(status.status());
  nlohmann::json s = nlohmann::json::parse(ToString((*status)[0]));
  EXPECT_TRUE(s["lockdown"]["seccomp"].get<bool>());
  ASSERT_TRUE(s.contains("audit_public_key"));
  auto audit_key =
      crypto::VerifyingKey::Decode(*HexDecode(s["audit_public_key"].get<std::string>()));
  ASSERT_OK(audit_key.status());

  std::map<std::string, Key> keys;
  for (std::string_view spec : {ecall::kSpecSymmetric, ecall::kSpecHmac256, ecall::kSpecEccP256}) {
    auto r =
        core->Call(ecall::Call::kKmsCreateKey, {ToBytes(spec), ecall::U32Arg(1), ToBytes(spec)});
    ASSERT_OK(r.status());
    keys[std::string(spec)] =
        Key{KeyRef{std::string(spec), 1, std::string(spec), (*r)[0]}, (*r)[1]};
  }
  const Key& sym = keys[std::string(ecall::kSpecSymmetric)];
  const Key& hmac = keys[std::string(ecall::kSpecHmac256)];
  const Key& ecc = keys[std::string(ecall::kSpecEccP256)];
  Bytes ctx = Ctx({{"k", "v"}});
  auto blob = core->Call(ecall::Call::kKmsEncrypt, {sym.Ref(), ToBytes("through the filter"), ctx});
  ASSERT_OK(blob.status());
  auto plain = core->Call(ecall::Call::kKmsDecrypt, {sym.Ref(), (*blob)[0], ctx});
  ASSERT_OK(plain.status());
  EXPECT_EQ((*plain)[0], ToBytes("through the filter"));
  EXPECT_EQ(core->Call(ecall::Call::kKmsDecrypt, {sym.Ref(), (*blob)[0], Ctx({})}).status().code(),
            ErrorCode::kIntegrity);
  ASSERT_OK(core->Call(ecall::Call::kKmsReEncrypt, {sym.Ref(), (*blob)[0], ctx, sym.Ref(), Ctx({})})
                .status());
  ASSERT_OK(
      core->Call(ecall::Call::kKmsGenerateDataKey, {sym.Ref(), ecall::U32Arg(32), ctx, Bytes{1}})
          .status());
  ASSERT_OK(core->Call(ecall::Call::kKmsGenerateRandom, {ecall::U32Arg(64)}).status());
  auto sig = core->Call(ecall::Call::kKmsSign, {ecc.Ref(), ToBytes("m"), ToBytes("RAW")});
  ASSERT_OK(sig.status());
  EXPECT_TRUE(OpensslVerifies(ecc.public_key, ToBytes("m"), (*sig)[0]));
  ASSERT_OK(
      core->Call(ecall::Call::kKmsVerify, {ecc.Ref(), ToBytes("m"), ToBytes("RAW"), (*sig)[0]})
          .status());
  EXPECT_EQ(
      core->Call(ecall::Call::kKmsVerify, {ecc.Ref(), ToBytes("n"), ToBytes("RAW"), (*sig)[0]})
          .status()
          .code(),
      ErrorCode::kIntegrity);
  auto mac = core->Call(ecall::Call::kKmsGenerateMac, {hmac.Ref(), ToBytes("m")});
  ASSERT_OK(mac.status());
  ASSERT_OK(core->Call(ecall::Call::kKmsVerifyMac, {hmac.Ref(), ToBytes("m"), (*mac)[0]}).status());
  auto secret = core->Call(ecall::Call::kKmsNewAccessSecret, {ToBytes("AKIAREAL"), ecall::U32Arg(30)});
  ASSERT_OK(secret.status());
  auto opened = core->Call(ecall::Call::kKmsOpenAccessSecret, {ToBytes("AKIAREAL"), (*secret)[1]});
  ASSERT_OK(opened.status());
  EXPECT_EQ((*opened)[0], (*secret)[0]);
  auto xks = core->Call(ecall::Call::kXksEncrypt, {sym.Ref(), ToBytes("m"), ToBytes("aad")});
  ASSERT_OK(xks.status());
  auto back = core->Call(ecall::Call::kXksDecrypt, {sym.Ref(), (*xks)[0], (*xks)[1], (*xks)[2], ToBytes("aad")});
  ASSERT_OK(back.status());
  EXPECT_EQ((*back)[0], ToBytes("m"));
  for (uint32_t mode : {ecall::kKmipModeGcm, ecall::kKmipModeCbcPkcs7}) {
    const uint32_t tag_length = mode == ecall::kKmipModeGcm ? 16 : 0;
    auto kmip = core->Call(
        ecall::Call::kKmipEncrypt,
        ecall::EncodeFields(KmipEncArgs(sym, 128, mode, {}, ToBytes("m"), {}, tag_length)));
    ASSERT_OK(kmip.status());
    auto kmip_back = core->Call(
        ecall::Call::kKmipDecrypt,
        ecall::EncodeFields(KmipDecArgs(sym, 128, mode, (*kmip)[0], (*kmip)[1], {}, (*kmip)[2])));
    ASSERT_OK(kmip_back.status());
    EXPECT_EQ((*kmip_back)[0], ToBytes("m"));
  }
  // A registered key through the filter: imported, then used as given (GCM, opened here).
  SecretBytes material = crypto::RandomSecret(16);
  auto imported =
      core->Call(ecall::Call::kKmsImportKey, ecall::EncodeFields(ecall::KmsImportKey::Args{
                                                 "registered", 1, std::string(ecall::kSpecKmipAes),
                                                 WipedBuffer::CopyOf(material.Expose())}));
  ASSERT_OK(imported.status());
  const Key registered{KeyRef{"registered", 1, std::string(ecall::kSpecKmipAes), (*imported)[0]},
                       {}};
  auto kmip = core->Call(ecall::Call::kKmipEncrypt,
                         ecall::EncodeFields(KmipEncArgs(registered, 128, ecall::kKmipModeGcm, {},
                                                         ToBytes("m"), {}, 16)));
  ASSERT_OK(kmip.status());
  Bytes opened_here(1);
  ASSERT_OK(crypto::AesGcm::Create(material)->OpenDetached((*kmip)[0], (*kmip)[1], (*kmip)[2], {},
                                                           opened_here));
  EXPECT_EQ(opened_here, ToBytes("m"));
  auto head = core->Call(ecall::Call::kAuditAppend, {Bytes{}, Entries({"e1"})});
  ASSERT_OK(head.status());
  audit::Head want = Chain({0, audit::GenesisHash()}, {"e1"});
  EXPECT_OK(audit_key->Verify(audit::CheckpointMessage(want.seq, want.hash), (*head)[1]));
  // Still alive and answering after all of it.
  ASSERT_OK(core->Call(ecall::Call::kPing, {Bytes{1}}).status());
}

}  // namespace
}  // namespace custos::enclave
