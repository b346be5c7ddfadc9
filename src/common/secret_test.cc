#include "common/secret.h"

#include <sys/resource.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace custos {
namespace {

std::string Pattern(size_t size, int seed) {
  std::string s(size, '\0');
  for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 31 + static_cast<size_t>(seed)) & 0xff);
  return s;
}

TEST(SecretBytes, ArenaSecretsAreZeroedIndependentAndReused) {
  // Every size class and a large one, many of each, alive at once: each keeps its own bytes.
  const std::vector<size_t> sizes = {1, 16, 32, 33, 64, 100, 256, 1000, 2048, 4096, 4097, 20000};
  std::vector<SecretBytes> live;
  for (int round = 0; round < 50; ++round) {
    for (size_t size : sizes) {
      SecretBytes s(size);
      for (uint8_t b : s.Expose()) ASSERT_EQ(b, 0) << "a new secret of " << size << " bytes is not zero";
      std::string p = Pattern(size, round);
      std::memcpy(s.ExposeMutable().data(), p.data(), size);
      live.push_back(std::move(s));
    }
  }
  size_t i = 0;
  for (int round = 0; round < 50; ++round)
    for (size_t size : sizes) EXPECT_EQ(live[i++].ExposeAsString(), Pattern(size, round));
  // Freed slots come back wiped.
  LockedArenaStats before = GetLockedArenaStats();
  live.clear();
  for (int round = 0; round < 50; ++round) {
    for (size_t size : sizes) {
      SecretBytes s(size);
      for (uint8_t b : s.Expose()) ASSERT_EQ(b, 0) << "a reused slot of " << size << " bytes was not wiped";
      live.push_back(std::move(s));
    }
  }
  // The small secrets fitted in the chunks already mapped: reuse, not growth.
  EXPECT_EQ(GetLockedArenaStats().chunks, before.chunks);
}

TEST(SecretBytes, ArenaIsLockedWhenTheLimitAllows) {
  rlimit lim{};
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &lim), 0);
  SecretBytes s = SecretBytes::CopyFrom(std::string_view("a secret"));
  LockedArenaStats st = GetLockedArenaStats();
  EXPECT_GE(st.chunks, 1u);
  if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= (1u << 20)) {
    EXPECT_GE(st.locked_bytes, size_t{64} << 10);
    EXPECT_EQ(st.lock_failures, 0u);
  } else {
    GTEST_SKIP() << "RLIMIT_MEMLOCK below 1 MiB: the arena runs unlocked";
  }
}

TEST(SecretBytes, ArenaServesConcurrentThreads) {
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([t, &wrong] {
      for (int i = 0; i < 2000; ++i) {
        size_t size = 1 + static_cast<size_t>((i * 37 + t) % 700);
        std::string p = Pattern(size, t * 1000 + i);
        SecretBytes s = SecretBytes::CopyFrom(p);
        SecretBytes c = s.Clone();
        if (c.ExposeAsString() != p) ++wrong;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace custos
