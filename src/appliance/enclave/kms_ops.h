// The KMS operations of the trusted core (issue 4: every operation on key material runs in the
// core; docs/protocol.md "KMS calls", "KMS ciphertext blob", "Audit log"). The host stores
// customer master key (CMK) versions only wrapped under a key derived from the root key, and
// hands the wrapped material back with each request (ecall/kms_calls.h KeyRef); the core
// unwraps it for the one operation, and the plaintext material is wiped when the call returns.
//
// Keys derived from the root key (HKDF-SHA256, salt empty, 32 bytes each):
//   KW          info "custos/v1/cmk-wrap"          wraps CMK material (kms_calls.h)
//   KA          info "custos/v1/access-key-wrap"   wraps SigV4 secret access keys
//   audit key   info "custos/v1/audit-signing-key" || u8 counter, counter = 0, 1, ...: the
//               first output that is a scalar in [1, n-1] is the ECDSA P-256 private key
// Every node of a cluster, and every restart, derives the same keys from the same root key.
//
// Thread safety: KmsOperations serves concurrent calls (the core's workers): the keyring is
// read-only after Derive and the audit head has its own mutex.
#pragma once

#include <memory>
#include <deque>
#include <mutex>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "protocol/audit/chain.h"
#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/ecdsa.h"
#include "appliance/ecall/calls.h"
#include "appliance/ecall/ecall.h"
#include "appliance/ecall/kms_calls.h"

namespace custos::enclave {

// kAccessSecretSize is the length of a SigV4 secret access key: 30 random bytes in base64;
// kXksSecretSize an XKS proxy credential's: 32 random bytes in base64 (one '=' of padding).
inline constexpr size_t kAccessSecretSize = 40;
inline constexpr size_t kXksSecretSize = 44;

// KmsKeyring holds the keys derived from the root key. It owns its secrets (SecretBytes and a
// SigningKey, wiped on destruction) and never returns them; it wraps and unwraps.
class KmsKeyring {
 public:
  // Derive computes KW, KA and the audit key from a 32-byte root key. kInternal only if the
  // audit-key counter runs out (probability about 2^-8000).
  static StatusOr<KmsKeyring> Derive(const SecretBytes& root);
  KmsKeyring(KmsKeyring&&) noexcept;
  KmsKeyring& operator=(KmsKeyring&&) noexcept;
  ~KmsKeyring();

  // WrapMaterial returns nonce (12) || AES-256-GCM(KW, nonce, material, aad) with
  // aad = "custos/v1/cmk" || var(key id) || u32 version || var(spec), a fresh nonce each time.
  Bytes WrapMaterial(std::string_view key_id, uint32_t version, std::string_view spec,
                     const SecretBytes& material) const;
  // UnwrapMaterial opens ref.wrapped under ref's key id, version and spec. kIntegrity
  // "kms: key material does not unwrap" if anything differs from what was wrapped (another id,
  // version, spec or root key, or edited bytes).
  StatusOr<SecretBytes> UnwrapMaterial(const ecall::KeyRef& ref) const;

  // WrapAccessSecret/UnwrapAccessSecret: nonce (12) || AES-256-GCM(KA, nonce, secret, aad)
  // with aad = "custos/v1/access-key" || var(access key id). Unwrap is kIntegrity on failure.
  Bytes WrapAccessSecret(std::string_view access_key_id, const SecretBytes& secret) const;
  StatusOr<SecretBytes> UnwrapAccessSecret(std::string_view access_key_id, ByteSpan wrapped) const;

  // audit_key signs audit heads (audit/chain.h CheckpointMessage).
  const crypto::SigningKey& audit_key() const { return *audit_key_; }

 private:
  KmsKeyring(SecretBytes cmk_wrap, SecretBytes access_wrap, crypto::SigningKey audit_key);
  SecretBytes cmk_wrap_;
  SecretBytes access_wrap_;
  std::unique_ptr<crypto::SigningKey> audit_key_;
};

// KmsOperations serves the KMS calls of ecall/ecall.h (kKmsCreateKey .. kKmsImportKey) over one
// keyring, and keeps the audit chain's last signed head for this core's life. The core creates
// it when the root key becomes known; a sealed core has none and refuses these calls itself.
class KmsOperations {
 public:
  explicit KmsOperations(KmsKeyring keyring);

  // Serve runs one KMS call and returns its results, or the error the call documents. Arity is
  // checked again here (kInvalidArgument), so a hand-built Request cannot index past its args.
  // Error messages name the failed check and never carry key material or plaintext.
  StatusOr<std::vector<Bytes>> Serve(const ecall::Request& request);

  // audit_public_key verifies every head this core (or any core with the same root) signs.
  const crypto::VerifyingKey& audit_public_key() const {
    return keyring_.audit_key().verifying_key();
  }

 private:
  using Results = StatusOr<std::vector<Bytes>>;
  // Route is one row of Serve's table: calls.h's Serve decodes C's arguments and encodes the
  // handler's typed result.
  template <typename C, StatusOr<typename C::Result> (KmsOperations::*F)(const typename C::Args&)>
  static Results Route(KmsOperations& ops, std::span<const Bytes> args) {
    return ecall::Serve<C>(args, [&](const typename C::Args& a) { return (ops.*F)(a); });
  }
  StatusOr<ecall::KmsCreateKey::Result> CreateKey(const ecall::KmsCreateKey::Args& a);
  StatusOr<ecall::KmsEncrypt::Result> Encrypt(const ecall::KmsEncrypt::Args& a);
  StatusOr<ecall::KmsDecrypt::Result> Decrypt(const ecall::KmsDecrypt::Args& a);
  StatusOr<ecall::KmsReEncrypt::Result> ReEncrypt(const ecall::KmsReEncrypt::Args& a);
  StatusOr<ecall::KmsGenerateDataKey::Result> GenerateDataKey(const ecall::KmsGenerateDataKey::Args& a);
  StatusOr<ecall::KmsGenerateRandom::Result> GenerateRandom(const ecall::KmsGenerateRandom::Args& a);
  StatusOr<ecall::KmsSign::Result> Sign(const ecall::KmsSign::Args& a);
  StatusOr<ecall::KmsVerify::Result> Verify(const ecall::KmsVerify::Args& a);
  StatusOr<ecall::KmsGenerateMac::Result> GenerateMac(const ecall::KmsGenerateMac::Args& a);
  StatusOr<ecall::KmsVerifyMac::Result> VerifyMac(const ecall::KmsVerifyMac::Args& a);
  StatusOr<ecall::KmsNewAccessSecret::Result> NewAccessSecret(const ecall::KmsNewAccessSecret::Args& a);
  StatusOr<ecall::KmsOpenAccessSecret::Result> OpenAccessSecret(const ecall::KmsOpenAccessSecret::Args& a);
  StatusOr<ecall::AuditAppend::Result> AuditAppend(const ecall::AuditAppend::Args& a);
  StatusOr<ecall::AuditLine::Result> AuditLine(const ecall::AuditLine::Args& a);
  StatusOr<ecall::XksEncrypt::Result> XksEncrypt(const ecall::XksEncrypt::Args& a);
  StatusOr<ecall::XksDecrypt::Result> XksDecrypt(const ecall::XksDecrypt::Args& a);
  StatusOr<ecall::KmipEncrypt::Result> KmipEncrypt(const ecall::KmipEncrypt::Args& a);
  StatusOr<ecall::KmipDecrypt::Result> KmipDecrypt(const ecall::KmipDecrypt::Args& a);
  StatusOr<ecall::KmsImportKey::Result> ImportKey(const ecall::KmsImportKey::Args& a);

  // RequireSpec checks that `ref`'s spec allows `op` (kFailedPrecondition "kms: key usage does
  // not allow OP", reason kKeyUsage, otherwise); the material stays wrapped.
  static Status RequireSpec(const ecall::KeyRef& ref, std::string_view spec, std::string_view op);
  // XksKey is the XKS AES-256-GCM key of `ref`'s version: HKDF(material, "custos/v1/xks-aes-gcm").
  StatusOr<SecretBytes> XksKey(const ecall::KeyRef& ref) const;
  // RequireKmipSpec checks that `ref` is a key the KMIP server may encrypt with:
  // SYMMETRIC_DEFAULT or KMIP_AES (else as RequireSpec); the material stays wrapped.
  static Status RequireKmipSpec(const ecall::KeyRef& ref, std::string_view op);
  // KmipKey is the KMIP AES key of `ref`'s version and length (128 or 256 bits, else
  // kInvalidArgument): for SYMMETRIC_DEFAULT HKDF(material, "custos/v1/kmip-aes-128" or
  // "custos/v1/kmip-aes-256"), key_bits / 8 bytes; for KMIP_AES the material itself, whose
  // length must be key_bits / 8 (else kInvalidArgument "kmip: key length does not match the
  // registered key", checked on the wrapped length before anything unwraps).
  StatusOr<SecretBytes> KmipKey(const ecall::KeyRef& ref, uint32_t key_bits) const;
  // SealBlob makes a ciphertext blob under `material` (fresh salt and nonce); `context` is the
  // encoded encryption context.
  StatusOr<Bytes> SealBlob(const ecall::KeyRef& ref, const SecretBytes& material,
                           ByteSpan plaintext, ByteSpan context) const;
  // BlobHeaderFor parses a blob's header, checks it names ref's key id and version
  // (kInvalidArgument "kms: ciphertext names another key") and returns the header's length.
  static StatusOr<size_t> BlobHeaderFor(const ecall::KeyRef& ref, ByteSpan blob);
  // OpenBlob authenticates and decrypts a blob whose header BlobHeaderFor accepted; kIntegrity
  // "kms: ciphertext does not authenticate" on any mismatch.
  StatusOr<SecretBytes> OpenBlob(const SecretBytes& material, ByteSpan blob, size_t header,
                                 ByteSpan context) const;

  KmsKeyring keyring_;
  std::mutex audit_mu_;  // serialises AuditAppend
  // The heads this core signed in this run, newest last (the one the next append must extend),
  // at most kLineHeads (guarded by audit_mu_). AuditLine vouches for these: the host asks for
  // its newest durable head, a few batches behind the newest signed one at most; an idle log's
  // last head stays here however old.
  static constexpr size_t kLineHeads = 256;
  std::deque<audit::Head> signed_heads_;
  const Bytes run_id_;  // random, drawn with this object: one run of linear signing
};

}  // namespace custos::enclave
