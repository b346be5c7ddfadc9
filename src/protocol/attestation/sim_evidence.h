// The `sim` TEE evidence type (DESIGN.md, "TEE backends" / "Evidence"): evidence produced by a
// simulated platform, for development and for hosts without TEE hardware. A per-host ECDSA
// P-256 "platform key", kept in a file the host creates once, signs a report that names the
// trusted core's measurement and carries the caller's 64-byte report_data, much as a hardware
// quoting enclave would.
//
// What sim evidence proves, and what it does not. There is no hardware root: whoever can read
// the platform key file (the host's user, root, a backup) can mint evidence for any measurement.
// A verified sim verdict therefore says "the holder of this platform key signed this report",
// never "this code ran isolated". Policies accept it only with allow_sim = true (CheckPolicy in
// dcap.h refuses tee == "sim" otherwise; it also skips the TCB status list for sim, whose status
// is always "SimulatedPlatform").
//
// Trusting the platform key. The verdict's `signer` is always SHA-256 of the platform public
// key (it is not a configurable id: a configured id would be a bare claim by the same key and
// would let one platform key claim another's identity). A policy pins simulated platforms by
// listing those digests in its `signers`; a verifier must then hold that exact key. With
// allow_sim = true and an empty `signers` list, any platform key is accepted: the signature is
// still checked, which proves only that the evidence was not altered after signing, not where
// it came from. Keep pinned signers in any policy that allows sim outside a single-machine test.
//
// Measurement. SHA-256 over the exact bytes of the trusted-core executable file, read in full
// from the path the caller gives when the SimPlatform signs (MeasureExecutable). It does not
// cover shared libraries the executable loads, its arguments, environment, configuration files,
// or the memory of the running process; it does not prove that the process which asks for
// evidence runs that file. It equals what `sha256sum <executable>` prints.
//
// Evidence format, version 1 (all integers big-endian, fixed size, 241 bytes):
//   offset size field
//        0    9 magic            "CUSTOSSIM" (ASCII, no terminator)
//        9    2 version          1
//       11   32 measurement      SHA-256 of the trusted-core executable (see above)
//       43   32 signer           SHA-256 of the 33-byte platform public key below
//       75    2 product_id
//       77    2 svn
//       79    1 flags            bit 0: debug; bits 1..7 must be zero
//       80   64 report_data
//      144   33 platform key     SEC1 compressed P-256 point
//      177   64 signature        ECDSA P-256 / SHA-256, P1363 r || s, over bytes [0, 177)
//
// Thread safety: SimPlatform is immutable after LoadOrCreate and may sign concurrently; the
// free functions are pure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/attestation/dcap.h"
#include "common/bytes.h"
#include "common/status.h"
#include "crypto/ecdsa.h"

namespace custos::attestation {

// kSimEvidenceMagic opens every sim evidence blob.
inline constexpr std::string_view kSimEvidenceMagic = "CUSTOSSIM";
// kSimEvidenceVersion is the only evidence version this code writes and reads.
inline constexpr uint16_t kSimEvidenceVersion = 1;
// kSimEvidenceSize is the exact length of version-1 sim evidence.
inline constexpr size_t kSimEvidenceSize = 241;
// kSimTcbStatus is the tcb_status of every sim verdict: there is no platform TCB to assess.
inline constexpr std::string_view kSimTcbStatus = "SimulatedPlatform";
// kSimPlatformKeyFile is the file name of the platform key inside the caller's key directory.
inline constexpr std::string_view kSimPlatformKeyFile = "sim_platform_key";

// SimIdentity is what the simulated platform reports about the trusted core, apart from the
// measurement: values an SGX enclave would carry as ISVPRODID, ISVSVN and ATTRIBUTES.DEBUG.
struct SimIdentity {
  uint16_t product_id = 0;
  uint16_t svn = 0;
  bool debug = false;
};

// MeasureExecutable returns SHA-256 of the file at `path`, read in full (the sim measurement;
// see the file comment for what it covers). NotFound or Unavailable if it cannot be read.
StatusOr<Bytes> MeasureExecutable(const std::string& path);

// SimPlatform holds one host's simulated platform key and signs sim evidence with it.
class SimPlatform {
 public:
  // LoadOrCreate loads `key_dir`/sim_platform_key, or generates a fresh key and creates that
  // file (mode 0600; `key_dir` is created with mode 0700 if missing) when it does not exist.
  // Creation is race-free between processes: the key is written to a private temporary file
  // and linked into place without replacing, so concurrent creators all end up with the one
  // key that won. Refuses (kFailedPrecondition) a key file readable or writable by group or
  // others, and (kInvalidArgument) a key file with the wrong format.
  //
  // Key file format: "CUSTOSSIMKEY" (12 bytes), version u8 = 1, the 32-byte private scalar.
  static StatusOr<SimPlatform> LoadOrCreate(const std::string& key_dir);

  // platform_key is the public key verifiers pin (its SHA-256 is the evidence's signer).
  const crypto::VerifyingKey& platform_key() const { return key_->verifying_key(); }
  // signer returns SHA-256 of the 33-byte SEC1 compressed platform public key.
  Bytes signer() const;

  // MakeEvidence returns signed version-1 sim evidence for `measurement` (32 bytes, usually
  // from MeasureExecutable), `identity` and `report_data` (exactly 64 bytes).
  // kInvalidArgument on a wrong length.
  StatusOr<Bytes> MakeEvidence(ByteSpan measurement, const SimIdentity& identity,
                               ByteSpan report_data) const;

 private:
  explicit SimPlatform(crypto::SigningKey key)
      : key_(std::make_shared<crypto::SigningKey>(std::move(key))) {}
  std::shared_ptr<const crypto::SigningKey> key_;
};

// VerifySimEvidence parses version-1 sim evidence, checks that `signer` is SHA-256 of the
// enclosed platform key and that the signature by that key covers every preceding byte, and
// returns the verdict: tee "sim", tcb_status "SimulatedPlatform", no advisories, no FMSPC.
// It does NOT decide whether the platform key is trusted: that is CheckPolicy's job (allow_sim
// and the pinned `signers`; see the file comment). kInvalidArgument for a malformed blob (wrong
// length, magic, version or reserved flag bits, a bad or non-canonical key), kIntegrity for a
// signer digest or signature that does not verify.
StatusOr<DcapVerdict> VerifySimEvidence(ByteSpan evidence);

// CheckReportData returns OK if `verdict.report_data` equals `expected` (64 bytes, compared in
// constant time), else kPermissionDenied "report_data does not match the expected binding".
// Applies to any verdict (sgx, tdx or sim).
Status CheckReportData(const DcapVerdict& verdict, ByteSpan expected);

}  // namespace custos::attestation
