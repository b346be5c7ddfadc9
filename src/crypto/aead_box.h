// Boxes: AES-256-GCM under a fresh random 96-bit nonce, framed as
//   box = nonce (12) || ciphertext || tag (16)
// — the one place custos writes that framing (the core's wrapping of key material and access
// secrets, a keeper's sealed state file). With random nonces one key must seal fewer than 2^32 boxes (NIST SP 800-38D, 8.3);
// every user derives or draws a key per purpose far below that.
#pragma once

#include "common/bytes.h"
#include "common/secret.h"
#include "common/status.h"

namespace custos::crypto {

inline constexpr size_t kBoxOverhead = 12 + 16;

// SealBox encrypts `plaintext` under `key` (32 bytes) with `aad` bound.
StatusOr<Bytes> SealBox(const SecretBytes& key, ByteSpan plaintext, ByteSpan aad);
// OpenBox opens what SealBox made: kIntegrity for a short box, another key, other aad or any
// changed byte (the plaintext is then never returned).
StatusOr<SecretBytes> OpenBox(const SecretBytes& key, ByteSpan box, ByteSpan aad);

}  // namespace custos::crypto
