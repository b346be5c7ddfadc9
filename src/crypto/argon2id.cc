// Argon2id (RFC 9106, version 0x13) through libargon2's argon2_ctx, which is the only entry
// point that accepts the optional secret K and associated data X that the RFC's test vector
// uses. custos itself passes neither: the passphrase and salt are the whole input.
#include "crypto/argon2id.h"

#include <argon2.h>

#include <string>

namespace custos::crypto {

namespace {

// Bounds beyond the RFC's own limits: generous enough for any deployment, small enough that a
// hostile or corrupted blob header cannot make us allocate unbounded memory or spin for hours.
constexpr size_t kMinSaltLen = 16;  // RFC 9106 section 3.1 recommends 16 bytes for hashing
constexpr size_t kMaxSaltLen = 1024;
constexpr uint32_t kMaxTCost = 256;
constexpr uint32_t kMaxParallelism = 64;
constexpr uint32_t kMaxMCostKib = 4u * 1024 * 1024;  // 4 GiB
constexpr size_t kMinOutLen = 16;
constexpr size_t kMaxOutLen = 1024;
constexpr size_t kMaxInputLen = 1 << 20;  // passphrases, secrets and ad are small

Status CheckParams(ByteSpan salt, const Argon2Params& params, size_t out_len) {
  if (salt.size() < kMinSaltLen) return InvalidArgument("argon2id: salt shorter than 16 bytes");
  if (salt.size() > kMaxSaltLen) return InvalidArgument("argon2id: salt too long");
  if (params.t_cost < 1 || params.t_cost > kMaxTCost)
    return InvalidArgument("argon2id: t_cost out of range");
  if (params.parallelism < 1 || params.parallelism > kMaxParallelism)
    return InvalidArgument("argon2id: parallelism out of range");
  if (params.m_cost_kib < 8u * params.parallelism || params.m_cost_kib > kMaxMCostKib)
    return InvalidArgument("argon2id: m_cost out of range");
  if (out_len < kMinOutLen || out_len > kMaxOutLen)
    return InvalidArgument("argon2id: output length out of range");
  return Status::Ok();
}

// Run calls argon2_ctx. libargon2 takes non-const pointers, but with ARGON2_DEFAULT_FLAGS (no
// ARGON2_FLAG_CLEAR_PASSWORD / CLEAR_SECRET) it only reads the inputs, so the casts are safe
// and avoid copying secrets into further buffers.
StatusOr<SecretBytes> Run(ByteSpan password, ByteSpan salt, ByteSpan secret, ByteSpan ad,
                          const Argon2Params& params, size_t out_len) {
  RETURN_IF_ERROR(CheckParams(salt, params, out_len));
  if (password.size() > kMaxInputLen || secret.size() > kMaxInputLen || ad.size() > kMaxInputLen)
    return InvalidArgument("argon2id: input too long");

  SecretBytes out(out_len);
  argon2_context ctx{};
  ctx.out = out.ExposeMutable().data();
  ctx.outlen = static_cast<uint32_t>(out_len);
  ctx.pwd = const_cast<uint8_t*>(password.data());
  ctx.pwdlen = static_cast<uint32_t>(password.size());
  ctx.salt = const_cast<uint8_t*>(salt.data());
  ctx.saltlen = static_cast<uint32_t>(salt.size());
  ctx.secret = const_cast<uint8_t*>(secret.data());
  ctx.secretlen = static_cast<uint32_t>(secret.size());
  ctx.ad = const_cast<uint8_t*>(ad.data());
  ctx.adlen = static_cast<uint32_t>(ad.size());
  ctx.t_cost = params.t_cost;
  ctx.m_cost = params.m_cost_kib;
  ctx.lanes = params.parallelism;
  ctx.threads = params.parallelism;
  ctx.version = ARGON2_VERSION_13;
  ctx.allocate_cbk = nullptr;  // libargon2 allocates and wipes its own memory blocks
  ctx.free_cbk = nullptr;
  ctx.flags = ARGON2_DEFAULT_FLAGS;

  const int rc = argon2_ctx(&ctx, Argon2_id);
  if (rc != ARGON2_OK) {
    // `out` is wiped by its destructor; the message names the libargon2 check, not the input.
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
      return InternalError("argon2id: could not allocate the memory cost");
    return InternalError(std::string("argon2id: ") + argon2_error_message(rc));
  }
  return out;
}

}  // namespace

StatusOr<SecretBytes> Argon2id(const SecretBytes& passphrase, ByteSpan salt,
                               const Argon2Params& params, size_t out_len) {
  return Run(passphrase.Expose(), salt, {}, {}, params, out_len);
}

StatusOr<SecretBytes> Argon2idWithSecretForTesting(ByteSpan password, ByteSpan salt,
                                                   ByteSpan secret, ByteSpan ad,
                                                   const Argon2Params& params, size_t out_len) {
  return Run(password, salt, secret, ad, params, out_len);
}

}  // namespace custos::crypto
