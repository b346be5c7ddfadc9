// AES-CBC (128- or 256-bit key, 128-bit IV) over OpenSSL's EVP interface (NIST SP 800-38A
// 6.2), with PKCS#7 padding (RFC 5652 6.3) or none. Unauthenticated: custos' own constructions
// use AES-GCM (aead.h); this exists for protocols whose clients ask for raw CBC (KMIP Encrypt and
// Decrypt, docs/protocol.md "kmip-encrypt"). Whoever decrypts CBC for a client that can see
// the outcome offers a padding oracle to that client: authenticating the ciphertext is the
// client's concern in CBC.
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

inline constexpr size_t kAesBlockSize = 16;
inline constexpr size_t kCbcIvSize = 16;

// CbcPadding says whether plaintexts are padded to whole blocks (PKCS#7: 1 to 16 bytes, each
// holding the pad length, so a plaintext that fills its blocks gains a whole block) or must
// already be whole blocks.
enum class CbcPadding { kPkcs7, kNone };

// AesCbc holds one key schedule. Encrypt/Decrypt may be called many times, each with its own
// IV; the object is not thread-safe (one per thread). The caller chooses the IVs: for CBC they
// must be unpredictable (random), not merely unique.
class AesCbc {
 public:
  // Create accepts a 16- or 32-byte key (kInvalidArgument "AES-CBC key must be 16 or 32 bytes"
  // otherwise). Padding is PKCS#7 unless `padding` says kNone.
  static StatusOr<AesCbc> Create(const SecretBytes& key, CbcPadding padding = CbcPadding::kPkcs7);
  AesCbc(AesCbc&&) noexcept;
  AesCbc& operator=(AesCbc&&) noexcept;
  ~AesCbc();

  CbcPadding padding() const;

  // Encrypt returns the ciphertext of `plaintext` under `iv` (16 bytes, else kInvalidArgument
  // "AES-CBC IV must be 16 bytes"). With PKCS#7 the ciphertext is the plaintext's length
  // rounded up to the next multiple of 16 (one whole block more for a multiple of 16, an empty
  // plaintext included); without padding the plaintext must be a multiple of 16 bytes
  // (kInvalidArgument "AES-CBC without padding: the input must be a multiple of 16 bytes") and
  // the ciphertext is as long.
  StatusOr<Bytes> Encrypt(ByteSpan iv, ByteSpan plaintext);
  // Decrypt returns the plaintext of `ciphertext` under `iv` (16 bytes). The ciphertext must be
  // a multiple of 16 bytes, and with PKCS#7 not empty (kInvalidArgument). With PKCS#7, a last
  // block whose padding is malformed is kIntegrity "AES-CBC: bad padding", which says nothing
  // else about the bytes; nothing of the plaintext is returned then (it is wiped).
  StatusOr<SecretBytes> Decrypt(ByteSpan iv, ByteSpan ciphertext);

 private:
  AesCbc() = default;
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

}  // namespace custos::crypto
