// The KMS call encodings of ecall/kms_calls.h: round trips, and a named refusal for every
// malformed input the host (or a client, through a ciphertext blob) could hand the core.
#include "appliance/ecall/kms_calls.h"

#include <set>

#include "appliance/ecall/ecall.h"
#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::ecall {
namespace {

using ::testing::HasSubstr;

KeyRef SampleRef() {
  KeyRef ref;
  ref.key_id = "1234abcd-12ab-34cd-56ef-1234567890ab";
  ref.version = 7;
  ref.spec = std::string(kSpecSymmetric);
  ref.wrapped = Bytes(60, 0xa5);
  return ref;
}

// A blob header as kms_calls.h spells it, followed by `tail` bytes (salt, nonce, ct, tag).
Bytes BlobWith(std::string_view key_id, uint32_t version, size_t tail, uint8_t suite = 1,
               std::string_view magic = "CKC1") {
  ByteWriter w;
  w.Raw(AsBytes(magic)).U8(suite).Var(key_id).U32(version).Raw(Bytes(tail, 0x11));
  return w.Take();
}

TEST(KeyRef, RoundTripsByteExactly) {
  KeyRef ref = SampleRef();
  Bytes enc = ref.Encode();
  // var(key id) || u32 version || var(spec) || var(wrapped)
  ByteWriter w;
  w.Var(ref.key_id).U32(7).Var(kSpecSymmetric).Var(ref.wrapped);
  EXPECT_EQ(enc, w.bytes());
  auto back = KeyRef::Decode(enc);
  ASSERT_OK(back.status());
  EXPECT_EQ(back->key_id, ref.key_id);
  EXPECT_EQ(back->version, 7u);
  EXPECT_EQ(back->spec, ref.spec);
  EXPECT_EQ(back->wrapped, ref.wrapped);
}

TEST(KeyRef, RefusesTruncationTrailingBytesEmptyAndOversizedFields) {
  Bytes enc = SampleRef().Encode();
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_EQ(KeyRef::Decode(ByteSpan(enc).subspan(0, cut)).status().code(),
              ErrorCode::kInvalidArgument)
        << cut;
  Bytes trailing = enc;
  trailing.push_back(0);
  EXPECT_THAT(KeyRef::Decode(trailing).status().message(), HasSubstr("trailing bytes"));

  KeyRef empty_id = SampleRef();
  empty_id.key_id.clear();
  EXPECT_THAT(KeyRef::Decode(empty_id.Encode()).status().message(), HasSubstr("empty key id"));
  KeyRef empty_spec = SampleRef();
  empty_spec.spec.clear();
  EXPECT_THAT(KeyRef::Decode(empty_spec.Encode()).status().message(), HasSubstr("empty spec"));

  KeyRef long_id = SampleRef();
  long_id.key_id = std::string(2049, 'k');
  EXPECT_THAT(KeyRef::Decode(long_id.Encode()).status().message(), HasSubstr("key id"));
  long_id.key_id = std::string(2048, 'k');
  EXPECT_OK(KeyRef::Decode(long_id.Encode()).status());
  KeyRef long_spec = SampleRef();
  long_spec.spec = std::string(65, 'S');
  EXPECT_THAT(KeyRef::Decode(long_spec.Encode()).status().message(), HasSubstr("spec"));
  KeyRef long_wrapped = SampleRef();
  long_wrapped.wrapped = Bytes(1025, 1);
  EXPECT_THAT(KeyRef::Decode(long_wrapped.Encode()).status().message(),
              HasSubstr("wrapped material"));
}

TEST(EncryptionContext, EncodesInByteOrderAndRoundTrips) {
  EXPECT_EQ(EncodeEncryptionContext({}), (Bytes{0, 0, 0, 0}));
  auto empty = DecodeEncryptionContext(Bytes{0, 0, 0, 0});
  ASSERT_OK(empty.status());
  EXPECT_TRUE(empty->empty());

  // Byte order, not signed-char order: "\x80" sorts after "z".
  EncryptionContext ctx = {
      {"z", "last ascii"}, {"\x80high", "non-ascii"}, {"a", ""}, {"", "empty key"}};
  Bytes enc = EncodeEncryptionContext(ctx);
  ByteWriter w;
  w.U32(4).Var("").Var("empty key").Var("a").Var("").Var("z").Var("last ascii");
  w.Var("\x80high").Var("non-ascii");
  EXPECT_EQ(enc, w.bytes());
  auto back = DecodeEncryptionContext(enc);
  ASSERT_OK(back.status());
  EXPECT_EQ(*back, ctx);
}

TEST(EncryptionContext, RefusesDuplicateUnorderedTrailingAndOversized) {
  ByteWriter dup;
  dup.U32(2).Var("k").Var("1").Var("k").Var("2");
  EXPECT_THAT(DecodeEncryptionContext(dup.bytes()).status().message(),
              HasSubstr("duplicated or not in byte order"));
  ByteWriter unordered;
  unordered.U32(2).Var("b").Var("1").Var("a").Var("2");
  EXPECT_THAT(DecodeEncryptionContext(unordered.bytes()).status().message(),
              HasSubstr("duplicated or not in byte order"));
  // Signed-char order would put "\x80" first; byte order puts it after "a".
  ByteWriter signed_order;
  signed_order.U32(2).Var("\x80").Var("1").Var("a").Var("2");
  EXPECT_FALSE(DecodeEncryptionContext(signed_order.bytes()).ok());

  Bytes trailing = EncodeEncryptionContext({{"k", "v"}});
  trailing.push_back(0);
  EXPECT_THAT(DecodeEncryptionContext(trailing).status().message(), HasSubstr("trailing bytes"));
  Bytes enc = EncodeEncryptionContext({{"k", "v"}, {"l", "w"}});
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_FALSE(DecodeEncryptionContext(ByteSpan(enc).subspan(0, cut)).ok()) << cut;

  EncryptionContext many;
  // emplace, not operator[] and assignment: GCC 12 at -O3 reports a false -Werror=restrict in
  // std::string::assign inlined here (GCC bug 105329).
  for (int i = 0; i < 64; ++i) many.emplace(std::to_string(100 + i), "v");
  EXPECT_OK(DecodeEncryptionContext(EncodeEncryptionContext(many)).status());
  many.emplace("999", "v");
  EXPECT_THAT(DecodeEncryptionContext(EncodeEncryptionContext(many)).status().message(),
              HasSubstr("more than 64 pairs"));
  // A count far above what the bytes hold is refused without reading (or reserving) that much.
  EXPECT_FALSE(DecodeEncryptionContext(Bytes{0xff, 0xff, 0xff, 0xff}).ok());

  EXPECT_OK(DecodeEncryptionContext(
                EncodeEncryptionContext({{std::string(8192, 'k'), std::string(8192, 'v')}}))
                .status());
  EXPECT_THAT(DecodeEncryptionContext(EncodeEncryptionContext({{std::string(8193, 'k'), "v"}}))
                  .status()
                  .message(),
              HasSubstr("encryption context: key"));
  EXPECT_THAT(DecodeEncryptionContext(EncodeEncryptionContext({{"k", std::string(8193, 'v')}}))
                  .status()
                  .message(),
              HasSubstr("encryption context: value"));
}

TEST(CiphertextHeader, ReadsKeyIdAndVersion) {
  Bytes blob = BlobWith("key-1", 3, 32 + 12 + 16 + 5);
  auto h = ParseCiphertextHeader(blob);
  ASSERT_OK(h.status());
  EXPECT_EQ(h->key_id, "key-1");
  EXPECT_EQ(h->version, 3u);
  // An empty plaintext leaves salt, nonce and tag: the shortest blob.
  EXPECT_OK(ParseCiphertextHeader(BlobWith("key-1", 3, 32 + 12 + 16)).status());
}

TEST(CiphertextHeader, RefusesBadMagicSuiteShortAndTruncated) {
  EXPECT_THAT(ParseCiphertextHeader(BlobWith("k", 1, 60, 1, "CKC2")).status().message(),
              HasSubstr("kms ciphertext: bad magic"));
  EXPECT_THAT(ParseCiphertextHeader(BlobWith("k", 1, 60, 2)).status().message(),
              HasSubstr("kms ciphertext: unknown suite 2"));
  EXPECT_THAT(ParseCiphertextHeader(BlobWith("k", 1, 59)).status().message(),
              HasSubstr("kms ciphertext: too short"));
  EXPECT_THAT(ParseCiphertextHeader(BlobWith("", 1, 60)).status().message(),
              HasSubstr("kms ciphertext: empty key id"));
  EXPECT_THAT(ParseCiphertextHeader(BlobWith(std::string(2049, 'k'), 1, 60)).status().message(),
              HasSubstr("key id"));
  Bytes blob = BlobWith("key-1", 3, 60);
  for (size_t cut = 0; cut < blob.size(); ++cut) {
    auto h = ParseCiphertextHeader(ByteSpan(blob).subspan(0, cut));
    EXPECT_EQ(h.status().code(), ErrorCode::kInvalidArgument) << cut;
  }
}

TEST(U32Arg, IsFourBigEndianBytes) {
  EXPECT_EQ(U32Arg(0x01020304), (Bytes{1, 2, 3, 4}));
  auto v = ParseU32Arg(U32Arg(0xfffffffe), "n");
  ASSERT_OK(v.status());
  EXPECT_EQ(*v, 0xfffffffeu);
  EXPECT_THAT(ParseU32Arg(Bytes{1, 2, 3}, "number of bytes").status().message(),
              HasSubstr("number of bytes must be a 4-byte integer"));
  EXPECT_FALSE(ParseU32Arg(Bytes{1, 2, 3, 4, 5}, "n").ok());
  EXPECT_FALSE(ParseU32Arg(Bytes{}, "n").ok());
}

TEST(KmsCalls, HaveTheDocumentedArityAndDistinctNames) {
  struct Want {
    Call call;
    int args;
  };
  const Want want[] = {
      {Call::kKmsCreateKey, 3}, {Call::kKmsEncrypt, 3},         {Call::kKmsDecrypt, 3},
      {Call::kKmsReEncrypt, 5}, {Call::kKmsGenerateDataKey, 4}, {Call::kKmsGenerateRandom, 1},
      {Call::kKmsSign, 3},      {Call::kKmsVerify, 4},          {Call::kKmsGenerateMac, 2},
      {Call::kKmsVerifyMac, 3}, {Call::kKmsNewAccessSecret, 2}, {Call::kKmsOpenAccessSecret, 2},
      {Call::kAuditAppend, 2},  {Call::kXksEncrypt, 3},         {Call::kXksDecrypt, 5},
      {Call::kKmipEncrypt, 7},  {Call::kKmipDecrypt, 7},        {Call::kKmsImportKey, 4},
  };
  std::set<std::string_view> names;
  for (const Want& w : want) {
    EXPECT_EQ(ArgCount(w.call), w.args) << static_cast<int>(w.call);
    EXPECT_NE(CallName(w.call), "unknown");
    names.insert(CallName(w.call));
    Request req{w.call, std::vector<Bytes>(static_cast<size_t>(w.args), Bytes{1})};
    auto back = Request::Decode(req.Encode());
    ASSERT_OK(back.status());
    EXPECT_EQ(back->call, w.call);
    req.args.pop_back();
    EXPECT_THAT(Request::Decode(req.Encode()).status().message(), HasSubstr("arguments, got"));
  }
  EXPECT_EQ(names.size(), std::size(want));
}

}  // namespace
}  // namespace custos::ecall
