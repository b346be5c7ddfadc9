// The appliance process's CPU scheduling policy ([server] cpu_scheduling; docs/operations.md
// "CPU scheduling"). "batch" runs every thread of the process, and the trusted core it starts,
// under Linux's SCHED_BATCH: a thread woken by I/O (an answer from the core, a client's request)
// does not preempt the thread running on that CPU but waits for it to block or use up its
// slice. For a server whose threads all serve requests that means fewer context switches per
// request (docs/benchmarks.md, issue 14). "normal" keeps the policy the process started with.
#pragma once

#include <string_view>

#include "common/status.h"

namespace custos::host {

// ApplyCpuScheduling sets `policy` ("batch" or "normal") on every thread the process has now;
// threads and processes started afterwards inherit it. Needs no privilege (SCHED_BATCH has
// priority 0, as SCHED_OTHER). Errors: kInvalidArgument for another policy name; kUnavailable
// naming the thread and errno when the kernel refuses.
Status ApplyCpuScheduling(std::string_view policy);

}  // namespace custos::host
