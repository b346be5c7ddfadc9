// Evidence sources (DESIGN.md, "TEE backends"): thin adapters over the files through which a
// TEE hands out attestation evidence, and the TeeBackend interface the host's trusted-core
// launcher uses to ask for evidence binding 64 bytes of report_data.
//
//  - Gramine SGX, /dev/attestation: write report_data to `user_report_data`, read the DCAP
//    quote (SGX quote v3) from `quote`; `attestation_type` must read "dcap".
//  - Linux configfs-tsm (TDX, SEV-SNP), /sys/kernel/config/tsm/report: mkdir a fresh entry,
//    write `inblob`, read `outblob` (the quote or report) and `provider`, using `generation` to
//    detect a concurrent writer, rmdir the entry.
//  - sim: sim_evidence.h.
//
// Quote *generation* on hardware cannot run on the build machines; each adapter is tested
// against a fake directory of plain files (tee_test.cc).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "protocol/attestation/sim_evidence.h"
#include "common/bytes.h"
#include "common/status.h"

namespace custos::attestation {

// kTeeReportDataSize is the size of the report_data every backend binds into its evidence.
inline constexpr size_t kTeeReportDataSize = 64;

// GramineAttestation reads DCAP quotes through Gramine's /dev/attestation pseudo-files.
// The pseudo-files are process-wide state (a write to user_report_data is consumed by the next
// read of quote), so Quote calls on all instances in this process are serialized by one mutex.
// Another process-wide user of /dev/attestation outside this class can still race with it.
class GramineAttestation {
 public:
  // The root is a directory holding attestation_type, user_report_data and quote.
  explicit GramineAttestation(std::string root = "/dev/attestation") : root_(std::move(root)) {}

  // Detect returns OK if the three files exist and attestation_type reads "dcap" (trailing
  // whitespace ignored); kNotFound naming the missing file, or kFailedPrecondition naming the
  // attestation type Gramine was configured with ("epid", "none").
  Status Detect() const;

  // Quote writes `report_data` (exactly 64 bytes, in one write) to user_report_data and returns
  // the content of quote. kInvalidArgument on a wrong length, Detect's errors, kUnavailable if
  // a file cannot be written or read, kInternal if the quote is empty. Does not parse the quote.
  StatusOr<Bytes> Quote(ByteSpan report_data) const;

  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

// TsmReport is what one configfs-tsm report entry returned.
struct TsmReport {
  std::string provider;     // e.g. "tdx_guest" or "sev_guest" (trailing newline removed)
  Bytes outblob;            // TDX: a DCAP quote v4; SEV-SNP: an attestation report
  uint64_t generation = 0;  // the entry's generation when outblob was read
};

// TsmFileOps are the file-system operations ConfigfsTsm performs. Real() uses the system
// calls; tests wrap them to emulate what the kernel does on configfs (create the attribute
// files on mkdir, bump generation on a write to inblob, allow rmdir of a populated entry).
struct TsmFileOps {
  // make_entry creates the report entry directory (configfs then creates its attributes).
  std::function<Status(const std::string& dir)> make_entry;
  // remove_entry removes the report entry directory.
  std::function<Status(const std::string& dir)> remove_entry;
  // write_attribute writes `data` to an existing attribute file in a single write(2).
  std::function<Status(const std::string& path, ByteSpan data)> write_attribute;
  // read_attribute reads an attribute file to its end.
  std::function<StatusOr<Bytes>(const std::string& path)> read_attribute;

  // Real returns mkdir(2) with mode 0700, rmdir(2), open(O_WRONLY, no O_CREAT) + one write(2),
  // and a read loop to EOF.
  static TsmFileOps Real();
};

// ConfigfsTsm obtains a report through the Linux configfs-tsm interface
// (Documentation/ABI/testing/configfs-tsm). Each Report call uses its own freshly named entry
// ("custos-" + 16 random hex digits), so concurrent calls do not share state; a foreign writer
// to the same entry is detected through `generation`. Thread-safe if the file ops are.
class ConfigfsTsm {
 public:
  explicit ConfigfsTsm(std::string root = "/sys/kernel/config/tsm/report",
                       TsmFileOps ops = TsmFileOps::Real())
      : root_(std::move(root)), ops_(std::move(ops)) {}

  // Detect returns OK if the root is a directory, else kNotFound.
  Status Detect() const;

  // Report creates an entry, reads `generation` (g0), writes `report_data` (exactly 64 bytes)
  // to `inblob`, reads `generation` (g1), `outblob`, `provider` and `generation` (g2), and
  // removes the entry, also on failure. It requires g1 == g0 + 1 (our write was the only one
  // before the read) and g2 == g1 (nobody wrote while outblob was produced); otherwise
  // kFailedPrecondition "generation changed: concurrent writer". kInvalidArgument for a wrong
  // report_data length or an unparsable generation, kInternal for an empty outblob, the file
  // ops' errors otherwise. If the entry cannot be removed after success, that error is returned
  // (the report is discarded: a leaked entry is an operational problem worth surfacing).
  StatusOr<TsmReport> Report(ByteSpan report_data) const;

  const std::string& root() const { return root_; }

 private:
  StatusOr<TsmReport> ReportInEntry(const std::string& entry, ByteSpan report_data) const;
  std::string root_;
  TsmFileOps ops_;
};

// TeeBackend is a source of attestation evidence that binds 64 bytes of report_data.
// Implementations are safe to call from several threads.
class TeeBackend {
 public:
  virtual ~TeeBackend() = default;
  // name is the backend's configuration name ("sim", "sgx-gramine", "tdx-configfs").
  virtual std::string_view name() const = 0;
  // Evidence returns evidence over `report_data` (exactly 64 bytes) in the format the
  // backend's verifier reads: sim evidence (VerifySimEvidence) or a DCAP quote
  // (VerifyDcapQuote).
  virtual StatusOr<Bytes> Evidence(ByteSpan report_data) const = 0;
};

// SimBackend signs sim evidence with the host's simulated platform key for a measurement taken
// once, when the backend is made.
class SimBackend final : public TeeBackend {
 public:
  // Make measures `trusted_core_path` (MeasureExecutable) and loads or creates the platform
  // key in `key_dir` (SimPlatform::LoadOrCreate).
  static StatusOr<std::unique_ptr<SimBackend>> Make(const std::string& key_dir,
                                                    const std::string& trusted_core_path,
                                                    const SimIdentity& identity);
  SimBackend(SimPlatform platform, Bytes measurement, SimIdentity identity)
      : platform_(std::move(platform)), measurement_(std::move(measurement)), identity_(identity) {}
  std::string_view name() const override { return "sim"; }
  StatusOr<Bytes> Evidence(ByteSpan report_data) const override;
  // platform returns the signing platform (for its public key and signer digest).
  const SimPlatform& platform() const { return platform_; }
  // measurement returns the 32-byte measurement this backend reports.
  const Bytes& measurement() const { return measurement_; }

 private:
  SimPlatform platform_;
  Bytes measurement_;
  SimIdentity identity_;
};

// GramineBackend returns SGX DCAP quotes from GramineAttestation.
class GramineBackend final : public TeeBackend {
 public:
  explicit GramineBackend(GramineAttestation gramine) : gramine_(std::move(gramine)) {}
  std::string_view name() const override { return "sgx-gramine"; }
  StatusOr<Bytes> Evidence(ByteSpan report_data) const override {
    return gramine_.Quote(report_data);
  }

 private:
  GramineAttestation gramine_;
};

// ConfigfsTsmBackend returns TDX DCAP quotes from ConfigfsTsm and refuses
// (kFailedPrecondition) an entry whose provider is not `expected_provider`: a SEV-SNP report
// is not something the DCAP verifier can read.
class ConfigfsTsmBackend final : public TeeBackend {
 public:
  explicit ConfigfsTsmBackend(ConfigfsTsm tsm, std::string expected_provider = "tdx_guest")
      : tsm_(std::move(tsm)), expected_provider_(std::move(expected_provider)) {}
  std::string_view name() const override { return "tdx-configfs"; }
  StatusOr<Bytes> Evidence(ByteSpan report_data) const override;

 private:
  ConfigfsTsm tsm_;
  std::string expected_provider_;
};

// TeeBackendConfig is what MakeTeeBackend needs; only the fields of the chosen backend are read.
struct TeeBackendConfig {
  std::string name;               // "sim", "sgx-gramine" or "tdx-configfs"
  std::string sim_key_dir;        // sim: directory of the platform key file
  std::string trusted_core_path;  // sim: the executable whose SHA-256 is the measurement
  SimIdentity sim_identity;       // sim: product id, svn, debug
  std::string gramine_root = "/dev/attestation";
  std::string tsm_root = "/sys/kernel/config/tsm/report";
  TsmFileOps tsm_ops = TsmFileOps::Real();
};

// MakeTeeBackend builds the backend named by `config.name`. For the hardware backends it runs
// the adapter's Detect() first, so a misconfigured host fails at start, not at the first
// request. kInvalidArgument for an unknown name (the message lists the known ones).
StatusOr<std::unique_ptr<TeeBackend>> MakeTeeBackend(const TeeBackendConfig& config);

}  // namespace custos::attestation
