// Fibers for the HTTP I/O threads: a request handler that waits for the trusted core suspends
// its fiber instead of blocking the thread, and the thread serves its other connections
// meanwhile (issue 14: "no thread blocks on the core"; docs/architecture.md "Appliance
// concurrency model").
//
// A fiber runs on one thread only: the one running its io_context. It is started and resumed
// from that thread's event loop (an asio handler, never from inside another fiber), and it
// gives the thread back only where it calls Suspend or Yield. Code that may suspend must hold
// no lock another fiber of the same thread could wait for: suspension is therefore refused
// unless the fiber opted in with an AllowSuspend scope, whose owner vouches for that.
//
// Built on glibc's ucontext (makecontext/swapcontext), with AddressSanitizer's fiber
// annotations in sanitizer builds. Stacks are 512 KiB with a guard page below (an overflow
// faults instead of corrupting memory), kept out of core dumps, and reused per thread.
#pragma once

#include <functional>

namespace boost::asio {
class io_context;
}

namespace custos::net::fiber {

struct Fiber;

// Start runs `fn` on a new fiber of the calling thread, which must be the thread running `ioc`,
// and not inside a fiber. It returns when fn returns or first suspends. fn must not throw
// (an exception escaping it is swallowed). Throws std::bad_alloc if no stack can be mapped.
void Start(boost::asio::io_context& ioc, std::function<void()> fn);

// Current is the running fiber; nullptr outside a fiber.
Fiber* Current();

// Suspend gives the thread back until Resume(Current()) is called (precondition: in a fiber).
void Suspend();

// Resume continues a suspended fiber until it returns or suspends again. Call it on the
// fiber's thread, outside any fiber (from an io_context handler).
void Resume(Fiber* fiber);

// Yield lets the thread's other ready work run first: the fiber continues from the back of its
// io_context's queue (precondition: in a fiber).
void Yield();

// ContextOf is the io_context a fiber runs on.
boost::asio::io_context& ContextOf(Fiber* fiber);

// SuspendAllowed: in a fiber, inside at least one AllowSuspend scope of that fiber.
bool SuspendAllowed();

// AllowSuspend marks, for the current fiber (no effect outside one), a region in which code
// below may suspend: its owner holds no lock that another fiber of the thread could block on.
class AllowSuspend {
 public:
  AllowSuspend();
  ~AllowSuspend();
  AllowSuspend(const AllowSuspend&) = delete;
  AllowSuspend& operator=(const AllowSuspend&) = delete;

 private:
  Fiber* fiber_;
};

// RunElsewhere runs `fn` on a background thread of the process while the current fiber waits
// suspended, and returns when fn has returned: for slow work a request must do (reading a page
// of the audit log, say) without holding up the other connections of its I/O thread. Outside
// a fiber that may suspend (SuspendAllowed), fn runs here and now. fn must not throw.
void RunElsewhere(const std::function<void()>& fn);

// Counters of this process, for tests and /metrics: fibers started, suspensions.
struct Stats {
  unsigned long long started = 0;
  unsigned long long suspended = 0;
};
Stats GetStats();

}  // namespace custos::net::fiber
