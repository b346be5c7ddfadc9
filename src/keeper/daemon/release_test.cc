// The keeper's evidence check (release.h) against real Intel quotes and sim evidence: the
// refusals a keeper must make before it releases anything. The full release with real
// processes is in tests/e2e/appliance_test.cc.
#include "keeper/daemon/release.h"

#include "protocol/attestation/sim_evidence.h"
#include "protocol/custody/approval.h"
#include "common/file.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "protocol/sigma/sigma.h"
#include "tests/testing/testing.h"

namespace custos::keeper {
namespace {

using ::testing::HasSubstr;

ReleaseOptions DcapOptions(const std::string& name, const std::string& at) {
  ReleaseOptions o;
  auto c = ReadFileString(testing::SharedTestdata("dcap/" + name + "_collateral.json"));
  EXPECT_TRUE(c.ok());
  o.collateral_json = c.ok() ? *c : "";
  std::time_t t = *attestation::ParseRfc3339Utc(at);
  o.now = [t] { return t; };
  return o;
}

TEST(KeeperEvidenceCheck, RefusesUnacceptedTcbStatusThenUnboundReportData) {
  auto quote = ReadFileBytes(testing::SharedTestdata("dcap/sgx_quote"));
  ASSERT_OK(quote.status());
  Bytes expected = crypto::RandomBytes(32);
  attestation::DcapVerdict v;
  // Default policy accepts only UpToDate; this genuine quote's platform is not.
  ReleaseOptions o = DcapOptions("sgx_quote", "2025-06-20T00:00:00Z");
  EXPECT_THAT(CheckEnclaveEvidence(*quote, expected, o, &v).message(),
              HasSubstr("TCB status ConfigurationAndSWHardeningNeeded not accepted"));
  EXPECT_EQ(v.tee, "sgx");  // verification itself succeeded
  // Accepting that status, the quote still does not bind this session's report_data.
  o.policy.accepted_tcb_statuses = {"ConfigurationAndSWHardeningNeeded"};
  EXPECT_THAT(CheckEnclaveEvidence(*quote, expected, o, &v).message(),
              HasSubstr("does not bind this session"));
  // Outside the collateral's validity window, verification fails first.
  ReleaseOptions late = DcapOptions("sgx_quote", "2026-06-20T00:00:00Z");
  late.policy = o.policy;
  EXPECT_FALSE(CheckEnclaveEvidence(*quote, expected, late, &v).ok());
  // Without collateral a quote cannot be checked at all.
  o.collateral_json.clear();
  EXPECT_THAT(CheckEnclaveEvidence(*quote, expected, o, &v).message(), HasSubstr("collateral"));
}

TEST(KeeperEvidenceCheck, SimEvidenceNeedsPolicyMeasurementNoDebugAndBinding) {
  auto platform = attestation::SimPlatform::LoadOrCreate(testing::TempDir() + "/sim");
  ASSERT_OK(platform.status());
  Bytes measurement = crypto::RandomBytes(32), rd = crypto::RandomBytes(32);
  auto make = [&](bool debug) {
    attestation::SimIdentity id;
    id.debug = debug;
    return *platform->MakeEvidence(measurement, id, sigma::ReportDataField(rd));
  };
  ReleaseOptions o;
  attestation::DcapVerdict v;
  EXPECT_THAT(CheckEnclaveEvidence(make(false), rd, o, &v).message(), HasSubstr("sim evidence not allowed"));
  o.policy.allow_sim = true;
  o.policy.allowed_measurements = {crypto::RandomBytes(32)};
  EXPECT_THAT(CheckEnclaveEvidence(make(false), rd, o, &v).message(), HasSubstr("measurement not allowed"));
  o.policy.allowed_measurements = {measurement};
  o.policy.allowed_signers = {platform->signer()};
  EXPECT_OK(CheckEnclaveEvidence(make(false), rd, o, &v));
  EXPECT_THAT(CheckEnclaveEvidence(make(true), rd, o, &v).message(), HasSubstr("debug"));
  EXPECT_THAT(CheckEnclaveEvidence(make(false), crypto::RandomBytes(32), o, &v).message(),
              HasSubstr("does not bind this session"));
  Bytes tampered = make(false);
  tampered[100] ^= 1;  // inside report_data
  EXPECT_FALSE(CheckEnclaveEvidence(tampered, rd, o, &v).ok());
}

// A both-domain measurement approval (custody/approval.h) admits exactly the approved build,
// for this custody, until it expires; one domain alone, another measurement, another custody or
// an expired approval does not, and the rest of the policy still applies.
TEST(KeeperEvidenceCheck, QuorumApprovalAdmitsANewBuild) {
  auto platform = attestation::SimPlatform::LoadOrCreate(testing::TempDir() + "/sim");
  ASSERT_OK(platform.status());
  Bytes old_build = crypto::RandomBytes(32), new_build = crypto::RandomBytes(32), rd = crypto::RandomBytes(32);
  auto evidence = [&](const Bytes& m, bool debug = false) {
    attestation::SimIdentity id;
    id.debug = debug;
    return *platform->MakeEvidence(m, id, sigma::ReportDataField(rd));
  };
  // The custody: P1 (1-of-1) and C1..C3 (2-of-3); only ids, domains, identity keys and
  // thresholds matter to an approval.
  using crypto::Point;
  using crypto::Scalar;
  crypto::SigningKey p1 = crypto::SigningKey::Generate(), c1 = crypto::SigningKey::Generate(),
                     c2 = crypto::SigningKey::Generate(), c3 = crypto::SigningKey::Generate();
  auto record = [](const std::string& id, custody::Domain d, uint32_t i, const crypto::SigningKey& k) {
    return custody::KeeperRecord{id, d, i, "", k.verifying_key().point(), Point::BaseMul(Scalar::Random()),
                                 Point::BaseMul(Scalar::Random()), {}};
  };
  custody::CustodyDescriptor custody;
  custody.provider = {1, Point::BaseMul(Scalar::Random()), {record("P1", custody::Domain::kProvider, 1, p1)}};
  custody.customer = {2, Point::BaseMul(Scalar::Random()),
                      {record("C1", custody::Domain::kCustomer, 1, c1), record("C2", custody::Domain::kCustomer, 2, c2),
                       record("C3", custody::Domain::kCustomer, 3, c3)}};
  custody.public_key = custody.provider.public_key + custody.customer.public_key;
  std::time_t now = 1'800'000'000;  // not const: clang would find the capture below unneeded
  auto approval = [&](const Bytes& m, bool customers, std::time_t not_after = 1'800'003'600) {
    custody::MeasurementApproval a;
    a.joint_key = custody.public_key;
    a.tee = "sim";
    a.measurement = m;
    a.not_after = not_after;
    a.Sign("P1", p1);
    if (customers) {
      a.Sign("C1", c1);
      a.Sign("C3", c3);
    }
    return a.ToJsonString();
  };
  ReleaseOptions o;
  o.now = [now] { return now; };
  o.policy.allow_sim = true;
  o.policy.allowed_measurements = {old_build};
  o.policy.allowed_signers = {platform->signer()};
  attestation::DcapVerdict v;
  EXPECT_OK(CheckEnclaveEvidence(evidence(old_build), rd, o, &v, &custody));
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build), rd, o, &v, &custody).message(),
              HasSubstr("measurement not allowed"));
  // The provider alone: refused, and the refusal says why the approval did not count.
  o.approvals = {approval(new_build, false)};
  Status one = CheckEnclaveEvidence(evidence(new_build), rd, o, &v, &custody);
  EXPECT_THAT(one.message(), HasSubstr("measurement not allowed"));
  EXPECT_THAT(one.message(), HasSubstr("customer 0 of 2 needed: both domains must approve"));
  // Both domains: admitted; the debug rule and the session binding still apply.
  o.approvals = {approval(crypto::RandomBytes(32), true), approval(new_build, true)};
  EXPECT_OK(CheckEnclaveEvidence(evidence(new_build), rd, o, &v, &custody));
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build, true), rd, o, &v, &custody).message(), HasSubstr("debug"));
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build), crypto::RandomBytes(32), o, &v, &custody).message(),
              HasSubstr("does not bind this session"));
  // A third build is not admitted by it; nor without the custody to check it against.
  EXPECT_THAT(CheckEnclaveEvidence(evidence(crypto::RandomBytes(32)), rd, o, &v, &custody).message(),
              HasSubstr("measurement not allowed"));
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build), rd, o, &v).message(), HasSubstr("measurement not allowed"));
  // Expired, or for another custody.
  o.approvals = {approval(new_build, true, now - 1)};
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build), rd, o, &v, &custody).message(), HasSubstr("expired"));
  custody::CustodyDescriptor other = custody;
  other.public_key = Point::BaseMul(Scalar::Random());
  o.approvals = {approval(new_build, true)};
  EXPECT_THAT(CheckEnclaveEvidence(evidence(new_build), rd, o, &v, &other).message(),
              HasSubstr("measurement not allowed"));
}

}  // namespace
}  // namespace custos::keeper
