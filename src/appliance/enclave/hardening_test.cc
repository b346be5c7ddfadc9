#include "appliance/enclave/hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <string>

#include "common/secret.h"
#include "gtest/gtest.h"
#include "tests/testing/testing.h"

#if defined(__SANITIZE_ADDRESS__)
#define CUSTOS_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUSTOS_TEST_ASAN 1
#endif
#endif

namespace custos::enclave {
namespace {

// The hardening is irreversible, so every test applies it in a forked child. A child reports a
// failed check through its exit code (one code per check, named by CheckName) and ends with
// _exit, so neither gtest nor LeakSanitizer runs in it.
enum Check : int {
  kAllPassed = 0,
  kLockDownFailed = 10,
  kReportIncomplete,
  kOpenNotRefused,
  kGetrandomFailed,
  kLargeAllocFailed,
  kPipeWriteFailed,
  kPipeReadBackFailed,
  kStillDumpable,
  kUnlistedSyscallNotRefused,
  kExecMappingNotRefused,
  kExecProtectNotRefused,
  kWritevToOtherFdNotRefused,
  kCoreLimitNotZero,
  kGetrlimitFailed,
  kDisableCoreDumpsFailed,
  kFileOpenFailed,
  kFileReadFailed,
  kMkdirFailed,
  kRmdirFailed,
  kSurvivedForbiddenSyscall,
  kRandBytesFailed,
  kSecretBytesBroken,
  kChildThrew,
};

// No default case, so -Wswitch flags a Check without a name.
const char* CheckName(int code) {
  switch (static_cast<Check>(code)) {
    case kAllPassed:
      return "all checks passed";
    case kLockDownFailed:
      return "LockDown returned an error";
    case kReportIncomplete:
      return "LockdownReport is incomplete or memory_lock_error disagrees with memory_locked";
    case kOpenNotRefused:
      return "openat was not refused with EPERM";
    case kGetrandomFailed:
      return "getrandom failed";
    case kLargeAllocFailed:
      return "malloc of 10 MiB failed";
    case kPipeWriteFailed:
      return "write to a pipe failed";
    case kPipeReadBackFailed:
      return "read back from the pipe failed";
    case kStillDumpable:
      return "PR_GET_DUMPABLE is not 0";
    case kUnlistedSyscallNotRefused:
      return "uname (not allowed) was not refused with EPERM";
    case kExecMappingNotRefused:
      return "mmap with PROT_EXEC was not refused with EPERM";
    case kExecProtectNotRefused:
      return "mprotect to PROT_EXEC was not refused with EPERM";
    case kWritevToOtherFdNotRefused:
      return "writev to a fd other than 2 was not refused";
    case kCoreLimitNotZero:
      return "RLIMIT_CORE is not {0, 0}";
    case kGetrlimitFailed:
      return "getrlimit failed";
    case kDisableCoreDumpsFailed:
      return "DisableCoreDumps returned an error";
    case kFileOpenFailed:
      return "open with allow_file_open failed";
    case kFileReadFailed:
      return "read of the opened file failed";
    case kMkdirFailed:
      return "mkdir with allow_file_open failed";
    case kRmdirFailed:
      return "rmdir with allow_file_open failed";
    case kSurvivedForbiddenSyscall:
      return "the forbidden syscall returned instead of killing";
    case kRandBytesFailed:
      return "RAND_bytes failed";
    case kSecretBytesBroken:
      return "SecretBytes did not hold its contents";
    case kChildThrew:
      return "the child threw";
  }
  return "unknown exit code";
}

// ChildOutcome is how a forked child ended and what it wrote to stderr.
struct ChildOutcome {
  bool exited = false;
  int exit_code = -1;
  bool signaled = false;
  int signal = 0;
  std::string stderr_text;

  std::string Describe() const {
    std::string s = exited
                        ? "exited " + std::to_string(exit_code) + " (" + CheckName(exit_code) + ")"
                    : signaled ? std::string("killed by signal ") + strsignal(signal)
                               : std::string("ended oddly");
    if (!stderr_text.empty()) s += "; stderr:\n" + stderr_text;
    return s;
  }
};

// RunChild forks; the child redirects stderr into a pipe the parent drains, runs `body` and
// _exits with its result. `while_running`, if given, runs in the parent with the child's pid
// after `body` has signalled readiness through the fd passed to it (a body that does not need
// the parent ignores the fd); the parent then closes the child's wait pipe to let it finish.
ChildOutcome RunChild(const std::function<int(int ready_fd, int go_fd)>& body,
                      const std::function<void(pid_t)>& while_running = nullptr) {
  int err_pipe[2], ready_pipe[2], go_pipe[2];
  if (pipe2(err_pipe, O_CLOEXEC) != 0 || pipe2(ready_pipe, O_CLOEXEC) != 0 ||
      pipe2(go_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {};
  }
  fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return {};
  }
  if (pid == 0) {
    close(err_pipe[0]);
    close(ready_pipe[0]);
    close(go_pipe[1]);
    dup2(err_pipe[1], STDERR_FILENO);
    int code = kChildThrew;
    try {
      code = body(ready_pipe[1], go_pipe[0]);
    } catch (...) {
    }
    _exit(code);
  }
  close(err_pipe[1]);
  close(ready_pipe[1]);
  close(go_pipe[0]);
  if (while_running) {
    char byte;
    if (read(ready_pipe[0], &byte, 1) == 1) {
      while_running(pid);
    } else {
      ADD_FAILURE() << "child ended before signalling readiness";
    }
  }
  close(go_pipe[1]);
  close(ready_pipe[0]);

  ChildOutcome out;
  char buf[4096];
  ssize_t n;
  while ((n = read(err_pipe[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) out.stderr_text.append(buf, static_cast<size_t>(n));
  }
  close(err_pipe[0]);
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) {
    ADD_FAILURE() << "waitpid: " << std::strerror(errno);
    return out;
  }
  out.exited = WIFEXITED(status);
  out.exit_code = out.exited ? WEXITSTATUS(status) : -1;
  out.signaled = WIFSIGNALED(status);
  out.signal = out.signaled ? WTERMSIG(status) : 0;
  return out;
}

ChildOutcome RunChild(const std::function<int()>& body) {
  return RunChild([&](int, int) { return body(); });
}

int LockDownOrFail(const SeccompOptions& options = {}) {
  StatusOr<LockdownReport> report = LockDown(options);
  if (!report.ok()) {
    fprintf(stderr, "%s\n", report.status().ToString().c_str());
    return kLockDownFailed;
  }
  if (!report->dumps_disabled || !report->seccomp_installed ||
      report->memory_locked != report->memory_lock_error.empty()) {
    return kReportIncomplete;
  }
  return kAllPassed;
}

// StatusField returns the value of `field` ("NoNewPrivs:") in /proc/PID/status, or "".
std::string StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) {
      size_t pos = line.find_first_not_of(" \t", field.size());
      return pos == std::string::npos ? "" : line.substr(pos);
    }
  }
  return "";
}

void ExpectKilledBySigsys(const ChildOutcome& out) {
  EXPECT_TRUE(out.signaled && out.signal == SIGSYS) << out.Describe();
}

TEST(LockDownTest, LeavesWhatTheCoreNeedsAndRefusesTheRest) {
  ChildOutcome out = RunChild([]() -> int {
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) return kPipeWriteFailed;  // before the filter forbids pipe2
    if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;

    errno = 0;
    if (openat(AT_FDCWD, "/etc/hostname", O_RDONLY) != -1 || errno != EPERM) {
      return kOpenNotRefused;
    }

    unsigned char random[32];
    if (getrandom(random, sizeof(random), 0) != static_cast<ssize_t>(sizeof(random))) {
      return kGetrandomFailed;
    }

    constexpr size_t kTenMiB = 10u << 20;
    auto* big = static_cast<unsigned char*>(malloc(kTenMiB));
    if (big == nullptr) return kLargeAllocFailed;
    std::memset(big, 0xa5, kTenMiB);
    const bool big_holds = static_cast<volatile unsigned char*>(big)[kTenMiB - 1] == 0xa5;
    free(big);
    if (!big_holds) return kLargeAllocFailed;

    const char message[] = "framed";
    if (write(pipe_fds[1], message, sizeof(message)) != static_cast<ssize_t>(sizeof(message))) {
      return kPipeWriteFailed;
    }
    char echo[sizeof(message)] = {};
    if (read(pipe_fds[0], echo, sizeof(echo)) != static_cast<ssize_t>(sizeof(echo)) ||
        std::memcmp(echo, message, sizeof(message)) != 0) {
      return kPipeReadBackFailed;
    }

    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return kStillDumpable;

    utsname uts;
    errno = 0;
    if (uname(&uts) != -1 || errno != EPERM) return kUnlistedSyscallNotRefused;

    errno = 0;
    void* code_page =
        mmap(nullptr, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code_page != MAP_FAILED || errno != EPERM) return kExecMappingNotRefused;
    void* data_page =
        mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (data_page == MAP_FAILED) return kLargeAllocFailed;
    errno = 0;
    if (mprotect(data_page, 4096, PROT_READ | PROT_EXEC) != -1 || errno != EPERM) {
      return kExecProtectNotRefused;
    }
    munmap(data_page, 4096);

    iovec iov = {const_cast<char*>(message), sizeof(message)};
    errno = 0;
    if (writev(pipe_fds[1], &iov, 1) != -1 || errno != EPERM) return kWritevToOtherFdNotRefused;
    return kAllPassed;
  });
  EXPECT_TRUE(out.exited && out.exit_code == kAllPassed) << out.Describe();
}

TEST(LockDownTest, ChildRunsInFilterModeWithNoNewPrivs) {
  int mode_seen = -1;
  std::string no_new_privs;
  ChildOutcome out = RunChild(
      [](int ready_fd, int go_fd) -> int {
        if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
        char byte = 1;
        if (write(ready_fd, &byte, 1) != 1) return kPipeWriteFailed;
        (void)read(go_fd, &byte, 1);  // returns 0 once the parent has looked
        return kAllPassed;
      },
      [&](pid_t child) {
        StatusOr<int> mode = SeccompModeOf(child);
        ASSERT_OK(mode.status());
        mode_seen = *mode;
        no_new_privs = StatusField(child, "NoNewPrivs:");
      });
  EXPECT_TRUE(out.exited && out.exit_code == kAllPassed) << out.Describe();
  EXPECT_EQ(mode_seen, 2);
  EXPECT_EQ(no_new_privs, "1");
}

TEST(LockDownTest, ExecveKillsTheProcess) {
  ChildOutcome out = RunChild([]() -> int {
    if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
    char* const argv[] = {const_cast<char*>("/bin/true"), nullptr};
    char* const envp[] = {nullptr};
    execve("/bin/true", argv, envp);
    return kSurvivedForbiddenSyscall;
  });
  ExpectKilledBySigsys(out);
}

TEST(LockDownTest, SocketKillsTheProcess) {
  ChildOutcome out = RunChild([]() -> int {
    if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
    (void)socket(AF_INET, SOCK_STREAM, 0);
    return kSurvivedForbiddenSyscall;
  });
  ExpectKilledBySigsys(out);
}

TEST(LockDownTest, OtherEscapeRoutesKillTheProcess) {
  struct Attempt {
    const char* name;
    std::function<void()> call;
  };
  const Attempt attempts[] = {
    {"fork", [] { (void)fork(); }},
    {"clone3", [] { (void)syscall(SYS_clone3, nullptr, 0); }},
    {"ptrace", [] { (void)ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); }},
    {"process_vm_readv",
     [] { (void)syscall(SYS_process_vm_readv, getppid(), nullptr, 0, nullptr, 0, 0); }},
    {"io_uring_setup",
     [] {
       io_uring_params params = {};
       (void)syscall(SYS_io_uring_setup, 8, &params);
     }},
    {"unshare", [] { (void)unshare(0); }},
    {"bpf", [] { (void)syscall(SYS_bpf, 0, nullptr, 0); }},
#if defined(__x86_64__)
    // Foreign ABIs could otherwise reach syscalls under other numbers.
    {"x32 getpid", [] { (void)syscall(0x40000000 | SYS_getpid); }},
    {"i386 getpid via int 0x80",
     [] {
       long result;
       asm volatile("int $0x80" : "=a"(result) : "a"(20L) : "memory");
       (void)result;
     }},
#endif
  };
  for (const Attempt& attempt : attempts) {
    SCOPED_TRACE(attempt.name);
    ChildOutcome out = RunChild([&]() -> int {
      if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
      attempt.call();
      return kSurvivedForbiddenSyscall;
    });
    ExpectKilledBySigsys(out);
  }
}

TEST(LockDownTest, OpenSslAndSecretBytesWorkInside) {
  ChildOutcome out = RunChild([]() -> int {
    if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
    unsigned char random[32];
    if (RAND_bytes(random, sizeof(random)) != 1) return kRandBytesFailed;
    SecretBytes secret = SecretBytes::CopyFrom(std::span<const uint8_t>(random, sizeof(random)));
    SecretBytes copy = secret.Clone();
    if (!secret.ConstantTimeEquals(copy) || copy.size() != sizeof(random)) {
      return kSecretBytesBroken;
    }
    return kAllPassed;
  });
  EXPECT_TRUE(out.exited && out.exit_code == kAllPassed) << out.Describe();
}

TEST(LockDownTest, AllowFileOpenKeepsTheFileSystemCalls) {
  const std::string dir = custos::testing::TempDir();
  const std::string file = dir + "/report";
  std::ofstream(file) << "outblob";
  const std::string subdir = dir + "/entry";
  ChildOutcome out = RunChild([&]() -> int {
    if (int rc = LockDownOrFail(SeccompOptions{.allow_file_open = true}); rc != kAllPassed) {
      return rc;
    }
    int fd = open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return kFileOpenFailed;
    char buf[7];
    if (read(fd, buf, sizeof(buf)) != 7 || std::memcmp(buf, "outblob", 7) != 0) {
      return kFileReadFailed;
    }
    close(fd);
    if (mkdir(subdir.c_str(), 0700) != 0) return kMkdirFailed;
    if (rmdir(subdir.c_str()) != 0) return kRmdirFailed;
    // The escape routes stay closed.
    (void)socket(AF_INET, SOCK_STREAM, 0);
    return kSurvivedForbiddenSyscall;
  });
  ExpectKilledBySigsys(out);
}

TEST(DisableCoreDumpsTest, ZeroesCoreLimitAndClearsDumpable) {
  ChildOutcome out = RunChild([]() -> int {
    if (!DisableCoreDumps().ok()) return kDisableCoreDumpsFailed;
    rlimit limit;
    if (getrlimit(RLIMIT_CORE, &limit) != 0) return kGetrlimitFailed;
    if (limit.rlim_cur != 0 || limit.rlim_max != 0) return kCoreLimitNotZero;
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0) return kStillDumpable;
    return kAllPassed;
  });
  EXPECT_TRUE(out.exited && out.exit_code == kAllPassed) << out.Describe();
}

TEST(SeccompModeOfTest, ReadsOwnModeAndRefusesBadPids) {
  StatusOr<int> own = SeccompModeOf(getpid());
  ASSERT_OK(own.status());
  EXPECT_GE(*own, 0);
  EXPECT_LE(*own, 2);

  StatusOr<int> zero = SeccompModeOf(0);
  ASSERT_FALSE(zero.ok());
  EXPECT_EQ(zero.status().code(), ErrorCode::kInvalidArgument);
  StatusOr<int> negative = SeccompModeOf(-1);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), ErrorCode::kInvalidArgument);

  // Above the largest pid_max Linux allows (4194304), so no such process can exist.
  StatusOr<int> absent = SeccompModeOf(5000000);
  ASSERT_FALSE(absent.ok());
  EXPECT_EQ(absent.status().code(), ErrorCode::kNotFound);
}

#if defined(CUSTOS_TEST_ASAN)
// A sanitizer report must still reach stderr from inside the sandbox, and the runtime must not
// trip the filter's kill rules (e.g. by spawning a symbolizer) while producing it.
TEST(LockDownTest, SanitizerReportsSurviveTheFilter) {
  ChildOutcome out = RunChild([]() -> int {
    if (int rc = LockDownOrFail(); rc != kAllPassed) return rc;
    auto* bytes = static_cast<volatile unsigned char*>(malloc(16));
    volatile unsigned char past_end = bytes[16];
    (void)past_end;
    return kAllPassed;
  });
  EXPECT_FALSE(out.signaled && out.signal == SIGSYS) << out.Describe();
  EXPECT_FALSE(out.exited && out.exit_code == kAllPassed) << out.Describe();
  EXPECT_NE(out.stderr_text.find("AddressSanitizer: heap-buffer-overflow"), std::string::npos)
      << out.Describe();
}
#endif

}  // namespace
}  // namespace custos::enclave
