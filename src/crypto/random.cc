#include "crypto/random.h"

#include <openssl/rand.h>

#include <cstdlib>

namespace custos::crypto {

Bytes RandomBytes(size_t n) {
  Bytes out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) std::abort();
  return out;
}

SecretBytes RandomSecret(size_t n) {
  SecretBytes out(n);
  if (n > 0 && RAND_priv_bytes(out.ExposeMutable().data(), static_cast<int>(n)) != 1) std::abort();
  return out;
}

}  // namespace custos::crypto
