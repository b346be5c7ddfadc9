// HPKE (RFC 9180) base mode, written from the RFC: DHKEM(P-256, HKDF-SHA256) (section 4.1,
// DeriveKeyPair from section 7.1.3), HKDF-SHA256, AES-128-GCM / AES-256-GCM, the key schedule
// of section 5.1 with psk = psk_id = "" and the secret export of section 5.3. Every primitive
// (HKDF, HMAC, ECDH scalar multiplication, AES-GCM) is OpenSSL behind crypto/hash.h,
// crypto/p256.h and crypto/aead.h; this file only arranges them as the RFC says.
#include "crypto/hpke.h"

#include <limits>

#include "crypto/aead.h"
#include "crypto/hash.h"

namespace custos::crypto::hpke {

namespace {

constexpr uint16_t kKemId = 0x0010;  // DHKEM(P-256, HKDF-SHA256)
constexpr uint16_t kKdfId = 0x0001;  // HKDF-SHA256
constexpr size_t kNsecret = 32;      // KEM shared secret length
constexpr size_t kNh = 32;           // KDF output length
constexpr size_t kNn = 12;           // AEAD nonce length
constexpr uint8_t kModeBase = 0x00;
constexpr std::string_view kVersionLabel = "HPKE-v1";

Bytes I2osp2(uint16_t v) { return Bytes{static_cast<uint8_t>(v >> 8), static_cast<uint8_t>(v)}; }

Bytes KemSuiteId() { return Concat({AsBytes("KEM"), I2osp2(kKemId)}); }

Bytes HpkeSuiteId(AeadId aead) {
  return Concat(
      {AsBytes("HPKE"), I2osp2(kKemId), I2osp2(kKdfId), I2osp2(static_cast<uint16_t>(aead))});
}

size_t KeyLength(AeadId aead) { return aead == AeadId::kAes128Gcm ? 16 : 32; }

bool KnownAead(AeadId aead) { return aead == AeadId::kAes128Gcm || aead == AeadId::kAes256Gcm; }

// LabeledExtract(salt, label, ikm) = Extract(salt, "HPKE-v1" || suite_id || label || ikm).
// An empty salt becomes 32 zero bytes in HkdfExtract, which is the same HMAC key as "".
SecretBytes LabeledExtract(ByteSpan suite_id, ByteSpan salt, std::string_view label, ByteSpan ikm) {
  Bytes labeled = Concat({AsBytes(kVersionLabel), suite_id, AsBytes(label), ikm});
  SecretBytes prk = HkdfExtract(salt, labeled);
  WipeBytes(labeled);  // contains ikm, which may be a DH output or a shared secret
  return prk;
}

// LabeledExpand(prk, label, info, L) = Expand(prk, I2OSP(L, 2) || "HPKE-v1" || suite_id ||
// label || info, L).
StatusOr<SecretBytes> LabeledExpand(ByteSpan suite_id, ByteSpan prk, std::string_view label,
                                    ByteSpan info, size_t length) {
  if (length > 0xffff) return InvalidArgument("hpke: requested length too large");
  Bytes labeled = Concat({I2osp2(static_cast<uint16_t>(length)), AsBytes(kVersionLabel), suite_id,
                          AsBytes(label), info});
  return HkdfExpand(prk, labeled, length);
}

// Dh returns the x-coordinate of sk * pk (RFC 9180 section 7.1.1), refusing the identity.
StatusOr<SecretBytes> Dh(const Scalar& sk, const Point& pk) {
  Point shared = pk * sk;
  if (shared.IsIdentity()) return InvalidArgument("hpke: DH result is the identity");
  Bytes x = shared.AffineX();
  SecretBytes out = SecretBytes::CopyFrom(x);
  WipeBytes(x);
  return out;
}

// ExtractAndExpand(dh, kem_context) from RFC 9180 section 4.1.
StatusOr<SecretBytes> ExtractAndExpand(const SecretBytes& dh, ByteSpan kem_context) {
  const Bytes suite = KemSuiteId();
  SecretBytes eae_prk = LabeledExtract(suite, {}, "eae_prk", dh.Expose());
  return LabeledExpand(suite, eae_prk.Expose(), "shared_secret", kem_context, kNsecret);
}

// KeySchedule holds the outputs of KeySchedule<ROLE>() for mode_base.
struct KeySchedule {
  SecretBytes key;
  Bytes base_nonce;
  SecretBytes exporter_secret;
};

StatusOr<KeySchedule> RunKeySchedule(AeadId aead, const SecretBytes& shared_secret, ByteSpan info) {
  const Bytes suite = HpkeSuiteId(aead);
  // Base mode: psk and psk_id are empty (the RFC's default_psk / default_psk_id).
  SecretBytes psk_id_hash = LabeledExtract(suite, {}, "psk_id_hash", {});
  SecretBytes info_hash = LabeledExtract(suite, {}, "info_hash", info);
  const uint8_t mode = kModeBase;
  Bytes context = Concat({ByteSpan(&mode, 1), psk_id_hash.Expose(), info_hash.Expose()});
  SecretBytes secret = LabeledExtract(suite, shared_secret.Expose(), "secret", {});

  KeySchedule ks;
  ASSIGN_OR_RETURN(ks.key, LabeledExpand(suite, secret.Expose(), "key", context, KeyLength(aead)));
  ASSIGN_OR_RETURN(SecretBytes nonce,
                   LabeledExpand(suite, secret.Expose(), "base_nonce", context, kNn));
  ks.base_nonce.assign(nonce.Expose().begin(), nonce.Expose().end());
  ASSIGN_OR_RETURN(ks.exporter_secret, LabeledExpand(suite, secret.Expose(), "exp", context, kNh));
  return ks;
}

// ComputeNonce = base_nonce XOR I2OSP(seq, Nn).
Bytes ComputeNonce(const Bytes& base_nonce, uint64_t seq) {
  Bytes nonce = base_nonce;
  for (size_t i = 0; i < 8; ++i) nonce[kNn - 1 - i] ^= static_cast<uint8_t>(seq >> (8 * i));
  return nonce;
}

// The RFC bounds seq by 2^96 - 1; a uint64_t counter reaches its own limit first.
constexpr uint64_t kMaxSeq = std::numeric_limits<uint64_t>::max();

StatusOr<SecretBytes> ExportSecret(AeadId aead, const SecretBytes& exporter_secret,
                                   ByteSpan exporter_context, size_t length) {
  if (length == 0 || length > 255 * kNh) return InvalidArgument("hpke: export length out of range");
  return LabeledExpand(HpkeSuiteId(aead), exporter_secret.Expose(), "sec", exporter_context,
                       length);
}

}  // namespace

// ---- PrivateKey ----

PrivateKey PrivateKey::Generate() {
  PrivateKey k;
  k.sk_ = Scalar::Random();
  k.pk_ = Point::BaseMul(k.sk_);
  return k;
}

StatusOr<PrivateKey> PrivateKey::Derive(ByteSpan ikm) {
  const Bytes suite = KemSuiteId();
  SecretBytes dkp_prk = LabeledExtract(suite, {}, "dkp_prk", ikm);
  // Rejection sampling: candidates that are zero or not below n are discarded (bitmask 0xff
  // for P-256, i.e. no masking). Failing 256 times has probability about 2^-8192.
  for (unsigned counter = 0; counter <= 255; ++counter) {
    const uint8_t c = static_cast<uint8_t>(counter);
    ASSIGN_OR_RETURN(SecretBytes bytes, LabeledExpand(suite, dkp_prk.Expose(), "candidate",
                                                      ByteSpan(&c, 1), kScalarSize));
    bytes.ExposeMutable()[0] &= 0xff;
    auto sk = Scalar::FromBytes(bytes.Expose());
    if (sk.ok() && !sk->IsZero()) {
      PrivateKey k;
      k.sk_ = std::move(sk).value();
      k.pk_ = Point::BaseMul(k.sk_);
      return k;
    }
  }
  return InternalError("hpke: DeriveKeyPair found no valid candidate");
}

StatusOr<PrivateKey> PrivateKey::FromBytes(const SecretBytes& sk) {
  ASSIGN_OR_RETURN(Scalar s, Scalar::FromBytes(sk.Expose()));
  if (s.IsZero()) return InvalidArgument("hpke: private key is zero");
  PrivateKey k;
  k.sk_ = std::move(s);
  k.pk_ = Point::BaseMul(k.sk_);
  return k;
}

// ---- Contexts ----

StatusOr<Bytes> SenderContext::Seal(ByteSpan aad, ByteSpan plaintext) {
  if (seq_ == kMaxSeq) return FailedPrecondition("hpke: sequence number exhausted");
  ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key_));
  Bytes ct = gcm.Seal(ComputeNonce(base_nonce_, seq_), plaintext, aad);
  ++seq_;
  return ct;
}

StatusOr<SecretBytes> SenderContext::Export(ByteSpan exporter_context, size_t length) const {
  return ExportSecret(aead_, exporter_secret_, exporter_context, length);
}

StatusOr<SecretBytes> RecipientContext::OpenSecret(ByteSpan aad, ByteSpan ciphertext) {
  if (seq_ == kMaxSeq) return FailedPrecondition("hpke: sequence number exhausted");
  ASSIGN_OR_RETURN(AesGcm gcm, AesGcm::Create(key_));
  // The sequence number advances only on success (RFC 9180 section 5.2), so a forged message
  // does not desynchronise the context.
  ASSIGN_OR_RETURN(SecretBytes pt,
                   gcm.OpenSecret(ComputeNonce(base_nonce_, seq_), ciphertext, aad));
  ++seq_;
  return pt;
}

StatusOr<Bytes> RecipientContext::Open(ByteSpan aad, ByteSpan ciphertext) {
  ASSIGN_OR_RETURN(SecretBytes pt, OpenSecret(aad, ciphertext));
  return Bytes(pt.Expose().begin(), pt.Expose().end());
}

StatusOr<SecretBytes> RecipientContext::Export(ByteSpan exporter_context, size_t length) const {
  return ExportSecret(aead_, exporter_secret_, exporter_context, length);
}

// ---- Setup ----

StatusOr<SenderContext> Setup::BaseSender(const Point& recipient, ByteSpan info, AeadId aead,
                                          const PrivateKey* ephemeral) {
  if (!KnownAead(aead)) return InvalidArgument("hpke: unsupported AEAD");
  if (recipient.IsIdentity()) return InvalidArgument("hpke: recipient key is the identity");
  // Encap(pkR), RFC 9180 section 4.1.
  PrivateKey generated;
  if (ephemeral == nullptr) generated = PrivateKey::Generate();
  const PrivateKey& eph = ephemeral != nullptr ? *ephemeral : generated;
  ASSIGN_OR_RETURN(SecretBytes dh, Dh(eph.scalar(), recipient));
  Bytes enc = eph.public_key().EncodeUncompressed();
  Bytes kem_context = Concat({enc, recipient.EncodeUncompressed()});
  ASSIGN_OR_RETURN(SecretBytes shared_secret, ExtractAndExpand(dh, kem_context));

  ASSIGN_OR_RETURN(KeySchedule ks, RunKeySchedule(aead, shared_secret, info));
  SenderContext ctx;
  ctx.aead_ = aead;
  ctx.enc_ = std::move(enc);
  ctx.key_ = std::move(ks.key);
  ctx.base_nonce_ = std::move(ks.base_nonce);
  ctx.exporter_secret_ = std::move(ks.exporter_secret);
  return ctx;
}

StatusOr<RecipientContext> Setup::BaseRecipient(const PrivateKey& recipient, ByteSpan enc,
                                                ByteSpan info, AeadId aead) {
  if (!KnownAead(aead)) return InvalidArgument("hpke: unsupported AEAD");
  // Decap(enc, skR): enc must be the 65-byte uncompressed form (SerializePublicKey); Decode
  // checks that the point is on the curve and is not the identity.
  if (enc.size() != kEncSize || enc[0] != 0x04)
    return InvalidArgument("hpke: enc is not a 65-byte uncompressed P-256 point");
  ASSIGN_OR_RETURN(Point pk_e, Point::Decode(enc));
  ASSIGN_OR_RETURN(SecretBytes dh, Dh(recipient.scalar(), pk_e));
  Bytes kem_context = Concat({enc, recipient.public_key().EncodeUncompressed()});
  ASSIGN_OR_RETURN(SecretBytes shared_secret, ExtractAndExpand(dh, kem_context));

  ASSIGN_OR_RETURN(KeySchedule ks, RunKeySchedule(aead, shared_secret, info));
  RecipientContext ctx;
  ctx.aead_ = aead;
  ctx.key_ = std::move(ks.key);
  ctx.base_nonce_ = std::move(ks.base_nonce);
  ctx.exporter_secret_ = std::move(ks.exporter_secret);
  return ctx;
}

// ---- Single-shot ----

StatusOr<Bytes> SealBase(const Point& recipient, ByteSpan info, ByteSpan aad, ByteSpan plaintext) {
  ASSIGN_OR_RETURN(SenderContext ctx,
                   Setup::BaseSender(recipient, info, AeadId::kAes256Gcm, nullptr));
  ASSIGN_OR_RETURN(Bytes ct, ctx.Seal(aad, plaintext));
  return Concat({ctx.enc(), ct});
}

StatusOr<SecretBytes> OpenBaseSecret(const PrivateKey& recipient, ByteSpan info, ByteSpan aad,
                                     ByteSpan enc_and_ciphertext) {
  if (enc_and_ciphertext.size() < kEncSize + kGcmTagSize)
    return InvalidArgument("hpke: ciphertext too short");
  ASSIGN_OR_RETURN(RecipientContext ctx,
                   Setup::BaseRecipient(recipient, enc_and_ciphertext.first(kEncSize), info,
                                        AeadId::kAes256Gcm));
  return ctx.OpenSecret(aad, enc_and_ciphertext.subspan(kEncSize));
}

StatusOr<Bytes> OpenBase(const PrivateKey& recipient, ByteSpan info, ByteSpan aad,
                         ByteSpan enc_and_ciphertext) {
  ASSIGN_OR_RETURN(SecretBytes pt, OpenBaseSecret(recipient, info, aad, enc_and_ciphertext));
  return Bytes(pt.Expose().begin(), pt.Expose().end());
}

}  // namespace custos::crypto::hpke
