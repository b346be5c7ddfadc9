#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "crypto/aead.h"
#include "crypto/aead_box.h"
#include "crypto/ecdsa.h"
#include "crypto/hash.h"
#include "crypto/p256.h"
#include "crypto/random.h"
#include "tests/testing/testing.h"

namespace custos::crypto {
namespace {

Bytes Hex(const std::string& h) { return HexDecode(h).value(); }

TEST(Hkdf, Rfc5869Vectors) {
  auto text = ReadFileString(testing::ProjectPath("src/crypto/testdata/rfc5869.json"));
  ASSERT_OK(text.status());
  auto doc = nlohmann::json::parse(*text);
  ASSERT_EQ(doc["vectors"].size(), 3u);
  for (auto& v : doc["vectors"]) {
    Bytes ikm = Hex(v["ikm"]), salt = Hex(v["salt"]), info = Hex(v["info"]);
    SecretBytes prk = HkdfExtract(salt, ikm);
    EXPECT_EQ(HexEncode(prk.Expose()), v["prk"].get<std::string>());
    auto okm = HkdfExpand(prk.Expose(), info, v["L"].get<size_t>());
    ASSERT_OK(okm.status());
    EXPECT_EQ(HexEncode(okm->Expose()), v["okm"].get<std::string>());
    auto one_shot = Hkdf(ikm, salt, info, v["L"].get<size_t>());  // extract and expand at once
    ASSERT_OK(one_shot.status());
    EXPECT_EQ(HexEncode(one_shot->Expose()), v["okm"].get<std::string>());
  }
}

TEST(Hkdf, RefusesOversizedOutput) { EXPECT_FALSE(Hkdf(Bytes(32), {}, {}, 255 * 32 + 1).ok()); }

// OpenSSL's own HKDF (EVP_KDF "HKDF"), the reference the HMAC composition must agree with.
Bytes OpensslHkdf(ByteSpan ikm, ByteSpan salt, ByteSpan info, size_t length) {
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  static uint8_t empty = 0;
  auto octets = [](const char* name, ByteSpan b) {
    return OSSL_PARAM_construct_octet_string(name, b.empty() ? &empty : const_cast<uint8_t*>(b.data()), b.size());
  };
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
                         octets(OSSL_KDF_PARAM_KEY, ikm), octets(OSSL_KDF_PARAM_SALT, salt),
                         octets(OSSL_KDF_PARAM_INFO, info), OSSL_PARAM_construct_end()};
  Bytes out(length);
  int rc = EVP_KDF_derive(ctx, out.data(), out.size(), params);
  EVP_KDF_CTX_free(ctx);
  EVP_KDF_free(kdf);
  EXPECT_EQ(rc, 1);
  return out;
}

TEST(Hkdf, AgreesWithOpensslHkdfOverLengthsSaltsAndKeys) {
  // Output lengths across block boundaries up to the maximum, salts empty (HashLen zeros), short
  // and longer than the HMAC block (hashed first), keys of every size class.
  const size_t lengths[] = {1, 16, 31, 32, 33, 64, 65, 100, 255 * 32};
  const size_t sizes[] = {0, 1, 13, 32, 64, 65, 200};
  int checked = 0;
  for (size_t length : lengths)
    for (size_t salt_size : sizes)
      for (size_t ikm_size : {size_t{1}, size_t{32}, size_t{100}}) {
        Bytes ikm = RandomBytes(ikm_size), salt = RandomBytes(salt_size);
        Bytes info = RandomBytes(salt_size % 3 == 0 ? 0 : 40);
        auto ours = Hkdf(ikm, salt, info, length);
        ASSERT_OK(ours.status());
        ASSERT_EQ(HexEncode(ours->Expose()), HexEncode(OpensslHkdf(ikm, salt, info, length)))
            << "length " << length << " salt " << salt_size << " ikm " << ikm_size;
        ++checked;
      }
  EXPECT_EQ(checked, 9 * 7 * 3);
  // A short PRK is refused, as is a zero length.
  EXPECT_FALSE(HkdfExpand(Bytes(31), {}, 32).ok());
  EXPECT_FALSE(Hkdf(Bytes(32), {}, {}, 0).ok());
}

TEST(Sha256, KnownAnswer) {
  EXPECT_EQ(HexEncode(Sha256Bytes(AsBytes("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HmacSha256, Rfc4231VectorsAndAnEmptyKey) {
  // RFC 4231 test cases 1 and 2, and HMAC-SHA256 of an empty message under an empty key.
  EXPECT_EQ(HexEncode(HmacSha256(Bytes(20, 0x0b), AsBytes("Hi There"))),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(HexEncode(HmacSha256(AsBytes("Jefe"), AsBytes("what do ya want for nothing?"))),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(HexEncode(HmacSha256({}, {})), "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}

TEST(AesGcm, RoundTripAndTamper) {
  auto key = RandomSecret(32);
  auto gcm = AesGcm::Create(key);
  ASSERT_OK(gcm.status());
  Bytes nonce = RandomBytes(12);
  Bytes ct = gcm->Seal(nonce, AsBytes("attack at dawn"), AsBytes("aad"));
  auto pt = gcm->Open(nonce, ct, AsBytes("aad"));
  ASSERT_OK(pt.status());
  EXPECT_EQ(ToString(*pt), "attack at dawn");
  EXPECT_EQ(gcm->Open(nonce, ct, AsBytes("other")).status().code(), ErrorCode::kIntegrity);
  ct[3] ^= 1;
  EXPECT_EQ(gcm->Open(nonce, ct, AsBytes("aad")).status().code(), ErrorCode::kIntegrity);
  EXPECT_FALSE(AesGcm::Create(RandomSecret(20)).ok());
}

// OpenPieces opens ciphertext || tag incrementally, cutting the ciphertext every `piece` bytes.
Status OpenPieces(AesGcm& gcm, ByteSpan nonce, ByteSpan ct, ByteSpan aad, size_t piece,
                  Bytes& out) {
  const size_t n = ct.size() - kGcmTagSize;
  out.assign(n, 0);
  RETURN_IF_ERROR(gcm.OpenBegin(nonce, aad));
  for (size_t at = 0; at < n; at += piece) {
    size_t len = std::min(piece, n - at);
    RETURN_IF_ERROR(gcm.OpenUpdate(ct.subspan(at, len), std::span<uint8_t>(out).subspan(at, len)));
  }
  return gcm.OpenFinish(ct.subspan(n));
}

TEST(AesGcm, IncrementalOpenEqualsOpenAndRefusesTampering) {
  auto gcm = AesGcm::Create(RandomSecret(32));
  ASSERT_OK(gcm.status());
  Bytes nonce = RandomBytes(12), aad = RandomBytes(32), pt = RandomBytes(70000);
  Bytes ct = gcm->Seal(nonce, pt, aad);
  for (size_t piece : {size_t{1}, size_t{15}, size_t{16}, size_t{4097}, pt.size()}) {
    Bytes out;
    ASSERT_OK(OpenPieces(*gcm, nonce, ct, aad, piece, out));
    EXPECT_EQ(out, pt) << "piece " << piece;
  }
  Bytes out;
  EXPECT_EQ(OpenPieces(*gcm, nonce, ct, RandomBytes(32), 1000, out).code(), ErrorCode::kIntegrity);
  EXPECT_EQ(OpenPieces(*gcm, RandomBytes(12), ct, aad, 1000, out).code(), ErrorCode::kIntegrity);
  Bytes bad = ct;
  bad[12345] ^= 1;
  EXPECT_EQ(OpenPieces(*gcm, nonce, bad, aad, 1000, out).code(), ErrorCode::kIntegrity);
  bad = ct;
  bad.back() ^= 0x80;
  EXPECT_EQ(OpenPieces(*gcm, nonce, bad, aad, 1000, out).code(), ErrorCode::kIntegrity);
  // Without an opening in progress (never begun, already finished, or abandoned by Open).
  auto fresh = AesGcm::Create(RandomSecret(32));
  ASSERT_OK(fresh.status());
  EXPECT_EQ(fresh->OpenFinish(ByteSpan(ct).last(kGcmTagSize)).code(),
            ErrorCode::kFailedPrecondition);
  ASSERT_OK(gcm->OpenBegin(nonce, aad));
  ASSERT_OK(gcm->Open(nonce, ct, aad).status());
  Bytes piece(10);
  EXPECT_EQ(gcm->OpenUpdate(ByteSpan(ct).first(10), piece).code(), ErrorCode::kFailedPrecondition);
}

TEST(AesGcm, NistKnownAnswer) {
  // NIST GCM test case 14 (AES-256, zero key, zero IV, one zero block).
  auto gcm = AesGcm::Create(SecretBytes(32));
  ASSERT_OK(gcm.status());
  Bytes ct = gcm->Seal(Bytes(12), Bytes(16), {});
  EXPECT_EQ(HexEncode(ct), "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
}

// Detached seal/open with a tag of 12..16 bytes: a short tag is the full tag's first bytes
// (SP 800-38D 5.2.1.2), checked against Seal, whose output has a known answer above.
TEST(AesGcm, DetachedTagsAreTruncationsOfTheFullTag) {
  auto gcm = AesGcm::Create(RandomSecret(16));
  ASSERT_OK(gcm.status());
  Bytes nonce = RandomBytes(12), aad = RandomBytes(20);
  for (size_t n : {size_t{0}, size_t{1}, size_t{16}, size_t{100}}) {
    Bytes pt = RandomBytes(n);
    Bytes sealed = gcm->Seal(nonce, pt, aad);
    ByteSpan full_tag = ByteSpan(sealed).last(kGcmTagSize);
    for (size_t t = kGcmMinTagSize; t <= kGcmTagSize; ++t) {
      SCOPED_TRACE(::testing::Message() << n << " bytes, tag " << t);
      Bytes ct(n), tag(t);
      ASSERT_OK(gcm->SealDetached(nonce, pt, aad, ct, tag));
      EXPECT_EQ(ct, Bytes(sealed.begin(), sealed.begin() + static_cast<long>(n)));
      EXPECT_EQ(tag, Bytes(full_tag.begin(), full_tag.begin() + static_cast<long>(t)));
      Bytes out(n);
      ASSERT_OK(gcm->OpenDetached(nonce, ct, tag, aad, out));
      EXPECT_EQ(out, pt);
      Bytes bad = tag;
      bad.back() ^= 0x01;
      EXPECT_EQ(gcm->OpenDetached(nonce, ct, bad, aad, out).code(), ErrorCode::kIntegrity);
      EXPECT_EQ(gcm->OpenDetached(nonce, ct, tag, AsBytes("other"), out).code(),
                ErrorCode::kIntegrity);
      if (n > 0) {
        bad = ct;
        bad[0] ^= 0x80;
        EXPECT_EQ(gcm->OpenDetached(nonce, bad, tag, aad, out).code(), ErrorCode::kIntegrity);
        EXPECT_EQ(out, Bytes(n)) << "a failed open wipes its output";
      }
    }
  }
  // Tags shorter than 12 or longer than 16 bytes are refused both ways.
  Bytes ct(4), out(4);
  for (size_t t : {size_t{0}, size_t{4}, size_t{11}, size_t{17}}) {
    Bytes tag(t);
    EXPECT_EQ(gcm->SealDetached(nonce, Bytes(4), aad, ct, tag).code(), ErrorCode::kInvalidArgument)
        << t;
    EXPECT_EQ(gcm->OpenDetached(nonce, ct, tag, aad, out).code(), ErrorCode::kIntegrity) << t;
  }
  // An 11-byte prefix of a genuine tag does not pass, although its bytes are right.
  Bytes tag(16);
  ASSERT_OK(gcm->SealDetached(nonce, Bytes(4), aad, ct, tag));
  EXPECT_EQ(gcm->OpenDetached(nonce, ct, ByteSpan(tag).first(11), aad, out).code(),
            ErrorCode::kIntegrity);
  ASSERT_OK(gcm->OpenDetached(nonce, ct, ByteSpan(tag).first(12), aad, out));
}

TEST(P256, ArithmeticLaws) {
  Scalar a = Scalar::Random(), b = Scalar::Random();
  EXPECT_EQ(Point::BaseMul(a + b), Point::BaseMul(a) + Point::BaseMul(b));
  EXPECT_EQ(Point::BaseMul(a) * b, Point::BaseMul(a * b));
  EXPECT_EQ(MulAdd(a, b, Point::Generator()), Point::BaseMul(a + b));
  EXPECT_TRUE((Point::BaseMul(a) - Point::BaseMul(a)).IsIdentity());
  EXPECT_EQ(a * a.Inverse().value(), Scalar::FromUint(1));
  auto decoded = Point::Decode(Point::BaseMul(a).Encode());
  ASSERT_OK(decoded.status());
  EXPECT_EQ(*decoded, Point::BaseMul(a));
  EXPECT_EQ(Scalar::FromBytes(a.ToPublicBytes()).value(), a);
}

TEST(P256, RefusesBadEncodings) {
  Bytes p = Point::Generator().Encode();
  p[0] = 0x05;
  EXPECT_FALSE(Point::Decode(p).ok());
  Bytes off_curve = Point::Generator().EncodeUncompressed();
  off_curve[64] ^= 1;
  EXPECT_FALSE(Point::Decode(off_curve).ok());
  EXPECT_FALSE(Point::Decode(Bytes{0}).ok());
  EXPECT_FALSE(Scalar::FromBytes(Bytes(32, 0xff)).ok());
  EXPECT_FALSE(Scalar::FromBytes(Bytes(31, 1)).ok());
}

TEST(Ecdsa, SignVerifyAndRefuse) {
  SigningKey k = SigningKey::Generate();
  Bytes sig = k.Sign(AsBytes("message"));
  ASSERT_EQ(sig.size(), 64u);
  EXPECT_OK(k.verifying_key().Verify(AsBytes("message"), sig));
  EXPECT_FALSE(k.verifying_key().Verify(AsBytes("messagf"), sig).ok());
  sig[10] ^= 1;
  EXPECT_FALSE(k.verifying_key().Verify(AsBytes("message"), sig).ok());
  SigningKey other = SigningKey::Generate();
  EXPECT_FALSE(other.verifying_key().Verify(AsBytes("message"), k.Sign(AsBytes("message"))).ok());
  auto reloaded = SigningKey::FromScalarBytes(k.ToScalarBytes());
  ASSERT_OK(reloaded.status());
  EXPECT_OK(k.verifying_key().Verify(AsBytes("m2"), reloaded->Sign(AsBytes("m2"))));
}

// A box is nonce || ciphertext || tag under a fresh nonce; anything changed is refused and
// never opened.
TEST(AeadBox, RoundTripFreshNoncesAndRefusals) {
  SecretBytes key = SecretBytes::CopyFrom(RandomBytes(32));
  Bytes msg = ToBytes("key material");
  auto a = SealBox(key, msg, AsBytes("aad"));
  auto b = SealBox(key, msg, AsBytes("aad"));
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  EXPECT_EQ(a->size(), msg.size() + kBoxOverhead);
  EXPECT_NE(Bytes(a->begin(), a->begin() + 12), Bytes(b->begin(), b->begin() + 12)) << "nonce reused";
  auto opened = OpenBox(key, *a, AsBytes("aad"));
  ASSERT_OK(opened.status());
  EXPECT_EQ(Bytes(opened->Expose().begin(), opened->Expose().end()), msg);
  // The same framing AesGcm::Seal gives after the nonce (formats on disk depend on it).
  auto gcm = AesGcm::Create(key);
  ASSERT_OK(gcm.status());
  auto manual = gcm->Open(ByteSpan(*a).first(12), ByteSpan(*a).subspan(12), AsBytes("aad"));
  ASSERT_OK(manual.status());
  EXPECT_EQ(*manual, msg);
  EXPECT_EQ(OpenBox(key, *a, AsBytes("other")).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(OpenBox(SecretBytes::CopyFrom(RandomBytes(32)), *a, AsBytes("aad")).status().code(),
            ErrorCode::kIntegrity);
  for (size_t i = 0; i < a->size(); ++i) {
    Bytes t = *a;
    t[i] ^= 0x80;
    EXPECT_EQ(OpenBox(key, t, AsBytes("aad")).status().code(), ErrorCode::kIntegrity) << "byte " << i;
  }
  EXPECT_EQ(OpenBox(key, ByteSpan(*a).first(27), AsBytes("aad")).status().code(), ErrorCode::kIntegrity);
  EXPECT_EQ(SealBox(SecretBytes::CopyFrom(RandomBytes(16)), msg, {}).status().code(),
            ErrorCode::kInvalidArgument);
}

// RandomBytes serves small draws from a per-thread pool: every draw is fresh (no value twice,
// within a thread, across threads, across pool refills), sizes on both sides of the pooled
// bound are whole, and a forked child never hands out the bytes its parent hands out next.
TEST(RandomBytes, DrawsAreFreshAcrossThreadsRefillsAndForks) {
  std::set<Bytes> seen;
  for (int i = 0; i < 5000; ++i) ASSERT_TRUE(seen.insert(RandomBytes(16)).second);  // ~80 refills
  for (size_t n : {1u, 12u, 32u, 63u, 64u, 65u, 1000u, 5000u}) EXPECT_EQ(RandomBytes(n).size(), n);
  EXPECT_TRUE(RandomBytes(0).empty());
  std::vector<Bytes> other;
  std::thread t([&] {
    for (int i = 0; i < 1000; ++i) other.push_back(RandomBytes(16));
  });
  t.join();
  for (const Bytes& b : other) EXPECT_TRUE(seen.insert(b).second);

  (void)RandomBytes(16);  // the pool now holds bytes the parent will serve next
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    Bytes child = RandomBytes(16);
    ssize_t w = write(fds[1], child.data(), child.size());
    _exit(w == 16 ? 0 : 1);
  }
  Bytes parent = RandomBytes(16);
  Bytes child(16);
  ASSERT_EQ(read(fds[0], child.data(), child.size()), 16);
  int status = 0;
  waitpid(pid, &status, 0);
  close(fds[0]);
  close(fds[1]);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_NE(parent, child);
}

}  // namespace
}  // namespace custos::crypto
