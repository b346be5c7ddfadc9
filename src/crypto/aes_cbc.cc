#include "crypto/aes_cbc.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <climits>

namespace custos::crypto {

struct AesCbc::Ctx {
  EVP_CIPHER_CTX* enc = nullptr;
  EVP_CIPHER_CTX* dec = nullptr;
  CbcPadding padding = CbcPadding::kPkcs7;
  ~Ctx() {
    EVP_CIPHER_CTX_free(enc);
    EVP_CIPHER_CTX_free(dec);
  }
};

StatusOr<AesCbc> AesCbc::Create(const SecretBytes& key, CbcPadding padding) {
  const EVP_CIPHER* cipher = nullptr;
  if (key.size() == 16)
    cipher = EVP_aes_128_cbc();
  else if (key.size() == 32)
    cipher = EVP_aes_256_cbc();
  else
    return InvalidArgument("AES-CBC key must be 16 or 32 bytes");
  AesCbc a;
  a.ctx_ = std::make_unique<Ctx>();
  a.ctx_->padding = padding;
  a.ctx_->enc = EVP_CIPHER_CTX_new();
  a.ctx_->dec = EVP_CIPHER_CTX_new();
  if (a.ctx_->enc == nullptr || a.ctx_->dec == nullptr) return InternalError("EVP_CIPHER_CTX_new");
  const uint8_t* k = key.Expose().data();
  if (EVP_EncryptInit_ex(a.ctx_->enc, cipher, nullptr, k, nullptr) != 1 ||
      EVP_DecryptInit_ex(a.ctx_->dec, cipher, nullptr, k, nullptr) != 1) {
    ERR_clear_error();
    return InternalError("AES-CBC key setup failed");
  }
  return a;
}

AesCbc::AesCbc(AesCbc&&) noexcept = default;
AesCbc& AesCbc::operator=(AesCbc&&) noexcept = default;
AesCbc::~AesCbc() = default;

CbcPadding AesCbc::padding() const { return ctx_->padding; }

namespace {

Status CheckInput(ByteSpan iv, ByteSpan in) {
  if (iv.size() != kCbcIvSize) return InvalidArgument("AES-CBC IV must be 16 bytes");
  if (in.size() > static_cast<size_t>(INT_MAX) - kAesBlockSize)
    return InvalidArgument("AES-CBC input too large");
  return Status::Ok();
}

// StartMessage sets `iv` on a context that holds the key, and the padding (both are per
// message in OpenSSL's state; the key schedule stays).
bool StartMessage(EVP_CIPHER_CTX* c, ByteSpan iv, CbcPadding padding, bool encrypt) {
  int ok = encrypt ? EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, iv.data())
                   : EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, iv.data());
  return ok == 1 && EVP_CIPHER_CTX_set_padding(c, padding == CbcPadding::kPkcs7 ? 1 : 0) == 1;
}

}  // namespace

StatusOr<Bytes> AesCbc::Encrypt(ByteSpan iv, ByteSpan plaintext) {
  RETURN_IF_ERROR(CheckInput(iv, plaintext));
  const bool pad = ctx_->padding == CbcPadding::kPkcs7;
  if (!pad && plaintext.size() % kAesBlockSize != 0)
    return InvalidArgument("AES-CBC without padding: the input must be a multiple of 16 bytes");
  EVP_CIPHER_CTX* c = ctx_->enc;
  Bytes out(pad ? (plaintext.size() / kAesBlockSize + 1) * kAesBlockSize : plaintext.size());
  int len = 0, fin = 0;
  bool ok = StartMessage(c, iv, ctx_->padding, /*encrypt=*/true) &&
            (plaintext.empty() || EVP_EncryptUpdate(c, out.data(), &len, plaintext.data(),
                                                    static_cast<int>(plaintext.size())) == 1) &&
            EVP_EncryptFinal_ex(c, out.data() + len, &fin) == 1;
  if (!ok || static_cast<size_t>(len) + static_cast<size_t>(fin) != out.size()) {
    ERR_clear_error();
    return InternalError("AES-CBC encrypt failed");
  }
  return out;
}

StatusOr<SecretBytes> AesCbc::Decrypt(ByteSpan iv, ByteSpan ciphertext) {
  RETURN_IF_ERROR(CheckInput(iv, ciphertext));
  const bool pad = ctx_->padding == CbcPadding::kPkcs7;
  if (ciphertext.size() % kAesBlockSize != 0 || (pad && ciphertext.empty()))
    return InvalidArgument(
        pad ? "AES-CBC ciphertext must be a non-empty multiple of 16 bytes"
            : "AES-CBC without padding: the input must be a multiple of 16 bytes");
  if (ciphertext.empty()) return SecretBytes();
  EVP_CIPHER_CTX* c = ctx_->dec;
  // OpenSSL holds the last block back until Final checks its padding, so the whole plaintext
  // lands in `work` and only its first `len + fin` bytes are the message.
  SecretBytes work(ciphertext.size());
  uint8_t* w = work.ExposeMutable().data();
  int len = 0, fin = 0;
  if (!StartMessage(c, iv, ctx_->padding, /*encrypt=*/false) ||
      EVP_DecryptUpdate(c, w, &len, ciphertext.data(), static_cast<int>(ciphertext.size())) != 1) {
    ERR_clear_error();
    return InternalError("AES-CBC decrypt failed");
  }
  if (EVP_DecryptFinal_ex(c, w + len, &fin) != 1) {
    ERR_clear_error();
    // Only a padding check can fail here (the length is a multiple of the block): the work
    // buffer, which holds every block, is wiped as it goes.
    return IntegrityError("AES-CBC: bad padding");
  }
  size_t n = static_cast<size_t>(len) + static_cast<size_t>(fin);
  if (n > ciphertext.size()) return InternalError("AES-CBC decrypt failed");
  if (n == work.size()) return work;
  return SecretBytes::CopyFrom(work.Expose().first(n));
}

}  // namespace custos::crypto
