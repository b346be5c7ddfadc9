// AES-CBC (crypto/aes_cbc.h): NIST SP 800-38A known answers, the PKCS#7 padding format, and the
// refusals (key length, IV length, input length, malformed padding).
#include "crypto/aes_cbc.h"

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "crypto/random.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::crypto {
namespace {

using ::testing::HasSubstr;

Bytes Hex(const std::string& h) { return HexDecode(h).value(); }

AesCbc Cbc(const SecretBytes& key, CbcPadding padding = CbcPadding::kPkcs7) {
  auto c = AesCbc::Create(key, padding);
  if (!c.ok()) ADD_FAILURE() << c.status().ToString();
  return std::move(c).value();
}

TEST(AesCbc, NistSp800_38aVectors) {
  auto text = ReadFileString(testing::ProjectPath("src/crypto/testdata/sp800_38a_cbc.json"));
  ASSERT_OK(text.status());
  auto doc = nlohmann::json::parse(*text);
  ASSERT_EQ(doc["vectors"].size(), 2u);
  for (auto& v : doc["vectors"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    SecretBytes key = SecretBytes::CopyFrom(Hex(v["key"]));
    Bytes iv = Hex(v["iv"]), pt = Hex(v["plaintext"]), ct = Hex(v["ciphertext"]);
    AesCbc cbc = Cbc(key, CbcPadding::kNone);
    EXPECT_EQ(cbc.padding(), CbcPadding::kNone);
    // Twice on one object, another IV in between: each message starts from its own IV.
    for (int round = 0; round < 2; ++round) {
      auto enc = cbc.Encrypt(iv, pt);
      ASSERT_OK(enc.status());
      EXPECT_EQ(HexEncode(*enc), HexEncode(ct));
      auto dec = cbc.Decrypt(iv, ct);
      ASSERT_OK(dec.status());
      EXPECT_EQ(HexEncode(dec->Expose()), HexEncode(pt));
      ASSERT_OK(cbc.Encrypt(RandomBytes(16), pt).status());
      ASSERT_OK(cbc.Decrypt(RandomBytes(16), ct).status());
    }
    // CBC chains: the first block alone encrypts to the first ciphertext block.
    auto first = cbc.Encrypt(iv, ByteSpan(pt).first(16));
    ASSERT_OK(first.status());
    EXPECT_EQ(*first, Bytes(ct.begin(), ct.begin() + 16));
  }
}

// PKCS#7: 1 to 16 bytes each holding the pad length; checked against the unpadded mode, so the
// format is shown independently of OpenSSL's padding code.
TEST(AesCbc, Pkcs7PaddingRoundTripsEveryLength) {
  SecretBytes key = RandomSecret(32);
  AesCbc padded = Cbc(key);
  AesCbc raw = Cbc(key, CbcPadding::kNone);
  EXPECT_EQ(padded.padding(), CbcPadding::kPkcs7);
  Bytes iv = RandomBytes(16);
  for (size_t n = 0; n <= 49; ++n) {
    SCOPED_TRACE(n);
    Bytes pt = RandomBytes(n);
    auto ct = padded.Encrypt(iv, pt);
    ASSERT_OK(ct.status());
    EXPECT_EQ(ct->size(), (n / 16 + 1) * 16);
    auto back = padded.Decrypt(iv, *ct);
    ASSERT_OK(back.status());
    EXPECT_EQ(HexEncode(back->Expose()), HexEncode(pt));
    Bytes with_pad = pt;
    const size_t pad = 16 - n % 16;
    with_pad.insert(with_pad.end(), pad, static_cast<uint8_t>(pad));
    auto unpadded = raw.Decrypt(iv, *ct);
    ASSERT_OK(unpadded.status());
    EXPECT_EQ(HexEncode(unpadded->Expose()), HexEncode(with_pad));
    auto same = raw.Encrypt(iv, with_pad);
    ASSERT_OK(same.status());
    EXPECT_EQ(*same, *ct);
  }
}

TEST(AesCbc, RefusesKeysThatAreNotAes128OrAes256) {
  for (size_t n : {0, 1, 15, 17, 24, 31, 33, 64}) {
    auto c = AesCbc::Create(RandomSecret(n));
    EXPECT_EQ(c.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_EQ(c.status().message(), "AES-CBC key must be 16 or 32 bytes") << n;
  }
  EXPECT_OK(AesCbc::Create(RandomSecret(16)).status());
  EXPECT_OK(AesCbc::Create(RandomSecret(32), CbcPadding::kNone).status());
}

TEST(AesCbc, RefusesIvsThatAreNotOneBlock) {
  AesCbc cbc = Cbc(RandomSecret(16));
  Bytes ct = cbc.Encrypt(Bytes(16), AsBytes("text")).value();
  for (size_t n : {0, 1, 12, 15, 17, 32}) {
    auto enc = cbc.Encrypt(Bytes(n), AsBytes("text"));
    EXPECT_EQ(enc.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_EQ(enc.status().message(), "AES-CBC IV must be 16 bytes") << n;
    auto dec = cbc.Decrypt(Bytes(n), ct);
    EXPECT_EQ(dec.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_EQ(dec.status().message(), "AES-CBC IV must be 16 bytes") << n;
  }
}

TEST(AesCbc, RefusesInputsThatAreNotWholeBlocks) {
  SecretBytes key = RandomSecret(32);
  AesCbc raw = Cbc(key, CbcPadding::kNone);
  AesCbc padded = Cbc(key);
  Bytes iv = RandomBytes(16);
  for (size_t n : {1, 15, 17, 33}) {
    auto enc = raw.Encrypt(iv, Bytes(n));
    EXPECT_EQ(enc.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_THAT(enc.status().message(), HasSubstr("must be a multiple of 16 bytes")) << n;
    EXPECT_EQ(raw.Decrypt(iv, Bytes(n)).status().code(), ErrorCode::kInvalidArgument) << n;
    auto dec = padded.Decrypt(iv, Bytes(n));
    EXPECT_EQ(dec.status().code(), ErrorCode::kInvalidArgument) << n;
    EXPECT_THAT(dec.status().message(), HasSubstr("must be a non-empty multiple of 16 bytes")) << n;
  }
  // No blocks: nothing to unpad; without padding, the empty message is its own ciphertext.
  EXPECT_EQ(padded.Decrypt(iv, Bytes{}).status().code(), ErrorCode::kInvalidArgument);
  auto empty = raw.Encrypt(iv, Bytes{});
  ASSERT_OK(empty.status());
  EXPECT_TRUE(empty->empty());
  auto empty_back = raw.Decrypt(iv, Bytes{});
  ASSERT_OK(empty_back.status());
  EXPECT_TRUE(empty_back->empty());
}

// A last block whose padding is malformed: made with the unpadded mode, refused by the padded
// one with a message that says only that.
TEST(AesCbc, RefusesBadPaddingWithoutSayingMore) {
  SecretBytes key = RandomSecret(16);
  AesCbc raw = Cbc(key, CbcPadding::kNone);
  AesCbc padded = Cbc(key);
  Bytes iv = RandomBytes(16);
  auto block_ending = [](Bytes tail) {
    Bytes b(16 - tail.size(), 0x41);
    b.insert(b.end(), tail.begin(), tail.end());
    return b;
  };
  const Bytes bad_tails[] = {
      {0x00},                          // a pad length of 0
      {0x11},                          // 17: longer than a block
      {0xff},                          // 255
      {0x01, 0x02},                    // 2 announced, the byte before is not 2
      {0x03, 0x03, 0x04, 0x03, 0x03},  // 3 announced, one of them differs
  };
  for (const Bytes& tail : bad_tails) {
    Bytes pt = Concat({RandomBytes(16), block_ending(tail)});
    auto ct = raw.Encrypt(iv, pt);
    ASSERT_OK(ct.status());
    auto dec = padded.Decrypt(iv, *ct);
    EXPECT_EQ(dec.status().code(), ErrorCode::kIntegrity) << HexEncode(tail);
    EXPECT_EQ(dec.status().message(), "AES-CBC: bad padding") << HexEncode(tail);
  }
  Bytes all_sixteen(16, 0x10);
  all_sixteen[3] = 0x0f;
  EXPECT_EQ(padded.Decrypt(iv, raw.Encrypt(iv, all_sixteen).value()).status().code(),
            ErrorCode::kIntegrity);
  // The well-formed neighbours open: a pad of 1, and a whole block of 16.
  auto one = padded.Decrypt(iv, raw.Encrypt(iv, block_ending({0x02, 0x01})).value());
  ASSERT_OK(one.status());
  EXPECT_EQ(one->size(), 15u);
  auto whole =
      padded.Decrypt(iv, raw.Encrypt(iv, Concat({RandomBytes(16), Bytes(16, 0x10)})).value());
  ASSERT_OK(whole.status());
  EXPECT_EQ(whole->size(), 16u);
  // CBC is malleable: an edited IV edits the first block's plaintext bit for bit. Here the pad
  // 02 02 becomes 02 03 (bad padding) or 02 01 (good padding, a different message): nothing
  // but the padding is checked.
  Bytes ct = padded.Encrypt(iv, AsBytes("attack at dawn")).value();
  Bytes edited_iv = iv;
  edited_iv[15] ^= 0x01;
  EXPECT_EQ(padded.Decrypt(edited_iv, ct).status().message(), "AES-CBC: bad padding");
  edited_iv = iv;
  edited_iv[15] ^= 0x03;
  auto other = padded.Decrypt(edited_iv, ct);
  ASSERT_OK(other.status());
  EXPECT_EQ(other->ExposeAsString(), std::string("attack at dawn\x02"));
  auto fine = padded.Decrypt(iv, ct);
  ASSERT_OK(fine.status());
  EXPECT_EQ(fine->ExposeAsString(), "attack at dawn");
}

}  // namespace
}  // namespace custos::crypto
