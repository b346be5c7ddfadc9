// The keeper's side of quorum unseal (DESIGN.md "Unseal"; docs/protocol.md "Quorum unseal"):
// `custos keeper release` and `custos keeper serve --auto-release`. The keeper
//   1. reads the appliance's public status and checks it serves this keeper's custody; an
//      appliance still on an older descriptor of the same joint key (after a reshare) is handed
//      this keeper's descriptor first (POST /v1/sys/custody; the core verifies it);
//   2. runs SIGMA-I as initiator (sigma/sigma.h): the enclave's evidence must verify (DCAP with
//      collateral, or sim), satisfy the keeper's attestation policy, and bind this session
//      (g^y, pk_E, nonce_K, custody fingerprint) through its report_data;
//   2a. (before the handshake) witnesses the appliance's audit chain (keeper/daemon/witness.h):
//      a chain that went backwards or forked since this keeper last saw it refuses the release;
//   3. on the enclave's unseal request, appends the release to its own audit log (durably,
//      before anything leaves), then sends D_i = x_i*R with its DLEQ proof over the channel.
// Every refusal is also recorded in the audit log ("enclave.refused") with the failed check.
#pragma once

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "protocol/attestation/dcap.h"
#include "keeper/daemon/fault_injection.h"
#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"
#include "protocol/custody/custody.h"

namespace custos::keeper {

// ReleaseOptions is what one release needs besides the keeper's own store.
struct ReleaseOptions {
  std::string server_url;                 // the appliance, e.g. http://127.0.0.1:8200
  attestation::AttestationPolicy policy;  // what this keeper accepts
  std::string collateral_json;            // DCAP collateral for quotes (empty for sim)
  std::string ca_file;                    // trusted CAs for an https appliance
  std::function<std::time_t()> now;      // clock for DCAP validity windows (default time())
  std::shared_ptr<const Misbehaviour> misbehaviour;  // fault injection (tests only): null in production
  bool audit_refusals = true;             // record refused evidence as "enclave.refused"
  // Witness the appliance's audit chain (keeper/daemon/witness.h) before releasing to a sealed
  // appliance; a rollback or fork refuses the release. AutoRelease also witnesses every
  // witness_interval while the appliance serves (0: at releases only).
  bool witness = true;
  std::chrono::milliseconds witness_interval{60'000};
  // Measurement approvals (custody/approval.h, the JSON text of each file): evidence of a
  // measurement the policy does not list is accepted when one of them approves exactly that tee
  // and measurement for this keeper's custody, signed by t_p provider AND t_c customer keepers
  // and not expired (a rolling upgrade's new build, docs/operations.md "Upgrades"). Every other
  // policy check still applies.
  std::vector<std::string> approvals;
};

// ReleaseOutcome says what happened.
struct ReleaseOutcome {
  bool released = false;   // this keeper's partial was sent and accepted
  bool unsealed = false;   // the enclave reports it is unsealed
  uint16_t provider = 0;   // verified provider partials so far (while sealed)
  uint16_t customer = 0;   // verified customer partials so far (while sealed)
  std::string measurement; // hex measurement of the enclave released to
  bool custody_updated = false;  // the appliance was handed this keeper's newer descriptor
};

// ApplianceIdentity is what a release saw of the appliance before any handshake: the core's
// pk_E (fresh per core process) and the custody it serves. Empty when it was not reached.
struct ApplianceIdentity {
  std::string enclave_key, custody;
  bool sealed = true;          // as the status said; not part of the identity
  bool unseal_failed = false;  // the status carried unseal_error; not part of the identity
  bool operator==(const ApplianceIdentity& o) const { return enclave_key == o.enclave_key && custody == o.custody; }
};

// CheckEnclaveEvidence is the keeper's evidence check inside SIGMA: the evidence verifies (sim,
// or DCAP against options.collateral_json at options.now), satisfies options.policy, and its
// report_data binds `expected_report_data` (32 bytes, zero-padded in the 64-byte field), in
// that order. Fills `verdict` as far as verification got.
// With `custody` given, options.approvals can admit a measurement the policy does not list.
Status CheckEnclaveEvidence(ByteSpan evidence, ByteSpan expected_report_data,
                            const ReleaseOptions& options, attestation::DcapVerdict* verdict,
                            const custody::CustodyDescriptor* custody = nullptr);

// ReleaseToAppliance runs one release. Refusals: kFailedPrecondition (the appliance serves
// another custody, or this keeper holds no share), the verifier's error prefixed
// "sigma: evidence refused: " (policy, collateral, report_data), the enclave's error for a
// refused partial, kUnavailable when the appliance cannot be reached.
// It is idempotent: against an unsealed appliance, or one that already counted this keeper's
// partial in its current (sealed) life, it releases nothing.
// `seen`, if given, receives the appliance's identity as its status reported it.
StatusOr<ReleaseOutcome> ReleaseToAppliance(KeeperStore& store, const ReleaseOptions& options,
                                            ApplianceIdentity* seen = nullptr);

// ProbeAppliance reads the appliance's status (no handshake, nothing audited).
StatusOr<ApplianceIdentity> ProbeAppliance(const ReleaseOptions& options);

// AutoRelease runs ReleaseToAppliance every `interval` in a background thread, so a restarted
// (sealed) appliance is unsealed again as soon as enough keepers have verified it
// (`custos keeper serve --auto-release URL`). Outcome changes are logged to stderr as JSON.
// An integrity failure (the envelope does not open with verified partials, its origin evidence
// names another custody, the evidence does not bind the session, ...) will not go away by
// retrying: auto-release stops releasing to that core and logs the cause once, and resumes
// only when the appliance's core or custody changes (a restart, a custody update).
class AutoRelease {
 public:
  AutoRelease(KeeperStore& store, ReleaseOptions options, std::chrono::milliseconds interval);
  ~AutoRelease();  // stops and joins the thread
  AutoRelease(const AutoRelease&) = delete;
  AutoRelease& operator=(const AutoRelease&) = delete;

 private:
  void Loop();
  KeeperStore& store_;
  ReleaseOptions options_;
  std::chrono::milliseconds interval_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace custos::keeper
