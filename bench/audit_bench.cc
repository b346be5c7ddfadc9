// KMS audit writer throughput (host/audit_writer.h): entries per second acknowledged to
// 1, 16 and 64 concurrent request threads, for [audit] sync = "group" (argument 0: acknowledged
// once written, signed and fsynced behind) and "request" (argument 1: once signed and fsynced), with a real SQLite store (WAL, synchronous=FULL)
// in a temporary directory and a fake core that extends the chain and signs each batch's head
// with ECDSA P-256, as kAuditAppend does (without the ecall round trip, ~11 us per batch).
// The temporary directory is $TMPDIR or /tmp: its file system decides what fsync costs.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <filesystem>
#include <string>

#include "protocol/audit/chain.h"
#include "protocol/audit/entry.h"
#include "crypto/ecdsa.h"
#include "appliance/host/audit_writer.h"
#include "appliance/store/store.h"

namespace custos {
namespace {

// FakeCore extends its chain copy and signs the head; the anchor is trusted (the writer is
// the only caller).
class FakeCore {
 public:
  StatusOr<host::SignedHead> Sign(ByteSpan, const std::vector<std::string>& entries) {
    for (const std::string& e : entries) hash_ = audit::EntryHash(hash_, ++seq_, e);
    ++batches_;
    return host::SignedHead{audit::EncodeHead(seq_, hash_),
                            key_.Sign(audit::CheckpointMessage(seq_, hash_))};
  }
  uint64_t batches() const { return batches_; }

 private:
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
  uint64_t seq_ = 0;
  Bytes hash_ = audit::GenesisHash();
  std::atomic<uint64_t> batches_{0};
};

struct Fixture {
  std::string dir;
  std::unique_ptr<store::Store> store;
  FakeCore core;
  std::unique_ptr<host::AuditWriter> writer;
};
Fixture* fixture = nullptr;

void BM_AuditAppend(benchmark::State& state) {
  if (state.thread_index() == 0) {
    host::AuditWriterOptions options;
    options.sync = state.range(0) == 0 ? host::AuditSync::kGroup : host::AuditSync::kRequest;
    fixture = new Fixture;
    std::string tmpl = (std::filesystem::temp_directory_path() / "custos-audit-bench-XXXXXX");
    if (mkdtemp(tmpl.data()) == nullptr) state.SkipWithError("mkdtemp failed");
    fixture->dir = tmpl;
    auto store = store::OpenSqliteStore(fixture->dir + "/custos.db");
    if (!store.ok()) state.SkipWithError(store.status().ToString().c_str());
    fixture->store = std::move(store).value();
    auto writer = host::AuditWriter::Start(
        *fixture->store,
        [](ByteSpan a, const std::vector<std::string>& e) { return fixture->core.Sign(a, e); },
        options);
    if (!writer.ok()) state.SkipWithError(writer.status().ToString().c_str());
    fixture->writer = std::move(writer).value();
  }
  audit::Entry event;
  event.request_id = "5f0c6a2e-7b1d-4c3e-9a8f-0123456789ab";
  event.principal = "arn:aws:iam::111122223333:user/bench";
  event.access_key_id = "CKIAAAAAAAAAAAAAAAAA";
  event.operation = "Encrypt";
  event.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
  event.outcome = "ok";
  event.http_status = 200;
  event.source = "192.0.2.1:50000";
  const nlohmann::json entry = event.ToJson();
  for (auto _ : state) {
    Status st = fixture->writer->Append(entry);
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    fixture->writer->Stop();
    state.counters["entries_per_batch"] = benchmark::Counter(
        static_cast<double>(fixture->writer->head().seq) /
        static_cast<double>(std::max<uint64_t>(1, fixture->core.batches())));
    fixture->writer.reset();
    fixture->store.reset();
    std::filesystem::remove_all(fixture->dir);
    delete fixture;
    fixture = nullptr;
  }
}
BENCHMARK(BM_AuditAppend)->ArgName("request_sync")->Arg(0)->Arg(1)->Threads(1)->Threads(16)->Threads(64)->UseRealTime()->MinTime(2.0);

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
