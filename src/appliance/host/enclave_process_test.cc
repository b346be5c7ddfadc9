// EnclaveProcess against a real custos-enclave (built beside this test): pipelined calls from
// the fibers of one I/O thread, and what they get when the core dies under them.
#include "appliance/host/enclave_process.h"

#include <signal.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include "appliance/ecall/calls.h"
#include "net/fiber.h"
#include <gmock/gmock.h>

#include "tests/testing/testing.h"

namespace custos::host {
namespace {

namespace fiber = net::fiber;
namespace asio = boost::asio;

std::string EnclaveBinary() {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  return (std::filesystem::path(std::string(exe, n > 0 ? static_cast<size_t>(n) : 0)).parent_path() /
          "custos-enclave")
      .string();
}

class EnclaveProcessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/custos-enclave-process-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    keys_ = tmpl;
    EnclaveLaunch launch{EnclaveBinary(), {"--tee", "sim", "--sim-key-dir", keys_}, 1, 1};
    auto p = EnclaveProcess::Spawn(launch);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    process_ = std::move(*p);
    io_thread_ = std::thread([this] { ioc_.run(); });
  }
  void TearDown() override {
    work_.reset();
    ioc_.stop();
    if (io_thread_.joinable()) io_thread_.join();
    process_.reset();
    std::filesystem::remove_all(keys_);
  }

  // OnIoThread runs fn on the I/O thread (outside any fiber) and waits for it.
  template <typename F>
  void OnIoThread(F fn) {
    std::promise<void> done;
    asio::post(ioc_, [&] {
      fn();
      done.set_value();
    });
    done.get_future().wait();
  }

  // WaitUntil polls `pred` on the I/O thread until it holds (10 s at most).
  template <typename F>
  bool WaitUntil(F pred) {
    for (int i = 0; i < 1000; ++i) {
      bool ok = false;
      OnIoThread([&] { ok = pred(); });
      if (ok) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  std::string keys_;
  std::shared_ptr<EnclaveProcess> process_;
  asio::io_context ioc_{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_{asio::make_work_guard(ioc_)};
  std::thread io_thread_;
};

// Stopped waits (10 s at most) until every thread of `pid` is stopped (SIGSTOP takes effect
// asynchronously: a thread not yet stopped could still answer).
bool Stopped(pid_t pid) {
  for (int i = 0; i < 1000; ++i) {
    bool all = true;
    for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      size_t close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T') all = false;
    }
    if (all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

StatusOr<Bytes> Ping(EnclaveProcess& p, const Bytes& payload) {
  auto r = ecall::Invoke<ecall::Ping>([&](ecall::Call c, std::vector<Bytes> a) { return p.Call(c, std::move(a)); },
                                      {payload});
  if (!r.ok()) return r.status();
  return r->payload;
}

TEST_F(EnclaveProcessTest, FibersOfOneThreadPipelineTheirCallsAndEachGetsItsOwnAnswer) {
  constexpr int kFibers = 64;
  const auto before = fiber::GetStats();
  int answered = 0, wrong = 0, in_flight = 0, most_in_flight = 0;
  OnIoThread([&] {
    for (int i = 0; i < kFibers; ++i) {
      fiber::Start(ioc_, [&, i] {
        fiber::AllowSuspend allow;
        Bytes payload = ToBytes("call number " + std::to_string(i));
        ++in_flight;
        most_in_flight = std::max(most_in_flight, in_flight);
        StatusOr<Bytes> echo = Ping(*process_, payload);
        --in_flight;
        if (!echo.ok() || *echo != payload) ++wrong;
        ++answered;
      });
    }
  });
  ASSERT_TRUE(WaitUntil([&] { return answered == kFibers; }));
  EXPECT_EQ(wrong, 0);
  // All 64 were written before the first answer was read: the thread never waited for one.
  EXPECT_EQ(most_in_flight, kFibers);
  EXPECT_GE(fiber::GetStats().suspended - before.suspended, static_cast<unsigned long long>(kFibers));
}

TEST_F(EnclaveProcessTest, AFiberThatMayNotSuspendCallsWithoutSuspending) {
  const auto before = fiber::GetStats();
  bool ok = false;
  OnIoThread([&] {
    fiber::Start(ioc_, [&] {
      StatusOr<Bytes> echo = Ping(*process_, ToBytes("blocking"));  // no AllowSuspend: a lock may be held
      ok = echo.ok() && *echo == ToBytes("blocking");
    });
  });
  EXPECT_TRUE(ok);  // answered before OnIoThread returned: the thread waited, the fiber never suspended
  EXPECT_EQ(fiber::GetStats().suspended, before.suspended);
}

TEST_F(EnclaveProcessTest, ACoreThatDiesUnderWaitingFibersFailsEachOfThemAndTheProcessIsGone) {
  ASSERT_EQ(kill(process_->pid(), SIGSTOP), 0);  // calls are written but nobody answers
  ASSERT_TRUE(Stopped(process_->pid()));
  constexpr int kFibers = 10;
  int failed = 0, succeeded = 0;
  std::string message;
  OnIoThread([&] {
    for (int i = 0; i < kFibers; ++i) {
      fiber::Start(ioc_, [&] {
        fiber::AllowSuspend allow;
        StatusOr<Bytes> echo = Ping(*process_, ToBytes("never answered"));
        if (echo.ok()) {
          ++succeeded;
        } else {
          ++failed;
          message = echo.status().message();
          EXPECT_EQ(echo.status().code(), ErrorCode::kUnavailable);
        }
      });
    }
  });
  OnIoThread([&] { EXPECT_EQ(failed + succeeded, 0); });  // all ten are waiting
  ASSERT_EQ(kill(process_->pid(), SIGKILL), 0);
  ASSERT_TRUE(WaitUntil([&] { return failed + succeeded == kFibers; }));
  EXPECT_EQ(failed, kFibers);
  // "trusted core: ecall: peer closed" (or reset) when the calls were written before the kill,
  // "trusted core: write failed: Broken pipe" when the write came after it.
  EXPECT_THAT(message, ::testing::StartsWith("trusted core: "));
  // Every later call, from a fiber or a thread, says the core is gone.
  StatusOr<Bytes> later = Ping(*process_, ToBytes("after"));
  ASSERT_FALSE(later.ok());
  EXPECT_THAT(later.status().message(), ::testing::HasSubstr("trusted core is gone"));
  EXPECT_TRUE(process_->Exited().has_value());
}

TEST_F(EnclaveProcessTest, ManyLargeCallsInFlightFillNeitherSideIntoADeadlock) {
  // 48 calls of 100 KiB each way (4.8 MB, far beyond both socket buffers) written at once: the
  // host never blocks writing, keeps reading answers, and every call gets its own back.
  constexpr int kFibers = 48;
  int answered = 0, wrong = 0;
  OnIoThread([&] {
    for (int i = 0; i < kFibers; ++i) {
      fiber::Start(ioc_, [&, i] {
        fiber::AllowSuspend allow;
        Bytes payload(100 * 1024, static_cast<uint8_t>(i));
        StatusOr<Bytes> echo = Ping(*process_, payload);
        if (!echo.ok() || *echo != payload) ++wrong;
        ++answered;
      });
    }
  });
  ASSERT_TRUE(WaitUntil([&] { return answered == kFibers; }));
  EXPECT_EQ(wrong, 0);
}

TEST_F(EnclaveProcessTest, ALargeCallFromAFiberGoesThroughAWorkerChannel) {
  // Above the pipelined size bound (256 KiB): answered all the same, without suspending.
  const auto before = fiber::GetStats();
  bool ok = false;
  OnIoThread([&] {
    fiber::Start(ioc_, [&] {
      fiber::AllowSuspend allow;
      Bytes big(300 * 1024, 0x5a);
      StatusOr<Bytes> echo = Ping(*process_, big);
      ok = echo.ok() && *echo == big;
    });
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(fiber::GetStats().suspended, before.suspended);
}

}  // namespace
}  // namespace custos::host
