// Tests for the audit witness check (audit/witness.h): a head that extends the witnessed one
// through chained records is accepted; a head before it (rollback), another hash at the
// witnessed seq (fork), a record that does not chain, a gap, records that stop short, a head
// signed by another key or not at all, a log gone from the shared database are refused, each
// naming its check; the state round-trips through JSON.
#include "protocol/audit/witness.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::audit {
namespace {

using ::testing::HasSubstr;

// Chain is a log of n entries signed by `key` at every seq.
struct Chain {
  explicit Chain(const crypto::SigningKey& key, int n, const std::string& tag = "a") : key(key) {
    Bytes h = GenesisHash();
    for (int i = 1; i <= n; ++i) {
      std::string e = "{\"n\":" + std::to_string(i) + ",\"t\":\"" + tag + "\"}";
      h = EntryHash(h, i, e);
      records.push_back({static_cast<uint64_t>(i), e, h});
    }
  }
  HeadShown Head(uint64_t seq, const std::string& log = "node-1") const {
    const RecordShown& r = records[seq - 1];
    return {log, HexEncode(key.verifying_key().Encode()), seq, r.hash, key.Sign(CheckpointMessage(seq, r.hash)), {}, {}};
  }
  WitnessedHead At(uint64_t seq, Bytes run = {}) const { return {seq, records[seq - 1].hash, std::move(run)}; }
  // Lined is Head(seq) with the core's line statement of run `run`.
  HeadShown Lined(uint64_t seq, const Bytes& run) const {
    HeadShown h = Head(seq);
    h.line_run = run;
    h.line_signature = key.Sign(LineMessage(run, seq, h.hash));
    return h;
  }
  const crypto::SigningKey& key;
  std::vector<RecordShown> records;
};

CustodyWitness Witnessed(const Chain& c, uint64_t seq, const std::string& log = "node-1") {
  CustodyWitness w;
  w.audit_public_key = HexEncode(c.key.verifying_key().Encode());
  w.logs[log] = c.At(seq);
  return w;
}

// CheckAll feeds the records from the check's NextSeq to the head, as the keeper does.
Status CheckAll(const CustodyWitness& w, const HeadShown& head, const std::vector<RecordShown>& records) {
  ASSIGN_OR_RETURN(WitnessCheck check, WitnessCheck::Begin(w, head));
  while (!check.Done()) {
    uint64_t next = check.NextSeq();
    if (next == 0 || next > records.size()) break;
    RETURN_IF_ERROR(check.Add(records[next - 1]));
  }
  return check.Finish();
}

class WitnessTest : public ::testing::Test {
 protected:
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
};

TEST_F(WitnessTest, AHeadThatExtendsTheWitnessedOneIsAccepted) {
  Chain c(key_, 20);
  EXPECT_OK(CheckAll(Witnessed(c, 7), c.Head(20), c.records));
  EXPECT_OK(CheckAll(Witnessed(c, 20), c.Head(20), c.records));  // unchanged
  EXPECT_OK(CheckAll(CustodyWitness{}, c.Head(20), c.records));  // first sight
  EXPECT_OK(CheckAll(CustodyWitness{}, HeadShown{"node-1", "", 0, {}, {}, {}, {}}, {}));  // nothing signed yet
}

TEST_F(WitnessTest, AHeadBeforeTheWitnessedOneIsARollback) {
  Chain c(key_, 20);
  Status st = CheckAll(Witnessed(c, 15), c.Head(9), c.records);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' ends at signed head seq 9, before seq 15 "
                                      "this keeper witnessed"));
  st = CheckAll(Witnessed(c, 15), HeadShown{"node-1", "", 0, {}, {}, {}, {}}, {});
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' has no signed head, this keeper witnessed seq 15"));
  // The head is later, but the record at the witnessed seq is gone.
  WitnessCheck check = *WitnessCheck::Begin(Witnessed(c, 15), c.Head(20));
  st = check.Add(c.records[16]);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' has no record at seq 15 this keeper witnessed"));
}

TEST_F(WitnessTest, AnotherHashAtTheWitnessedSeqIsAFork) {
  Chain witnessed(key_, 12, "a");
  Chain other(key_, 20, "b");  // the same key signed another history (an old copy extended)
  Status st = CheckAll(Witnessed(witnessed, 12), other.Head(12), other.records);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("audit fork: log 'node-1' has hash " + HexEncode(other.records[11].hash) +
                                      " at seq 12, this keeper witnessed " + HexEncode(witnessed.records[11].hash)));
  st = CheckAll(Witnessed(witnessed, 12), other.Head(20), other.records);
  EXPECT_THAT(st.message(), HasSubstr("audit fork: log 'node-1' has hash"));
  EXPECT_THAT(st.message(), HasSubstr("two different heads at one sequence number"));
}

TEST_F(WitnessTest, RecordsThatDoNotChainSkipOrStopShortAreRefused) {
  Chain c(key_, 20);
  std::vector<RecordShown> edited = c.records;
  edited[12].entry = "{\"n\":13,\"t\":\"edited\"}";
  Status st = CheckAll(Witnessed(c, 10), c.Head(20), edited);
  EXPECT_THAT(st.message(), HasSubstr("audit chain: log 'node-1' record seq 13 does not chain"));
  WitnessCheck check = *WitnessCheck::Begin(Witnessed(c, 10), c.Head(20));
  ASSERT_OK(check.Add(c.records[9]));
  ASSERT_OK(check.Add(c.records[10]));
  st = check.Add(c.records[12]);
  EXPECT_THAT(st.message(), HasSubstr("audit chain: log 'node-1' skips from seq 11 to 13"));
  std::vector<RecordShown> short_log(c.records.begin(), c.records.begin() + 17);
  st = CheckAll(Witnessed(c, 10), c.Head(20), short_log);
  EXPECT_THAT(st.message(), HasSubstr("audit chain: log 'node-1''s records end at seq 17, before its signed head seq 20"));
}

TEST_F(WitnessTest, AHeadSignedByAnotherKeyOrNotAtAllIsRefused) {
  Chain c(key_, 20);
  crypto::SigningKey other_key = crypto::SigningKey::Generate();
  Chain forged(other_key, 20);
  Status st = CheckAll(Witnessed(c, 10), forged.Head(20), forged.records);
  EXPECT_THAT(st.message(), HasSubstr("audit key: the appliance's log is signed by audit key " +
                                      HexEncode(other_key.verifying_key().Encode())));
  HeadShown bad = c.Head(20);
  bad.signature[5] ^= 1;
  st = CheckAll(Witnessed(c, 10), bad, c.records);
  EXPECT_THAT(st.message(), HasSubstr("audit key: the signature of log 'node-1''s head seq 20 does not verify"));
  // First sight of a log under a pinned key: the head must still be signed by it.
  CustodyWitness pinned = Witnessed(c, 10, "node-2");
  st = CheckAll(pinned, forged.Head(20), forged.records);
  EXPECT_THAT(st.message(), HasSubstr("audit key:"));
}

TEST_F(WitnessTest, AnotherNodesLogMustStillHoldTheWitnessedRecord) {
  Chain c(key_, 20);
  EXPECT_OK(CheckOtherLog("node-2", c.At(12), &c.records[11]));
  Status st = CheckOtherLog("node-2", c.At(12), nullptr);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-2' has no record at seq 12"));
  Chain other(key_, 20, "b");
  st = CheckOtherLog("node-2", c.At(12), &other.records[11]);
  EXPECT_THAT(st.message(), HasSubstr("audit fork: log 'node-2' has hash"));
}

// The line statement: a head of the same core run as the witnessed one is taken without
// reading records; anything else is read as before.
TEST_F(WitnessTest, AHeadOfTheSameCoreRunIsTakenOnItsLineStatement) {
  Chain c(key_, 20);
  const Bytes run(kRunIdSize, 0x11), other_run(kRunIdSize, 0x22);
  CustodyWitness w;
  w.audit_public_key = HexEncode(key_.verifying_key().Encode());
  w.logs["node-1"] = c.At(7, run);
  auto check = WitnessCheck::Begin(w, c.Lined(20, run));
  ASSERT_OK(check.status());
  EXPECT_TRUE(check->Done());
  EXPECT_TRUE(check->ByLine());
  EXPECT_OK(check->Finish());
  EXPECT_EQ(check->Recorded().seq, 20u);
  EXPECT_EQ(check->Recorded().run, run);
  EXPECT_OK(CheckAll(w, c.Lined(20, run), {}));  // no record is needed
  EXPECT_OK(CheckAll(w, c.Lined(7, run), {}));   // unchanged

  // Another run (a restarted core): the records are read from the witnessed seq, and the new
  // head is recorded with the new run.
  check = WitnessCheck::Begin(w, c.Lined(20, other_run));
  ASSERT_OK(check.status());
  EXPECT_FALSE(check->ByLine());
  EXPECT_EQ(check->NextSeq(), 7u);
  EXPECT_OK(CheckAll(w, c.Lined(20, other_run), c.records));
  std::vector<RecordShown> edited = c.records;
  edited[12].entry = "{\"n\":13,\"t\":\"edited\"}";
  EXPECT_THAT(CheckAll(w, c.Lined(20, other_run), edited).message(), HasSubstr("record seq 13 does not chain"));
  // A witnessed head without a run, or a shown head without a line: read as before.
  EXPECT_FALSE(WitnessCheck::Begin(Witnessed(c, 7), c.Lined(20, run))->ByLine());
  EXPECT_FALSE(WitnessCheck::Begin(w, c.Head(20))->ByLine());
  EXPECT_TRUE(WitnessCheck::Begin(w, c.Head(20))->Recorded().run.empty());
}

TEST_F(WitnessTest, ALineStatementThatGoesBackOrForksOrDoesNotVerifyIsRefused) {
  Chain c(key_, 20);
  Chain other(key_, 20, "b");
  const Bytes run(kRunIdSize, 0x11);
  CustodyWitness w;
  w.audit_public_key = HexEncode(key_.verifying_key().Encode());
  w.logs["node-1"] = c.At(15, run);
  Status st = CheckAll(w, c.Lined(9, run), c.records);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' shows head seq 9 of the core run " +
                                      HexEncode(run) + ", before seq 15 this keeper witnessed of the same run"));
  st = CheckAll(w, other.Lined(15, run), other.records);
  EXPECT_THAT(st.message(), HasSubstr("audit fork: log 'node-1' has hash " + HexEncode(other.records[14].hash)));

  // The line must verify under the audit key, over the line message of that run and head.
  HeadShown bad = c.Lined(20, run);
  bad.line_signature[3] ^= 1;
  st = CheckAll(w, bad, c.records);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("audit key: the line statement for log 'node-1''s head seq 20 does not verify"));
  bad = c.Lined(20, run);
  bad.line_signature = key_.Sign(CheckpointMessage(20, bad.hash));  // a checkpoint is not a line
  EXPECT_THAT(CheckAll(w, bad, c.records).message(), HasSubstr("the line statement"));
  bad = c.Lined(20, Bytes(kRunIdSize, 0x33));
  bad.line_run = run;  // signed for another run
  EXPECT_THAT(CheckAll(w, bad, c.records).message(), HasSubstr("the line statement"));
  bad = c.Lined(20, run);
  bad.line_signature = crypto::SigningKey::Generate().Sign(LineMessage(run, 20, bad.hash));
  EXPECT_THAT(CheckAll(w, bad, c.records).message(), HasSubstr("the line statement"));
  bad = c.Lined(20, run);
  bad.line_run.pop_back();
  EXPECT_THAT(CheckAll(w, bad, c.records).message(), HasSubstr("the line statement"));
  // On first sight too.
  bad = c.Lined(20, run);
  bad.line_signature[0] ^= 1;
  EXPECT_THAT(CheckAll(CustodyWitness{}, bad, c.records).message(), HasSubstr("the line statement"));
}

TEST_F(WitnessTest, AHeadTakenByLineMustHaveItsRecordInTheLog) {
  Chain c(key_, 20);
  EXPECT_OK(CheckRecordAt("node-1", c.At(20), &c.records[19]));
  Status st = CheckRecordAt("node-1", c.At(20), nullptr);
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' has no record at its signed head seq 20"));
  st = CheckRecordAt("node-1", c.At(20), &c.records[18]);
  EXPECT_THAT(st.message(), HasSubstr("audit rollback: log 'node-1' has no record at its signed head seq 20"));
  Chain other(key_, 20, "b");
  st = CheckRecordAt("node-1", c.At(20), &other.records[19]);
  EXPECT_THAT(st.message(), HasSubstr("audit fork: log 'node-1' has hash " + HexEncode(other.records[19].hash)));
}

TEST_F(WitnessTest, StateRoundTripsThroughJson) {
  Chain c(key_, 5);
  WitnessState s;
  s.custodies["02ab"] = Witnessed(c, 5);
  s.custodies["02ab"].logs[""] = c.At(3);
  s.custodies["02ab"].logs["node-2"] = c.At(4, Bytes(kRunIdSize, 0x5a));
  auto back = WitnessState::FromJson(nlohmann::json::parse(s.ToJson().dump()));
  ASSERT_OK(back.status());
  EXPECT_EQ(back->ToJson(), s.ToJson());
  EXPECT_EQ(back->custodies["02ab"].logs[""].seq, 3u);
  EXPECT_TRUE(back->custodies["02ab"].logs[""].run.empty());
  EXPECT_EQ(back->custodies["02ab"].logs["node-2"].run, Bytes(kRunIdSize, 0x5a));
  EXPECT_FALSE(WitnessState::FromJson(nlohmann::json{{"version", 2}, {"custodies", nlohmann::json::object()}}).ok());
  auto bad = s.ToJson();
  bad["custodies"]["02ab"]["logs"]["node-1"]["hash"] = "zz";
  EXPECT_FALSE(WitnessState::FromJson(bad).ok());
  bad = s.ToJson();
  bad["custodies"]["02ab"]["logs"]["node-2"]["run"] = "5a5a";  // not 16 bytes
  EXPECT_FALSE(WitnessState::FromJson(bad).ok());
}

}  // namespace
}  // namespace custos::audit
