// Evidence sources over TEE pseudo-files; see tee_adapters.h.
#include "protocol/attestation/tee_adapters.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <mutex>

#include "common/file.h"
#include "crypto/random.h"

namespace custos::attestation {

namespace {

std::string ErrnoText() { return std::strerror(errno); }

// Trimmed drops trailing ASCII whitespace (sysfs/configfs text attributes end in "\n").
std::string Trimmed(ByteSpan b) {
  std::string s(b.begin(), b.end());
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\t' ||
                        s.back() == '\r' || s.back() == '\0')) {
    s.pop_back();
  }
  return s;
}

// WriteOnce opens an existing file (never creates one) and writes `data` in a single write(2):
// pseudo-files such as Gramine's user_report_data and configfs-tsm's inblob take the whole
// value in one call.
Status WriteOnce(const std::string& path, ByteSpan data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return Unavailable("cannot open " + path + " for writing: " + ErrnoText());
  }
  ssize_t n;
  do {
    n = ::write(fd, data.data(), data.size());
  } while (n < 0 && errno == EINTR);
  std::string err = n < 0 ? ErrnoText() : "";
  // close() is where some pseudo-files (Gramine) commit the value; its error counts.
  int rc = ::close(fd);
  if (n < 0) return Unavailable("cannot write " + path + ": " + err);
  if (static_cast<size_t>(n) != data.size()) return Unavailable("short write to " + path);
  if (rc != 0) return Unavailable("cannot close " + path + ": " + ErrnoText());
  return Status::Ok();
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

StatusOr<uint64_t> ParseGeneration(const Bytes& raw, const char* when) {
  std::string s = Trimmed(raw);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (s.empty() || ec != std::errc() || end != s.data() + s.size()) {
    return InvalidArgument(std::string("configfs-tsm: unparsable generation ") + when);
  }
  return value;
}

std::mutex& GramineMutex() {
  static std::mutex m;
  return m;
}

}  // namespace

// --- Gramine ---

Status GramineAttestation::Detect() const {
  for (const char* f : {"attestation_type", "user_report_data", "quote"}) {
    if (!FileExists(root_ + "/" + f)) {
      return NotFound("gramine: " + root_ + "/" + f +
                      " missing (not running under Gramine SGX with remote attestation?)");
    }
  }
  ASSIGN_OR_RETURN(Bytes type, ReadFileBytes(root_ + "/attestation_type"));
  std::string t = Trimmed(type);
  if (t != "dcap") {
    return FailedPrecondition("gramine: attestation_type is \"" + t + "\", need \"dcap\"");
  }
  return Status::Ok();
}

StatusOr<Bytes> GramineAttestation::Quote(ByteSpan report_data) const {
  if (report_data.size() != kTeeReportDataSize) {
    return InvalidArgument("gramine: report_data must be 64 bytes");
  }
  RETURN_IF_ERROR(Detect());
  std::lock_guard<std::mutex> lock(GramineMutex());
  RETURN_IF_ERROR(WriteOnce(root_ + "/user_report_data", report_data).WithContext("gramine"));
  auto quote = ReadFileBytes(root_ + "/quote");
  if (!quote.ok()) return quote.status().WithContext("gramine");
  if (quote->empty()) return InternalError("gramine: empty quote");
  return std::move(quote).value();
}

// --- configfs-tsm ---

TsmFileOps TsmFileOps::Real() {
  TsmFileOps ops;
  ops.make_entry = [](const std::string& dir) -> Status {
    if (::mkdir(dir.c_str(), 0700) != 0) {
      return Unavailable("configfs-tsm: cannot create entry " + dir + ": " + ErrnoText());
    }
    return Status::Ok();
  };
  ops.remove_entry = [](const std::string& dir) -> Status {
    if (::rmdir(dir.c_str()) != 0) {
      return Unavailable("configfs-tsm: cannot remove entry " + dir + ": " + ErrnoText());
    }
    return Status::Ok();
  };
  ops.write_attribute = [](const std::string& path, ByteSpan data) {
    return WriteOnce(path, data);
  };
  ops.read_attribute = [](const std::string& path) { return ReadFileBytes(path); };
  return ops;
}

Status ConfigfsTsm::Detect() const {
  if (!IsDirectory(root_)) {
    return NotFound("configfs-tsm: " + root_ +
                    " is not a directory (kernel without CONFIG_TSM_REPORTS, or configfs not "
                    "mounted?)");
  }
  return Status::Ok();
}

StatusOr<TsmReport> ConfigfsTsm::Report(ByteSpan report_data) const {
  if (report_data.size() != kTeeReportDataSize) {
    return InvalidArgument("configfs-tsm: report_data must be 64 bytes");
  }
  RETURN_IF_ERROR(Detect());
  const std::string entry = root_ + "/custos-" + HexEncode(crypto::RandomBytes(8));
  RETURN_IF_ERROR(ops_.make_entry(entry));
  StatusOr<TsmReport> report = ReportInEntry(entry, report_data);
  Status removed = ops_.remove_entry(entry);
  if (!report.ok()) return report;
  if (!removed.ok()) return removed;
  return report;
}

StatusOr<TsmReport> ConfigfsTsm::ReportInEntry(const std::string& entry,
                                               ByteSpan report_data) const {
  ASSIGN_OR_RETURN(Bytes g0_raw, ops_.read_attribute(entry + "/generation"));
  ASSIGN_OR_RETURN(uint64_t g0, ParseGeneration(g0_raw, "before inblob"));
  RETURN_IF_ERROR(ops_.write_attribute(entry + "/inblob", report_data));
  ASSIGN_OR_RETURN(Bytes g1_raw, ops_.read_attribute(entry + "/generation"));
  ASSIGN_OR_RETURN(uint64_t g1, ParseGeneration(g1_raw, "after inblob"));
  if (g1 != g0 + 1) {
    return FailedPrecondition("configfs-tsm: generation changed: concurrent writer (expected " +
                              std::to_string(g0 + 1) + " after inblob, read " + std::to_string(g1) +
                              ")");
  }
  ASSIGN_OR_RETURN(Bytes outblob, ops_.read_attribute(entry + "/outblob"));
  ASSIGN_OR_RETURN(Bytes provider, ops_.read_attribute(entry + "/provider"));
  ASSIGN_OR_RETURN(Bytes g2_raw, ops_.read_attribute(entry + "/generation"));
  ASSIGN_OR_RETURN(uint64_t g2, ParseGeneration(g2_raw, "after outblob"));
  if (g2 != g1) {
    return FailedPrecondition(
        "configfs-tsm: generation changed: concurrent writer (outblob may be stale)");
  }
  if (outblob.empty()) return InternalError("configfs-tsm: empty outblob");
  TsmReport out;
  out.provider = Trimmed(provider);
  out.outblob = std::move(outblob);
  out.generation = g2;
  return out;
}

// --- backends ---

StatusOr<std::unique_ptr<SimBackend>> SimBackend::Make(const std::string& key_dir,
                                                       const std::string& trusted_core_path,
                                                       const SimIdentity& identity) {
  auto measurement = MeasureExecutable(trusted_core_path);
  if (!measurement.ok()) return measurement.status().WithContext("sim: trusted core");
  ASSIGN_OR_RETURN(SimPlatform platform, SimPlatform::LoadOrCreate(key_dir));
  return std::make_unique<SimBackend>(std::move(platform), std::move(measurement).value(),
                                      identity);
}

StatusOr<Bytes> SimBackend::Evidence(ByteSpan report_data) const {
  return platform_.MakeEvidence(measurement_, identity_, report_data);
}

StatusOr<Bytes> ConfigfsTsmBackend::Evidence(ByteSpan report_data) const {
  ASSIGN_OR_RETURN(TsmReport report, tsm_.Report(report_data));
  if (report.provider != expected_provider_) {
    return FailedPrecondition("configfs-tsm: provider is \"" + report.provider + "\", expected \"" +
                              expected_provider_ + "\"");
  }
  return std::move(report.outblob);
}

namespace {

using BackendFactory = StatusOr<std::unique_ptr<TeeBackend>> (*)(const TeeBackendConfig&);

StatusOr<std::unique_ptr<TeeBackend>> MakeSim(const TeeBackendConfig& c) {
  ASSIGN_OR_RETURN(std::unique_ptr<SimBackend> b,
                   SimBackend::Make(c.sim_key_dir, c.trusted_core_path, c.sim_identity));
  return std::unique_ptr<TeeBackend>(std::move(b));
}

StatusOr<std::unique_ptr<TeeBackend>> MakeGramine(const TeeBackendConfig& c) {
  GramineAttestation g(c.gramine_root);
  RETURN_IF_ERROR(g.Detect());
  return std::unique_ptr<TeeBackend>(std::make_unique<GramineBackend>(std::move(g)));
}

StatusOr<std::unique_ptr<TeeBackend>> MakeTdxConfigfs(const TeeBackendConfig& c) {
  ConfigfsTsm t(c.tsm_root, c.tsm_ops);
  RETURN_IF_ERROR(t.Detect());
  return std::unique_ptr<TeeBackend>(std::make_unique<ConfigfsTsmBackend>(std::move(t)));
}

struct BackendEntry {
  std::string_view name;
  BackendFactory make;
};

constexpr BackendEntry kBackends[] = {
    {"sim", &MakeSim},
    {"sgx-gramine", &MakeGramine},
    {"tdx-configfs", &MakeTdxConfigfs},
};

}  // namespace

StatusOr<std::unique_ptr<TeeBackend>> MakeTeeBackend(const TeeBackendConfig& config) {
  std::string known;
  for (const BackendEntry& e : kBackends) {
    if (e.name == config.name) return e.make(config);
    known += (known.empty() ? "" : ", ") + std::string(e.name);
  }
  return InvalidArgument("unknown TEE backend \"" + config.name + "\" (known: " + known + ")");
}

}  // namespace custos::attestation
