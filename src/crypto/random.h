// Cryptographically secure randomness from OpenSSL's DRBG.
#pragma once

#include "common/bytes.h"
#include "common/secret.h"

namespace custos::crypto {

// RandomBytes returns n public random bytes (nonces, ids). Aborts if the DRBG fails. Draws of
// up to 64 bytes come from a per-thread pool filled from the DRBG (wiped as served, dropped in
// a forked child).
Bytes RandomBytes(size_t n);
// RandomSecret returns n random bytes for use as key material.
SecretBytes RandomSecret(size_t n);

}  // namespace custos::crypto
