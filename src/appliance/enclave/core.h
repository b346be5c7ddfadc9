// The trusted core of the appliance (DESIGN.md "Attested appliance"; docs/protocol.md
// "Quorum unseal", "Enclave join"). It holds the root key and serves the calls of
// ecall/ecall.h, one at a time. Everything it receives comes from the untrusted host, so every
// input is checked here: custody.json is verified (signatures and proofs of possession), each
// keeper is authenticated by SIGMA against custody.json, each partial is checked by its DLEQ
// proof, and a joining enclave by its evidence under the cluster policy.
//
// Unseal: the envelope (files/dual_control.h, sealed to Y) opens with S = y*R. Every SIGMA
// session with a keeper listed in custody.json asks that keeper for D_i = x_i*R with a proof;
// once t_p provider and t_c customer partials verified, S = sum of both domains' Lagrange
// combinations, and the envelope opens inside. One domain alone never reaches S.
//
// Envelope origin: anyone can encrypt to Y, so an envelope proves nothing by itself. kInit
// returns evidence whose report_data binds the envelope, the joint public key Y and the root
// key id (sigma/release.h EnvelopeOriginReportData). kLoad verifies that evidence under the
// origin policy (same tee, signer and product id, SVN not above ours, debug only if we are
// debug: the measurement may differ, so an upgraded core can open an envelope an older one
// made), and once the root key is recovered (unseal or join) the binding is checked; a
// mismatch refuses the root key. A host that substitutes an envelope of its own therefore never
// gets it used. Legacy evidence (bound to one custody fingerprint) is accepted for the
// fingerprints this core knows and re-bound to Y on request (kOriginRebind).
//
// Custody updates (kCustodyUpdate): a reshare changes the custody descriptor but not Y. The
// core adopts a descriptor that verifies, has the same Y and a higher epoch, so it unseals with
// the new keepers' partials and keeps its root key. Accepting any such descriptor is safe: a
// descriptor that verifies lists, for t_d keepers of each domain, proofs of possession of
// shares that interpolate to Y_d, so whoever can make one knows x_P and x_C and could open the
// envelope anyway (docs/threat-model.md "Custody updates").
//
// Cluster policy (join): a peer enclave gets the root key only if its evidence verifies, has
// this enclave's tee type, measurement, signer and product id, an SVN at least ours, is not a
// debug enclave unless we are, binds the SIGMA session (sigma/release.h JoinReportData), and
// is bound to the same custody (through the SIGMA report_data).
//
// Rolling upgrade (custody/approval.h): a joiner of another measurement is served only if its
// join request carries a measurement approval of exactly that measurement, signed by t_p
// provider AND t_c customer keepers of the custody this core holds, not expired; every other
// rule above still holds (same signer and product, SVN not below ours). A core started with an
// approval of its own measurement (JoinStart) accepts a serving peer of another measurement
// (the build it replaces: same tee, signer and product, any SVN); the root key it receives is
// checked against the envelope's origin evidence as for any join.
//
// Thread safety: none; the enclave process serves one call at a time.
#pragma once

#include <ctime>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>

#include "protocol/attestation/dcap.h"
#include "protocol/attestation/tee_adapters.h"
#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/ecdsa.h"
#include "protocol/custody/approval.h"
#include "protocol/custody/custody.h"
#include "appliance/ecall/calls.h"
#include "appliance/ecall/ecall.h"
#include "appliance/enclave/kms_ops.h"
#include "nlohmann/json.hpp"
#include "protocol/sigma/release.h"
#include "protocol/sigma/sigma.h"
#include "protocol/threshold/partial.h"

namespace custos::enclave {

// kMaxSessions bounds SIGMA sessions that no peer has authenticated in yet (the oldest of those
// is dropped beyond it); authenticated sessions are one per peer id.
inline constexpr size_t kMaxSessions = 64;

// CoreOptions configures an EnclaveCore.
struct CoreOptions {
  std::unique_ptr<attestation::TeeBackend> tee;  // required: the evidence source
  // now is the clock used to check a DCAP peer's collateral windows (default: time()).
  std::function<std::time_t()> now;
  // lockdown describes how the process was hardened (reported by kHello and kStatus).
  nlohmann::json lockdown = nlohmann::json::object();
};

// EnclaveCore is the state machine behind the call interface.
class EnclaveCore {
 public:
  // Create draws the enclave's signing key sk_E and learns its own identity from its TEE.
  static StatusOr<std::unique_ptr<EnclaveCore>> Create(CoreOptions options);
  ~EnclaveCore();

  // Handle decodes one request payload, runs it and returns the encoded response payload.
  // Never fails: errors travel in the response.
  Bytes Handle(ByteSpan request_payload);
  // Dispatch runs a decoded request.
  ecall::Response Dispatch(const ecall::Request& request);

  bool sealed() const { return !root_.has_value(); }

 private:
  struct Contribution {
    custody::Domain domain;
    threshold::PartialDecryption partial;
  };
  struct Session;
  struct Join;

  explicit EnclaveCore(CoreOptions options);
  using Results = StatusOr<std::vector<Bytes>>;
  // Row is one row of Dispatch's table: ecall::Serve decodes C's arguments, calls the handler
  // and encodes its typed result. Each handler takes its call's Args (ecall/calls.h).
  template <typename C, StatusOr<typename C::Result> (EnclaveCore::*F)(const typename C::Args&)>
  static Results Row(EnclaveCore& core, const ecall::Request& request) {
    return ecall::Serve<C>(request.args, [&](const typename C::Args& a) { return (core.*F)(a); });
  }
  StatusOr<ecall::Hello::Result> Hello(const ecall::Hello::Args&);
  StatusOr<ecall::Load::Result> Load(const ecall::Load::Args& a);
  StatusOr<ecall::Init::Result> Init(const ecall::Init::Args&);
  StatusOr<ecall::StatusQuery::Result> StatusCall(const ecall::StatusQuery::Args& a);
  StatusOr<ecall::SigmaRespond::Result> SigmaRespond(const ecall::SigmaRespond::Args& a);
  StatusOr<ecall::SigmaFinish::Result> SigmaFinish(const ecall::SigmaFinish::Args& a);
  StatusOr<ecall::Record::Result> Record(const ecall::Record::Args& a);
  StatusOr<ecall::JoinStart::Result> JoinStart(const ecall::JoinStart::Args&);
  StatusOr<ecall::JoinFinish::Result> JoinFinish(const ecall::JoinFinish::Args& a);
  StatusOr<ecall::JoinComplete::Result> JoinComplete(const ecall::JoinComplete::Args& a);
  StatusOr<ecall::Ping::Result> Ping(const ecall::Ping::Args& a);
  StatusOr<ecall::CustodyUpdate::Result> CustodyUpdate(const ecall::CustodyUpdate::Args& a);
  StatusOr<ecall::OriginRebind::Result> OriginRebind(const ecall::OriginRebind::Args&);
  // KmsRoute serves the KMS calls (enclave/kms_ops.h): Dispatch's route for every call without a
  // row of its own. A sealed core refuses them.
  static Results KmsRoute(EnclaveCore& core, const ecall::Request& request);

  Status RequireLoaded() const;
  Status SetEnvelope(ByteSpan envelope);
  Status AuthorizePeer(std::string_view id, const crypto::VerifyingKey& key) const;
  // PeerMeasurement says which measurement a peer core may run besides this core's own.
  struct PeerMeasurement {
    ByteSpan approval;              // serving a join: the joiner's measurement approval (JSON)
    bool upgrading = false;         // joining with an approval of our own: the older build's
  };
  Status CheckPeerEvidence(ByteSpan evidence, std::string_view collateral, ByteSpan expected_report_data,
                           const PeerMeasurement& allowed) const;
  // VerifyApproval parses a measurement approval, checks its quorum against custody_ (both
  // domains) at Now() and that it approves `measurement` on this core's tee.
  StatusOr<custody::MeasurementApproval> VerifyApproval(ByteSpan approval_json, ByteSpan measurement) const;
  StatusOr<attestation::DcapVerdict> CheckOriginEvidence(ByteSpan evidence, std::string_view collateral) const;
  // CheckOriginBinding checks that verified origin evidence (its report_data field) names
  // `envelope` and `root`: under Y for kJointKey, under one of known_fps_ for legacy evidence.
  Status CheckOriginBinding(sigma::OriginBinding binding, ByteSpan origin_report_data, ByteSpan envelope,
                            const SecretBytes& root) const;
  // RememberCustody adds a descriptor's fingerprint and its predecessor to known_fps_.
  void RememberCustody(const custody::CustodyDescriptor& c);
  StatusOr<Bytes> OnPartial(Session& s, ByteSpan plaintext);
  StatusOr<Bytes> OnJoinRequest(Session& s, ByteSpan plaintext);
  Status TryUnseal();
  // AdoptRoot makes `root` this core's root key and derives the KMS keyring from it: the one
  // place root_ is set (init, unseal, join).
  Status AdoptRoot(SecretBytes root);
  Bytes ProgressRecord() const;
  std::time_t Now() const;

  CoreOptions options_;
  crypto::SigningKey identity_;       // sk_E, fresh per process
  attestation::DcapVerdict self_;     // own identity (measurement, signer, ...)
  std::optional<custody::CustodyDescriptor> custody_;
  Bytes custody_fp_;
  Bytes envelope_;
  sigma::EnvelopeOrigin origin_;  // evidence of the enclave that made envelope_, and its binding
  Bytes origin_report_data_;  // its (verified) 64-byte report_data, checked once the root is known
  // Custody fingerprints served in this life, and their predecessors: legacy origin evidence
  // may name any of them.
  std::vector<Bytes> known_fps_;
  // Why verified partials could not unseal this core (envelope or origin evidence); once set,
  // keepers are refused before they release anything, until a custody update.
  std::string unseal_failure_;
  std::string collateral_;    // DCAP collateral the host supplied at load (empty for sim)
  Bytes envelope_digest_;
  crypto::Point envelope_r_;
  std::optional<SecretBytes> root_;
  std::unique_ptr<KmsOperations> kms_;  // set together with root_
  // Handle holds this shared for the KMS calls (KmsOperations is safe for concurrent calls)
  // and alone for every other call, which may change the state above.
  std::shared_mutex mu_;
  std::map<std::string, Contribution> contributions_;  // keeper id -> verified partial
  // Keepers whose partial opened the envelope, with their domain (kept across custody updates).
  std::vector<std::pair<std::string, custody::Domain>> contributors_;
  std::map<std::string, std::unique_ptr<Session>> sessions_;
  std::map<std::string, std::unique_ptr<Join>> joins_;
  uint64_t session_counter_ = 0;
  std::string collateral_for_join_;  // set during JoinFinish for the initiator's verifier
};

}  // namespace custos::enclave
