#include "keeper/escrow.h"

#include "crypto/aead.h"
#include "crypto/random.h"

namespace custos::keeper {

Bytes EscrowBlob::Header() const {
  ByteWriter w;
  w.Raw(AsBytes("CUSTOSEB")).U8(1).Var(custody_fp).Var(keeper_id).U8(static_cast<uint8_t>(domain));
  w.U32(params.t_cost).U32(params.m_cost_kib).U32(params.parallelism).Raw(salt).Raw(nonce);
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
  if (version != 1) return InvalidArgument("unsupported escrow blob version");
  EscrowBlob e;
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
  ASSIGN_OR_RETURN(ByteSpan ct, r.Var("ciphertext", 1 << 22));
  e.ciphertext.assign(ct.begin(), ct.end());
  RETURN_IF_ERROR(r.ExpectEnd("escrow blob"));
  return e;
}

StatusOr<EscrowBlob> SealEscrow(const KeeperSecrets& secrets, const std::string& keeper_id,
                                custody::Domain domain, ByteSpan custody_fp,
                                const SecretBytes& passphrase, const crypto::Argon2Params& params) {
  if (!secrets.active) return FailedPrecondition("keeper holds no active share to escrow");
  if (params.m_cost_kib > (1u << 20) || params.t_cost > 16 || params.parallelism > 16)
    return InvalidArgument("escrow Argon2id parameters above 1 GiB / 16 passes / 16 lanes");
  EscrowBlob e;
  e.custody_fp.assign(custody_fp.begin(), custody_fp.end());
  e.keeper_id = keeper_id;
  e.domain = domain;
  e.params = params;
  e.salt = crypto::RandomBytes(16);
  e.nonce = crypto::RandomBytes(12);
  ASSIGN_OR_RETURN(SecretBytes key, crypto::Argon2id(passphrase, e.salt, params, 32));
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
  // The blob comes from the provider: do not let it make us burn unbounded memory or time.
  if (blob.params.m_cost_kib > (1u << 20) || blob.params.t_cost > 16 || blob.params.parallelism > 16)
    return InvalidArgument("escrow blob asks for Argon2id parameters above 1 GiB / 16 passes / 16 lanes");
  auto key = crypto::Argon2id(passphrase, blob.salt, blob.params, 32);
  if (!key.ok()) return key.status().WithContext("escrow blob parameters");
  ASSIGN_OR_RETURN(auto gcm, crypto::AesGcm::Create(*key));
  auto plain = gcm.OpenSecret(blob.nonce, blob.ciphertext, blob.Header());
  if (!plain.ok())
    return PermissionDenied("cannot open escrow blob: wrong passphrase or tampered blob");
  return KeeperSecrets::Decode(*plain);
}

Bytes EscrowUploadMessage(ByteSpan blob) { return Concat({AsBytes("custos/v1/escrow"), blob}); }

}  // namespace custos::keeper
