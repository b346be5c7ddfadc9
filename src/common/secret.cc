#include "common/secret.h"

#include <openssl/crypto.h>
#include <sys/mman.h>

#include <cstring>
#include <new>

namespace custos {

SecretBytes::SecretBytes(size_t size) : size_(size) {
  if (size_ == 0) return;
  data_ = static_cast<uint8_t*>(OPENSSL_secure_zalloc(size_));
  if (data_ == nullptr) throw std::bad_alloc();
  // Best effort: keep the pages out of swap. Failure (RLIMIT_MEMLOCK) is not fatal.
  (void)mlock(data_, size_);
}

SecretBytes SecretBytes::CopyFrom(std::span<const uint8_t> data) {
  SecretBytes s(data.size());
  if (!data.empty()) std::memcpy(s.data_, data.data(), data.size());
  return s;
}

SecretBytes SecretBytes::CopyFrom(std::string_view data) {
  return CopyFrom(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(data.data()),
                                           data.size()));
}

SecretBytes::~SecretBytes() { Release(); }

void SecretBytes::Release() {
  if (data_ != nullptr) {
    OPENSSL_cleanse(data_, size_);
    (void)munlock(data_, size_);
    OPENSSL_secure_free(data_);
  }
  data_ = nullptr;
  size_ = 0;
}

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(other.data_), size_(other.size_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    Release();
    data_ = other.data_;
    size_ = other.size_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes SecretBytes::Clone() const { return CopyFrom(Expose()); }

bool SecretBytes::ConstantTimeEquals(const SecretBytes& other) const {
  return custos::ConstantTimeEquals(Expose(), other.Expose());
}

bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void WipeBytes(std::vector<uint8_t>& buf) {
  if (!buf.empty()) OPENSSL_cleanse(buf.data(), buf.size());
  buf.clear();
}

void WipeBytes(std::string& buf) {
  if (!buf.empty()) OPENSSL_cleanse(buf.data(), buf.size());
  buf.clear();
}

}  // namespace custos
