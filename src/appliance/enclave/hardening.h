// Process hardening for the trusted core when it runs as its own process (`custos-enclave`, the
// `sim` TEE backend). The core holds the root key, so once it has done its start-up file I/O
// (reading its own executable for the measurement, loading the key file) it locks itself down:
// no core dumps and no same-uid debugger, memory kept out of swap, and a seccomp filter that
// leaves it only what it needs to serve length-framed messages on its one inherited socket.
//
// What remains allowed after LockDown (everything else fails with EPERM, and the syscalls that
// would let a compromised core escape or reach out kill the whole process with SIGSYS) is listed
// at InstallSeccompFilter. See DESIGN.md "Attested appliance" for where this sits.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/status.h"

namespace custos::enclave {

// LockdownReport says which protections LockDown put in place, for the core's status report.
struct LockdownReport {
  // dumps_disabled is true once the process is non-dumpable and RLIMIT_CORE is 0.
  bool dumps_disabled = false;
  // memory_locked is true if mlockall(MCL_CURRENT | MCL_FUTURE) succeeded. It may legitimately
  // be false (RLIMIT_MEMLOCK too small, or a sanitizer build where mlockall is a no-op); then
  // memory_lock_error says why.
  bool memory_locked = false;
  // seccomp_installed is true once the seccomp filter is loaded; LockDown fails rather than
  // return a report in which it is false.
  bool seccomp_installed = false;
  // memory_lock_error is the reason memory_locked is false, empty when it is true.
  std::string memory_lock_error;
};

// SeccompOptions selects what the seccomp filter allows beyond the base set.
struct SeccompOptions {
  // allow_file_open keeps openat/open, mkdir/mkdirat and rmdir (unlinkat with AT_REMOVEDIR where
  // the architecture has no rmdir) for hardware backends that talk to the TEE through the file
  // system after lock-down: /dev/attestation (Gramine) or configfs-tsm reports
  // (mkdir a report directory, write inblob, read outblob, rmdir). Read and write are always
  // allowed. Leave it false for the `sim` backend, which does all its file I/O before locking
  // down; then open/openat/creat fail with EPERM.
  bool allow_file_open = false;
};

// DisableCoreDumps makes the calling process non-dumpable (prctl(PR_SET_DUMPABLE, 0), which also
// stops same-uid processes from ptrace-attaching or reading /proc/PID/mem and /proc/PID/environ)
// and sets RLIMIT_CORE to {0, 0} so a crash writes no core file even if something later makes
// the process dumpable again. On failure it returns kInternal naming the step that failed; the
// first step may already have taken effect.
Status DisableCoreDumps();

// InstallSeccompFilter loads a seccomp-BPF filter (via libseccomp) into the calling process. It
// sets no_new_privs first (required for an unprivileged filter, and it means a later execve
// could never gain privileges). The filter is synchronised to every thread of the process
// (TSYNC), though the core is expected to be single-threaded. It cannot be removed.
//
// Allowed afterwards (the base set, for serving the socket, OpenSSL and the allocator, including
// the AddressSanitizer runtime in sanitizer builds):
//   read, write                          the socket, stderr, pipes
//   writev on fd 2 only                  glibc's fatal-error messages ("*** stack smashing ...")
//   close, fstat, newfstatat             stdio's first use of a stream; fd clean-up
//   brk, mmap, munmap, mremap, madvise, mprotect
//                                        the allocator; mmap and mprotect refuse PROT_EXEC, so
//                                        no new code can be mapped
//   mlock, munlock                       SecretBytes locks its buffers
//   getrandom                            OpenSSL's seeding
//   getpid, gettid, clock_gettime, gettimeofday, futex
//                                        OpenSSL's fork check, clocks and locks
//   rt_sigreturn, rt_sigprocmask, sigaltstack
//                                        signal delivery
//   tgkill on this process only          abort() raising SIGABRT on itself
//   prctl(PR_GET_DUMPABLE) only          lets the core confirm it is non-dumpable
//   exit, exit_group
// With `options.allow_file_open`, also the file-system calls documented at SeccompOptions.
//
// Killed with SIGSYS (SCMP_ACT_KILL_PROCESS), because a core that attempts them is compromised:
// execve, execveat, fork, vfork, clone, clone3, ptrace, process_vm_readv, process_vm_writev,
// socket, socketpair, connect, bind, listen, accept, accept4, open_by_handle_at,
// name_to_handle_at, kexec_load, kexec_file_load, init_module, finit_module, delete_module,
// bpf, perf_event_open, personality, userfaultfd, mount, umount2, pivot_root, chroot, setns,
// unshare, the new mount API (fsopen, fsconfig, fsmount, fspick, move_mount, open_tree),
// keyctl, add_key, request_key, and io_uring_setup/io_uring_enter/io_uring_register (io_uring
// operations are not seen by seccomp). A syscall from a foreign ABI (i386 or x32 on x86-64) also
// kills the process. Everything else fails with EPERM.
//
// In AddressSanitizer builds it first calls __sanitizer_sandbox_on_notify so the runtime caches
// the memory map it would otherwise read from /proc/self/maps when reporting an error.
//
// On failure (libseccomp refused a rule, or the kernel refused the filter) it returns kInternal
// naming the step; no filter is in effect then, though no_new_privs may already be set.
Status InstallSeccompFilter(const SeccompOptions& options);

// LockDown applies all protections in the order that makes each step possible and covered:
//   1. DisableCoreDumps, first, so that nothing that goes wrong afterwards can dump memory;
//   2. mlockall(MCL_CURRENT | MCL_FUTURE), best effort: a failure is recorded in
//      memory_lock_error and is not an error. With MCL_FUTURE every later mapping counts against
//      RLIMIT_MEMLOCK, so an unprivileged core's heap cannot grow past that limit: give the
//      process a limit that covers its working set (or CAP_IPC_LOCK);
//   3. InstallSeccompFilter, last, because the filter forbids the prctl, setrlimit and mlockall
//      calls the earlier steps need.
// Call it once, single-threaded, after all start-up file I/O. On failure of step 1 or 3 it
// returns that step's Status; the caller must then exit rather than serve requests.
StatusOr<LockdownReport> LockDown(const SeccompOptions& options);

// SeccompModeOf returns the seccomp mode of process `pid` from the "Seccomp:" line of
// /proc/PID/status: 0 none, 1 strict, 2 filter. Used by tests and by the host's status report
// (the host reads the core's mode from outside). Returns kNotFound if the process does not
// exist, kFailedPrecondition if the kernel does not report a seccomp mode, kInvalidArgument for
// pid <= 0 and kInternal if the line cannot be parsed.
StatusOr<int> SeccompModeOf(pid_t pid);

}  // namespace custos::enclave
