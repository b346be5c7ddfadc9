#include "protocol/custody/custody.h"

#include "crypto/random.h"
#include "tests/testing/testing.h"

namespace custos::custody {
namespace {

using crypto::Point;
using crypto::Scalar;

struct Fixture {
  Scalar xp = Scalar::Random(), xc = Scalar::Random();
  crypto::SigningKey idp = crypto::SigningKey::Generate(), idc = crypto::SigningKey::Generate();
  CustodyDescriptor d;
  Fixture() {
    d.ceremony_id = crypto::RandomBytes(16);
    d.provider = {1, Point::BaseMul(xp), {Record("P1", Domain::kProvider, xp, idp)}};
    d.customer = {1, Point::BaseMul(xc), {Record("C1", Domain::kCustomer, xc, idc)}};
    d.public_key = d.provider.public_key + d.customer.public_key;
  }
  static KeeperRecord Record(const std::string& id, Domain dom, const Scalar& x,
                             const crypto::SigningKey& k) {
    return {id, dom, 1, "http://127.0.0.1:1", k.verifying_key().point(),
            Point::BaseMul(Scalar::Random()), Point::BaseMul(x), ProvePossession(x, id, dom, 1)};
  }
  void Sign() {
    d.signatures["P1"] = idp.Sign(d.SignatureMessage());
    d.signatures["C1"] = idc.Sign(d.SignatureMessage());
  }
};

TEST(Custody, ValidDescriptorVerifiesAndRoundTrips) {
  Fixture f;
  f.Sign();
  EXPECT_OK(f.d.Verify());
  auto parsed = CustodyDescriptor::Parse(f.d.ToJsonString());
  ASSERT_OK(parsed.status());
  EXPECT_EQ(parsed->Fingerprint(), f.d.Fingerprint());
  EXPECT_OK(parsed->Verify());
}

TEST(Custody, MissingOrWrongSignatureRefused) {
  Fixture f;
  f.Sign();
  f.d.signatures.erase("C1");
  EXPECT_EQ(f.d.Verify().code(), ErrorCode::kIntegrity);
  f.Sign();
  f.d.signatures["C1"] = f.idp.Sign(f.d.SignatureMessage());
  EXPECT_EQ(f.d.Verify().code(), ErrorCode::kIntegrity);
}

// The customer side, after seeing Y_P, announces Y_C = a*G - Y_P so that Y = a*G. It cannot
// prove possession of log(Y_C), so the descriptor is refused.
TEST(Custody, RogueDomainKeyRefused) {
  Fixture f;
  Scalar a = Scalar::Random();
  Point rogue = Point::BaseMul(a) - f.d.provider.public_key;
  f.d.customer.public_key = rogue;
  f.d.customer.keepers[0].verification_key = rogue;
  f.d.public_key = Point::BaseMul(a);
  // Best the attacker can do: a proof for a key it knows.
  f.d.customer.keepers[0].possession_proof = ProvePossession(a, "C1", Domain::kCustomer, 1);
  Status st = f.d.CheckStructure();
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_NE(st.message().find("proof of possession"), std::string::npos);
}

TEST(Custody, InconsistentKeysRefused) {
  Fixture f;
  f.d.public_key = f.d.public_key + Point::Generator();
  EXPECT_FALSE(f.d.CheckStructure().ok());
  Fixture g;
  g.d.customer.threshold = 2;
  EXPECT_FALSE(g.d.CheckStructure().ok());
  Fixture h;
  h.d.customer.keepers[0].id = "P1";
  EXPECT_FALSE(h.d.CheckStructure().ok());
}

TEST(Custody, EditedJsonRefused) {
  Fixture f;
  f.Sign();
  auto j = f.d.ToJson();
  j["epoch"] = 7u;  // fingerprint field no longer matches
  EXPECT_EQ(CustodyDescriptor::FromJson(j).status().code(), ErrorCode::kIntegrity);
  j.erase("fingerprint");
  auto p = CustodyDescriptor::FromJson(j);
  ASSERT_OK(p.status());
  EXPECT_FALSE(p->Verify().ok());  // signatures cover the epoch
  EXPECT_FALSE(CustodyDescriptor::Parse("[1,2]").ok());
  EXPECT_FALSE(CustodyDescriptor::Parse("{\"suite\":2}").ok());
}

}  // namespace
}  // namespace custos::custody
