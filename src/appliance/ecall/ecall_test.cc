#include "appliance/ecall/ecall.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "appliance/ecall/calls.h"

#include "gmock/gmock.h"
#include "tests/testing/testing.h"

namespace custos::ecall {
namespace {

TEST(Ecall, RequestRoundTripsAndChecksArity) {
  Request req{Call::kSigmaFinish, {Bytes{1, 2, 3}, Bytes(100, 7)}};
  auto back = Request::Decode(req.Encode());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->call, Call::kSigmaFinish);
  EXPECT_EQ(back->args, req.args);
  // Wrong arity, unknown call, wrong version, trailing bytes, truncation: all named refusals.
  Request wrong{Call::kSigmaFinish, {Bytes{1}}};
  EXPECT_THAT(Request::Decode(wrong.Encode()).status().message(),
              ::testing::HasSubstr("sigma-finish takes 2 arguments, got 1"));
  Bytes unknown = Request{Call::kPing, {Bytes{}}}.Encode();
  unknown[7] = 99;
  EXPECT_THAT(Request::Decode(unknown).status().message(), ::testing::HasSubstr("unknown call 99"));
  Bytes version = req.Encode();
  version[5] = 1;  // the version before responses carried a reason
  EXPECT_THAT(Request::Decode(version).status().message(),
              ::testing::HasSubstr("interface version 1"));
  Bytes trailing = req.Encode();
  trailing.push_back(0);
  EXPECT_FALSE(Request::Decode(trailing).ok());
  Bytes enc = req.Encode();
  for (size_t cut = 0; cut < enc.size(); ++cut)
    EXPECT_FALSE(Request::Decode(ByteSpan(enc).subspan(0, cut)).ok()) << cut;
}

TEST(Ecall, ResponseCarriesStatusOrResults) {
  Response ok;
  ok.results = {Bytes{9}, Bytes{}};
  auto back = Response::Decode(ok.Encode());
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back->ToStatus().ok());
  EXPECT_EQ(back->results, ok.results);
  Response err = Response::FromStatus(PermissionDenied("keeper not in custody"));
  auto eback = Response::Decode(err.Encode());
  ASSERT_TRUE(eback.ok());
  EXPECT_EQ(eback->ToStatus().code(), ErrorCode::kPermissionDenied);
  EXPECT_EQ(eback->ToStatus().message(), "enclave: keeper not in custody");
  // An error response with results is malformed.
  err.results = {Bytes{1}};
  EXPECT_FALSE(Response::Decode(err.Encode()).ok());
}

// The core's reason crosses with the code, by value: the host never reads the message to
// decide (appliance/kms maps reasons to AWS errors with a table).
TEST(Ecall, ReasonsCrossTheBoundaryByValue) {
  Response err = Response::FromStatus(IntegrityError("kms: mac does not verify").WithReason(Reason::kMacInvalid));
  Bytes wire = err.Encode();
  auto back = Response::Decode(wire);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->reason, Reason::kMacInvalid);
  Status st = back->ToStatus();
  EXPECT_EQ(st.code(), ErrorCode::kIntegrity);
  EXPECT_EQ(st.reason(), static_cast<uint16_t>(Reason::kMacInvalid));
  EXPECT_EQ(ReasonName(Reason::kMacInvalid), "mac-invalid");
  // The reason survives added context (the host prefixes messages).
  EXPECT_EQ(st.WithContext("kms").reason(), static_cast<uint16_t>(Reason::kMacInvalid));
  // An unknown reason value, and a reason on a success, are malformed.
  Bytes unknown = wire;
  unknown[8] = 0;
  unknown[9] = ecall::kMaxReason + 1;  // bytes 8-9: the reason, after magic, version and code
  EXPECT_THAT(Response::Decode(unknown).status().message(), ::testing::HasSubstr("unknown reason"));
  Response ok;
  ok.reason = Reason::kSealed;
  EXPECT_THAT(Response::Decode(ok.Encode()).status().message(), ::testing::HasSubstr("a reason on success"));
  // A status with another module's reason crosses with none.
  EXPECT_EQ(Response::FromStatus(InvalidArgument("x").WithReason(uint16_t{900})).reason, Reason::kNone);
}

TEST(Ecall, FramesCrossASocketAndRefuseOversizedLengths) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  Bytes big(200000, 0x5a);
  ASSERT_TRUE(WriteFrame(sv[0], big).ok());
  auto got = ReadFrame(sv[1]);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(*got, big);
  uint8_t hostile[4] = {0xff, 0xff, 0xff, 0xff};
  ASSERT_EQ(write(sv[0], hostile, 4), 4);
  EXPECT_EQ(ReadFrame(sv[1]).status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(WriteFrame(sv[0], Bytes(kMaxFrameSize + 1)).code(), ErrorCode::kInvalidArgument);
  close(sv[0]);
  EXPECT_THAT(ReadFrame(sv[1]).status().message(), ::testing::HasSubstr("peer closed"));
  close(sv[1]);
}

TEST(Ecall, FrameReaderSplitsCoalescedAndPartialFrames) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  // Three frames written back to back arrive in one read; each comes out whole.
  for (size_t n : {size_t{0}, size_t{5}, size_t{100000}}) ASSERT_TRUE(WriteFrame(sv[0], Bytes(n, 7)).ok());
  FrameReader reader(sv[1]);
  for (size_t n : {size_t{0}, size_t{5}, size_t{100000}}) {
    auto f = reader.Next();
    ASSERT_TRUE(f.ok()) << f.status().message();
    EXPECT_EQ(f->size(), n);
  }
  // A frame written byte by byte still comes out whole.
  Bytes frame = {0, 0, 0, 3, 'a', 'b', 'c'};
  std::thread writer([&] {
    for (uint8_t b : frame) ASSERT_EQ(write(sv[0], &b, 1), 1);
  });
  auto f = reader.Next();
  writer.join();
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(ToString(*f), "abc");
  uint8_t hostile[4] = {0xff, 0, 0, 0};
  ASSERT_EQ(write(sv[0], hostile, 4), 4);
  EXPECT_EQ(reader.Next().status().code(), ErrorCode::kInvalidArgument);
  close(sv[0]);
  close(sv[1]);
}

// Frames carry Decrypt plaintexts and SigV4 secrets: once a frame is returned, the reader's
// buffer holds no byte of it, including when frames arrive together, when the unread rest is
// moved to the front, and when the buffer grows for a frame larger than it.
TEST(Ecall, FrameReaderKeepsNoCopyOfReturnedFrames) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto count = [](ByteSpan b, uint8_t v) { return std::count(b.begin(), b.end(), v); };
  FrameReader reader(sv[1]);
  // Two frames in one read (the second is still buffered after the first is returned).
  ASSERT_TRUE(WriteFrame(sv[0], Bytes(3000, 0xA5)).ok());
  ASSERT_TRUE(WriteFrame(sv[0], Bytes(2000, 0x5A)).ok());
  auto first = reader.Next();
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(count(*first, 0xA5), 3000);
  EXPECT_EQ(count(reader.buffer_for_testing(), 0xA5), 0) << "a returned frame stayed in the buffer";
  auto second = reader.Next();
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(count(reader.buffer_for_testing(), 0x5A), 0);
  // A frame larger than the 64 KiB buffer: the buffer grows; neither the old nor the new one
  // keeps it (the old one is wiped before it is freed; checked here for the one that remains).
  std::thread writer([&] { ASSERT_TRUE(WriteFrame(sv[0], Bytes(200000, 0xC3)).ok()); });
  auto big = reader.Next();
  writer.join();
  ASSERT_TRUE(big.ok());
  EXPECT_EQ(big->size(), 200000u);
  EXPECT_GE(reader.buffer_for_testing().size(), 200004u);
  EXPECT_EQ(count(reader.buffer_for_testing(), 0xC3), 0);
  close(sv[0]);
  close(sv[1]);
}

// ---- calls.h: the one declaration of each call ----

// Typed arguments and results survive the positional wire form, and a field that does not
// decode is named.
TEST(EcallCalls, TypedFieldsRoundTripAndBadFieldsAreNamed) {
  KmsGenerateDataKey::Args a{KeyRef{"k1", 3, std::string(kSpecSymmetric), Bytes{1, 2, 3}}, 32, {{"tenant", "a"}}, true};
  std::vector<Bytes> wire = EncodeFields(a);
  ASSERT_EQ(wire.size(), 4u);
  EXPECT_EQ(static_cast<int>(wire.size()), ArgCount(KmsGenerateDataKey::kCall));
  auto back = DecodeFields<KmsGenerateDataKey::Args>(wire, KmsGenerateDataKey::kName);
  ASSERT_OK(back.status());
  EXPECT_EQ(back->ref.key_id, "k1");
  EXPECT_EQ(back->ref.version, 3u);
  EXPECT_EQ(back->bytes, 32u);
  EXPECT_EQ(back->context.at("tenant"), "a");
  EXPECT_TRUE(back->with_plaintext);

  wire[3] = Bytes{2};
  auto bad = DecodeFields<KmsGenerateDataKey::Args>(wire, KmsGenerateDataKey::kName);
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), ::testing::HasSubstr("ecall kms-generate-data-key: with_plaintext: must be one byte"));
  wire[3] = Bytes{1};
  wire[1] = Bytes{0, 32};
  EXPECT_THAT(DecodeFields<KmsGenerateDataKey::Args>(wire, KmsGenerateDataKey::kName).status().message(),
              ::testing::HasSubstr("bytes: must be a 4-byte integer"));
  wire.pop_back();
  EXPECT_THAT(DecodeFields<KmsGenerateDataKey::Args>(wire, KmsGenerateDataKey::kName).status().message(),
              ::testing::HasSubstr("3 fields, expected 4"));

  // Invoke: typed in, typed out, over any positional transport.
  int calls = 0;
  auto echo = [&](Call call, std::vector<Bytes> args) -> StatusOr<std::vector<Bytes>> {
    ++calls;
    EXPECT_EQ(call, Call::kPing);
    return args;
  };
  auto pong = Invoke<Ping>(echo, {Bytes{7, 8}});
  ASSERT_OK(pong.status());
  EXPECT_EQ(pong->payload, (Bytes{7, 8}));
  auto refuse = [](Call, std::vector<Bytes>) -> StatusOr<std::vector<Bytes>> {
    return FailedPrecondition("enclave: sealed").WithReason(Reason::kSealed);
  };
  auto sealed = Invoke<KmsGenerateRandom>(refuse, {16});
  EXPECT_EQ(sealed.status().reason(), static_cast<uint16_t>(Reason::kSealed));
  // A core of another build answering with another number of results is an internal error,
  // not the caller's.
  auto two = [](Call, std::vector<Bytes>) -> StatusOr<std::vector<Bytes>> { return std::vector<Bytes>{{1}, {2}}; };
  auto mismatch = Invoke<KmsGenerateRandom>(two, {16});
  EXPECT_EQ(mismatch.status().code(), ErrorCode::kInternal);
  EXPECT_THAT(mismatch.status().message(), ::testing::HasSubstr("kms-generate-random: 2 fields, expected 1"));
  EXPECT_EQ(calls, 1);
}

// The docs follow from the declarations: docs/protocol.md has a table row for every call with
// its wire value and name, and the KMS table names each call's arguments and results as
// calls.h does ("a, b (note) → c, d").
template <typename C>
void ExpectDocumented(const std::string& doc) {
  std::string row = "| " + std::to_string(static_cast<int>(C::kCall)) + " | `" + std::string(C::kName) + "` |";
  size_t at = doc.find(row);
  ASSERT_NE(at, std::string::npos) << "docs/protocol.md has no row " << row;
  if (C::kCall < Call::kKmsCreateKey) return;  // the system calls' table describes fields in prose
  size_t start = at + row.size();
  std::string cell = doc.substr(start, doc.find('|', start) - start);
  // Drop parenthesised notes, then compare the names on each side of the arrow.
  cell = std::regex_replace(cell, std::regex("\\([^)]*\\)"), "");
  size_t arrow = cell.find("→");
  ASSERT_NE(arrow, std::string::npos) << row;
  auto names = [](std::string side) {
    std::string out;
    std::stringstream in(side);
    for (std::string item; std::getline(in, item, ',');) {
      item.erase(0, item.find_first_not_of(" "));
      item.erase(item.find_last_not_of(" ") + 1);
      if (item.empty() || item == "—") continue;
      out += (out.empty() ? "" : ", ") + item;
    }
    return out;
  };
  EXPECT_EQ(names(cell.substr(0, arrow)), std::string(C::Args::kFieldNames)) << row;
  EXPECT_EQ(names(cell.substr(arrow + std::string("→").size())), std::string(C::Result::kFieldNames)) << row;
}

template <typename... C>
void ExpectAllDocumented(const std::string& doc, std::tuple<C...>*) {
  (ExpectDocumented<C>(doc), ...);
}

TEST(EcallCalls, ProtocolDocsListEveryDeclaredCall) {
  std::ifstream in(std::string(CUSTOS_SOURCE_DIR) + "/docs/protocol.md");
  ASSERT_TRUE(in.good());
  std::stringstream doc;
  doc << in.rdbuf();
  ExpectAllDocumented(doc.str(), static_cast<AllCalls*>(nullptr));
  EXPECT_EQ(std::tuple_size_v<AllCalls>, 32u);
}

}  // namespace
}  // namespace custos::ecall
