// Tests for the SIGMA-I handshake and record layer: a full session, then every refusal the
// protocol promises (signatures, MACs, evidence binding, authorization, replays, records,
// malformed messages). Hostile peers are built from the public pieces in messages.h.
#include "protocol/sigma/sigma.h"

#include <functional>

#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/testing.h"

namespace custos::sigma {
namespace {

using ::testing::HasSubstr;

// Fake evidence: "fake-evidence" || measurement(32) || report_data(32). The fake verifier plays
// the role of the DCAP/sim verifier: it checks the measurement and the report data binding.
constexpr std::string_view kFakeTag = "fake-evidence";

Bytes FakeEvidence(ByteSpan measurement, ByteSpan report_data) {
  return Concat({AsBytes(kFakeTag), measurement, report_data});
}

EvidenceVerifier FakeVerifier(Bytes want_measurement) {
  return [want = std::move(want_measurement)](ByteSpan evidence, ByteSpan expected) -> Status {
    if (evidence.size() != kFakeTag.size() + 64) return InvalidArgument("malformed evidence");
    ByteSpan measurement = evidence.subspan(kFakeTag.size(), 32);
    if (!ConstantTimeEquals(measurement, want)) return PermissionDenied("wrong measurement");
    return CheckReportData(evidence.subspan(kFakeTag.size() + 32, 32), expected);
  };
}

class SigmaTest : public ::testing::Test {
 protected:
  crypto::SigningKey keeper_key_ = crypto::SigningKey::Generate();
  crypto::SigningKey enclave_key_ = crypto::SigningKey::Generate();
  Bytes custody_hash_ = crypto::Sha256Bytes(AsBytes("{\"custody\": \"descriptor\"}"));
  Bytes measurement_ = crypto::Sha256Bytes(AsBytes("trusted core v1"));

  InitiatorConfig KeeperConfig() {
    return InitiatorConfig{"C1", custody_hash_, FakeVerifier(measurement_)};
  }
  EvidenceProvider HonestProvider(Bytes measurement) {
    return [measurement](ByteSpan report_data) -> StatusOr<Bytes> {
      return FakeEvidence(measurement, report_data);
    };
  }
  InitiatorAuthorizer Allowlist() {
    crypto::VerifyingKey allowed = keeper_key_.verifying_key();
    return [allowed](std::string_view id, const crypto::VerifyingKey& key) -> Status {
      if (id != "C1" || !(key == allowed)) return PermissionDenied("keeper is not in custody.json");
      return Status::Ok();
    };
  }
  ResponderConfig EnclaveConfig() {
    return ResponderConfig{custody_hash_, HonestProvider(measurement_), Allowlist()};
  }

  // EvidenceFor(g^y, pk_E, nonce_K) lets a hostile responder choose what its evidence binds.
  using EvidenceFor = std::function<Bytes(const crypto::Point&, const crypto::Point&, ByteSpan)>;
  struct HostileResponder {
    const crypto::SigningKey* signer;  // signs th_E
    crypto::Point claimed_key;         // pk_E sent in message 2
    EvidenceFor evidence;
    bool flip_mac = false;
  };

  // BuildMessage2 answers `message1` like SigmaResponder, but under the hostile choices.
  Bytes BuildMessage2(ByteSpan message1, const HostileResponder& h) {
    auto m1 = Message1::Decode(message1);
    EXPECT_TRUE(m1.ok());
    crypto::Scalar y = crypto::Scalar::Random();
    crypto::Point g_y = crypto::Point::BaseMul(y);
    auto keys = DeriveSessionKeys(y, m1->initiator_share, HandshakeTranscript(message1, g_y));
    EXPECT_TRUE(keys.ok());
    Bytes evidence = h.evidence(g_y, h.claimed_key, m1->nonce);
    crypto::Digest th_e = ResponderTranscript(message1, g_y, evidence, h.claimed_key);
    ResponderAuth auth{evidence, h.claimed_key,
                       h.signer->Sign(SignedBytes(kLabelResponderSignature, th_e)),
                       TranscriptMac(keys->km, kLabelResponderMac, th_e)};
    if (h.flip_mac) auth.mac[0] ^= 1;
    Message2 m2{g_y, {}};
    auto aead = crypto::AesGcm::Create(keys->handshake);
    EXPECT_TRUE(aead.ok());
    m2.sealed = aead->Seal(HandshakeNonce(2), auth.Encode(), m2.Header());
    return m2.Encode();
  }

  EvidenceFor GenuineEvidence() {
    return [this](const crypto::Point& g_y, const crypto::Point& pk, ByteSpan nonce) {
      return FakeEvidence(measurement_, *ReportData(g_y, pk, nonce, custody_hash_));
    };
  }

  Status RunInitiatorAgainst(const HostileResponder& h) {
    SigmaInitiator keeper(keeper_key_, KeeperConfig());
    auto m1 = keeper.Start();
    if (!m1.ok()) return m1.status();
    return keeper.Finish(BuildMessage2(*m1, h)).status();
  }

  struct Session {
    InitiatorResult keeper;
    ResponderResult enclave;
  };
  Session Handshake() {
    SigmaInitiator keeper(keeper_key_, KeeperConfig());
    SigmaResponder enclave(enclave_key_, EnclaveConfig());
    auto m1 = keeper.Start();
    EXPECT_TRUE(m1.ok());
    auto m2 = enclave.Respond(*m1);
    EXPECT_TRUE(m2.ok()) << m2.status().ToString();
    auto k = keeper.Finish(*m2);
    EXPECT_TRUE(k.ok()) << k.status().ToString();
    auto e = enclave.Finish(k->message3);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    return Session{std::move(k).value(), std::move(e).value()};
  }
};

TEST_F(SigmaTest, FullHandshakeAndRecordsBothWays) {
  Session s = Handshake();
  EXPECT_EQ(s.enclave.keeper_id, "C1");
  EXPECT_TRUE(s.enclave.keeper_key == keeper_key_.verifying_key());
  EXPECT_TRUE(s.keeper.responder_key == enclave_key_.verifying_key());
  EXPECT_EQ(s.keeper.evidence.size(), kFakeTag.size() + 64);

  for (int i = 0; i < 3; ++i) {
    Bytes msg = ToBytes("partial decryption " + std::to_string(i));
    auto rec = s.keeper.channel.Seal(msg);
    ASSERT_OK((rec).status());
    EXPECT_EQ(rec->size(), msg.size() + kRecordOverhead);
    auto pt = s.enclave.channel.Open(*rec);
    ASSERT_OK((pt).status());
    EXPECT_EQ(*pt, msg);

    Bytes reply = ToBytes("ack " + std::to_string(i));
    auto back = s.enclave.channel.Seal(reply);
    ASSERT_OK((back).status());
    auto got = s.keeper.channel.OpenSecret(*back);
    ASSERT_OK((got).status());
    EXPECT_EQ(got->ExposeAsString(), "ack " + std::to_string(i));
  }
  // An empty record is allowed and still authenticated.
  auto empty = s.keeper.channel.Seal({});
  ASSERT_OK((empty).status());
  EXPECT_OK((s.enclave.channel.Open(*empty)).status());
  EXPECT_EQ(s.enclave.channel.receive_sequence(), 4u);
}

TEST_F(SigmaTest, TwoSessionsHaveIndependentKeys) {
  Session a = Handshake();
  Session b = Handshake();
  auto rec = a.keeper.channel.Seal(AsBytes("for session a"));
  ASSERT_OK((rec).status());
  auto st = b.enclave.channel.Open(*rec);
  EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
}

TEST_F(SigmaTest, HonestHostileBuilderIsAccepted) {
  // The hostile builder with honest choices must pass, or the refusal tests prove nothing.
  HostileResponder h{&enclave_key_, enclave_key_.verifying_key().point(), GenuineEvidence()};
  EXPECT_OK(RunInitiatorAgainst(h));
}

TEST_F(SigmaTest, RefusesSignatureByAnotherKey) {
  crypto::SigningKey other = crypto::SigningKey::Generate();
  HostileResponder h{&other, enclave_key_.verifying_key().point(), GenuineEvidence()};
  Status st = RunInitiatorAgainst(h);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("sigma: responder signature does not verify"));
}

TEST_F(SigmaTest, RefusesResponderKeyTheEvidenceDoesNotVouchFor) {
  // An impostor signs correctly with its own key but replays evidence made for the enclave key.
  crypto::SigningKey impostor = crypto::SigningKey::Generate();
  crypto::Point genuine = enclave_key_.verifying_key().point();
  HostileResponder h{&impostor, impostor.verifying_key().point(),
                     [&](const crypto::Point& g_y, const crypto::Point&, ByteSpan nonce) {
                       return FakeEvidence(measurement_,
                                           *ReportData(g_y, genuine, nonce, custody_hash_));
                     }};
  Status st = RunInitiatorAgainst(h);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("sigma: evidence refused"));
  EXPECT_THAT(st.message(), HasSubstr("sigma: evidence does not bind this session"));
}

TEST_F(SigmaTest, RefusesTamperedResponderMac) {
  HostileResponder h{&enclave_key_, enclave_key_.verifying_key().point(), GenuineEvidence(),
                     /*flip_mac=*/true};
  Status st = RunInitiatorAgainst(h);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("sigma: responder MAC does not verify"));
}

TEST_F(SigmaTest, RefusesWhenVerifierRefusesMeasurement) {
  SigmaInitiator keeper(keeper_key_, KeeperConfig());
  ResponderConfig cfg = EnclaveConfig();
  cfg.provide_evidence = HonestProvider(crypto::Sha256Bytes(AsBytes("patched trusted core")));
  SigmaResponder enclave(enclave_key_, std::move(cfg));
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  auto m2 = enclave.Respond(*m1);
  ASSERT_OK((m2).status());
  auto st = keeper.Finish(*m2);
  EXPECT_EQ(st.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(st.status().message(), HasSubstr("sigma: evidence refused: wrong measurement"));
  // The failed initiator is spent.
  EXPECT_EQ(keeper.Finish(*m2).status().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(SigmaTest, RefusesEvidenceBoundToAnotherNonce) {
  HostileResponder h{&enclave_key_, enclave_key_.verifying_key().point(),
                     [&](const crypto::Point& g_y, const crypto::Point& pk, ByteSpan) {
                       Bytes stale = crypto::RandomBytes(kNonceSize);
                       return FakeEvidence(measurement_,
                                           *ReportData(g_y, pk, stale, custody_hash_));
                     }};
  Status st = RunInitiatorAgainst(h);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("evidence does not bind this session"));
}

TEST_F(SigmaTest, RefusesEvidenceBoundToAnotherDhShare) {
  HostileResponder h{&enclave_key_, enclave_key_.verifying_key().point(),
                     [&](const crypto::Point&, const crypto::Point& pk, ByteSpan nonce) {
                       crypto::Point other = crypto::Point::BaseMul(crypto::Scalar::Random());
                       return FakeEvidence(measurement_,
                                           *ReportData(other, pk, nonce, custody_hash_));
                     }};
  Status st = RunInitiatorAgainst(h);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("evidence does not bind this session"));
}

TEST_F(SigmaTest, RefusesEvidenceBoundToAnotherCustody) {
  SigmaInitiator keeper(keeper_key_, KeeperConfig());
  ResponderConfig cfg = EnclaveConfig();
  cfg.custody_hash = crypto::Sha256Bytes(AsBytes("{\"custody\": \"someone else's\"}"));
  SigmaResponder enclave(enclave_key_, std::move(cfg));
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  auto m2 = enclave.Respond(*m1);
  ASSERT_OK((m2).status());
  auto st = keeper.Finish(*m2);
  EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.status().message(), HasSubstr("evidence does not bind this session"));
}

TEST_F(SigmaTest, ResponderRefusesKeeperNotAllowlisted) {
  crypto::SigningKey stranger = crypto::SigningKey::Generate();
  SigmaInitiator keeper(stranger, KeeperConfig());  // claims "C1" with an unlisted key
  SigmaResponder enclave(enclave_key_, EnclaveConfig());
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  auto m2 = enclave.Respond(*m1);
  ASSERT_OK((m2).status());
  auto k = keeper.Finish(*m2);
  ASSERT_OK((k).status());
  auto e = enclave.Finish(k->message3);
  EXPECT_EQ(e.status().code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(e.status().message(), HasSubstr("sigma: initiator not authorized"));
}

TEST_F(SigmaTest, ResponderRefusesUnknownKeeperId) {
  InitiatorConfig cfg = KeeperConfig();
  cfg.keeper_id = "C9";
  SigmaInitiator keeper(keeper_key_, std::move(cfg));
  SigmaResponder enclave(enclave_key_, EnclaveConfig());
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  auto m2 = enclave.Respond(*m1);
  ASSERT_OK((m2).status());
  auto k = keeper.Finish(*m2);
  ASSERT_OK((k).status());
  EXPECT_EQ(enclave.Finish(k->message3).status().code(), ErrorCode::kPermissionDenied);
}

// A hand-built initiator lets the test forge message 3.
struct ManualInitiator {
  crypto::Scalar x = crypto::Scalar::Random();
  Bytes message1 = Message1{crypto::Point::BaseMul(x), crypto::RandomBytes(kNonceSize)}.Encode();

  Bytes Message3For(ByteSpan message2, const crypto::SigningKey& signer, const crypto::Point& pk,
                    bool flip_mac) {
    auto m2 = Message2::Decode(message2);
    EXPECT_TRUE(m2.ok());
    auto keys = DeriveSessionKeys(x, m2->responder_share,
                                  HandshakeTranscript(message1, m2->responder_share));
    EXPECT_TRUE(keys.ok());
    crypto::Digest th_k = InitiatorTranscript(message1, message2, "C1", pk);
    InitiatorAuth auth{"C1", pk, signer.Sign(SignedBytes(kLabelInitiatorSignature, th_k)),
                       TranscriptMac(keys->km, kLabelInitiatorMac, th_k)};
    if (flip_mac) auth.mac[31] ^= 0x80;
    auto aead = crypto::AesGcm::Create(keys->handshake);
    EXPECT_TRUE(aead.ok());
    return Message3{aead->Seal(HandshakeNonce(3), auth.Encode(), Message3::Header())}.Encode();
  }
};

TEST_F(SigmaTest, ResponderChecksInitiatorSignatureAndMac) {
  const crypto::Point& pk = keeper_key_.verifying_key().point();
  {
    ManualInitiator k;
    SigmaResponder enclave(enclave_key_, EnclaveConfig());
    auto m2 = enclave.Respond(k.message1);
    ASSERT_OK((m2).status());
    EXPECT_OK((enclave.Finish(k.Message3For(*m2, keeper_key_, pk, false))).status());
  }
  {
    ManualInitiator k;
    SigmaResponder enclave(enclave_key_, EnclaveConfig());
    auto m2 = enclave.Respond(k.message1);
    ASSERT_OK((m2).status());
    auto st = enclave.Finish(k.Message3For(*m2, keeper_key_, pk, true));
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("sigma: initiator MAC does not verify"));
  }
  {
    ManualInitiator k;
    SigmaResponder enclave(enclave_key_, EnclaveConfig());
    auto m2 = enclave.Respond(k.message1);
    ASSERT_OK((m2).status());
    crypto::SigningKey other = crypto::SigningKey::Generate();
    auto st = enclave.Finish(k.Message3For(*m2, other, pk, false));
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("sigma: initiator signature does not verify"));
  }
}

TEST_F(SigmaTest, RefusesMessage2ReplayedFromEarlierSession) {
  SigmaInitiator old_keeper(keeper_key_, KeeperConfig());
  SigmaResponder old_enclave(enclave_key_, EnclaveConfig());
  auto old_m1 = old_keeper.Start();
  ASSERT_OK((old_m1).status());
  auto old_m2 = old_enclave.Respond(*old_m1);
  ASSERT_OK((old_m2).status());
  ASSERT_OK((old_keeper.Finish(*old_m2)).status());

  SigmaInitiator keeper(keeper_key_, KeeperConfig());
  ASSERT_OK((keeper.Start()).status());
  auto st = keeper.Finish(*old_m2);
  EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.status().message(),
              HasSubstr("sigma: message 2 does not decrypt under this session's handshake key"));
}

TEST_F(SigmaTest, RefusesMessage3ReplayedIntoNewSession) {
  SigmaInitiator old_keeper(keeper_key_, KeeperConfig());
  SigmaResponder old_enclave(enclave_key_, EnclaveConfig());
  auto old_m1 = old_keeper.Start();
  ASSERT_OK((old_m1).status());
  auto old_m2 = old_enclave.Respond(*old_m1);
  ASSERT_OK((old_m2).status());
  auto old_k = old_keeper.Finish(*old_m2);
  ASSERT_OK((old_k).status());

  // Same message 1 replayed: the enclave draws a fresh y, so the old message 3 cannot fit.
  SigmaResponder enclave(enclave_key_, EnclaveConfig());
  ASSERT_OK((enclave.Respond(*old_m1)).status());
  auto st = enclave.Finish(old_k->message3);
  EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.status().message(), HasSubstr("sigma: message 3 does not decrypt"));
}

TEST_F(SigmaTest, OutOfOrderCallsAreRefused) {
  SigmaInitiator keeper(keeper_key_, KeeperConfig());
  EXPECT_EQ(keeper.Finish(Bytes(10)).status().code(), ErrorCode::kFailedPrecondition);
  SigmaResponder enclave(enclave_key_, EnclaveConfig());
  EXPECT_EQ(enclave.Finish(Bytes(10)).status().code(), ErrorCode::kFailedPrecondition);
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  EXPECT_EQ(keeper.Start().status().code(), ErrorCode::kFailedPrecondition);
  ASSERT_OK((enclave.Respond(*m1)).status());
  EXPECT_EQ(enclave.Respond(*m1).status().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(SigmaTest, BadConfigIsRefused) {
  InitiatorConfig cfg = KeeperConfig();
  cfg.custody_hash.pop_back();
  SigmaInitiator keeper(keeper_key_, std::move(cfg));
  EXPECT_EQ(keeper.Start().status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SigmaTest, RecordsRefuseReplayReorderDropAndTamper) {
  Session s = Handshake();
  std::vector<Bytes> recs;
  for (int i = 0; i < 4; ++i) {
    auto r = s.keeper.channel.Seal(ToBytes("record " + std::to_string(i)));
    ASSERT_OK((r).status());
    recs.push_back(*r);
  }
  // Reordered: record 1 before record 0.
  {
    Session t = Handshake();
    auto a = t.keeper.channel.Seal(AsBytes("a"));
    auto b = t.keeper.channel.Seal(AsBytes("b"));
    ASSERT_OK((a).status());
    ASSERT_OK((b).status());
    auto st = t.enclave.channel.Open(*b);
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("sigma: record out of sequence"));
    // The channel is closed for reading after a refusal.
    EXPECT_EQ(t.enclave.channel.Open(*a).status().code(), ErrorCode::kFailedPrecondition);
  }
  // Replayed: record 0 twice.
  ASSERT_OK((s.enclave.channel.Open(recs[0])).status());
  {
    Session t = Handshake();
    auto a = t.keeper.channel.Seal(AsBytes("a"));
    ASSERT_OK((a).status());
    ASSERT_OK((t.enclave.channel.Open(*a)).status());
    auto st = t.enclave.channel.Open(*a);
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("out of sequence"));
  }
  // Dropped then continued: record 1 is lost, record 2 arrives.
  {
    auto st = s.enclave.channel.Open(recs[2]);
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
  }
  // Tampered: a flipped bit in the ciphertext, in the tag, or a rewritten sequence number.
  for (bool in_tag : {false, true}) {
    Session t = Handshake();
    auto a = t.keeper.channel.Seal(AsBytes("tamper me"));
    ASSERT_OK((a).status());
    Bytes bad = *a;
    bad[in_tag ? bad.size() - 1 : 8] ^= 0x01;
    auto st = t.enclave.channel.Open(bad);
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("sigma: record does not authenticate"));
  }
  {
    // Rewriting the sequence number to the expected value of a later record does not help:
    // the nonce and AAD bind the number the sender used.
    Session t = Handshake();
    auto r0 = t.keeper.channel.Seal(AsBytes("zero"));
    auto r1 = t.keeper.channel.Seal(AsBytes("one"));
    ASSERT_OK((r0).status());
    ASSERT_OK((r1).status());
    Bytes forged = *r1;
    forged[7] = 0;  // claims to be record 0
    auto st = t.enclave.channel.Open(forged);
    EXPECT_EQ(st.status().code(), ErrorCode::kIntegrity);
    EXPECT_THAT(st.status().message(), HasSubstr("does not authenticate"));
  }
  {
    // Reflection: a keeper's own record sent back to it does not open.
    Session t = Handshake();
    auto a = t.keeper.channel.Seal(AsBytes("mine"));
    ASSERT_OK((a).status());
    EXPECT_EQ(t.keeper.channel.Open(*a).status().code(), ErrorCode::kIntegrity);
  }
  {
    // Truncated records.
    Session t = Handshake();
    auto a = t.keeper.channel.Seal(AsBytes("x"));
    ASSERT_OK((a).status());
    Bytes cut(a->begin(), a->end() - 1);
    EXPECT_EQ(t.enclave.channel.Open(cut).status().code(), ErrorCode::kIntegrity);
    Session u = Handshake();
    EXPECT_EQ(u.enclave.channel.Open(Bytes(kRecordOverhead - 1)).status().code(),
              ErrorCode::kIntegrity);
  }
}

TEST_F(SigmaTest, MalformedMessagesAreRefused) {
  SigmaInitiator keeper(keeper_key_, KeeperConfig());
  SigmaResponder enclave(enclave_key_, EnclaveConfig());
  auto m1 = keeper.Start();
  ASSERT_OK((m1).status());
  EXPECT_EQ(m1->size(), 67u);
  auto m2 = enclave.Respond(*m1);
  ASSERT_OK((m2).status());
  auto k = keeper.Finish(*m2);
  ASSERT_OK((k).status());
  const Bytes& m3 = k->message3;

  auto refuses_every_mutilation = [](const Bytes& good, auto decode) {
    ASSERT_OK((decode(good)).status());
    for (size_t n = 0; n < good.size(); ++n) {
      Bytes cut(good.begin(), good.begin() + n);
      EXPECT_EQ(decode(cut).status().code(), ErrorCode::kInvalidArgument) << "length " << n;
    }
    Bytes longer = good;
    longer.push_back(0);
    auto st = decode(longer);
    EXPECT_EQ(st.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(st.status().message(), HasSubstr("trailing bytes"));
    Bytes wrong_suite = good;
    wrong_suite[0] = 2;
    EXPECT_EQ(decode(wrong_suite).status().code(), ErrorCode::kInvalidArgument);
    Bytes wrong_type = good;
    wrong_type[1] ^= 0x07;
    EXPECT_EQ(decode(wrong_type).status().code(), ErrorCode::kInvalidArgument);
  };
  refuses_every_mutilation(*m1, [](ByteSpan b) { return Message1::Decode(b); });
  refuses_every_mutilation(*m2, [](ByteSpan b) { return Message2::Decode(b); });
  refuses_every_mutilation(m3, [](ByteSpan b) { return Message3::Decode(b); });

  // A point off the curve in message 1.
  Bytes off_curve = *m1;
  off_curve[2] = 0x02;
  for (size_t i = 3; i < 35; ++i) off_curve[i] = 0xff;
  EXPECT_EQ(Message1::Decode(off_curve).status().code(), ErrorCode::kInvalidArgument);

  // The state machines pass malformed bytes through as refusals.
  Bytes m1_trailing = *m1;
  m1_trailing.push_back(0);
  SigmaResponder e2(enclave_key_, EnclaveConfig());
  EXPECT_EQ(e2.Respond(m1_trailing).status().code(), ErrorCode::kInvalidArgument);
  SigmaInitiator k2(keeper_key_, KeeperConfig());
  ASSERT_OK((k2.Start()).status());
  Bytes m2_cut(m2->begin(), m2->end() - 1);
  EXPECT_EQ(k2.Finish(m2_cut).status().code(), ErrorCode::kInvalidArgument);
  Bytes m3_trailing = m3;
  m3_trailing.push_back(0);
  EXPECT_EQ(enclave.Finish(m3_trailing).status().code(), ErrorCode::kInvalidArgument);

  // The inner authentication payloads refuse trailing bytes and truncation too.
  ResponderAuth ra{Bytes{1, 2, 3}, enclave_key_.verifying_key().point(), Bytes(64, 7),
                   Bytes(32, 9)};
  Bytes ra_bytes = ra.Encode();
  ASSERT_OK((ResponderAuth::Decode(ra_bytes)).status());
  ra_bytes.push_back(0);
  EXPECT_EQ(ResponderAuth::Decode(ra_bytes).status().code(), ErrorCode::kInvalidArgument);
  InitiatorAuth ia{"C1", keeper_key_.verifying_key().point(), Bytes(64, 7), Bytes(32, 9)};
  Bytes ia_bytes = ia.Encode();
  ASSERT_OK((InitiatorAuth::Decode(ia_bytes)).status());
  ia_bytes.pop_back();
  EXPECT_EQ(InitiatorAuth::Decode(ia_bytes).status().code(), ErrorCode::kInvalidArgument);
  InitiatorAuth empty_id{"", keeper_key_.verifying_key().point(), Bytes(64, 7), Bytes(32, 9)};
  EXPECT_EQ(InitiatorAuth::Decode(empty_id.Encode()).status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(SigmaTest, ReportDataIsTheDesignFormula) {
  crypto::Point g_y = crypto::Point::BaseMul(crypto::Scalar::FromUint(7));
  crypto::Point pk = enclave_key_.verifying_key().point();
  Bytes nonce(kNonceSize, 0x42);
  auto rd = ReportData(g_y, pk, nonce, custody_hash_);
  ASSERT_OK((rd).status());
  Bytes want = crypto::Sha256Bytes(
      Concat({AsBytes("custos/v1/report"), g_y.Encode(), pk.Encode(), nonce, custody_hash_}));
  EXPECT_EQ(*rd, want);
  EXPECT_FALSE(ReportData(g_y, pk, nonce, Bytes(31)).ok());
}

TEST(SigmaReportData, SixtyFourByteFieldBindsWithZeroPadding) {
  Bytes rd(32, 0x5a);
  Bytes field = ReportDataField(rd);
  ASSERT_EQ(field.size(), 64u);
  EXPECT_OK(CheckReportData(field, rd));
  field[40] = 1;
  EXPECT_EQ(CheckReportData(field, rd).code(), ErrorCode::kIntegrity);
  field[40] = 0;
  field[3] ^= 1;
  EXPECT_EQ(CheckReportData(field, rd).code(), ErrorCode::kIntegrity);
}

}  // namespace
}  // namespace custos::sigma
