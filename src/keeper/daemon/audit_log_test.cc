// Tests of the audit log's sync policies (audit_log.h): request sync, group commit with its
// window bound, and that an entry acknowledged under group commit survives a kill -9 of the
// process that wrote it. Nothing here asserts a timing: the flusher is only required to make
// progress, and the kill test asserts what is in the file.
#include "keeper/daemon/audit_log.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/testing/testing.h"

extern char** environ;

namespace custos::keeper {
namespace {

using namespace std::chrono_literals;

class AuditSyncTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/audit-sync-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto log = AuditLog::Open(dir_ + "/audit.log", &key_);
    ASSERT_TRUE(log.ok()) << log.status().ToString();
    log_ = std::move(*log);
  }

  // WaitDurable waits (without any deadline that could fail on a slow machine short of a
  // hang) until the flusher has synced every entry written so far.
  bool WaitDurable() {
    for (int i = 0; i < 30000; ++i) {
      if (log_->durable_size() == log_->size()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  std::string dir_;
  crypto::SigningKey key_ = crypto::SigningKey::Generate();
  std::unique_ptr<AuditLog> log_;
};

TEST(AuditSyncConfig, NamesAndWindowBound) {
  EXPECT_EQ(ParseAuditSync("group").value(), AuditSync::kGroup);
  EXPECT_EQ(ParseAuditSync("request").value(), AuditSync::kRequest);
  EXPECT_EQ(ParseAuditSync("fsync").status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(ParseAuditSync("").status().code(), ErrorCode::kInvalidArgument);
}

TEST_F(AuditSyncTest, WindowOutsideOneToTenMillisecondsIsRefused) {
  EXPECT_EQ(log_->sync_options().mode, AuditSync::kRequest);  // the default
  for (auto bad : {0ms, 11ms, 1000ms}) {
    Status st = log_->SetSync({AuditSync::kGroup, bad});
    EXPECT_EQ(st.code(), ErrorCode::kInvalidArgument) << bad.count();
    EXPECT_EQ(log_->sync_options().mode, AuditSync::kRequest)
        << "a refused setting changed nothing";
  }
  ASSERT_OK(log_->SetSync({AuditSync::kGroup, 10ms}));
  EXPECT_EQ(log_->sync_options().mode, AuditSync::kGroup);
  EXPECT_EQ(log_->sync_options().group_window, 10ms);
  ASSERT_OK(log_->SetSync({AuditSync::kGroup, 1ms}));
  EXPECT_EQ(log_->sync_options().group_window, 1ms);
}

TEST_F(AuditSyncTest, RequestPolicyIsDurableOnReturn) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_OK(log_->Append("release", {{"n", i}}, AuditWait::kPerPolicy));
    EXPECT_EQ(log_->durable_size(), log_->size());
  }
}

TEST_F(AuditSyncTest, GroupPolicyWritesBeforeReturnAndTheFlusherSyncs) {
  ASSERT_OK(log_->SetSync({AuditSync::kGroup, 10ms}));
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK(log_->Append("release", {{"n", i}}, AuditWait::kPerPolicy));
    // Written before Append returned: another reader sees it, chained and signed.
    auto report = AuditLog::Verify(dir_ + "/audit.log", key_.verifying_key());
    ASSERT_TRUE(report.ok()) << report.status().ToString();
    EXPECT_EQ(report->entries, log_->size());
  }
  EXPECT_TRUE(WaitDurable()) << "the flusher never synced " << log_->size() - log_->durable_size()
                             << " entries";
  // An append that asks for durability gets it at once, group policy or not.
  ASSERT_OK(log_->Append("release", {{"n", 20}}, AuditWait::kPerPolicy));
  ASSERT_OK(log_->Append("custody.activate", {{"epoch", 2}}));
  EXPECT_EQ(log_->durable_size(), log_->size());
}

TEST_F(AuditSyncTest, SwitchingBackToRequestSyncsWhatIsPending) {
  ASSERT_OK(log_->SetSync({AuditSync::kGroup, 10ms}));
  for (int i = 0; i < 5; ++i) ASSERT_OK(log_->Append("release", {{"n", i}}, AuditWait::kPerPolicy));
  ASSERT_OK(log_->SetSync({AuditSync::kRequest, 10ms}));
  EXPECT_EQ(log_->durable_size(), log_->size());
  ASSERT_OK(log_->Append("release", {{"n", 5}}, AuditWait::kPerPolicy));
  EXPECT_EQ(log_->durable_size(), log_->size());
}

TEST_F(AuditSyncTest, FlushSyncsAndAReopenedLogChainsOn) {
  ASSERT_OK(log_->SetSync({AuditSync::kGroup, 10ms}));
  for (int i = 0; i < 5; ++i) ASSERT_OK(log_->Append("release", {{"n", i}}, AuditWait::kPerPolicy));
  ASSERT_OK(log_->Flush());
  EXPECT_EQ(log_->durable_size(), 5u);
  log_.reset();  // stops the flusher
  auto reopened = AuditLog::Open(dir_ + "/audit.log", &key_);
  ASSERT_TRUE(reopened.ok()) << reopened.status().ToString();
  EXPECT_EQ((*reopened)->size(), 5u);
}

// The writer half of AckedEntriesSurviveKillOfTheWriter, run in a child process (the parent
// re-executes this binary with the variables below); skipped in a normal run. It appends
// "release" entries under group commit and, after each Append returns, writes the entry's
// number to the pipe: that is the "answer" a keeper would send.
TEST(AuditLogWriterProcess, AppendsUntilKilled) {
  const char* dir = std::getenv("CUSTOS_AUDIT_WRITER_DIR");
  const char* fd_text = std::getenv("CUSTOS_AUDIT_WRITER_FD");
  if (dir == nullptr || fd_text == nullptr)
    GTEST_SKIP() << "the writer process of AuditSyncKill.AckedEntriesSurviveKillOfTheWriter";
  int ack_fd = std::atoi(fd_text);
  crypto::SigningKey key = crypto::SigningKey::Generate();
  auto log = AuditLog::Open(std::string(dir) + "/audit.log", &key);
  ASSERT_TRUE(log.ok());
  ASSERT_OK((*log)->SetSync({AuditSync::kGroup, kMaxAuditGroupWindow}));
  std::string hello = HexEncode(key.verifying_key().Encode()) + "\n";
  ASSERT_EQ(::write(ack_fd, hello.data(), hello.size()), static_cast<ssize_t>(hello.size()));
  for (uint64_t n = 0;; ++n) {
    ASSERT_OK((*log)->Append("release", {{"n", n}}, AuditWait::kPerPolicy));
    std::string ack = std::to_string(n) + "\n";
    ASSERT_EQ(::write(ack_fd, ack.data(), ack.size()), static_cast<ssize_t>(ack.size()));
  }
}

// kill -9 of the writer under group commit loses no acknowledged entry: each was written
// before its acknowledgement, and the page cache outlives the process (only a power loss
// within the window could lose it, docs/threat-model.md). The log still verifies.
TEST(AuditSyncKill, AckedEntriesSurviveKillOfTheWriter) {
  std::string dir = testing::TempDir() + "/audit-kill-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::setenv("CUSTOS_AUDIT_WRITER_DIR", dir.c_str(), 1);
  ::setenv("CUSTOS_AUDIT_WRITER_FD", std::to_string(fds[1]).c_str(), 1);
  std::string exe = std::filesystem::read_symlink("/proc/self/exe");
  std::string filter = "--gtest_filter=AuditLogWriterProcess.AppendsUntilKilled";
  char* argv[] = {exe.data(), filter.data(), nullptr};
  pid_t pid = 0;
  int spawned = ::posix_spawn(&pid, exe.c_str(), nullptr, nullptr, argv, environ);
  ::unsetenv("CUSTOS_AUDIT_WRITER_DIR");
  ::unsetenv("CUSTOS_AUDIT_WRITER_FD");
  ::close(fds[1]);
  ASSERT_EQ(spawned, 0);

  // Read acknowledgements; kill the writer mid-stream after a few hundred.
  std::string received, line;
  std::vector<std::string> lines;
  bool killed = false;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n <= 0) break;  // EOF: the writer is gone and every ack it sent has been read
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != '\n') {
        line += buf[i];
        continue;
      }
      lines.push_back(line);
      line.clear();
    }
    if (!killed && lines.size() > 300) {
      ASSERT_EQ(::kill(pid, SIGKILL), 0);
      killed = true;
    }
  }
  ::close(fds[0]);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(killed) << "the writer stopped after " << lines.size()
                      << " lines, before it was killed";
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

  ASSERT_GE(lines.size(), 2u);
  auto key = crypto::VerifyingKey::Decode(HexDecode(lines[0]).value());
  ASSERT_TRUE(key.ok());
  uint64_t last_ack = std::stoull(lines.back());
  ASSERT_EQ(last_ack + 2, lines.size()) << "acks are 0, 1, 2, ... in order";

  // Every acknowledged entry is in the file, in order, and the chain verifies.
  auto report = AuditLog::Verify(dir + "/audit.log", *key);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_GE(report->entries, last_ack + 1);
  auto entries = AuditLog::ReadEntries(dir + "/audit.log");
  ASSERT_TRUE(entries.ok());
  for (uint64_t n = 0; n <= last_ack; ++n) ASSERT_EQ((*entries)[n]["details"]["n"], n);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace custos::keeper
