#include "keeper/release.h"

#include <iostream>
#include <mutex>

#include "attestation/evidence.h"
#include "crypto/hash.h"
#include "net/http_client.h"
#include "net/json_fields.h"
#include "sigma/release.h"
#include "sigma/sigma.h"

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

StatusOr<ReleaseOutcome> Run(KeeperStore& store, const ReleaseOptions& o, Seen& seen) {
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
  ASSIGN_OR_RETURN(json status, net::DecodeJsonResponse(client.Get("/v1/sys/status"), peer));
  if (status.value("custody", "") != custody.FingerprintHex())
    return FailedPrecondition("appliance serves custody " + status.value("custody", std::string("(none)")) +
                              ", this keeper serves " + custody.FingerprintHex());
  ReleaseOutcome out;
  if (!status.value("sealed", true)) {
    out.unsealed = true;  // nothing to release
    return out;
  }
  for (const json& c : status.value("contributors", json::array()))
    if (c.is_object() && c.value("keeper", "") == store.id()) return out;  // already counted

  sigma::InitiatorConfig cfg;
  cfg.keeper_id = store.id();
  cfg.custody_hash = fp;
  cfg.verify_evidence = [&](ByteSpan evidence, ByteSpan expected) -> Status {
    seen.evidence.assign(evidence.begin(), evidence.end());
    return CheckEnclaveEvidence(evidence, expected, o, &seen.verdict);
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
  if (o.bad_partial) partial.d = partial.d + crypto::Point::Generator();
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
                            const ReleaseOptions& o, attestation::DcapVerdict* verdict) {
  std::time_t now = o.now ? o.now() : std::time(nullptr);
  ASSIGN_OR_RETURN(*verdict, attestation::VerifyEvidence(evidence, o.collateral_json, now));
  RETURN_IF_ERROR(attestation::CheckPolicy(*verdict, o.policy));
  return sigma::CheckReportData(verdict->report_data, expected_report_data);
}

StatusOr<ReleaseOutcome> ReleaseToAppliance(KeeperStore& store, const ReleaseOptions& options) {
  Seen seen;
  StatusOr<ReleaseOutcome> out = Run(store, options, seen);
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
  for (;;) {
    // The same refusal repeated every interval is recorded once, not once per attempt.
    ReleaseOptions o = options_;
    o.audit_refusals = last.rfind("error: ", 0) != 0;
    StatusOr<ReleaseOutcome> r = ReleaseToAppliance(store_, o);
    std::string now;
    json line = {{"component", "auto-release"}, {"appliance", options_.server_url}};
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
    } else {
      now = r->unsealed ? "unsealed" : "waiting";
      line["level"] = "info";
      line["msg"] = r->unsealed ? "appliance is unsealed" : "already contributed; waiting for the other keepers";
    }
    if (now != last || (r.ok() && r->released)) std::cerr << line.dump() << std::endl;
    last = now;
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, interval_, [this] { return stopping_; })) return;
  }
}

}  // namespace custos::keeper
