// The `sim` evidence type; the format and its trust model are documented in sim_evidence.h.
#include "protocol/attestation/sim_evidence.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/file.h"
#include "common/secret.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::attestation {

namespace {

constexpr std::string_view kKeyFileMagic = "CUSTOSSIMKEY";
constexpr uint8_t kKeyFileVersion = 1;
constexpr size_t kKeyFileSize = 12 + 1 + 32;
constexpr size_t kSignedSize = kSimEvidenceSize - crypto::kSignatureSize;
constexpr size_t kReportDataSize = 64;
constexpr size_t kMeasurementSize = 32;
constexpr size_t kPlatformKeySize = 33;

std::string ErrnoText() { return std::strerror(errno); }


// ReadKeyFile opens `path`, refuses group/other access, and reads at most kKeyFileSize + 1
// bytes into a SecretBytes (so an oversized file is detected without reading it all).
StatusOr<SecretBytes> ReadKeyFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("sim platform key: no such file " + path);
    return Unavailable("sim platform key: cannot open " + path + ": " + ErrnoText());
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Unavailable("sim platform key: cannot stat " + path + ": " + ErrnoText());
  }
  if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
    ::close(fd);
    return FailedPrecondition("sim platform key: " + path +
                              " must be a regular file with mode 0600 (no group/other access)");
  }
  SecretBytes buf(kKeyFileSize + 1);
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.ExposeMutable().data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      ::close(fd);
      return Unavailable("sim platform key: cannot read " + path + ": " + ErrnoText());
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  if (got != kKeyFileSize) {
    return InvalidArgument("sim platform key: " + path + " has the wrong length");
  }
  return SecretBytes::CopyFrom(buf.Expose().first(kKeyFileSize));
}

StatusOr<crypto::SigningKey> ParseKeyFile(const SecretBytes& file, const std::string& path) {
  ByteSpan all = file.Expose();
  if (!std::equal(kKeyFileMagic.begin(), kKeyFileMagic.end(), all.begin())) {
    return InvalidArgument("sim platform key: " + path + " is not a custos sim key file");
  }
  if (all[kKeyFileMagic.size()] != kKeyFileVersion) {
    return InvalidArgument("sim platform key: " + path + " has an unsupported version");
  }
  SecretBytes scalar = SecretBytes::CopyFrom(all.subspan(kKeyFileMagic.size() + 1));
  auto key = crypto::SigningKey::FromScalarBytes(scalar);
  if (!key.ok()) return InvalidArgument("sim platform key: " + path + " holds an invalid key");
  return std::move(key).value();
}

// CreateKeyFile writes a fresh key to a private temporary file and links it to `path` without
// replacing an existing file. Returns OK also when another process won the race (EEXIST): the
// caller then loads whatever is at `path`.
Status CreateKeyFile(const std::string& dir, const std::string& path) {
  crypto::SigningKey key = crypto::SigningKey::Generate();
  SecretBytes scalar = key.ToScalarBytes();
  SecretBytes file(kKeyFileSize);
  auto out = file.ExposeMutable();
  std::copy(kKeyFileMagic.begin(), kKeyFileMagic.end(), out.begin());
  out[kKeyFileMagic.size()] = kKeyFileVersion;
  std::copy(scalar.Expose().begin(), scalar.Expose().end(),
            out.begin() + static_cast<std::ptrdiff_t>(kKeyFileMagic.size() + 1));

  const std::string tmp = path + ".tmp-" + HexEncode(crypto::RandomBytes(8));
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Unavailable("sim platform key: cannot create " + tmp + ": " + ErrnoText());
  bool written = WriteFully(fd, file.Expose()).ok() && ::fsync(fd) == 0;
  std::string err = written ? "" : ErrnoText();
  ::close(fd);
  if (!written) {
    ::unlink(tmp.c_str());
    return Unavailable("sim platform key: cannot write " + tmp + ": " + err);
  }
  int rc = ::link(tmp.c_str(), path.c_str());
  int link_errno = errno;
  ::unlink(tmp.c_str());
  if (rc != 0 && link_errno != EEXIST) {
    errno = link_errno;
    return Unavailable("sim platform key: cannot install " + path + ": " + ErrnoText());
  }
  return FsyncDirectory(dir);
}

}  // namespace

StatusOr<Bytes> MeasureExecutable(const std::string& path) {
  ASSIGN_OR_RETURN(Bytes contents, ReadFileBytes(path));
  return crypto::Sha256Bytes(contents);
}

StatusOr<SimPlatform> SimPlatform::LoadOrCreate(const std::string& key_dir) {
  if (key_dir.empty()) return InvalidArgument("sim platform key: empty key directory");
  if (::mkdir(key_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Unavailable("sim platform key: cannot create directory " + key_dir + ": " + ErrnoText());
  }
  const std::string path = key_dir + "/" + std::string(kSimPlatformKeyFile);
  auto file = ReadKeyFile(path);
  if (!file.ok() && file.status().code() == ErrorCode::kNotFound) {
    RETURN_IF_ERROR(CreateKeyFile(key_dir, path));
    file = ReadKeyFile(path);
  }
  if (!file.ok()) return file.status();
  ASSIGN_OR_RETURN(crypto::SigningKey key, ParseKeyFile(*file, path));
  return SimPlatform(std::move(key));
}

Bytes SimPlatform::signer() const { return crypto::Sha256Bytes(platform_key().Encode()); }

StatusOr<Bytes> SimPlatform::MakeEvidence(ByteSpan measurement, const SimIdentity& identity,
                                          ByteSpan report_data) const {
  if (measurement.size() != kMeasurementSize) {
    return InvalidArgument("sim evidence: measurement must be 32 bytes");
  }
  if (report_data.size() != kReportDataSize) {
    return InvalidArgument("sim evidence: report_data must be 64 bytes");
  }
  const Bytes key = platform_key().Encode();
  ByteWriter w;
  w.Raw(AsBytes(kSimEvidenceMagic))
      .U16(kSimEvidenceVersion)
      .Raw(measurement)
      .Raw(crypto::Sha256Bytes(key))
      .U16(identity.product_id)
      .U16(identity.svn)
      .U8(identity.debug ? 1 : 0)
      .Raw(report_data)
      .Raw(key);
  Bytes signature = key_->Sign(w.bytes());
  w.Raw(signature);
  Bytes out = w.Take();
  if (out.size() != kSimEvidenceSize) return InternalError("sim evidence: unexpected size");
  return out;
}

StatusOr<DcapVerdict> VerifySimEvidence(ByteSpan evidence) {
  if (evidence.size() != kSimEvidenceSize) {
    return InvalidArgument("sim evidence: wrong length " + std::to_string(evidence.size()) +
                           " (expected " + std::to_string(kSimEvidenceSize) + ")");
  }
  ByteReader r(evidence);
  ASSIGN_OR_RETURN(ByteSpan magic, r.Raw(kSimEvidenceMagic.size(), "magic"));
  if (!std::equal(magic.begin(), magic.end(), kSimEvidenceMagic.begin())) {
    return InvalidArgument("sim evidence: bad magic");
  }
  ASSIGN_OR_RETURN(uint16_t version, r.U16("version"));
  if (version != kSimEvidenceVersion) {
    return InvalidArgument("sim evidence: unsupported version " + std::to_string(version));
  }
  ASSIGN_OR_RETURN(ByteSpan measurement, r.Raw(kMeasurementSize, "measurement"));
  ASSIGN_OR_RETURN(ByteSpan signer, r.Raw(32, "signer"));
  ASSIGN_OR_RETURN(uint16_t product_id, r.U16("product_id"));
  ASSIGN_OR_RETURN(uint16_t svn, r.U16("svn"));
  ASSIGN_OR_RETURN(uint8_t flags, r.U8("flags"));
  if ((flags & ~1u) != 0) return InvalidArgument("sim evidence: reserved flag bits set");
  ASSIGN_OR_RETURN(ByteSpan report_data, r.Raw(kReportDataSize, "report_data"));
  ASSIGN_OR_RETURN(ByteSpan key_bytes, r.Raw(kPlatformKeySize, "platform key"));
  ASSIGN_OR_RETURN(ByteSpan signature, r.Raw(crypto::kSignatureSize, "signature"));
  RETURN_IF_ERROR(r.ExpectEnd("sim evidence"));

  auto key = crypto::VerifyingKey::Decode(key_bytes);
  if (!key.ok()) return InvalidArgument("sim evidence: invalid platform key");
  Bytes canonical = key->Encode();
  if (canonical.size() != key_bytes.size() ||
      !std::equal(canonical.begin(), canonical.end(), key_bytes.begin())) {
    return InvalidArgument("sim evidence: platform key is not SEC1 compressed");
  }
  crypto::Digest key_digest = crypto::Sha256(key_bytes);
  if (!ConstantTimeEquals(key_digest, signer)) {
    return IntegrityError("sim evidence: signer is not the digest of the platform key");
  }
  if (!key->Verify(evidence.first(kSignedSize), signature).ok()) {
    return IntegrityError("sim evidence: platform signature does not verify");
  }

  DcapVerdict v;
  v.tee = "sim";
  v.tcb_status = std::string(kSimTcbStatus);
  v.measurement.assign(measurement.begin(), measurement.end());
  v.signer.assign(signer.begin(), signer.end());
  v.product_id = product_id;
  v.svn = svn;
  v.debug = (flags & 1u) != 0;
  v.report_data.assign(report_data.begin(), report_data.end());
  return v;
}

Status CheckReportData(const DcapVerdict& verdict, ByteSpan expected) {
  if (expected.size() != kReportDataSize || verdict.report_data.size() != kReportDataSize ||
      !ConstantTimeEquals(verdict.report_data, expected)) {
    return PermissionDenied("report_data does not match the expected binding");
  }
  return Status::Ok();
}

}  // namespace custos::attestation
