#include "protocol/custody/approval.h"

#include "crypto/random.h"
#include "tests/testing/testing.h"

namespace custos::custody {
namespace {

using crypto::Point;
using crypto::Scalar;
using crypto::SigningKey;

// A custody with P1 (provider, 1-of-1) and C1..C3 (customer, 2-of-3). CheckApproval reads only
// the keepers' ids, domains and identity keys and the thresholds, so the shares are arbitrary.
struct Fixture {
  SigningKey p1 = SigningKey::Generate(), c1 = SigningKey::Generate(), c2 = SigningKey::Generate(),
             c3 = SigningKey::Generate();
  CustodyDescriptor d;
  MeasurementApproval a;
  std::time_t now = 1'800'000'000;

  Fixture() {
    d.provider = {1, Point::BaseMul(Scalar::Random()), {Record("P1", Domain::kProvider, 1, p1)}};
    d.customer = {2, Point::BaseMul(Scalar::Random()),
                  {Record("C1", Domain::kCustomer, 1, c1), Record("C2", Domain::kCustomer, 2, c2),
                   Record("C3", Domain::kCustomer, 3, c3)}};
    d.public_key = d.provider.public_key + d.customer.public_key;
    a.joint_key = d.public_key;
    a.tee = "sim";
    a.measurement = crypto::RandomBytes(32);
    a.not_after = now + 3600;
  }
  static KeeperRecord Record(const std::string& id, Domain dom, uint32_t index, const SigningKey& k) {
    return {id, dom, index, "", k.verifying_key().point(), Point::BaseMul(Scalar::Random()),
            Point::BaseMul(Scalar::Random()), {}};
  }
};

TEST(MeasurementApproval, BothDomainsQuorumIsAccepted) {
  Fixture f;
  f.a.Sign("P1", f.p1);
  f.a.Sign("C1", f.c1);
  f.a.Sign("C3", f.c3);
  auto q = CheckApproval(f.a, f.d, f.now);
  ASSERT_OK(q.status());
  EXPECT_EQ(q->provider, 1u);
  EXPECT_EQ(q->customer, 2u);
  // The file round-trips and still verifies.
  auto parsed = MeasurementApproval::Parse(f.a.ToJsonString());
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->measurement, f.a.measurement);
  EXPECT_EQ(parsed->not_after, f.a.not_after);
  EXPECT_OK(CheckApproval(*parsed, f.d, f.now).status());
}

TEST(MeasurementApproval, OneDomainAloneIsRefused) {
  Fixture f;
  f.a.Sign("P1", f.p1);
  auto provider_only = CheckApproval(f.a, f.d, f.now);
  EXPECT_EQ(provider_only.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(provider_only.status().message().find("customer 0 of 2 needed"), std::string::npos)
      << provider_only.status().message();

  Fixture g;
  g.a.Sign("C1", g.c1);
  g.a.Sign("C2", g.c2);
  g.a.Sign("C3", g.c3);
  auto customer_only = CheckApproval(g.a, g.d, g.now);
  EXPECT_EQ(customer_only.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_NE(customer_only.status().message().find("provider 0 of 1 needed"), std::string::npos)
      << customer_only.status().message();

  // Below the customer threshold: P1 and one customer keeper.
  Fixture h;
  h.a.Sign("P1", h.p1);
  h.a.Sign("C2", h.c2);
  EXPECT_EQ(CheckApproval(h.a, h.d, h.now).status().code(), ErrorCode::kPermissionDenied);
}

TEST(MeasurementApproval, AlteredApprovalOrForgedSignatureIsRefused) {
  Fixture f;
  f.a.Sign("P1", f.p1);
  f.a.Sign("C1", f.c1);
  f.a.Sign("C2", f.c2);
  // Another measurement under the same signatures.
  MeasurementApproval other = f.a;
  other.measurement[0] ^= 1;
  auto st = CheckApproval(other, f.d, f.now);
  EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
  EXPECT_NE(st.status().message().find("does not verify"), std::string::npos);
  // A later expiry under the same signatures.
  MeasurementApproval extended = f.a;
  extended.not_after += 86400;
  EXPECT_EQ(CheckApproval(extended, f.d, f.now).status().code(), ErrorCode::kIntegrity);
  // One keeper signing in another's name.
  MeasurementApproval forged = f.a;
  forged.signatures.erase("C2");
  forged.Sign("C2", f.c1);
  EXPECT_EQ(CheckApproval(forged, f.d, f.now).status().code(), ErrorCode::kIntegrity);
}

TEST(MeasurementApproval, UnlistedSignersDoNotCount) {
  Fixture f;
  SigningKey outsider = SigningKey::Generate();
  f.a.Sign("P1", f.p1);
  f.a.Sign("C1", f.c1);
  f.a.Sign("C9", outsider);  // not in this custody (e.g. reshared away)
  EXPECT_EQ(CheckApproval(f.a, f.d, f.now).status().code(), ErrorCode::kPermissionDenied);
}

TEST(MeasurementApproval, ExpiredOrOtherCustodyIsRefused) {
  Fixture f;
  f.a.Sign("P1", f.p1);
  f.a.Sign("C1", f.c1);
  f.a.Sign("C2", f.c2);
  auto expired = CheckApproval(f.a, f.d, f.a.not_after + 1);
  EXPECT_EQ(expired.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(expired.status().message().find("expired at"), std::string::npos);
  Fixture other;  // another custody (another Y), same keeper ids
  auto foreign = CheckApproval(f.a, other.d, f.now);
  EXPECT_EQ(foreign.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(foreign.status().message().find("another custody"), std::string::npos);
}

TEST(MeasurementApproval, ParseRefusesMalformedFiles) {
  Fixture f;
  f.a.Sign("P1", f.p1);
  std::string good = f.a.ToJsonString();
  ASSERT_OK(MeasurementApproval::Parse(good).status());
  auto with = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  EXPECT_EQ(MeasurementApproval::Parse("[]").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasurementApproval::Parse("{").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasurementApproval::Parse(with("custos-measurement/v1", "custos-measurement/v2")).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasurementApproval::Parse(with("\"tee\"", "\"extra\": 1, \"tee\"")).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(MeasurementApproval::Parse(with(HexEncode(f.a.measurement), "abcd")).status().code(),
            ErrorCode::kInvalidArgument);
  auto bad_time = MeasurementApproval::Parse(with("Z\"", "\""));
  EXPECT_EQ(bad_time.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(bad_time.status().message().find("not_after"), std::string::npos);
}

}  // namespace
}  // namespace custos::custody
