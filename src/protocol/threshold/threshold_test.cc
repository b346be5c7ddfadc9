#include <algorithm>

#include "protocol/threshold/dkg.h"
#include "protocol/threshold/dleq.h"
#include "protocol/threshold/kem.h"
#include "protocol/threshold/partial.h"
#include "protocol/threshold/reshare.h"
#include "protocol/threshold/shamir.h"
#include "crypto/random.h"
#include "tests/testing/testing.h"

namespace custos::threshold {
namespace {

using crypto::Point;
using crypto::Scalar;
namespace hpke = crypto::hpke;

TEST(Shamir, AnyThresholdSubsetInterpolates) {
  Scalar secret = Scalar::Random();
  Polynomial f = Polynomial::Random(secret, 2);  // t = 3
  std::vector<uint32_t> all = {1, 2, 3, 4, 5};
  for (auto subset : std::vector<std::vector<uint32_t>>{{1, 2, 3}, {2, 4, 5}, {1, 3, 5}}) {
    Scalar acc;
    for (uint32_t i : subset) acc += LagrangeAtZero(subset, i).value() * f.Evaluate(i);
    EXPECT_EQ(acc, secret);
  }
  // Two shares of a degree-2 polynomial do not give the secret.
  std::vector<uint32_t> two = {1, 2};
  Scalar acc;
  for (uint32_t i : two) acc += LagrangeAtZero(two, i).value() * f.Evaluate(i);
  EXPECT_FALSE(acc == secret);
  EXPECT_FALSE(LagrangeAtZero(std::vector<uint32_t>{1, 1}, 1).ok());
  EXPECT_FALSE(LagrangeAtZero(std::vector<uint32_t>{0, 1}, 1).ok());
  EXPECT_FALSE(LagrangeAtZero(std::vector<uint32_t>{2, 3}, 1).ok());
}

TEST(Vss, CommitmentsVerifyGoodSharesOnly) {
  Polynomial f = Polynomial::Random(Scalar::Random(), 2), b = Polynomial::Random(Scalar::Random(), 2);
  auto c = PedersenCommit(f, b);
  auto a = FeldmanCommit(f);
  EXPECT_TRUE(VerifyPedersenShare(c, 4, f.Evaluate(4), b.Evaluate(4)));
  EXPECT_FALSE(VerifyPedersenShare(c, 4, f.Evaluate(4) + Scalar::FromUint(1), b.Evaluate(4)));
  EXPECT_FALSE(VerifyPedersenShare(c, 3, f.Evaluate(4), b.Evaluate(4)));
  EXPECT_TRUE(VerifyFeldmanShare(a, 2, f.Evaluate(2)));
  EXPECT_FALSE(VerifyFeldmanShare(a, 2, f.Evaluate(1)));
}

TEST(Dleq, ProvesAndRefuses) {
  Scalar x = Scalar::Random();
  Point r = Point::BaseMul(Scalar::Random());
  Point xg = Point::BaseMul(x), xr = r * x;
  DleqProof p = ProveDleq(x, Point::Generator(), xg, r, xr, AsBytes("ctx"));
  EXPECT_OK(VerifyDleq(p, Point::Generator(), xg, r, xr, AsBytes("ctx")));
  EXPECT_FALSE(VerifyDleq(p, Point::Generator(), xg, r, xr, AsBytes("other")).ok());
  EXPECT_FALSE(VerifyDleq(p, Point::Generator(), xg, r, xr + Point::Generator(), AsBytes("ctx")).ok());
  // A proof for a different exponent fails.
  Scalar y = Scalar::Random();
  DleqProof bad = ProveDleq(y, Point::Generator(), xg, r, xr, AsBytes("ctx"));
  EXPECT_FALSE(VerifyDleq(bad, Point::Generator(), xg, r, xr, AsBytes("ctx")).ok());
  auto round = DleqProof::Decode(p.Encode());
  ASSERT_OK(round.status());
  EXPECT_OK(VerifyDleq(*round, Point::Generator(), xg, r, xr, AsBytes("ctx")));
  EXPECT_FALSE(DleqProof::Decode(Bytes(63)).ok());
}

// The keeper's ComputePartial with the encodings it already holds (its X_i, the request's R)
// gives the proof the plain one gives: it verifies, and the transcript is bound to the
// encodings passed, so a wrong one makes a proof that does not.
TEST(Partial, PreEncodedInputsProveTheSameStatement) {
  Scalar x = Scalar::Random();
  Point xg = Point::BaseMul(x);
  Point r = Point::BaseMul(Scalar::Random());
  Bytes ctx = crypto::RandomBytes(32);
  PartialDecryption p = ComputePartial(3, x, xg.Encode(), r, r.Encode(), ctx);
  EXPECT_EQ(p.index, 3u);
  EXPECT_EQ(p.d, r * x);
  EXPECT_OK(VerifyPartial(p, xg, r, ctx));
  EXPECT_FALSE(VerifyPartial(p, xg, r, crypto::RandomBytes(32)).ok());
  Point other = Point::BaseMul(Scalar::Random());
  PartialDecryption wrong_r = ComputePartial(3, x, xg.Encode(), r, other.Encode(), ctx);
  EXPECT_FALSE(VerifyPartial(wrong_r, xg, r, ctx).ok());
  PartialDecryption wrong_x = ComputePartial(3, x, other.Encode(), r, r.Encode(), ctx);
  EXPECT_FALSE(VerifyPartial(wrong_x, xg, r, ctx).ok());
}

// RunDkg drives n participants through all rounds in memory.
struct DkgRun {
  std::vector<DkgResult> results;  // by position
  std::vector<uint32_t> indices;
};

StatusOr<DkgRun> RunDkg(uint32_t n, uint32_t t, std::set<uint32_t> cheaters = {}) {
  DkgParams params;
  params.session_id = crypto::RandomBytes(16);
  params.threshold = t;
  std::vector<hpke::PrivateKey> keys;
  for (uint32_t i = 1; i <= n; ++i) {
    keys.push_back(hpke::PrivateKey::Generate());
    params.participants.push_back({i, keys.back().public_key()});
  }
  std::vector<DkgParticipant> ps;
  for (uint32_t i = 1; i <= n; ++i) {
    ASSIGN_OR_RETURN(auto p, DkgParticipant::Create(params, i, std::move(keys[i - 1]),
                                                     cheaters.count(i) ? DkgBehavior::kDealBadShares
                                                                       : DkgBehavior::kHonest));
    ps.push_back(std::move(p));
  }
  std::vector<DealMessage> deals;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.Deal());
    ASSIGN_OR_RETURN(auto decoded, DealMessage::Decode(m.Encode()));
    deals.push_back(std::move(decoded));
  }
  std::vector<ComplaintMessage> complaints;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.ProcessDeals(deals));
    complaints.push_back(std::move(m));
  }
  std::vector<ResponseMessage> responses;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.ProcessComplaints(complaints));
    responses.push_back(std::move(m));
  }
  std::vector<FeldmanMessage> feldman;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.ProcessResponses(responses));
    feldman.push_back(std::move(m));
  }
  std::vector<ExtractionComplaintMessage> ext;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.ProcessFeldman(feldman));
    ext.push_back(std::move(m));
  }
  std::vector<RevealMessage> reveals;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto m, p.ProcessExtractionComplaints(ext));
    reveals.push_back(std::move(m));
  }
  DkgRun run;
  for (auto& p : ps) {
    ASSIGN_OR_RETURN(auto r, p.Finalize(reveals));
    run.results.push_back(std::move(r));
    run.indices.push_back(p.index());
  }
  return run;
}

TEST(Dkg, HonestRunAgreesAndInterpolates) {
  auto run = RunDkg(5, 3);
  ASSERT_OK(run.status());
  const Point& y = run->results[0].public_key;
  for (auto& r : run->results) {
    EXPECT_EQ(r.public_key, y);
    EXPECT_EQ(r.qual.size(), 5u);
    EXPECT_TRUE(r.disqualified.empty());
  }
  // Any 3 shares interpolate to log(Y); verification keys agree everywhere.
  std::vector<uint32_t> q = {1, 3, 5};
  Scalar x;
  for (uint32_t i : q) x += LagrangeAtZero(q, i).value() * run->results[i - 1].share;
  EXPECT_EQ(Point::BaseMul(x), y);
  for (auto& r : run->results) EXPECT_EQ(r.verification_keys, run->results[0].verification_keys);
}

TEST(Dkg, CheatingDealerIsDisqualifiedAndRunCompletes) {
  auto run = RunDkg(5, 3, {2});
  ASSERT_OK(run.status());
  for (size_t k = 0; k < run->results.size(); ++k) {
    auto& r = run->results[k];
    EXPECT_EQ(r.qual, (std::vector<uint32_t>{1, 3, 4, 5}));
    ASSERT_TRUE(r.disqualified.count(2));
    EXPECT_NE(r.disqualified.at(2).find("invalid share"), std::string::npos);
    EXPECT_EQ(r.public_key, run->results[0].public_key);
  }
  std::vector<uint32_t> q = {1, 4, 5};
  Scalar x;
  for (uint32_t i : q) x += LagrangeAtZero(q, i).value() * run->results[i - 1].share;
  EXPECT_EQ(Point::BaseMul(x), run->results[0].public_key);
}

TEST(Dkg, TooManyCheatersFails) { EXPECT_FALSE(RunDkg(3, 3, {1}).ok()); }

TEST(Dkg, RoundsOutOfOrderRefused) {
  DkgParams params;
  params.session_id = crypto::RandomBytes(16);
  params.threshold = 1;
  auto k = hpke::PrivateKey::Generate();
  params.participants.push_back({1, k.public_key()});
  auto p = DkgParticipant::Create(params, 1, std::move(k));
  ASSERT_OK(p.status());
  EXPECT_EQ(p->ProcessDeals({}).status().code(), ErrorCode::kFailedPrecondition);
}

TEST(Dkg, MessageDecodersRefuseGarbage) {
  EXPECT_FALSE(DealMessage::Decode(Bytes{0, 0, 0, 1}).ok());
  EXPECT_FALSE(ComplaintMessage::Decode(Bytes{0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff}).ok());
  ComplaintMessage c{3, {1, 2}};
  Bytes enc = c.Encode();
  enc.push_back(0);
  EXPECT_FALSE(ComplaintMessage::Decode(enc).ok());
}

// Two-domain envelope: provider (1-of-1) AND customer (2-of-3).
TEST(Envelope, BothDomainsNeededAndCheatersDetected) {
  auto prov = RunDkg(1, 1);
  auto cust = RunDkg(3, 2);
  ASSERT_OK(prov.status());
  ASSERT_OK(cust.status());
  Point y = prov->results[0].public_key + cust->results[0].public_key;
  auto enc = Encapsulate(y, AsBytes("file-1"));
  ASSERT_OK(enc.status());
  Bytes ctx = ToBytes("request-ctx");
  auto partial = [&](const DkgRun& run, uint32_t i) {
    auto& r = run.results[i - 1];
    return ComputePartial(i, r.share, r.verification_keys.at(i), enc->r_point, ctx);
  };
  for (auto pair : std::vector<std::vector<uint32_t>>{{1, 2}, {1, 3}, {2, 3}}) {
    std::vector<Point> ds;
    for (uint32_t i : pair) {
      auto p = partial(*cust, i);
      EXPECT_OK(VerifyPartial(p, cust->results[0].verification_keys.at(i), enc->r_point, ctx));
      ds.push_back(p.d);
    }
    Point s_c = InterpolatePointsAtZero(pair, ds).value();
    Point s = s_c + partial(*prov, 1).d;
    auto kek = DeriveKek(s, enc->r_point, y, AsBytes("file-1"));
    ASSERT_OK(kek.status());
    EXPECT_TRUE(kek->ConstantTimeEquals(enc->kek));
    // Customer side alone (all three) does not give the KEK.
    std::vector<uint32_t> all = {1, 2, 3};
    std::vector<Point> dall;
    for (uint32_t i : all) dall.push_back(partial(*cust, i).d);
    auto alone = DeriveKek(InterpolatePointsAtZero(all, dall).value(), enc->r_point, y,
                           AsBytes("file-1"));
    EXPECT_FALSE(alone->ConstantTimeEquals(enc->kek));
  }
  // A wrong partial fails its proof.
  auto p = partial(*cust, 1);
  p.d = p.d + Point::Generator();
  EXPECT_EQ(VerifyPartial(p, cust->results[0].verification_keys.at(1), enc->r_point, ctx).code(),
            ErrorCode::kIntegrity);
  // A correct partial from keeper 2 does not verify as keeper 1.
  auto p2 = partial(*cust, 2);
  EXPECT_FALSE(VerifyPartial(p2, cust->results[0].verification_keys.at(1), enc->r_point, ctx).ok());
  auto round = PartialDecryption::Decode(p2.Encode());
  ASSERT_OK(round.status());
  EXPECT_EQ(round->d, p2.d);
}

TEST(Reshare, NewSetKeepsKeyAndOldSharesStopCombining) {
  auto cust = RunDkg(3, 2);
  ASSERT_OK(cust.status());
  const auto& old_keys = cust->results[0].verification_keys;
  Point y = cust->results[0].public_key;
  Bytes session = crypto::RandomBytes(16);
  // New set: 4 keepers, threshold 3.
  std::vector<hpke::PrivateKey> keys;
  std::vector<ReshareRecipient> recipients;
  std::vector<uint32_t> new_idx = {1, 2, 3, 4};
  for (uint32_t j : new_idx) {
    keys.push_back(hpke::PrivateKey::Generate());
    recipients.push_back({j, keys.back().public_key()});
  }
  std::vector<ReshareDeal> deals;
  for (uint32_t i : {1u, 2u, 3u}) {
    auto d = DealReshare(session, i, cust->results[i - 1].share, 3, recipients, /*corrupt=*/i == 3);
    ASSERT_OK(d.status());
    deals.push_back(ReshareDeal::Decode(d->Encode()).value());
  }
  std::vector<ReshareResult> results;
  for (uint32_t j : new_idx) {
    ReshareReceiver rx(session, j, std::move(keys[j - 1]), 2, 3, new_idx, old_keys, y);
    auto bad = rx.ProcessDeals(deals);
    ASSERT_OK(bad.status());
    EXPECT_EQ(*bad, std::vector<uint32_t>{3});  // the corrupt dealer is named
    EXPECT_FALSE(rx.Finalize({1, 3}).ok());
    auto res = rx.Finalize({1, 2});
    ASSERT_OK(res.status());
    results.push_back(std::move(res).value());
  }
  std::vector<uint32_t> q = {2, 3, 4};
  Scalar x;
  for (uint32_t j : q) x += LagrangeAtZero(q, j).value() * results[j - 1].share;
  EXPECT_EQ(Point::BaseMul(x), y);
  // An old share mixed with new ones does not reproduce the key.
  Scalar mixed = LagrangeAtZero(q, 2).value() * cust->results[1].share +
                 LagrangeAtZero(q, 3).value() * results[2].share +
                 LagrangeAtZero(q, 4).value() * results[3].share;
  EXPECT_FALSE(Point::BaseMul(mixed) == y);
  // A dealer that tries to change its secret (A_0 != X_i) is refused.
  auto k = hpke::PrivateKey::Generate();
  std::vector<ReshareRecipient> one = {{1, k.public_key()}};
  auto evil = DealReshare(session, 1, Scalar::Random(), 1, one);
  ReshareReceiver rx(session, 1, std::move(k), 2, 1, {1}, old_keys, y);
  EXPECT_EQ(rx.ProcessDeals({*evil}).value(), std::vector<uint32_t>{1});
}

}  // namespace
}  // namespace custos::threshold
