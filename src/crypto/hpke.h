// HPKE (RFC 9180) base mode with DHKEM(P-256, HKDF-SHA256) and HKDF-SHA256; AEAD is
// AES-128-GCM (for the RFC's A.3 vectors) or AES-256-GCM (custos' suite v1).
// `enc` is the 65-byte uncompressed ephemeral public key, as RFC 9180 SerializePublicKey says.
#pragma once

#include <memory>

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/p256.h"

namespace custos::crypto::hpke {

enum class AeadId : uint16_t { kAes128Gcm = 0x0001, kAes256Gcm = 0x0002 };
inline constexpr size_t kEncSize = 65;

// PrivateKey is a DHKEM(P-256) private key (wiped on destruction).
class PrivateKey {
 public:
  static PrivateKey Generate();
  // Derive implements DeriveKeyPair(ikm) (RFC 9180 section 7.1.3).
  static StatusOr<PrivateKey> Derive(ByteSpan ikm);
  // FromBytes loads a 32-byte big-endian scalar (SerializePrivateKey form).
  static StatusOr<PrivateKey> FromBytes(const SecretBytes& sk);
  SecretBytes ToBytes() const { return sk_.ToSecretBytes(); }
  const Point& public_key() const { return pk_; }
  const Scalar& scalar() const { return sk_; }

 private:
  Scalar sk_;
  Point pk_;
};

// SenderContext / RecipientContext are the RFC's encryption contexts (sequence-numbered).
// Not thread-safe.
class SenderContext {
 public:
  const Bytes& enc() const { return enc_; }
  // Seal encrypts with the next nonce; fails once the sequence number would overflow.
  StatusOr<Bytes> Seal(ByteSpan aad, ByteSpan plaintext);
  StatusOr<SecretBytes> Export(ByteSpan exporter_context, size_t length) const;
  // For known-answer tests only: the derived key schedule values.
  const SecretBytes& key_for_testing() const { return key_; }
  const Bytes& base_nonce_for_testing() const { return base_nonce_; }
  const SecretBytes& exporter_secret_for_testing() const { return exporter_secret_; }

 private:
  friend class Setup;
  AeadId aead_ = AeadId::kAes256Gcm;
  Bytes enc_;
  SecretBytes key_;
  Bytes base_nonce_;
  SecretBytes exporter_secret_;
  uint64_t seq_ = 0;
};

class RecipientContext {
 public:
  // Open decrypts with the next nonce; kIntegrity if authentication fails.
  StatusOr<Bytes> Open(ByteSpan aad, ByteSpan ciphertext);
  StatusOr<SecretBytes> OpenSecret(ByteSpan aad, ByteSpan ciphertext);
  StatusOr<SecretBytes> Export(ByteSpan exporter_context, size_t length) const;

 private:
  friend class Setup;
  AeadId aead_ = AeadId::kAes256Gcm;
  SecretBytes key_;
  Bytes base_nonce_;
  SecretBytes exporter_secret_;
  uint64_t seq_ = 0;
};

class Setup {
 public:
  // BaseSender runs SetupBaseS(pkR, info). `ephemeral` fixes skE for known-answer tests;
  // production callers pass nullptr and a fresh key is generated.
  static StatusOr<SenderContext> BaseSender(const Point& recipient, ByteSpan info, AeadId aead,
                                            const PrivateKey* ephemeral = nullptr);
  static StatusOr<RecipientContext> BaseRecipient(const PrivateKey& recipient, ByteSpan enc,
                                                  ByteSpan info, AeadId aead);
};

// Single-shot helpers (suite v1: AES-256-GCM): output is enc (65 B) || ciphertext.
StatusOr<Bytes> SealBase(const Point& recipient, ByteSpan info, ByteSpan aad, ByteSpan plaintext);
StatusOr<Bytes> OpenBase(const PrivateKey& recipient, ByteSpan info, ByteSpan aad,
                         ByteSpan enc_and_ciphertext);
StatusOr<SecretBytes> OpenBaseSecret(const PrivateKey& recipient, ByteSpan info, ByteSpan aad,
                                     ByteSpan enc_and_ciphertext);

}  // namespace custos::crypto::hpke
