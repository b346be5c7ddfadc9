#include "protocol/sigma/release.h"

#include <algorithm>
#include <cstring>

#include "crypto/hash.h"

namespace custos::sigma {
namespace {
Status ExpectType(ByteReader& r, ReleaseRecord want, const char* name) {
  ASSIGN_OR_RETURN(uint8_t t, r.U8("record type"));
  if (t != static_cast<uint8_t>(want))
    return InvalidArgument(std::string("release record: expected ") + name + ", got type " +
                           std::to_string(t));
  return Status::Ok();
}
}  // namespace

Bytes EnvelopeDigest(ByteSpan envelope) {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/envelope"), envelope}));
}

Bytes UnsealProofContext(ByteSpan envelope_digest) {
  return Concat({AsBytes("custos/v1/unseal"), envelope_digest});
}

Bytes EnvelopeOriginReportData(ByteSpan envelope_digest, const crypto::Point& joint_key,
                               ByteSpan root_key_id) {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/envelope-origin-y"), envelope_digest,
                                     joint_key.Encode(), root_key_id}));
}

Bytes LegacyEnvelopeOriginReportData(ByteSpan envelope_digest, ByteSpan custody_fp,
                                     ByteSpan root_key_id) {
  return crypto::Sha256Bytes(
      Concat({AsBytes("custos/v1/envelope-origin"), envelope_digest, custody_fp, root_key_id}));
}

namespace {
constexpr std::string_view kOriginMagic = "CORG";
constexpr uint8_t kOriginVersion = 1;
}  // namespace

Bytes EnvelopeOrigin::Encode() const {
  ByteWriter w;
  w.Raw(AsBytes(kOriginMagic));
  w.U8(kOriginVersion);
  w.U8(static_cast<uint8_t>(binding));
  w.Raw(evidence);
  return w.Take();
}

StatusOr<EnvelopeOrigin> EnvelopeOrigin::Decode(ByteSpan file) {
  EnvelopeOrigin o;
  if (file.size() < kOriginMagic.size() ||
      !std::equal(kOriginMagic.begin(), kOriginMagic.end(), file.begin())) {
    o.binding = OriginBinding::kCustodyFingerprint;
    o.evidence.assign(file.begin(), file.end());
    return o;
  }
  ByteReader r(file);
  RETURN_IF_ERROR(r.Raw(kOriginMagic.size(), "magic").status());
  ASSIGN_OR_RETURN(uint8_t version, r.U8("origin version"));
  if (version != kOriginVersion)
    return InvalidArgument("envelope origin: version " + std::to_string(version) + ", this core reads 1");
  ASSIGN_OR_RETURN(uint8_t binding, r.U8("origin binding"));
  if (binding != static_cast<uint8_t>(OriginBinding::kJointKey) &&
      binding != static_cast<uint8_t>(OriginBinding::kCustodyFingerprint))
    return InvalidArgument("envelope origin: unknown binding " + std::to_string(binding));
  o.binding = static_cast<OriginBinding>(binding);
  ASSIGN_OR_RETURN(ByteSpan evidence, r.Raw(r.remaining(), "evidence"));
  if (evidence.empty()) return InvalidArgument("envelope origin: no evidence");
  o.evidence.assign(evidence.begin(), evidence.end());
  return o;
}

std::string_view OriginBindingName(OriginBinding binding) {
  return binding == OriginBinding::kJointKey ? "joint-key" : "custody-fingerprint";
}

Bytes RootKeyId(const SecretBytes& root_key) {
  auto mac = crypto::HmacSha256(root_key.Expose(), AsBytes("custos/v1/root-key-id"));
  return Bytes(mac.begin(), mac.begin() + 16);
}

Bytes JoinReportData(const crypto::Point& joiner_key, ByteSpan message1, ByteSpan message2) {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/join"), joiner_key.Encode(),
                                     crypto::Sha256Bytes(message1),
                                     crypto::Sha256Bytes(message2)}));
}

StatusOr<ReleaseRecord> RecordType(ByteSpan b) {
  if (b.empty()) return InvalidArgument("release record: empty");
  if (b[0] < 1 || b[0] > 5) return InvalidArgument("release record: unknown type " + std::to_string(b[0]));
  return static_cast<ReleaseRecord>(b[0]);
}

Bytes UnsealRequest::Encode() const {
  ByteWriter w;
  w.U8(static_cast<uint8_t>(ReleaseRecord::kUnsealRequest)).Raw(custody_fp).Raw(r.Encode());
  w.Raw(envelope_digest);
  return w.Take();
}

StatusOr<UnsealRequest> UnsealRequest::Decode(ByteSpan b) {
  ByteReader r(b);
  RETURN_IF_ERROR(ExpectType(r, ReleaseRecord::kUnsealRequest, "an unseal request"));
  UnsealRequest u;
  ASSIGN_OR_RETURN(ByteSpan fp, r.Raw(32, "custody fingerprint"));
  u.custody_fp.assign(fp.begin(), fp.end());
  ASSIGN_OR_RETURN(ByteSpan rp, r.Raw(33, "R"));
  auto point = crypto::Point::Decode(rp);
  if (!point.ok()) return InvalidArgument("unseal request: R is not a valid point");
  u.r = *point;
  ASSIGN_OR_RETURN(ByteSpan d, r.Raw(32, "envelope digest"));
  u.envelope_digest.assign(d.begin(), d.end());
  RETURN_IF_ERROR(r.ExpectEnd("unseal request"));
  return u;
}

Bytes EncodePartialRelease(const threshold::PartialDecryption& p) {
  return Concat({Bytes{static_cast<uint8_t>(ReleaseRecord::kPartialRelease)}, p.Encode()});
}

StatusOr<threshold::PartialDecryption> DecodePartialRelease(ByteSpan b) {
  ByteReader r(b);
  RETURN_IF_ERROR(ExpectType(r, ReleaseRecord::kPartialRelease, "a partial release"));
  return threshold::PartialDecryption::Decode(b.subspan(1));
}

Bytes UnsealProgress::Encode() const {
  ByteWriter w;
  w.U8(static_cast<uint8_t>(ReleaseRecord::kUnsealProgress)).U8(unsealed ? 1 : 0);
  w.U16(provider).U16(customer);
  return w.Take();
}

StatusOr<UnsealProgress> UnsealProgress::Decode(ByteSpan b) {
  ByteReader r(b);
  RETURN_IF_ERROR(ExpectType(r, ReleaseRecord::kUnsealProgress, "unseal progress"));
  UnsealProgress p;
  ASSIGN_OR_RETURN(uint8_t u, r.U8("unsealed"));
  if (u > 1) return InvalidArgument("unseal progress: bad flag");
  p.unsealed = u == 1;
  ASSIGN_OR_RETURN(p.provider, r.U16("provider count"));
  ASSIGN_OR_RETURN(p.customer, r.U16("customer count"));
  RETURN_IF_ERROR(r.ExpectEnd("unseal progress"));
  return p;
}

Bytes JoinRequest::Encode() const {
  ByteWriter w;
  w.U8(static_cast<uint8_t>(ReleaseRecord::kJoinRequest)).Var(evidence).Var(collateral);
  if (!approval.empty()) w.Var(approval);
  return w.Take();
}

StatusOr<JoinRequest> JoinRequest::Decode(ByteSpan b) {
  ByteReader r(b);
  RETURN_IF_ERROR(ExpectType(r, ReleaseRecord::kJoinRequest, "a join request"));
  JoinRequest j;
  ASSIGN_OR_RETURN(ByteSpan e, r.Var("evidence", 64 * 1024));
  j.evidence.assign(e.begin(), e.end());
  ASSIGN_OR_RETURN(ByteSpan c, r.Var("collateral", 512 * 1024));
  j.collateral.assign(c.begin(), c.end());
  if (r.remaining() > 0) {
    ASSIGN_OR_RETURN(ByteSpan a, r.Var("approval", 64 * 1024));
    if (a.empty()) return InvalidArgument("join request: an approval field, when present, is not empty");
    j.approval.assign(a.begin(), a.end());
  }
  RETURN_IF_ERROR(r.ExpectEnd("join request"));
  return j;
}

SecretBytes JoinGrant::Encode() const {
  // Only the root key is secret; the rest is built as plain bytes and copied in after it.
  ByteWriter tail;
  tail.Var(envelope).Var(origin_evidence);
  const Bytes& t = tail.bytes();
  SecretBytes out(1 + root_key.size() + t.size());
  uint8_t* p = out.ExposeMutable().data();
  p[0] = static_cast<uint8_t>(ReleaseRecord::kJoinGrant);
  std::memcpy(p + 1, root_key.Expose().data(), root_key.size());
  std::memcpy(p + 1 + root_key.size(), t.data(), t.size());
  return out;
}

StatusOr<JoinGrant> JoinGrant::Decode(const SecretBytes& b) {
  ByteReader r(b.Expose());
  RETURN_IF_ERROR(ExpectType(r, ReleaseRecord::kJoinGrant, "a join grant"));
  ASSIGN_OR_RETURN(ByteSpan key, r.Raw(kRootKeySize, "root key"));
  JoinGrant g;
  g.root_key = SecretBytes::CopyFrom(key);
  ASSIGN_OR_RETURN(ByteSpan env, r.Var("envelope", 64 * 1024));
  g.envelope.assign(env.begin(), env.end());
  ASSIGN_OR_RETURN(ByteSpan origin, r.Var("origin evidence", 64 * 1024));
  g.origin_evidence.assign(origin.begin(), origin.end());
  RETURN_IF_ERROR(r.ExpectEnd("join grant"));
  return g;
}

}  // namespace custos::sigma
