// SHA-256, HMAC-SHA256 and HKDF-SHA256 (RFC 5869), all from OpenSSL 3.
#pragma once

#include <array>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

using Digest = std::array<uint8_t, 32>;

Digest Sha256(ByteSpan data);
inline Bytes Sha256Bytes(ByteSpan data) {
  Digest d = Sha256(data);
  return Bytes(d.begin(), d.end());
}

// Sha256Stream hashes data fed in pieces. Not thread-safe.
class Sha256Stream {
 public:
  Sha256Stream();
  ~Sha256Stream();
  Sha256Stream(const Sha256Stream&) = delete;
  Sha256Stream& operator=(const Sha256Stream&) = delete;
  Sha256Stream& Update(ByteSpan data);
  // Update with a u32 length prefix, so concatenations of fields cannot be ambiguous.
  Sha256Stream& UpdateVar(ByteSpan data);
  Digest Final();

 private:
  void* ctx_;
};

// HmacSha256 computes HMAC-SHA256(key, data).
Digest HmacSha256(ByteSpan key, ByteSpan data);

// HkdfExtract returns PRK = HMAC-Hash(salt, IKM) (RFC 5869 section 2.2).
SecretBytes HkdfExtract(ByteSpan salt, ByteSpan ikm);
// HkdfExpand returns L bytes of OKM (RFC 5869 section 2.3). Fails if L > 255*32.
StatusOr<SecretBytes> HkdfExpand(ByteSpan prk, ByteSpan info, size_t length);
// Hkdf = Expand(Extract(salt, ikm), info, length).
StatusOr<SecretBytes> Hkdf(ByteSpan ikm, ByteSpan salt, ByteSpan info, size_t length);

}  // namespace custos::crypto
