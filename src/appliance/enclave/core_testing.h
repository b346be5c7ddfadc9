// Test helpers shared by the trusted core's tests (core_test.cc, kms_ops_test.cc): a custody
// dealt in the clear, keepers that release partials over real SIGMA sessions, and a fixture that
// makes sim-backed cores. Test-only; never linked into the core.
#pragma once

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "protocol/attestation/evidence.h"
#include "crypto/random.h"
#include "appliance/enclave/core.h"
#include "protocol/envelope/dual_control.h"
#include "gtest/gtest.h"
#include "protocol/sigma/release.h"
#include "tests/testing/testing.h"
#include "protocol/threshold/shamir.h"

namespace custos::enclave::coretest {

using crypto::Point;
using crypto::Scalar;
using custody::Domain;

// TestKeeper is one keeper of the test custody: its share and identity key.
struct TestKeeper {
  std::string id;
  Domain domain;
  uint32_t index;
  Scalar share;
  crypto::SigningKey identity = crypto::SigningKey::Generate();

  TestKeeper(std::string id_, Domain domain_, uint32_t index_, Scalar share_)
      : id(std::move(id_)), domain(domain_), index(index_), share(std::move(share_)) {}
  // Copies keep the identity key (a keeper that stays through a reshare keeps it).
  TestKeeper(const TestKeeper& o)
      : id(o.id), domain(o.domain), index(o.index), share(o.share),
        identity(std::move(crypto::SigningKey::FromScalarBytes(o.identity.ToScalarBytes())).value()) {}
};

// A custody of 1 provider (t=1) and 3 customers (t=2), dealt in the clear for the test.
struct Custody {
  std::vector<TestKeeper> keepers;
  custody::CustodyDescriptor d;
  std::string json;
  Scalar xp = Scalar::Random(), xc = Scalar::Random();
  Custody() {
    keepers.push_back({"P1", Domain::kProvider, 1, xp});
    auto poly = threshold::Polynomial::Random(xc, 1);
    for (uint32_t i = 1; i <= 3; ++i)
      keepers.push_back({"C" + std::to_string(i), Domain::kCustomer, i, poly.Evaluate(i)});
    d.ceremony_id = crypto::RandomBytes(16);
    d.provider.threshold = 1;
    d.provider.public_key = Point::BaseMul(xp);
    d.customer.threshold = 2;
    d.customer.public_key = Point::BaseMul(xc);
    for (const TestKeeper& k : keepers) d.domain(k.domain).keepers.push_back(Record(k));
    d.public_key = d.provider.public_key + d.customer.public_key;
    Sign();
  }

  // Successor is this custody after a reshare of `domain` to `n` fresh keepers named
  // PREFIX1..PREFIXn with threshold `t` (same secret, so the same Y): epoch + 1, previous =
  // this fingerprint, the other domain unchanged.
  Custody Successor(Domain domain, uint32_t n, uint32_t t, const std::string& prefix) const {
    Custody next = *this;
    next.keepers.clear();
    for (const TestKeeper& k : keepers)
      if (k.domain != domain) next.keepers.push_back(k);
    auto poly = threshold::Polynomial::Random(domain == Domain::kProvider ? xp : xc, t - 1);
    custody::DomainRecord& dom = next.d.domain(domain);
    dom.threshold = t;
    dom.keepers.clear();
    for (uint32_t i = 1; i <= n; ++i) {
      next.keepers.push_back({prefix + std::to_string(i), domain, i, poly.Evaluate(i)});
      dom.keepers.push_back(Record(next.keepers.back()));
    }
    next.d.epoch = d.epoch + 1;
    next.d.previous = d.Fingerprint();
    next.d.ceremony_id = crypto::RandomBytes(16);
    next.Sign();
    return next;
  }

 private:
  static custody::KeeperRecord Record(const TestKeeper& k) {
    return {k.id, k.domain, k.index, "http://127.0.0.1:1", k.identity.verifying_key().point(),
            Point::BaseMul(Scalar::Random()), Point::BaseMul(k.share),
            custody::ProvePossession(k.share, k.id, k.domain, k.index)};
  }
  void Sign() {
    d.signatures.clear();
    for (const TestKeeper& k : keepers) d.signatures[k.id] = k.identity.Sign(d.SignatureMessage());
    json = d.ToJsonString();
  }
};

// Call runs one call through the byte encoding, as the host does.
inline StatusOr<std::vector<Bytes>> Call(EnclaveCore& core, ecall::Call call,
                                         std::vector<Bytes> args) {
  auto resp = ecall::Response::Decode(core.Handle(ecall::Request{call, std::move(args)}.Encode()));
  if (!resp.ok()) return resp.status();
  RETURN_IF_ERROR(resp->ToStatus());
  return resp->results;
}

// StatusOf returns the core's status JSON (no evidence).
inline nlohmann::json StatusOf(EnclaveCore& core) {
  auto r = Call(core, ecall::Call::kStatus, {Bytes{}});
  EXPECT_OK(r.status());
  return r.ok() ? nlohmann::json::parse(ToString((*r)[0])) : nlohmann::json{};
}

// CoreFixture makes sim-backed cores under one platform key and one custody.
class CoreFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir();
    auto platform = attestation::SimPlatform::LoadOrCreate(dir_ + "/sim");
    ASSERT_OK(platform.status());
    platform_ = std::make_unique<attestation::SimPlatform>(*platform);
    measurement_ = crypto::RandomBytes(32);
    policy_.allow_sim = true;
    policy_.accepted_tcb_statuses = {std::string(attestation::kSimTcbStatus)};
    policy_.allowed_measurements = {measurement_};
    policy_.allowed_signers = {platform_->signer()};
  }

  std::unique_ptr<EnclaveCore> NewCore(Bytes measurement = {}, bool debug = false) {
    attestation::SimIdentity ident;
    ident.debug = debug;
    auto tee = std::make_unique<attestation::SimBackend>(
        *platform_, measurement.empty() ? measurement_ : measurement, ident);
    CoreOptions o;
    o.tee = std::move(tee);
    auto core = EnclaveCore::Create(std::move(o));
    EXPECT_OK(core.status());
    return core.ok() ? std::move(*core) : nullptr;
  }

  // Release runs keeper `k`'s side against `core`: SIGMA, then its partial (corrupted when
  // `bad_proof`). Returns the progress the enclave reports, or the first refusal.
  StatusOr<sigma::UnsealProgress> Release(EnclaveCore& core, const TestKeeper& k,
                                          bool bad_proof = false, const Custody* custody = nullptr) {
    const Custody& cust = custody != nullptr ? *custody : custody_;
    sigma::InitiatorConfig cfg;
    cfg.keeper_id = k.id;
    cfg.custody_hash = cust.d.Fingerprint();
    cfg.verify_evidence = [this](ByteSpan evidence, ByteSpan expected) -> Status {
      ASSIGN_OR_RETURN(auto v, attestation::VerifySimEvidence(evidence));
      RETURN_IF_ERROR(attestation::CheckPolicy(v, policy_));
      return sigma::CheckReportData(v.report_data, expected);
    };
    sigma::SigmaInitiator init(k.identity, cfg);
    ASSIGN_OR_RETURN(Bytes m1, init.Start());
    ASSIGN_OR_RETURN(auto r2, Call(core, ecall::Call::kSigmaRespond, {m1}));
    ASSIGN_OR_RETURN(auto fin, init.Finish(r2[1]));
    ASSIGN_OR_RETURN(auto r3, Call(core, ecall::Call::kSigmaFinish, {r2[0], fin.message3}));
    ASSIGN_OR_RETURN(Bytes first, fin.channel.Open(r3[0]));
    if (first[0] == static_cast<uint8_t>(sigma::ReleaseRecord::kUnsealProgress))
      return sigma::UnsealProgress::Decode(first);
    ASSIGN_OR_RETURN(sigma::UnsealRequest req, sigma::UnsealRequest::Decode(first));
    const custody::KeeperRecord* me = cust.d.FindKeeper(k.id);
    if (me == nullptr) return NotFound("test keeper " + k.id + " is not in the custody");
    threshold::PartialDecryption p =
        threshold::ComputePartial(k.index, k.share, me->verification_key, req.r,
                                  sigma::UnsealProofContext(req.envelope_digest));
    if (bad_proof) p.d = p.d + Point::Generator();
    ASSIGN_OR_RETURN(Bytes rec, fin.channel.Seal(sigma::EncodePartialRelease(p)));
    ASSIGN_OR_RETURN(auto r4, Call(core, ecall::Call::kRecord, {r2[0], rec}));
    ASSIGN_OR_RETURN(Bytes answer, fin.channel.Open(r4[0]));
    return sigma::UnsealProgress::Decode(answer);
  }

  // Initialised returns a fresh sealed core loaded with an envelope made by another core.
  std::unique_ptr<EnclaveCore> InitAndReload(std::string* root_id) {
    auto first = NewCore();
    EXPECT_OK(Call(*first, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}})
                  .status());
    auto env = Call(*first, ecall::Call::kInit, {});
    EXPECT_OK(env.status());
    envelope_ = (*env)[0];
    origin_ = (*env)[1];
    *root_id = StatusOf(*first)["root_key_id"];
    auto core = NewCore();
    EXPECT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}})
                  .status());
    return core;
  }

  // Approve returns the measurement approval of `measurement` (sim) signed by `signers`.
  std::string Approve(ByteSpan measurement, const std::vector<std::string>& signers,
                      std::time_t not_after = std::time(nullptr) + 3600) {
    custody::MeasurementApproval a;
    a.joint_key = custody_.d.public_key;
    a.tee = "sim";
    a.measurement.assign(measurement.begin(), measurement.end());
    a.not_after = not_after;
    for (const std::string& id : signers) a.Sign(id, K(id).identity);
    return a.ToJsonString();
  }

  // RawJoin plays a joining core's host AND core against `peer`, as a compromised joiner
  // could: SIGMA as initiator, then a join request with evidence for `measurement` bound to
  // the session and `approval` as given (no check of its own). Returns the peer's answer to
  // the request: OK means it granted the root key.
  Status RawJoin(EnclaveCore& peer, ByteSpan measurement, const std::string& approval) {
    crypto::SigningKey identity = crypto::SigningKey::Generate();
    sigma::InitiatorConfig cfg;
    cfg.keeper_id = std::string(sigma::kJoinPeerId);
    cfg.custody_hash = custody_.d.Fingerprint();
    cfg.verify_evidence = [](ByteSpan, ByteSpan) { return Status::Ok(); };
    sigma::SigmaInitiator init(identity, cfg);
    ASSIGN_OR_RETURN(Bytes m1, init.Start());
    ASSIGN_OR_RETURN(auto r2, Call(peer, ecall::Call::kSigmaRespond, {m1}));
    ASSIGN_OR_RETURN(auto fin, init.Finish(r2[1]));
    ASSIGN_OR_RETURN(auto r3, Call(peer, ecall::Call::kSigmaFinish, {r2[0], fin.message3}));
    Bytes rd = sigma::JoinReportData(identity.verifying_key().point(), m1, r2[1]);
    ASSIGN_OR_RETURN(Bytes evidence,
                     platform_->MakeEvidence(measurement, attestation::SimIdentity{}, sigma::ReportDataField(rd)));
    sigma::JoinRequest req{evidence, {}, ToBytes(approval)};
    ASSIGN_OR_RETURN(Bytes rec, fin.channel.Seal(req.Encode()));
    return Call(peer, ecall::Call::kRecord, {r2[0], rec}).status();
  }

  const TestKeeper& K(const std::string& id) {
    for (const TestKeeper& k : custody_.keepers)
      if (k.id == id) return k;
    throw std::runtime_error("no keeper");
  }

  std::string dir_;
  std::unique_ptr<attestation::SimPlatform> platform_;
  Bytes measurement_;
  attestation::AttestationPolicy policy_;
  Custody custody_;
  Bytes envelope_;
  Bytes origin_;
};

// Join drives node `joiner` through node `peer` as the two hosts would; `approval` is the
// joiner's measurement approval ([cluster] approval), if any.
inline Status Join(EnclaveCore& joiner, EnclaveCore& peer, const Bytes& approval = {}) {
  ASSIGN_OR_RETURN(auto s1, Call(joiner, ecall::Call::kJoinStart, {approval}));
  ASSIGN_OR_RETURN(auto p2, Call(peer, ecall::Call::kSigmaRespond, {s1[1]}));
  ASSIGN_OR_RETURN(auto s3, Call(joiner, ecall::Call::kJoinFinish, {s1[0], p2[1], Bytes{}}));
  ASSIGN_OR_RETURN(auto p4, Call(peer, ecall::Call::kSigmaFinish, {p2[0], s3[0]}));
  if (!p4[0].empty()) return InternalError("peer sent an unexpected first record");
  ASSIGN_OR_RETURN(auto p5, Call(peer, ecall::Call::kRecord, {p2[0], s3[1]}));
  return Call(joiner, ecall::Call::kJoinComplete, {s1[0], p5[0]}).status();
}

}  // namespace custos::enclave::coretest

namespace custos::enclave {
using coretest::Call;
using coretest::CoreFixture;
using coretest::Custody;
using coretest::Join;
using coretest::StatusOf;
using coretest::TestKeeper;
}  // namespace custos::enclave
