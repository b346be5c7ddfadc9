#include "appliance/host/cpu_scheduling.h"

#include <sched.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include <gtest/gtest.h>

namespace custos::host {
namespace {

// RunInChild runs `body` in a forked child (the policy must not leak into the test process)
// and returns its exit status: 0 when every check in it held, else the number of the check.
int RunInChild(int (*body)()) {
  pid_t pid = fork();
  if (pid == 0) _exit(body());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

// The policy of a thread that ran before the call, of the calling thread, of a thread started
// after it and of a child process started after it.
int PoliciesAfter(const char* policy, int want) {
  int before_policy = -1;
  bool applied = false;
  std::thread before([&] {
    while (!__atomic_load_n(&applied, __ATOMIC_ACQUIRE)) std::this_thread::yield();
    before_policy = sched_getscheduler(0);
  });
  if (!ApplyCpuScheduling(policy).ok()) return 1;
  __atomic_store_n(&applied, true, __ATOMIC_RELEASE);
  before.join();
  if (before_policy != want) return 2;
  if (sched_getscheduler(0) != want) return 3;
  int after_policy = -1;
  std::thread([&] { after_policy = sched_getscheduler(0); }).join();
  if (after_policy != want) return 4;
  pid_t child = fork();
  if (child == 0) _exit(sched_getscheduler(0) == want ? 0 : 1);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 5;
  return 0;
}

// The test process's own policy (SCHED_OTHER unless the tests were started under another).
const int kStarted = sched_getscheduler(0);

TEST(CpuScheduling, BatchCoversTheThreadsThereAreAndTheOnesStartedLater) {
  ASSERT_NE(kStarted, SCHED_BATCH) << "run the tests under another policy than SCHED_BATCH";
  EXPECT_EQ(RunInChild([] { return PoliciesAfter("batch", SCHED_BATCH); }), 0);
  EXPECT_EQ(sched_getscheduler(0), kStarted);  // the child's change stayed in the child
}

TEST(CpuScheduling, NormalKeepsThePolicyAndOtherNamesAreRefused) {
  EXPECT_EQ(RunInChild([] { return PoliciesAfter("normal", kStarted); }), 0);
  Status refused = ApplyCpuScheduling("fifo");
  EXPECT_EQ(refused.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(sched_getscheduler(0), kStarted);
}

}  // namespace
}  // namespace custos::host
