#include "keeper/daemon/release.h"

#include <algorithm>
#include <functional>
#include <mutex>
#include <optional>

#include "common/log.h"
#include "protocol/custody/approval.h"
#include "keeper/daemon/witness.h"

#include "protocol/attestation/evidence.h"
#include "crypto/hash.h"
#include "net/http_client.h"
#include "net/json_fields.h"
#include "protocol/sigma/release.h"
#include "protocol/sigma/sigma.h"

namespace custos::keeper {

using json = nlohmann::json;

namespace {

// B64Field reads a base64 field of the appliance's answer; a malformed answer is kIntegrity.
StatusOr<Bytes> B64Field(const json& j, const char* key) {
  auto b = net::GetBase64(j, key);
  if (!b.ok()) return IntegrityError("appliance answer: " + b.status().message());
  return b;
}

// What the evidence verifier saw, for the audit log.
struct Seen {
  attestation::DcapVerdict verdict;
  Bytes evidence;
};

ApplianceIdentity IdentityOf(const json& status) {
  ApplianceIdentity id;
  if (status.is_object()) {
    id.enclave_key = status.value("enclave_key", "");
    id.custody = status.value("custody", "");
    id.sealed = status.value("sealed", true);
    id.unseal_failed = status.contains("unseal_error");
  }
  return id;
}

// HandOverCustody gives an appliance that still serves an older descriptor of this keeper's
// joint key the keeper's own (the successor after a reshare). Anything else is a refusal.
Status HandOverCustody(const custody::CustodyDescriptor& custody, const json& status,
                       const std::function<StatusOr<json>(const char*, const json&)>& post) {
  std::string theirs = status.value("custody", std::string("(none)"));
  std::string refusal = "appliance serves custody " + theirs + ", this keeper serves " + custody.FingerprintHex();
  if (!status.contains("public_key") || !status["custody_epoch"].is_number_unsigned())
    return FailedPrecondition(refusal);
  if (status.value("public_key", "") != HexEncode(custody.public_key.Encode()))
    return FailedPrecondition(refusal + " (another joint public key: not the same custody)");
  uint64_t epoch = status["custody_epoch"].get<uint64_t>();
  if (epoch >= custody.epoch)
    return FailedPrecondition(refusal + " (the appliance's is newer, epoch " + std::to_string(epoch) +
                              " > " + std::to_string(custody.epoch) +
                              ": this keeper has not activated the current descriptor, or was removed)");
  ASSIGN_OR_RETURN(json r, post("/v1/sys/custody", {{"descriptor", custody.ToJson()}}));
  if (r.value("custody", "") != custody.FingerprintHex())
    return IntegrityError("appliance did not adopt custody " + custody.FingerprintHex());
  return Status::Ok();
}

StatusOr<ReleaseOutcome> Run(KeeperStore& store, const ReleaseOptions& o, Seen& seen,
                             ApplianceIdentity* appliance) {
  custody::CustodyDescriptor custody;
  crypto::Scalar share;
  uint32_t index = 0;
  {
    std::lock_guard<std::mutex> lock(store.mu());
    if (!store.secrets().active) return FailedPrecondition("keeper holds no active share yet");
    ASSIGN_OR_RETURN(custody, custody::CustodyDescriptor::Parse(store.secrets().active->custody_json));
    share = store.secrets().active->share;
    index = store.secrets().active->index;
  }
  const custody::KeeperRecord* me = custody.FindKeeper(store.id());
  if (me == nullptr) return FailedPrecondition("active custody does not list this keeper");
  Bytes fp = custody.Fingerprint();

  net::HttpClientOptions http;
  http.ca_file = o.ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(o.server_url, http));
  std::string peer = "appliance " + o.server_url;
  auto post = [&](const char* path, const json& body) {
    return net::DecodeJsonResponse(client.Post(path, body.dump(), {{"content-type", "application/json"}}), peer);
  };
  ASSIGN_OR_RETURN(json status, net::DecodeJsonResponse(client.Get("/v1/sys/seal-status"), peer));
  if (appliance != nullptr) *appliance = IdentityOf(status);
  ReleaseOutcome out;
  if (status.value("custody", "") != custody.FingerprintHex()) {
    // After a reshare: hand the appliance the successor descriptor (same Y), then go on.
    RETURN_IF_ERROR(HandOverCustody(custody, status, post));
    out.custody_updated = true;
    ASSIGN_OR_RETURN(status, net::DecodeJsonResponse(client.Get("/v1/sys/seal-status"), peer));
    if (appliance != nullptr) *appliance = IdentityOf(status);
    if (status.value("custody", "") != custody.FingerprintHex())
      return FailedPrecondition("appliance serves custody " + status.value("custody", std::string("(none)")) +
                                " after the update, this keeper serves " + custody.FingerprintHex());
  }
  if (!status.value("sealed", true)) {
    out.unsealed = true;  // nothing to release
    return out;
  }
  // The core could not be unsealed by verified partials in this life (its envelope or origin
  // evidence is wrong): releasing again would change nothing. The host's word, so it can only
  // make this keeper release less.
  if (status.contains("unseal_error") && status["unseal_error"].is_string())
    return IntegrityError("appliance cannot be unsealed: " + status["unseal_error"].get<std::string>());
  // The database it will serve from must not have gone back since this keeper last saw it.
  if (o.witness) RETURN_IF_ERROR(WitnessAppliance(store, o.server_url, o.ca_file).status());

  sigma::InitiatorConfig cfg;
  cfg.keeper_id = store.id();
  cfg.custody_hash = fp;
  cfg.verify_evidence = [&](ByteSpan evidence, ByteSpan expected) -> Status {
    seen.evidence.assign(evidence.begin(), evidence.end());
    return CheckEnclaveEvidence(evidence, expected, o, &seen.verdict, &custody);
  };
  SecretBytes identity_scalar;
  {
    std::lock_guard<std::mutex> lock(store.mu());
    identity_scalar = store.secrets().identity.ToScalarBytes();
  }
  ASSIGN_OR_RETURN(crypto::SigningKey identity, crypto::SigningKey::FromScalarBytes(identity_scalar));
  sigma::SigmaInitiator initiator(identity, cfg);
  ASSIGN_OR_RETURN(Bytes m1, initiator.Start());
  ASSIGN_OR_RETURN(json r2, post("/v1/sys/sigma/respond", {{"message1", Base64Encode(m1)}}));
  ASSIGN_OR_RETURN(Bytes m2, B64Field(r2, "message2"));
  std::string session = r2.value("session", "");
  ASSIGN_OR_RETURN(sigma::InitiatorResult done, initiator.Finish(m2));
  out.measurement = HexEncode(seen.verdict.measurement);
  ASSIGN_OR_RETURN(json r3, post("/v1/sys/sigma/finish", {{"session", session}, {"message3", Base64Encode(done.message3)}}));
  ASSIGN_OR_RETURN(Bytes rec3, B64Field(r3, "record"));
  ASSIGN_OR_RETURN(Bytes first, done.channel.Open(rec3));
  ASSIGN_OR_RETURN(sigma::ReleaseRecord type, sigma::RecordType(first));
  if (type == sigma::ReleaseRecord::kUnsealProgress) {
    ASSIGN_OR_RETURN(sigma::UnsealProgress p, sigma::UnsealProgress::Decode(first));
    out.unsealed = p.unsealed;
    return out;
  }
  ASSIGN_OR_RETURN(sigma::UnsealRequest req, sigma::UnsealRequest::Decode(first));
  if (req.custody_fp != fp) return IntegrityError("enclave asks under another custody");
  // The release is durable in this keeper's audit log before the partial leaves.
  RETURN_IF_ERROR(store.audit().Append(
      "enclave.release",
      {{"appliance", o.server_url},
       {"custody", custody.FingerprintHex()},
       {"tee", seen.verdict.tee},
       {"tcb_status", seen.verdict.tcb_status},
       {"measurement", HexEncode(seen.verdict.measurement)},
       {"signer", HexEncode(seen.verdict.signer)},
       {"debug", seen.verdict.debug},
       {"enclave_key", HexEncode(done.responder_key.Encode())},
       {"evidence_sha256", HexEncode(crypto::Sha256Bytes(seen.evidence))},
       {"r", HexEncode(req.r.Encode())},
       {"envelope_digest", HexEncode(req.envelope_digest)}}));
  // From now on this keeper serves R to attested enclaves only, never to a client.
  RETURN_IF_ERROR(store.AddAppliancePoint(req.r));
  threshold::PartialDecryption partial = threshold::ComputePartial(
      index, share, me->verification_key, req.r, sigma::UnsealProofContext(req.envelope_digest));
  if (o.misbehaviour) o.misbehaviour->TamperPartial(partial);
  ASSIGN_OR_RETURN(Bytes rec4, done.channel.Seal(sigma::EncodePartialRelease(partial)));
  ASSIGN_OR_RETURN(json r5, post("/v1/sys/sigma/record", {{"session", session}, {"record", Base64Encode(rec4)}}));
  ASSIGN_OR_RETURN(Bytes rec5, B64Field(r5, "record"));
  ASSIGN_OR_RETURN(Bytes answer, done.channel.Open(rec5));
  ASSIGN_OR_RETURN(sigma::UnsealProgress p, sigma::UnsealProgress::Decode(answer));
  out.released = true;
  out.unsealed = p.unsealed;
  out.provider = p.provider;
  out.customer = p.customer;
  return out;
}

}  // namespace

Status CheckEnclaveEvidence(ByteSpan evidence, ByteSpan expected_report_data,
                            const ReleaseOptions& o, attestation::DcapVerdict* verdict,
                            const custody::CustodyDescriptor* custody) {
  std::time_t now = o.now ? o.now() : std::time(nullptr);
  ASSIGN_OR_RETURN(*verdict, attestation::VerifyEvidence(evidence, o.collateral_json, now));
  Status policy = attestation::CheckPolicy(*verdict, o.policy);
  if (!policy.ok() && custody != nullptr && !o.approvals.empty() &&
      std::find(o.policy.allowed_measurements.begin(), o.policy.allowed_measurements.end(),
                verdict->measurement) == o.policy.allowed_measurements.end()) {
    // A measurement the policy does not list: a both-domain approval of exactly this build
    // admits it; the rest of the policy (signer, product, SVN, debug, TCB) still applies.
    std::string why;
    for (const std::string& text : o.approvals) {
      StatusOr<custody::MeasurementApproval> a = custody::MeasurementApproval::Parse(text);
      if (!a.ok() || a->tee != verdict->tee || a->measurement != verdict->measurement) continue;
      StatusOr<custody::ApprovalQuorum> q = custody::CheckApproval(*a, *custody, now);
      if (!q.ok()) {
        why = q.status().message();
        continue;
      }
      attestation::AttestationPolicy approved = o.policy;
      approved.allowed_measurements.push_back(verdict->measurement);
      policy = attestation::CheckPolicy(*verdict, approved);
      break;
    }
    if (!policy.ok() && !why.empty()) policy = PermissionDenied(policy.message() + " (" + why + ")");
  }
  RETURN_IF_ERROR(policy);
  return sigma::CheckReportData(verdict->report_data, expected_report_data);
}

StatusOr<ApplianceIdentity> ProbeAppliance(const ReleaseOptions& o) {
  net::HttpClientOptions http;
  http.ca_file = o.ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(o.server_url, http));
  ASSIGN_OR_RETURN(json status, net::DecodeJsonResponse(client.Get("/v1/sys/seal-status"), "appliance " + o.server_url));
  return IdentityOf(status);
}

StatusOr<ReleaseOutcome> ReleaseToAppliance(KeeperStore& store, const ReleaseOptions& options,
                                            ApplianceIdentity* identity) {
  Seen seen;
  StatusOr<ReleaseOutcome> out = Run(store, options, seen, identity);
  if (!out.ok() && options.audit_refusals && !seen.evidence.empty()) {
    // A judged enclave that was refused is part of the keeper's record too (best effort: the
    // refusal is what matters). Failures before any evidence (unreachable, not initialised)
    // are not about an enclave and are only reported to the caller.
    (void)store.audit().Append("enclave.refused", {{"appliance", options.server_url},
                                                   {"reason", out.status().message()},
                                                   {"measurement", HexEncode(seen.verdict.measurement)},
                                                   {"evidence_sha256", HexEncode(crypto::Sha256Bytes(seen.evidence))}});
  }
  return out;
}

AutoRelease::AutoRelease(KeeperStore& store, ReleaseOptions options, std::chrono::milliseconds interval)
    : store_(store), options_(std::move(options)), interval_(interval), thread_([this] { Loop(); }) {}

AutoRelease::~AutoRelease() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void AutoRelease::Loop() {
  std::string last;
  std::string last_witness;  // the last periodic witness's outcome, logged when it changes
  std::chrono::steady_clock::time_point witness_due{};
  std::optional<ApplianceIdentity> halted;   // the core an integrity failure stopped us on
  std::optional<ApplianceIdentity> counted;  // the core that holds our partial, still sealed
  for (;;) {
    if (halted) {
      // Nothing is retried against the same core and custody: only a restart of the core (new
      // pk_E) or a custody update can change the outcome.
      auto probe = ProbeAppliance(options_);
      if (probe.ok() && !(*probe == *halted)) {
        halted.reset();
        last.clear();
        LogLine({{"level", "info"}, {"component", "auto-release"}, {"appliance", options_.server_url},
                 {"msg", "the appliance's core or custody changed; releasing again"}});
      }
    }
    if (counted) {
      // The core keeps our verified partial for its life (until a custody update): while the
      // same core is sealed under the same custody, another handshake would only cost it
      // evidence. A status read tells whether anything changed.
      auto probe = ProbeAppliance(options_);
      if (probe.ok() && *probe == *counted && probe->sealed && !probe->unseal_failed) {
        std::unique_lock<std::mutex> lock(mu_);
        if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
        continue;
      }
      counted.reset();
    }
    if (halted) {
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
      continue;
    }
    // The same refusal repeated every interval is recorded once, not once per attempt.
    ReleaseOptions o = options_;
    o.audit_refusals = last.rfind("error: ", 0) != 0;
    ApplianceIdentity seen;
    StatusOr<ReleaseOutcome> r = ReleaseToAppliance(store_, o, &seen);
    std::string now;
    json line = {{"component", "auto-release"}, {"appliance", options_.server_url}};
    if (!r.ok() && r.status().code() == ErrorCode::kIntegrity && !seen.enclave_key.empty()) {
      halted = seen;
      line["level"] = "error";
      line["msg"] = "release stopped: integrity failure; not retrying until the appliance's core restarts "
                    "or its custody changes";
      line["reason"] = r.status().message();
      line["enclave_key"] = seen.enclave_key;
      LogLine(line);
      last = "halted";
      std::unique_lock<std::mutex> lock(mu_);
      if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
      continue;
    }
    if (!r.ok()) {
      now = "error: " + r.status().message();
      line["level"] = "warn";
      line["msg"] = "release refused or failed";
      line["reason"] = r.status().message();
    } else if (r->released) {
      now = "released";
      line["level"] = "info";
      line["msg"] = r->unsealed ? "partial released; appliance unsealed" : "partial released; appliance still sealed";
      line["measurement"] = r->measurement;
      if (r->custody_updated) line["custody_updated"] = true;
    } else {
      now = r->unsealed ? "unsealed" : "waiting";
      line["level"] = "info";
      line["msg"] = r->unsealed ? "appliance is unsealed" : "already contributed; waiting for the other keepers";
    }
    if (r.ok() && !r->unsealed && !seen.enclave_key.empty()) counted = seen;
    // While it serves, the appliance's audit chain is witnessed on a period, so that a later
    // rollback is caught against a recent head (and at the next release, refused).
    if (r.ok() && r->unsealed && options_.witness && options_.witness_interval.count() > 0 &&
        std::chrono::steady_clock::now() >= witness_due) {
      witness_due = std::chrono::steady_clock::now() + options_.witness_interval;
      StatusOr<WitnessOutcome> w = WitnessAppliance(store_, options_.server_url, options_.ca_file);
      json wl = {{"component", "auto-release"}, {"appliance", options_.server_url}};
      std::string outcome;
      if (w.ok()) {
        outcome = "ok";
        wl["level"] = "info";
        wl["msg"] = "audit chain witnessed";
        wl["log"] = w->log;
        wl["seq"] = w->seq;
      } else {
        outcome = w.status().message();
        wl["level"] = w.status().code() == ErrorCode::kIntegrity ? "error" : "warn";
        wl["msg"] = "audit chain witness failed";
        wl["reason"] = w.status().message();
      }
      if (outcome != last_witness || (w.ok() && w->advanced && w->first_sight)) LogLine(wl);
      last_witness = outcome;
    }
    if (now != last || (r.ok() && r->released)) LogLine(line);
    last = now;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
  }
}

}  // namespace custos::keeper
