#include "crypto/hpke.h"

#include <map>
#include <sstream>
#include <vector>

#include "common/file.h"
#include "crypto/aead.h"
#include "tests/testing/testing.h"

namespace custos::crypto::hpke {
namespace {

Bytes Hex(const std::string& h) { return HexDecode(h).value(); }

using Record = std::map<std::string, std::string>;

// RfcSuite is one "### <mode> Setup Information" section of RFC 9180 appendix A.
struct RfcSuite {
  std::string heading;
  Record setup;
  std::vector<Record> encryptions;
  std::vector<Record> exports;
};

std::string Trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r");
  return s.substr(b, e - b + 1);
}

// ParseRfcVectors reads the RFC's text layout: "key: value" lines inside ~~~ fences, hex values
// wrapped onto continuation lines (which contain no ':'), records separated by blank lines.
std::vector<RfcSuite> ParseRfcVectors(const std::string& text) {
  std::vector<RfcSuite> suites;
  enum class Target { kSetup, kEncryptions, kExports } target = Target::kSetup;
  bool in_fence = false;
  Record current;
  std::string last_key;
  auto flush = [&] {
    if (current.empty() || suites.empty()) return;
    RfcSuite& s = suites.back();
    switch (target) {
      case Target::kSetup:
        s.setup = current;
        break;
      case Target::kEncryptions:
        s.encryptions.push_back(current);
        break;
      case Target::kExports:
        s.exports.push_back(current);
        break;
    }
    current.clear();
    last_key.clear();
  };
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    std::string t = Trim(line);
    if (t.rfind("~~~", 0) == 0) {
      flush();
      in_fence = !in_fence;
      continue;
    }
    if (!in_fence) {
      if (t.rfind("#### Encryptions", 0) == 0) {
        target = Target::kEncryptions;
      } else if (t.rfind("#### Exported Values", 0) == 0) {
        target = Target::kExports;
      } else if (t.rfind("### ", 0) == 0) {
        suites.push_back(RfcSuite{t.substr(4), {}, {}, {}});
        target = Target::kSetup;
      }
      continue;
    }
    if (t.empty()) {
      flush();
      continue;
    }
    size_t colon = t.find(':');
    if (colon != std::string::npos) {
      last_key = Trim(t.substr(0, colon));
      current[last_key] = Trim(t.substr(colon + 1));
    } else if (!last_key.empty()) {
      current[last_key] += t;
    }
  }
  return suites;
}

TEST(Hpke, Rfc9180A3BaseVectors) {
  auto text =
      ReadFileString(testing::SharedTestdata("hpke/rfc9180_A3_p256_hkdfsha256_aes128gcm.txt"));
  ASSERT_OK(text.status());
  auto suites = ParseRfcVectors(*text);
  ASSERT_GE(suites.size(), 1u);
  int base_suites = 0;
  for (const RfcSuite& s : suites) {
    Record setup = s.setup;
    // Only mode_base is implemented; the file also carries psk/auth/auth_psk sections.
    if (setup["mode"] != "0") continue;
    ++base_suites;
    SCOPED_TRACE(s.heading);
    ASSERT_EQ(setup["kem_id"], "16");
    ASSERT_EQ(setup["kdf_id"], "1");
    ASSERT_EQ(setup["aead_id"], "1");
    const Bytes info = Hex(setup["info"]);

    auto eph = PrivateKey::Derive(Hex(setup["ikmE"]));
    ASSERT_OK(eph.status());
    EXPECT_EQ(HexEncode(eph->ToBytes().Expose()), setup["skEm"]);
    EXPECT_EQ(HexEncode(eph->public_key().EncodeUncompressed()), setup["pkEm"]);
    auto rcp = PrivateKey::Derive(Hex(setup["ikmR"]));
    ASSERT_OK(rcp.status());
    EXPECT_EQ(HexEncode(rcp->ToBytes().Expose()), setup["skRm"]);
    EXPECT_EQ(HexEncode(rcp->public_key().EncodeUncompressed()), setup["pkRm"]);

    auto sender = Setup::BaseSender(rcp->public_key(), info, AeadId::kAes128Gcm, &*eph);
    ASSERT_OK(sender.status());
    EXPECT_EQ(HexEncode(sender->enc()), setup["enc"]);
    EXPECT_EQ(HexEncode(sender->key_for_testing().Expose()), setup["key"]);
    EXPECT_EQ(HexEncode(sender->base_nonce_for_testing()), setup["base_nonce"]);
    EXPECT_EQ(HexEncode(sender->exporter_secret_for_testing().Expose()), setup["exporter_secret"]);

    auto recipient = Setup::BaseRecipient(*rcp, Hex(setup["enc"]), info, AeadId::kAes128Gcm);
    ASSERT_OK(recipient.status());

    ASSERT_GE(s.encryptions.size(), 1u);
    uint64_t seq = 0;
    for (Record e : s.encryptions) {
      const uint64_t want_seq = std::stoull(e["sequence number"]);
      SCOPED_TRACE("sequence number " + e["sequence number"]);
      ASSERT_GE(want_seq, seq);
      // The vectors skip sequence numbers: advance both sides with messages of our own.
      for (; seq < want_seq; ++seq) {
        auto filler = sender->Seal(AsBytes("filler"), AsBytes("filler"));
        ASSERT_OK(filler.status());
        ASSERT_OK(recipient->Open(AsBytes("filler"), *filler).status());
      }
      auto ct = sender->Seal(Hex(e["aad"]), Hex(e["pt"]));
      ASSERT_OK(ct.status());
      EXPECT_EQ(HexEncode(*ct), e["ct"]);
      auto pt = recipient->Open(Hex(e["aad"]), Hex(e["ct"]));
      ASSERT_OK(pt.status());
      EXPECT_EQ(HexEncode(*pt), e["pt"]);
      ++seq;
    }

    ASSERT_GE(s.exports.size(), 1u);
    for (Record x : s.exports) {
      const Bytes ctx = Hex(x["exporter_context"]);
      const size_t len = std::stoul(x["L"]);
      auto a = sender->Export(ctx, len);
      auto b = recipient->Export(ctx, len);
      ASSERT_OK(a.status());
      ASSERT_OK(b.status());
      EXPECT_EQ(HexEncode(a->Expose()), x["exported_value"]);
      EXPECT_EQ(HexEncode(b->Expose()), x["exported_value"]);
    }
  }
  EXPECT_EQ(base_suites, 1);
}

TEST(Hpke, Aes256GcmSingleShotRoundTrip) {
  PrivateKey r = PrivateKey::Generate();
  auto sealed = SealBase(r.public_key(), AsBytes("info"), AsBytes("aad"), AsBytes("secret msg"));
  ASSERT_OK(sealed.status());
  ASSERT_EQ(sealed->size(), kEncSize + 10 + kGcmTagSize);
  auto opened = OpenBase(r, AsBytes("info"), AsBytes("aad"), *sealed);
  ASSERT_OK(opened.status());
  EXPECT_EQ(ToString(*opened), "secret msg");
  auto opened_secret = OpenBaseSecret(r, AsBytes("info"), AsBytes("aad"), *sealed);
  ASSERT_OK(opened_secret.status());
  EXPECT_EQ(opened_secret->ExposeAsString(), "secret msg");

  // Two seals of the same message differ (fresh ephemeral key each time).
  auto again = SealBase(r.public_key(), AsBytes("info"), AsBytes("aad"), AsBytes("secret msg"));
  ASSERT_OK(again.status());
  EXPECT_NE(*sealed, *again);
}

TEST(Hpke, PrivateKeySerialisation) {
  PrivateKey r = PrivateKey::Generate();
  auto back = PrivateKey::FromBytes(r.ToBytes());
  ASSERT_OK(back.status());
  EXPECT_TRUE(back->public_key() == r.public_key());
  EXPECT_FALSE(PrivateKey::FromBytes(SecretBytes(32)).ok());  // zero
  EXPECT_FALSE(PrivateKey::FromBytes(SecretBytes(31)).ok());  // wrong length
}

TEST(Hpke, Refusals) {
  PrivateKey r = PrivateKey::Generate();
  auto sealed = SealBase(r.public_key(), AsBytes("info"), AsBytes("aad"), AsBytes("payload"));
  ASSERT_OK(sealed.status());

  Bytes tampered = *sealed;
  tampered.back() ^= 0x01;
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("aad"), tampered).status().code(),
            ErrorCode::kIntegrity);
  tampered = *sealed;
  tampered[kEncSize] ^= 0x80;  // first ciphertext byte
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("aad"), tampered).status().code(),
            ErrorCode::kIntegrity);

  EXPECT_EQ(OpenBase(r, AsBytes("other info"), AsBytes("aad"), *sealed).status().code(),
            ErrorCode::kIntegrity);
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("other aad"), *sealed).status().code(),
            ErrorCode::kIntegrity);
  PrivateKey wrong = PrivateKey::Generate();
  EXPECT_EQ(OpenBase(wrong, AsBytes("info"), AsBytes("aad"), *sealed).status().code(),
            ErrorCode::kIntegrity);

  // enc off the curve: change y.
  Bytes off_curve = *sealed;
  off_curve[64] ^= 0x01;
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("aad"), off_curve).status().code(),
            ErrorCode::kInvalidArgument);
  // enc with a compressed-point prefix is not the RFC's serialisation.
  Bytes bad_prefix = *sealed;
  bad_prefix[0] = 0x02;
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("aad"), bad_prefix).status().code(),
            ErrorCode::kInvalidArgument);
  // Too short to hold enc and a tag.
  EXPECT_EQ(OpenBase(r, AsBytes("info"), AsBytes("aad"), ByteSpan(*sealed).first(kEncSize + 15))
                .status()
                .code(),
            ErrorCode::kInvalidArgument);

  // Context setup with a wrong-length or compressed enc.
  Bytes enc(sealed->begin(), sealed->begin() + kEncSize);
  EXPECT_EQ(Setup::BaseRecipient(r, ByteSpan(enc).first(64), AsBytes("info"), AeadId::kAes256Gcm)
                .status()
                .code(),
            ErrorCode::kInvalidArgument);
  Bytes compressed = r.public_key().Encode();
  EXPECT_EQ(
      Setup::BaseRecipient(r, compressed, AsBytes("info"), AeadId::kAes256Gcm).status().code(),
      ErrorCode::kInvalidArgument);
  // The identity is not a valid recipient key.
  EXPECT_EQ(
      Setup::BaseSender(Point::Identity(), AsBytes("info"), AeadId::kAes256Gcm).status().code(),
      ErrorCode::kInvalidArgument);
}

TEST(Hpke, OpenFailureDoesNotAdvanceSequence) {
  PrivateKey r = PrivateKey::Generate();
  auto sender = Setup::BaseSender(r.public_key(), AsBytes("i"), AeadId::kAes256Gcm);
  ASSERT_OK(sender.status());
  auto recipient = Setup::BaseRecipient(r, sender->enc(), AsBytes("i"), AeadId::kAes256Gcm);
  ASSERT_OK(recipient.status());
  auto c0 = sender->Seal({}, AsBytes("zero"));
  auto c1 = sender->Seal({}, AsBytes("one"));
  ASSERT_OK(c0.status());
  ASSERT_OK(c1.status());
  // Out of order: c1 under seq 0 fails, and the context stays at seq 0.
  EXPECT_EQ(recipient->Open({}, *c1).status().code(), ErrorCode::kIntegrity);
  auto p0 = recipient->Open({}, *c0);
  ASSERT_OK(p0.status());
  EXPECT_EQ(ToString(*p0), "zero");
  auto p1 = recipient->Open({}, *c1);
  ASSERT_OK(p1.status());
  EXPECT_EQ(ToString(*p1), "one");
}

}  // namespace
}  // namespace custos::crypto::hpke
