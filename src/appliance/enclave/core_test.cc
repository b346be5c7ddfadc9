// The trusted core driven in-process through its call interface, with real SIGMA initiators
// playing the keepers. The same flows with real processes are in tests/e2e/appliance_test.cc.
#include "appliance/enclave/core.h"

#include "protocol/attestation/evidence.h"
#include "crypto/random.h"
#include "appliance/enclave/core_testing.h"
#include "protocol/envelope/dual_control.h"
#include "gmock/gmock.h"
#include "protocol/sigma/release.h"
#include "tests/testing/testing.h"
#include "protocol/threshold/shamir.h"

namespace custos::enclave {
namespace {

using crypto::Point;
using crypto::Scalar;
using custody::Domain;
using ::testing::HasSubstr;
using ::testing::Not;

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
  // The failure is remembered: later keepers are refused before they release anything.
  EXPECT_THAT(StatusOf(*core).value("unseal_error", ""), HasSubstr("not made by an enclave"));
  auto again = Release(*core, K("P1"));
  EXPECT_EQ(again.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(again.status().message(), HasSubstr("not made by an enclave"));
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

// Rolling upgrade (issue 15 item 6): a core of a new build joins a core of the old one only
// with a measurement approval signed by t_p provider AND t_c customer keepers (here P1 and two
// of C1..C3); one domain alone, a tampered or expired approval, or an approval of another
// measurement is refused by the serving core, whatever the joiner's own core does.
TEST_F(EnclaveCoreTest, RollingUpgradeJoinNeedsApprovalOfBothDomains) {
  auto old_node = NewCore();
  ASSERT_OK(Call(*old_node, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  ASSERT_OK(Call(*old_node, ecall::Call::kInit, {}).status());
  Bytes next = crypto::RandomBytes(32);
  auto load = [&](EnclaveCore& core) {
    return Call(core, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status();
  };

  // Approved by both domains: the new build joins the old one and gets the same root key.
  std::string both = Approve(next, {"P1", "C1", "C3"});
  auto upgraded = NewCore(next);
  ASSERT_OK(load(*upgraded));
  ASSERT_OK(Join(*upgraded, *old_node, ToBytes(both)));
  EXPECT_FALSE(upgraded->sealed());
  EXPECT_EQ(StatusOf(*upgraded)["root_key_id"], StatusOf(*old_node)["root_key_id"]);
  // Later nodes of the new build join it without an approval (same measurement) ...
  auto second = NewCore(next);
  ASSERT_OK(load(*second));
  ASSERT_OK(Join(*second, *upgraded));
  // ... but the old build does not join the new one (no downgrade through a join).
  auto old_again = NewCore();
  ASSERT_OK(load(*old_again));
  EXPECT_THAT(Join(*old_again, *upgraded).message(), HasSubstr("measurement not allowed"));

  // One domain alone: the joining core refuses to start, and the serving core refuses the
  // request when a compromised joiner sends it anyway.
  std::string provider_only = Approve(next, {"P1"});
  std::string customer_only = Approve(next, {"C1", "C2", "C3"});
  auto lone = NewCore(next);
  ASSERT_OK(load(*lone));
  EXPECT_THAT(Join(*lone, *old_node, ToBytes(provider_only)).message(), HasSubstr("customer 0 of 2 needed"));
  EXPECT_TRUE(lone->sealed());
  Status served = RawJoin(*old_node, next, provider_only);
  EXPECT_EQ(served.code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(served.message(), HasSubstr("join refused: measurement approval: provider 1 of 1 needed, customer 0 of 2"));
  EXPECT_THAT(RawJoin(*old_node, next, customer_only).message(), HasSubstr("provider 0 of 1 needed"));
  // Without any approval, another measurement is refused as before.
  EXPECT_THAT(RawJoin(*old_node, next, "").message(), HasSubstr("measurement not allowed"));
  // The approval is for `next`: evidence of a third build does not ride on it.
  EXPECT_THAT(RawJoin(*old_node, crypto::RandomBytes(32), both).message(), HasSubstr("measurement approval: approves"));
  // Tampered (a signature moved to another measurement) and expired approvals.
  std::string tampered = both;
  tampered.replace(tampered.find(HexEncode(next)), 64, HexEncode(crypto::RandomBytes(32)));
  EXPECT_THAT(RawJoin(*old_node, next, tampered).message(), HasSubstr("does not verify"));
  EXPECT_THAT(RawJoin(*old_node, next, Approve(next, {"P1", "C1", "C2"}, std::time(nullptr) - 10)).message(),
              HasSubstr("expired"));
  // An approval of the same measurement under another custody's keepers.
  Custody other;
  custody::MeasurementApproval foreign;
  foreign.joint_key = other.d.public_key;
  foreign.tee = "sim";
  foreign.measurement = next;
  foreign.not_after = std::time(nullptr) + 3600;
  for (const TestKeeper& k : other.keepers) foreign.Sign(k.id, k.identity);
  EXPECT_THAT(RawJoin(*old_node, next, foreign.ToJsonString()).message(), HasSubstr("another custody"));
  // Finally the honest path still works through the raw joiner (the check above is the serving
  // core's, not an artefact of RawJoin).
  EXPECT_OK(RawJoin(*old_node, next, both));
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

// A reshare changes the custody descriptor but not Y: the core adopts the successor and
// unseals with the new keepers' partials, with the same root key (issue 11).
TEST_F(EnclaveCoreTest, ReshareKeepsTheRootKey) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  nlohmann::json before = StatusOf(*core);
  EXPECT_EQ(before["origin_binding"], "joint-key");
  EXPECT_EQ(before["custody_epoch"], 1u);
  Custody next = custody_.Successor(Domain::kCustomer, 3, 2, "N");
  auto fp = Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(next.json)});
  ASSERT_OK(fp.status());
  EXPECT_EQ((*fp)[0], next.d.Fingerprint());
  nlohmann::json after = StatusOf(*core);
  EXPECT_EQ(after["custody"], next.d.FingerprintHex());
  EXPECT_EQ(after["custody_epoch"], 2u);
  EXPECT_EQ(after["public_key"], before["public_key"]);
  // Old customer keepers are no longer listed; the new ones unseal with the provider.
  EXPECT_THAT(Release(*core, K("C1"), false, &next).status().message(), HasSubstr("not in custody.json"));
  // A keeper still on the old descriptor refuses the core (the evidence binds the new one).
  EXPECT_THAT(Release(*core, K("P1")).status().message(), HasSubstr("does not bind this session"));
  const TestKeeper& p1 = next.keepers[0];
  ASSERT_EQ(p1.id, "P1");
  ASSERT_OK(Release(*core, p1, false, &next).status());
  ASSERT_OK(Release(*core, next.keepers[1], false, &next).status());
  auto last = Release(*core, next.keepers[3], false, &next);
  ASSERT_OK(last.status());
  EXPECT_TRUE(last->unsealed);
  EXPECT_EQ(StatusOf(*core)["root_key_id"], root_id);
  // A provider reshare after that, adopted by an unsealed core: the root key stays, and a
  // freshly started core unseals under it too.
  Custody third = next.Successor(Domain::kProvider, 2, 2, "Q");
  ASSERT_OK(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(third.json)}).status());
  EXPECT_FALSE(core->sealed());
  EXPECT_EQ(StatusOf(*core)["root_key_id"], root_id);
  auto fresh = NewCore();
  ASSERT_OK(Call(*fresh, ecall::Call::kLoad, {ToBytes(third.json), envelope_, origin_, Bytes{}}).status());
  for (const TestKeeper& k : third.keepers)
    if (k.id == "Q1" || k.id == "Q2" || k.id == "N1" || k.id == "N3") {
      ASSERT_OK(Release(*fresh, k, false, &third).status());
    }
  EXPECT_FALSE(fresh->sealed());
  EXPECT_EQ(StatusOf(*fresh)["root_key_id"], root_id);
}

TEST_F(EnclaveCoreTest, CustodyUpdateRefusesAnotherKeyAnOlderEpochAndBadSignatures) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  Custody other;  // another DKG: another Y
  EXPECT_THAT(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(other.json)}).status().message(),
              HasSubstr("another joint public key"));
  Custody next = custody_.Successor(Domain::kCustomer, 3, 2, "N");
  std::string forged = next.json;
  forged.replace(forged.find("\"threshold\": 2"), 14, "\"threshold\": 1");
  EXPECT_FALSE(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(forged)}).ok());
  ASSERT_OK(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(next.json)}).status());
  // Going back, or sideways to another descriptor of the same epoch, is refused.
  EXPECT_THAT(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(custody_.json)}).status().message(),
              HasSubstr("not newer"));
  Custody sibling = custody_.Successor(Domain::kCustomer, 2, 2, "S");
  EXPECT_THAT(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(sibling.json)}).status().message(),
              HasSubstr("not newer"));
  // The same descriptor again is a no-op.
  ASSERT_OK(Call(*core, ecall::Call::kCustodyUpdate, {ToBytes(next.json)}).status());
  EXPECT_EQ(StatusOf(*core)["custody"], next.d.FingerprintHex());
  EXPECT_THAT(Call(*core, ecall::Call::kOriginRebind, {}).status().message(), HasSubstr("sealed"));
}

// Envelopes from cores before this release carry evidence bound to one custody fingerprint.
// The core accepts it for the descriptor it knows and its predecessor (the appliance a reshare
// stranded), re-binds it to Y on request, and names the cause when it cannot.
TEST_F(EnclaveCoreTest, LegacyOriginIsAcceptedReboundAndNamedWhenStranded) {
  std::string root_id;
  InitAndReload(&root_id);
  auto id = HexDecode(root_id);
  ASSERT_OK(id.status());
  Bytes legacy_rd = sigma::ReportDataField(sigma::LegacyEnvelopeOriginReportData(
      sigma::EnvelopeDigest(envelope_), custody_.d.Fingerprint(), *id));
  auto legacy = platform_->MakeEvidence(measurement_, {}, legacy_rd);
  ASSERT_OK(legacy.status());
  Custody next = custody_.Successor(Domain::kCustomer, 3, 2, "N");
  // Stranded by an old build: the node now has the successor only. One step back is known.
  auto core = NewCore();
  ASSERT_OK(Call(*core, ecall::Call::kLoad, {ToBytes(next.json), envelope_, *legacy, Bytes{}}).status());
  EXPECT_EQ(StatusOf(*core)["origin_binding"], "custody-fingerprint");
  for (int i : {0, 1, 2}) ASSERT_OK(Release(*core, next.keepers[i], false, &next).status());
  ASSERT_FALSE(core->sealed());
  EXPECT_EQ(StatusOf(*core)["root_key_id"], root_id);
  auto rebound = Call(*core, ecall::Call::kOriginRebind, {});
  ASSERT_OK(rebound.status());
  auto decoded = sigma::EnvelopeOrigin::Decode((*rebound)[0]);
  ASSERT_OK(decoded.status());
  EXPECT_EQ(decoded->binding, sigma::OriginBinding::kJointKey);
  EXPECT_EQ(StatusOf(*core)["origin_binding"], "joint-key");
  // Two reshares later, the re-bound file still opens; the legacy one is refused with its cause.
  Custody third = next.Successor(Domain::kProvider, 1, 1, "Q");
  auto later = NewCore();
  ASSERT_OK(Call(*later, ecall::Call::kLoad, {ToBytes(third.json), envelope_, (*rebound)[0], Bytes{}}).status());
  for (const TestKeeper& k : third.keepers)
    if (k.id == "Q1" || k.id == "N1" || k.id == "N2") {
      ASSERT_OK(Release(*later, k, false, &third).status());
    }
  EXPECT_FALSE(later->sealed());
  auto stranded = NewCore();
  ASSERT_OK(Call(*stranded, ecall::Call::kLoad, {ToBytes(third.json), envelope_, *legacy, Bytes{}}).status());
  Status refused;
  for (const TestKeeper& k : third.keepers)
    if (k.id == "Q1" || k.id == "N1" || k.id == "N2") refused = Release(*stranded, k, false, &third).status();
  EXPECT_EQ(refused.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(refused.message(), HasSubstr("custody fingerprint changed"));
  EXPECT_TRUE(stranded->sealed());
  // A legacy file declared as joint-key binding (the host relabels it) is refused too.
  sigma::EnvelopeOrigin relabelled{sigma::OriginBinding::kJointKey, *legacy};
  auto relabel = NewCore();
  ASSERT_OK(Call(*relabel, ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, relabelled.Encode(), Bytes{}}).status());
  ASSERT_OK(Release(*relabel, K("P1")).status());
  ASSERT_OK(Release(*relabel, K("C1")).status());
  EXPECT_THAT(Release(*relabel, K("C2")).status().message(), HasSubstr("not made by an enclave for this root key"));
  // Malformed origin files are refused at load.
  Bytes bad = relabelled.Encode();
  bad[4] = 9;  // version
  EXPECT_THAT(Call(*NewCore(), ecall::Call::kLoad, {ToBytes(custody_.json), envelope_, bad, Bytes{}}).status().message(),
              HasSubstr("version 9"));
}

// A flood of message 1s (anyone can send them) pushes out only other unauthenticated sessions:
// a keeper that has finished its handshake keeps its session and its partial counts.
TEST_F(EnclaveCoreTest, HandshakeFloodCannotEvictAnAuthenticatedKeeperSession) {
  std::string root_id;
  auto core = InitAndReload(&root_id);
  const TestKeeper& k = K("P1");
  sigma::InitiatorConfig cfg;
  cfg.keeper_id = k.id;
  cfg.custody_hash = custody_.d.Fingerprint();
  cfg.verify_evidence = [](ByteSpan, ByteSpan) { return Status::Ok(); };
  sigma::SigmaInitiator init(k.identity, cfg);
  auto m1 = init.Start();
  ASSERT_OK(m1.status());
  auto r2 = Call(*core, ecall::Call::kSigmaRespond, {*m1});
  ASSERT_OK(r2.status());
  auto fin = init.Finish((*r2)[1]);
  ASSERT_OK(fin.status());
  auto r3 = Call(*core, ecall::Call::kSigmaFinish, {(*r2)[0], fin->message3});
  ASSERT_OK(r3.status());
  auto first = fin->channel.Open((*r3)[0]);
  ASSERT_OK(first.status());
  auto req = sigma::UnsealRequest::Decode(*first);
  ASSERT_OK(req.status());
  // 4 x kMaxSessions strangers start handshakes.
  for (size_t i = 0; i < 4 * kMaxSessions; ++i) {
    crypto::SigningKey stranger = crypto::SigningKey::Generate();
    sigma::SigmaInitiator s(stranger, cfg);
    ASSERT_OK(Call(*core, ecall::Call::kSigmaRespond, {*s.Start()}).status());
  }
  const custody::KeeperRecord* me = custody_.d.FindKeeper(k.id);
  threshold::PartialDecryption p = threshold::ComputePartial(k.index, k.share, me->verification_key, req->r,
                                                             sigma::UnsealProofContext(req->envelope_digest));
  auto rec = fin->channel.Seal(sigma::EncodePartialRelease(p));
  ASSERT_OK(rec.status());
  auto r4 = Call(*core, ecall::Call::kRecord, {(*r2)[0], *rec});
  ASSERT_OK(r4.status());
  auto progress = sigma::UnsealProgress::Decode(*fin->channel.Open((*r4)[0]));
  ASSERT_OK(progress.status());
  EXPECT_EQ(progress->provider, 1);
  // A keeper whose partial is already held gets progress, not a second request.
  auto again = Release(*core, k);
  ASSERT_OK(again.status());
  EXPECT_EQ(again->provider, 1);
  EXPECT_FALSE(again->unsealed);
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

// Dispatch is a table: every call calls.h declares reaches its own handler. A system call without
// a row would fall through to the KMS table (sealed: "enclave: sealed", reason kSealed); a KMS
// call without a row in KmsOperations would answer "kms: not a KMS call" once unsealed.
TEST_F(EnclaveCoreTest, EveryDeclaredCallHasAHandler) {
  auto Answer = [](EnclaveCore& core, ecall::Call call) {
    ecall::Request req{call, std::vector<Bytes>(static_cast<size_t>(ecall::ArgCount(call)))};
    auto resp = ecall::Response::Decode(core.Handle(req.Encode()));
    EXPECT_OK(resp.status());
    return resp.ok() ? *resp : ecall::Response{};
  };
  auto sealed = NewCore();
  auto unsealed = NewCore();
  ASSERT_OK(Call(*unsealed, ecall::Call::kLoad, {ToBytes(custody_.json), Bytes{}, Bytes{}, Bytes{}}).status());
  ASSERT_OK(Call(*unsealed, ecall::Call::kInit, {}).status());
  int calls = 0;
  for (uint16_t v = 0; v < 256; ++v) {
    auto call = static_cast<ecall::Call>(v);
    if (ecall::ArgCount(call) < 0) continue;
    ++calls;
    bool kms = ecall::CallName(call).substr(0, 4) == "kms-" ||
               ecall::CallName(call).substr(0, 4) == "xks-" ||
               ecall::CallName(call).substr(0, 5) == "kmip-" || call == ecall::Call::kAuditAppend ||
               call == ecall::Call::kAuditLine;
    ecall::Response a = Answer(*sealed, call);
    if (kms) {
      EXPECT_EQ(a.reason, ecall::Reason::kSealed) << ecall::CallName(call);
      EXPECT_THAT(Answer(*unsealed, call).message, Not(HasSubstr("not a KMS call"))) << ecall::CallName(call);
    } else {
      EXPECT_NE(a.reason, ecall::Reason::kSealed) << ecall::CallName(call) << " has no row: " << a.message;
    }
  }
  EXPECT_EQ(calls, 32);
}

}  // namespace
}  // namespace custos::enclave
