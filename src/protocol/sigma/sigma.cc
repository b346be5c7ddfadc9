// SIGMA-I handshake state machines (sigma.h); wire format and key schedule in messages.h.
#include "protocol/sigma/sigma.h"

#include "crypto/aead.h"
#include "crypto/random.h"

namespace custos::sigma {
namespace {

constexpr uint8_t kType2 = 2;
constexpr uint8_t kType3 = 3;

StatusOr<Bytes> SealHandshake(const SecretBytes& key, uint8_t type, ByteSpan aad,
                              ByteSpan plaintext) {
  ASSIGN_OR_RETURN(crypto::AesGcm aead, crypto::AesGcm::Create(key));
  return aead.Seal(HandshakeNonce(type), plaintext, aad);
}

StatusOr<Bytes> OpenHandshake(const SecretBytes& key, uint8_t type, ByteSpan aad, ByteSpan sealed) {
  ASSIGN_OR_RETURN(crypto::AesGcm aead, crypto::AesGcm::Create(key));
  auto pt = aead.Open(HandshakeNonce(type), sealed, aad);
  if (!pt.ok()) {
    return IntegrityError(std::string("sigma: message ") + char('0' + type) +
                          " does not decrypt under this session's handshake key");
  }
  return pt;
}

Status CheckMac(const SecretBytes& km, std::string_view label, const crypto::Digest& th,
                ByteSpan mac, const char* who) {
  Bytes want = TranscriptMac(km, label, th);
  if (!ConstantTimeEquals(want, mac))
    return IntegrityError(std::string("sigma: ") + who + " MAC does not verify");
  return Status::Ok();
}

}  // namespace

Status CheckReportData(ByteSpan found, ByteSpan expected) {
  // TEE report_data fields are 64 bytes (SGX, TDX, sim): the 32-byte binding fills the first
  // half and the second half must be zero.
  ByteSpan head = found;
  if (found.size() == 2 * expected.size()) {
    head = found.subspan(0, expected.size());
    for (uint8_t b : found.subspan(expected.size()))
      if (b != 0) return IntegrityError("sigma: evidence does not bind this session");
  }
  if (head.size() != expected.size() || !ConstantTimeEquals(head, expected))
    return IntegrityError("sigma: evidence does not bind this session");
  return Status::Ok();
}

Bytes ReportDataField(ByteSpan report_data) {
  Bytes field(report_data.begin(), report_data.end());
  field.resize(64, 0);
  return field;
}

// ---------------------------------------------------------------------------------------------
// Initiator

SigmaInitiator::SigmaInitiator(const crypto::SigningKey& identity, InitiatorConfig config)
    : identity_(&identity), config_(std::move(config)) {}

SigmaInitiator::~SigmaInitiator() = default;

StatusOr<Bytes> SigmaInitiator::Start() {
  if (state_ != State::kNew) return FailedPrecondition("sigma: initiator already started");
  if (config_.custody_hash.size() != kDigestSize)
    return InvalidArgument("sigma: custody hash must be 32 bytes");
  if (config_.keeper_id.empty() || config_.keeper_id.size() > kMaxKeeperIdSize)
    return InvalidArgument("sigma: keeper id must be 1..256 bytes");
  if (!config_.verify_evidence) return InvalidArgument("sigma: no evidence verifier");
  x_ = crypto::Scalar::Random();
  nonce_ = crypto::RandomBytes(kNonceSize);
  message1_ = Message1{crypto::Point::BaseMul(x_), nonce_}.Encode();
  state_ = State::kStarted;
  return message1_;
}

StatusOr<InitiatorResult> SigmaInitiator::Finish(ByteSpan message2) {
  if (state_ != State::kStarted)
    return FailedPrecondition("sigma: initiator Finish without a started handshake");
  auto result = FinishInner(message2);
  x_ = crypto::Scalar();  // the ephemeral secret is used once, whatever the outcome
  state_ = result.ok() ? State::kDone : State::kFailed;
  return result;
}

StatusOr<InitiatorResult> SigmaInitiator::FinishInner(ByteSpan message2) {
  ASSIGN_OR_RETURN(Message2 m2, Message2::Decode(message2));
  const crypto::Digest th_hs = HandshakeTranscript(message1_, m2.responder_share);
  ASSIGN_OR_RETURN(SessionKeys keys, DeriveSessionKeys(x_, m2.responder_share, th_hs));
  ASSIGN_OR_RETURN(Bytes auth_bytes, OpenHandshake(keys.handshake, kType2, m2.Header(), m2.sealed));
  ASSIGN_OR_RETURN(ResponderAuth auth, ResponderAuth::Decode(auth_bytes));

  // SIGMA: E signed the transcript with the key it names, and MACed its identity under Km.
  const crypto::Digest th_e =
      ResponderTranscript(message1_, m2.responder_share, auth.evidence, auth.signing_key);
  crypto::VerifyingKey pk_e = crypto::VerifyingKey::FromPoint(auth.signing_key);
  if (!pk_e.Verify(SignedBytes(kLabelResponderSignature, th_e), auth.signature).ok())
    return IntegrityError("sigma: responder signature does not verify");
  RETURN_IF_ERROR(CheckMac(keys.km, kLabelResponderMac, th_e, auth.mac, "responder"));

  // Attestation: the evidence must vouch for this g^y, this pk_E, this nonce and this custody.
  ASSIGN_OR_RETURN(Bytes report_data,
                   ReportData(m2.responder_share, auth.signing_key, nonce_, config_.custody_hash));
  Status verdict = config_.verify_evidence(auth.evidence, report_data);
  if (!verdict.ok()) return verdict.WithContext("sigma: evidence refused");

  // Message 3: K's identity, signature and MAC over a transcript that includes all of message 2.
  const crypto::Point& pk_k = identity_->verifying_key().point();
  const crypto::Digest th_k = InitiatorTranscript(message1_, message2, config_.keeper_id, pk_k);
  InitiatorAuth mine{config_.keeper_id, pk_k,
                     identity_->Sign(SignedBytes(kLabelInitiatorSignature, th_k)),
                     TranscriptMac(keys.km, kLabelInitiatorMac, th_k)};
  ASSIGN_OR_RETURN(Bytes sealed3,
                   SealHandshake(keys.handshake, kType3, Message3::Header(), mine.Encode()));
  ASSIGN_OR_RETURN(SecureChannel channel,
                   SecureChannel::Create(Role::kInitiator, keys.k2e, keys.e2k));
  return InitiatorResult{Message3{std::move(sealed3)}.Encode(), std::move(channel),
                         std::move(auth.evidence), std::move(pk_e)};
}

// ---------------------------------------------------------------------------------------------
// Responder

SigmaResponder::SigmaResponder(const crypto::SigningKey& identity, ResponderConfig config)
    : identity_(&identity), config_(std::move(config)) {}

SigmaResponder::~SigmaResponder() = default;

StatusOr<Bytes> SigmaResponder::Respond(ByteSpan message1) {
  if (state_ != State::kNew) return FailedPrecondition("sigma: responder already responded");
  auto result = RespondInner(message1);
  state_ = result.ok() ? State::kResponded : State::kFailed;
  if (!result.ok()) keys_.reset();
  return result;
}

StatusOr<Bytes> SigmaResponder::RespondInner(ByteSpan message1) {
  if (config_.custody_hash.size() != kDigestSize)
    return InvalidArgument("sigma: custody hash must be 32 bytes");
  if (!config_.provide_evidence || !config_.authorize)
    return InvalidArgument("sigma: responder needs an evidence provider and an authorizer");
  ASSIGN_OR_RETURN(Message1 m1, Message1::Decode(message1));
  message1_ = Bytes(message1.begin(), message1.end());

  crypto::Scalar y = crypto::Scalar::Random();
  crypto::Point g_y = crypto::Point::BaseMul(y);
  const crypto::Digest th_hs = HandshakeTranscript(message1_, g_y);
  ASSIGN_OR_RETURN(SessionKeys keys, DeriveSessionKeys(y, m1.initiator_share, th_hs));
  y = crypto::Scalar();

  const crypto::Point& pk_e = identity_->verifying_key().point();
  ASSIGN_OR_RETURN(Bytes report_data, ReportData(g_y, pk_e, m1.nonce, config_.custody_hash));
  auto evidence = config_.provide_evidence(report_data);
  if (!evidence.ok()) return evidence.status().WithContext("sigma: evidence provider failed");
  if (evidence->size() > kMaxEvidenceSize) return InvalidArgument("sigma: evidence too large");

  const crypto::Digest th_e = ResponderTranscript(message1_, g_y, *evidence, pk_e);
  ResponderAuth auth{std::move(*evidence), pk_e,
                     identity_->Sign(SignedBytes(kLabelResponderSignature, th_e)),
                     TranscriptMac(keys.km, kLabelResponderMac, th_e)};
  Message2 m2{g_y, {}};
  ASSIGN_OR_RETURN(m2.sealed, SealHandshake(keys.handshake, kType2, m2.Header(), auth.Encode()));
  message2_ = m2.Encode();
  keys_ = std::move(keys);
  return message2_;
}

StatusOr<ResponderResult> SigmaResponder::Finish(ByteSpan message3) {
  if (state_ != State::kResponded)
    return FailedPrecondition("sigma: responder Finish without a response");
  auto result = FinishInner(message3);
  state_ = result.ok() ? State::kDone : State::kFailed;
  keys_.reset();
  return result;
}

StatusOr<ResponderResult> SigmaResponder::FinishInner(ByteSpan message3) {
  ASSIGN_OR_RETURN(Message3 m3, Message3::Decode(message3));
  ASSIGN_OR_RETURN(Bytes auth_bytes,
                   OpenHandshake(keys_->handshake, kType3, Message3::Header(), m3.sealed));
  ASSIGN_OR_RETURN(InitiatorAuth auth, InitiatorAuth::Decode(auth_bytes));

  const crypto::Digest th_k =
      InitiatorTranscript(message1_, message2_, auth.keeper_id, auth.signing_key);
  crypto::VerifyingKey pk_k = crypto::VerifyingKey::FromPoint(auth.signing_key);
  if (!pk_k.Verify(SignedBytes(kLabelInitiatorSignature, th_k), auth.signature).ok())
    return IntegrityError("sigma: initiator signature does not verify");
  RETURN_IF_ERROR(CheckMac(keys_->km, kLabelInitiatorMac, th_k, auth.mac, "initiator"));

  Status allowed = config_.authorize(auth.keeper_id, pk_k);
  if (!allowed.ok()) return allowed.WithContext("sigma: initiator not authorized");

  ASSIGN_OR_RETURN(SecureChannel channel,
                   SecureChannel::Create(Role::kResponder, keys_->k2e, keys_->e2k));
  return ResponderResult{std::move(channel), std::move(auth.keeper_id), std::move(pk_k)};
}

}  // namespace custos::sigma
