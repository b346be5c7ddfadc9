#include "appliance/enclave/core.h"

#include <algorithm>

#include "protocol/attestation/evidence.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/envelope/dual_control.h"
#include "protocol/sigma/release.h"
#include "protocol/threshold/shamir.h"

namespace custos::enclave {

using custody::Domain;
using json = nlohmann::json;

namespace {
constexpr size_t kSessionIdSize = 16;

Bytes StatusReportData(const crypto::VerifyingKey& key, ByteSpan custody_fp, ByteSpan nonce) {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/status"), key.Encode(), custody_fp, nonce}));
}
}  // namespace

// Session is one SIGMA session in which this enclave is the responder (a keeper, or a peer
// enclave that wants to join).
struct EnclaveCore::Session {
  uint64_t order = 0;
  std::unique_ptr<sigma::SigmaResponder> responder;
  Bytes message1, message2;
  std::optional<sigma::SecureChannel> channel;
  std::string peer_id;
  std::optional<crypto::VerifyingKey> peer_key;
};

// Join is one SIGMA session in which this enclave is the initiator, joining through a peer.
struct EnclaveCore::Join {
  uint64_t order = 0;
  std::unique_ptr<sigma::SigmaInitiator> initiator;
  Bytes message1;
  std::optional<sigma::SecureChannel> channel;
  Bytes approval;  // this core's own measurement approval (a rolling upgrade), or empty
};

EnclaveCore::EnclaveCore(CoreOptions options)
    : options_(std::move(options)), identity_(crypto::SigningKey::Generate()) {}

EnclaveCore::~EnclaveCore() = default;

StatusOr<std::unique_ptr<EnclaveCore>> EnclaveCore::Create(CoreOptions options) {
  if (options.tee == nullptr) return InvalidArgument("enclave: no TEE backend");
  std::unique_ptr<EnclaveCore> core(new EnclaveCore(std::move(options)));
  // Our own identity, as verifiers will see it: evidence over an all-zero report_data.
  ASSIGN_OR_RETURN(Bytes evidence, core->options_.tee->Evidence(Bytes(64, 0)));
  ASSIGN_OR_RETURN(core->self_, attestation::DescribeOwnEvidence(evidence));
  return core;
}

std::time_t EnclaveCore::Now() const {
  return options_.now ? options_.now() : std::time(nullptr);
}

Bytes EnclaveCore::Handle(ByteSpan request_payload) {
  auto req = ecall::Request::Decode(request_payload);
  if (!req.ok()) return ecall::Response::FromStatus(req.status()).Encode();
  ecall::Response resp = Dispatch(*req);
  Bytes out = resp.Encode();
  // Arguments and results may be plaintexts, data keys or SigV4 secrets: the decoded copies go
  // now (main.cc wipes the frames; the typed copies are WipedBuffers).
  for (Bytes& a : req->args) WipeBytes(a);
  for (Bytes& r : resp.results) WipeBytes(r);
  return out;
}

ecall::Response EnclaveCore::Dispatch(const ecall::Request& r) {
  using Route = Results (*)(EnclaveCore&, const ecall::Request&);
  // The core's handlers, one row per call: ecall::Serve decodes the call's typed arguments
  // (calls.h), runs the handler and encodes its typed result. The KMS calls have their rows in
  // KmsOperations::Serve, reached once unsealed.
  static constexpr std::pair<ecall::Call, Route> kRoutes[] = {
      {ecall::Hello::kCall, &Row<ecall::Hello, &EnclaveCore::Hello>},
      {ecall::Load::kCall, &Row<ecall::Load, &EnclaveCore::Load>},
      {ecall::Init::kCall, &Row<ecall::Init, &EnclaveCore::Init>},
      {ecall::StatusQuery::kCall, &Row<ecall::StatusQuery, &EnclaveCore::StatusCall>},
      {ecall::SigmaRespond::kCall, &Row<ecall::SigmaRespond, &EnclaveCore::SigmaRespond>},
      {ecall::SigmaFinish::kCall, &Row<ecall::SigmaFinish, &EnclaveCore::SigmaFinish>},
      {ecall::Record::kCall, &Row<ecall::Record, &EnclaveCore::Record>},
      {ecall::JoinStart::kCall, &Row<ecall::JoinStart, &EnclaveCore::JoinStart>},
      {ecall::JoinFinish::kCall, &Row<ecall::JoinFinish, &EnclaveCore::JoinFinish>},
      {ecall::JoinComplete::kCall, &Row<ecall::JoinComplete, &EnclaveCore::JoinComplete>},
      {ecall::Ping::kCall, &Row<ecall::Ping, &EnclaveCore::Ping>},
      {ecall::CustodyUpdate::kCall, &Row<ecall::CustodyUpdate, &EnclaveCore::CustodyUpdate>},
      {ecall::OriginRebind::kCall, &Row<ecall::OriginRebind, &EnclaveCore::OriginRebind>},
  };
  // Request::Decode refused any call calls.h does not declare, so a call without a row here is
  // a KMS call (KmsOperations::Serve refuses anything else by name).
  Route route = &KmsRoute;
  for (const auto& [call, row] : kRoutes)
    if (call == r.call) route = row;
  Results out = [&] {
    if (route == &KmsRoute) {
      std::shared_lock lock(mu_);
      return route(*this, r);
    }
    std::unique_lock lock(mu_);
    return route(*this, r);
  }();
  if (!out.ok()) return ecall::Response::FromStatus(out.status());
  ecall::Response resp;
  resp.results = std::move(*out);
  return resp;
}

StatusOr<ecall::Ping::Result> EnclaveCore::Ping(const ecall::Ping::Args& a) { return ecall::Ping::Result{a.payload}; }

EnclaveCore::Results EnclaveCore::KmsRoute(EnclaveCore& core, const ecall::Request& request) {
  if (core.kms_ == nullptr) return FailedPrecondition("enclave: sealed").WithReason(ecall::Reason::kSealed);
  return core.kms_->Serve(request);
}

Status EnclaveCore::AdoptRoot(SecretBytes root) {
  ASSIGN_OR_RETURN(KmsKeyring keyring, KmsKeyring::Derive(root));
  kms_ = std::make_unique<KmsOperations>(std::move(keyring));
  root_ = std::move(root);
  return Status::Ok();
}

// ---- identity, custody, envelope ----

StatusOr<ecall::Hello::Result> EnclaveCore::Hello(const ecall::Hello::Args&) {

  json info = {{"interface_version", ecall::kVersion},
               {"tee", std::string(options_.tee->name())},
               {"debug", self_.debug},
               {"lockdown", options_.lockdown}};
  return ecall::Hello::Result{std::string(options_.tee->name()), identity_.verifying_key().Encode(),
                             self_.measurement, info.dump()};
}

Status EnclaveCore::RequireLoaded() const {
  if (!custody_) return FailedPrecondition("enclave: custody not loaded yet");
  return Status::Ok();
}

Status EnclaveCore::SetEnvelope(ByteSpan envelope) {
  ASSIGN_OR_RETURN(files::DualControlHeader h, files::DualControlHeader::Decode(envelope));
  if (!(h.y == custody_->public_key))
    return FailedPrecondition("enclave: envelope is not sealed to this custody's public key");
  envelope_.assign(envelope.begin(), envelope.end());
  envelope_digest_ = sigma::EnvelopeDigest(envelope_);
  envelope_r_ = h.r;
  return Status::Ok();
}

StatusOr<attestation::DcapVerdict> EnclaveCore::CheckOriginEvidence(ByteSpan evidence,
                                                                     std::string_view collateral) const {
  ASSIGN_OR_RETURN(attestation::DcapVerdict v, attestation::VerifyEvidence(evidence, collateral, Now()));
  if (v.tee != self_.tee) return PermissionDenied("envelope origin: made on tee " + v.tee + ", this node is " + self_.tee);
  attestation::AttestationPolicy policy;
  policy.allowed_signers = {self_.signer};
  policy.product_id = self_.product_id;
  policy.allow_debug = self_.debug;
  policy.allow_sim = self_.tee == "sim";
  policy.accepted_tcb_statuses = {v.tcb_status};  // the origin's TCB was judged when it was made
  RETURN_IF_ERROR(attestation::CheckPolicy(v, policy).WithContext("envelope origin"));
  if (v.svn > self_.svn) return PermissionDenied("envelope origin: made by a newer SVN than this core");
  return v;
}

Status EnclaveCore::CheckOriginBinding(sigma::OriginBinding binding, ByteSpan origin_report_data,
                                       ByteSpan envelope, const SecretBytes& root) const {
  if (root.size() != sigma::kRootKeySize) return IntegrityError("enclave: root key has the wrong length");
  Bytes digest = sigma::EnvelopeDigest(envelope);
  Bytes id = sigma::RootKeyId(root);
  if (binding == sigma::OriginBinding::kJointKey) {
    Bytes expected = sigma::EnvelopeOriginReportData(digest, custody_->public_key, id);
    if (!sigma::CheckReportData(origin_report_data, expected).ok())
      return IntegrityError(
          "enclave: the envelope was not made by an enclave for this root key (origin evidence does "
          "not match): refusing it");
    return Status::Ok();
  }
  for (const Bytes& fp : known_fps_)
    if (sigma::CheckReportData(origin_report_data, sigma::LegacyEnvelopeOriginReportData(digest, fp, id)).ok())
      return Status::Ok();
  return IntegrityError(
      "enclave: custody fingerprint changed: the envelope's origin evidence (made by an older core) "
      "names a custody descriptor this core does not know, or the envelope was not made by an "
      "enclave for this root key: refusing it (load the descriptor the node was initialised under, "
      "or its direct successor)");
}

void EnclaveCore::RememberCustody(const custody::CustodyDescriptor& c) {
  for (const Bytes& fp : {c.Fingerprint(), c.previous}) {
    if (fp.empty() || std::find(known_fps_.begin(), known_fps_.end(), fp) != known_fps_.end()) continue;
    known_fps_.push_back(fp);
  }
}

StatusOr<ecall::Load::Result> EnclaveCore::Load(const ecall::Load::Args& a) {
  ByteSpan custody_json = a.custody, envelope = a.envelope, origin_evidence = a.origin, collateral = a.collateral;

  if (custody_) return FailedPrecondition("enclave: custody already loaded");
  ASSIGN_OR_RETURN(custody::CustodyDescriptor c, custody::CustodyDescriptor::Parse(ToString(custody_json)));
  RETURN_IF_ERROR(c.Verify().WithContext("enclave: custody.json"));
  if (envelope.empty() != origin_evidence.empty())
    return FailedPrecondition("enclave: an envelope needs the evidence of the enclave that made it");
  collateral_ = ToString(collateral);
  attestation::DcapVerdict origin;
  sigma::EnvelopeOrigin origin_file;
  if (!origin_evidence.empty()) {
    ASSIGN_OR_RETURN(origin_file, sigma::EnvelopeOrigin::Decode(origin_evidence));
    ASSIGN_OR_RETURN(origin, CheckOriginEvidence(origin_file.evidence, collateral_));
  }
  custody_ = std::move(c);
  custody_fp_ = custody_->Fingerprint();
  if (!envelope.empty()) {
    Status st = SetEnvelope(envelope);
    if (!st.ok()) {
      custody_.reset();
      return st;
    }
    origin_ = std::move(origin_file);
    origin_report_data_ = origin.report_data;
  }
  RememberCustody(*custody_);
  return ecall::Load::Result{};
}

StatusOr<ecall::Init::Result> EnclaveCore::Init(const ecall::Init::Args&) {

  RETURN_IF_ERROR(RequireLoaded());
  if (!envelope_.empty()) return FailedPrecondition("enclave: already initialised (an envelope exists)");
  SecretBytes root = crypto::RandomSecret(sigma::kRootKeySize);
  ASSIGN_OR_RETURN(Bytes envelope, files::SealDualControlSecret(custody_->public_key, root));
  Bytes origin_rd = sigma::ReportDataField(sigma::EnvelopeOriginReportData(
      sigma::EnvelopeDigest(envelope), custody_->public_key, sigma::RootKeyId(root)));
  ASSIGN_OR_RETURN(Bytes evidence, options_.tee->Evidence(origin_rd));
  RETURN_IF_ERROR(SetEnvelope(envelope));
  origin_ = sigma::EnvelopeOrigin{sigma::OriginBinding::kJointKey, evidence};
  origin_report_data_ = origin_rd;
  RETURN_IF_ERROR(AdoptRoot(std::move(root)));
  return ecall::Init::Result{envelope, origin_.Encode()};
}

StatusOr<ecall::OriginRebind::Result> EnclaveCore::OriginRebind(const ecall::OriginRebind::Args&) {

  RETURN_IF_ERROR(RequireLoaded());
  if (envelope_.empty()) return FailedPrecondition("enclave: not initialised (no envelope)");
  if (sealed()) return FailedPrecondition("enclave: sealed: the origin evidence is re-bound once the root key is here");
  if (origin_.binding != sigma::OriginBinding::kJointKey) {
    // The legacy binding was checked when the root key arrived; bind the same envelope and
    // root key to Y, which no reshare changes.
    Bytes rd = sigma::ReportDataField(
        sigma::EnvelopeOriginReportData(envelope_digest_, custody_->public_key, sigma::RootKeyId(*root_)));
    ASSIGN_OR_RETURN(Bytes evidence, options_.tee->Evidence(rd));
    origin_ = sigma::EnvelopeOrigin{sigma::OriginBinding::kJointKey, evidence};
    origin_report_data_ = rd;
  }
  return ecall::OriginRebind::Result{origin_.Encode()};
}

StatusOr<ecall::CustodyUpdate::Result> EnclaveCore::CustodyUpdate(const ecall::CustodyUpdate::Args& a) {
  ByteSpan custody_json = a.custody;

  RETURN_IF_ERROR(RequireLoaded());
  ASSIGN_OR_RETURN(custody::CustodyDescriptor c, custody::CustodyDescriptor::Parse(ToString(custody_json)));
  RETURN_IF_ERROR(c.Verify().WithContext("enclave: custody update"));
  if (!(c.public_key == custody_->public_key))
    return FailedPrecondition(
        "enclave: custody update has another joint public key: it is not a reshare of the custody "
        "this node serves");
  Bytes fp = c.Fingerprint();
  if (fp == custody_fp_) return ecall::CustodyUpdate::Result{fp};
  if (c.epoch <= custody_->epoch)
    return FailedPrecondition("enclave: custody update is not newer: epoch " + std::to_string(c.epoch) +
                              ", this node serves epoch " + std::to_string(custody_->epoch));
  custody_ = std::move(c);
  custody_fp_ = fp;
  RememberCustody(*custody_);
  unseal_failure_.clear();  // a legacy origin may match a fingerprint known now
  // Partials, sessions and joins in progress were made under the previous descriptor (keeper
  // indices and verification keys change with a reshare): start over under the new one.
  contributions_.clear();
  sessions_.clear();
  joins_.clear();
  return ecall::CustodyUpdate::Result{fp};
}

StatusOr<ecall::StatusQuery::Result> EnclaveCore::StatusCall(const ecall::StatusQuery::Args& a) {
  ByteSpan nonce = a.nonce;

  if (!nonce.empty() && nonce.size() != 32) return InvalidArgument("enclave: status nonce must be 32 bytes");
  json s = {{"tee", std::string(options_.tee->name())},
            {"enclave_key", HexEncode(identity_.verifying_key().Encode())},
            {"measurement", HexEncode(self_.measurement)},
            {"initialized", !envelope_.empty()},
            {"sealed", sealed()},
            {"lockdown", options_.lockdown}};
  if (custody_) {
    s["custody"] = HexEncode(custody_fp_);
    s["custody_epoch"] = custody_->epoch;
    s["public_key"] = HexEncode(custody_->public_key.Encode());
    s["thresholds"] = {{"provider", custody_->provider.threshold},
                       {"customer", custody_->customer.threshold}};
  }
  if (!envelope_.empty()) s["origin_binding"] = std::string(sigma::OriginBindingName(origin_.binding));
  if (!unseal_failure_.empty() && sealed()) s["unseal_error"] = unseal_failure_;
  json contributors = json::array();
  if (root_) {
    s["root_key_id"] = HexEncode(sigma::RootKeyId(*root_));
    s["audit_public_key"] = HexEncode(kms_->audit_public_key().Encode());
    for (const auto& [id, domain] : contributors_)
      contributors.push_back({{"keeper", id}, {"domain", custody::DomainName(domain)}});
  } else {
    for (const auto& [id, c] : contributions_)
      contributors.push_back({{"keeper", id}, {"domain", custody::DomainName(c.domain)}});
  }
  s["contributors"] = contributors;
  // Evidence (one TEE signature) only when asked for: the host's own state checks skip it.
  Bytes evidence;
  if (!nonce.empty()) {
    Bytes report_data = StatusReportData(identity_.verifying_key(), custody_fp_, nonce);
    s["report_data"] = HexEncode(report_data);
    ASSIGN_OR_RETURN(evidence, options_.tee->Evidence(sigma::ReportDataField(report_data)));
  }
  return ecall::StatusQuery::Result{s.dump(), evidence};
}

// ---- keepers and joining peers: this enclave is the SIGMA responder ----

Status EnclaveCore::AuthorizePeer(std::string_view id, const crypto::VerifyingKey& key) const {
  if (id == sigma::kJoinPeerId) {
    // A peer enclave proves itself with evidence in its first record (OnJoinRequest).
    if (sealed()) return FailedPrecondition("this enclave is sealed: join through an unsealed node");
    return Status::Ok();
  }
  const custody::KeeperRecord* k = custody_->FindKeeper(id);
  if (k == nullptr) return PermissionDenied("keeper " + std::string(id) + " is not in custody.json");
  if (!(crypto::VerifyingKey::FromPoint(k->identity_key) == key))
    return PermissionDenied("keeper " + std::string(id) + " signed with a key custody.json does not list");
  return Status::Ok();
}

StatusOr<ecall::SigmaRespond::Result> EnclaveCore::SigmaRespond(const ecall::SigmaRespond::Args& a) {
  ByteSpan message1 = a.message1;

  RETURN_IF_ERROR(RequireLoaded());
  auto s = std::make_unique<Session>();
  s->order = ++session_counter_;
  sigma::ResponderConfig cfg;
  cfg.custody_hash = custody_fp_;
  cfg.provide_evidence = [this](ByteSpan report_data) -> StatusOr<Bytes> {
    return options_.tee->Evidence(sigma::ReportDataField(report_data));
  };
  cfg.authorize = [this](std::string_view id, const crypto::VerifyingKey& key) {
    return AuthorizePeer(id, key);
  };
  s->responder = std::make_unique<sigma::SigmaResponder>(identity_, std::move(cfg));
  ASSIGN_OR_RETURN(s->message2, s->responder->Respond(message1));
  s->message1.assign(message1.begin(), message1.end());
  Bytes id = crypto::RandomBytes(kSessionIdSize);
  Bytes message2 = s->message2;
  // Only sessions nobody has authenticated in yet (no message 3) compete for the kMaxSessions
  // slots: a flood of message 1s can push out another unauthenticated session, never one whose
  // keeper (or peer enclave) already proved who it is (those are one per peer, SigmaFinish).
  size_t pending = 0;
  auto oldest = sessions_.end();
  for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
    if (it->second->channel) continue;
    ++pending;
    if (oldest == sessions_.end() || it->second->order < oldest->second->order) oldest = it;
  }
  if (pending >= kMaxSessions && oldest != sessions_.end()) sessions_.erase(oldest);
  sessions_[HexEncode(id)] = std::move(s);
  return ecall::SigmaRespond::Result{id, message2};
}

StatusOr<ecall::SigmaFinish::Result> EnclaveCore::SigmaFinish(const ecall::SigmaFinish::Args& a) {
  ByteSpan session_id = a.session, message3 = a.message3;

  auto it = sessions_.find(HexEncode(session_id));
  if (it == sessions_.end()) return NotFound("enclave: no such SIGMA session (finished, expired or never opened)");
  Session& s = *it->second;
  if (s.channel) return FailedPrecondition("enclave: SIGMA session already finished");
  auto done = s.responder->Finish(message3);
  if (!done.ok()) {
    sessions_.erase(it);
    return done.status();
  }
  s.channel = std::move(done->channel);
  s.peer_id = done->keeper_id;
  s.peer_key = done->keeper_key;
  // One authenticated session per peer: a newer handshake of the same keeper replaces its older
  // one (which it abandoned), so authenticated sessions stay bounded by the custody's keepers.
  for (auto other = sessions_.begin(); other != sessions_.end();) {
    if (other != it && other->second->channel && other->second->peer_id == s.peer_id) other = sessions_.erase(other);
    else ++other;
  }
  if (s.peer_id == sigma::kJoinPeerId) return ecall::SigmaFinish::Result{Bytes{}};
  // A keeper: ask for its partial, or tell it there is nothing to do.
  Bytes plaintext;
  if (!sealed() || contributions_.count(s.peer_id)) {
    // Unsealed, or this keeper's verified partial is already counted in this life: nothing to
    // ask (the keeper releases nothing and audits nothing).
    plaintext = ProgressRecord();
  } else if (envelope_.empty()) {
    sessions_.erase(it);
    return FailedPrecondition("enclave: not initialised (no envelope): run `custos operator init`");
  } else if (!unseal_failure_.empty()) {
    sessions_.erase(it);
    return IntegrityError(unseal_failure_);
  } else {
    plaintext = sigma::UnsealRequest{custody_fp_, envelope_r_, envelope_digest_}.Encode();
  }
  ASSIGN_OR_RETURN(Bytes record, s.channel->Seal(plaintext));
  if (!sealed() || contributions_.count(s.peer_id)) sessions_.erase(it);
  return ecall::SigmaFinish::Result{record};
}

StatusOr<ecall::Record::Result> EnclaveCore::Record(const ecall::Record::Args& a) {
  ByteSpan session_id = a.session, record = a.record;

  auto it = sessions_.find(HexEncode(session_id));
  if (it == sessions_.end()) return NotFound("enclave: no such SIGMA session (finished, expired or never opened)");
  Session& s = *it->second;
  if (!s.channel) return FailedPrecondition("enclave: SIGMA handshake not finished");
  // Whatever happens, this session serves exactly one record from its peer.
  std::unique_ptr<Session> owned = std::move(it->second);
  sessions_.erase(it);
  if (s.peer_id == sigma::kJoinPeerId) {
    ASSIGN_OR_RETURN(Bytes plaintext, s.channel->Open(record));
    ASSIGN_OR_RETURN(Bytes answer, OnJoinRequest(s, plaintext));
    return ecall::Record::Result{answer};
  }
  ASSIGN_OR_RETURN(Bytes plaintext, s.channel->Open(record));
  ASSIGN_OR_RETURN(Bytes answer, OnPartial(s, plaintext));
  return ecall::Record::Result{answer};
}

Bytes EnclaveCore::ProgressRecord() const {
  sigma::UnsealProgress p;
  p.unsealed = !sealed();
  for (const auto& [id, c] : contributions_)
    (c.domain == Domain::kProvider ? p.provider : p.customer)++;
  for (const auto& [id, domain] : contributors_)  // after unseal: the partials that opened it
    (domain == Domain::kProvider ? p.provider : p.customer)++;
  return p.Encode();
}

StatusOr<Bytes> EnclaveCore::OnPartial(Session& s, ByteSpan plaintext) {
  if (!sealed()) return s.channel->Seal(ProgressRecord());
  ASSIGN_OR_RETURN(threshold::PartialDecryption p, sigma::DecodePartialRelease(plaintext));
  const custody::KeeperRecord* k = custody_->FindKeeper(s.peer_id);
  if (k == nullptr) return PermissionDenied("keeper " + s.peer_id + " is not in custody.json");
  if (p.index != k->index)
    return PermissionDenied("partial from keeper " + s.peer_id + " carries index " +
                            std::to_string(p.index) + ", custody.json says " + std::to_string(k->index));
  Status proof = threshold::VerifyPartial(p, k->verification_key, envelope_r_,
                                          sigma::UnsealProofContext(envelope_digest_));
  if (!proof.ok())
    return IntegrityError("partial from keeper " + s.peer_id + " refused: " + proof.message());
  contributions_[s.peer_id] = Contribution{k->domain, p};
  RETURN_IF_ERROR(TryUnseal());
  return s.channel->Seal(ProgressRecord());
}

Status EnclaveCore::TryUnseal() {
  crypto::Point s;
  std::vector<std::pair<std::string, Domain>> used;
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    const custody::DomainRecord& dom = custody_->domain(d);
    std::vector<uint32_t> indices;
    std::vector<crypto::Point> points;
    for (const auto& [id, c] : contributions_) {
      if (c.domain != d || indices.size() == dom.threshold) continue;
      indices.push_back(c.partial.index);
      points.push_back(c.partial.d);
      used.emplace_back(id, d);
    }
    if (indices.size() < dom.threshold) return Status::Ok();  // not yet: both domains needed
    ASSIGN_OR_RETURN(crypto::Point sd, threshold::InterpolatePointsAtZero(indices, points));
    s += sd;
  }
  auto root = files::OpenDualControlSecret(envelope_, s);
  contributions_.clear();
  // Every proof verified, so a failure from here on is the envelope's (or its origin
  // evidence's): no later quorum can do better in this core's life. It is remembered, so keepers
  // stop releasing to this core (SigmaFinish, status "unseal_error") instead of retrying.
  if (!root.ok()) {
    unseal_failure_ = "enclave: verified partials do not open the envelope: " + root.status().message();
    return IntegrityError(unseal_failure_);
  }
  if (Status bound = CheckOriginBinding(origin_.binding, origin_report_data_, envelope_, *root); !bound.ok()) {
    unseal_failure_ = bound.message();
    return bound;
  }
  RETURN_IF_ERROR(AdoptRoot(std::move(*root)));
  contributors_ = used;
  return Status::Ok();
}

Status EnclaveCore::CheckPeerEvidence(ByteSpan evidence, std::string_view collateral,
                                      ByteSpan expected_report_data, const PeerMeasurement& allowed) const {
  ASSIGN_OR_RETURN(attestation::DcapVerdict v, attestation::VerifyEvidence(evidence, collateral, Now()));
  if (v.tee != self_.tee) return PermissionDenied("cluster policy: peer runs on tee " + v.tee + ", this node on " + self_.tee);
  attestation::AttestationPolicy policy;
  policy.allowed_measurements = {self_.measurement};
  if (!allowed.approval.empty()) {
    // The joiner runs another build: it must be the one a quorum of both domains approved.
    ASSIGN_OR_RETURN(custody::MeasurementApproval a, VerifyApproval(allowed.approval, v.measurement));
    policy.allowed_measurements.push_back(std::move(a.measurement));
  } else if (!allowed.upgrading && v.measurement != self_.measurement) {
    return PermissionDenied("cluster policy: policy: measurement not allowed (the peer runs " +
                            HexEncode(v.measurement) + ", this node " + HexEncode(self_.measurement) +
                            "; another build joins only with a measurement approval of both domains)");
  }
  policy.allowed_signers = {self_.signer};
  policy.product_id = self_.product_id;
  policy.min_svn = self_.svn;
  if (allowed.upgrading) {
    // The older build this approved core replaces: any measurement and SVN of our signer.
    policy.allowed_measurements.clear();
    policy.min_svn = 0;
  }
  policy.allow_debug = self_.debug;
  policy.allow_sim = self_.tee == "sim";
  policy.accepted_tcb_statuses = {self_.tee == "sim" ? std::string(attestation::kSimTcbStatus) : "UpToDate"};
  RETURN_IF_ERROR(attestation::CheckPolicy(v, policy).WithContext("cluster policy"));
  return sigma::CheckReportData(v.report_data, expected_report_data);
}

StatusOr<custody::MeasurementApproval> EnclaveCore::VerifyApproval(ByteSpan approval_json,
                                                                   ByteSpan measurement) const {
  if (!custody_) return FailedPrecondition("enclave: no custody loaded");
  ASSIGN_OR_RETURN(custody::MeasurementApproval a, custody::MeasurementApproval::Parse(ToString(approval_json)));
  RETURN_IF_ERROR(custody::CheckApproval(a, *custody_, Now()).status());
  if (a.tee != self_.tee)
    return PermissionDenied("measurement approval: for tee " + a.tee + ", this cluster runs " + self_.tee);
  if (!std::equal(a.measurement.begin(), a.measurement.end(), measurement.begin(), measurement.end()))
    return PermissionDenied("measurement approval: approves " + HexEncode(a.measurement) + ", the core runs " +
                            HexEncode(measurement));
  return a;
}

StatusOr<Bytes> EnclaveCore::OnJoinRequest(Session& s, ByteSpan plaintext) {
  if (sealed()) return FailedPrecondition("this enclave is sealed: join through an unsealed node");
  ASSIGN_OR_RETURN(sigma::JoinRequest req, sigma::JoinRequest::Decode(plaintext));
  Bytes expected = sigma::JoinReportData(s.peer_key->point(), s.message1, s.message2);
  PeerMeasurement allowed;
  allowed.approval = req.approval;
  RETURN_IF_ERROR(CheckPeerEvidence(req.evidence, ToString(req.collateral), expected, allowed)
                      .WithContext("join refused"));
  sigma::JoinGrant grant{root_->Clone(), envelope_, origin_.Encode()};
  SecretBytes encoded = grant.Encode();
  return s.channel->Seal(encoded.Expose());
}

// ---- joining a cluster: this enclave is the SIGMA initiator ----

StatusOr<ecall::JoinStart::Result> EnclaveCore::JoinStart(const ecall::JoinStart::Args& a) {
  RETURN_IF_ERROR(RequireLoaded());
  if (!sealed()) return FailedPrecondition("enclave: already unsealed; nothing to join");
  auto j = std::make_unique<Join>();
  j->order = ++session_counter_;
  PeerMeasurement allowed;
  if (!a.approval.empty()) {
    // Checked here too so a bad approval fails at once with its reason; the serving core
    // checks it again (it is the check that matters).
    RETURN_IF_ERROR(VerifyApproval(a.approval, self_.measurement).status());
    j->approval = a.approval;
    allowed.upgrading = true;
  }
  sigma::InitiatorConfig cfg;
  cfg.keeper_id = std::string(sigma::kJoinPeerId);
  cfg.custody_hash = custody_fp_;
  cfg.verify_evidence = [this, allowed](ByteSpan evidence, ByteSpan expected) {
    return CheckPeerEvidence(evidence, collateral_for_join_, expected, allowed);
  };
  j->initiator = std::make_unique<sigma::SigmaInitiator>(identity_, std::move(cfg));
  ASSIGN_OR_RETURN(j->message1, j->initiator->Start());
  Bytes handle = crypto::RandomBytes(kSessionIdSize);
  Bytes message1 = j->message1;
  if (joins_.size() >= 4) {
    auto oldest = std::min_element(joins_.begin(), joins_.end(), [](const auto& a, const auto& b) {
      return a.second->order < b.second->order;
    });
    joins_.erase(oldest);
  }
  joins_[HexEncode(handle)] = std::move(j);
  return ecall::JoinStart::Result{handle, message1};
}

StatusOr<ecall::JoinFinish::Result> EnclaveCore::JoinFinish(const ecall::JoinFinish::Args& a) {
  ByteSpan handle = a.handle, message2 = a.message2, collateral = a.collateral;

  auto it = joins_.find(HexEncode(handle));
  if (it == joins_.end()) return NotFound("enclave: no such join in progress");
  Join& j = *it->second;
  if (j.channel) return FailedPrecondition("enclave: join handshake already finished");
  collateral_for_join_ = ToString(collateral);
  auto done = j.initiator->Finish(message2);
  collateral_for_join_.clear();
  if (!done.ok()) {
    joins_.erase(it);
    return done.status();
  }
  j.channel = std::move(done->channel);
  Bytes rd = sigma::JoinReportData(identity_.verifying_key().point(), j.message1, message2);
  ASSIGN_OR_RETURN(Bytes evidence, options_.tee->Evidence(sigma::ReportDataField(rd)));
  sigma::JoinRequest req{evidence, Bytes(collateral.begin(), collateral.end()), j.approval};
  ASSIGN_OR_RETURN(Bytes record, j.channel->Seal(req.Encode()));
  return ecall::JoinFinish::Result{done->message3, record};
}

StatusOr<ecall::JoinComplete::Result> EnclaveCore::JoinComplete(const ecall::JoinComplete::Args& a) {
  ByteSpan handle = a.handle, record = a.record;

  auto it = joins_.find(HexEncode(handle));
  if (it == joins_.end()) return NotFound("enclave: no such join in progress");
  std::unique_ptr<Join> j = std::move(it->second);
  joins_.erase(it);
  if (!j->channel) return FailedPrecondition("enclave: join handshake not finished");
  ASSIGN_OR_RETURN(SecretBytes plaintext, j->channel->OpenSecret(record));
  ASSIGN_OR_RETURN(sigma::JoinGrant grant, sigma::JoinGrant::Decode(plaintext));
  if (!envelope_.empty() && grant.envelope != envelope_)
    return FailedPrecondition("enclave: the peer holds another envelope than the one stored here");
  // The granted key must be the one a genuine enclave sealed in this envelope.
  ASSIGN_OR_RETURN(sigma::EnvelopeOrigin granted, sigma::EnvelopeOrigin::Decode(grant.origin_evidence));
  ASSIGN_OR_RETURN(attestation::DcapVerdict origin, CheckOriginEvidence(granted.evidence, collateral_));
  RETURN_IF_ERROR(CheckOriginBinding(granted.binding, origin.report_data, grant.envelope, grant.root_key));
  if (envelope_.empty() || origin_.binding != sigma::OriginBinding::kJointKey) {
    if (envelope_.empty()) RETURN_IF_ERROR(SetEnvelope(grant.envelope));
    origin_ = std::move(granted);
    origin_report_data_ = origin.report_data;
  }
  RETURN_IF_ERROR(AdoptRoot(std::move(grant.root_key)));
  contributors_.clear();
  contributions_.clear();
  return ecall::JoinComplete::Result{envelope_, origin_.Encode()};
}

}  // namespace custos::enclave
