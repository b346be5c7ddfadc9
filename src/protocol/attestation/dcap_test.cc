// Tests of the DCAP verifier against real Intel collateral (../shared/testdata/dcap, from the
// dcap-qvl project): both genuine quotes are accepted with their known TCB verdicts, and every
// alteration of the quote, the collateral, the time or the policy is refused naming the check.
#include "protocol/attestation/dcap.h"
#include "protocol/attestation/evidence.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <functional>
#include <nlohmann/json.hpp>

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

// Region of a quote, with the check a flipped byte there must trip (empty: any refusal).
struct Region {
  const char* name;
  size_t begin, end;
  const char* check;
};

// Under AddressSanitizer a verification costs ~10x more; the sanitized run samples 5x fewer
// interior offsets (the release run of the same test covers the full stride).
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kSanitizerStride = 5;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr size_t kSanitizerStride = 5;
#else
constexpr size_t kSanitizerStride = 1;
#endif
#else
constexpr size_t kSanitizerStride = 1;
#endif

void ExpectEveryFlipRefused(const Vector& v, const std::vector<Region>& regions) {
  size_t covered = 0;
  for (const Region& r : regions) {
    ASSERT_LE(r.end, v.quote.size()) << r.name;
    ASSERT_EQ(r.begin, covered) << "regions must tile the quote, at " << r.name;
    covered = r.end;
    // The first and last byte of every region, and every 7th byte in between.
    std::vector<size_t> offsets = {r.begin, r.end - 1};
    for (size_t o = r.begin + 3; o < r.end; o += 7 * kSanitizerStride) offsets.push_back(o);
    for (size_t off : offsets) {
      Bytes q = v.quote;
      q[off] ^= 0x01;
      auto verdict = VerifyDcapQuote(q, v.collateral, v.at);
      ASSERT_FALSE(verdict.ok()) << "flip at " << off << " in " << r.name << " accepted";
      if (*r.check != 0) {
        EXPECT_THAT(verdict.status().message(), HasSubstr(r.check))
            << "flip at " << off << " in " << r.name;
      }
    }
  }
  EXPECT_EQ(covered, v.quote.size());
}

TEST(DcapTest, SgxQuoteFlippedByteAnywhereIsRefused) {
  Vector v = Load("sgx_quote");
  ExpectEveryFlipRefused(v, {
                                {"header", 0, 48, ""},
                                {"report body", 48, 432, "quote signature"},
                                {"signature data length", 432, 436, ""},
                                {"quote signature", 436, 500, "quote signature"},
                                {"attestation key", 500, 564, ""},
                                {"QE report", 564, 948, "QE report"},
                                {"QE report signature", 948, 1012, "QE report signature"},
                                {"QE auth data size", 1012, 1014, ""},
                                {"QE auth data", 1014, 1046, "QE report_data"},
                                {"certification data type and size", 1046, 1052, ""},
                                {"PCK chain", 1052, 4600, "PCK certificate chain"},
                            });
}

TEST(DcapTest, TdxQuoteFlippedByteAnywhereIsRefused) {
  Vector v = Load("tdx_quote");
  ExpectEveryFlipRefused(v, {
                                {"header", 0, 48, ""},
                                {"TD report body", 48, 632, "quote signature"},
                                {"signature data length", 632, 636, ""},
                                {"quote signature", 636, 700, "quote signature"},
                                {"attestation key", 700, 764, ""},
                                {"QE report certification data type and size", 764, 770, ""},
                                {"QE report", 770, 1154, "QE report"},
                                {"QE report signature", 1154, 1218, "QE report signature"},
                                {"QE auth data size", 1218, 1220, ""},
                                {"QE auth data", 1220, 1252, "QE report_data"},
                                {"certification data type and size", 1252, 1258, ""},
                                {"PCK chain", 1258, 4936, "PCK certificate chain"},
                                {"zero padding", 4936, 5006, "non-zero bytes after"},
                            });
}

// Flips bytes across one collateral field and expects each flip refused naming `check`.
template <typename Field>
void ExpectFieldFlipsRefused(const Vector& v, Field DcapCollateral::*field, const char* check) {
  const size_t size = (v.collateral.*field).size();
  ASSERT_GT(size, 0u);
  std::vector<size_t> offsets = {0, size - 1};
  for (size_t o = 1; o < size; o += 11 * kSanitizerStride) offsets.push_back(o);
  for (size_t off : offsets) {
    DcapCollateral c = v.collateral;
    (c.*field)[off] ^= 0x01;
    auto verdict = VerifyDcapQuote(v.quote, c, v.at);
    ASSERT_FALSE(verdict.ok()) << check << ": flip at " << off << " accepted";
    EXPECT_THAT(verdict.status().message(), HasSubstr(check)) << "flip at " << off;
  }
}

class DcapCollateralTest : public ::testing::TestWithParam<const char*> {};

TEST_P(DcapCollateralTest, FlippedByteInEachFieldIsRefused) {
  Vector v = Load(GetParam());
  ExpectFieldFlipsRefused(v, &DcapCollateral::pck_crl_issuer_chain, "PCK CRL");
  ExpectFieldFlipsRefused(v, &DcapCollateral::root_ca_crl, "root CA CRL");
  ExpectFieldFlipsRefused(v, &DcapCollateral::pck_crl, "PCK CRL");
  ExpectFieldFlipsRefused(v, &DcapCollateral::tcb_info_issuer_chain, "TCB info issuer chain");
  ExpectFieldFlipsRefused(v, &DcapCollateral::tcb_info, "TCB info: signature");
  ExpectFieldFlipsRefused(v, &DcapCollateral::tcb_info_signature, "TCB info: signature");
  ExpectFieldFlipsRefused(v, &DcapCollateral::qe_identity_issuer_chain, "QE identity issuer chain");
  ExpectFieldFlipsRefused(v, &DcapCollateral::qe_identity, "QE identity: signature");
  ExpectFieldFlipsRefused(v, &DcapCollateral::qe_identity_signature, "QE identity: signature");
}

TEST_P(DcapCollateralTest, SwappedCrlsAreRefused) {
  Vector v = Load(GetParam());
  std::swap(v.collateral.root_ca_crl, v.collateral.pck_crl);
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, v.at);
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(), HasSubstr("root CA CRL"));
}

TEST_P(DcapCollateralTest, TimePastTheValidityWindowIsRefused) {
  Vector v = Load(GetParam());
  auto late = VerifyDcapQuote(v.quote, v.collateral, *ParseRfc3339Utc("2025-08-01T00:00:00Z"));
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(late.status().message(), HasSubstr("expired"));
  auto early = VerifyDcapQuote(v.quote, v.collateral, *ParseRfc3339Utc("2025-06-19T09:00:00Z"));
  ASSERT_FALSE(early.ok());
  EXPECT_EQ(early.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("not yet valid"));
}

INSTANTIATE_TEST_SUITE_P(Quotes, DcapCollateralTest, ::testing::Values("sgx_quote", "tdx_quote"));

TEST(DcapTest, ExpiredQeIdentityIsNamed) {
  // The SGX QE identity's nextUpdate (10:01:18) comes before the PCK CRL's (10:23:18) and the
  // TCB info's (10:56:11).
  Vector v = Load("sgx_quote");
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, *ParseRfc3339Utc("2025-07-19T10:05:00Z"));
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(), HasSubstr("QE identity: expired"));
}

TEST(DcapTest, ExpiredPckCrlIsNamed) {
  Vector v = Load("tdx_quote");  // PCK CRL nextUpdate 10:00:35, before the others
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, *ParseRfc3339Utc("2025-07-19T10:05:00Z"));
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(), HasSubstr("CRL has expired"));
}

TEST(DcapTest, CollateralOfAnotherPlatformIsRefused) {
  Vector sgx = Load("sgx_quote");
  Vector tdx = Load("tdx_quote");
  EXPECT_FALSE(VerifyDcapQuote(sgx.quote, tdx.collateral, sgx.at).ok());
  EXPECT_FALSE(VerifyDcapQuote(tdx.quote, sgx.collateral, tdx.at).ok());
  // Right CRLs and chains, wrong TCB info / QE identity.
  DcapCollateral mixed = sgx.collateral;
  mixed.tcb_info = tdx.collateral.tcb_info;
  mixed.tcb_info_signature = tdx.collateral.tcb_info_signature;
  auto verdict = VerifyDcapQuote(sgx.quote, mixed, sgx.at);
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(), HasSubstr("TCB info"));
  mixed = sgx.collateral;
  mixed.qe_identity = tdx.collateral.qe_identity;
  mixed.qe_identity_signature = tdx.collateral.qe_identity_signature;
  verdict = VerifyDcapQuote(sgx.quote, mixed, sgx.at);
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(), HasSubstr("QE identity"));
}

TEST(DcapTest, PckChainWithoutItsCrlIsRefused) {
  // A PCK CRL (and issuer chain) that verify, but of the other PCK CA: the SGX PCK chain is
  // issued by the Processor CA, so without the Processor CA's CRL it must not verify.
  Vector sgx = Load("sgx_quote");
  Vector tdx = Load("tdx_quote");
  DcapCollateral c = sgx.collateral;
  c.pck_crl = tdx.collateral.pck_crl;
  c.pck_crl_issuer_chain = tdx.collateral.pck_crl_issuer_chain;
  auto verdict = VerifyDcapQuote(sgx.quote, c, sgx.at);
  ASSERT_FALSE(verdict.ok());
  EXPECT_THAT(verdict.status().message(),
              HasSubstr("PCK certificate chain: unable to get certificate CRL"));
}

TEST(DcapTest, MalformedQuotesAreRefused) {
  Vector v = Load("sgx_quote");
  for (size_t n : {size_t{0}, size_t{47}, size_t{48}, size_t{431}, size_t{436}, size_t{1051},
                   v.quote.size() - 1}) {
    Bytes q(v.quote.begin(), v.quote.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(ParseDcapQuote(q).ok()) << "truncated to " << n;
  }
  Bytes longer = v.quote;
  longer.push_back(1);
  EXPECT_FALSE(ParseDcapQuote(longer).ok());
  Bytes v4 = v.quote;
  v4[0] = 4;  // an SGX body under a v4 header
  EXPECT_FALSE(ParseDcapQuote(v4).ok());
}

TEST(DcapTest, ParseCollateralJsonRefusesBadInput) {
  EXPECT_FALSE(ParseCollateralJson("").ok());
  EXPECT_FALSE(ParseCollateralJson("[]").ok());
  EXPECT_FALSE(ParseCollateralJson("{}").ok());
  auto text = ReadFileString(testing::SharedTestdata("dcap/sgx_quote_collateral.json"));
  ASSERT_OK(text.status());
  nlohmann::json j = nlohmann::json::parse(*text);
  j["tcb_info_signature"] = "00";
  EXPECT_FALSE(ParseCollateralJson(j.dump()).ok());
  j = nlohmann::json::parse(*text);
  j["pck_crl"] = 5;
  EXPECT_FALSE(ParseCollateralJson(j.dump()).ok());
  j = nlohmann::json::parse(*text);
  j.erase("qe_identity");
  EXPECT_FALSE(ParseCollateralJson(j.dump()).ok());
}

TEST(DcapTest, Rfc3339) {
  EXPECT_EQ(*ParseRfc3339Utc("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(*ParseRfc3339Utc("2025-06-19T10:56:11Z"), 1750330571);
  EXPECT_EQ(*ParseRfc3339Utc("2025-06-19T10:56:11.250Z"), 1750330571);
  EXPECT_FALSE(ParseRfc3339Utc("2025-06-19T10:56:11+02:00").ok());
  EXPECT_FALSE(ParseRfc3339Utc("2025-06-19 10:56:11Z").ok());
  EXPECT_FALSE(ParseRfc3339Utc("2025-13-19T10:56:11Z").ok());
}

// ---------------------------------------------------------------------------------------------
// Policy

DcapVerdict SgxVerdict() {
  Vector v = Load("sgx_quote");
  auto verdict = VerifyDcapQuote(v.quote, v.collateral, v.at);
  EXPECT_TRUE(verdict.ok());
  return verdict.ok() ? *verdict : DcapVerdict{};
}

AttestationPolicy MatchingPolicy(const DcapVerdict& v) {
  AttestationPolicy p;
  p.allowed_measurements = {v.measurement};
  p.allowed_signers = {v.signer};
  p.product_id = v.product_id;
  p.min_svn = v.svn;
  p.accepted_tcb_statuses = {"UpToDate", "ConfigurationAndSWHardeningNeeded"};
  return p;
}

TEST(AttestationPolicyTest, MatchingPolicyAccepts) {
  DcapVerdict v = SgxVerdict();
  EXPECT_OK(CheckPolicy(v, MatchingPolicy(v)));
}

TEST(AttestationPolicyTest, EachMismatchIsNamed) {
  const DcapVerdict v = SgxVerdict();
  struct Case {
    const char* check;
    std::function<void(AttestationPolicy&, DcapVerdict&)> change;
  };
  const std::vector<Case> cases = {
      {"measurement",
       [](AttestationPolicy& p, DcapVerdict&) { p.allowed_measurements[0][0] ^= 1; }},
      {"signer", [](AttestationPolicy& p, DcapVerdict&) { p.allowed_signers[0][31] ^= 1; }},
      {"product id", [](AttestationPolicy& p, DcapVerdict& d) { p.product_id = d.product_id + 1; }},
      {"SVN", [](AttestationPolicy& p, DcapVerdict& d) { p.min_svn = d.svn + 1; }},
      {"debug", [](AttestationPolicy&, DcapVerdict& d) { d.debug = true; }},
      {"TCB status",
       [](AttestationPolicy& p, DcapVerdict&) { p.accepted_tcb_statuses = {"UpToDate"}; }},
      {"sim", [](AttestationPolicy&, DcapVerdict& d) { d.tee = "sim"; }},
  };
  for (const Case& c : cases) {
    AttestationPolicy p = MatchingPolicy(v);
    DcapVerdict d = v;
    c.change(p, d);
    Status st = CheckPolicy(d, p);
    ASSERT_FALSE(st.ok()) << c.check;
    EXPECT_EQ(st.code(), ErrorCode::kPermissionDenied);
    EXPECT_THAT(st.message(), HasSubstr(c.check));
  }
  AttestationPolicy debug_ok = MatchingPolicy(v);
  debug_ok.allow_debug = true;
  DcapVerdict d = v;
  d.debug = true;
  EXPECT_OK(CheckPolicy(d, debug_ok));
}

TEST(AttestationPolicyTest, DefaultPolicyAcceptsOnlyUpToDateNonDebug) {
  DcapVerdict v = SgxVerdict();
  EXPECT_FALSE(CheckPolicy(v, AttestationPolicy{}).ok());  // ConfigurationAndSWHardeningNeeded
  v.tcb_status = "UpToDate";
  EXPECT_OK(CheckPolicy(v, AttestationPolicy{}));
}

TEST(AttestationPolicyTest, ParsesJson) {
  DcapVerdict v = SgxVerdict();
  std::string text = R"({"measurements": [")" + HexEncode(v.measurement) + R"("], "signers": [")" +
                     HexEncode(v.signer) + R"("], "product_id": )" + std::to_string(v.product_id) +
                     R"(, "min_svn": )" + std::to_string(v.svn) +
                     R"(, "allow_debug": false, "allow_sim": false,
                         "tcb_statuses": ["UpToDate", "ConfigurationAndSWHardeningNeeded"]})";
  auto p = ParseAttestationPolicyJson(text);
  ASSERT_OK(p.status());
  EXPECT_OK(CheckPolicy(v, *p));
  EXPECT_EQ(p->product_id, v.product_id);
  auto defaults = ParseAttestationPolicyJson("{}");
  ASSERT_OK(defaults.status());
  EXPECT_FALSE(defaults->allow_debug);
  EXPECT_FALSE(defaults->allow_sim);
  EXPECT_EQ(defaults->accepted_tcb_statuses, std::vector<std::string>{"UpToDate"});
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"measurement": []})").ok());  // unknown key
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"measurements": ["zz"]})").ok());
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"min_svn": 70000})").ok());
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"min_svn": -1})").ok());
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"allow_debug": "yes"})").ok());
  EXPECT_FALSE(ParseAttestationPolicyJson(R"({"tcb_statuses": ["Fine"]})").ok());
  EXPECT_FALSE(ParseAttestationPolicyJson("[1]").ok());
}

}  // namespace
}  // namespace custos::attestation

namespace custos::attestation {
namespace {

// VerifyEvidence dispatches on the evidence type; DescribeOwnEvidence reads the identity fields
// a quote carries without collateral, and they agree with the verified verdict.
TEST(EvidenceTest, DispatchesDcapAndAgreesWithDescribe) {
  for (const char* name : {"sgx_quote", "tdx_quote"}) {
    Vector v = Load(name);
    Bytes json = ReadBinary(std::string("dcap/") + name + "_collateral.json");
    auto verdict = VerifyEvidence(v.quote, ToString(json), v.at);
    ASSERT_OK(verdict.status());
    auto own = DescribeOwnEvidence(v.quote);
    ASSERT_OK(own.status());
    EXPECT_EQ(own->tee, verdict->tee);
    EXPECT_EQ(own->measurement, verdict->measurement);
    EXPECT_EQ(own->signer, verdict->signer);
    EXPECT_EQ(own->debug, verdict->debug);
    EXPECT_EQ(own->report_data, verdict->report_data);
    EXPECT_FALSE(IsSimEvidence(v.quote));
    EXPECT_THAT(VerifyEvidence(v.quote, "", v.at).status().message(),
                HasSubstr("DCAP evidence needs collateral"));
  }
}

}  // namespace
}  // namespace custos::attestation
