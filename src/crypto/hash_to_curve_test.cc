#include "crypto/hash_to_curve.h"

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "tests/testing/testing.h"

namespace custos::crypto {
namespace {

// Strip0x turns the vectors' "0x..." integers into the bare lower-case hex HexEncode produces.
std::string Strip0x(const std::string& s) { return s.rfind("0x", 0) == 0 ? s.substr(2) : s; }

std::string AffineXHex(const Point& p) {
  Bytes u = p.EncodeUncompressed();
  return u.size() == 65 ? HexEncode(ByteSpan(u).subspan(1, 32)) : "identity";
}
std::string AffineYHex(const Point& p) {
  Bytes u = p.EncodeUncompressed();
  return u.size() == 65 ? HexEncode(ByteSpan(u).subspan(33, 32)) : "identity";
}

TEST(HashToCurve, Rfc9380P256Vectors) {
  auto text =
      ReadFileString(testing::SharedTestdata("hash_to_curve/P256_XMD_SHA-256_SSWU_RO_.json"));
  ASSERT_OK(text.status());
  auto doc = nlohmann::json::parse(*text);
  ASSERT_EQ(doc["ciphersuite"].get<std::string>(), "P256_XMD:SHA-256_SSWU_RO_");
  const std::string dst = doc["dst"].get<std::string>();
  ASSERT_GE(doc["vectors"].size(), 1u);
  for (auto& v : doc["vectors"]) {
    const std::string msg = v["msg"].get<std::string>();
    SCOPED_TRACE("msg=" + msg.substr(0, 32));
    auto u = HashToFieldP256(AsBytes(msg), AsBytes(dst));
    ASSERT_OK(u.status());
    ASSERT_EQ(v["u"].size(), 2u);
    for (size_t i = 0; i < 2; ++i)
      EXPECT_EQ(HexEncode((*u)[i]), Strip0x(v["u"][i].get<std::string>()));

    for (size_t i = 0; i < 2; ++i) {
      auto q = MapToCurveSswuP256((*u)[i]);
      ASSERT_OK(q.status());
      const auto& want = v[i == 0 ? "Q0" : "Q1"];
      EXPECT_EQ(AffineXHex(*q), Strip0x(want["x"].get<std::string>()));
      EXPECT_EQ(AffineYHex(*q), Strip0x(want["y"].get<std::string>()));
    }

    auto p = HashToCurveP256(AsBytes(msg), AsBytes(dst));
    ASSERT_OK(p.status());
    EXPECT_EQ(AffineXHex(*p), Strip0x(v["P"]["x"].get<std::string>()));
    EXPECT_EQ(AffineYHex(*p), Strip0x(v["P"]["y"].get<std::string>()));
  }
}

TEST(HashToCurve, ExpandMessageLengths) {
  auto out = ExpandMessageXmd(AsBytes("abc"), AsBytes("DST"), 8160);
  ASSERT_OK(out.status());
  EXPECT_EQ(out->size(), 8160u);
  auto short_out = ExpandMessageXmd(AsBytes("abc"), AsBytes("DST"), 20);
  ASSERT_OK(short_out.status());
  // len_in_bytes is hashed into b_0, so a shorter output is not a prefix of a longer one.
  EXPECT_NE(Bytes(out->begin(), out->begin() + 20), *short_out);
}

TEST(HashToCurve, Refusals) {
  const std::string long_dst(256, 'd');
  EXPECT_EQ(ExpandMessageXmd(AsBytes("m"), AsBytes(long_dst), 32).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_OK(ExpandMessageXmd(AsBytes("m"), AsBytes(long_dst.substr(1)), 32).status());
  EXPECT_EQ(HashToCurveP256(AsBytes("m"), AsBytes(long_dst)).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ExpandMessageXmd(AsBytes("m"), AsBytes("DST"), 8161).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(ExpandMessageXmd(AsBytes("m"), AsBytes("DST"), 0).status().code(),
            ErrorCode::kInvalidArgument);

  // u = p and u = 2^256 - 1 are not field elements; p - 1 is.
  Bytes p = HexDecode("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff").value();
  EXPECT_EQ(MapToCurveSswuP256(p).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(MapToCurveSswuP256(Bytes(32, 0xff)).status().code(), ErrorCode::kInvalidArgument);
  Bytes p_minus_1 = p;
  p_minus_1.back() = 0xfe;
  EXPECT_OK(MapToCurveSswuP256(p_minus_1).status());
  EXPECT_EQ(MapToCurveSswuP256(Bytes(31, 0)).status().code(), ErrorCode::kInvalidArgument);
  // u = 0 hits the exceptional tv1 == 0 branch and must still give a valid point.
  auto zero = MapToCurveSswuP256(Bytes(32, 0));
  ASSERT_OK(zero.status());
  EXPECT_FALSE(zero->IsIdentity());
}

TEST(HashToCurve, PedersenGenerator) {
  const Point& h = PedersenH();
  EXPECT_FALSE(h.IsIdentity());
  EXPECT_FALSE(h == Point::Generator());
  auto again = HashToCurveP256(AsBytes("H"), AsBytes("CUSTOS-V1-P256-PEDERSEN"));
  ASSERT_OK(again.status());
  EXPECT_TRUE(h == *again);
  EXPECT_EQ(&h, &PedersenH());
  // A different DST gives a different point (domain separation).
  auto other = HashToCurveP256(AsBytes("H"), AsBytes("CUSTOS-V1-P256-OTHER"));
  ASSERT_OK(other.status());
  EXPECT_FALSE(h == *other);
}

}  // namespace
}  // namespace custos::crypto
