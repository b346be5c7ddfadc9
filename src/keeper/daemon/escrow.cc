#include "keeper/daemon/escrow.h"

#include <set>

#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::keeper {

namespace {

constexpr std::string_view kSealLabel = "custos/v1/escrow/seal";
constexpr std::string_view kAuthLabel = "custos/v1/escrow/auth";

bool AboveCeiling(const crypto::Argon2Params& p) {
  return p.m_cost_kib > (1u << 20) || p.t_cost > 16 || p.parallelism > 16;
}

// StretchedSecret is K = Argon2id(secret, salt, params, 32).
StatusOr<SecretBytes> StretchedSecret(const SecretBytes& secret, ByteSpan salt, const crypto::Argon2Params& params) {
  // The blob comes from the provider: do not let it make us burn unbounded memory or time.
  if (AboveCeiling(params))
    return InvalidArgument("escrow blob asks for Argon2id parameters above 1 GiB / 16 passes / 16 lanes");
  auto k = crypto::Argon2id(secret, salt, params, 32);
  if (!k.ok()) return k.status().WithContext("escrow blob parameters");
  return k;
}

StatusOr<crypto::SigningKey> AuthKeyFrom(const SecretBytes& k) {
  ASSIGN_OR_RETURN(SecretBytes wide, crypto::Hkdf(k.Expose(), {}, AsBytes(kAuthLabel), 48));
  crypto::Scalar a = crypto::Scalar::FromBytesReduced(wide.Expose());
  if (a.IsZero()) return InternalError("escrow auth key is zero");
  return crypto::SigningKey::FromScalarBytes(a.ToSecretBytes());
}

}  // namespace

Bytes EscrowBlob::Header() const {
  ByteWriter w;
  w.Raw(AsBytes("CUSTOSEB")).U8(version).Var(custody_fp).Var(keeper_id).U8(static_cast<uint8_t>(domain));
  w.U32(params.t_cost).U32(params.m_cost_kib).U32(params.parallelism).Raw(salt).Raw(nonce);
  if (version >= 2) w.Raw(auth_key ? auth_key->Encode() : Bytes(33, 0));
  return w.Take();
}

Bytes EscrowBlob::Encode() const {
  ByteWriter w;
  w.Raw(Header()).Var(ciphertext);
  return w.Take();
}

StatusOr<EscrowBlob> EscrowBlob::Decode(ByteSpan b) {
  ByteReader r(b);
  ASSIGN_OR_RETURN(ByteSpan magic, r.Raw(8, "escrow magic"));
  if (ToString(magic) != "CUSTOSEB") return InvalidArgument("not a custos escrow blob");
  ASSIGN_OR_RETURN(uint8_t version, r.U8("escrow version"));
  if (version != 1 && version != 2) return InvalidArgument("unsupported escrow blob version");
  EscrowBlob e;
  e.version = version;
  ASSIGN_OR_RETURN(ByteSpan fp, r.Var("custody fingerprint", 32));
  e.custody_fp.assign(fp.begin(), fp.end());
  ASSIGN_OR_RETURN(ByteSpan id, r.Var("keeper id", 64));
  e.keeper_id = ToString(id);
  ASSIGN_OR_RETURN(uint8_t d, r.U8("domain"));
  if (d != 1 && d != 2) return InvalidArgument("escrow blob has a bad domain");
  e.domain = static_cast<custody::Domain>(d);
  ASSIGN_OR_RETURN(e.params.t_cost, r.U32("t_cost"));
  ASSIGN_OR_RETURN(e.params.m_cost_kib, r.U32("m_cost_kib"));
  ASSIGN_OR_RETURN(e.params.parallelism, r.U32("parallelism"));
  ASSIGN_OR_RETURN(ByteSpan salt, r.Raw(16, "salt"));
  e.salt.assign(salt.begin(), salt.end());
  ASSIGN_OR_RETURN(ByteSpan nonce, r.Raw(12, "nonce"));
  e.nonce.assign(nonce.begin(), nonce.end());
  if (version >= 2) {
    ASSIGN_OR_RETURN(ByteSpan a, r.Raw(33, "auth key"));
    auto point = crypto::Point::Decode(a);
    if (!point.ok() || point->IsIdentity()) return InvalidArgument("escrow blob has a bad auth key");
    e.auth_key = *point;
  }
  ASSIGN_OR_RETURN(ByteSpan ct, r.Var("ciphertext", 1 << 22));
  e.ciphertext.assign(ct.begin(), ct.end());
  RETURN_IF_ERROR(r.ExpectEnd("escrow blob"));
  return e;
}

StatusOr<EscrowBlob> SealEscrow(const KeeperSecrets& secrets, const std::string& keeper_id,
                                custody::Domain domain, ByteSpan custody_fp,
                                const SecretBytes& passphrase, const crypto::Argon2Params& params) {
  if (!secrets.active) return FailedPrecondition("keeper holds no active share to escrow");
  if (AboveCeiling(params))
    return InvalidArgument("escrow Argon2id parameters above 1 GiB / 16 passes / 16 lanes");
  EscrowBlob e;
  e.custody_fp.assign(custody_fp.begin(), custody_fp.end());
  e.keeper_id = keeper_id;
  e.domain = domain;
  e.params = params;
  e.salt = crypto::RandomBytes(16);
  e.nonce = crypto::RandomBytes(12);
  ASSIGN_OR_RETURN(SecretBytes k, crypto::Argon2id(passphrase, e.salt, params, 32));
  ASSIGN_OR_RETURN(crypto::SigningKey auth, AuthKeyFrom(k));
  e.auth_key = auth.verifying_key().point();
  ASSIGN_OR_RETURN(SecretBytes key, crypto::Hkdf(k.Expose(), {}, AsBytes(kSealLabel), 32));
  ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(key));
  // Only the active slot travels; a pending endorsement is not worth recovering.
  ASSIGN_OR_RETURN(auto identity, crypto::SigningKey::FromScalarBytes(secrets.identity.ToScalarBytes()));
  ASSIGN_OR_RETURN(auto hpke_key, crypto::hpke::PrivateKey::FromBytes(secrets.hpke.ToBytes()));
  KeeperSecrets copy{std::move(identity), std::move(hpke_key), secrets.active, std::nullopt};
  SecretBytes plain = copy.Encode();
  e.ciphertext = gcm.Seal(e.nonce, plain.Expose(), e.Header());
  return e;
}

StatusOr<KeeperSecrets> OpenEscrow(const EscrowBlob& blob, const SecretBytes& passphrase) {
  ASSIGN_OR_RETURN(SecretBytes k, StretchedSecret(passphrase, blob.salt, blob.params));
  SecretBytes key;
  if (blob.version == 1) {
    key = std::move(k);  // version 1: K itself sealed the blob
  } else {
    ASSIGN_OR_RETURN(key, crypto::Hkdf(k.Expose(), {}, AsBytes(kSealLabel), 32));
  }
  ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(key));
  auto plain = gcm.OpenSecret(blob.nonce, blob.ciphertext, blob.Header());
  if (!plain.ok())
    return PermissionDenied("cannot open escrow blob: wrong passphrase or tampered blob");
  return KeeperSecrets::Decode(*plain);
}

Bytes EscrowUploadMessage(ByteSpan blob) { return Concat({AsBytes("custos/v1/escrow"), blob}); }

StatusOr<crypto::SigningKey> EscrowAuthKey(const SecretBytes& secret, ByteSpan salt,
                                           const crypto::Argon2Params& params) {
  ASSIGN_OR_RETURN(SecretBytes k, StretchedSecret(secret, salt, params));
  return AuthKeyFrom(k);
}

Bytes EscrowFetchMessage(ByteSpan custody_fp, std::string_view keeper_id, std::string_view provider_id,
                         uint64_t timestamp, ByteSpan nonce) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/escrow-fetch")).Var(custody_fp).Var(keeper_id).Var(provider_id).U64(timestamp).Raw(nonce);
  return w.Take();
}

Status CheckRecoverySecret(const SecretBytes& secret) {
  ByteSpan s = secret.Expose();
  std::set<uint8_t> distinct(s.begin(), s.end());
  if (s.size() < 20 || distinct.size() < 8)
    return InvalidArgument("recovery passphrase is too weak: use at least 20 characters with at least 8 "
                           "different ones (e.g. six random words), or --generate-recovery-key");
  return Status::Ok();
}

SecretBytes NewRecoveryKey() {
  SecretBytes raw = crypto::RandomSecret(32);
  std::string text = "custos-rk1";
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < raw.size(); ++i) {
    if (i % 4 == 0) text += '-';
    text += kHex[raw.Expose()[i] >> 4];
    text += kHex[raw.Expose()[i] & 0xf];
  }
  SecretBytes out = SecretBytes::CopyFrom(text);
  WipeBytes(text);
  return out;
}

}  // namespace custos::keeper
