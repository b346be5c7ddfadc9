#include "crypto/random.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace custos::crypto {

namespace {

// Small public draws (ids, nonces, salts: two or three per KMS request) come from a per-thread
// pool refilled from RAND_bytes 1 KiB at a time: each RAND_bytes call costs a parameter lookup
// and a getpid() fork check in OpenSSL 3 whatever its size, more than the bytes themselves
// (docs/benchmarks.md, issue 14). Served bytes are wiped from the pool at once, so it holds only
// bytes no one has yet. A fork (without exec) bumps the generation and every pool in the child
// is dropped, so parent and child never hand out the same bytes.
constexpr size_t kPoolSize = 1024;
constexpr size_t kMaxPooledDraw = 64;

std::atomic<uint64_t> fork_generation{0};
std::once_flag atfork_once;

struct Pool {
  uint8_t bytes[kPoolSize];
  size_t used = kPoolSize;  // empty until the first refill
  uint64_t generation = 0;
  ~Pool() { OPENSSL_cleanse(bytes, sizeof bytes); }
};

void Take(uint8_t* out, size_t n) {
  std::call_once(atfork_once, [] {
    (void)pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1, std::memory_order_relaxed); });
  });
  thread_local Pool pool;
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (pool.generation != generation || kPoolSize - pool.used < n) {
    if (RAND_bytes(pool.bytes, static_cast<int>(kPoolSize)) != 1) std::abort();
    pool.used = 0;
    pool.generation = generation;
  }
  std::memcpy(out, pool.bytes + pool.used, n);
  OPENSSL_cleanse(pool.bytes + pool.used, n);
  pool.used += n;
}

}  // namespace

Bytes RandomBytes(size_t n) {
  Bytes out(n);
  if (n == 0) return out;
  if (n <= kMaxPooledDraw) {
    Take(out.data(), n);
  } else if (RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
    std::abort();
  }
  return out;
}

SecretBytes RandomSecret(size_t n) {
  SecretBytes out(n);
  if (n > 0 && RAND_priv_bytes(out.ExposeMutable().data(), static_cast<int>(n)) != 1) std::abort();
  return out;
}

}  // namespace custos::crypto
