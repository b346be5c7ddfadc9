// Fuzzes the trusted core's call entry point (src/enclave/core.h). Every request payload comes
// from the untrusted host, so EnclaveCore::Handle must never crash on any bytes, and must always
// answer with a response the host can decode (ecall::Response::Decode): an undecodable answer
// would let a hostile request turn an error into a broken channel. One core is built at first
// use and serves every input, as the enclave process serves one host; it has a sim TEE backend
// whose platform key lives in a private temporary directory, removed at exit.
//
// Inputs are raw request payloads. The core stays unloaded: a kLoad succeeds only with a
// custody.json signed by every keeper it lists, which mutated bytes do not carry, so every input
// sees the same state and a crash reproduces from its input alone. The calls behind kLoad
// (SIGMA, records, join) are reached only as far as their "not loaded" refusals.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <memory>
#include <string>

#include "attestation/tee_adapters.h"
#include "ecall/ecall.h"
#include "enclave/core.h"

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

EnclaveCore& Core() {
  static EnclaveCore* core = [] {
    char tmpl[] = "/tmp/custos-enclave-fuzz-XXXXXX";
    if (::mkdtemp(tmpl) == nullptr) std::abort();
    KeyDir() = tmpl;
    std::atexit(RemoveKeyDir);
    auto platform = attestation::SimPlatform::LoadOrCreate(KeyDir() + "/sim");
    if (!platform.ok()) std::abort();
    CoreOptions options;
    options.tee = std::make_unique<attestation::SimBackend>(std::move(*platform), Bytes(32, 0x5a),
                                                            attestation::SimIdentity{});
    options.now = [] { return std::time_t{1750377600}; };
    auto made = EnclaveCore::Create(std::move(options));
    if (!made.ok()) std::abort();
    return made->release();  // lives for the whole process, like the enclave's one core
  }();
  return *core;
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

}  // namespace
}  // namespace custos::enclave

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::enclave;
  custos::ByteSpan in(data, size);
  custos::Bytes answer = Core().Handle(in);
  CheckResponse(in, answer);
  return 0;
}
