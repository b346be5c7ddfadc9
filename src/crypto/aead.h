// AES-GCM (128- or 256-bit key, 96-bit nonce, 128-bit tag) over OpenSSL's EVP interface.
// SealDetached/OpenDetached also serve protocols whose clients choose a shorter tag (KMIP).
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

inline constexpr size_t kGcmNonceSize = 12;
inline constexpr size_t kGcmTagSize = 16;
// kGcmMinTagSize is the shortest tag SealDetached/OpenDetached take: 96 bits, the shortest NIST
// SP 800-38D 5.2.1.2 allows without restricting the number of messages and their lengths.
inline constexpr size_t kGcmMinTagSize = 12;

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

  // SealDetached writes the ciphertext (plaintext.size() bytes) to `ciphertext` and the tag
  // apart to `tag`, whose size (kGcmMinTagSize..kGcmTagSize) is the tag length: a shorter tag
  // is the first bytes of the 16-byte one (NIST SP 800-38D 5.2.1.2). Seal is SealDetached with
  // a 16-byte tag right after the ciphertext. kInvalidArgument for a bad nonce or sizes.
  Status SealDetached(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad,
                      std::span<uint8_t> ciphertext, std::span<uint8_t> tag);
  // OpenDetached authenticates `ciphertext` against `tag` (kGcmMinTagSize..kGcmTagSize bytes,
  // compared with as many first bytes of the computed tag, in constant time) and writes
  // ciphertext.size() bytes to `out`. A tag of another length is kIntegrity as a mismatch is;
  // on either, `out` is wiped. The caller fixes the tag length it accepts: whoever lets the
  // sender choose it accepts the shortest.
  Status OpenDetached(ByteSpan nonce, ByteSpan ciphertext, ByteSpan tag, ByteSpan aad,
                      std::span<uint8_t> out);

  // Incremental opening, for a ciphertext that arrives in pieces (a network transfer) and should
  // be decrypted straight from the buffers it arrives in. OpenBegin starts one message under
  // `nonce` and `aad`; OpenUpdate decrypts the next ciphertext bytes (without the tag) into `out`
  // (exactly ciphertext.size() bytes; `out` may equal `ciphertext`); OpenFinish checks the tag and
  // ends the message. The plaintext OpenUpdate writes is NOT authenticated: the caller must not
  // release any of it before OpenFinish returned OK, and must wipe it when OpenFinish fails
  // (kIntegrity). Open and OpenBegin share one state: either abandons an opening in progress;
  // OpenUpdate or OpenFinish without an opening in progress is kFailedPrecondition.
  Status OpenBegin(ByteSpan nonce, ByteSpan aad);
  Status OpenUpdate(ByteSpan ciphertext, std::span<uint8_t> out);
  Status OpenFinish(ByteSpan tag);

  Bytes Seal(ByteSpan nonce, ByteSpan plaintext, ByteSpan aad);
  StatusOr<Bytes> Open(ByteSpan nonce, ByteSpan ciphertext_and_tag, ByteSpan aad);
  StatusOr<SecretBytes> OpenSecret(ByteSpan nonce, ByteSpan ciphertext_and_tag, ByteSpan aad);

 private:
  AesGcm() = default;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace custos::crypto
