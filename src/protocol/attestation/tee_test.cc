// Tests of the sim evidence type (format, signature, key pinning, policy) and of the Gramine and
// configfs-tsm adapters against fake directories whose kernel-side behaviour the tests emulate.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "protocol/attestation/dcap.h"
#include "protocol/attestation/sim_evidence.h"
#include "protocol/attestation/tee_adapters.h"
#include "common/file.h"
#include "crypto/ecdsa.h"
#include "crypto/hash.h"
#include "tests/testing/testing.h"

namespace custos::attestation {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// StatusOf lets ASSERT_OK take a Status or a StatusOr.
const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const StatusOr<T>& s) {
  return s.status();
}

void WriteText(const std::string& path, std::string_view text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(text.data(), static_cast<std::streamsize>(text.size()));
  ASSERT_TRUE(f.good()) << path;
}

Bytes ReportData(uint8_t seed) {
  Bytes rd(64);
  for (size_t i = 0; i < rd.size(); ++i) rd[i] = static_cast<uint8_t>(seed + i * 7);
  return rd;
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// A fake trusted-core executable and a key directory, fresh per test.
struct SimFixture {
  std::string dir = testing::TempDir();
  std::string key_dir = dir + "/keys";
  std::string core = dir + "/custos-core";
  std::string core_bytes =
      "\x7f"
      "ELF fake trusted core v1";
  SimFixture() { WriteText(core, core_bytes); }
};

// SignedBlob builds sim evidence field by field from the documented layout, so the tests check
// the format independently of MakeEvidence (and can produce well-signed but invalid blobs).
Bytes SignedBlob(const crypto::SigningKey& key, uint16_t version, uint8_t flags,
                 ByteSpan report_data) {
  Bytes pub = key.verifying_key().Encode();
  ByteWriter w;
  w.Raw(AsBytes("CUSTOSSIM")).U16(version).Raw(Bytes(32, 0xAB)).Raw(crypto::Sha256Bytes(pub));
  w.U16(7).U16(3).U8(flags).Raw(report_data).Raw(pub);
  Bytes sig = key.Sign(w.bytes());
  w.Raw(sig);
  return w.Take();
}

// --- sim evidence ---

TEST(SimEvidence, RoundTripThroughBackend) {
  SimFixture f;
  auto backend = SimBackend::Make(f.key_dir, f.core, {.product_id = 7, .svn = 3, .debug = false});
  ASSERT_OK(StatusOf(backend));
  EXPECT_EQ((*backend)->name(), "sim");
  const Bytes rd = ReportData(1);
  auto evidence = (*backend)->Evidence(rd);
  ASSERT_OK(StatusOf(evidence));
  ASSERT_EQ(evidence->size(), kSimEvidenceSize);

  auto v = VerifySimEvidence(*evidence);
  ASSERT_OK(StatusOf(v));
  EXPECT_EQ(v->tee, "sim");
  EXPECT_EQ(v->tcb_status, "SimulatedPlatform");
  EXPECT_TRUE(v->advisory_ids.empty());
  EXPECT_EQ(v->measurement, crypto::Sha256Bytes(AsBytes(f.core_bytes)));
  EXPECT_EQ(v->signer, (*backend)->platform().signer());
  EXPECT_EQ(v->signer, crypto::Sha256Bytes((*backend)->platform().platform_key().Encode()));
  EXPECT_EQ(v->product_id, 7);
  EXPECT_EQ(v->svn, 3);
  EXPECT_FALSE(v->debug);
  EXPECT_EQ(v->report_data, rd);
}

TEST(SimEvidence, ByteExactLayout) {
  SimFixture f;
  auto platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(platform));
  const Bytes measurement(32, 0x11);
  const Bytes rd = ReportData(9);
  auto evidence =
      platform->MakeEvidence(measurement, {.product_id = 0x0102, .svn = 0x0304, .debug = true}, rd);
  ASSERT_OK(StatusOf(evidence));
  Bytes pub = platform->platform_key().Encode();
  ASSERT_EQ(pub.size(), 33u);
  Bytes expected = Concat({AsBytes("CUSTOSSIM"), Bytes{0x00, 0x01}, measurement,
                           crypto::Sha256Bytes(pub), Bytes{0x01, 0x02, 0x03, 0x04, 0x01}, rd, pub});
  ASSERT_EQ(expected.size(), 177u);
  EXPECT_EQ(Bytes(evidence->begin(), evidence->begin() + 177), expected);
  ByteSpan sig = ByteSpan(*evidence).subspan(177);
  EXPECT_OK(StatusOf(platform->platform_key().Verify(expected, sig)));
  auto v = VerifySimEvidence(*evidence);
  ASSERT_OK(StatusOf(v));
  EXPECT_TRUE(v->debug);
  EXPECT_EQ(v->product_id, 0x0102);
  EXPECT_EQ(v->svn, 0x0304);
}

TEST(SimEvidence, MeasurementIsSha256OfTheExecutableFile) {
  SimFixture f;
  auto m1 = MeasureExecutable(f.core);
  ASSERT_OK(StatusOf(m1));
  EXPECT_EQ(*m1, crypto::Sha256Bytes(AsBytes(f.core_bytes)));
  WriteText(f.core, f.core_bytes + "patched");
  auto m2 = MeasureExecutable(f.core);
  ASSERT_OK(StatusOf(m2));
  EXPECT_NE(*m1, *m2);
  auto missing = MeasureExecutable(f.dir + "/nope");
  EXPECT_EQ(missing.status().code(), ErrorCode::kNotFound);
  auto backend = SimBackend::Make(f.key_dir, f.dir + "/nope", {});
  ASSERT_FALSE(backend.ok());
  EXPECT_THAT(backend.status().message(), HasSubstr("trusted core"));
}

TEST(SimEvidence, PlatformKeyFileIsCreatedOncePrivately) {
  SimFixture f;
  auto a = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(a));
  const std::string key_file = f.key_dir + "/sim_platform_key";
  EXPECT_EQ(ModeOf(key_file), 0600u);
  EXPECT_EQ(ModeOf(f.key_dir), 0700u);
  auto b = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(b));
  EXPECT_EQ(a->platform_key(), b->platform_key());
  // No temporary files are left behind.
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(f.key_dir)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST(SimEvidence, PlatformKeyFileRefusedIfExposedOrMalformed) {
  SimFixture f;
  ASSERT_OK(StatusOf(SimPlatform::LoadOrCreate(f.key_dir)));
  const std::string key_file = f.key_dir + "/sim_platform_key";
  ASSERT_EQ(::chmod(key_file.c_str(), 0640), 0);
  auto exposed = SimPlatform::LoadOrCreate(f.key_dir);
  EXPECT_EQ(exposed.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(exposed.status().message(), HasSubstr("0600"));

  ASSERT_EQ(::chmod(key_file.c_str(), 0600), 0);
  auto contents = ReadFileBytes(key_file);
  ASSERT_OK(StatusOf(contents));
  Bytes truncated(contents->begin(), contents->end() - 1);
  ASSERT_OK(StatusOf(WriteFileAtomic(key_file, truncated)));
  EXPECT_EQ(SimPlatform::LoadOrCreate(f.key_dir).status().code(), ErrorCode::kInvalidArgument);

  Bytes bad_magic = *contents;
  bad_magic[0] ^= 1;
  ASSERT_OK(StatusOf(WriteFileAtomic(key_file, bad_magic)));
  EXPECT_EQ(SimPlatform::LoadOrCreate(f.key_dir).status().code(), ErrorCode::kInvalidArgument);

  Bytes zero_scalar = *contents;
  std::fill(zero_scalar.begin() + 13, zero_scalar.end(), 0);
  ASSERT_OK(StatusOf(WriteFileAtomic(key_file, zero_scalar)));
  EXPECT_EQ(SimPlatform::LoadOrCreate(f.key_dir).status().code(), ErrorCode::kInvalidArgument);
}

TEST(SimEvidence, MakeEvidenceRefusesWrongLengths) {
  SimFixture f;
  auto platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(platform));
  EXPECT_EQ(platform->MakeEvidence(Bytes(31), {}, ReportData(0)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(platform->MakeEvidence(Bytes(32), {}, Bytes(63)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(platform->MakeEvidence(Bytes(32), {}, Bytes(65)).status().code(),
            ErrorCode::kInvalidArgument);
}

TEST(SimEvidence, FlippedByteAnywhereIsRefused) {
  SimFixture f;
  auto platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(platform));
  auto evidence = platform->MakeEvidence(Bytes(32, 0x5A), {.product_id = 1}, ReportData(2));
  ASSERT_OK(StatusOf(evidence));
  ASSERT_OK(StatusOf(VerifySimEvidence(*evidence)));
  for (size_t i = 0; i < evidence->size(); ++i) {
    for (uint8_t mask : {0x01, 0x80}) {
      Bytes bad = *evidence;
      bad[i] ^= mask;
      auto v = VerifySimEvidence(bad);
      EXPECT_FALSE(v.ok()) << "byte " << i << " mask " << int(mask) << " accepted";
    }
  }
}

TEST(SimEvidence, HostileBlobsAreRefusedNamingTheCheck) {
  SimFixture f;
  auto platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(platform));
  auto evidence = platform->MakeEvidence(Bytes(32), {}, ReportData(3));
  ASSERT_OK(StatusOf(evidence));

  EXPECT_THAT(VerifySimEvidence({}).status().message(), HasSubstr("wrong length"));
  Bytes shorter(evidence->begin(), evidence->end() - 1);
  EXPECT_THAT(VerifySimEvidence(shorter).status().message(), HasSubstr("wrong length"));
  Bytes longer = *evidence;
  longer.push_back(0);
  EXPECT_THAT(VerifySimEvidence(longer).status().message(), HasSubstr("wrong length"));

  // Well-signed blobs that break a format rule: the signature does not excuse them.
  crypto::SigningKey key = crypto::SigningKey::Generate();
  ASSERT_OK(StatusOf(VerifySimEvidence(SignedBlob(key, 1, 0, ReportData(4)))));
  auto v2 = VerifySimEvidence(SignedBlob(key, 2, 0, ReportData(4)));
  EXPECT_EQ(v2.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(v2.status().message(), HasSubstr("unsupported version"));
  auto flags = VerifySimEvidence(SignedBlob(key, 1, 0x02, ReportData(4)));
  EXPECT_THAT(flags.status().message(), HasSubstr("reserved flag"));

  Bytes bad_magic = SignedBlob(key, 1, 0, ReportData(4));
  bad_magic[0] = 'X';
  EXPECT_THAT(VerifySimEvidence(bad_magic).status().message(), HasSubstr("bad magic"));

  // The signer field must be the digest of the enclosed key, even when the signature is good.
  Bytes pub = key.verifying_key().Encode();
  ByteWriter w;
  w.Raw(AsBytes("CUSTOSSIM")).U16(1).Raw(Bytes(32)).Raw(Bytes(32, 0xEE));
  w.U16(0).U16(0).U8(0).Raw(ReportData(4)).Raw(pub);
  Bytes sig = key.Sign(w.bytes());
  w.Raw(sig);
  auto wrong_signer = VerifySimEvidence(w.bytes());
  EXPECT_EQ(wrong_signer.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(wrong_signer.status().message(), HasSubstr("signer"));
}

TEST(SimEvidence, AnotherPlatformKeyIsRefused) {
  SimFixture f;
  auto a = SimPlatform::LoadOrCreate(f.dir + "/host-a");
  auto b = SimPlatform::LoadOrCreate(f.dir + "/host-b");
  ASSERT_OK(StatusOf(a));
  ASSERT_OK(StatusOf(b));
  ASSERT_FALSE(a->platform_key() == b->platform_key());
  const Bytes measurement(32, 0x42);
  const Bytes rd = ReportData(5);

  // Swapping in B's key (and its digest) under A's signature does not verify.
  auto ev_a = a->MakeEvidence(measurement, {}, rd);
  ASSERT_OK(StatusOf(ev_a));
  Bytes swapped = *ev_a;
  Bytes pub_b = b->platform_key().Encode();
  Bytes signer_b = b->signer();
  std::copy(signer_b.begin(), signer_b.end(), swapped.begin() + 43);
  std::copy(pub_b.begin(), pub_b.end(), swapped.begin() + 144);
  auto v = VerifySimEvidence(swapped);
  EXPECT_EQ(v.status().code(), ErrorCode::kIntegrity);
  EXPECT_THAT(v.status().message(), HasSubstr("signature"));

  // B's own evidence verifies, but a policy that pins A's platform refuses it.
  auto ev_b = b->MakeEvidence(measurement, {}, rd);
  ASSERT_OK(StatusOf(ev_b));
  auto vb = VerifySimEvidence(*ev_b);
  ASSERT_OK(StatusOf(vb));
  AttestationPolicy pinned_to_a;
  pinned_to_a.allow_sim = true;
  pinned_to_a.allowed_signers = {a->signer()};
  Status refused = CheckPolicy(*vb, pinned_to_a);
  EXPECT_EQ(refused.code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("signer not allowed"));
  auto va = VerifySimEvidence(*ev_a);
  ASSERT_OK(StatusOf(va));
  EXPECT_OK(StatusOf(CheckPolicy(*va, pinned_to_a)));
}

TEST(SimEvidence, ReportDataExpectation) {
  SimFixture f;
  auto platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(platform));
  auto evidence = platform->MakeEvidence(Bytes(32), {}, ReportData(6));
  ASSERT_OK(StatusOf(evidence));
  auto v = VerifySimEvidence(*evidence);
  ASSERT_OK(StatusOf(v));
  EXPECT_OK(StatusOf(CheckReportData(*v, ReportData(6))));
  Status wrong = CheckReportData(*v, ReportData(7));
  EXPECT_EQ(wrong.code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(wrong.message(), HasSubstr("report_data"));
  EXPECT_FALSE(CheckReportData(*v, Bytes(32)).ok());
}

TEST(SimEvidence, PolicyRefusesSimUnlessAllowed) {
  SimFixture f;
  auto backend = SimBackend::Make(f.key_dir, f.core, {.product_id = 2, .svn = 5});
  ASSERT_OK(StatusOf(backend));
  auto evidence = (*backend)->Evidence(ReportData(8));
  ASSERT_OK(StatusOf(evidence));
  auto v = VerifySimEvidence(*evidence);
  ASSERT_OK(StatusOf(v));

  AttestationPolicy defaults;
  Status refused = CheckPolicy(*v, defaults);
  EXPECT_EQ(refused.code(), ErrorCode::kPermissionDenied);
  EXPECT_THAT(refused.message(), HasSubstr("sim evidence not allowed"));

  // Even a policy that lists exactly this measurement and platform refuses without allow_sim.
  const std::string pinned = R"({"measurements": [")" + HexEncode((*backend)->measurement()) +
                             R"("], "signers": [")" + HexEncode((*backend)->platform().signer()) +
                             R"("], "product_id": 2, "min_svn": 5)";
  auto without = ParseAttestationPolicyJson(pinned + "}");
  ASSERT_OK(StatusOf(without));
  EXPECT_THAT(CheckPolicy(*v, *without).message(), HasSubstr("sim evidence not allowed"));
  auto with = ParseAttestationPolicyJson(pinned + R"(, "allow_sim": true})");
  ASSERT_OK(StatusOf(with));
  // The TCB status list ("UpToDate") does not apply to sim.
  EXPECT_OK(CheckPolicy(*v, *with));

  // allow_sim does not switch off the other checks.
  AttestationPolicy other = *with;
  other.allowed_measurements = {Bytes(32, 0)};
  EXPECT_THAT(CheckPolicy(*v, other).message(), HasSubstr("measurement not allowed"));
  other = *with;
  other.min_svn = 6;
  EXPECT_THAT(CheckPolicy(*v, other).message(), HasSubstr("SVN"));
  auto debug_platform = SimPlatform::LoadOrCreate(f.key_dir);
  ASSERT_OK(StatusOf(debug_platform));
  auto debug_ev = debug_platform->MakeEvidence(
      (*backend)->measurement(), {.product_id = 2, .svn = 5, .debug = true}, ReportData(8));
  ASSERT_OK(StatusOf(debug_ev));
  auto dv = VerifySimEvidence(*debug_ev);
  ASSERT_OK(StatusOf(dv));
  EXPECT_THAT(CheckPolicy(*dv, *with).message(), HasSubstr("debug"));
}

// --- Gramine ---

struct FakeGramine {
  std::string root = testing::TempDir() + "/attestation";
  std::string quote = "canned SGX quote bytes \x01\x02\x03";
  FakeGramine() {
    fs::create_directories(root);
    WriteText(root + "/attestation_type", "dcap\n");
    WriteText(root + "/user_report_data", "");
    WriteText(root + "/quote", quote);
  }
};

TEST(Gramine, WritesReportDataExactlyAndReadsQuote) {
  FakeGramine fake;
  GramineAttestation g(fake.root);
  ASSERT_OK(StatusOf(g.Detect()));
  const Bytes rd = ReportData(10);
  auto quote = g.Quote(rd);
  ASSERT_OK(StatusOf(quote));
  EXPECT_EQ(*quote, ToBytes(fake.quote));
  auto written = ReadFileBytes(fake.root + "/user_report_data");
  ASSERT_OK(StatusOf(written));
  EXPECT_EQ(*written, rd);
}

TEST(Gramine, RefusesWrongReportDataLength) {
  FakeGramine fake;
  GramineAttestation g(fake.root);
  EXPECT_EQ(g.Quote(Bytes(63)).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(g.Quote(Bytes(65)).status().code(), ErrorCode::kInvalidArgument);
  auto written = ReadFileBytes(fake.root + "/user_report_data");
  ASSERT_OK(StatusOf(written));
  EXPECT_TRUE(written->empty());
}

TEST(Gramine, MissingFilesGiveAClearError) {
  for (const char* missing : {"attestation_type", "user_report_data", "quote"}) {
    FakeGramine fake;
    fs::remove(fake.root + "/" + missing);
    GramineAttestation g(fake.root);
    Status detect = g.Detect();
    EXPECT_EQ(detect.code(), ErrorCode::kNotFound) << missing;
    EXPECT_THAT(detect.message(), HasSubstr(missing));
    auto quote = g.Quote(ReportData(0));
    EXPECT_EQ(quote.status().code(), ErrorCode::kNotFound) << missing;
  }
  GramineAttestation absent(testing::TempDir() + "/no-such-dir");
  EXPECT_THAT(absent.Detect().message(), HasSubstr("not running under Gramine"));
}

TEST(Gramine, RefusesNonDcapAttestationTypeAndEmptyQuote) {
  FakeGramine fake;
  WriteText(fake.root + "/attestation_type", "epid\n");
  GramineAttestation g(fake.root);
  Status detect = g.Detect();
  EXPECT_EQ(detect.code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(detect.message(), HasSubstr("epid"));
  EXPECT_FALSE(g.Quote(ReportData(0)).ok());

  WriteText(fake.root + "/attestation_type", "dcap");
  WriteText(fake.root + "/quote", "");
  EXPECT_EQ(g.Quote(ReportData(0)).status().code(), ErrorCode::kInternal);
}

TEST(Gramine, BackendByName) {
  FakeGramine fake;
  TeeBackendConfig config;
  config.name = "sgx-gramine";
  config.gramine_root = fake.root;
  auto backend = MakeTeeBackend(config);
  ASSERT_OK(StatusOf(backend));
  EXPECT_EQ((*backend)->name(), "sgx-gramine");
  auto evidence = (*backend)->Evidence(ReportData(11));
  ASSERT_OK(StatusOf(evidence));
  EXPECT_EQ(*evidence, ToBytes(fake.quote));

  config.gramine_root = testing::TempDir() + "/absent";
  EXPECT_EQ(MakeTeeBackend(config).status().code(), ErrorCode::kNotFound);
}

// --- configfs-tsm ---

// FakeTsm emulates the kernel side of configfs-tsm over a plain directory: mkdir creates the
// attribute files, a write to inblob bumps generation, rmdir removes a populated entry.
// `extra_writes_on_outblob_read` emulates a concurrent writer while outblob is produced and
// `extra_writes_on_inblob` one that writes between our inblob write and our generation read.
struct FakeTsm {
  std::string root = testing::TempDir() + "/tsm/report";
  std::string outblob = "canned TDX quote v4";
  std::string provider = "tdx_guest\n";
  std::string generation = "0\n";
  int extra_writes_on_inblob = 0;
  int extra_writes_on_outblob_read = 0;
  std::vector<std::string> made, removed;

  FakeTsm() { fs::create_directories(root); }

  static void Bump(const std::string& entry, int times) {
    auto g = ReadFileString(entry + "/generation");
    ASSERT_TRUE(g.ok());
    WriteText(entry + "/generation", std::to_string(std::stoull(*g) + times) + "\n");
  }

  TsmFileOps Ops() {
    TsmFileOps real = TsmFileOps::Real();
    TsmFileOps ops = real;
    ops.make_entry = [this, real](const std::string& dir) -> Status {
      RETURN_IF_ERROR(real.make_entry(dir));
      made.push_back(dir);
      WriteText(dir + "/inblob", "");
      WriteText(dir + "/outblob", outblob);
      WriteText(dir + "/provider", provider);
      WriteText(dir + "/generation", generation);
      return Status::Ok();
    };
    ops.remove_entry = [this](const std::string& dir) -> Status {
      removed.push_back(dir);
      fs::remove_all(dir);
      return Status::Ok();
    };
    ops.write_attribute = [this, real](const std::string& path, ByteSpan data) -> Status {
      RETURN_IF_ERROR(real.write_attribute(path, data));
      if (fs::path(path).filename() == "inblob") {
        Bump(fs::path(path).parent_path().string(), 1 + extra_writes_on_inblob);
      }
      return Status::Ok();
    };
    ops.read_attribute = [this, real](const std::string& path) -> StatusOr<Bytes> {
      auto out = real.read_attribute(path);
      if (fs::path(path).filename() == "outblob" && extra_writes_on_outblob_read > 0) {
        Bump(fs::path(path).parent_path().string(), extra_writes_on_outblob_read);
      }
      return out;
    };
    return ops;
  }

  bool RootIsEmpty() const { return fs::is_empty(root); }
};

TEST(ConfigfsTsm, ReportsOutblobAndProviderAndRemovesEntry) {
  FakeTsm fake;
  // Keep what was written to inblob by snapshotting it before the entry is removed.
  Bytes inblob_seen;
  TsmFileOps ops = fake.Ops();
  auto inner_remove = ops.remove_entry;
  ops.remove_entry = [&](const std::string& dir) -> Status {
    auto in = ReadFileBytes(dir + "/inblob");
    if (in.ok()) inblob_seen = *in;
    return inner_remove(dir);
  };
  ConfigfsTsm tsm(fake.root, ops);
  ASSERT_OK(StatusOf(tsm.Detect()));
  const Bytes rd = ReportData(12);
  auto report = tsm.Report(rd);
  ASSERT_OK(StatusOf(report));
  EXPECT_EQ(report->outblob, ToBytes(fake.outblob));
  EXPECT_EQ(report->provider, "tdx_guest");
  EXPECT_EQ(report->generation, 1u);
  EXPECT_EQ(inblob_seen, rd);
  ASSERT_EQ(fake.made.size(), 1u);
  EXPECT_EQ(fake.removed, fake.made);
  EXPECT_THAT(fake.made[0], HasSubstr("/custos-"));
  EXPECT_TRUE(fake.RootIsEmpty());

  // Each report uses a fresh entry name.
  ASSERT_OK(StatusOf(tsm.Report(rd)));
  ASSERT_EQ(fake.made.size(), 2u);
  EXPECT_NE(fake.made[0], fake.made[1]);
}

TEST(ConfigfsTsm, GenerationRaceIsRefused) {
  {
    FakeTsm fake;
    fake.extra_writes_on_outblob_read = 1;
    auto report = ConfigfsTsm(fake.root, fake.Ops()).Report(ReportData(13));
    EXPECT_EQ(report.status().code(), ErrorCode::kFailedPrecondition);
    EXPECT_THAT(report.status().message(), HasSubstr("concurrent writer"));
    EXPECT_EQ(fake.removed, fake.made);  // cleaned up on failure too
    EXPECT_TRUE(fake.RootIsEmpty());
  }
  {
    FakeTsm fake;
    fake.extra_writes_on_inblob = 1;
    auto report = ConfigfsTsm(fake.root, fake.Ops()).Report(ReportData(13));
    EXPECT_EQ(report.status().code(), ErrorCode::kFailedPrecondition);
    EXPECT_THAT(report.status().message(), HasSubstr("concurrent writer"));
    EXPECT_TRUE(fake.RootIsEmpty());
  }
  {
    FakeTsm fake;
    fake.generation = "not a number\n";
    auto report = ConfigfsTsm(fake.root, fake.Ops()).Report(ReportData(13));
    EXPECT_EQ(report.status().code(), ErrorCode::kInvalidArgument);
    EXPECT_THAT(report.status().message(), HasSubstr("generation"));
  }
}

TEST(ConfigfsTsm, ProviderIsReportedAndCheckedByTheBackend) {
  FakeTsm fake;
  fake.provider = "sev_guest\n";
  auto report = ConfigfsTsm(fake.root, fake.Ops()).Report(ReportData(14));
  ASSERT_OK(StatusOf(report));
  EXPECT_EQ(report->provider, "sev_guest");

  ConfigfsTsmBackend tdx(ConfigfsTsm(fake.root, fake.Ops()));
  auto evidence = tdx.Evidence(ReportData(14));
  EXPECT_EQ(evidence.status().code(), ErrorCode::kFailedPrecondition);
  EXPECT_THAT(evidence.status().message(), HasSubstr("sev_guest"));
  EXPECT_TRUE(fake.RootIsEmpty());
}

TEST(ConfigfsTsm, MissingAttributesAndRootGiveClearErrors) {
  // Real file ops on a plain directory: mkdir creates no attribute files, as a kernel without
  // a TSM provider would not either. The adapter reports the missing file and still removes
  // the (empty) entry.
  FakeTsm fake;
  ConfigfsTsm tsm(fake.root);
  auto report = tsm.Report(ReportData(15));
  EXPECT_EQ(report.status().code(), ErrorCode::kNotFound);
  EXPECT_THAT(report.status().message(), HasSubstr("generation"));
  EXPECT_TRUE(fake.RootIsEmpty());

  EXPECT_EQ(tsm.Report(Bytes(10)).status().code(), ErrorCode::kInvalidArgument);

  ConfigfsTsm absent(testing::TempDir() + "/no/tsm");
  EXPECT_EQ(absent.Detect().code(), ErrorCode::kNotFound);
  EXPECT_EQ(absent.Report(ReportData(15)).status().code(), ErrorCode::kNotFound);
}

TEST(ConfigfsTsm, BackendByName) {
  FakeTsm fake;
  TeeBackendConfig config;
  config.name = "tdx-configfs";
  config.tsm_root = fake.root;
  config.tsm_ops = fake.Ops();
  auto backend = MakeTeeBackend(config);
  ASSERT_OK(StatusOf(backend));
  EXPECT_EQ((*backend)->name(), "tdx-configfs");
  auto evidence = (*backend)->Evidence(ReportData(16));
  ASSERT_OK(StatusOf(evidence));
  EXPECT_EQ(*evidence, ToBytes(fake.outblob));
}

// --- backend selection ---

TEST(TeeBackendSelection, SimByNameAndUnknownNamesRefused) {
  SimFixture f;
  TeeBackendConfig config;
  config.name = "sim";
  config.sim_key_dir = f.key_dir;
  config.trusted_core_path = f.core;
  config.sim_identity = {.product_id = 4, .svn = 1};
  auto backend = MakeTeeBackend(config);
  ASSERT_OK(StatusOf(backend));
  EXPECT_EQ((*backend)->name(), "sim");
  auto evidence = (*backend)->Evidence(ReportData(17));
  ASSERT_OK(StatusOf(evidence));
  auto v = VerifySimEvidence(*evidence);
  ASSERT_OK(StatusOf(v));
  EXPECT_EQ(v->product_id, 4);

  config.name = "sgx";
  auto unknown = MakeTeeBackend(config);
  EXPECT_EQ(unknown.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("sim, sgx-gramine, tdx-configfs"));
}

}  // namespace
}  // namespace custos::attestation
