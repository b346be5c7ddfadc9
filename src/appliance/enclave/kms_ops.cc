#include "appliance/enclave/kms_ops.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "crypto/aead.h"
#include "crypto/aead_box.h"
#include "crypto/aes_cbc.h"
#include "crypto/hash.h"
#include "crypto/p256.h"
#include "crypto/random.h"

namespace custos::enclave {

using ecall::KeyRef;

namespace {

constexpr std::string_view kBlobMagic = "CKC1";
constexpr uint8_t kBlobSuite = 1;
constexpr size_t kBlobSaltSize = 32;
constexpr size_t kKeySize = 32;              // KW, KA, message keys, symmetric and HMAC material
constexpr size_t kMacSize = 32;              // HMAC-SHA-256
constexpr size_t kMaxAccessKeyIdSize = 128;  // AWS AccessKeyId is at most 128 characters
constexpr size_t kAnchorSize = 8 + audit::kHashSize + crypto::kSignatureSize;

constexpr std::string_view kUsagePrefix = "kms: key usage does not allow ";

// ---- derivation and wrapping ----

StatusOr<SecretBytes> DeriveKey(const SecretBytes& root, std::string_view info) {
  return crypto::Hkdf(root.Expose(), {}, AsBytes(info), kKeySize);
}

// DeriveAuditKey draws 32-byte candidates with a counter appended to the info until one is a
// valid private scalar, so the key is a deterministic function of the root key.
StatusOr<crypto::SigningKey> DeriveAuditKey(const SecretBytes& root) {
  SecretBytes prk = crypto::HkdfExtract({}, root.Expose());
  for (unsigned counter = 0; counter <= 0xff; ++counter) {
    ByteWriter info;
    info.Raw(AsBytes("custos/v1/audit-signing-key")).U8(static_cast<uint8_t>(counter));
    ASSIGN_OR_RETURN(SecretBytes candidate,
                     crypto::HkdfExpand(prk.Expose(), info.bytes(), crypto::kScalarSize));
    auto key = crypto::SigningKey::FromScalarBytes(candidate);  // refuses 0 and values >= n
    if (key.ok()) return std::move(key).value();
  }
  return InternalError("kms: cannot derive the audit key");
}

Bytes MaterialAad(std::string_view key_id, uint32_t version, std::string_view spec) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/cmk")).Var(key_id).U32(version).Var(spec);
  return w.Take();
}

Bytes AccessSecretAad(std::string_view access_key_id) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/access-key")).Var(access_key_id);
  return w.Take();
}

// Wrap/Unwrap: a box (crypto/aead_box.h): nonce (12) || AES-256-GCM(key, nonce, secret, aad).
Bytes Wrap(const SecretBytes& key, const SecretBytes& secret, ByteSpan aad) {
  auto box = crypto::SealBox(key, secret.Expose(), aad);
  if (!box.ok()) std::abort();  // the wrapping keys are derived 32-byte keys: always accepted
  return std::move(box).value();
}

StatusOr<SecretBytes> Unwrap(const SecretBytes& key, ByteSpan wrapped, ByteSpan aad) {
  return crypto::OpenBox(key, wrapped, aad);
}

// ---- argument checks ----

Status CheckLength(size_t n, size_t min, size_t max, const char* what) {
  if (n < min || n > max)
    return InvalidArgument(std::string("kms: ") + what + " must be " + std::to_string(min) +
                           " to " + std::to_string(max) + " bytes");
  return Status::Ok();
}

// ---- KMIP raw AES (calls.h KmipEncrypt): the argument checks, made before anything unwraps ----

Status CheckKmipKeyBits(uint32_t key_bits) {
  if (key_bits != 128 && key_bits != 256)
    return InvalidArgument("kmip: key length must be 128 or 256 bits");
  return Status::Ok();
}

Status CheckKmipMode(uint32_t mode) {
  if (mode != ecall::kKmipModeGcm && mode != ecall::kKmipModeCbcPkcs7 &&
      mode != ecall::kKmipModeCbcNoPadding)
    return InvalidArgument(
        "kmip: mode must be 1 (AES-GCM), 2 (AES-CBC, PKCS#7 padding) or 3 (AES-CBC, no padding)");
  return Status::Ok();
}

// CheckKmipIv: the IV of `mode` (12 bytes for GCM, 16 for CBC); on encrypt, empty is allowed
// too (the core draws it).
Status CheckKmipIv(uint32_t mode, ByteSpan iv, bool may_be_empty) {
  if (may_be_empty && iv.empty()) return Status::Ok();
  if (mode == ecall::kKmipModeGcm) {
    if (iv.size() != ecall::kKmipGcmIvSize)
      return InvalidArgument("kmip: an AES-GCM IV must be 12 bytes");
  } else if (iv.size() != ecall::kKmipCbcIvSize) {
    return InvalidArgument("kmip: an AES-CBC IV must be 16 bytes");
  }
  return Status::Ok();
}

Status CheckKmipLength(size_t n, size_t min, size_t max, const char* what) {
  if (n < min || n > max)
    return InvalidArgument(std::string("kmip: ") + what + " must be " + std::to_string(min) +
                           " to " + std::to_string(max) + " bytes");
  return Status::Ok();
}

// CheckKmipCbcData: CBC data of `mode` (plaintext on encrypt, ciphertext on decrypt) is at
// least one block and at most `max`, and whole blocks where no padding makes it so.
Status CheckKmipCbcData(uint32_t mode, size_t n, size_t max, bool whole_blocks, const char* what) {
  const size_t min = whole_blocks ? crypto::kAesBlockSize : 1;
  if (n < min || n > max || (whole_blocks && n % crypto::kAesBlockSize != 0))
    return InvalidArgument(
        std::string("kmip: ") + what + " must be " +
        (whole_blocks ? "a multiple of 16 bytes, " : "") + std::to_string(min) + " to " +
        std::to_string(max) + " bytes" +
        (mode == ecall::kKmipModeCbcNoPadding ? " (AES-CBC without padding)" : ""));
  return Status::Ok();
}

// CheckKmipCbcExtras: CBC has no AAD and no tag.
Status CheckKmipCbcExtras(ByteSpan aad, size_t tag, bool tag_is_length) {
  if (!aad.empty()) return InvalidArgument("kmip: AES-CBC takes no aad");
  if (tag != 0)
    return InvalidArgument(tag_is_length ? "kmip: AES-CBC takes no tag length (it must be 0)"
                                         : "kmip: AES-CBC takes no tag");
  return Status::Ok();
}

crypto::CbcPadding KmipPadding(uint32_t mode) {
  return mode == ecall::kKmipModeCbcNoPadding ? crypto::CbcPadding::kNone
                                              : crypto::CbcPadding::kPkcs7;
}

// ---- ECDSA P-256 keys as OpenSSL objects (SubjectPublicKeyInfo, DER signatures) ----

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct PkeyCtxFree {
  void operator()(EVP_PKEY_CTX* c) const { EVP_PKEY_CTX_free(c); }
};
using PkeyCtx = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;

// EcKey builds the P-256 key of a 32-byte private scalar (with the private part only when
// `with_private`; a public key is enough to verify and to export).
StatusOr<Pkey> EcKey(const SecretBytes& material, bool with_private) {
  auto d = crypto::Scalar::FromBytes(material.Expose());
  if (!d.ok() || d->IsZero()) return InternalError("kms: ECC key material is not a P-256 scalar");
  Bytes pub = crypto::Point::BaseMul(*d).EncodeUncompressed();
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  if (bld == nullptr) return InternalError("kms: OSSL_PARAM_BLD_new failed");
  OSSL_PARAM* params = nullptr;
  bool ok =
      OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) &&
      OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub.data(), pub.size()) &&
      (!with_private || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d->bn()));
  if (ok) params = OSSL_PARAM_BLD_to_param(bld);
  OSSL_PARAM_BLD_free(bld);
  if (params == nullptr) return InternalError("kms: cannot build EC key parameters");
  EVP_PKEY* raw = nullptr;
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  if (ctx != nullptr && EVP_PKEY_fromdata_init(ctx.get()) == 1)
    EVP_PKEY_fromdata(ctx.get(), &raw, with_private ? EVP_PKEY_KEYPAIR : EVP_PKEY_PUBLIC_KEY,
                      params);
  OSSL_PARAM_free(params);  // the secure block holding the scalar is cleared as it is freed
  if (raw == nullptr) {
    ERR_clear_error();
    return InternalError("kms: cannot build EC key");
  }
  return Pkey(raw);
}

StatusOr<Bytes> SubjectPublicKeyInfo(EVP_PKEY* key) {
  int len = i2d_PUBKEY(key, nullptr);
  if (len <= 0) {
    ERR_clear_error();
    return InternalError("kms: cannot encode the public key");
  }
  Bytes der(static_cast<size_t>(len));
  unsigned char* p = der.data();
  if (i2d_PUBKEY(key, &p) != len) {
    ERR_clear_error();
    return InternalError("kms: cannot encode the public key");
  }
  return der;
}

// SigningDigest is what ECDSA_SHA_256 signs: SHA-256 of a RAW message, or a DIGEST as given.
StatusOr<crypto::Digest> SigningDigest(ByteSpan message, std::string_view t) {
  if (t == "RAW") {
    RETURN_IF_ERROR(CheckLength(message.size(), 1, ecall::kMaxMacMessage, "message"));
    return crypto::Sha256(message);
  }
  if (t == "DIGEST") {
    if (message.size() != 32) return InvalidArgument("kms: a DIGEST message must be 32 bytes");
    crypto::Digest d;
    std::copy(message.begin(), message.end(), d.begin());
    return d;
  }
  return InvalidArgument("kms: message type must be RAW or DIGEST");
}

}  // namespace

// ---- KmsKeyring ----

KmsKeyring::KmsKeyring(SecretBytes cmk_wrap, SecretBytes access_wrap, crypto::SigningKey audit_key)
    : cmk_wrap_(std::move(cmk_wrap)),
      access_wrap_(std::move(access_wrap)),
      audit_key_(std::make_unique<crypto::SigningKey>(std::move(audit_key))) {}
KmsKeyring::KmsKeyring(KmsKeyring&&) noexcept = default;
KmsKeyring& KmsKeyring::operator=(KmsKeyring&&) noexcept = default;
KmsKeyring::~KmsKeyring() = default;

StatusOr<KmsKeyring> KmsKeyring::Derive(const SecretBytes& root) {
  ASSIGN_OR_RETURN(SecretBytes kw, DeriveKey(root, "custos/v1/cmk-wrap"));
  ASSIGN_OR_RETURN(SecretBytes ka, DeriveKey(root, "custos/v1/access-key-wrap"));
  ASSIGN_OR_RETURN(crypto::SigningKey audit_key, DeriveAuditKey(root));
  return KmsKeyring(std::move(kw), std::move(ka), std::move(audit_key));
}

Bytes KmsKeyring::WrapMaterial(std::string_view key_id, uint32_t version, std::string_view spec,
                               const SecretBytes& material) const {
  return Wrap(cmk_wrap_, material, MaterialAad(key_id, version, spec));
}

StatusOr<SecretBytes> KmsKeyring::UnwrapMaterial(const KeyRef& ref) const {
  auto material = Unwrap(cmk_wrap_, ref.wrapped, MaterialAad(ref.key_id, ref.version, ref.spec));
  if (!material.ok())
    return IntegrityError("kms: key material does not unwrap").WithReason(ecall::Reason::kMaterialDoesNotUnwrap);
  return material;
}

Bytes KmsKeyring::WrapAccessSecret(std::string_view access_key_id,
                                   const SecretBytes& secret) const {
  return Wrap(access_wrap_, secret, AccessSecretAad(access_key_id));
}

StatusOr<SecretBytes> KmsKeyring::UnwrapAccessSecret(std::string_view access_key_id,
                                                     ByteSpan wrapped) const {
  auto secret = Unwrap(access_wrap_, wrapped, AccessSecretAad(access_key_id));
  if (!secret.ok()) return IntegrityError("kms: access secret does not unwrap")
        .WithReason(ecall::Reason::kMaterialDoesNotUnwrap);
  return secret;
}

// ---- KmsOperations ----

KmsOperations::KmsOperations(KmsKeyring keyring)
    : keyring_(std::move(keyring)), run_id_(crypto::RandomBytes(audit::kRunIdSize)) {}

StatusOr<std::vector<Bytes>> KmsOperations::Serve(const ecall::Request& request) {
  using Handler = Results (*)(KmsOperations&, std::span<const Bytes>);
  // The KMS calls and their handlers; calls.h declares their arguments and results.
  static constexpr std::pair<ecall::Call, Handler> kRoutes[] = {
      {ecall::KmsCreateKey::kCall, &Route<ecall::KmsCreateKey, &KmsOperations::CreateKey>},
      {ecall::KmsEncrypt::kCall, &Route<ecall::KmsEncrypt, &KmsOperations::Encrypt>},
      {ecall::KmsDecrypt::kCall, &Route<ecall::KmsDecrypt, &KmsOperations::Decrypt>},
      {ecall::KmsReEncrypt::kCall, &Route<ecall::KmsReEncrypt, &KmsOperations::ReEncrypt>},
      {ecall::KmsGenerateDataKey::kCall, &Route<ecall::KmsGenerateDataKey, &KmsOperations::GenerateDataKey>},
      {ecall::KmsGenerateRandom::kCall, &Route<ecall::KmsGenerateRandom, &KmsOperations::GenerateRandom>},
      {ecall::KmsSign::kCall, &Route<ecall::KmsSign, &KmsOperations::Sign>},
      {ecall::KmsVerify::kCall, &Route<ecall::KmsVerify, &KmsOperations::Verify>},
      {ecall::KmsGenerateMac::kCall, &Route<ecall::KmsGenerateMac, &KmsOperations::GenerateMac>},
      {ecall::KmsVerifyMac::kCall, &Route<ecall::KmsVerifyMac, &KmsOperations::VerifyMac>},
      {ecall::KmsNewAccessSecret::kCall, &Route<ecall::KmsNewAccessSecret, &KmsOperations::NewAccessSecret>},
      {ecall::KmsOpenAccessSecret::kCall, &Route<ecall::KmsOpenAccessSecret, &KmsOperations::OpenAccessSecret>},
      {ecall::AuditAppend::kCall, &Route<ecall::AuditAppend, &KmsOperations::AuditAppend>},
      {ecall::AuditLine::kCall, &Route<ecall::AuditLine, &KmsOperations::AuditLine>},
      {ecall::XksEncrypt::kCall, &Route<ecall::XksEncrypt, &KmsOperations::XksEncrypt>},
      {ecall::XksDecrypt::kCall, &Route<ecall::XksDecrypt, &KmsOperations::XksDecrypt>},
      {ecall::KmipEncrypt::kCall, &Route<ecall::KmipEncrypt, &KmsOperations::KmipEncrypt>},
      {ecall::KmipDecrypt::kCall, &Route<ecall::KmipDecrypt, &KmsOperations::KmipDecrypt>},
      {ecall::KmsImportKey::kCall, &Route<ecall::KmsImportKey, &KmsOperations::ImportKey>},
  };
  for (const auto& [call, handler] : kRoutes)
    if (call == request.call) return handler(*this, request.args);
  return InvalidArgument("kms: not a KMS call");
}

Status KmsOperations::RequireSpec(const KeyRef& ref, std::string_view spec, std::string_view op) {
  if (ref.spec != spec)
    return FailedPrecondition(std::string(kUsagePrefix) + std::string(op)).WithReason(ecall::Reason::kKeyUsage);
  return Status::Ok();
}

// Blob layout (kms_calls.h): header = "CKC1" || u8 suite || var(key id) || u32 version,
// then salt (32) || nonce (12) || ciphertext || tag (16); AAD = header || salt || nonce || ctx.
StatusOr<Bytes> KmsOperations::SealBlob(const KeyRef& ref, const SecretBytes& material,
                                        ByteSpan plaintext, ByteSpan context) const {
  Bytes salt = crypto::RandomBytes(kBlobSaltSize);
  Bytes nonce = crypto::RandomBytes(crypto::kGcmNonceSize);
  ByteWriter w;
  w.Raw(AsBytes(kBlobMagic)).U8(kBlobSuite).Var(ref.key_id).U32(ref.version).Raw(salt).Raw(nonce);
  ASSIGN_OR_RETURN(SecretBytes key, crypto::Hkdf(material.Expose(), salt,
                                                 AsBytes("custos/v1/kms-encrypt"), kKeySize));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(key));
  Bytes aad = Concat({w.bytes(), context});
  Bytes blob = w.Take();
  size_t header = blob.size();
  blob.resize(header + plaintext.size() + crypto::kGcmTagSize);
  RETURN_IF_ERROR(gcm.Seal(nonce, plaintext, aad, std::span<uint8_t>(blob).subspan(header)));
  return blob;
}

StatusOr<size_t> KmsOperations::BlobHeaderFor(const KeyRef& ref, ByteSpan blob) {
  StatusOr<ecall::CiphertextHeader> h = ecall::ParseCiphertextHeader(blob);
  if (!h.ok()) return h.status().WithReason(ecall::Reason::kCiphertextInvalid);
  if (h->key_id != ref.key_id || h->version != ref.version)
    return InvalidArgument("kms: ciphertext names another key").WithReason(ecall::Reason::kOtherKey);
  return kBlobMagic.size() + 1 + 4 + h->key_id.size() + 4;  // magic, suite, var(key id), version
}

StatusOr<SecretBytes> KmsOperations::OpenBlob(const SecretBytes& material, ByteSpan blob,
                                              size_t header, ByteSpan context) const {
  // ParseCiphertextHeader checked that salt, nonce and tag follow the header.
  size_t body = header + kBlobSaltSize + crypto::kGcmNonceSize;
  ByteSpan salt = blob.subspan(header, kBlobSaltSize);
  ByteSpan nonce = blob.subspan(header + kBlobSaltSize, crypto::kGcmNonceSize);
  ASSIGN_OR_RETURN(SecretBytes key, crypto::Hkdf(material.Expose(), salt,
                                                 AsBytes("custos/v1/kms-encrypt"), kKeySize));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(key));
  Bytes aad = Concat({blob.first(body), context});
  auto plaintext = gcm.OpenSecret(nonce, blob.subspan(body), aad);
  if (!plaintext.ok())
    return IntegrityError("kms: ciphertext does not authenticate").WithReason(ecall::Reason::kCiphertextInvalid);
  return plaintext;
}

// Each handler's arguments and results are declared in calls.h; Route decoded them.

StatusOr<ecall::KmsCreateKey::Result> KmsOperations::CreateKey(const ecall::KmsCreateKey::Args& a) {
  // The same bounds KeyRef::Decode applies, so every key created can be referred to.
  RETURN_IF_ERROR(CheckLength(a.key_id.size(), 1, 2048, "key id"));
  SecretBytes material;
  Bytes public_key;
  if (a.spec == ecall::kSpecSymmetric || a.spec == ecall::kSpecHmac256) {
    material = crypto::RandomSecret(kKeySize);
  } else if (a.spec == ecall::kSpecEccP256) {
    material = crypto::Scalar::Random().ToSecretBytes();
    ASSIGN_OR_RETURN(Pkey pub, EcKey(material, /*with_private=*/false));
    ASSIGN_OR_RETURN(public_key, SubjectPublicKeyInfo(pub.get()));
  } else {
    return InvalidArgument(
        "kms: unsupported key spec (SYMMETRIC_DEFAULT, HMAC_256 or ECC_NIST_P256)");
  }
  return ecall::KmsCreateKey::Result{keyring_.WrapMaterial(a.key_id, a.version, a.spec, material),
                                     std::move(public_key)};
}

// A client's own key (KMIP Register): wrapped exactly as CreateKey wraps drawn material, under
// the spec KMIP_AES, which only kmip-encrypt/kmip-decrypt accept and use without derivation.
// Messages name the check, never the material.
StatusOr<ecall::KmsImportKey::Result> KmsOperations::ImportKey(const ecall::KmsImportKey::Args& a) {
  RETURN_IF_ERROR(CheckLength(a.key_id.size(), 1, 2048, "key id"));
  // KMIP_AES: a raw AES key (16 or 32 bytes); HMAC_256: an HMAC-SHA-256 key of 32 bytes, used
  // by generate-mac/verify-mac as given, like the material kms-create-key draws for that spec.
  if (a.spec != ecall::kSpecKmipAes && a.spec != ecall::kSpecHmac256)
    return InvalidArgument("kms: an imported key's spec must be KMIP_AES or HMAC_256");
  if (a.spec == ecall::kSpecKmipAes && a.material.size() != ecall::kKmipAes128KeySize &&
      a.material.size() != ecall::kKmipAes256KeySize)
    return InvalidArgument(
        "kms: imported key material must be 16 or 32 bytes (AES-128 or AES-256)");
  if (a.spec == ecall::kSpecHmac256 && a.material.size() != 32)
    return InvalidArgument("kms: an imported HMAC_256 key must be 32 bytes");
  SecretBytes material = SecretBytes::CopyFrom(a.material.view());
  return ecall::KmsImportKey::Result{keyring_.WrapMaterial(a.key_id, a.version, a.spec, material)};
}

StatusOr<ecall::KmsEncrypt::Result> KmsOperations::Encrypt(const ecall::KmsEncrypt::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecSymmetric, "encrypt"));
  RETURN_IF_ERROR(CheckLength(a.plaintext.size(), 1, ecall::kMaxKmsPlaintext, "plaintext"));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  ASSIGN_OR_RETURN(Bytes blob, SealBlob(a.ref, material, a.plaintext.view(), ecall::EncodeEncryptionContext(a.context)));
  return ecall::KmsEncrypt::Result{std::move(blob)};
}

StatusOr<ecall::KmsDecrypt::Result> KmsOperations::Decrypt(const ecall::KmsDecrypt::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecSymmetric, "decrypt"));
  // Which key the blob names is public: check it before unwrapping anything.
  ASSIGN_OR_RETURN(size_t header, BlobHeaderFor(a.ref, a.blob));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  ASSIGN_OR_RETURN(SecretBytes plaintext, OpenBlob(material, a.blob, header, ecall::EncodeEncryptionContext(a.context)));
  return ecall::KmsDecrypt::Result{WipedBuffer::CopyOf(plaintext.Expose())};
}

StatusOr<ecall::KmsReEncrypt::Result> KmsOperations::ReEncrypt(const ecall::KmsReEncrypt::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.source, ecall::kSpecSymmetric, "decrypt"));
  RETURN_IF_ERROR(RequireSpec(a.destination, ecall::kSpecSymmetric, "encrypt"));
  ASSIGN_OR_RETURN(size_t header, BlobHeaderFor(a.source, a.blob));
  SecretBytes plaintext;
  {
    ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.source));
    ASSIGN_OR_RETURN(plaintext, OpenBlob(material, a.blob, header, ecall::EncodeEncryptionContext(a.source_context)));
  }
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.destination));
  ASSIGN_OR_RETURN(Bytes blob, SealBlob(a.destination, material, plaintext.Expose(),
                                        ecall::EncodeEncryptionContext(a.destination_context)));
  return ecall::KmsReEncrypt::Result{std::move(blob)};
}

StatusOr<ecall::KmsGenerateDataKey::Result> KmsOperations::GenerateDataKey(const ecall::KmsGenerateDataKey::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecSymmetric, "generate data key"));
  RETURN_IF_ERROR(CheckLength(a.bytes, 1, ecall::kMaxDataKeyBytes, "a data key"));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  SecretBytes data_key = crypto::RandomSecret(a.bytes);
  ASSIGN_OR_RETURN(Bytes blob, SealBlob(a.ref, material, data_key.Expose(), ecall::EncodeEncryptionContext(a.context)));
  ecall::KmsGenerateDataKey::Result out{std::move(blob), {}};
  if (a.with_plaintext) out.plaintext = WipedBuffer::CopyOf(data_key.Expose());
  return out;
}

StatusOr<ecall::KmsGenerateRandom::Result> KmsOperations::GenerateRandom(const ecall::KmsGenerateRandom::Args& a) {
  RETURN_IF_ERROR(CheckLength(a.bytes, 1, ecall::kMaxRandomBytes, "random output"));
  return ecall::KmsGenerateRandom::Result{crypto::RandomBytes(a.bytes)};
}

StatusOr<ecall::KmsSign::Result> KmsOperations::Sign(const ecall::KmsSign::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecEccP256, "sign"));
  ASSIGN_OR_RETURN(crypto::Digest digest, SigningDigest(a.message, a.type));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  ASSIGN_OR_RETURN(Pkey key, EcKey(material, /*with_private=*/true));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  size_t len = 0;
  if (ctx == nullptr || EVP_PKEY_sign_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1 ||
      EVP_PKEY_sign(ctx.get(), nullptr, &len, digest.data(), digest.size()) != 1) {
    ERR_clear_error();
    return InternalError("kms: cannot set up ECDSA signing");
  }
  Bytes signature(len);
  if (EVP_PKEY_sign(ctx.get(), signature.data(), &len, digest.data(), digest.size()) != 1) {
    ERR_clear_error();
    return InternalError("kms: ECDSA signing failed");
  }
  signature.resize(len);
  return ecall::KmsSign::Result{std::move(signature)};
}

StatusOr<ecall::KmsVerify::Result> KmsOperations::Verify(const ecall::KmsVerify::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecEccP256, "verify"));
  ASSIGN_OR_RETURN(crypto::Digest digest, SigningDigest(a.message, a.type));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  ASSIGN_OR_RETURN(Pkey key, EcKey(material, /*with_private=*/false));
  PkeyCtx ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (ctx == nullptr || EVP_PKEY_verify_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_signature_md(ctx.get(), EVP_sha256()) != 1) {
    ERR_clear_error();
    return InternalError("kms: cannot set up ECDSA verification");
  }
  // OpenSSL decodes the DER and refuses any encoding but the canonical one.
  int rc = EVP_PKEY_verify(ctx.get(), a.signature.data(), a.signature.size(), digest.data(), digest.size());
  if (rc != 1) {
    ERR_clear_error();
    return IntegrityError("kms: signature does not verify").WithReason(ecall::Reason::kSignatureInvalid);
  }
  return ecall::KmsVerify::Result{};
}

StatusOr<ecall::KmsGenerateMac::Result> KmsOperations::GenerateMac(const ecall::KmsGenerateMac::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecHmac256, "generate mac"));
  RETURN_IF_ERROR(CheckLength(a.message.size(), 1, ecall::kMaxMacMessage, "message"));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  crypto::Digest mac = crypto::HmacSha256(material.Expose(), a.message);
  return ecall::KmsGenerateMac::Result{Bytes(mac.begin(), mac.end())};
}

StatusOr<ecall::KmsVerifyMac::Result> KmsOperations::VerifyMac(const ecall::KmsVerifyMac::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecHmac256, "verify mac"));
  RETURN_IF_ERROR(CheckLength(a.message.size(), 1, ecall::kMaxMacMessage, "message"));
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(a.ref));
  crypto::Digest mac = crypto::HmacSha256(material.Expose(), a.message);
  if (a.mac.size() != kMacSize || !ConstantTimeEquals(mac, a.mac))
    return IntegrityError("kms: mac does not verify").WithReason(ecall::Reason::kMacInvalid);
  return ecall::KmsVerifyMac::Result{};
}

StatusOr<ecall::KmsNewAccessSecret::Result> KmsOperations::NewAccessSecret(const ecall::KmsNewAccessSecret::Args& a) {
  RETURN_IF_ERROR(CheckLength(a.access_key_id.size(), 1, kMaxAccessKeyIdSize, "access key id"));
  if (a.entropy != ecall::kAccessSecretEntropy && a.entropy != ecall::kXksSecretEntropy)
    return InvalidArgument("kms: an access secret carries 30 or 32 random bytes");
  SecretBytes entropy = crypto::RandomSecret(a.entropy);
  std::string b64 = Base64Encode(entropy.Expose());  // 30 bytes: 40 characters; 32: 44 with '='

  SecretBytes secret = SecretBytes::CopyFrom(b64);
  WipeBytes(b64);
  Bytes wrapped = keyring_.WrapAccessSecret(a.access_key_id, secret);
  return ecall::KmsNewAccessSecret::Result{WipedBuffer::CopyOf(secret.Expose()), std::move(wrapped)};
}

StatusOr<ecall::KmsOpenAccessSecret::Result> KmsOperations::OpenAccessSecret(const ecall::KmsOpenAccessSecret::Args& a) {
  RETURN_IF_ERROR(CheckLength(a.access_key_id.size(), 1, kMaxAccessKeyIdSize, "access key id"));
  ASSIGN_OR_RETURN(SecretBytes secret, keyring_.UnwrapAccessSecret(a.access_key_id, a.wrapped));
  if (secret.size() != kAccessSecretSize && secret.size() != kXksSecretSize)
    return IntegrityError("kms: access secret does not unwrap")
        .WithReason(ecall::Reason::kMaterialDoesNotUnwrap);
  return ecall::KmsOpenAccessSecret::Result{WipedBuffer::CopyOf(secret.Expose())};
}

StatusOr<ecall::AuditAppend::Result> KmsOperations::AuditAppend(const ecall::AuditAppend::Args& a) {
  ByteSpan anchor = a.anchor;
  // The entries first: nothing is checked against the chain until the request is well formed.
  ByteReader r(a.entries);
  ASSIGN_OR_RETURN(uint32_t count, r.U32("audit: entry count"));
  if (count == 0) return InvalidArgument("audit: no entries to append");
  std::vector<std::string_view> entries;
  for (uint32_t i = 0; i < count; ++i) {
    ASSIGN_OR_RETURN(ByteSpan e, r.Var("audit: entry"));
    entries.emplace_back(reinterpret_cast<const char*>(e.data()), e.size());
  }
  RETURN_IF_ERROR(r.ExpectEnd("audit entries"));

  std::lock_guard lock(audit_mu_);
  audit::Head head{0, audit::GenesisHash()};
  if (anchor.empty()) {
    // Only a log this core has not extended yet may start from the genesis head.
    if (!signed_heads_.empty()) return FailedPrecondition("audit: anchor is not the current head");
  } else {
    if (anchor.size() != kAnchorSize)
      return InvalidArgument(
          "audit: anchor must be a head (40 bytes) and its signature (64 bytes)");
    ByteSpan encoded_head = anchor.first(anchor.size() - crypto::kSignatureSize);
    ASSIGN_OR_RETURN(head, audit::DecodeHead(encoded_head));
    if (!signed_heads_.empty()) {
      const audit::Head& last = signed_heads_.back();
      // The core remembers what it signed: an older head (stale) or another one (a fork) is
      // refused even though its signature is genuine.
      if (head.seq != last.seq || head.hash != last.hash)
        return FailedPrecondition("audit: anchor is not the current head");
    } else {
      // First append since start: the stored head is trusted only by the audit key's signature.
      Status sig = audit_public_key().Verify(audit::CheckpointMessage(head.seq, head.hash),
                                             anchor.last(crypto::kSignatureSize));
      if (!sig.ok()) return IntegrityError("audit: anchor signature does not verify");
    }
  }
  if (head.seq > UINT64_MAX - count) return InvalidArgument("audit: sequence number overflows");
  for (std::string_view entry : entries) {
    ++head.seq;
    head.hash = audit::EntryHash(head.hash, head.seq, entry);
  }
  Bytes signature = keyring_.audit_key().Sign(audit::CheckpointMessage(head.seq, head.hash));
  Bytes encoded = audit::EncodeHead(head.seq, head.hash);
  signed_heads_.push_back(std::move(head));
  if (signed_heads_.size() > kLineHeads) signed_heads_.pop_front();
  return ecall::AuditAppend::Result{std::move(encoded), std::move(signature)};
}

StatusOr<ecall::AuditLine::Result> KmsOperations::AuditLine(const ecall::AuditLine::Args& a) {
  ASSIGN_OR_RETURN(audit::Head head, audit::DecodeHead(a.head));
  {
    std::lock_guard lock(audit_mu_);
    bool signed_here = false;
    for (auto it = signed_heads_.rbegin(); it != signed_heads_.rend() && it->seq >= head.seq; ++it)
      if (it->seq == head.seq) {
        signed_here = it->hash == head.hash;
        break;
      }
    if (!signed_here)
      return FailedPrecondition("audit: head seq " + std::to_string(head.seq) +
                                " is not one this core signed recently in its current run");
  }
  Bytes signature = keyring_.audit_key().Sign(audit::LineMessage(run_id_, head.seq, head.hash));
  return ecall::AuditLine::Result{run_id_, std::move(signature)};
}

// XKS proxy API (docs/xks.md): AES-256-GCM under a key derived from the key version's
// material, so the same material never serves two constructions (the KMS blob's keys are
// derived with another label and a per-blob salt). IVs are 96-bit random: the AES-GCM bound
// of 2^32 encryptions per key holds per key version.
StatusOr<SecretBytes> KmsOperations::XksKey(const ecall::KeyRef& ref) const {
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(ref));
  return crypto::Hkdf(material.Expose(), {}, AsBytes("custos/v1/xks-aes-gcm"), kKeySize);
}

StatusOr<ecall::XksEncrypt::Result> KmsOperations::XksEncrypt(const ecall::XksEncrypt::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecSymmetric, "encrypt"));
  RETURN_IF_ERROR(CheckLength(a.plaintext.size(), 1, ecall::kMaxXksPlaintext, "plaintext"));
  RETURN_IF_ERROR(CheckLength(a.aad.size(), 0, ecall::kMaxXksAad, "xks aad"));
  ASSIGN_OR_RETURN(SecretBytes key, XksKey(a.ref));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(key));
  ecall::XksEncrypt::Result out;
  out.iv = crypto::RandomBytes(crypto::kGcmNonceSize);
  Bytes sealed(a.plaintext.size() + crypto::kGcmTagSize);
  RETURN_IF_ERROR(gcm.Seal(out.iv, a.plaintext.view(), a.aad, sealed));
  out.tag.assign(sealed.end() - crypto::kGcmTagSize, sealed.end());
  sealed.resize(a.plaintext.size());
  out.ciphertext = std::move(sealed);
  return out;
}

StatusOr<ecall::XksDecrypt::Result> KmsOperations::XksDecrypt(const ecall::XksDecrypt::Args& a) {
  RETURN_IF_ERROR(RequireSpec(a.ref, ecall::kSpecSymmetric, "decrypt"));
  RETURN_IF_ERROR(CheckLength(a.ciphertext.size(), 1, ecall::kMaxXksPlaintext, "ciphertext"));
  RETURN_IF_ERROR(CheckLength(a.aad.size(), 0, ecall::kMaxXksAad, "xks aad"));
  if (a.iv.size() != crypto::kGcmNonceSize || a.tag.size() != crypto::kGcmTagSize)
    return IntegrityError("kms: xks ciphertext does not authenticate (this key manager makes 12-byte IVs and 16-byte tags)")
        .WithReason(ecall::Reason::kCiphertextInvalid);
  ASSIGN_OR_RETURN(SecretBytes key, XksKey(a.ref));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(key));
  auto plaintext = gcm.OpenSecret(a.iv, Concat({a.ciphertext, a.tag}), a.aad);
  if (!plaintext.ok())
    return IntegrityError("kms: xks ciphertext does not authenticate").WithReason(ecall::Reason::kCiphertextInvalid);
  return ecall::XksDecrypt::Result{WipedBuffer::CopyOf(plaintext->Expose())};
}

// KMIP raw AES (calls.h KmipEncrypt, docs/protocol.md "kmip-encrypt"): one key per version and
// length, derived with its own label, so it serves no other construction. Core-drawn GCM IVs
// are 96-bit random (the 2^32-messages bound holds per key version and length). An IV the client
// gives is used as given: with GCM, repeating one under a key gives away that key's
// authentication key to whoever sees both messages, so the host decides whether clients may
// choose IVs at all.
//
// A KMIP_AES version (kms-import-key) is the client's own AES key: used as it is, never derived,
// so the client's copy makes and opens the same ciphertexts. Its length is public (the wrapped
// blob is nonce || material || tag), so key_bits is checked against it before the unwrap.
Status KmsOperations::RequireKmipSpec(const KeyRef& ref, std::string_view op) {
  if (ref.spec == ecall::kSpecKmipAes) return Status::Ok();
  return RequireSpec(ref, ecall::kSpecSymmetric, op);
}

StatusOr<SecretBytes> KmsOperations::KmipKey(const KeyRef& ref, uint32_t key_bits) const {
  RETURN_IF_ERROR(CheckKmipKeyBits(key_bits));
  if (ref.spec == ecall::kSpecKmipAes) {
    const Status mismatch = InvalidArgument("kmip: key length does not match the registered key");
    if (ref.wrapped.size() != crypto::kBoxOverhead + key_bits / 8) return mismatch;
    ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(ref));
    if (material.size() != key_bits / 8) return mismatch;
    return material;
  }
  ASSIGN_OR_RETURN(SecretBytes material, keyring_.UnwrapMaterial(ref));
  std::string_view info = key_bits == 128 ? "custos/v1/kmip-aes-128" : "custos/v1/kmip-aes-256";
  return crypto::Hkdf(material.Expose(), {}, AsBytes(info), key_bits / 8);
}

StatusOr<ecall::KmipEncrypt::Result> KmsOperations::KmipEncrypt(const ecall::KmipEncrypt::Args& a) {
  RETURN_IF_ERROR(RequireKmipSpec(a.ref, "encrypt"));
  RETURN_IF_ERROR(CheckKmipKeyBits(a.key_bits));
  RETURN_IF_ERROR(CheckKmipMode(a.mode));
  RETURN_IF_ERROR(CheckKmipIv(a.mode, a.iv, /*may_be_empty=*/true));
  const bool gcm = a.mode == ecall::kKmipModeGcm;
  if (gcm) {
    RETURN_IF_ERROR(CheckKmipLength(a.plaintext.size(), 0, ecall::kMaxKmipData, "plaintext"));
    RETURN_IF_ERROR(CheckKmipLength(a.aad.size(), 0, ecall::kMaxKmipAad, "aad"));
    if (a.tag_length < ecall::kKmipMinTagLength || a.tag_length > ecall::kKmipMaxTagLength)
      return InvalidArgument("kmip: an AES-GCM tag length must be 12 to 16 bytes");
  } else {
    RETURN_IF_ERROR(CheckKmipCbcExtras(a.aad, a.tag_length, /*tag_is_length=*/true));
    RETURN_IF_ERROR(CheckKmipCbcData(a.mode, a.plaintext.size(), ecall::kMaxKmipData,
                                     /*whole_blocks=*/a.mode == ecall::kKmipModeCbcNoPadding,
                                     "plaintext"));
  }
  ASSIGN_OR_RETURN(SecretBytes key, KmipKey(a.ref, a.key_bits));
  ecall::KmipEncrypt::Result out;
  out.iv = !a.iv.empty() ? a.iv
                         : crypto::RandomBytes(gcm ? ecall::kKmipGcmIvSize : ecall::kKmipCbcIvSize);
  if (gcm) {
    ASSIGN_OR_RETURN(crypto::AesGcm cipher, crypto::AesGcm::Create(key));
    out.ciphertext.resize(a.plaintext.size());
    out.tag.resize(a.tag_length);
    RETURN_IF_ERROR(
        cipher.SealDetached(out.iv, a.plaintext.view(), a.aad, out.ciphertext, out.tag));
  } else {
    ASSIGN_OR_RETURN(crypto::AesCbc cipher, crypto::AesCbc::Create(key, KmipPadding(a.mode)));
    ASSIGN_OR_RETURN(out.ciphertext, cipher.Encrypt(out.iv, a.plaintext.view()));
  }
  return out;
}

StatusOr<ecall::KmipDecrypt::Result> KmsOperations::KmipDecrypt(const ecall::KmipDecrypt::Args& a) {
  RETURN_IF_ERROR(RequireKmipSpec(a.ref, "decrypt"));
  RETURN_IF_ERROR(CheckKmipKeyBits(a.key_bits));
  RETURN_IF_ERROR(CheckKmipMode(a.mode));
  RETURN_IF_ERROR(CheckKmipIv(a.mode, a.iv, /*may_be_empty=*/false));
  const bool gcm = a.mode == ecall::kKmipModeGcm;
  if (gcm) {
    RETURN_IF_ERROR(CheckKmipLength(a.ciphertext.size(), 0, ecall::kMaxKmipData, "ciphertext"));
    RETURN_IF_ERROR(CheckKmipLength(a.aad.size(), 0, ecall::kMaxKmipAad, "aad"));
    if (a.tag.size() < ecall::kKmipMinTagLength || a.tag.size() > ecall::kKmipMaxTagLength)
      return InvalidArgument("kmip: an AES-GCM tag must be 12 to 16 bytes");
  } else {
    RETURN_IF_ERROR(CheckKmipCbcExtras(a.aad, a.tag.size(), /*tag_is_length=*/false));
    // A padded plaintext of kMaxKmipData bytes gains a whole block.
    const bool padded = a.mode == ecall::kKmipModeCbcPkcs7;
    RETURN_IF_ERROR(CheckKmipCbcData(a.mode, a.ciphertext.size(),
                                     ecall::kMaxKmipData + (padded ? crypto::kAesBlockSize : 0),
                                     /*whole_blocks=*/true, "ciphertext"));
  }
  ASSIGN_OR_RETURN(SecretBytes key, KmipKey(a.ref, a.key_bits));
  if (gcm) {
    ASSIGN_OR_RETURN(crypto::AesGcm cipher, crypto::AesGcm::Create(key));
    const size_t n = a.ciphertext.size();
    ecall::KmipDecrypt::Result out{WipedBuffer(n)};
    // Straight into the result; OpenDetached wipes it when the tag does not match.
    Status opened = cipher.OpenDetached(a.iv, a.ciphertext, a.tag, a.aad, out.plaintext.span(0, n));
    if (!opened.ok())
      return IntegrityError("kmip: ciphertext does not authenticate")
          .WithReason(ecall::Reason::kCiphertextInvalid);
    return out;
  }
  ASSIGN_OR_RETURN(crypto::AesCbc cipher, crypto::AesCbc::Create(key, KmipPadding(a.mode)));
  StatusOr<SecretBytes> plaintext = cipher.Decrypt(a.iv, a.ciphertext);
  if (!plaintext.ok()) {
    // CBC has no integrity: only the padding can fail, and the answer says no more than that.
    if (plaintext.status().code() == ErrorCode::kIntegrity)
      return IntegrityError("kmip: bad padding").WithReason(ecall::Reason::kCiphertextInvalid);
    return plaintext.status();
  }
  return ecall::KmipDecrypt::Result{WipedBuffer::CopyOf(plaintext->Expose())};
}

}  // namespace custos::enclave
