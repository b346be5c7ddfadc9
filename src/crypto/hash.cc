#include "crypto/hash.h"

#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstdlib>

namespace custos::crypto {

namespace {

// OpenSSL's SHA-256 and HMAC, fetched once. EVP_sha256() and HMAC() fetch the implementation
// from the provider tables on every call (a lock, allocations, name lookups), which on the KMS
// request path (SigV4, audit chain hashes, witness reads) cost more than hashing the bytes.
const EVP_MD* Sha256Algorithm() {
  static EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr) std::abort();
  return md;
}

// HmacSha256Template is an HMAC context with its digest set; each call works on a copy.
const EVP_MAC_CTX* HmacSha256Template() {
  static EVP_MAC_CTX* t = [] {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = mac == nullptr ? nullptr : EVP_MAC_CTX_new(mac);
    EVP_MAC_free(mac);  // the context keeps its own reference
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    if (ctx == nullptr || EVP_MAC_CTX_set_params(ctx, params) != 1) std::abort();
    return ctx;
  }();
  return t;
}

}  // namespace

Digest Sha256(ByteSpan data) {
  Digest d;
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), d.data(), &len, Sha256Algorithm(), nullptr) != 1)
    std::abort();
  return d;
}

Sha256Stream::Sha256Stream() : ctx_(EVP_MD_CTX_new()) {
  if (ctx_ == nullptr || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), Sha256Algorithm(), nullptr) != 1)
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
  size_t len = 0;
  static const uint8_t kEmpty = 0;
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_dup(HmacSha256Template());
  if (ctx == nullptr || EVP_MAC_init(ctx, key.empty() ? &kEmpty : key.data(), key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx, data.data(), data.size()) != 1 || EVP_MAC_final(ctx, d.data(), &len, d.size()) != 1 ||
      len != d.size())
    std::abort();
  EVP_MAC_CTX_free(ctx);  // clears the keyed state
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
