#include "appliance/enclave/hardening.h"

#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <vector>

#if defined(__SANITIZE_ADDRESS__)
#define CUSTOS_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUSTOS_ASAN 1
#endif
#endif

#if defined(CUSTOS_ASAN)
#include <sanitizer/common_interface_defs.h>
#endif

namespace custos::enclave {
namespace {

std::string ErrnoText(int err) { return std::strerror(err); }

// SyscallRule is one entry of the filter tables: a syscall by name plus at most one argument
// condition. Names are resolved for the native architecture; a syscall the architecture does not
// have (e.g. `open` or `fork` on aarch64) is skipped, since nothing can call it there.
struct SyscallRule {
  const char* name;
  bool has_condition = false;
  scmp_arg_cmp condition = {};
};

SyscallRule Plain(const char* name) { return {name}; }
SyscallRule When(const char* name, scmp_arg_cmp condition) { return {name, true, condition}; }

// Arg builds the condition "argument `arg` compared by `op` with `a` (and `b` for masked
// compares)". It spells out what libseccomp's SCMP_A0..SCMP_A5 macros expand to, because those
// use C99 compound literals that C++ compilers warn about.
scmp_arg_cmp Arg(unsigned int arg, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0) {
  scmp_arg_cmp c{};
  c.arg = arg;
  c.op = op;
  c.datum_a = a;
  c.datum_b = b;
  return c;
}

// The base set every lock-down keeps (see InstallSeccompFilter in the header for why each is
// here). Conditions narrow a syscall to the one use the core has for it; `self` is this
// process's id.
std::vector<SyscallRule> BaseAllowList(pid_t self) {
  return {
      Plain("read"),
      Plain("write"),
      When("writev", Arg(0, SCMP_CMP_EQ, STDERR_FILENO)),
      Plain("close"),
      Plain("fstat"),
      Plain("newfstatat"),
      Plain("brk"),
      When("mmap", Arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
      When("mprotect", Arg(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0)),
      Plain("munmap"),
      Plain("mremap"),
      Plain("madvise"),
      Plain("mlock"),
      Plain("munlock"),
      Plain("getrandom"),
      Plain("getpid"),
      Plain("gettid"),
      Plain("clock_gettime"),
      Plain("gettimeofday"),
      Plain("futex"),
      Plain("rt_sigreturn"),
      Plain("rt_sigprocmask"),
      Plain("sigaltstack"),
      When("tgkill", Arg(0, SCMP_CMP_EQ, static_cast<scmp_datum_t>(self))),
      When("prctl", Arg(0, SCMP_CMP_EQ, PR_GET_DUMPABLE)),
      Plain("exit"),
      Plain("exit_group"),
  };
}

// The file-system calls SeccompOptions::allow_file_open adds.
std::vector<SyscallRule> FileAllowList() {
  return {
      Plain("openat"),
      Plain("open"),
      Plain("mkdir"),
      Plain("mkdirat"),
      Plain("rmdir"),
      // rmdir where the architecture has no rmdir syscall; plain unlink stays refused.
      When("unlinkat", Arg(2, SCMP_CMP_MASKED_EQ, AT_REMOVEDIR, AT_REMOVEDIR)),
  };
}

// Syscalls only a compromised core would make; they kill the process.
constexpr const char* kKillList[] = {
    // Running other code or creating processes.
    "execve",
    "execveat",
    "fork",
    "vfork",
    "clone",
    "clone3",
    // Reaching into other processes.
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    // Networking beyond the inherited socket.
    "socket",
    "socketpair",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    // Escaping through the file system by handle.
    "open_by_handle_at",
    "name_to_handle_at",
    // Changing the kernel.
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "personality",
    "userfaultfd",
    // Mounts and namespaces.
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "setns",
    "unshare",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    // Kernel keyrings.
    "keyctl",
    "add_key",
    "request_key",
    // io_uring, whose operations seccomp never sees.
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
};

// ScmpFilter owns a libseccomp context.
struct ScmpFilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};
using ScmpFilter = std::unique_ptr<void, ScmpFilterDeleter>;

Status AddRule(scmp_filter_ctx ctx, uint32_t action, const SyscallRule& rule) {
  int nr = seccomp_syscall_resolve_name(rule.name);
  if (nr == __NR_SCMP_ERROR) return Status::Ok();  // not a syscall on this architecture
  int rc = rule.has_condition ? seccomp_rule_add(ctx, action, nr, 1, rule.condition)
                              : seccomp_rule_add(ctx, action, nr, 0);
  if (rc != 0) {
    return InternalError(std::string("seccomp_rule_add(") + rule.name + "): " + ErrnoText(-rc));
  }
  return Status::Ok();
}

Status AddRules(scmp_filter_ctx ctx, uint32_t action, std::span<const SyscallRule> rules) {
  for (const SyscallRule& rule : rules) RETURN_IF_ERROR(AddRule(ctx, action, rule));
  return Status::Ok();
}

}  // namespace

Status DisableCoreDumps() {
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return InternalError("prctl(PR_SET_DUMPABLE, 0): " + ErrnoText(errno));
  }
  const rlimit no_core = {0, 0};
  if (setrlimit(RLIMIT_CORE, &no_core) != 0) {
    return InternalError("setrlimit(RLIMIT_CORE, 0): " + ErrnoText(errno));
  }
  return Status::Ok();
}

Status InstallSeccompFilter(const SeccompOptions& options) {
  // Set no_new_privs ourselves rather than rely on libseccomp's default, so the promise does not
  // depend on a library attribute and a failure names this step.
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return InternalError("prctl(PR_SET_NO_NEW_PRIVS, 1): " + ErrnoText(errno));
  }

  ScmpFilter filter(seccomp_init(SCMP_ACT_ERRNO(EPERM)));
  if (filter == nullptr) return InternalError("seccomp_init failed");
  scmp_filter_ctx ctx = filter.get();

  struct Attribute {
    scmp_filter_attr attr;
    uint32_t value;
    const char* name;
  };
  const Attribute attributes[] = {
      {SCMP_FLTATR_CTL_NNP, 1, "SCMP_FLTATR_CTL_NNP"},
      {SCMP_FLTATR_CTL_TSYNC, 1, "SCMP_FLTATR_CTL_TSYNC"},
      {SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS, "SCMP_FLTATR_ACT_BADARCH"},
  };
  for (const Attribute& a : attributes) {
    int rc = seccomp_attr_set(ctx, a.attr, a.value);
    if (rc != 0) {
      return InternalError(std::string("seccomp_attr_set(") + a.name + "): " + ErrnoText(-rc));
    }
  }

  RETURN_IF_ERROR(AddRules(ctx, SCMP_ACT_ALLOW, BaseAllowList(getpid())));
  if (options.allow_file_open) RETURN_IF_ERROR(AddRules(ctx, SCMP_ACT_ALLOW, FileAllowList()));
  // With allow_file_open false, open/openat/creat are left to the default action: they fail
  // with EPERM, which is clearer to a caller than being killed (libseccomp refuses an explicit
  // rule whose action equals the default).
  for (const char* name : kKillList) {
    RETURN_IF_ERROR(AddRule(ctx, SCMP_ACT_KILL_PROCESS, Plain(name)));
  }

#if defined(CUSTOS_ASAN)
  // The sanitizer runtime reads /proc/self/maps when it reports an error; the filter forbids
  // opening it, so let the runtime cache the map now.
  __sanitizer_sandbox_on_notify(nullptr);
#endif

  int rc = seccomp_load(ctx);
  if (rc != 0) return InternalError("seccomp_load: " + ErrnoText(-rc));
  return Status::Ok();
}

StatusOr<LockdownReport> LockDown(const SeccompOptions& options) {
  LockdownReport report;
  RETURN_IF_ERROR(DisableCoreDumps());
  report.dumps_disabled = true;

#if defined(CUSTOS_ASAN)
  // The AddressSanitizer runtime intercepts mlockall and returns success without locking
  // anything (locking its shadow memory would take terabytes), so do not claim it.
  report.memory_lock_error = "AddressSanitizer build: mlockall is a no-op";
#else
  if (mlockall(MCL_CURRENT | MCL_FUTURE) == 0) {
    report.memory_locked = true;
  } else {
    report.memory_lock_error = "mlockall: " + ErrnoText(errno);
  }
#endif

  RETURN_IF_ERROR(InstallSeccompFilter(options));
  report.seccomp_installed = true;
  return report;
}

StatusOr<int> SeccompModeOf(pid_t pid) {
  if (pid <= 0) return InvalidArgument("SeccompModeOf: pid must be positive");
  const std::string path = "/proc/" + std::to_string(pid) + "/status";
  std::ifstream in(path);
  if (!in) return NotFound("no process " + std::to_string(pid));
  static constexpr std::string_view kField = "Seccomp:";
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, kField.size(), kField) != 0) continue;
    size_t pos = line.find_first_not_of(" \t", kField.size());
    if (pos == std::string::npos || pos + 1 != line.size() || line[pos] < '0' || line[pos] > '2') {
      return InternalError("unexpected Seccomp line in " + path);
    }
    return line[pos] - '0';
  }
  return FailedPrecondition("kernel reports no Seccomp mode in " + path);
}

}  // namespace custos::enclave
