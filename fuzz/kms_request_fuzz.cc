// Fuzzes the KMS request handling after authentication (src/appliance/kms/service.h): the JSON shape of
// all 32 operations — types, ranges, base64, encryption contexts, tags, policies, markers,
// key references. The first input byte picks the operation; the rest is the JSON body, in
// which the token "$K" is replaced by the id of a key that exists (so mutations reach past key
// resolution) and "$B" by a ciphertext blob of that key.
//
// The trusted core is replaced by a deterministic stand-in that answers each KMS call with
// well-formed results: this target is about the host's parsing and state machine, not the
// cryptography (fuzz/enclave_core_fuzz.cc fuzzes the core's side of every call).
//
// Properties checked: no crash; every outcome is either OK or carries an AWS error name and a
// message that renders as JSON; state stays consistent (DescribeKey of the fixed key never crashes).
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "crypto/random.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/kms/service.h"

namespace {

using custos::Bytes;
namespace ecall = custos::ecall;

custos::StatusOr<std::vector<Bytes>> StandIn(ecall::Call call, std::vector<Bytes> args) {
  switch (call) {
    case ecall::Call::kKmsCreateKey:
      return std::vector<Bytes>{Bytes(60, 7), Bytes{}};
    case ecall::Call::kKmsEncrypt:
    case ecall::Call::kKmsReEncrypt:
    case ecall::Call::kKmsGenerateDataKey: {
      auto ref = ecall::KeyRef::Decode(args[0]);
      if (call == ecall::Call::kKmsReEncrypt) ref = ecall::KeyRef::Decode(args[3]);
      if (!ref.ok()) return ref.status();
      custos::ByteWriter w;
      w.Raw(custos::AsBytes("CKC1")).U8(1).Var(ref->key_id).U32(ref->version).Raw(Bytes(60, 1));
      // As many results as ecall/calls.h declares (the service refuses any other count).
      if (call == ecall::Call::kKmsGenerateDataKey) return std::vector<Bytes>{w.Take(), Bytes(32, 2)};
      return std::vector<Bytes>{w.Take()};
    }
    case ecall::Call::kKmsDecrypt:
      return std::vector<Bytes>{Bytes(16, 3)};
    case ecall::Call::kKmsGenerateRandom: {
      auto n = ecall::ParseU32Arg(args[0], "n");
      if (!n.ok()) return n.status();
      return std::vector<Bytes>{Bytes(*n, 4)};
    }
    case ecall::Call::kKmsSign:
    case ecall::Call::kKmsGenerateMac:
      return std::vector<Bytes>{Bytes(32, 5)};
    case ecall::Call::kKmsVerify:
    case ecall::Call::kKmsVerifyMac:
      return std::vector<Bytes>{};
    default:
      return custos::InvalidArgument("stand-in: unexpected call");
  }
}

struct World {
  std::unique_ptr<custos::store::Store> store;
  std::unique_ptr<custos::kms::KmsService> service;
  std::string key_id;
  std::string blob;
};

World& TheWorld() {
  static World* w = [] {
    auto* world = new World;
    std::string dir = std::filesystem::temp_directory_path() / ("kms_request_fuzz." + std::to_string(getpid()));
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    world->store = std::move(custos::store::OpenSqliteStore(dir + "/custos.db")).value();
    world->service = std::make_unique<custos::kms::KmsService>(world->store.get(), StandIn, custos::kms::ServiceOptions{});
    if (!world->service->Load().ok()) std::abort();
    custos::kms::Caller c{"arn:aws:iam::000000000000:user/fuzz", "000000000000", "CKIAFUZZ"};
    auto r = world->service->Execute("CreateKey", nlohmann::json::object(), c);
    if (!r.ok()) std::abort();
    world->key_id = r.response["KeyMetadata"]["KeyId"];
    auto e = world->service->Execute("Encrypt", {{"KeyId", world->key_id}, {"Plaintext", "eA=="}}, c);
    if (!e.ok()) std::abort();
    world->blob = e.response["CiphertextBlob"];
    return world;
  }();
  return *w;
}

void ReplaceAll(std::string& s, const std::string& from, const std::string& to) {
  for (size_t p = s.find(from); p != std::string::npos; p = s.find(from, p + to.size())) s.replace(p, from.size(), to);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1 || size > 64 * 1024) return 0;
  World& w = TheWorld();
  const auto& ops = custos::kms::KmsService::Operations();
  // Deleting or disabling the one key would end the interesting part of the run.
  std::string_view op = ops[data[0] % ops.size()];
  if (op == "ScheduleKeyDeletion" || op == "DisableKey") op = "DescribeKey";
  std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  ReplaceAll(body, "$K", w.key_id);
  ReplaceAll(body, "$B", w.blob);
  nlohmann::json req = nlohmann::json::parse(body, nullptr, false);
  if (req.is_discarded()) return 0;
  custos::kms::Caller c{"arn:aws:iam::000000000000:user/fuzz", "000000000000", "CKIAFUZZ"};
  custos::kms::KmsOutcome out = w.service->Execute(op, req, c);
  if (!out.ok()) {
    if (out.error_type.size() < 9 || out.error_type.find("Exception") == std::string::npos) std::abort();
    // The front end renders the message into JSON; that must never throw (messages may quote
    // a cut piece of the input, so they need not be valid UTF-8).
    (void)nlohmann::json{{"message", out.message}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  } else {
    (void)out.response.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  if (!w.service->Execute("DescribeKey", {{"KeyId", w.key_id}}, c).ok()) std::abort();
  return 0;
}
