// AES-GCM (128- or 256-bit key, 96-bit nonce, 128-bit tag) over OpenSSL's EVP interface.
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;

// AesGcm holds one key schedule. Seal/Open may be called many times with distinct nonces; the
// object is not thread-safe (one per thread). The caller guarantees nonce uniqueness per key.
class AesGcm {
 public:
  // Create accepts a 16- or 32-byte key.
  static StatusOr<AesGcm> Create(const SecretBytes& key);
  AesGcm(AesGcm&&) noexcept;
  AesGcm& operator=(AesGcm&&) noexcept;
  ~AesGcm();

  // Seal writes plaintext.size() + 16 bytes (ciphertext || tag) to `out`.
  Status Seal(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad, std::span<uint8_t> out);
  // Open authenticates and writes ciphertext_and_tag.size() - 16 bytes to `out`. On failure
  // `out` is wiped and the status is kIntegrity.
  Status Open(ByteSpan nonce, ByteSpan ciphertext_and_tag, ByteSpan aad, std::span<uint8_t> out);

  Bytes Seal(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad);
  StatusOr<Bytes> Open(ByteSpan nonce, ByteSpan ciphertext_and_tag, ByteSpan aad);
  StatusOr<SecretBytes> OpenSecret(ByteSpan nonce, ByteSpan ciphertext_and_tag, ByteSpan aad);

 private:
  AesGcm() = default;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace custos::crypto
