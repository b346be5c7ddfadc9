// Tests for the KMS audit chain (chain.h: known answers, head encoding) and its verifier
// (verify.h): an intact log verifies; every kind of tampering — edited entry or hash, deleted
// entry in the middle or at the end, inserted entry with recomputed hashes, swapped entries,
// a changed signature byte, a log re-signed with another key, truncation below a pinned head —
// is refused with a message naming the entry.
#include <string>
#include <vector>

#include <random>

#include "protocol/audit/chain.h"
#include "protocol/audit/entry.h"
#include "protocol/audit/verify.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::audit {
namespace {

using ::testing::HasSubstr;

// Record has the fields VerifyAuditChain reads (as store::AuditRecord does).
struct Record {
  uint64_t seq = 0;
  std::string entry;
  Bytes hash;
  Bytes signature;
};

std::string Entry(uint64_t i) {
  return R"({"operation":"Encrypt","outcome":"ok","request_id":"req-)" + std::to_string(i) +
         R"("})";
}

// BuildLog writes a log of batches of the given sizes, signing the last entry of each batch as
// the trusted core does.
std::vector<Record> BuildLog(const crypto::SigningKey& key, const std::vector<int>& batches) {
  std::vector<Record> log;
  Bytes prev = GenesisHash();
  for (int n : batches) {
    for (int i = 0; i < n; ++i) {
      Record r;
      r.seq = log.size() + 1;
      r.entry = Entry(r.seq);
      r.hash = EntryHash(prev, r.seq, r.entry);
      prev = r.hash;
      log.push_back(std::move(r));
    }
    log.back().signature = key.Sign(CheckpointMessage(log.back().seq, log.back().hash));
  }
  return log;
}

// Rechain recomputes the stored hashes from position `from` on (what someone who can write
// the database but not sign would do to hide an edit) and renumbers the seqs.
void Rechain(std::vector<Record>& log, size_t from) {
  Bytes prev = from == 0 ? GenesisHash() : log[from - 1].hash;
  for (size_t i = from; i < log.size(); ++i) {
    log[i].seq = i + 1;
    log[i].hash = EntryHash(prev, log[i].seq, log[i].entry);
    prev = log[i].hash;
  }
}

class AuditChainTest : public ::testing::Test {
 protected:
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
  // 3 batches: entries 1-5 (signed at 5), 6-12 (signed at 12), 13-20 (signed at 20).
  std::vector<Record> log_ = BuildLog(key_, {5, 7, 8});

  AuditReport Verify(const std::vector<Record>& log) {
    return VerifyAuditChain(log, key_.verifying_key());
  }
  void ExpectRefused(const std::vector<Record>& log, uint64_t seq, const std::string& reason) {
    AuditReport r = Verify(log);
    EXPECT_FALSE(r.intact);
    EXPECT_EQ(r.failed_seq, seq);
    EXPECT_THAT(r.failure, HasSubstr(reason));
    EXPECT_THAT(r.failure, HasSubstr(std::to_string(seq)));
  }
};

TEST(AuditChain, KnownAnswers) {
  EXPECT_EQ(GenesisHash(), Bytes(32, 0));
  // SHA-256("custos/v1/audit-entry" || h_0 || u64 1 || u32 len || entry), computed with
  // Python's hashlib.
  Bytes h1 = EntryHash(GenesisHash(), 1, R"({"operation":"Encrypt"})");
  EXPECT_EQ(HexEncode(h1), "8e300ec7e4b5c399e61f9782fda04eb5bf456fe05cc83ce878cc3cb5e51f9c07");
  EXPECT_EQ(HexEncode(EntryHash(h1, 2, "")),
            "877ba40dd30e351d49ce51551c680acf4e967d806e38d87d6d8af04d1cd36e28");
  // Seq and previous hash both enter the hash.
  EXPECT_NE(EntryHash(GenesisHash(), 2, R"({"operation":"Encrypt"})"), h1);
  EXPECT_NE(EntryHash(h1, 1, R"({"operation":"Encrypt"})"), h1);

  Bytes msg = CheckpointMessage(0x0102, h1);
  Bytes want = ToBytes("custos/v1/audit-head");
  Bytes seq = {0, 0, 0, 0, 0, 0, 0x01, 0x02};
  want.insert(want.end(), seq.begin(), seq.end());
  want.insert(want.end(), h1.begin(), h1.end());
  EXPECT_EQ(msg, want);
}

TEST(AuditChain, HeadRoundTripAndRefusals) {
  Bytes hash = EntryHash(GenesisHash(), 1, "x");
  Bytes encoded = EncodeHead(42, hash);
  ASSERT_EQ(encoded.size(), 8 + kHashSize);
  auto head = DecodeHead(encoded);
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->seq, 42u);
  EXPECT_EQ(head->hash, hash);

  Bytes shorter(encoded.begin(), encoded.end() - 1);
  EXPECT_EQ(DecodeHead(shorter).status().code(), ErrorCode::kInvalidArgument);
  Bytes longer = encoded;
  longer.push_back(0);
  EXPECT_THAT(DecodeHead(longer).status().message(), HasSubstr("trailing"));
  EXPECT_FALSE(DecodeHead({}).ok());
}

TEST(AuditChain, ParseHead) {
  Bytes hash = EntryHash(GenesisHash(), 1, "x");
  auto head = ParseHead("17:" + HexEncode(hash));
  ASSERT_TRUE(head.ok()) << head.status().ToString();
  EXPECT_EQ(head->seq, 17u);
  EXPECT_EQ(head->hash, hash);
  EXPECT_FALSE(ParseHead(HexEncode(hash)).ok());
  EXPECT_FALSE(ParseHead(":" + HexEncode(hash)).ok());
  EXPECT_FALSE(ParseHead("1x:" + HexEncode(hash)).ok());
  EXPECT_FALSE(ParseHead("-1:" + HexEncode(hash)).ok());
  EXPECT_FALSE(ParseHead("17:" + HexEncode(hash).substr(2)).ok());
  EXPECT_FALSE(ParseHead("17:zz").ok());
}

TEST_F(AuditChainTest, IntactLogVerifies) {
  AuditReport r = Verify(log_);
  EXPECT_TRUE(r.intact) << r.failure;
  EXPECT_EQ(r.failure, "");
  EXPECT_EQ(r.entries, 20u);
  EXPECT_EQ(r.signatures, 3u);
  EXPECT_EQ(r.head_seq, 20u);
  EXPECT_EQ(r.head_hash, HexEncode(log_.back().hash));
  nlohmann::json j = r.ToJson();
  EXPECT_EQ(j["intact"], true);
  EXPECT_EQ(j["head_seq"], 20);
  EXPECT_FALSE(j.contains("failure"));
}

TEST_F(AuditChainTest, EmptyLogIsIntactWithTheGenesisHead) {
  AuditReport r = Verify({});
  EXPECT_TRUE(r.intact);
  EXPECT_EQ(r.entries, 0u);
  EXPECT_EQ(r.head_seq, 0u);
  EXPECT_EQ(r.head_hash, HexEncode(GenesisHash()));
}

TEST_F(AuditChainTest, EditedEntryIsRefused) {
  log_[8].entry = Entry(9) + " ";  // one byte more
  ExpectRefused(log_, 9, "entry 9: hash does not match (edited, inserted or reordered)");
  log_ = BuildLog(key_, {5, 7, 8});
  log_[16].entry[2] = 'O';  // "Operation"
  ExpectRefused(log_, 17, "entry 17: hash does not match");
}

TEST_F(AuditChainTest, EditedEntryWithRecomputedHashesFailsAtTheNextSignature) {
  log_[8].entry = R"({"operation":"Decrypt","outcome":"ok","request_id":"req-9"})";
  Rechain(log_, 8);
  ExpectRefused(log_, 12, "entry 12: signature does not verify");
}

TEST_F(AuditChainTest, EditedStoredHashIsRefused) {
  log_[2].hash[0] ^= 1;
  ExpectRefused(log_, 3, "entry 3: hash does not match");
  log_ = BuildLog(key_, {5, 7, 8});
  log_[4].hash.pop_back();  // a signed entry's hash, shortened
  ExpectRefused(log_, 5, "entry 5: hash does not match");
}

TEST_F(AuditChainTest, DeletedEntryInTheMiddleIsRefused) {
  log_.erase(log_.begin() + 16);  // seq 17
  ExpectRefused(log_, 17, "entry 17: seq 18 follows 16 (deleted or reordered)");
}

TEST_F(AuditChainTest, DeletedFirstEntryIsRefused) {
  log_.erase(log_.begin());
  ExpectRefused(log_, 1, "entry 1: the log starts at seq 2 instead of 1");
}

TEST_F(AuditChainTest, DeletedEntryWithRenumberingIsRefused) {
  // Whoever deletes and renumbers must recompute every later hash; the next signature fails.
  log_.erase(log_.begin() + 6);
  Rechain(log_, 6);
  ExpectRefused(log_, 11, "entry 11: signature does not verify");
}

TEST_F(AuditChainTest, DeletedLastEntriesLeaveAnUnsignedTail) {
  log_.pop_back();  // the signed head 20
  ExpectRefused(log_, 13, "unsigned tail from seq 13");
  EXPECT_THAT(Verify(log_).failure, HasSubstr("last signed head (seq 12)"));
  log_.pop_back();
  log_.pop_back();
  ExpectRefused(log_, 13, "unsigned tail from seq 13");
}

TEST_F(AuditChainTest, UnsignedEntriesAppendedAfterTheHeadAreRefused) {
  Record r;
  r.seq = 21;
  r.entry = Entry(21);
  r.hash = EntryHash(log_.back().hash, 21, r.entry);
  log_.push_back(r);
  ExpectRefused(log_, 21, "unsigned tail from seq 21");
}

TEST_F(AuditChainTest, SignatureMovedToTheNewLastEntryDoesNotVerify) {
  // Deleting the last entry and moving its signature down to the new last one.
  Bytes sig = log_.back().signature;
  log_.pop_back();
  log_.back().signature = sig;
  ExpectRefused(log_, 19, "entry 19: signature does not verify");
}

TEST_F(AuditChainTest, TruncationOfWholeBatchesNeedsAPinnedHead) {
  Head pinned{20, log_.back().hash};
  log_.resize(12);  // the last batch, gone: the prefix is a correctly signed chain
  EXPECT_TRUE(Verify(log_).intact);
  AuditReport r = VerifyAuditChain(log_, key_.verifying_key(), pinned);
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.failed_seq, 20u);
  EXPECT_THAT(r.failure, HasSubstr("ends at seq 12 before the expected head seq 20"));
  // A pinned head that the log still holds passes, whether or not later entries follow.
  EXPECT_TRUE(VerifyAuditChain(log_, key_.verifying_key(), Head{5, log_[4].hash}).intact);
}

TEST_F(AuditChainTest, RewrittenLogBelowAPinnedHeadIsRefused) {
  Head pinned{12, log_[11].hash};
  // Rebuilt from seq 7 on and signed by the right key (a rolled-back core would do this):
  // each signature verifies, but the pinned head does not match.
  std::vector<Record> forged = BuildLog(key_, {5, 7, 8});
  forged[6].entry = R"({"operation":"Decrypt"})";
  Rechain(forged, 6);
  forged[11].signature = key_.Sign(CheckpointMessage(12, forged[11].hash));
  forged[19].signature = key_.Sign(CheckpointMessage(20, forged[19].hash));
  EXPECT_TRUE(Verify(forged).intact);
  AuditReport r = VerifyAuditChain(forged, key_.verifying_key(), pinned);
  EXPECT_FALSE(r.intact);
  EXPECT_THAT(r.failure, HasSubstr("entry 12: hash differs from the expected head"));
}

TEST_F(AuditChainTest, InsertedEntryIsRefused) {
  Record extra;
  extra.entry = R"({"operation":"Decrypt","outcome":"ok","request_id":"forged"})";
  // Inserted as-is (keeping the neighbours' seqs): a seq out of order.
  std::vector<Record> log = log_;
  extra.seq = 8;
  extra.hash = EntryHash(log[6].hash, 8, extra.entry);
  log.insert(log.begin() + 7, extra);
  ExpectRefused(log, 9, "entry 9: seq 8 follows 8 (duplicated or reordered)");
  // Inserted with every later seq and hash recomputed: the next signature fails.
  log = log_;
  log.insert(log.begin() + 7, extra);
  Rechain(log, 7);
  ExpectRefused(log, 13, "entry 13: signature does not verify");
}

TEST_F(AuditChainTest, SwappedEntriesAreRefused) {
  // Swapping the contents (the seqs stay in order, as a store orders them).
  std::swap(log_[13].entry, log_[14].entry);
  std::swap(log_[13].hash, log_[14].hash);
  ExpectRefused(log_, 14, "entry 14: hash does not match (edited, inserted or reordered)");
  // Swapping whole rows.
  log_ = BuildLog(key_, {5, 7, 8});
  std::swap(log_[13], log_[14]);
  ExpectRefused(log_, 14, "entry 14: seq 15 follows 13 (deleted or reordered)");
  // Swapping and recomputing: the next signature fails.
  log_ = BuildLog(key_, {5, 7, 8});
  std::swap(log_[13].entry, log_[14].entry);
  Rechain(log_, 13);
  ExpectRefused(log_, 20, "entry 20: signature does not verify");
}

TEST_F(AuditChainTest, ChangedSignatureByteIsRefused) {
  log_[11].signature[40] ^= 0x80;
  ExpectRefused(log_, 12, "entry 12: signature does not verify");
  log_ = BuildLog(key_, {5, 7, 8});
  log_[4].signature.pop_back();
  ExpectRefused(log_, 5, "entry 5: signature does not verify");
}

TEST_F(AuditChainTest, LogSignedByAnotherKeyIsRefused) {
  crypto::SigningKey other = crypto::SigningKey::Generate();
  std::vector<Record> log = BuildLog(other, {5, 7, 8});
  ExpectRefused(log, 5, "entry 5: signature does not verify");
  // Re-signing only the last head with another key.
  log = log_;
  log.back().signature = other.Sign(CheckpointMessage(20, log.back().hash));
  ExpectRefused(log, 20, "entry 20: signature does not verify");
  // A signature over another seq (the message binds the seq, not only the hash).
  log = log_;
  log.back().signature = key_.Sign(CheckpointMessage(19, log.back().hash));
  ExpectRefused(log, 20, "entry 20: signature does not verify");
}

TEST_F(AuditChainTest, VerificationStopsAtTheFirstFailure) {
  log_[2].entry += "x";
  log_[15].entry += "x";
  AuditReport r = Verify(log_);
  EXPECT_EQ(r.failed_seq, 3u);
  EXPECT_EQ(r.entries, 3u);
  EXPECT_EQ(r.signatures, 0u);
  EXPECT_EQ(r.head_seq, 0u);
  nlohmann::json j = r.ToJson();
  EXPECT_EQ(j["intact"], false);
  EXPECT_EQ(j["failed_seq"], 3);
  EXPECT_THAT(j["failure"].get<std::string>(), HasSubstr("entry 3"));
}

TEST_F(AuditChainTest, ReportsTheLastVerifiedHeadBeforeAFailure) {
  log_[15].entry += "x";
  AuditReport r = Verify(log_);
  EXPECT_FALSE(r.intact);
  EXPECT_EQ(r.head_seq, 12u);
  EXPECT_EQ(r.head_hash, HexEncode(log_[11].hash));
  EXPECT_EQ(r.signatures, 2u);
}

TEST_F(AuditChainTest, IncrementalVerifierMatchesTheVectorForm) {
  ChainVerifier v(key_.verifying_key());
  for (const Record& r : log_) ASSERT_TRUE(v.Add(r.seq, r.entry, r.hash, r.signature));
  AuditReport r = v.Finish();
  EXPECT_TRUE(r.intact);
  EXPECT_EQ(r.entries, 20u);
  ChainVerifier bad(key_.verifying_key());
  EXPECT_FALSE(bad.Add(2, log_[1].entry, log_[1].hash, log_[1].signature));
  EXPECT_FALSE(bad.Add(1, log_[0].entry, log_[0].hash, log_[0].signature));  // ignored
  EXPECT_EQ(bad.Finish().failed_seq, 1u);
}

// The entry's stored text (what the chain hashes) is the canonical JSON dump, whether it is
// written directly (plain ASCII fields) or through the JSON object (anything that needs an
// escape, invalid UTF-8, request metadata): same bytes either way.
TEST(AuditEntry, TextIsTheCanonicalJsonDumpForPlainAndOddFields) {
  using E = struct ::custos::audit::Entry;  // (this file's Entry() makes test entries)
  auto dump = [](const E& e) {
    return e.ToJson().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  };
  E e;
  e.request_id = "3f2a-11";
  e.principal = "arn:aws:iam::111122223333:user/app";
  e.access_key_id = "AKIACUSTOS0001";
  e.operation = "Encrypt";
  e.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
  e.outcome = "ok";
  e.http_status = 200;
  e.source = "127.0.0.1:5000";
  EXPECT_EQ(e.ToText(), dump(e));
  EXPECT_EQ(e.ToText().substr(0, 34), R"({"access_key_id":"AKIACUSTOS0001",)");
  E empty;
  EXPECT_EQ(empty.ToText(), dump(empty));
  for (std::string odd : {std::string("a\"b"), std::string("back\\slash"), std::string("tab\there"),
                          std::string("\x7f"), std::string("caf\xc3\xa9"), std::string("bad \xff utf-8"),
                          std::string(1, '\0')}) {
    E x = e;
    x.key_id = odd;
    EXPECT_EQ(x.ToText(), dump(x)) << odd;
    x = e;
    x.source = odd;
    EXPECT_EQ(x.ToText(), dump(x)) << odd;
  }
  E meta = e;
  meta.request_metadata = {{"kmsOperation", "Encrypt"}, {"awsPrincipalArn", "arn:aws:iam::1:root"}};
  EXPECT_EQ(meta.ToText(), dump(meta));
  EXPECT_NE(meta.ToText().find("request_metadata"), std::string::npos);
  // Random fields over every byte value.
  std::mt19937 rng(7);
  for (int i = 0; i < 2000; ++i) {
    E r = e;
    std::string* fields[] = {&r.request_id, &r.principal, &r.access_key_id, &r.operation, &r.key_id, &r.outcome,
                             &r.source};
    std::string& f = *fields[rng() % 7];
    f.clear();
    for (size_t n = rng() % 12; n > 0; --n)
      f += static_cast<char>(rng() % 4 == 0 ? rng() % 256 : 0x20 + rng() % 95);
    r.http_status = static_cast<int>(rng() % 600);
    r.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(rng()));
    ASSERT_EQ(r.ToText(), dump(r)) << f;
  }
}

}  // namespace
}  // namespace custos::audit
