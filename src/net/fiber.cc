#include "net/fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>

#if defined(__SANITIZE_ADDRESS__)
#define CUSTOS_FIBER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CUSTOS_FIBER_ASAN 1
#endif
#endif
#ifdef CUSTOS_FIBER_ASAN
#include <sanitizer/common_interface_defs.h>
#include <ucontext.h>
#else
// Release builds switch stacks with Boost.Context's fcontext (a few instructions, no system
// call); glibc's swapcontext saves and restores the signal mask with rt_sigprocmask on every
// switch, six switches per KMS request (docs/benchmarks.md, issue 14).
#include <boost/context/detail/fcontext.hpp>
#endif

namespace custos::net::fiber {

namespace {

constexpr size_t kStackSize = 512 * 1024;  // usable; one guard page more below it
constexpr size_t kPooledStacks = 256;      // per thread; more are unmapped when they end

struct Stack {
  uint8_t* map = nullptr;  // the mapping, guard page first
  size_t map_size = 0;
  uint8_t* bottom() const { return map + (map_size - kStackSize); }
};

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

struct StackPool {
  std::vector<Stack> free;
  ~StackPool() {
    for (Stack& s : free) munmap(s.map, s.map_size);
  }
};

thread_local StackPool pool;

Stack TakeStack() {
  if (!pool.free.empty()) {
    Stack s = pool.free.back();
    pool.free.pop_back();
    return s;
  }
  const size_t size = kStackSize + PageSize();
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK | MAP_NORESERVE,
                 -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  Stack s{static_cast<uint8_t*>(p), size};
  // The guard page: running off the stack faults here instead of writing over other memory.
  if (mprotect(s.map, PageSize(), PROT_NONE) != 0) {
    munmap(p, size);
    throw std::bad_alloc();
  }
  // Stacks hold plaintexts and keys while a request runs: never in a core dump.
  (void)madvise(s.map, size, MADV_DONTDUMP);
  return s;
}

void GiveStack(const Stack& s) {
  if (pool.free.size() < kPooledStacks) {
    pool.free.push_back(s);
  } else {
    munmap(s.map, s.map_size);
  }
}

std::atomic<unsigned long long> started_count{0};
std::atomic<unsigned long long> suspended_count{0};

}  // namespace

#ifndef CUSTOS_FIBER_ASAN
namespace bctx = boost::context::detail;
#endif

struct Fiber {
#ifdef CUSTOS_FIBER_ASAN
  ucontext_t context;
  ucontext_t* back = nullptr;  // where the fiber returns to when it suspends or ends
#else
  bctx::fcontext_t context = nullptr;  // the fiber, while it is suspended (or not yet started)
  bctx::fcontext_t back = nullptr;     // the event loop, while the fiber runs
#endif
  Stack stack;
  std::function<void()> fn;
  boost::asio::io_context* ioc = nullptr;
  bool done = false;
  int allow_suspend = 0;
#ifdef CUSTOS_FIBER_ASAN
  void* fake_stack = nullptr;
  const void* back_bottom = nullptr;
  size_t back_size = 0;
#endif
};

namespace {

thread_local Fiber* current = nullptr;

// Switch saves the running context in `from` and continues `to`; it returns when something
// switches back to `from`. Sanitizer builds avoid swapcontext: ASan intercepts it and prints a
// warning on stderr, where the daemons write JSON log lines; getcontext/setcontext do the
// same, with the stack switch announced to ASan by the calls around Switch.
#ifdef CUSTOS_FIBER_ASAN
void Switch(ucontext_t* from, ucontext_t* to) {
  volatile bool returned = false;
  getcontext(from);
  if (!returned) {
    returned = true;
    setcontext(to);
  }
}
#endif

// SwitchOut leaves the running fiber for its thread's event loop; returns when resumed.
void SwitchOut(Fiber* f) {
#ifdef CUSTOS_FIBER_ASAN
  __sanitizer_start_switch_fiber(f->done ? nullptr : &f->fake_stack, f->back_bottom, f->back_size);
  Switch(&f->context, f->back);
  __sanitizer_finish_switch_fiber(f->fake_stack, &f->back_bottom, &f->back_size);
#else
  // The event loop's context comes back with every resume (SwitchIn passes nothing else).
  f->back = bctx::jump_fcontext(f->back, nullptr).fctx;
#endif
}

#ifdef CUSTOS_FIBER_ASAN
void Entry() {
  Fiber* f = current;
  __sanitizer_finish_switch_fiber(nullptr, &f->back_bottom, &f->back_size);
#else
void Entry(bctx::transfer_t from) {
  Fiber* f = current;
  f->back = from.fctx;
#endif
  try {
    f->fn();
  } catch (...) {
  }
  f->fn = nullptr;  // its captures end here, on the fiber's own stack
  f->done = true;
  SwitchOut(f);  // never resumed: SwitchIn frees the fiber
  std::abort();
}

// SwitchIn runs `f` from the thread's event loop until it suspends or ends.
void SwitchIn(Fiber* f) {
  if (current != nullptr) std::abort();  // fibers are resumed from the event loop only
  current = f;
#ifdef CUSTOS_FIBER_ASAN
  ucontext_t here;
  f->back = &here;
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack.bottom(), kStackSize);
  Switch(&here, &f->context);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
  // Returns when the fiber suspends or ends, with the fiber's context to resume it by.
  f->context = bctx::jump_fcontext(f->context, nullptr).fctx;
#endif
  current = nullptr;
  if (f->done) {
    GiveStack(f->stack);
    delete f;
  }
}

}  // namespace

void Start(boost::asio::io_context& ioc, std::function<void()> fn) {
  Stack stack = TakeStack();
  Fiber* f = new Fiber;
  f->stack = stack;
  f->fn = std::move(fn);
  f->ioc = &ioc;
#ifdef CUSTOS_FIBER_ASAN
  // A copy of one context taken on this thread (its signal mask, its FPU state): getcontext is
  // a system call, once per thread instead of once per request.
  static thread_local ucontext_t base;
  static thread_local bool have_base = false;
  if (!have_base) {
    if (getcontext(&base) != 0) std::abort();
    have_base = true;
  }
  f->context = base;
#if defined(__x86_64__)
  // glibc's getcontext points uc_mcontext.fpregs into the context itself (__fpregs_mem): the
  // copy must point into its own copy, not into `base`.
  f->context.uc_mcontext.fpregs = &f->context.__fpregs_mem;
#endif
  f->context.uc_stack.ss_sp = f->stack.bottom();
  f->context.uc_stack.ss_size = kStackSize;
  f->context.uc_link = nullptr;
  makecontext(&f->context, &Entry, 0);
#else
  // The stack grows down from its top; fcontext keeps its own small frame there.
  f->context = bctx::make_fcontext(f->stack.bottom() + kStackSize, kStackSize, &Entry);
#endif
  started_count.fetch_add(1, std::memory_order_relaxed);
  SwitchIn(f);
}

Fiber* Current() { return current; }

void Suspend() {
  Fiber* f = current;
  if (f == nullptr) std::abort();
  suspended_count.fetch_add(1, std::memory_order_relaxed);
  SwitchOut(f);
  current = f;
}

void Resume(Fiber* f) { SwitchIn(f); }

void Yield() {
  Fiber* f = current;
  if (f == nullptr) std::abort();
  boost::asio::post(*f->ioc, [f] { Resume(f); });
  Suspend();
}

boost::asio::io_context& ContextOf(Fiber* f) { return *f->ioc; }

bool SuspendAllowed() { return current != nullptr && current->allow_suspend > 0; }

AllowSuspend::AllowSuspend() : fiber_(current) {
  if (fiber_ != nullptr) ++fiber_->allow_suspend;
}

AllowSuspend::~AllowSuspend() {
  if (fiber_ != nullptr) --fiber_->allow_suspend;
}

void RunElsewhere(const std::function<void()>& fn) {
  if (!SuspendAllowed()) return fn();
  // One thread, made at first use and never destroyed (work may be queued at exit).
  static boost::asio::thread_pool* pool = new boost::asio::thread_pool(1);
  Fiber* f = current;
  // The fiber's io_context has work until the fiber is resumed (it does not run dry meanwhile).
  auto work = boost::asio::make_work_guard(*f->ioc);
  boost::asio::post(*pool, [f, &fn, work = std::move(work)]() mutable {
    try {
      fn();
    } catch (...) {
    }
    boost::asio::post(*f->ioc, [f] { Resume(f); });
    work.reset();
  });
  Suspend();
}

Stats GetStats() { return {started_count.load(), suspended_count.load()}; }

}  // namespace custos::net::fiber
