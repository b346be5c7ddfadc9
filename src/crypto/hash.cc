#include "crypto/hash.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdlib>

namespace custos::crypto {

Digest Sha256(ByteSpan data) {
  Digest d;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, EVP_sha256(), nullptr) != 1)
    std::abort();
  return d;
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1)
    std::abort();
}
Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

Sha256Stream& Sha256Stream::Update(ByteSpan data) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data.data(), data.size()) != 1) std::abort();
  return *this;
}

Sha256Stream& Sha256Stream::UpdateVar(ByteSpan data) {
  uint8_t len[4] = {static_cast<uint8_t>(data.size() >> 24), static_cast<uint8_t>(data.size() >> 16),
                    static_cast<uint8_t>(data.size() >> 8), static_cast<uint8_t>(data.size())};
  Update(len);
  return Update(data);
}

Digest Sha256Stream::Final() {
  Digest d;
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(static_cast<EVP_MD_CTX*>(ctx_), d.data(), &len) != 1) std::abort();
  return d;
}

Digest HmacSha256(ByteSpan key, ByteSpan data) {
  Digest d;
  unsigned int len = 0;
  static const uint8_t kEmpty = 0;
  if (HMAC(EVP_sha256(), key.empty() ? &kEmpty : key.data(), static_cast<int>(key.size()),
           data.data(), data.size(), d.data(), &len) == nullptr)
    std::abort();
  return d;
}

namespace {

// HkdfAlgorithm is OpenSSL's HKDF implementation, fetched once: a fetch walks the provider
// tables under a lock and cost about as much as the derivation itself on the KMS hot path.
EVP_KDF* HkdfAlgorithm() {
  static EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

// RunHkdf drives OpenSSL's HKDF provider in the given mode (extract-only, expand-only, or both
// in one derivation). `salt` is used by the extract step, `info` by the expand step.
Status RunHkdf(int mode, ByteSpan key, ByteSpan salt, ByteSpan info, uint8_t* out, size_t out_len) {
  EVP_KDF* kdf = HkdfAlgorithm();
  if (kdf == nullptr) return InternalError("HKDF is unavailable in OpenSSL");
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  if (ctx == nullptr) return InternalError("EVP_KDF_CTX_new failed");
  static const uint8_t kEmpty = 0;
  auto octets = [](const char* name, ByteSpan b) {
    return OSSL_PARAM_construct_octet_string(name, const_cast<uint8_t*>(b.empty() ? &kEmpty : b.data()), b.size());
  };
  OSSL_PARAM params[6];
  size_t n = 0;
  char digest[] = "SHA256";
  params[n++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0);
  params[n++] = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
  params[n++] = octets(OSSL_KDF_PARAM_KEY, key);
  if (mode != EVP_KDF_HKDF_MODE_EXPAND_ONLY) params[n++] = octets(OSSL_KDF_PARAM_SALT, salt);
  if (mode != EVP_KDF_HKDF_MODE_EXTRACT_ONLY) params[n++] = octets(OSSL_KDF_PARAM_INFO, info);
  params[n] = OSSL_PARAM_construct_end();
  int rc = EVP_KDF_derive(ctx, out, out_len, params);
  EVP_KDF_CTX_free(ctx);
  if (rc != 1) return InternalError("HKDF derivation failed");
  return Status::Ok();
}

}  // namespace

SecretBytes HkdfExtract(ByteSpan salt, ByteSpan ikm) {
  // RFC 5869: an absent salt is HashLen zero bytes.
  static const uint8_t kZeros[32] = {};
  ByteSpan s = salt.empty() ? ByteSpan(kZeros, 32) : salt;
  SecretBytes prk(32);
  if (!RunHkdf(EVP_KDF_HKDF_MODE_EXTRACT_ONLY, ikm, s, {}, prk.ExposeMutable().data(), 32).ok())
    std::abort();
  return prk;
}

StatusOr<SecretBytes> HkdfExpand(ByteSpan prk, ByteSpan info, size_t length) {
  if (length == 0 || length > 255 * 32) return InvalidArgument("HKDF output length out of range");
  if (prk.size() < 32) return InvalidArgument("HKDF PRK shorter than the hash length");
  SecretBytes out(length);
  RETURN_IF_ERROR(
      RunHkdf(EVP_KDF_HKDF_MODE_EXPAND_ONLY, prk, {}, info, out.ExposeMutable().data(), length));
  return out;
}

StatusOr<SecretBytes> Hkdf(ByteSpan ikm, ByteSpan salt, ByteSpan info, size_t length) {
  if (length == 0 || length > 255 * 32) return InvalidArgument("HKDF output length out of range");
  SecretBytes out(length);
  RETURN_IF_ERROR(RunHkdf(EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, ikm, salt, info, out.ExposeMutable().data(), length));
  return out;
}

}  // namespace custos::crypto
