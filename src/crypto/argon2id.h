// Argon2id passphrase hashing (RFC 9106) via libargon2. Parameters travel with every blob.
#pragma once

#include <string_view>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

struct Argon2Params {
  // RFC 9106 section 4, second recommended option: t=3, p=4, m=2^16 KiB (64 MiB).
  uint32_t t_cost = 3;
  uint32_t m_cost_kib = 1u << 16;
  uint32_t parallelism = 4;
};

// Argon2id derives `out_len` bytes from `passphrase` and a salt of at least 16 bytes.
// Refuses parameters below t=1, m=8*p KiB, or above m = 4 GiB.
StatusOr<SecretBytes> Argon2id(const SecretBytes& passphrase, ByteSpan salt,
                               const Argon2Params& params, size_t out_len = 32);

// Argon2idWithSecretForTesting exposes libargon2's secret (K) and associated data (X) inputs
// so the RFC 9106 section 5.3 test vector can be checked.
StatusOr<SecretBytes> Argon2idWithSecretForTesting(ByteSpan password, ByteSpan salt, ByteSpan secret,
                                                   ByteSpan ad, const Argon2Params& params,
                                                   size_t out_len);

}  // namespace custos::crypto
