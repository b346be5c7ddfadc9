#include "protocol/sigma/release.h"

#include "crypto/random.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::sigma {
namespace {

TEST(ReleaseRecords, RoundTripAndRefuseWrongTypeOrLength) {
  UnsealRequest u{crypto::RandomBytes(32), crypto::Point::BaseMul(crypto::Scalar::Random()),
                  crypto::RandomBytes(32)};
  Bytes enc = u.Encode();
  ASSERT_EQ(enc.size(), 1u + 32 + 33 + 32);
  auto back = UnsealRequest::Decode(enc);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->custody_fp, u.custody_fp);
  EXPECT_EQ(back->r.Encode(), u.r.Encode());
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_FALSE(UnsealRequest::Decode(ByteSpan(enc).subspan(0, cut)).ok());
  UnsealProgress p{true, 1, 2};
  EXPECT_THAT(UnsealRequest::Decode(p.Encode()).status().message(),
              ::testing::HasSubstr("expected an unseal request, got type 3"));
  auto pb = UnsealProgress::Decode(p.Encode());
  ASSERT_TRUE(pb.ok());
  EXPECT_TRUE(pb->unsealed);
  EXPECT_EQ(pb->customer, 2);

  JoinRequest j{crypto::RandomBytes(241), {}, {}};
  auto jb = JoinRequest::Decode(j.Encode());
  ASSERT_TRUE(jb.ok());
  EXPECT_EQ(jb->evidence, j.evidence);
  EXPECT_TRUE(jb->collateral.empty());
  EXPECT_TRUE(jb->approval.empty());
  // With an approval (a rolling upgrade): it round-trips; without one the encoding is the
  // pre-approval format (type, evidence, collateral), and an empty trailing field is refused.
  JoinRequest ja{j.evidence, ToBytes("collateral"), ToBytes("{\"approval\": 1}")};
  auto jab = JoinRequest::Decode(ja.Encode());
  ASSERT_TRUE(jab.ok());
  EXPECT_EQ(jab->approval, ja.approval);
  EXPECT_EQ(jab->collateral, ja.collateral);
  JoinRequest without{j.evidence, ToBytes("collateral"), {}};
  EXPECT_EQ(ja.Encode().size(), without.Encode().size() + 4 + ja.approval.size());
  Bytes empty_tail = j.Encode();
  for (int i = 0; i < 4; ++i) empty_tail.push_back(0);
  EXPECT_FALSE(JoinRequest::Decode(empty_tail).ok());

  JoinGrant g{crypto::RandomSecret(32), crypto::RandomBytes(212), crypto::RandomBytes(241)};
  auto gb = JoinGrant::Decode(g.Encode());
  ASSERT_TRUE(gb.ok());
  EXPECT_TRUE(gb->root_key.ConstantTimeEquals(g.root_key));
  EXPECT_EQ(gb->envelope, g.envelope);
  EXPECT_EQ(gb->origin_evidence, g.origin_evidence);
  SecretBytes short_grant = SecretBytes::CopyFrom(ByteSpan(g.Encode().Expose()).subspan(0, 20));
  EXPECT_FALSE(JoinGrant::Decode(short_grant).ok());
  EXPECT_FALSE(RecordType(Bytes{9}).ok());
  EXPECT_FALSE(RecordType(Bytes{}).ok());
}

TEST(ReleaseRecords, JoinReportDataBindsKeyAndBothMessages) {
  crypto::Point k = crypto::Point::BaseMul(crypto::Scalar::Random());
  Bytes m1 = crypto::RandomBytes(67), m2 = crypto::RandomBytes(300);
  Bytes base = JoinReportData(k, m1, m2);
  EXPECT_EQ(base.size(), 32u);
  EXPECT_NE(base, JoinReportData(crypto::Point::BaseMul(crypto::Scalar::Random()), m1, m2));
  Bytes m2b = m2;
  m2b[5] ^= 1;
  EXPECT_NE(base, JoinReportData(k, m1, m2b));
  EXPECT_NE(base, JoinReportData(k, m2, m1));
}

}  // namespace
}  // namespace custos::sigma
