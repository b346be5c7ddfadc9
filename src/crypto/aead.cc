#include "crypto/aead.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <climits>
#include <cstdlib>
#include <cstring>

namespace custos::crypto {

struct AesGcm::Ctx {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
  bool opening = false;  // an incremental opening (OpenBegin) is in progress on `dec`
  ~Ctx() {
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
  }
};

namespace {

// The AES-GCM implementations, fetched from OpenSSL's provider once. EVP_aes_256_gcm() and its
// kind make every EVP_*Init_ex fetch the implementation again by name (a lock and a name-map
// lookup): two of them per KMS Encrypt in the trusted core, where they showed at 2 % of all
// samples (docs/benchmarks.md, issue 14). Never freed: they live as long as the process.
const EVP_CIPHER* FetchedGcm(size_t key_size) {
  static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
  static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return key_size == 16 ? aes128 : aes256;
}

}  // namespace

StatusOr<AesGcm> AesGcm::Create(const SecretBytes& key) {
  if (key.size() != 16 && key.size() != 32) return InvalidArgument("AES-GCM key must be 16 or 32 bytes");
  const EVP_CIPHER* cipher = FetchedGcm(key.size());
  if (cipher == nullptr) return InternalError("AES-GCM is unavailable in OpenSSL");
  AesGcm a;
  a.ctx_ = std::make_unique<Ctx>();
  a.ctx_->enc = EVP_CIPHER_CTX_new();
  a.ctx_->dec = EVP_CIPHER_CTX_new();
  if (a.ctx_->enc == nullptr || a.ctx_->dec == nullptr) return InternalError("EVP_CIPHER_CTX_new");
  const uint8_t* k = key.Expose().data();
  if (EVP_EncryptInit_ex(a.ctx_->enc, cipher, nullptr, k, nullptr) != 1 ||
      EVP_DecryptInit_ex(a.ctx_->dec, cipher, nullptr, k, nullptr) != 1)
    return InternalError("AES-GCM key setup failed");
  return a;
}

AesGcm::AesGcm(AesGcm&&) noexcept = default;
AesGcm& AesGcm::operator=(AesGcm&&) noexcept = default;
AesGcm::~AesGcm() = default;

Status AesGcm::Seal(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad, std::span<uint8_t> out) {
  if (out.size() != plaintext.size() + kGcmTagSize) return InvalidArgument("AES-GCM output size");
  return SealDetached(nonce, plaintext, aad, out.first(plaintext.size()),
                      out.subspan(plaintext.size()));
}

Status AesGcm::SealDetached(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad,
                            std::span<uint8_t> ciphertext, std::span<uint8_t> tag) {
  if (nonce.size() != kGcmNonceSize) return InvalidArgument("AES-GCM nonce must be 12 bytes");
  if (ciphertext.size() != plaintext.size()) return InvalidArgument("AES-GCM output size");
  if (tag.size() < kGcmMinTagSize || tag.size() > kGcmTagSize)
    return InvalidArgument("AES-GCM tag must be 12 to 16 bytes");
  EVP_CIPHER_CTX* c = ctx_->enc;
  int len = 0;
  if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) != 1)
    return InternalError("AES-GCM nonce setup failed");
  if (!aad.empty() && EVP_EncryptUpdate(c, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1)
    return InternalError("AES-GCM aad failed");
  if (!plaintext.empty() && EVP_EncryptUpdate(c, ciphertext.data(), &len, plaintext.data(),
                                              static_cast<int>(plaintext.size())) != 1)
    return InternalError("AES-GCM encrypt failed");
  if (EVP_EncryptFinal_ex(c, ciphertext.data() + plaintext.size(), &len) != 1)
    return InternalError("AES-GCM final failed");
  uint8_t full[kGcmTagSize];
  if (EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, kGcmTagSize, full) != 1)
    return InternalError("AES-GCM tag failed");
  std::memcpy(tag.data(), full, tag.size());
  return Status::Ok();
}

Status AesGcm::Open(ByteSpan nonce, ByteSpan ct, ByteSpan aad, std::span<uint8_t> out) {
  if (nonce.size() != kGcmNonceSize) return InvalidArgument("AES-GCM nonce must be 12 bytes");
  if (ct.size() < kGcmTagSize) return IntegrityError("ciphertext shorter than its tag");
  size_t n = ct.size() - kGcmTagSize;
  if (out.size() != n) return InvalidArgument("AES-GCM output size");
  return OpenDetached(nonce, ct.first(n), ct.subspan(n), aad, out);
}

Status AesGcm::OpenDetached(ByteSpan nonce, ByteSpan ct, ByteSpan tag, ByteSpan aad,
                            std::span<uint8_t> out) {
  if (nonce.size() != kGcmNonceSize) return InvalidArgument("AES-GCM nonce must be 12 bytes");
  if (out.size() != ct.size()) return InvalidArgument("AES-GCM output size");
  ctx_->opening = false;
  if (tag.size() < kGcmMinTagSize || tag.size() > kGcmTagSize) {
    if (!out.empty()) OPENSSL_cleanse(out.data(), out.size());
    return IntegrityError("authentication tag mismatch");
  }
  EVP_CIPHER_CTX* c = ctx_->dec;
  uint8_t tag_copy[kGcmTagSize];
  std::memcpy(tag_copy, tag.data(), tag.size());  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer
  // With a short tag, OpenSSL compares only that many first bytes of the computed tag.
  int len = 0;
  bool ok =
      EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) == 1 &&
      (aad.empty() ||
       EVP_DecryptUpdate(c, nullptr, &len, aad.data(), static_cast<int>(aad.size())) == 1) &&
      (ct.empty() ||
       EVP_DecryptUpdate(c, out.data(), &len, ct.data(), static_cast<int>(ct.size())) == 1) &&
      EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(tag.size()), tag_copy) == 1 &&
      EVP_DecryptFinal_ex(c, out.data() + ct.size(), &len) == 1;
  if (!ok) {
    if (!out.empty()) OPENSSL_cleanse(out.data(), out.size());
    return IntegrityError("authentication tag mismatch");
  }
  return Status::Ok();
}

Status AesGcm::OpenBegin(ByteSpan nonce, ByteSpan aad) {
  ctx_->opening = false;
  if (nonce.size() != kGcmNonceSize) return InvalidArgument("AES-GCM nonce must be 12 bytes");
  EVP_CIPHER_CTX* c = ctx_->dec;
  int len = 0;
  if (EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, nonce.data()) != 1 ||
      (!aad.empty() &&
       EVP_DecryptUpdate(c, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1))
    return InternalError("AES-GCM nonce or aad setup failed");
  ctx_->opening = true;
  return Status::Ok();
}

Status AesGcm::OpenUpdate(ByteSpan ciphertext, std::span<uint8_t> out) {
  if (!ctx_->opening) return FailedPrecondition("AES-GCM: no opening in progress");
  if (out.size() != ciphertext.size()) return InvalidArgument("AES-GCM output size");
  if (ciphertext.size() > static_cast<size_t>(INT_MAX))
    return InvalidArgument("AES-GCM piece too large");
  if (ciphertext.empty()) return Status::Ok();
  int len = 0;
  if (EVP_DecryptUpdate(ctx_->dec, out.data(), &len, ciphertext.data(),
                        static_cast<int>(ciphertext.size())) != 1 ||
      static_cast<size_t>(len) != ciphertext.size()) {
    ctx_->opening = false;
    OPENSSL_cleanse(out.data(), out.size());
    return InternalError("AES-GCM decrypt failed");
  }
  return Status::Ok();
}

Status AesGcm::OpenFinish(ByteSpan tag) {
  if (!ctx_->opening) return FailedPrecondition("AES-GCM: no opening in progress");
  ctx_->opening = false;
  if (tag.size() != kGcmTagSize) return IntegrityError("AES-GCM tag must be 16 bytes");
  EVP_CIPHER_CTX* c = ctx_->dec;
  uint8_t tag_copy[kGcmTagSize];
  std::memcpy(tag_copy, tag.data(), kGcmTagSize);  // EVP_CTRL_GCM_SET_TAG takes a non-const pointer
  uint8_t none[1];
  int len = 0;
  bool ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, kGcmTagSize, tag_copy) == 1 &&
            EVP_DecryptFinal_ex(c, none, &len) == 1;
  if (!ok) return IntegrityError("authentication tag mismatch");
  return Status::Ok();
}

Bytes AesGcm::Seal(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad) {
  Bytes out(plaintext.size() + kGcmTagSize);
  if (!Seal(nonce, plaintext, aad, std::span<uint8_t>(out)).ok()) std::abort();
  return out;
}

StatusOr<Bytes> AesGcm::Open(ByteSpan nonce, ByteSpan ct, ByteSpan aad) {
  if (ct.size() < kGcmTagSize) return IntegrityError("ciphertext shorter than its tag");
  Bytes out(ct.size() - kGcmTagSize);
  RETURN_IF_ERROR(Open(nonce, ct, aad, std::span<uint8_t>(out)));
  return out;
}

StatusOr<SecretBytes> AesGcm::OpenSecret(ByteSpan nonce, ByteSpan ct, ByteSpan aad) {
  if (ct.size() < kGcmTagSize) return IntegrityError("ciphertext shorter than its tag");
  SecretBytes out(ct.size() - kGcmTagSize);
  RETURN_IF_ERROR(Open(nonce, ct, aad, out.ExposeMutable()));
  return out;
}

}  // namespace custos::crypto
