// SIGMA-I wire format and key schedule; the specification is the comment in messages.h.
#include "protocol/sigma/messages.h"

#include <algorithm>

#include "crypto/aead.h"
#include "crypto/ecdsa.h"

namespace custos::sigma {
namespace {

constexpr uint8_t kType1 = 1;
constexpr uint8_t kType2 = 2;
constexpr uint8_t kType3 = 3;
// Largest sealed2: var(evidence) + pk + sig + mac + tag.
constexpr size_t kMaxSealed2 = 4 + kMaxEvidenceSize + crypto::kPointSize + 64 + kMacSize + 16;
constexpr size_t kMaxSealed3 = 4 + kMaxKeeperIdSize + crypto::kPointSize + 64 + kMacSize + 16;

// ReadHeader checks the suite and message type bytes.
Status ReadHeader(ByteReader& r, uint8_t want_type, const char* what) {
  ASSIGN_OR_RETURN(uint8_t suite, r.U8("suite"));
  if (suite != kSuiteV1) return InvalidArgument(std::string("sigma: ") + what + ": unknown suite");
  ASSIGN_OR_RETURN(uint8_t type, r.U8("type"));
  if (type != want_type)
    return InvalidArgument(std::string("sigma: ") + what + ": wrong message type");
  return Status::Ok();
}

// ReadPoint reads a 33-byte compressed point and refuses anything but its canonical encoding.
StatusOr<crypto::Point> ReadPoint(ByteReader& r, const char* field) {
  ASSIGN_OR_RETURN(ByteSpan raw, r.Raw(crypto::kPointSize, field));
  ASSIGN_OR_RETURN(crypto::Point p, crypto::Point::Decode(raw));
  Bytes canonical = p.Encode();
  if (!std::equal(canonical.begin(), canonical.end(), raw.begin(), raw.end()))
    return InvalidArgument(std::string("sigma: non-canonical point in ") + field);
  return p;
}

Bytes ToVec(ByteSpan s) { return Bytes(s.begin(), s.end()); }

// Context prefixes decoder errors with the message name, keeping the code.
Status Context(const Status& s, const char* what) {
  if (s.message().rfind("sigma: ", 0) == 0) return s;
  return s.WithContext(std::string("sigma: ") + what);
}

}  // namespace

Bytes Message1::Encode() const {
  ByteWriter w;
  w.U8(kSuiteV1).U8(kType1).Raw(initiator_share.Encode()).Raw(nonce);
  return w.Take();
}

StatusOr<Message1> Message1::Decode(ByteSpan b) {
  auto parse = [&]() -> StatusOr<Message1> {
    ByteReader r(b);
    RETURN_IF_ERROR(ReadHeader(r, kType1, "message 1"));
    ASSIGN_OR_RETURN(crypto::Point share, ReadPoint(r, "g^x"));
    ASSIGN_OR_RETURN(ByteSpan nonce, r.Raw(kNonceSize, "nonce"));
    RETURN_IF_ERROR(r.ExpectEnd("message 1"));
    return Message1{std::move(share), ToVec(nonce)};
  };
  auto m = parse();
  if (!m.ok()) return Context(m.status(), "message 1");
  return m;
}

Bytes Message2::Header() const {
  ByteWriter w;
  w.U8(kSuiteV1).U8(kType2).Raw(responder_share.Encode());
  return w.Take();
}

Bytes Message2::Encode() const {
  ByteWriter w;
  w.Raw(Header()).Var(sealed);
  return w.Take();
}

StatusOr<Message2> Message2::Decode(ByteSpan b) {
  auto parse = [&]() -> StatusOr<Message2> {
    ByteReader r(b);
    RETURN_IF_ERROR(ReadHeader(r, kType2, "message 2"));
    ASSIGN_OR_RETURN(crypto::Point share, ReadPoint(r, "g^y"));
    ASSIGN_OR_RETURN(ByteSpan sealed, r.Var("sealed2", kMaxSealed2));
    if (sealed.size() < crypto::kGcmTagSize) return InvalidArgument("sealed2 too short");
    RETURN_IF_ERROR(r.ExpectEnd("message 2"));
    return Message2{std::move(share), ToVec(sealed)};
  };
  auto m = parse();
  if (!m.ok()) return Context(m.status(), "message 2");
  return m;
}

Bytes Message3::Header() {
  ByteWriter w;
  w.U8(kSuiteV1).U8(kType3);
  return w.Take();
}

Bytes Message3::Encode() const {
  ByteWriter w;
  w.Raw(Header()).Var(sealed);
  return w.Take();
}

StatusOr<Message3> Message3::Decode(ByteSpan b) {
  auto parse = [&]() -> StatusOr<Message3> {
    ByteReader r(b);
    RETURN_IF_ERROR(ReadHeader(r, kType3, "message 3"));
    ASSIGN_OR_RETURN(ByteSpan sealed, r.Var("sealed3", kMaxSealed3));
    if (sealed.size() < crypto::kGcmTagSize) return InvalidArgument("sealed3 too short");
    RETURN_IF_ERROR(r.ExpectEnd("message 3"));
    return Message3{ToVec(sealed)};
  };
  auto m = parse();
  if (!m.ok()) return Context(m.status(), "message 3");
  return m;
}

Bytes ResponderAuth::Encode() const {
  ByteWriter w;
  w.Var(evidence).Raw(signing_key.Encode()).Raw(signature).Raw(mac);
  return w.Take();
}

StatusOr<ResponderAuth> ResponderAuth::Decode(ByteSpan b) {
  auto parse = [&]() -> StatusOr<ResponderAuth> {
    ByteReader r(b);
    ASSIGN_OR_RETURN(ByteSpan evidence, r.Var("evidence", kMaxEvidenceSize));
    ASSIGN_OR_RETURN(crypto::Point key, ReadPoint(r, "responder signing key"));
    ASSIGN_OR_RETURN(ByteSpan sig, r.Raw(crypto::kSignatureSize, "responder signature"));
    ASSIGN_OR_RETURN(ByteSpan mac, r.Raw(kMacSize, "responder mac"));
    RETURN_IF_ERROR(r.ExpectEnd("responder auth"));
    return ResponderAuth{ToVec(evidence), std::move(key), ToVec(sig), ToVec(mac)};
  };
  auto m = parse();
  if (!m.ok()) return Context(m.status(), "responder auth");
  return m;
}

Bytes InitiatorAuth::Encode() const {
  ByteWriter w;
  w.Var(keeper_id).Raw(signing_key.Encode()).Raw(signature).Raw(mac);
  return w.Take();
}

StatusOr<InitiatorAuth> InitiatorAuth::Decode(ByteSpan b) {
  auto parse = [&]() -> StatusOr<InitiatorAuth> {
    ByteReader r(b);
    ASSIGN_OR_RETURN(ByteSpan id, r.Var("keeper id", kMaxKeeperIdSize));
    if (id.empty()) return InvalidArgument("empty keeper id");
    ASSIGN_OR_RETURN(crypto::Point key, ReadPoint(r, "initiator signing key"));
    ASSIGN_OR_RETURN(ByteSpan sig, r.Raw(crypto::kSignatureSize, "initiator signature"));
    ASSIGN_OR_RETURN(ByteSpan mac, r.Raw(kMacSize, "initiator mac"));
    RETURN_IF_ERROR(r.ExpectEnd("initiator auth"));
    return InitiatorAuth{ToString(id), std::move(key), ToVec(sig), ToVec(mac)};
  };
  auto m = parse();
  if (!m.ok()) return Context(m.status(), "initiator auth");
  return m;
}

StatusOr<SessionKeys> DeriveSessionKeys(const crypto::Scalar& own, const crypto::Point& peer,
                                        const crypto::Digest& th_hs) {
  crypto::Point shared = peer * own;
  if (shared.IsIdentity() || own.IsZero())
    return IntegrityError("sigma: degenerate Diffie-Hellman share");
  Bytes x = shared.AffineX();
  SecretBytes z = SecretBytes::CopyFrom(x);
  WipeBytes(x);
  SecretBytes prk = crypto::HkdfExtract(th_hs, z.Expose());
  SessionKeys keys;
  ASSIGN_OR_RETURN(keys.km, crypto::HkdfExpand(prk.Expose(), AsBytes(kLabelKm), 32));
  ASSIGN_OR_RETURN(keys.handshake, crypto::HkdfExpand(prk.Expose(), AsBytes(kLabelHandshake), 32));
  ASSIGN_OR_RETURN(keys.k2e, crypto::HkdfExpand(prk.Expose(), AsBytes(kLabelK2e), 32));
  ASSIGN_OR_RETURN(keys.e2k, crypto::HkdfExpand(prk.Expose(), AsBytes(kLabelE2k), 32));
  return keys;
}

crypto::Digest HandshakeTranscript(ByteSpan message1, const crypto::Point& responder_share) {
  crypto::Sha256Stream h;
  h.UpdateVar(AsBytes(kLabelThHandshake)).UpdateVar(message1).UpdateVar(responder_share.Encode());
  return h.Final();
}

crypto::Digest ResponderTranscript(ByteSpan message1, const crypto::Point& responder_share,
                                   ByteSpan evidence, const crypto::Point& responder_key) {
  crypto::Sha256Stream h;
  h.UpdateVar(AsBytes(kLabelThResponder))
      .UpdateVar(message1)
      .UpdateVar(responder_share.Encode())
      .UpdateVar(evidence)
      .UpdateVar(responder_key.Encode());
  return h.Final();
}

crypto::Digest InitiatorTranscript(ByteSpan message1, ByteSpan message2, std::string_view keeper_id,
                                   const crypto::Point& initiator_key) {
  crypto::Sha256Stream h;
  h.UpdateVar(AsBytes(kLabelThInitiator))
      .UpdateVar(message1)
      .UpdateVar(message2)
      .UpdateVar(AsBytes(keeper_id))
      .UpdateVar(initiator_key.Encode());
  return h.Final();
}

Bytes SignedBytes(std::string_view label, const crypto::Digest& th) {
  return Concat({AsBytes(label), th});
}

Bytes TranscriptMac(const SecretBytes& km, std::string_view label, const crypto::Digest& th) {
  crypto::Digest mac = crypto::HmacSha256(km.Expose(), SignedBytes(label, th));
  return Bytes(mac.begin(), mac.end());
}

StatusOr<Bytes> ReportData(const crypto::Point& responder_share, const crypto::Point& responder_key,
                           ByteSpan nonce, ByteSpan custody_hash) {
  if (custody_hash.size() != kDigestSize)
    return InvalidArgument("sigma: custody hash must be 32 bytes");
  if (nonce.size() != kNonceSize) return InvalidArgument("sigma: nonce must be 32 bytes");
  Bytes in = Concat({AsBytes(kLabelReport), responder_share.Encode(), responder_key.Encode(), nonce,
                     custody_hash});
  return crypto::Sha256Bytes(in);
}

Bytes HandshakeNonce(uint8_t type) {
  Bytes n(crypto::kGcmNonceSize, 0);
  n.back() = type;
  return n;
}

}  // namespace custos::sigma
