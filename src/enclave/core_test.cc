// The trusted core driven in-process through its call interface, with real SIGMA initiators
// playing the keepers. The same flows with real processes are in tests/e2e/appliance_test.cc.
#include "enclave/core.h"

#include "attestation/evidence.h"
#include "crypto/random.h"
#include "enclave/core_testing.h"
#include "files/dual_control.h"
#include "gmock/gmock.h"
#include "sigma/release.h"
#include "tests/testing/testing.h"
#include "threshold/shamir.h"

namespace custos::enclave {
namespace {

using crypto::Point;
using crypto::Scalar;
using custody::Domain;
using ::testing::HasSubstr;

using EnclaveCoreTest = CoreFixture;

TEST_F(EnclaveCoreTest, QuorumOfBothDomainsUnsealsTheSameRootKey) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  ASSERT_FALSE(root_id.empty());
  EXPECT_TRUE(core->sealed());
  auto p = Release(*core, K("P1"));
  ASSERT_OK(p.status());
  EXPECT_FALSE(p->unsealed);
  EXPECT_EQ(p->provider, 1);
  p = Release(*core, K("C2"));
  ASSERT_OK(p.status());
  EXPECT_FALSE(p->unsealed);
  p = Release(*core, K("C3"));
  ASSERT_OK(p.status());
  EXPECT_TRUE(p->unsealed);
  nlohmann::json s = StatusOf(*core);
  EXPECT_FALSE(s["sealed"].get<bool>());
  EXPECT_EQ(s["root_key_id"], root_id);
  EXPECT_EQ(s["contributors"].size(), 3u);
  // A keeper that comes later is told there is nothing to do, and releases nothing.
  p = Release(*core, K("C1"));
  ASSERT_OK(p.status());
  EXPECT_TRUE(p->unsealed);
}

TEST_F(EnclaveCoreTest, OneSideAloneNeverUnseals) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  for (const char* id : {"C1", "C2", "C3"}) ASSERT_OK(Release(*core, K(id)).status());
  EXPECT_TRUE(core->sealed());
  auto core2 = NewCore();
  ASSERT_OK(Call(*core2, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}}).status());
  ASSERT_OK(Release(*core2, K("P1")).status());
  ASSERT_OK(Release(*core2, K("C1")).status());
  EXPECT_TRUE(core2->sealed());
  EXPECT_TRUE(StatusOf(*core2)["sealed"].get<bool>());
}

TEST_F(EnclaveCoreTest, RefusesBadProofUnknownKeeperAndForeignIdentityKey) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  auto bad = Release(*core, K("P1"), /*bad_proof=*/true);
  EXPECT_EQ(bad.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(bad.status().message(), HasSubstr("partial from keeper P1 refused"));
  TestKeeper stranger{"X9", Domain::kCustomer, 1, Scalar::Random()};
  EXPECT_THAT(Release(*core, stranger).status().message(), HasSubstr("keeper X9 is not in custody.json"));
  TestKeeper impostor = {"C1", Domain::kCustomer, 1, K("C1").share};  // right share, wrong key
  EXPECT_THAT(Release(*core, impostor).status().message(),
              HasSubstr("signed with a key custody.json does not list"));
  // None of these counted.
  EXPECT_TRUE(StatusOf(*core)["contributors"].empty());
}

// Anyone can encrypt to Y: a host that swaps in an envelope of its own (with the genuine
// envelope's origin evidence, or none) never gets its root key used, even with a full quorum.
TEST_F(EnclaveCoreTest, SubstitutedEnvelopeIsRefused) {
  std::string root_id;
  InitAndReload(&root_id);
  SecretBytes host_root = crypto::RandomSecret(32);
  auto forged = files::SealDualControlSecret(custody_.d.public_key, host_root);
  ASSERT_OK(forged.status());
  auto core = NewCore();
  EXPECT_THAT(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), *forged, Bytes{}, Bytes{}}).status().message(),
              HasSubstr("needs the evidence of the enclave that made it"));
  ASSERT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), *forged, origin_, Bytes{}}).status());
  ASSERT_OK(Release(*core, K("P1")).status());
  ASSERT_OK(Release(*core, K("C1")).status());
  auto last = Release(*core, K("C2"));
  EXPECT_THAT(last.status().message(), HasSubstr("envelope was not made by an enclave for this root key"));
  EXPECT_TRUE(core->sealed());
  // Origin evidence from an enclave with another signer (platform) is refused at load.
  auto other_platform = attestation::SimPlatform::LoadOrCreate(dir_ + "/other-sim");
  ASSERT_OK(other_platform.status());
  auto foreign = other_platform->MakeEvidence(measurement_, {}, Bytes(64, 0));
  auto core2 = NewCore();
  EXPECT_THAT(Call(*core2, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, *foreign, Bytes{}}).status().message(),
              HasSubstr("signer not allowed"));
}

TEST_F(EnclaveCoreTest, KeeperRefusesWrongMeasurementDebugSvnAndSim) {
  std::string root_id;
  InitAndReload(&root_id);
  auto other = NewCore(crypto::RandomBytes(32));
  ASSERT_OK(Call(*other, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}}).status());
  EXPECT_THAT(Release(*other, K("P1")).status().message(), HasSubstr("measurement"));
  auto debug = NewCore({}, /*debug=*/true);
  ASSERT_OK(Call(*debug, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}}).status());
  EXPECT_THAT(Release(*debug, K("P1")).status().message(), HasSubstr("debug"));
  // (TCB status refusals need DCAP evidence: keeper/release_test.cc uses the Intel quotes.)
  policy_.min_svn = 3;
  auto core = NewCore();
  ASSERT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}}).status());
  EXPECT_THAT(Release(*core, K("P1")).status().message(), HasSubstr("SVN below minimum"));
  policy_.min_svn = 0;
  policy_.allow_sim = false;
  EXPECT_THAT(Release(*core, K("P1")).status().message(), HasSubstr("sim"));
}

TEST_F(EnclaveCoreTest, ReplayedAndCrossedSigmaMessagesAreRefused) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  const TestKeeper& k = K("P1");
  sigma::InitiatorConfig cfg{k.id, custody_.d.Fingerprint(),
                             [](ByteSpan, ByteSpan) { return Status::Ok(); }};
  sigma::SigmaInitiator a(k.identity, cfg), b(k.identity, cfg);
  auto ra = Call(*core, ecall::Call::kSigmaRespond, {*a.Start()});
  auto rb = Call(*core, ecall::Call::kSigmaRespond, {*b.Start()});
  ASSERT_OK(ra.status());
  ASSERT_OK(rb.status());
  auto fa = a.Finish((*ra)[1]);
  ASSERT_OK(fa.status());
  // Message 3 of session a offered to session b: refused, and b is gone.
  EXPECT_FALSE(Call(*core, ecall::Call::kSigmaFinish, {(*rb)[0], fa->message3}).ok());
  ASSERT_OK(Call(*core, ecall::Call::kSigmaFinish, {(*ra)[0], fa->message3}).status());
  // Replaying message 3 into the finished session: refused.
  EXPECT_THAT(Call(*core, ecall::Call::kSigmaFinish, {(*ra)[0], fa->message3}).status().message(),
              HasSubstr("already finished"));
  // A record sealed at sequence 1 (the enclave expects 0) is out of order and refused.
  ASSERT_OK(fa->channel.Seal(Bytes{2}).status());
  auto late = fa->channel.Seal(sigma::EncodePartialRelease({}));
  ASSERT_OK(late.status());
  EXPECT_THAT(Call(*core, ecall::Call::kRecord, {(*ra)[0], *late}).status().message(),
              HasSubstr("out of sequence"));
  // The session served its one record: a replay finds no session.
  EXPECT_EQ(Call(*core, ecall::Call::kRecord, {(*ra)[0], *late}).status().code(), ErrorCode::kNotFound);
}

TEST_F(EnclaveCoreTest, LoadRefusesEditedCustodyAndForeignEnvelope) {
  std::string root_id;
  InitAndReload(&root_id);
  auto core = NewCore();
  std::string edited = custody_.json;
  edited.replace(edited.find("\"threshold\": 2"), 14, "\"threshold\": 1");
  EXPECT_FALSE(Call(*core, ecall::Call::kLoad, {ToBytes(edited), Bytes{}, Bytes{}, Bytes{}}).ok());
  Custody other;
  EXPECT_THAT(Call(*core, ecall::Call::kLoad, {ToBytes(other.json), envelope_, origin_, Bytes{}}).status().message(),
              HasSubstr("not sealed to this custody"));
  // A failed load leaves the core unloaded, so a correct load still works.
  ASSERT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, origin_, Bytes{}}).status());
  EXPECT_THAT(Call(*core, ecall::Call::kInit, {}).status().message(), HasSubstr("already initialised"));
}

TEST_F(EnclaveCoreTest, SameMeasurementJoinsDifferentMeasurementIsRefused) {
  auto a = NewCore();
  ASSERT_OK(Call(*a, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  auto env = Call(*a, ecall::Call::kInit, {});
  ASSERT_OK(env.status());
  auto b = NewCore();
  ASSERT_OK(Call(*b, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  ASSERT_OK(Join(*b, *a));
  EXPECT_FALSE(b->sealed());
  EXPECT_EQ(StatusOf(*b)["root_key_id"], StatusOf(*a)["root_key_id"]);

  auto c = NewCore(crypto::RandomBytes(32));
  ASSERT_OK(Call(*c, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  Status refused = Join(*c, *a);
  EXPECT_THAT(refused.message(), HasSubstr("measurement"));
  EXPECT_TRUE(c->sealed());
  // A debug build of the same code is refused too, and a sealed node grants nothing.
  auto d = NewCore({}, /*debug=*/true);
  ASSERT_OK(Call(*d, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  EXPECT_THAT(Join(*d, *a).message(), HasSubstr("debug"));
  auto sealed_peer = NewCore();
  ASSERT_OK(Call(*sealed_peer, ecall::Call::kLoad, {ToBytes(custody_.json), (*env)[0], (*env)[1], Bytes{}}).status());
  auto e = NewCore();
  ASSERT_OK(Call(*e, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  EXPECT_THAT(Join(*e, *sealed_peer).message(), HasSubstr("sealed"));
}

TEST_F(EnclaveCoreTest, JoinRefusesAPeerOfAnotherCustody) {
  auto a = NewCore();
  ASSERT_OK(Call(*a, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  ASSERT_OK(Call(*a, ecall::Call::kInit, {}).status());
  Custody other;
  auto b = NewCore();
  ASSERT_OK(Call(*b, ecall::Call::kLoad, {ToBytes(other.json), Bytes{}, Bytes{}, Bytes{}}).status());
  EXPECT_THAT(Join(*b, *a).message(), HasSubstr("does not bind this session"));
}

TEST_F(EnclaveCoreTest, PingEchoesAndBadRequestsAreNamed) {
  auto core = NewCore();
  auto r = Call(*core, ecall::Call::kPing, {Bytes{1, 2, 3}});
  ASSERT_OK(r.status());
  EXPECT_EQ((*r)[0], (Bytes{1, 2, 3}));
  auto resp = ecall::Response::Decode(core->Handle(Bytes{1, 2, 3}));
  ASSERT_OK(resp.status());
  EXPECT_THAT(resp->message, HasSubstr("magic"));
  EXPECT_THAT(Call(*core, ecall::Call::kInit, {}).status().message(), HasSubstr("custody not loaded"));
}

}  // namespace
}  // namespace custos::enclave
