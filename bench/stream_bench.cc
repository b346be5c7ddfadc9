// Throughput of the STREAM layer (src/protocol/stream/stream.h): per-chunk sealing and opening in memory,
// and whole 256 MiB streams through file descriptors backed by memfd (RAM, not a disk; each run
// writes a freshly truncated memfd, as writing a new object would). scripts/bench_stream.sh
// compares these with `openssl speed`.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

#include "crypto/random.h"
#include "protocol/stream/stream.h"

namespace custos::files {
namespace {

constexpr uint64_t kStreamBytes = uint64_t{256} << 20;

struct Keys {
  SecretBytes dek = crypto::RandomSecret(kStreamKeySize);
  Bytes prefix = crypto::RandomBytes(kStreamNoncePrefixSize);
  Bytes digest = crypto::RandomBytes(kStreamHeaderDigestSize);
  StreamParams Params(uint32_t chunk_size) const {
    return StreamParams{
        .dek = dek, .nonce_prefix = prefix, .header_digest = digest, .chunk_size = chunk_size};
  }
};

void BM_EncryptChunk(benchmark::State& state) {
  const auto chunk = static_cast<uint32_t>(state.range(0));
  Keys keys;
  Bytes pt = crypto::RandomBytes(chunk);
  Bytes out(chunk + kStreamTagSize);
  // Each iteration seals the next chunk of one long stream, as EncryptStream does.
  auto enc = StreamEncryptor::Create(keys.Params(chunk));
  if (!enc.ok()) std::abort();
  for (auto _ : state) {
    if (!enc->EncryptChunkInto(pt, false, out).ok()) {
      state.SkipWithError("EncryptChunk failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * chunk);
}

void BM_DecryptChunk(benchmark::State& state) {
  const auto chunk = static_cast<uint32_t>(state.range(0));
  Keys keys;
  auto enc = StreamEncryptor::Create(keys.Params(chunk));
  auto dec = StreamDecryptor::Create(keys.Params(chunk));
  if (!enc.ok() || !dec.ok()) std::abort();
  Bytes ct;
  if (!enc->EncryptChunk(crypto::RandomBytes(chunk), false, ct).ok()) std::abort();
  Bytes out(chunk);
  for (auto _ : state) {
    auto n = dec->DecryptChunk(0, ct, false, out);
    if (!n.ok()) {
      state.SkipWithError("DecryptChunk failed");
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * chunk);
}

BENCHMARK(BM_EncryptChunk)->Arg(16 << 10)->Arg(64 << 10);
BENCHMARK(BM_DecryptChunk)->Arg(16 << 10)->Arg(64 << 10);

int MemFd(const char* name) {
  int fd = ::memfd_create(name, MFD_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

// FillRandom writes `n` pseudo-random bytes (fresh DRBG output per MiB) to `fd`.
void FillRandom(int fd, uint64_t n) {
  for (uint64_t done = 0; done < n;) {
    Bytes block = crypto::RandomBytes(std::min<uint64_t>(1 << 20, n - done));
    if (::write(fd, block.data(), block.size()) != ssize_t(block.size())) std::abort();
    done += block.size();
  }
}

void Rewind(int in_fd, int out_fd) {
  if (::lseek(in_fd, 0, SEEK_SET) != 0 || ::ftruncate(out_fd, 0) != 0 ||
      ::lseek(out_fd, 0, SEEK_SET) != 0)
    std::abort();
}

void BM_EncryptStream(benchmark::State& state) {
  const auto chunk = static_cast<uint32_t>(state.range(0));
  Keys keys;
  int in = MemFd("stream-bench-pt"), out = MemFd("stream-bench-ct");
  FillRandom(in, kStreamBytes);
  for (auto _ : state) {
    state.PauseTiming();
    Rewind(in, out);
    state.ResumeTiming();
    if (!EncryptStream(in, out, keys.Params(chunk)).ok()) {
      state.SkipWithError("EncryptStream failed");
      break;
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kStreamBytes));
  ::close(in);
  ::close(out);
}

void BM_DecryptStream(benchmark::State& state) {
  const auto chunk = static_cast<uint32_t>(state.range(0));
  Keys keys;
  int pt = MemFd("stream-bench-pt"), ct = MemFd("stream-bench-ct"), out = MemFd("stream-bench-out");
  FillRandom(pt, kStreamBytes);
  Rewind(pt, ct);
  if (!EncryptStream(pt, ct, keys.Params(chunk)).ok()) std::abort();
  ::close(pt);
  for (auto _ : state) {
    state.PauseTiming();
    Rewind(ct, out);
    state.ResumeTiming();
    if (!DecryptStream(ct, out, keys.Params(chunk)).ok()) {
      state.SkipWithError("DecryptStream failed");
      break;
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kStreamBytes));
  ::close(ct);
  ::close(out);
}

// BM_CopyStream is the floor the two benchmarks above stand on: the same reads and writes of
// chunk-sized pieces between the same kind of memfds, with no cryptography. Stream throughput
// minus this is the cost of the STREAM layer itself.
void BM_CopyStream(benchmark::State& state) {
  const auto chunk = static_cast<size_t>(state.range(0));
  int in = MemFd("stream-bench-pt"), out = MemFd("stream-bench-copy");
  FillRandom(in, kStreamBytes);
  Bytes buf(chunk + kStreamTagSize);
  for (auto _ : state) {
    state.PauseTiming();
    Rewind(in, out);
    state.ResumeTiming();
    for (;;) {
      ssize_t n = ::read(in, buf.data(), buf.size());
      if (n < 0) std::abort();
      if (n == 0) break;
      if (::write(out, buf.data(), size_t(n)) != n) std::abort();
    }
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(kStreamBytes));
  ::close(in);
  ::close(out);
}

BENCHMARK(BM_CopyStream)->Arg(64 << 10)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_EncryptStream)->Arg(64 << 10)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_DecryptStream)->Arg(64 << 10)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace
}  // namespace custos::files

BENCHMARK_MAIN();
