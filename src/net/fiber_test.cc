// Fibers on an io_context: suspension and resumption in order, Yield, the per-fiber
// AllowSuspend scope, contained exceptions and the guard page under the stack.
#include "net/fiber.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/testing/testing.h"

namespace custos::net::fiber {
namespace {

namespace asio = boost::asio;

TEST(FiberTest, AFiberThatNeverSuspendsRunsToTheEndInsideStart) {
  asio::io_context ioc{1};
  std::vector<std::string> log;
  asio::post(ioc, [&] {
    EXPECT_EQ(Current(), nullptr);
    Start(ioc, [&] {
      EXPECT_NE(Current(), nullptr);
      log.push_back("fiber");
    });
    log.push_back("after start");
    EXPECT_EQ(Current(), nullptr);
  });
  ioc.run();
  EXPECT_EQ(log, (std::vector<std::string>{"fiber", "after start"}));
}

TEST(FiberTest, SuspendedFibersGiveTheThreadBackAndResumeWhereTheyStopped) {
  asio::io_context ioc{1};
  std::vector<std::string> log;
  Fiber* a = nullptr;
  Fiber* b = nullptr;
  asio::io_context* a_context = nullptr;
  asio::post(ioc, [&] {
    Start(ioc, [&] {
      a = Current();
      a_context = &ContextOf(a);
      int local = 41;  // the fiber's own stack survives the suspension
      log.push_back("a1");
      Suspend();
      log.push_back("a2 " + std::to_string(local + 1));
    });
    Start(ioc, [&] {
      b = Current();
      log.push_back("b1");
      Suspend();
      log.push_back("b2");
    });
    log.push_back("loop");
    asio::post(ioc, [&] { Resume(b); });
    asio::post(ioc, [&] { Resume(a); });
  });
  ioc.run();
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "b1", "loop", "b2", "a2 42"}));
  EXPECT_EQ(a_context, &ioc);
}

TEST(FiberTest, YieldLetsWorkQueuedBeforeItRunFirst) {
  asio::io_context ioc{1};
  std::vector<std::string> log;
  asio::post(ioc, [&] {
    Start(ioc, [&] {
      asio::post(ioc, [&] { log.push_back("queued"); });
      Yield();
      log.push_back("fiber again");
    });
  });
  ioc.run();
  EXPECT_EQ(log, (std::vector<std::string>{"queued", "fiber again"}));
}

TEST(FiberTest, AllowSuspendBelongsToOneFiberNotToTheThread) {
  asio::io_context ioc{1};
  Fiber* a = nullptr;
  bool a_allowed = false, b_allowed = true, a_allowed_after = false, a_after_scope = true;
  asio::post(ioc, [&] {
    EXPECT_FALSE(SuspendAllowed());  // outside a fiber: never
    Start(ioc, [&] {
      a = Current();
      {
        AllowSuspend allow;
        a_allowed = SuspendAllowed();
        Suspend();
        a_allowed_after = SuspendAllowed();
      }
      a_after_scope = SuspendAllowed();
    });
    Start(ioc, [&] { b_allowed = SuspendAllowed(); });  // runs while a is suspended inside its scope
    asio::post(ioc, [&] { Resume(a); });
  });
  ioc.run();
  EXPECT_TRUE(a_allowed);
  EXPECT_FALSE(b_allowed);
  EXPECT_TRUE(a_allowed_after);
  EXPECT_FALSE(a_after_scope);
}

TEST(FiberTest, AnExceptionEndsOnlyItsFiber) {
  asio::io_context ioc{1};
  bool after = false;
  asio::post(ioc, [&] {
    Start(ioc, [] { throw std::runtime_error("the secret is hunter2"); });
    after = true;
  });
  ioc.run();
  EXPECT_TRUE(after);
}

TEST(FiberTest, ThousandsOfFibersReuseTheirStacks) {
  asio::io_context ioc{1};
  const auto before = GetStats();
  int done = 0;
  std::vector<Fiber*> parked;
  asio::post(ioc, [&] {
    for (int round = 0; round < 20; ++round) {
      for (int i = 0; i < 200; ++i) {
        Start(ioc, [&] {
          parked.push_back(Current());
          Suspend();
          ++done;
        });
      }
      std::vector<Fiber*> now;
      now.swap(parked);
      for (Fiber* f : now) Resume(f);
    }
  });
  ioc.run();
  EXPECT_EQ(done, 4000);
  EXPECT_EQ(GetStats().started - before.started, 4000u);
  EXPECT_EQ(GetStats().suspended - before.suspended, 4000u);
}

TEST(FiberTest, RunElsewhereRunsOnAnotherThreadWhileTheThreadServesOthers) {
  asio::io_context ioc{1};
  const std::thread::id io_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  std::vector<std::string> log;
  asio::post(ioc, [&] {
    Start(ioc, [&] {
      AllowSuspend allow;
      RunElsewhere([&] {
        ran_on = std::this_thread::get_id();
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      });
      log.push_back("slow work done");
    });
    Start(ioc, [&] { log.push_back("other request"); });  // served while the first waits
  });
  ioc.run();
  EXPECT_NE(ran_on, io_thread);
  EXPECT_EQ(log, (std::vector<std::string>{"other request", "slow work done"}));
  // Without AllowSuspend it runs in place.
  std::thread::id in_place;
  ioc.restart();
  asio::post(ioc, [&] { Start(ioc, [&] { RunElsewhere([&] { in_place = std::this_thread::get_id(); }); }); });
  ioc.run();
  EXPECT_EQ(in_place, io_thread);
}

int Deep(int n) {
  volatile char pad[4096];
  pad[0] = static_cast<char>(n);
  return n == 0 ? pad[0] : Deep(n - 1) + pad[0];
}

TEST(FiberDeathTest, RunningOffTheStackFaultsOnTheGuardPage) {
  // 1,000 frames of 4 KiB: past the 512 KiB stack. It must crash, never run on into memory.
  EXPECT_DEATH(
      {
        asio::io_context ioc{1};
        asio::post(ioc, [&] { Start(ioc, [] { (void)Deep(1000); }); });
        ioc.run();
      },
      "");
}

}  // namespace
}  // namespace custos::net::fiber
