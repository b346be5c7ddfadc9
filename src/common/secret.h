// SecretBytes: the one type that holds key material, shares and passphrases.
// It wipes itself with OPENSSL_cleanse on destruction, lives in locked memory left out of core
// dumps where the platform allows (a locked arena of size-class slots, secret.cc: no system
// call per secret), has no stream operator and no implicit conversion, and is compared in
// constant time. Raw access goes through the greppable `Expose()` accessors only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace custos {

class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size);
  // Copies `data` into a new secret buffer; the caller remains responsible for wiping `data`.
  static SecretBytes CopyFrom(std::span<const uint8_t> data);
  static SecretBytes CopyFrom(std::string_view data);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;
  // Clone makes an explicit deep copy.
  SecretBytes Clone() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  // Expose/ExposeMutable give raw access; every call site is a place a reviewer must read.
  std::span<const uint8_t> Expose() const { return {data_, size_}; }
  std::span<uint8_t> ExposeMutable() { return {data_, size_}; }
  std::string_view ExposeAsString() const {
    return {reinterpret_cast<const char*>(data_), size_};
  }

  // ConstantTimeEquals compares contents without data-dependent timing (lengths are public).
  bool ConstantTimeEquals(const SecretBytes& other) const;

 private:
  void Release();
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// LockedArenaStats: what the arena behind SecretBytes holds (for tests and diagnostics).
struct LockedArenaStats {
  size_t chunks = 0;         // 64 KiB chunks of small slots mapped so far
  size_t locked_bytes = 0;   // bytes mlock accepted (chunks and large secrets)
  size_t lock_failures = 0;  // mappings mlock refused (RLIMIT_MEMLOCK): swappable
};
LockedArenaStats GetLockedArenaStats();

// ConstantTimeEquals compares two public-length byte strings in constant time.
bool ConstantTimeEquals(std::span<const uint8_t> a, std::span<const uint8_t> b);

// WipeBytes overwrites a buffer that briefly held secret data (e.g. a parse buffer).
void WipeBytes(std::vector<uint8_t>& buf);
void WipeBytes(std::string& buf);

}  // namespace custos
