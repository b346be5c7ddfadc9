// The keeper's evidence check (release.h) against real Intel quotes and sim evidence: the
// refusals a keeper must make before it releases anything. The full release with real
// processes is in tests/e2e/appliance_test.cc.
#include "keeper/daemon/release.h"

#include "protocol/attestation/sim_evidence.h"
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

}  // namespace
}  // namespace custos::keeper
