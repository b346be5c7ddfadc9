#include "appliance/host/cpu_scheduling.h"

#include <sched.h>
#include <sys/types.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

namespace custos::host {

Status ApplyCpuScheduling(std::string_view policy) {
  if (policy == "normal") return Status::Ok();
  if (policy != "batch")
    return InvalidArgument("cpu scheduling must be \"batch\" or \"normal\"");
  // sched_setscheduler acts on one thread; threads created later inherit their creator's
  // policy, so setting every current thread covers the whole process from here on.
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task", ec)) {
    const std::string name = task.path().filename().string();
    pid_t tid = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), tid);
    if (err != std::errc() || end != name.data() + name.size()) continue;
    sched_param param{};
    param.sched_priority = 0;
    if (sched_setscheduler(tid, SCHED_BATCH, &param) != 0 && errno != ESRCH)  // ESRCH: it exited
      return Unavailable("cpu scheduling: cannot set SCHED_BATCH on thread " + name + ": " +
                         std::strerror(errno));
  }
  if (ec) return Unavailable("cpu scheduling: cannot list /proc/self/task: " + ec.message());
  return Status::Ok();
}

}  // namespace custos::host
