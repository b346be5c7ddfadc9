// SIGMA-I handshake state machines: a keeper (SigmaInitiator, K) opens an attested,
// mutually authenticated channel to an enclave (SigmaResponder, E). DESIGN.md "Attested
// appliance"; docs/protocol.md, "SIGMA-I". The byte-exact messages, transcripts and key schedule
// are in messages.h; the record layer is channel.h. Pure library: callers move the bytes.
//
//   K: Start() -> message1                      E: Respond(message1) -> message2
//   K: Finish(message2) -> message3, channel    E: Finish(message3) -> channel, K's identity
//
// What each side checks before it yields a channel:
//   K: message 2 decrypts under this session's handshake key (so it answers this g^x), sig_E
//      verifies under pk_E, mac_E verifies under Km, and the EvidenceVerifier accepts the
//      evidence against report_data(g^y, pk_E, nonce_K, SHA-256(custody.json)): the evidence
//      vouches for the very key that signed and the very share this session uses.
//   E: message 3 decrypts, sig_K verifies under pk_K, mac_K verifies, and the InitiatorAuthorizer
//      accepts (keeper_id, pk_K) (e.g. the keeper is listed in custody.json).
// Each object runs one handshake; any failure leaves it unusable (kFailedPrecondition).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/bytes.h"
#include "crypto/ecdsa.h"
#include "crypto/p256.h"
#include "protocol/sigma/channel.h"
#include "protocol/sigma/messages.h"

namespace custos::sigma {

// EvidenceVerifier checks `evidence` (opaque: a DCAP quote, sim evidence, ...) under the keeper's
// attestation policy and that its report data equals `expected_report_data` (32 bytes; use
// CheckReportData). Returns OK only if both hold; its error should name the failed check.
using EvidenceVerifier = std::function<Status(ByteSpan evidence, ByteSpan expected_report_data)>;
// EvidenceProvider produces the enclave's evidence over `report_data` (32 bytes).
using EvidenceProvider = std::function<StatusOr<Bytes>(ByteSpan report_data)>;
// InitiatorAuthorizer decides whether the authenticated keeper `keeper_id` holding `key` may
// use the enclave (e.g. it is a keeper of custody.json with that identity key).
using InitiatorAuthorizer =
    std::function<Status(std::string_view keeper_id, const crypto::VerifyingKey& key)>;

// CheckReportData compares the report data found in verified evidence with the expected value
// in constant time: kIntegrity "sigma: evidence does not bind this session" on mismatch. A
// 64-byte TEE report_data field matches when it is the 32-byte value followed by 32 zero bytes
// (see ReportDataField).
Status CheckReportData(ByteSpan found, ByteSpan expected);

// ReportDataField places the 32-byte SIGMA report_data in a 64-byte TEE report_data field
// (SGX REPORTDATA, TDX REPORTDATA, sim evidence): the value, then 32 zero bytes.
Bytes ReportDataField(ByteSpan report_data);

// InitiatorConfig is what a keeper brings to a handshake.
struct InitiatorConfig {
  std::string keeper_id;             // sent encrypted in message 3
  Bytes custody_hash;                // SHA-256(custody.json), 32 bytes
  EvidenceVerifier verify_evidence;  // required
};

// InitiatorResult is a completed handshake on the keeper side.
struct InitiatorResult {
  Bytes message3;                      // send to the enclave
  SecureChannel channel;               // records to and from the enclave
  Bytes evidence;                      // the accepted evidence (for the keeper's audit log)
  crypto::VerifyingKey responder_key;  // pk_E, vouched for by the evidence
};

// SigmaInitiator is the keeper's side of one handshake. `identity` must outlive the object.
// Not thread-safe.
class SigmaInitiator {
 public:
  SigmaInitiator(const crypto::SigningKey& identity, InitiatorConfig config);
  ~SigmaInitiator();
  SigmaInitiator(SigmaInitiator&&) noexcept = default;
  SigmaInitiator& operator=(SigmaInitiator&&) noexcept = default;

  // Start draws the ephemeral x and nonce_K and returns message 1. Fails on a bad config
  // (kInvalidArgument) or if called twice (kFailedPrecondition).
  StatusOr<Bytes> Start();
  // Finish checks message 2 (see above) and returns message 3 with the channel. Refusals:
  // kInvalidArgument for malformed bytes, kIntegrity for decryption/signature/MAC failures,
  // the verifier's code (prefixed "sigma: evidence refused: ") when the evidence is refused.
  StatusOr<InitiatorResult> Finish(ByteSpan message2);

 private:
  enum class State { kNew, kStarted, kDone, kFailed };
  StatusOr<InitiatorResult> FinishInner(ByteSpan message2);

  const crypto::SigningKey* identity_;
  InitiatorConfig config_;
  State state_ = State::kNew;
  crypto::Scalar x_;
  Bytes message1_;
  Bytes nonce_;
};

// ResponderConfig is what an enclave brings to a handshake.
struct ResponderConfig {
  Bytes custody_hash;                 // SHA-256(custody.json), 32 bytes
  EvidenceProvider provide_evidence;  // required
  InitiatorAuthorizer authorize;      // required
};

// ResponderResult is a completed handshake on the enclave side.
struct ResponderResult {
  SecureChannel channel;            // records to and from the keeper
  std::string keeper_id;            // authenticated and authorized
  crypto::VerifyingKey keeper_key;  // pk_K
};

// SigmaResponder is the enclave's side of one handshake. `identity` (sk_E, whose public key the
// evidence binds) must outlive the object. Not thread-safe.
class SigmaResponder {
 public:
  SigmaResponder(const crypto::SigningKey& identity, ResponderConfig config);
  ~SigmaResponder();
  SigmaResponder(SigmaResponder&&) noexcept = default;
  SigmaResponder& operator=(SigmaResponder&&) noexcept = default;

  // Respond decodes message 1, draws y, obtains evidence over report_data and returns message 2.
  StatusOr<Bytes> Respond(ByteSpan message1);
  // Finish checks message 3 (see above) and returns the channel and the keeper's identity.
  // kIntegrity for decryption/signature/MAC failures; the authorizer's code (prefixed
  // "sigma: initiator not authorized: ") when it refuses.
  StatusOr<ResponderResult> Finish(ByteSpan message3);

 private:
  enum class State { kNew, kResponded, kDone, kFailed };
  StatusOr<Bytes> RespondInner(ByteSpan message1);
  StatusOr<ResponderResult> FinishInner(ByteSpan message3);

  const crypto::SigningKey* identity_;
  ResponderConfig config_;
  State state_ = State::kNew;
  Bytes message1_;
  Bytes message2_;
  std::optional<SessionKeys> keys_;
};

}  // namespace custos::sigma
