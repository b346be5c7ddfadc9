#include "crypto/argon2id.h"

#include <nlohmann/json.hpp>

#include "common/file.h"
#include "tests/testing/testing.h"

namespace custos::crypto {
namespace {

Bytes Hex(const std::string& h) { return HexDecode(h).value(); }

// Small parameters keep the behavioural tests fast; the KAT uses the RFC's own.
Argon2Params FastParams() { return Argon2Params{1, 64, 1}; }

TEST(Argon2id, Rfc9106Vector) {
  auto text = ReadFileString(testing::ProjectPath("src/crypto/testdata/rfc9106_argon2id.json"));
  ASSERT_OK(text.status());
  auto doc = nlohmann::json::parse(*text);
  ASSERT_EQ(doc["vectors"].size(), 1u);
  for (auto& v : doc["vectors"]) {
    Argon2Params params{v["t_cost"].get<uint32_t>(), v["m_cost_kib"].get<uint32_t>(),
                        v["parallelism"].get<uint32_t>()};
    auto tag = Argon2idWithSecretForTesting(Hex(v["password"]), Hex(v["salt"]), Hex(v["secret"]),
                                            Hex(v["ad"]), params, v["tag_length"].get<size_t>());
    ASSERT_OK(tag.status());
    EXPECT_EQ(HexEncode(tag->Expose()), v["tag"].get<std::string>());
  }
}

TEST(Argon2id, DeterministicAndSaltSensitive) {
  SecretBytes pass = SecretBytes::CopyFrom(std::string_view("correct horse battery staple"));
  Bytes salt1(16, 0xa1), salt2(16, 0xa2);
  auto a = Argon2id(pass, salt1, FastParams());
  auto b = Argon2id(pass, salt1, FastParams());
  auto c = Argon2id(pass, salt2, FastParams());
  ASSERT_OK(a.status());
  ASSERT_OK(b.status());
  ASSERT_OK(c.status());
  EXPECT_EQ(a->size(), 32u);
  EXPECT_TRUE(a->ConstantTimeEquals(*b));
  EXPECT_FALSE(a->ConstantTimeEquals(*c));

  SecretBytes other = SecretBytes::CopyFrom(std::string_view("correct horse battery stapler"));
  auto d = Argon2id(other, salt1, FastParams());
  ASSERT_OK(d.status());
  EXPECT_FALSE(a->ConstantTimeEquals(*d));
}

TEST(Argon2id, RefusesShortSaltAndBadParameters) {
  SecretBytes pass = SecretBytes::CopyFrom(std::string_view("pw"));
  EXPECT_EQ(Argon2id(pass, Bytes(15, 1), FastParams()).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Argon2id(pass, Bytes(16, 1), Argon2Params{0, 64, 1}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Argon2id(pass, Bytes(16, 1), Argon2Params{1, 31, 4}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Argon2id(pass, Bytes(16, 1), Argon2Params{1, (4u << 20) + 1, 1}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Argon2id(pass, Bytes(16, 1), Argon2Params{1, 64, 0}).status().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Argon2id(pass, Bytes(16, 1), FastParams(), 0).status().code(),
            ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace custos::crypto
