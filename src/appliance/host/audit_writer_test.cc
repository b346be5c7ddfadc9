// Tests for the KMS audit writer (host/audit_writer.h) against a real SQLite store and a fake
// trusted core that keeps its own chain, checks the anchor as kAuditAppend does and signs with
// a test key: concurrent appenders all durable and the chain verifies; a signer or store
// failure fails every waiter of the batch and stores nothing; a head or signature that is not
// the host's chain is refused; a restart continues the chain; an unsigned newest record or a
// database of another audit key is refused at start; a database edited with SQLite between
// runs is caught by the verifier; entries are canonical JSON objects; a store call that fails
// with or without taking effect (a lost connection) neither loses a signed entry nor stalls the
// log.
#include "appliance/host/audit_writer.h"

#include <sqlite3.h>

#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "net/fiber.h"
#include "protocol/audit/verify.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"
#include "tests/testing/forwarding_store.h"

namespace custos::host {
namespace {

using ::testing::HasSubstr;

// FakeCore does what the trusted core does for kAuditAppend: on its first call it accepts an
// empty anchor (an empty log) or a stored head whose signature verifies; afterwards only the
// head it last signed.
class FakeCore {
 public:
  explicit FakeCore(const crypto::SigningKey& key) : key_(key) {}

  BatchSigner Signer() {
    return [this](ByteSpan anchor, const std::vector<std::string>& entries) {
      return Sign(anchor, entries);
    };
  }

  StatusOr<SignedHead> Sign(ByteSpan anchor, const std::vector<std::string>& entries) {
    std::lock_guard lock(mu_);
    ++calls_;
    if (!failure_.ok()) return failure_;
    if (!started_) {
      if (!anchor.empty()) {
        if (anchor.size() != 8 + audit::kHashSize + crypto::kSignatureSize)
          return InvalidArgument("audit anchor: wrong size");
        ASSIGN_OR_RETURN(audit::Head head, audit::DecodeHead(anchor.first(8 + audit::kHashSize)));
        ByteSpan sig = anchor.subspan(8 + audit::kHashSize);
        RETURN_IF_ERROR(key_.verifying_key().Verify(audit::CheckpointMessage(head.seq, head.hash),
                                                    sig));
        seq_ = head.seq;
        hash_ = head.hash;
        ++anchors_verified_;
      }
      started_ = true;
    } else if (Bytes(anchor.begin(), anchor.end()) != last_anchor_) {
      return FailedPrecondition("audit anchor is not the head last signed");
    }
    for (const std::string& e : entries) hash_ = audit::EntryHash(hash_, ++seq_, e);
    SignedHead out{audit::EncodeHead(seq_, hash_),
                   key_.Sign(audit::CheckpointMessage(seq_, hash_))};
    last_anchor_ = Concat({out.head, out.signature});
    batch_sizes_.push_back(entries.size());
    return out;
  }

  void Fail(Status st) {
    std::lock_guard lock(mu_);
    failure_ = std::move(st);
  }
  std::vector<size_t> batch_sizes() {
    std::lock_guard lock(mu_);
    return batch_sizes_;
  }
  int anchors_verified() {
    std::lock_guard lock(mu_);
    return anchors_verified_;
  }

 private:
  const crypto::SigningKey& key_;
  std::mutex mu_;
  Status failure_;
  bool started_ = false;
  uint64_t seq_ = 0;
  Bytes hash_ = audit::GenesisHash();
  Bytes last_anchor_;
  int calls_ = 0;
  int anchors_verified_ = 0;
  std::vector<size_t> batch_sizes_;
};

// RequestSync: the writer acknowledges an entry once signed and fsynced ([audit] sync =
// "request"), so a signer or store failure reaches the appender.
AuditWriterOptions RequestSync() {
  AuditWriterOptions options;
  options.sync = AuditSync::kRequest;
  return options;
}

nlohmann::json Entry(const std::string& request_id) {
  return {{"operation", "Encrypt"}, {"request_id", request_id}, {"outcome", "ok"}};
}

class AuditWriterTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();
    auto s = store::OpenSqliteStore(db_path_);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(s).value();
  }

  std::vector<store::AuditRecord> ReadAll() {
    std::vector<store::AuditRecord> all;
    for (;;) {
      auto page = store_->ReadAudit(all.size() + 1, 1000);
      EXPECT_TRUE(page.ok()) << page.status().ToString();
      if (!page.ok() || page->empty()) return all;
      for (auto& r : *page) all.push_back(std::move(r));
    }
  }

  audit::AuditReport VerifyAll() { return audit::VerifyAuditChain(ReadAll(), key_.verifying_key()); }

  // Exec runs SQL on the database file directly, as someone with access to it would.
  void Exec(const std::string& sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(db_path_.c_str(), &db), SQLITE_OK);
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    ASSERT_EQ(rc, SQLITE_OK) << message;
  }

  std::unique_ptr<AuditWriter> StartWriter(FakeCore& core, AuditWriterOptions options = {}) {
    auto w = AuditWriter::Start(*store_, core.Signer(), std::move(options));
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }

  std::string db_path_ = custos::testing::TempDir() + "/custos.db";
  std::unique_ptr<store::Store> store_;
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
};

TEST_F(AuditWriterTest, ConcurrentAppendersAreAllDurableAndTheChainVerifies) {
  constexpr int kThreads = 16, kPerThread = 200;
  FakeCore core(key_);
  AuditWriterOptions options;
  options.max_batch_entries = 64;
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        Status st = writer->Append(Entry(std::to_string(t) + "-" + std::to_string(i)));
        if (!st.ok()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(writer->head().seq, uint64_t{kThreads * kPerThread});
  writer->Stop();

  std::vector<store::AuditRecord> records = ReadAll();
  ASSERT_EQ(records.size(), size_t{kThreads * kPerThread});
  std::set<std::string> ids;
  for (const auto& r : records)
    ids.insert(nlohmann::json::parse(r.entry)["request_id"].get<std::string>());
  EXPECT_EQ(ids.size(), size_t{kThreads * kPerThread});
  audit::AuditReport report = audit::VerifyAuditChain(records, key_.verifying_key());
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.head_seq, uint64_t{kThreads * kPerThread});
  EXPECT_EQ(report.head_hash, HexEncode(writer->head().hash));
  // One signature per batch; each batch within its bound; some batches grouped requests.
  std::vector<size_t> batches = core.batch_sizes();
  EXPECT_EQ(report.signatures, batches.size());
  size_t largest = 0;
  for (size_t n : batches) largest = std::max(largest, n);
  EXPECT_LE(largest, 64u);
  EXPECT_GT(largest, 1u);
  EXPECT_EQ(store_->GetMeta("audit_public_key").value(), HexEncode(key_.verifying_key().Encode()));
}

TEST_F(AuditWriterTest, BatchesCloseAtTheByteBound) {
  FakeCore core(key_);
  AuditWriterOptions options;
  options.max_batch_bytes = kMaxAuditEntryBytes;
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  nlohmann::json big = Entry("big");
  big["source"] = std::string(kMaxAuditEntryBytes / 2, 'a');
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] { EXPECT_OK(writer->Append(big)); });
  for (auto& th : threads) th.join();
  writer->Stop();
  for (size_t n : core.batch_sizes()) EXPECT_EQ(n, 1u);  // two halves plus JSON exceed the bound
  EXPECT_TRUE(VerifyAll().intact);
}

TEST_F(AuditWriterTest, SignerFailureFailsEveryWaiterAndStoresNothing) {
  FakeCore core(key_);
  auto writer = StartWriter(core, RequestSync());
  ASSERT_NE(writer, nullptr);
  core.Fail(FailedPrecondition("enclave: sealed"));
  std::vector<std::thread> threads;
  std::atomic<int> refused{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      Status st = writer->Append(Entry("sealed-" + std::to_string(t)));
      if (st.code() == ErrorCode::kUnavailable &&
          st.message() == "audit log could not be written: enclave: sealed")
        ++refused;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(refused.load(), 8);
  EXPECT_EQ(store_->LastAudit()->seq, 0u);
  EXPECT_EQ(writer->head().seq, 0u);

  // Once the core signs again, the log starts at seq 1: nothing of the failed batches remains.
  core.Fail(Status::Ok());
  EXPECT_OK(writer->Append(Entry("unsealed")));
  writer->Stop();
  std::vector<store::AuditRecord> records = ReadAll();
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0].entry, HasSubstr("unsealed"));
  EXPECT_TRUE(VerifyAll().intact);
}

TEST_F(AuditWriterTest, StoreFailureFailsTheBatch) {
  FakeCore core(key_);
  auto writer = StartWriter(core, RequestSync());
  ASSERT_NE(writer, nullptr);
  EXPECT_OK(writer->Append(Entry("first")));
  // A record slipped in behind the writer's back takes seq 2: the signed batch cannot be
  // stored at seq 2.
  store::AuditRecord intruder{2, "{}", Bytes(32, 1), {}};
  ASSERT_OK(store_->AppendAudit({intruder}, store::Durability::kDurable));
  Status st = writer->Append(Entry("second"));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("audit log could not be written: store: append audit"));
  EXPECT_EQ(writer->head().seq, 1u);
  // The log now ends at a record the host did not write: requests keep failing, naming it,
  // rather than being served unaudited or chained after someone else's record.
  st = writer->Append(Entry("third"));
  EXPECT_THAT(st.message(),
              HasSubstr("the stored log ends at seq 2, neither at the host's head (seq 1) nor at "
                        "its last write (seq 2): another writer appended to it"));
  writer->Stop();
  EXPECT_EQ(store_->LastAudit()->seq, 2u);
}

// FaultyStore fails the next fail_appends AppendAudit and fail_signs SignAudit calls as a lost
// database connection does; with applied_then_lost the call takes effect first (the COMMIT
// happened, its answer was lost), as in a PostgreSQL failover.
class FaultyStore : public custos::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<int> fail_appends{0}, fail_signs{0};
  std::atomic<bool> applied_then_lost{false};

  Status AppendAudit(const std::vector<store::AuditRecord>& r, store::Durability d) override {
    if (fail_appends > 0) {
      --fail_appends;
      if (applied_then_lost) RETURN_IF_ERROR(ForwardingStore::AppendAudit(r, d));
      return Unavailable("store: append audit: server closed the connection");
    }
    return ForwardingStore::AppendAudit(r, d);
  }
  Status SignAudit(uint64_t seq, ByteSpan sig, store::Durability d) override {
    if (fail_signs > 0) {
      --fail_signs;
      if (applied_then_lost) RETURN_IF_ERROR(ForwardingStore::SignAudit(seq, sig, d));
      return Unavailable("store: sign audit: server closed the connection");
    }
    return ForwardingStore::SignAudit(seq, sig, d);
  }
};

class AuditWriterStoreFaultTest : public AuditWriterTest,
                                  public ::testing::WithParamInterface<bool> {
 protected:
  // A second connection to the test's database, through which the writer stores.
  std::unique_ptr<FaultyStore> Faulty() {
    auto s = store::OpenSqliteStore(db_path_);
    EXPECT_TRUE(s.ok()) << s.status().ToString();
    auto faulty = std::make_unique<FaultyStore>(std::move(s).value());
    faulty->applied_then_lost = GetParam();
    return faulty;
  }
  std::unique_ptr<AuditWriter> StartOn(store::Store& store, FakeCore& core,
                                       AuditWriterOptions options) {
    options.audit_key = key_.verifying_key();
    auto w = AuditWriter::Start(store, core.Signer(), std::move(options));
    EXPECT_TRUE(w.ok()) << w.status().ToString();
    return w.ok() ? std::move(w).value() : nullptr;
  }
  std::vector<std::string> Requests() {
    std::vector<std::string> ids;
    for (const store::AuditRecord& r : ReadAll())
      ids.push_back(nlohmann::json::parse(r.entry).value("request_id", ""));
    return ids;
  }
};

// The core signed, the store lost the signature: the core accepts no older anchor, so asking it
// again would stall the log for good (CI saw a node's chain end unsigned after a PostgreSQL
// failover). The signer keeps the signature and stores it on its own, without a new append.
TEST_P(AuditWriterStoreFaultTest, GroupSyncStoresASignatureTheStoreLost) {
  FakeCore core(key_);
  auto faulty = Faulty();
  auto writer = StartOn(*faulty, core, {});
  ASSERT_NE(writer, nullptr);
  faulty->fail_signs = 2;
  for (int i = 0; i < 3; ++i) ASSERT_OK(writer->Append(Entry("r" + std::to_string(i))));
  for (int i = 0; i < 300 && (store_->LastSignedAudit()->seq < 3 || faulty->fail_signs > 0); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(faulty->fail_signs.load(), 0);
  EXPECT_EQ(store_->LastSignedAudit()->seq, 3u);
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  // The core was asked once for those entries, and the chain goes on from its head.
  EXPECT_EQ(core.batch_sizes().size(), 1u);
  for (int i = 3; i < 6; ++i) ASSERT_OK(writer->Append(Entry("r" + std::to_string(i))));
  writer->Stop();
  report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.head_seq, 6u);
}

// A batch whose store call failed is settled before the next one: kept when the store had
// committed it (the request was answered with an error, its entry stays), dropped when not.
TEST_P(AuditWriterStoreFaultTest, GroupSyncSettlesAWriteWhoseOutcomeWasLost) {
  FakeCore core(key_);
  auto faulty = Faulty();
  auto writer = StartOn(*faulty, core, {});
  ASSERT_NE(writer, nullptr);
  ASSERT_OK(writer->Append(Entry("before")));
  faulty->fail_appends = 1;
  Status st = writer->Append(Entry("lost-answer"));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("audit log could not be written: store: append audit"));
  ASSERT_OK(writer->Append(Entry("after")));
  writer->Stop();
  std::vector<std::string> expected = {"before", "after"};
  if (GetParam()) expected = {"before", "lost-answer", "after"};
  EXPECT_EQ(Requests(), expected);
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
}

// [audit] sync = "request": the core signs before the store; a batch the store did not take is
// in the core's chain, so it is stored before the next one (the log does not stall on the
// core's "anchor is not the head last signed").
TEST_P(AuditWriterStoreFaultTest, RequestSyncStoresABatchTheCoreSignedBeforeTheNext) {
  FakeCore core(key_);
  auto faulty = Faulty();
  auto writer = StartOn(*faulty, core, RequestSync());
  ASSERT_NE(writer, nullptr);
  ASSERT_OK(writer->Append(Entry("before")));
  faulty->fail_appends = 1;
  Status st = writer->Append(Entry("lost-answer"));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  ASSERT_OK(writer->Append(Entry("after")));
  EXPECT_EQ(writer->progress().signed_, 3u);
  writer->Stop();
  EXPECT_EQ(Requests(), (std::vector<std::string>{"before", "lost-answer", "after"}));
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
}

INSTANTIATE_TEST_SUITE_P(LostOrAppliedThenLost, AuditWriterStoreFaultTest, ::testing::Bool(),
                         [](const auto& info) {
                           return info.param ? "AppliedThenLost" : "NotApplied";
                         });

TEST_F(AuditWriterTest, HeadOtherThanTheHostsChainIsRefused) {
  FakeCore core(key_);
  auto sign_other = [&](ByteSpan anchor, const std::vector<std::string>& entries) {
    std::vector<std::string> changed = entries;
    changed.back() += " ";
    return core.Sign(anchor, changed);
  };
  auto writer = AuditWriter::Start(*store_, sign_other, RequestSync());
  ASSERT_TRUE(writer.ok());
  Status st = (*writer)->Append(Entry("a"));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_THAT(st.message(), HasSubstr("the core signed head seq 1, not the host's chain head"));
  (*writer)->Stop();
  EXPECT_EQ(store_->LastAudit()->seq, 0u);

  // A head one entry too long.
  FakeCore core2(key_);
  auto sign_more = [&](ByteSpan anchor, const std::vector<std::string>& entries) {
    std::vector<std::string> more = entries;
    more.push_back("{}");
    return core2.Sign(anchor, more);
  };
  writer = AuditWriter::Start(*store_, sign_more, RequestSync());
  ASSERT_TRUE(writer.ok());
  EXPECT_THAT((*writer)->Append(Entry("b")).message(), HasSubstr("signed head seq 2"));
  (*writer)->Stop();

  // A malformed head.
  writer = AuditWriter::Start(*store_, [](ByteSpan, const std::vector<std::string>&) {
    return StatusOr<SignedHead>(SignedHead{Bytes(12, 0), Bytes(64, 0)});
  }, RequestSync());
  ASSERT_TRUE(writer.ok());
  EXPECT_EQ((*writer)->Append(Entry("c")).code(), ErrorCode::kUnavailable);
  (*writer)->Stop();
  EXPECT_EQ(store_->LastAudit()->seq, 0u);
}

TEST_F(AuditWriterTest, SignatureThatDoesNotVerifyIsRefused) {
  crypto::SigningKey other = crypto::SigningKey::Generate();
  FakeCore core(other);
  AuditWriterOptions options = RequestSync();
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  Status st = writer->Append(Entry("a"));
  EXPECT_THAT(st.message(), HasSubstr("head signature does not verify"));
  writer->Stop();
  EXPECT_EQ(store_->LastAudit()->seq, 0u);

  // Without a key to check with, a signature of the wrong size is still refused.
  writer = AuditWriter::Start(*store_, [](ByteSpan, const std::vector<std::string>& entries) {
             Bytes h = audit::EntryHash(audit::GenesisHash(), 1, entries[0]);
             return StatusOr<SignedHead>(SignedHead{audit::EncodeHead(1, h), Bytes(63, 0)});
           }, RequestSync()).value();
  EXPECT_THAT(writer->Append(Entry("b")).message(), HasSubstr("not 64 bytes"));
}

TEST_F(AuditWriterTest, RestartContinuesTheChain) {
  {
    FakeCore core(key_);
    auto writer = StartWriter(core);
    ASSERT_NE(writer, nullptr);
    for (int i = 0; i < 10; ++i) ASSERT_OK(writer->Append(Entry("run1-" + std::to_string(i))));
  }
  Reopen();
  FakeCore restarted(key_);  // a fresh core: it must verify the stored anchor
  AuditWriterOptions options;
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(restarted, options);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->head().seq, 10u);
  for (int i = 0; i < 5; ++i) ASSERT_OK(writer->Append(Entry("run2-" + std::to_string(i))));
  writer->Stop();
  EXPECT_EQ(restarted.anchors_verified(), 1);
  EXPECT_EQ(writer->WitnessHead().seq, 15u);
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.entries, 15u);
  EXPECT_THAT(ReadAll()[10].entry, HasSubstr("run2-0"));
}

TEST_F(AuditWriterTest, GroupSyncAcknowledgesOnceWrittenAndSignsBehind) {
  FakeCore core(key_);
  core.Fail(FailedPrecondition("enclave: sealed"));
  AuditWriterOptions options;  // [audit] sync = "group", the default
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  // The core cannot sign, yet every entry is acknowledged: it is in the log, unsigned.
  for (int i = 0; i < 5; ++i) ASSERT_OK(writer->Append(Entry("early-" + std::to_string(i))));
  EXPECT_EQ(writer->progress().written, 5u);
  EXPECT_EQ(writer->progress().signed_, 0u);
  EXPECT_EQ(store_->LastAudit()->seq, 5u);
  EXPECT_EQ(store_->LastSignedAudit()->seq, 0u);
  EXPECT_THAT(VerifyAll().failure, HasSubstr("unsigned tail from seq 1"));

  // Once the core signs again, the writer catches up without a new append.
  core.Fail(Status::Ok());
  for (int i = 0; i < 500 && writer->progress().signed_ < 5; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(writer->progress().signed_, 5u);
  // A key-state change's entry returns only once fsynced.
  ASSERT_OK(writer->Append(Entry("durable"), /*durable=*/true));
  EXPECT_GE(writer->progress().durable, 6u);
  writer->Stop();
  AuditWriter::Progress done = writer->progress();
  EXPECT_EQ(done.written, 6u);
  EXPECT_EQ(done.signed_, 6u);
  EXPECT_EQ(done.durable, 6u);
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.head_seq, 6u);
  // What keepers witness: the newest signed head that is durable, signed by the audit key.
  SignedRecordHead witness = writer->WitnessHead();
  EXPECT_EQ(witness.seq, 6u);
  EXPECT_EQ(witness.hash, store_->LastAudit()->hash);
  EXPECT_OK(key_.verifying_key().Verify(audit::CheckpointMessage(witness.seq, witness.hash), witness.signature));
}

TEST_F(AuditWriterTest, GroupSyncWritesOnTheAppendersThreadWhileTheSignerIsStuck) {
  // A core call that hangs (a slow or stuck core) holds up the signature, never the requests:
  // each appender writes its own batch, so appends keep being acknowledged meanwhile.
  FakeCore core(key_);
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open_gate = false;
  std::atomic<int> signer_calls{0};
  BatchSigner stuck = [&](ByteSpan anchor, const std::vector<std::string>& entries) {
    ++signer_calls;
    std::unique_lock lock(gate_mu);
    gate_cv.wait(lock, [&] { return open_gate; });
    return core.Sign(anchor, entries);
  };
  AuditWriterOptions options;
  options.sign_delay = std::chrono::microseconds(0);
  auto w = AuditWriter::Start(*store_, stuck, options);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  std::unique_ptr<AuditWriter> writer = std::move(w).value();
  ASSERT_OK(writer->Append(Entry("first")));
  // Wait until the signer is inside the core call for "first", then append more.
  for (int i = 0; i < 2000 && signer_calls.load() == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(signer_calls.load(), 1);
  for (int i = 0; i < 20; ++i) ASSERT_OK(writer->Append(Entry("while-stuck-" + std::to_string(i))));
  EXPECT_EQ(writer->progress().written, 21u);
  EXPECT_EQ(writer->progress().signed_, 0u);
  EXPECT_EQ(store_->LastAudit()->seq, 21u);
  {
    std::lock_guard lock(gate_mu);
    open_gate = true;
  }
  gate_cv.notify_all();
  writer->Stop();
  EXPECT_EQ(writer->progress().signed_, 21u);
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.head_seq, 21u);
}

TEST_F(AuditWriterTest, GroupSyncRefusesBeyondTheUnsignedBound) {
  FakeCore core(key_);
  core.Fail(FailedPrecondition("enclave: sealed"));
  AuditWriterOptions options;
  options.max_unsigned_entries = 4;
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_OK(writer->Append(Entry(std::to_string(i))));
  Status st = writer->Append(Entry("fifth"));
  EXPECT_EQ(st.code(), ErrorCode::kUnavailable);
  EXPECT_EQ(st.message(),
            "audit log could not be written: 4 entries wait for the trusted core's signature");
  EXPECT_EQ(store_->LastAudit()->seq, 4u);
}

TEST_F(AuditWriterTest, RestartSignsAnUnsignedTailAndSaysSo) {
  {
    FakeCore dead(key_);  // the process dies before its core signs anything more
    auto writer = StartWriter(dead);
    ASSERT_NE(writer, nullptr);
    ASSERT_OK(writer->Append(Entry("signed")));
    writer->Stop();
    dead.Fail(Unavailable("trusted core: gone"));
    writer = StartWriter(dead);
    ASSERT_NE(writer, nullptr);
    for (int i = 0; i < 3; ++i) ASSERT_OK(writer->Append(Entry("tail-" + std::to_string(i))));
  }
  EXPECT_THAT(VerifyAll().failure, HasSubstr("unsigned tail from seq 2"));
  Reopen();
  FakeCore core(key_);
  AuditWriterOptions options;
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(writer->head().seq, 5u);  // the tail and the recovery entry
  ASSERT_OK(writer->Append(Entry("after")));
  writer->Stop();
  EXPECT_EQ(core.anchors_verified(), 1);
  std::vector<store::AuditRecord> records = ReadAll();
  ASSERT_EQ(records.size(), 6u);
  nlohmann::json recovery = nlohmann::json::parse(records[4].entry);
  EXPECT_EQ(recovery["operation"], "AuditRecovery");
  EXPECT_EQ(recovery["outcome"], "seq 2 to 4 signed at restart");
  audit::AuditReport report = VerifyAll();
  EXPECT_TRUE(report.intact) << report.failure;
  EXPECT_EQ(report.head_seq, 6u);
}

TEST_F(AuditWriterTest, RestartRefusesATailThatDoesNotChain) {
  {
    FakeCore core(key_);
    auto writer = StartWriter(core);
    ASSERT_NE(writer, nullptr);
    for (int i = 0; i < 3; ++i) ASSERT_OK(writer->Append(Entry(std::to_string(i))));
  }
  // An unsigned record whose hash is not the chain's: not written by custos.
  Bytes wrong = audit::EntryHash(audit::GenesisHash(), 4, "{}");
  ASSERT_OK(store_->AppendAudit({store::AuditRecord{4, "{}", wrong, {}}}, store::Durability::kDurable));
  FakeCore core(key_);
  auto writer = AuditWriter::Start(*store_, core.Signer());
  ASSERT_FALSE(writer.ok());
  EXPECT_EQ(writer.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(writer.status().message(),
              HasSubstr("unsigned entry seq 4 does not chain from the newest signed one (seq 3)"));
}

TEST_F(AuditWriterTest, StartRefusesAnotherAuditKey) {
  FakeCore core(key_);
  AuditWriterOptions options;
  options.audit_key = key_.verifying_key();
  auto writer = StartWriter(core, options);
  ASSERT_NE(writer, nullptr);
  ASSERT_OK(writer->Append(Entry("a")));
  writer.reset();

  crypto::SigningKey other = crypto::SigningKey::Generate();
  FakeCore other_core(other);
  options.audit_key = other.verifying_key();
  auto refused = AuditWriter::Start(*store_, other_core.Signer(), options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("another audit key"));

  // Same refusal when the meta was rewritten to the other key: the newest signature fails.
  ASSERT_OK(store_->PutMeta("audit_public_key", HexEncode(other.verifying_key().Encode())));
  refused = AuditWriter::Start(*store_, other_core.Signer(), options);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("does not verify under the audit key"));
}

TEST_F(AuditWriterTest, DatabaseEditedBetweenRunsIsDetected) {
  {
    FakeCore core(key_);
    AuditWriterOptions options;
    options.max_batch_entries = 4;
    options.sign_delay = std::chrono::microseconds(0);
    auto writer = StartWriter(core, options);
    ASSERT_NE(writer, nullptr);
    // Sequential appends, each signed before the next: every record carries a signature.
    for (int i = 0; i < 12; ++i) {
      ASSERT_OK(writer->Append(Entry(std::to_string(i))));
      for (int j = 0; j < 2000 && writer->progress().signed_ < writer->progress().written; ++j)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ASSERT_EQ(writer->progress().signed_, writer->progress().written);
    }
  }
  store_.reset();
  Exec("UPDATE audit SET entry = replace(entry, 'Encrypt', 'Decrypt') WHERE seq = 7");
  Reopen();
  audit::AuditReport report = VerifyAll();
  EXPECT_FALSE(report.intact);
  EXPECT_EQ(report.failure, "entry 7: hash does not match (edited, inserted or reordered)");
  EXPECT_EQ(report.head_seq, 6u);

  store_.reset();
  Exec("UPDATE audit SET entry = replace(entry, 'Decrypt', 'Encrypt') WHERE seq = 7");
  Exec("DELETE FROM audit WHERE seq = 9");
  Reopen();
  report = VerifyAll();
  EXPECT_EQ(report.failure, "entry 9: seq 10 follows 8 (deleted or reordered)");

  store_.reset();
  Exec("DELETE FROM audit WHERE seq >= 9; UPDATE audit SET signature = X'' WHERE seq = 8");
  Reopen();
  report = VerifyAll();
  EXPECT_THAT(report.failure, HasSubstr("unsigned tail from seq 8"));
  // A writer signs such a tail as found and says so in the chain (the truncation itself is
  // what a witnessed head catches, not the chain).
  FakeCore core(key_);
  auto writer = AuditWriter::Start(*store_, core.Signer());
  ASSERT_TRUE(writer.ok());
  (*writer)->Stop();
  EXPECT_THAT(ReadAll().back().entry, HasSubstr("seq 8 to 8 signed at restart"));
}

TEST_F(AuditWriterTest, StopCommitsWhatIsQueuedAndRefusesLaterAppends) {
  FakeCore core(key_);
  auto writer = StartWriter(core);
  ASSERT_NE(writer, nullptr);
  std::atomic<int> ok{0}, stopped{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        Status st = writer->Append(Entry("x"));
        if (st.ok()) {
          ++ok;
        } else if (st.code() == ErrorCode::kFailedPrecondition) {
          ++stopped;
          return;
        } else {
          ++other;
        }
      }
    });
  }
  while (ok < 50) std::this_thread::yield();
  writer->Stop();
  for (auto& th : threads) th.join();
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(stopped.load(), 8);
  // Every acknowledged entry is stored, and nothing else.
  EXPECT_EQ(store_->LastAudit()->seq, static_cast<uint64_t>(ok.load()));
  EXPECT_TRUE(VerifyAll().intact);
  Status after = writer->Append(Entry("late"));
  EXPECT_EQ(after.code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(after.message(), HasSubstr("writer stopped"));
  writer->Stop();  // idempotent
}

TEST_F(AuditWriterTest, EntriesAreCanonicalJsonObjects) {
  FakeCore core(key_);
  auto writer = StartWriter(core);
  ASSERT_NE(writer, nullptr);
  nlohmann::json e = {{"z", 1}, {"a", "b"}, {"m", {{"y", true}, {"x", nullptr}}}};
  ASSERT_OK(writer->Append(e));
  // Invalid UTF-8 from a client (a key id, say) is replaced, not a crash or a refusal.
  ASSERT_OK(writer->Append({{"key_id", std::string("k\xff\xfe")}}));
  EXPECT_EQ(writer->Append(nlohmann::json::array({1, 2})).code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(writer->Append("text").code(), ErrorCode::kInvalidArgument);
  nlohmann::json huge = {{"source", std::string(kMaxAuditEntryBytes, 'a')}};
  EXPECT_EQ(writer->Append(huge).code(), ErrorCode::kInvalidArgument);
  writer->Stop();
  std::vector<store::AuditRecord> records = ReadAll();
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].entry, R"({"a":"b","m":{"x":null,"y":true},"z":1})");
  EXPECT_EQ(records[1].entry, "{\"key_id\":\"k\xEF\xBF\xBD\xEF\xBF\xBD\"}");
}

TEST_F(AuditWriterTest, StartRefusesBadOptions) {
  FakeCore core(key_);
  AuditWriterOptions options;
  options.max_batch_entries = 0;
  EXPECT_EQ(AuditWriter::Start(*store_, core.Signer(), options).status().code(),
            ErrorCode::kInvalidArgument);
  options = {};
  options.max_batch_bytes = 1 << 20;  // would not fit one ecall frame
  EXPECT_FALSE(AuditWriter::Start(*store_, core.Signer(), options).ok());
  EXPECT_FALSE(AuditWriter::Start(*store_, nullptr).ok());
}

TEST(AuditEntry, ToJsonHasEveryFieldAndAnRfc3339Time) {
  audit::Entry e;
  e.time = std::chrono::system_clock::time_point(std::chrono::milliseconds(1700000000123));
  e.request_id = "r";
  e.principal = "arn:aws:iam::111122223333:user/alice";
  e.access_key_id = "CKIAAAAAAAAAAAAAAAAA";
  e.operation = "Decrypt";
  e.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
  e.outcome = "AccessDeniedException";
  e.http_status = 400;
  e.source = "192.0.2.1";
  nlohmann::json j = e.ToJson();
  EXPECT_EQ(j["time"], "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(j["outcome"], "AccessDeniedException");
  EXPECT_EQ(j["http_status"], 400);
  EXPECT_EQ(j.size(), 9u);
}

}  // namespace
}  // namespace custos::host

namespace custos::host {
namespace {

// CountingStore counts the writes of audit records (one per group-commit write).
class CountingStore : public custos::testing::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  std::atomic<int> appends{0};
  Status AppendAudit(const std::vector<store::AuditRecord>& r, store::Durability d) override {
    ++appends;
    return ForwardingStore::AppendAudit(r, d);
  }
};

TEST_F(AuditWriterTest, FibersOfOneThreadShareOneWriteAndEachGetsItsResult) {
  namespace fiber = net::fiber;
  FakeCore core(key_);
  AuditWriterOptions options;  // group
  options.audit_key = key_.verifying_key();
  auto second = store::OpenSqliteStore(db_path_);  // a second connection to the test database
  ASSERT_TRUE(second.ok()) << second.status().ToString();
  CountingStore counting(std::move(second).value());
  auto started = AuditWriter::Start(counting, core.Signer(), options);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<AuditWriter> writer = std::move(started).value();

  // 50 requests of one event-loop round append from their fibers: one write for all of them.
  constexpr int kFibers = 50;
  std::vector<Status> results(kFibers, Status(ErrorCode::kInternal, "not run"));
  const auto before = fiber::GetStats();
  boost::asio::io_context ioc{1};
  boost::asio::post(ioc, [&] {
    for (int i = 0; i < kFibers; ++i)
      fiber::Start(ioc, [&, i] {
        fiber::AllowSuspend may_suspend;
        results[i] = writer->Append(Entry("fiber-" + std::to_string(i)));
      });
  });
  ioc.run();
  for (const Status& r : results) EXPECT_OK(r);
  EXPECT_EQ(counting.appends.load(), 1);
  EXPECT_EQ(fiber::GetStats().suspended - before.suspended, static_cast<unsigned long long>(kFibers));
  EXPECT_EQ(writer->head().seq, uint64_t{kFibers});

  // A durable append (a key-state change) never suspends: it waits for its fsync in place.
  Status durable = Status(ErrorCode::kInternal, "not run");
  const auto before_durable = fiber::GetStats();
  ioc.restart();
  boost::asio::post(ioc, [&] {
    fiber::Start(ioc, [&] {
      fiber::AllowSuspend may_suspend;
      durable = writer->Append(Entry("state change"), /*durable=*/true);
    });
  });
  ioc.run();
  EXPECT_OK(durable);
  EXPECT_EQ(fiber::GetStats().suspended, before_durable.suspended);
  EXPECT_GE(writer->progress().durable, uint64_t{kFibers + 1});

  // A write that fails fails every fiber that shared it, and stores none of their entries.
  store::AuditRecord intruder{kFibers + 2, "{}", Bytes(32, 1), {}};
  ASSERT_OK(store_->AppendAudit({intruder}, store::Durability::kDurable));
  ioc.restart();
  boost::asio::post(ioc, [&] {
    for (int i = 0; i < 5; ++i)
      fiber::Start(ioc, [&, i] {
        fiber::AllowSuspend may_suspend;
        results[i] = writer->Append(Entry("refused-" + std::to_string(i)));
      });
  });
  ioc.run();
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(results[i].code(), ErrorCode::kUnavailable);
    EXPECT_THAT(results[i].message(), HasSubstr("audit log could not be written"));
  }
  EXPECT_EQ(writer->head().seq, uint64_t{kFibers + 1});
  writer->Stop();
}

}  // namespace
}  // namespace custos::host
