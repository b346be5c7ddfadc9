// Arguments and results of the KMS calls of ecall/ecall.h, and the KMS ciphertext blob
// (docs/protocol.md "KMS calls", "KMS ciphertext blob"). Shared by the host (which stores
// wrapped key material and must find the key a ciphertext names) and the trusted core (which
// alone unwraps key material). Nothing here holds a secret in clear.
//
// Key material of a customer master key version is wrapped inside the core under
//   KW = HKDF-SHA256(ikm = root key, salt = "", info = "custos/v1/cmk-wrap", 32)
// as wrapped = nonce (12) || AES-256-GCM(KW, nonce, material, aad) with
//   aad = "custos/v1/cmk" || var(key id) || u32 version || var(key spec).
// A wrapped blob moved to another key id, version or spec fails to unwrap.
//
// Ciphertext blob (what Encrypt, GenerateDataKey and ReEncrypt return; byte-exact):
//   "CKC1" || u8 suite (=1) || var(key id) || u32 version || salt (32) || nonce (12)
//   || AES-256-GCM ciphertext || tag (16)
// The message key is HKDF-SHA256(ikm = version material, salt = salt,
// info = "custos/v1/kms-encrypt", 32); the AAD is every header byte before the ciphertext
// followed by EncodeEncryptionContext(context). The blob therefore names its key and version,
// and a blob decrypted under another context, key or version fails as kIntegrity.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include "common/bytes.h"
#include "common/status.h"

namespace custos::ecall {

// KMS key specs the core implements (AWS names, but for custos's own KMIP_AES).
inline constexpr std::string_view kSpecSymmetric = "SYMMETRIC_DEFAULT";  // AES-256-GCM
inline constexpr std::string_view kSpecHmac256 = "HMAC_256";             // HMAC-SHA-256
inline constexpr std::string_view kSpecEccP256 = "ECC_NIST_P256";        // ECDSA_SHA_256
// kSpecKmipAes: raw AES key material of 16 or 32 bytes registered through KMIP (kms-import-key).
// Usable only by kmip-encrypt and kmip-decrypt, which use it as the AES key without derivation
// (the client keeps a copy and expects interoperable ciphertexts); every KMS API operation
// refuses it (the core's key usage check, and the host's before it).
inline constexpr std::string_view kSpecKmipAes = "KMIP_AES";
// kKmipAes128KeySize, kKmipAes256KeySize: the material sizes a KMIP_AES key may have.
inline constexpr size_t kKmipAes128KeySize = 16;
inline constexpr size_t kKmipAes256KeySize = 32;

// kMaxKmsPlaintext is AWS's Encrypt limit (4096 bytes); kMaxDataKeyBytes GenerateDataKey's
// NumberOfBytes limit (1024); kMaxRandomBytes GenerateRandom's (1024); kMaxMacMessage
// GenerateMac's and Sign's RAW message limit (4096).
inline constexpr size_t kMaxKmsPlaintext = 4096;
inline constexpr size_t kMaxDataKeyBytes = 1024;
inline constexpr size_t kMaxRandomBytes = 1024;
inline constexpr size_t kMaxMacMessage = 4096;
// The XKS proxy API (docs/xks.md): plaintexts up to kMaxXksPlaintext (the spec asks for at
// least 4300 bytes), and an AES-GCM AAD of at most kMaxXksAad bytes (the spec's 8192-byte
// additionalAuthenticatedData with its 2-byte length, the 1-byte length of ciphertextMetadata
// and its at most 20 bytes).
inline constexpr size_t kMaxXksPlaintext = 8192;
inline constexpr size_t kMaxXksAad = 8192 + 2 + 1 + 20;
// KMIP Encrypt and Decrypt with raw AES (kmip-encrypt, kmip-decrypt in calls.h; docs/protocol.md
// "KMS calls"), under a key derived from a SYMMETRIC_DEFAULT version's material:
//   K = HKDF-SHA256(ikm = material, salt = "", info = "custos/v1/kmip-aes-128" or
//       "custos/v1/kmip-aes-256", key_bits / 8 bytes), key_bits 128 or 256,
// so a KMIP key never equals the key of another construction (KMS blob, XKS) or of the other
// length; or, for a KMIP_AES version, K = the material itself (key_bits must be 8 times its
// size). `mode` names the cipher: kKmipModeGcm (AES-GCM: a 12-byte IV, a tag of
// kKmipMinTagLength..kKmipMaxTagLength bytes, the full tag's first bytes; an AAD of at most
// kMaxKmipAad bytes), kKmipModeCbcPkcs7 (AES-CBC with PKCS#7 padding) or kKmipModeCbcNoPadding
// (AES-CBC, the data a multiple of 16 bytes); CBC takes a 16-byte IV, no AAD and no tag. An
// empty IV on encrypt means "the core draws one". Plaintexts are at most kMaxKmipData bytes
// (GCM may encrypt an empty one, CBC not). CBC is not authenticated: a client that decrypts
// CBC through the server and sees "bad padding" holds a padding oracle, which KMIP leaves to
// the client (it chose CBC); the core says nothing beyond "bad padding".
inline constexpr uint32_t kKmipModeGcm = 1;
inline constexpr uint32_t kKmipModeCbcPkcs7 = 2;
inline constexpr uint32_t kKmipModeCbcNoPadding = 3;
inline constexpr size_t kMaxKmipData = 65536;
inline constexpr size_t kMaxKmipAad = 8192;
inline constexpr size_t kKmipGcmIvSize = 12;
inline constexpr size_t kKmipCbcIvSize = 16;
inline constexpr uint32_t kKmipMinTagLength = 12;
inline constexpr uint32_t kKmipMaxTagLength = 16;
// Secret access keys: 30 random bytes in base64 (40 characters) for the KMS API, 32 (44
// characters with one '=') for XKS proxy credentials, which AWS requires to carry 256 bits.
inline constexpr uint32_t kAccessSecretEntropy = 30;
inline constexpr uint32_t kXksSecretEntropy = 32;

// KeyRef names one wrapped key version, as the host passes it to the core.
//   encoding = var(key id) || u32 version || var(spec) || var(wrapped material)
struct KeyRef {
  std::string key_id;
  uint32_t version = 0;
  std::string spec;
  Bytes wrapped;

  Bytes Encode() const;
  static StatusOr<KeyRef> Decode(ByteSpan encoded);
};

// EncryptionContext is AWS's map of non-secret strings bound to a ciphertext.
using EncryptionContext = std::map<std::string, std::string>;

// EncodeEncryptionContext: u32 count || (var(key) || var(value)) * count, keys in byte order
// (std::map order). The empty context encodes as u32 0.
Bytes EncodeEncryptionContext(const EncryptionContext& context);
StatusOr<EncryptionContext> DecodeEncryptionContext(ByteSpan encoded);

// CiphertextHeader is the public part of a ciphertext blob.
struct CiphertextHeader {
  std::string key_id;
  uint32_t version = 0;
};

// ParseCiphertextHeader reads the key id and version a blob names, checking the magic, the
// suite and that the blob is long enough to hold salt, nonce and tag. kInvalidArgument names
// the bad field ("kms ciphertext: bad magic", ...).
StatusOr<CiphertextHeader> ParseCiphertextHeader(ByteSpan blob);

// U32Arg/ParseU32Arg: a u32 call argument as 4 big-endian bytes.
Bytes U32Arg(uint32_t v);
StatusOr<uint32_t> ParseU32Arg(ByteSpan arg, const char* field);

}  // namespace custos::ecall
