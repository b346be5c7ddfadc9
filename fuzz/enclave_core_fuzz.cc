// Fuzzes the trusted core's call entry point (src/appliance/enclave/core.h). Every request payload comes
// from the untrusted host, so EnclaveCore::Handle must never crash on any bytes, and must always
// answer with a response the host can decode (ecall::Response::Decode): an undecodable answer
// would let a hostile request turn an error into a broken channel. Cores are built at first use
// and serve every input, as the enclave process serves one host; they have sim TEE backends
// whose platform key lives in a private temporary directory, removed at exit.
//
// Inputs are raw request payloads, offered to two cores:
//  - an unloaded core. A kLoad succeeds only with a custody.json signed by every keeper it
//    lists, which mutated bytes do not carry, so every input sees the same state and a crash
//    reproduces from its input alone. The calls behind kLoad (SIGMA, records, join) are reached
//    only as far as their "not loaded" refusals, and every KMS call as far as "enclave: sealed".
//  - an unsealed core (a custody made here, kInit) holding one key of each KMS spec. So that
//    mutated requests reach past KeyRef decoding to the unwrap and the operation, an argument
//    that is exactly "@sym", "@hmac" or "@ecc" is replaced by that key's encoded KeyRef (key ids
//    "sym", "hmac", "ecc", version 1). The KMS calls are stateless but kAuditAppend, which runs
//    on a fresh unsealed core per input so that inputs stay independent.
//    Oracles: a KMS call never fails as kInternal; and nothing an input can carry opens, verifies
//    or extends what only the core can make: Decrypt, ReEncrypt, Verify, VerifyMac,
//    OpenAccessSecret, XksDecrypt, KmipDecrypt in GCM mode, and kAuditAppend with an anchor never
//    succeed (the root key, hence every
//    key they need, is drawn at random in this process).
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "protocol/attestation/tee_adapters.h"
#include "crypto/random.h"
#include "protocol/custody/custody.h"
#include "appliance/ecall/ecall.h"
#include "appliance/ecall/kms_calls.h"
#include "appliance/enclave/core.h"
#include "protocol/threshold/shamir.h"

namespace custos::enclave {
namespace {

std::string& KeyDir() {
  static std::string dir;
  return dir;
}

void RemoveKeyDir() {
  std::error_code ec;
  if (!KeyDir().empty()) std::filesystem::remove_all(KeyDir(), ec);
}

attestation::SimPlatform& Platform() {
  static attestation::SimPlatform* platform = [] {
    char tmpl[] = "/tmp/custos-enclave-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    KeyDir() = tmpl;
    std::atexit(RemoveKeyDir);
    auto p = attestation::SimPlatform::LoadOrCreate(KeyDir() + "/sim");
    if (!p.ok()) std::abort();
    return new attestation::SimPlatform(std::move(*p));  // lives for the whole process
  }();
  return *platform;
}

std::unique_ptr<EnclaveCore> NewCore() {
  CoreOptions options;
  options.tee = std::make_unique<attestation::SimBackend>(Platform(), Bytes(32, 0x5a),
                                                          attestation::SimIdentity{});
  options.now = [] { return std::time_t{1750377600}; };
  auto made = EnclaveCore::Create(std::move(options));
  if (!made.ok()) std::abort();
  return std::move(*made);
}

EnclaveCore& UnloadedCore() {
  static EnclaveCore* core = NewCore().release();
  return *core;
}

// CustodyJson is a signed custody of one provider and one customer keeper (threshold 1 each),
// dealt in the clear: enough for kLoad and kInit.
const std::string& CustodyJson() {
  static const std::string json = [] {
    custody::CustodyDescriptor d;
    d.ceremony_id = crypto::RandomBytes(16);
    std::vector<crypto::SigningKey> identities;
    for (custody::Domain domain : {custody::Domain::kProvider, custody::Domain::kCustomer}) {
      crypto::Scalar x = crypto::Scalar::Random();
      std::string id = domain == custody::Domain::kProvider ? "P1" : "C1";
      identities.push_back(crypto::SigningKey::Generate());
      custody::DomainRecord& dom = d.domain(domain);
      dom.threshold = 1;
      dom.public_key = crypto::Point::BaseMul(x);
      dom.keepers.push_back({id, domain, 1, "http://127.0.0.1:1",
                             identities.back().verifying_key().point(),
                             crypto::Point::BaseMul(crypto::Scalar::Random()),
                             crypto::Point::BaseMul(x), custody::ProvePossession(x, id, domain, 1)});
    }
    d.public_key = d.provider.public_key + d.customer.public_key;
    d.signatures["P1"] = identities[0].Sign(d.SignatureMessage());
    d.signatures["C1"] = identities[1].Sign(d.SignatureMessage());
    return d.ToJsonString();
  }();
  return json;
}

StatusOr<std::vector<Bytes>> Call(EnclaveCore& core, ecall::Call call, std::vector<Bytes> args) {
  auto resp = ecall::Response::Decode(core.Handle(ecall::Request{call, std::move(args)}.Encode()));
  if (!resp.ok()) return resp.status();
  RETURN_IF_ERROR(resp->ToStatus());
  return resp->results;
}

std::unique_ptr<EnclaveCore> NewUnsealedCore() {
  auto core = NewCore();
  if (!Call(*core, ecall::Call::kLoad, {ToBytes(CustodyJson()), Bytes{}, Bytes{}, Bytes{}}).ok() ||
      !Call(*core, ecall::Call::kInit, {}).ok())
    std::abort();
  return core;
}

// KmsCore is the shared unsealed core and the encoded refs of its three keys.
struct KmsCore {
  std::unique_ptr<EnclaveCore> core;
  std::map<std::string, Bytes> refs;  // "@sym" -> encoded KeyRef
};

KmsCore& Kms() {
  static KmsCore* kms = [] {
    auto k = new KmsCore{NewUnsealedCore(), {}};
    const std::pair<const char*, std::string_view> keys[] = {
        {"sym", ecall::kSpecSymmetric}, {"hmac", ecall::kSpecHmac256}, {"ecc", ecall::kSpecEccP256}};
    for (const auto& [id, spec] : keys) {
      auto made = Call(*k->core, ecall::Call::kKmsCreateKey, {ToBytes(id), ecall::U32Arg(1), ToBytes(spec)});
      if (!made.ok()) std::abort();
      k->refs["@" + std::string(id)] = ecall::KeyRef{id, 1, std::string(spec), (*made)[0]}.Encode();
    }
    return k;
  }();
  return *kms;
}

bool IsKmsCall(ecall::Call call) {
  return static_cast<uint16_t>(call) >= static_cast<uint16_t>(ecall::Call::kKmsCreateKey) &&
         static_cast<uint16_t>(call) <= static_cast<uint16_t>(ecall::Call::kKmsImportKey);
}

void CheckResponse(ByteSpan in, ByteSpan answer) {
  auto resp = ecall::Response::Decode(answer);
  if (!resp.ok()) std::abort();
  auto req = ecall::Request::Decode(in);
  if (!req.ok()) {
    // A request that does not decode is refused as such, before any dispatch.
    if (resp->code != ErrorCode::kInvalidArgument || !resp->results.empty()) std::abort();
    return;
  }
  if (IsKmsCall(req->call) && (resp->code != ErrorCode::kFailedPrecondition ||
                               resp->message != "enclave: sealed"))
    std::abort();
  switch (req->call) {
    case ecall::Call::kPing:
      if (resp->code != ErrorCode::kOk || resp->results != req->args) std::abort();
      break;
    case ecall::Call::kHello:
      if (resp->code != ErrorCode::kOk || resp->results.size() != 4 ||
          resp->results[1].size() != 33)
        std::abort();
      break;
    default:
      break;
  }
}

// FuzzKms runs a decoded KMS request on an unsealed core, with the key placeholders replaced.
void FuzzKms(ecall::Request req) {
  KmsCore& kms = Kms();
  for (Bytes& arg : req.args) {
    auto it = kms.refs.find(ToString(arg));
    if (it != kms.refs.end()) arg = it->second;
  }
  std::unique_ptr<EnclaveCore> fresh;
  EnclaveCore* core = kms.core.get();
  if (req.call == ecall::Call::kAuditAppend) {
    fresh = NewUnsealedCore();
    core = fresh.get();
  }
  auto resp = ecall::Response::Decode(core->Handle(req.Encode()));
  if (!resp.ok()) std::abort();
  if (resp->code == ErrorCode::kInternal) std::abort();
  if (resp->code != ErrorCode::kOk) return;
  switch (req.call) {
    case ecall::Call::kKmsDecrypt:
    case ecall::Call::kKmsReEncrypt:
    case ecall::Call::kKmsVerify:
    case ecall::Call::kKmsVerifyMac:
    case ecall::Call::kKmsOpenAccessSecret:
    case ecall::Call::kXksDecrypt:
      std::abort();  // a forgery: nothing in the input was made by this core
    case ecall::Call::kKmipDecrypt:
      // AES-GCM authenticates (a forgery, as above); CBC does not, so it may "decrypt" anything.
      if (req.args.size() > 2 && req.args[2] == ecall::U32Arg(ecall::kKmipModeGcm)) std::abort();
      break;
    case ecall::Call::kAuditAppend:
      if (!req.args[0].empty()) std::abort();
      if (resp->results.size() != 2 || resp->results[0].size() != 40 || resp->results[1].size() != 64)
        std::abort();
      break;
    default:
      break;
  }
}

}  // namespace
}  // namespace custos::enclave

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::enclave;
  custos::ByteSpan in(data, size);
  custos::Bytes answer = UnloadedCore().Handle(in);
  CheckResponse(in, answer);
  auto req = custos::ecall::Request::Decode(in);
  if (req.ok() && IsKmsCall(req->call)) FuzzKms(std::move(*req));
  return 0;
}
