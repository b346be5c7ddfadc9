// ECDSA P-256 with SHA-256; signatures are IEEE P1363 `r || s` (64 bytes) on the wire.
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/p256.h"

namespace custos::crypto {

inline constexpr size_t kSignatureSize = 64;

class VerifyingKey {
 public:
  static StatusOr<VerifyingKey> Decode(ByteSpan sec1);
  static VerifyingKey FromPoint(const Point& p);
  VerifyingKey(const VerifyingKey& other);
  VerifyingKey& operator=(const VerifyingKey& other);
  VerifyingKey(VerifyingKey&&) noexcept;
  VerifyingKey& operator=(VerifyingKey&&) noexcept;
  ~VerifyingKey();

  // Verify checks a 64-byte P1363 signature over SHA-256(message). kIntegrity on mismatch.
  Status Verify(ByteSpan message, ByteSpan signature) const;
  const Point& point() const { return point_; }
  Bytes Encode() const { return point_.Encode(); }
  bool operator==(const VerifyingKey& o) const { return point_ == o.point_; }

 private:
  VerifyingKey() = default;
  Point point_;
  struct Pkey;
  std::shared_ptr<Pkey> pkey_;  // immutable once built; shared between copies
};

class SigningKey {
 public:
  static SigningKey Generate();
  // FromScalarBytes loads a 32-byte big-endian private scalar.
  static StatusOr<SigningKey> FromScalarBytes(const SecretBytes& d);
  SigningKey(SigningKey&&) noexcept;
  SigningKey& operator=(SigningKey&&) noexcept;
  ~SigningKey();

  // Sign returns a 64-byte P1363 signature over SHA-256(message) (randomized nonce).
  Bytes Sign(ByteSpan message) const;
  const VerifyingKey& verifying_key() const { return *verifying_; }
  SecretBytes ToScalarBytes() const { return d_.ToSecretBytes(); }

 private:
  SigningKey() = default;
  Scalar d_;
  std::unique_ptr<VerifyingKey> verifying_;
  struct Pkey;
  std::unique_ptr<Pkey> pkey_;
};

}  // namespace custos::crypto
