#include "appliance/host/enclave_process.h"

#include "appliance/ecall/calls.h"

#include "common/file.h"
#include "common/secret.h"
#include "net/fiber.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <signal.h>
#include <spawn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>

extern char** environ;

namespace custos::host {

namespace {
constexpr int kChildFd = 3;
}

StatusOr<std::shared_ptr<EnclaveProcess>> EnclaveProcess::Spawn(const EnclaveLaunch& launch) {
  if (access(launch.binary.c_str(), X_OK) != 0)
    return NotFound("trusted core executable not found or not executable: " + launch.binary);
  if (launch.workers < 1 || launch.workers > 256)
    return InvalidArgument("trusted core workers must be 1 to 256");
  if (launch.pipelined < 0 || launch.pipelined > 256)
    return InvalidArgument("trusted core pipelined channels must be 0 to 256");
  const int channels = launch.workers + launch.pipelined;
  std::vector<int> host_fds, child_fds;
  auto close_all = [&] {
    for (int fd : host_fds) close(fd);
    for (int fd : child_fds) close(fd);
  };
  for (int i = 0; i < channels; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      Status st = Unavailable(std::string("socketpair: ") + std::strerror(errno));
      close_all();
      return st;
    }
    host_fds.push_back(sv[0]);
    // Above the targets of the dup2s below, so that no dup2 overwrites a source not yet moved.
    int high = fcntl(sv[1], F_DUPFD_CLOEXEC, kChildFd + channels);
    close(sv[1]);
    if (high < 0) {
      Status st = Unavailable(std::string("fcntl: ") + std::strerror(errno));
      close_all();
      return st;
    }
    child_fds.push_back(high);
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  // dup2 onto fds 3, 4, ... clears close-on-exec there; every other descriptor of the host is
  // CLOEXEC or closed below, so the core inherits only stdin/stdout/stderr and its sockets.
  for (int i = 0; i < channels; ++i)
    posix_spawn_file_actions_adddup2(&actions, child_fds[i], kChildFd + i);
  // And whatever a library opened without close-on-exec (listening sockets of in-process
  // keepers in dev mode, say) does not reach the core either.
  posix_spawn_file_actions_addclosefrom_np(&actions, kChildFd + channels);
  std::vector<std::string> args = {launch.binary, "--fd", std::to_string(kChildFd), "--workers",
                                   std::to_string(channels)};
  args.insert(args.end(), launch.args.begin(), launch.args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, launch.binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  for (int fd : child_fds) close(fd);
  child_fds.clear();
  if (rc != 0) {
    close_all();
    return Unavailable(std::string("cannot start the trusted core: ") + std::strerror(rc));
  }
  std::vector<int> pipe_fds(host_fds.begin() + launch.workers, host_fds.end());
  host_fds.resize(static_cast<size_t>(launch.workers));
  std::shared_ptr<EnclaveProcess> p(new EnclaveProcess(pid, std::move(host_fds), std::move(pipe_fds)));
  auto hello = ecall::Invoke<ecall::Hello>(
      [&](ecall::Call c, std::vector<Bytes> a) { return p->Call(c, std::move(a)); }, {});
  if (!hello.ok())
    return hello.status().WithContext("trusted core did not start (see its log line above)");
  p->tee_ = std::move(hello->tee);
  p->enclave_key_ = std::move(hello->enclave_key);
  p->measurement_ = std::move(hello->measurement);
  p->info_json_ = std::move(hello->info);
  return p;
}

EnclaveProcess::EnclaveProcess(pid_t pid, std::vector<int> fds, std::vector<int> pipe_fds) : pid_(pid) {
  for (int fd : fds) {
    channels_.push_back(std::make_unique<Channel>(fd));
    free_.push_back(channels_.back().get());
  }
  for (int fd : pipe_fds) {
    pipes_.push_back(std::make_unique<Channel>(fd));
    free_pipes_.push_back(pipes_.back().get());
  }
}

EnclaveProcess::~EnclaveProcess() {
  for (auto& c : channels_) close(c->fd);
  for (auto& c : pipes_) close(c->fd);
  if (reaped_) return;
  for (int i = 0; i < 200; ++i) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_ || r < 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

std::optional<std::string> EnclaveProcess::Exited() {
  std::lock_guard<std::mutex> lock(mu_);
  if (reaped_) return exit_reason_;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r != pid_) {
    if (!broken_) return std::nullopt;
    // The channel broke but the process lives on (out of step): end it.
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  reaped_ = true;
  broken_ = true;
  if (WIFSIGNALED(status)) exit_reason_ = "killed by signal " + std::to_string(WTERMSIG(status));
  else if (WIFEXITED(status)) exit_reason_ = "exited with status " + std::to_string(WEXITSTATUS(status));
  else exit_reason_ = "ended";
  return exit_reason_;
}

// PipeLink lends one pipelined channel to one fiber-running I/O thread: it lives in that
// thread (thread_local), is used only there, and gives the channel back when the thread ends.
// Requests are written as they come; the core answers a channel's requests in order, so each
// answer resumes the oldest waiting fiber. The link keeps the process alive (the destructor
// must not close a channel a link still watches).
struct PipeLink : std::enable_shared_from_this<PipeLink> {
  using Channel = EnclaveProcess::Channel;
  struct Waiter {
    net::fiber::Fiber* fiber;
    StatusOr<Bytes> answer = Unavailable("trusted core: no answer");
  };

  PipeLink(std::shared_ptr<EnclaveProcess> p, Channel* c, boost::asio::io_context& ioc)
      : process(std::move(p)), channel(c), descriptor(ioc, c->fd) {}

  ~PipeLink() {
    descriptor.release();  // the process owns (and closes) the socket
    if (broken) return;    // never reused: the process is marked broken
    std::lock_guard<std::mutex> lock(process->mu_);
    process->free_pipes_.push_back(channel);
  }

  void Arm() {
    waiting = true;
    descriptor.async_wait(boost::asio::posix::descriptor_base::wait_read,
                          [self = shared_from_this()](const boost::system::error_code& ec) { self->OnReadable(ec); });
  }

  // OnReadable runs on the link's thread (outside any fiber): answers resume their fibers, in
  // order. A resumed fiber may send another request (and arm the wait) before this returns.
  void OnReadable(const boost::system::error_code& ec) {
    waiting = false;
    if (broken) return;
    if (ec) return Fail(Unavailable("trusted core channel: " + ec.message()));
    Status read = channel->reader.ReadAvailable();
    while (!broken && channel->reader.HasFrame()) {
      if (pending.empty()) return Fail(Unavailable("trusted core answered a call nobody made"));
      StatusOr<Bytes> answer = channel->reader.Next();
      if (!answer.ok()) return Fail(Unavailable("trusted core: " + answer.status().message()));
      Waiter* w = pending.front();
      pending.pop_front();
      in_flight_bytes -= std::min(in_flight_bytes, sizes.front());
      sizes.pop_front();
      w->answer = std::move(answer);
      net::fiber::Resume(w->fiber);
    }
    if (broken) return;
    if (!read.ok()) return Fail(Unavailable("trusted core: " + read.message()));
    if (!pending.empty() && !waiting) Arm();
  }

  // Flush writes the calls queued in this round of the event loop, in one write. The socket
  // is written without blocking: what it does not take now is sent when it is writable again,
  // so this thread always gets back to reading answers, and neither side can wait on the other.
  void Flush() {
    flush_posted = false;
    if (broken) return Discard();
    if (sent == unsent.size()) {
      WipeBytes(unsent);
      unsent.clear();
      sent = 0;
      unsent.swap(out);
    } else {
      unsent.insert(unsent.end(), out.begin(), out.end());
      WipeBytes(out);
      out.clear();
    }
    Send();
  }

  void Send() {
    while (sent < unsent.size()) {
      ssize_t n = ::send(channel->fd, unsent.data() + sent, unsent.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!write_waiting) {
          write_waiting = true;
          descriptor.async_wait(boost::asio::posix::descriptor_base::wait_write,
                                [self = shared_from_this()](const boost::system::error_code& ec) {
                                  self->write_waiting = false;
                                  if (self->broken) return;
                                  if (ec) return self->Fail(Unavailable("trusted core channel: " + ec.message()));
                                  self->Send();
                                });
        }
        return;
      }
      if (n < 0) return Fail(Unavailable(std::string("trusted core: write failed: ") + std::strerror(errno)));
      sent += static_cast<size_t>(n);
    }
    WipeBytes(unsent);  // calls carry plaintexts and secrets
    unsent.clear();
    sent = 0;
  }

  void Discard() {
    WipeBytes(out);
    out.clear();
    WipeBytes(unsent);
    unsent.clear();
    sent = 0;
  }

  // Detach: the thread ends. Answers still due would leave the channel out of step for anyone
  // else, so then the process counts as broken.
  void Detach() {
    if (!pending.empty()) {
      broken = true;
      process->MarkBroken();
    }
    descriptor.release();
  }

  // Fail ends the link: every waiting fiber gets `why`, and the process is broken (a channel
  // out of step is never reused; the supervisor restarts the core).
  void Fail(Status why) {
    broken = true;
    Discard();
    process->MarkBroken();
    std::deque<Waiter*> waiters;
    waiters.swap(pending);
    sizes.clear();
    for (Waiter* w : waiters) {
      w->answer = why;
      net::fiber::Resume(w->fiber);
    }
  }

  std::shared_ptr<EnclaveProcess> process;
  Channel* channel;
  boost::asio::posix::stream_descriptor descriptor;
  std::deque<Waiter*> pending;
  std::deque<size_t> sizes;
  size_t in_flight_bytes = 0;
  Bytes out;     // calls of this round, not yet handed to Flush
  Bytes unsent;  // calls flushed that the socket has not taken yet, from `sent` on
  size_t sent = 0;
  bool flush_posted = false;
  bool write_waiting = false;
  bool waiting = false;
  bool broken = false;
};

namespace {
// Requests at most this large go through a pipelined channel, and at most this many bytes of
// requests wait there at once (a memory bound: the host never blocks writing to a pipelined
// channel, PipeLink::Send, so the two sides cannot wait on each other).
constexpr size_t kMaxPipelinedRequest = 256 * 1024;
constexpr size_t kMaxPipelinedBytes = 8 * 1024 * 1024;

// The links of this thread, one per core process it has called. When the thread ends, each
// link lets go of its socket first (its waiting handler, if any, is dropped with the
// io_context, which outlives the thread).
struct ThreadLinks {
  std::vector<std::shared_ptr<PipeLink>> all;
  ~ThreadLinks() {
    for (auto& l : all) l->Detach();
  }
};
thread_local ThreadLinks tls_links;
}  // namespace

bool EnclaveProcess::Broken() {
  std::lock_guard<std::mutex> lock(mu_);
  return broken_;
}

void EnclaveProcess::MarkBroken() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    broken_ = true;
  }
  free_cv_.notify_all();
}

std::optional<StatusOr<Bytes>> EnclaveProcess::CallSuspending(const Bytes& payload) {
  if (payload.size() > kMaxPipelinedRequest) return std::nullopt;
  net::fiber::Fiber* self = net::fiber::Current();
  PipeLink* link = nullptr;
  for (auto& l : tls_links.all)
    if (l->process.get() == this) link = l.get();
  if (link == nullptr) {
    std::shared_ptr<EnclaveProcess> owner = weak_from_this().lock();
    if (!owner) return std::nullopt;
    Channel* channel = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (broken_) return StatusOr<Bytes>(Unavailable("trusted core is gone; the server is restarting it (sealed)"));
      if (free_pipes_.empty()) return std::nullopt;
      channel = free_pipes_.back();
      free_pipes_.pop_back();
    }
    // Links to core processes that have been replaced go: this thread calls the new one now.
    std::erase_if(tls_links.all, [](const std::shared_ptr<PipeLink>& old) {
      return old->pending.empty() && (old->broken || old->process->Broken());
    });
    auto made = std::make_shared<PipeLink>(std::move(owner), channel, net::fiber::ContextOf(self));
    link = made.get();
    tls_links.all.push_back(std::move(made));
  }
  if (link->broken) return StatusOr<Bytes>(Unavailable("trusted core is gone; the server is restarting it (sealed)"));
  if (link->in_flight_bytes + payload.size() > kMaxPipelinedBytes) return std::nullopt;
  // Queued, and written with the other calls of this round of the thread's event loop.
  Status framed = ecall::AppendFrame(link->out, payload);
  if (!framed.ok()) return StatusOr<Bytes>(framed);
  if (!link->flush_posted) {
    link->flush_posted = true;
    boost::asio::post(net::fiber::ContextOf(self), [keep = link->shared_from_this()] { keep->Flush(); });
  }
  PipeLink::Waiter waiter{self};
  link->pending.push_back(&waiter);
  link->sizes.push_back(payload.size());
  link->in_flight_bytes += payload.size();
  if (!link->waiting) link->Arm();
  net::fiber::Suspend();
  return std::move(waiter.answer);
}

StatusOr<Bytes> EnclaveProcess::CallSync(const Bytes& payload) {
  Channel* channel = nullptr;
  {
    std::unique_lock<std::mutex> lock(mu_);
    free_cv_.wait(lock, [&] { return broken_ || !free_.empty(); });
    if (broken_) return Unavailable("trusted core is gone; the server is restarting it (sealed)");
    channel = free_.back();
    free_.pop_back();
  }
  Status st = ecall::WriteFrame(channel->fd, payload);
  StatusOr<Bytes> answer = st.ok() ? channel->reader.Next() : StatusOr<Bytes>(st);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // A channel out of step (or a dead core) is never reused: the whole process is done.
    if (!answer.ok()) broken_ = true;
    free_.push_back(channel);
  }
  free_cv_.notify_one();
  if (!answer.ok()) {
    free_cv_.notify_all();
    return Unavailable("trusted core: " + answer.status().message());
  }
  return answer;
}

StatusOr<std::vector<Bytes>> EnclaveProcess::Call(ecall::Call call, std::vector<Bytes> args) {
  // Arguments and results may be secret (Decrypt plaintexts, SigV4 secrets, data keys): every
  // copy made here is wiped; the caller owns the results.
  ecall::Request request{call, std::move(args)};
  Bytes payload = request.Encode();
  for (Bytes& a : request.args) WipeBytes(a);
  std::optional<StatusOr<Bytes>> suspended;
  if (!pipes_.empty() && net::fiber::SuspendAllowed()) suspended = CallSuspending(payload);
  StatusOr<Bytes> answer = suspended ? std::move(*suspended) : CallSync(payload);
  WipeBytes(payload);
  if (!answer.ok()) return answer.status();
  StatusOr<ecall::Response> resp = ecall::Response::Decode(*answer);
  WipeBytes(*answer);
  if (!resp.ok()) return resp.status();
  RETURN_IF_ERROR(resp->ToStatus());
  return std::move(resp->results);
}

}  // namespace custos::host
