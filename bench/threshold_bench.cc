// Cost of the threshold operations of co-custody (issue 2 targets (a) and (b)); the figures
// are printed by Google Benchmark and summarised by scripts/bench.sh (docs/benchmarks.md).
//
//   BM_PartialDecryptWithProof   a keeper's crypto work for one partial: D = x*R + DLEQ proof
//   BM_VerifyPartial             the requester's check of one DLEQ proof
//   BM_OpenAndVerifyPartial      the requester's per-keeper work: HPKE open + decode + verify
//   BM_KeeperPartialRequest      the whole keeper-side handling of one POST /v1/partial through
//                                keeper::KeeperService::Handle (JSON, allowlist MAC check,
//                                request signature, custody parse, replay check, audit append
//                                with fsync, D + DLEQ proof, HPKE seal), on a keeper that went
//                                through a real DKG (the ceremony coordinator, over loopback
//                                HTTP, against in-process keepers). Variants: keeper directory
//                                on disk (the fsync of the audit log dominates) and on /dev/shm
//                                (tmpfs: fsync is nearly free, so this is the CPU cost).
//   BM_KeeperPartialRequestGroupCommit  the same with the audit log's group commit (written
//                                before the answer, fsync'd within 10 ms by a flusher thread).
//   BM_DkgInMemory_1p_3of5       the seven GJKR rounds for 1 provider + 5 customers (t=3) as
//                                threshold::DkgParticipant state machines in one process: the
//                                pure crypto cost of the ceremony (no HTTP, no signatures).
//
// These are measurements, not tests: nothing here asserts a timing.
#include <benchmark/benchmark.h>
#include <sys/statfs.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "client/ceremony/ceremony.h"
#include "crypto/hash.h"
#include "crypto/hpke.h"
#include "crypto/random.h"
#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/api/protocol.h"
#include "net/http_server.h"
#include "protocol/threshold/dkg.h"
#include "protocol/threshold/partial.h"

namespace custos {
namespace {

using crypto::Point;
using crypto::Scalar;
using nlohmann::json;
namespace hpke = crypto::hpke;

[[noreturn]] void Die(const std::string& what, const Status& st) {
  std::cerr << "threshold_bench: " << what << ": " << st.ToString() << "\n";
  std::abort();
}

template <typename T>
T Must(StatusOr<T> v, const std::string& what) {
  if (!v.ok()) Die(what, v.status());
  return std::move(v).value();
}

// ---- pure threshold crypto ----

struct PartialInputs {
  Scalar share = Scalar::Random();
  Point x = Point::BaseMul(share);
  Point r = Point::BaseMul(Scalar::Random());
  Bytes context = crypto::RandomBytes(32);  // the keeper uses SHA-256 of the request
};

void BM_PartialDecryptWithProof(benchmark::State& state) {
  PartialInputs in;
  for (auto _ : state) {
    threshold::PartialDecryption p = threshold::ComputePartial(1, in.share, in.x, in.r, in.context);
    benchmark::DoNotOptimize(p);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_PartialDecryptWithProof);

void BM_VerifyPartial(benchmark::State& state) {
  PartialInputs in;
  threshold::PartialDecryption p = threshold::ComputePartial(1, in.share, in.x, in.r, in.context);
  for (auto _ : state) {
    Status st = threshold::VerifyPartial(p, in.x, in.r, in.context);
    if (!st.ok()) {
      state.SkipWithError("VerifyPartial refused an honest partial");
      break;
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_VerifyPartial);

void BM_OpenAndVerifyPartial(benchmark::State& state) {
  PartialInputs in;
  hpke::PrivateKey eph = hpke::PrivateKey::Generate();
  Bytes info = crypto::RandomBytes(32);
  threshold::PartialDecryption p = threshold::ComputePartial(1, in.share, in.x, in.r, in.context);
  Bytes sealed = Must(hpke::SealBase(eph.public_key(), info, AsBytes("C1"), p.Encode()), "seal");
  for (auto _ : state) {
    auto plain = hpke::OpenBase(eph, info, AsBytes("C1"), sealed);
    if (!plain.ok()) {
      state.SkipWithError("HPKE open failed");
      break;
    }
    auto q = threshold::PartialDecryption::Decode(*plain);
    if (!q.ok() || !threshold::VerifyPartial(*q, in.x, in.r, in.context).ok()) {
      state.SkipWithError("partial did not verify");
      break;
    }
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_OpenAndVerifyPartial);

// ---- the DKG state machines ----

// RunDomainDkg runs the seven rounds among n participants with threshold t, relaying every
// message to everyone, and returns the domain public key.
Point RunDomainDkg(const std::vector<hpke::PrivateKey>& keys, uint32_t t) {
  threshold::DkgParams params;
  params.session_id = crypto::RandomBytes(16);
  params.threshold = t;
  for (size_t k = 0; k < keys.size(); ++k)
    params.participants.push_back({uint32_t(k + 1), keys[k].public_key()});
  std::vector<threshold::DkgParticipant> ps;
  for (size_t k = 0; k < keys.size(); ++k)
    ps.push_back(Must(threshold::DkgParticipant::Create(params, uint32_t(k + 1), keys[k]), "create"));
  std::vector<threshold::DealMessage> deals;
  for (auto& p : ps) deals.push_back(Must(p.Deal(), "deal"));
  std::vector<threshold::ComplaintMessage> complaints;
  for (auto& p : ps) complaints.push_back(Must(p.ProcessDeals(deals), "round 2"));
  std::vector<threshold::ResponseMessage> responses;
  for (auto& p : ps) responses.push_back(Must(p.ProcessComplaints(complaints), "round 3"));
  std::vector<threshold::FeldmanMessage> feldman;
  for (auto& p : ps) feldman.push_back(Must(p.ProcessResponses(responses), "round 4"));
  std::vector<threshold::ExtractionComplaintMessage> extraction;
  for (auto& p : ps) extraction.push_back(Must(p.ProcessFeldman(feldman), "round 5"));
  std::vector<threshold::RevealMessage> reveals;
  for (auto& p : ps) reveals.push_back(Must(p.ProcessExtractionComplaints(extraction), "round 6"));
  Point y;
  for (auto& p : ps) {
    threshold::DkgResult r = Must(p.Finalize(reveals), "round 7");
    if (r.qual.size() != keys.size()) Die("DKG", InternalError("an honest dealer was disqualified"));
    y = r.public_key;
  }
  return y;
}

void BM_DkgInMemory_1p_3of5(benchmark::State& state) {
  // The keepers' HPKE keys exist before the ceremony (`custos keeper init`).
  std::vector<hpke::PrivateKey> provider(1), customer(5);
  for (auto& k : provider) k = hpke::PrivateKey::Generate();
  for (auto& k : customer) k = hpke::PrivateKey::Generate();
  for (auto _ : state) {
    Point y = RunDomainDkg(provider, 1) + RunDomainDkg(customer, 3);
    benchmark::DoNotOptimize(y);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_DkgInMemory_1p_3of5)->Unit(benchmark::kMillisecond);

// ---- the keeper's whole /v1/partial handler ----

std::string FsName(const std::string& dir) {
  struct statfs s {};
  if (::statfs(dir.c_str(), &s) != 0) return "unknown fs";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext4";
    case 0x01021994: return "tmpfs";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x794c7630: return "overlayfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "fs 0x%lx", static_cast<unsigned long>(s.f_type));
      return buf;
    }
  }
}

// InProcessKeeper is a keeper directory with its service, served over loopback HTTP while the
// ceremony runs (the coordinator only speaks HTTP), then driven through Handle directly.
struct InProcessKeeper {
  std::unique_ptr<keeper::KeeperStore> store;
  std::unique_ptr<keeper::KeeperService> service;
  std::unique_ptr<net::HttpServer> server;
  std::string url;
};

// KeeperPair: 1 provider keeper + 1 customer keeper (both thresholds 1) after a real DKG run by
// ceremony::RunDkg, with one allowlisted client.
struct KeeperPair {
  std::string root;
  InProcessKeeper p1, c1;
  custody::CustodyDescriptor custody;
  crypto::SigningKey client = crypto::SigningKey::Generate();

  // replay_entries > 0 simulates that many accepted requests in the last 10 minutes: "release"
  // entries appended to C1's audit log, which a restarted KeeperService loads as its replay
  // cache (exactly what a keeper restarted under load would do).
  explicit KeeperPair(const std::string& base, int64_t replay_entries = 0) {
    std::string tmpl = base + "/custos-threshold-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) Die("mkdtemp under " + base, InternalError("failed"));
    root = tmpl;
    // Weak KDF parameters: the at-rest key is derived once at open, never per request.
    crypto::Argon2Params kdf{.t_cost = 1, .m_cost_kib = 4096, .parallelism = 1};
    SecretBytes pass = SecretBytes::CopyFrom(std::string_view("bench passphrase"));
    Start(p1, "P1", custody::Domain::kProvider, pass, kdf);
    Start(c1, "C1", custody::Domain::kCustomer, pass, kdf);
    crypto::SigningKey admin = crypto::SigningKey::Generate();
    for (InProcessKeeper* k : {&p1, &c1})
      if (Status st = k->store->AddClient("operator", admin.verifying_key().point(), keeper::ClientRole::kAdmin);
          !st.ok())
        Die("allowlist", st);
    ceremony::DkgCeremonyOptions opts;
    opts.admin_keys = {&admin};
    opts.provider_urls = {p1.url};
    opts.customer_urls = {c1.url};
    custody = Must(ceremony::RunDkg(opts), "DKG ceremony");
    for (InProcessKeeper* k : {&p1, &c1}) {
      k->server->Stop();
      if (Status st = k->store->AddClient("bench", client.verifying_key().point()); !st.ok())
        Die("allowlist", st);
    }
    if (replay_entries > 0) {
      for (int64_t i = 0; i < replay_entries; ++i) {
        Status st = c1.store->audit().Append(
            "release", {{"client", "bench"}, {"nonce", HexEncode(crypto::RandomBytes(16))},
                        {"timestamp", keeper::UnixNow()}});
        if (!st.ok()) Die("audit prefill", st);
      }
      c1.service = std::make_unique<keeper::KeeperService>(*c1.store);
    }
  }
  ~KeeperPair() {
    for (InProcessKeeper* k : {&c1, &p1}) {
      k->server.reset();
      k->service.reset();
      k->store.reset();
    }
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  void Start(InProcessKeeper& k, const std::string& id, custody::Domain d, const SecretBytes& pass,
             const crypto::Argon2Params& kdf) {
    k.store = Must(keeper::KeeperStore::Init(root + "/" + id, id, d, pass, kdf), "keeper init");
    k.service = std::make_unique<keeper::KeeperService>(*k.store);
    keeper::KeeperService* svc = k.service.get();
    net::HttpServerOptions so;
    so.threads = 1;
    k.server = Must(net::HttpServer::Create(
                        "127.0.0.1:0", [svc](const net::HttpRequest& r) { return svc->Handle(r); },
                        so),
                    "listen");
    if (Status st = k.server->Start(); !st.ok()) Die("serve", st);
    k.url = "http://127.0.0.1:" + std::to_string(k.server->port());
  }
};

struct SignedPartialRequest {
  net::HttpRequest http;
  Bytes encoded;
};

SignedPartialRequest MakeRequest(const KeeperPair& kp, const std::string& keeper_id,
                                 const Point& r, const hpke::PrivateKey& eph) {
  keeper::PartialRequest req;
  req.custody_fp = kp.custody.Fingerprint();
  req.keeper_id = keeper_id;
  req.r = r;
  req.context = crypto::RandomBytes(32);
  req.requester_key = eph.public_key();
  req.timestamp = keeper::UnixNow();
  req.nonce = crypto::RandomBytes(16);
  req.client_key = kp.client.verifying_key().point();
  SignedPartialRequest out;
  out.encoded = req.Encode();
  Bytes sig = kp.client.Sign(keeper::PartialRequest::SignedBytes(out.encoded));
  out.http.method = "POST";
  out.http.target = "/v1/partial";
  out.http.headers["content-type"] = "application/json";
  out.http.remote = "127.0.0.1:40000";
  out.http.body = json{{"request", Base64Encode(out.encoded)}, {"sig", HexEncode(sig)}}.dump();
  return out;
}

// BM_KeeperPartialRequest: `base` is where the keeper directories (and so the audit logs) live.
// A fresh keeper pair per run keeps the replay cache (one entry per accepted request in the
// last 10 minutes, scanned on every request) at the size of the run itself.
void RunKeeperPartialRequests(benchmark::State& state, const std::string& dir,
                              int64_t replay_entries,
                              keeper::AuditSync sync = keeper::AuditSync::kRequest) {
  KeeperPair kp(dir, replay_entries);
  if (Status st = kp.c1.store->audit().SetSync({sync, keeper::kMaxAuditGroupWindow}); !st.ok())
    Die("audit sync", st);
  const custody::KeeperRecord* me = kp.custody.FindKeeper("C1");
  hpke::PrivateKey eph = hpke::PrivateKey::Generate();
  Point r = Point::BaseMul(Scalar::Random());
  // Requests are signed by the client before timing starts (each needs a fresh nonce).
  std::vector<SignedPartialRequest> reqs;
  reqs.reserve(state.max_iterations);
  for (benchmark::IterationCount i = 0; i < state.max_iterations; ++i)
    reqs.push_back(MakeRequest(kp, "C1", r, eph));
  size_t next = 0;
  net::HttpResponse last;
  for (auto _ : state) {
    last = kp.c1.service->Handle(reqs[next++].http);
    if (last.status != 200) {
      state.SkipWithError(("keeper refused: " + last.body).c_str());
      break;
    }
  }
  // The last answer is a real, verifiable partial decryption.
  if (next > 0 && last.status == 200) {
    const SignedPartialRequest& q = reqs[next - 1];
    json j = json::parse(last.body);
    Bytes sealed = Must(keeper::GetBase64(j, "sealed"), "response");
    Bytes plain = Must(hpke::OpenBase(eph, keeper::PartialResponseInfo(q.encoded), AsBytes("C1"),
                                      sealed),
                       "open response");
    auto p = Must(threshold::PartialDecryption::Decode(plain), "decode partial");
    if (Status st = threshold::VerifyPartial(p, me->verification_key, r, crypto::Sha256Bytes(q.encoded));
        !st.ok())
      Die("keeper answer", st);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
  state.SetLabel("keeper dir on " + FsName(kp.root) + " (" + kp.root.substr(0, kp.root.rfind('/')) +
                 "), audit sync " + (sync == keeper::AuditSync::kGroup ? "group 10 ms" : "per request"));
}
std::string DirFromEnv(const char* name, const char* fallback) {
  const char* env = std::getenv(name);
  return env != nullptr && *env != '\0' ? env : fallback;
}

void BM_KeeperPartialRequest(benchmark::State& state, const char* base_env, const char* base) {
  RunKeeperPartialRequests(state, DirFromEnv(base_env, base), 0);
}

// The same with the audit log's group commit (`custos keeper serve --audit-sync group`, the
// default): each release is written before its answer and fsync'd by the flusher thread within
// 10 ms. CPU time is the whole process's, so the flusher's fsyncs are counted.
void BM_KeeperPartialRequestGroupCommit(benchmark::State& state, const char* base_env, const char* base) {
  RunKeeperPartialRequests(state, DirFromEnv(base_env, base), 0, keeper::AuditSync::kGroup);
}

// The replay cache is scanned in full on every request (expired nonces are erased in the same
// pass), so the per-request cost grows with the number of requests accepted in the last
// 10 minutes: range(0) of them, loaded from the audit log; audit log on /dev/shm.
void BM_KeeperPartialRequestReplayCache(benchmark::State& state) {
  RunKeeperPartialRequests(state, DirFromEnv("CUSTOS_BENCH_SHM_DIR", "/dev/shm"), state.range(0));
}
BENCHMARK(BM_KeeperPartialRequestReplayCache)
    ->Arg(10'000)
    ->Arg(100'000)
    ->Iterations(300)
    ->Unit(benchmark::kMicrosecond);

// What the handler spends on the custody descriptor per request: ActiveCustody() parses the
// stored JSON (decompressing every point), then the fingerprint is computed for the custody
// check and again for the audit entry.
void BM_HandlerCustodyParse(benchmark::State& state) {
  KeeperPair kp(DirFromEnv("CUSTOS_BENCH_SHM_DIR", "/dev/shm"));
  std::string text = kp.c1.store->secrets().active->custody_json;  // as the keeper stores it
  for (auto _ : state) {
    auto c = custody::CustodyDescriptor::Parse(text);
    if (!c.ok()) {
      state.SkipWithError("parse failed");
      break;
    }
    Bytes fp = c->Fingerprint();
    std::string hex = c->FingerprintHex();
    benchmark::DoNotOptimize(fp);
    benchmark::DoNotOptimize(hex);
  }
  state.SetItemsProcessed(int64_t(state.iterations()));
}
BENCHMARK(BM_HandlerCustodyParse);

// Disk: /var/tmp (override with CUSTOS_BENCH_DISK_DIR); memory: /dev/shm (CUSTOS_BENCH_SHM_DIR).
BENCHMARK_CAPTURE(BM_KeeperPartialRequest, audit_on_disk, "CUSTOS_BENCH_DISK_DIR", "/var/tmp")
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_KeeperPartialRequest, audit_on_shm, "CUSTOS_BENCH_SHM_DIR", "/dev/shm")
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_KeeperPartialRequestGroupCommit, audit_on_disk, "CUSTOS_BENCH_DISK_DIR", "/var/tmp")
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);
BENCHMARK_CAPTURE(BM_KeeperPartialRequestGroupCommit, audit_on_shm, "CUSTOS_BENCH_SHM_DIR", "/dev/shm")
    ->Unit(benchmark::kMicrosecond)
    ->MeasureProcessCPUTime()
    ->MinTime(2.0);

}  // namespace
}  // namespace custos

BENCHMARK_MAIN();
