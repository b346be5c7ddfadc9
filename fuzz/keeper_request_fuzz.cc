// Fuzzes the keeper daemon's request handlers (src/keeper/daemon/keeper_service.h) through
// KeeperService::Handle, the function the HTTP server calls with whatever a peer sent.
//
// Two keepers live in one private directory made once per process, both with weak Argon2id
// parameters and fixed keys, so seed bodies can carry their real identity and HPKE keys:
//   "fresh"  provider keeper with no share (reaches DKG round 1 and the no-custody refusals);
//   "active" provider keeper serving a signed 1-of-1 + 1-of-1 custody, with one allowlisted
//            client (reaches partial, escrow and reshare checks past the custody lookup).
// Input: byte 0 bit 7 picks the keeper, bits 0..6 (mod 12) the route; the rest is the body.
// Handle must never crash or throw, and must always answer a status in 200..599 with a JSON
// object body; an error answer must carry {"error","message"}.
#include <stdlib.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "keeper/daemon/keeper_service.h"
#include "keeper/daemon/keeper_store.h"

namespace custos::keeper::fuzz {

inline constexpr crypto::Argon2Params kWeakArgon2{.t_cost = 1, .m_cost_kib = 64, .parallelism = 1};

// FixedScalar returns the scalar whose 32 big-endian bytes all equal `fill` (fill < 0xff).
inline crypto::Scalar FixedScalar(uint8_t fill) {
  Bytes b(32, fill);
  auto s = crypto::Scalar::FromBytes(b);
  if (!s.ok()) std::abort();
  return *s;
}

inline crypto::SigningKey FixedSigningKey(uint8_t fill) {
  auto k = crypto::SigningKey::FromScalarBytes(FixedScalar(fill).ToSecretBytes());
  if (!k.ok()) std::abort();
  return std::move(*k);
}

inline crypto::hpke::PrivateKey FixedHpkeKey(uint8_t fill) {
  auto k = crypto::hpke::PrivateKey::FromBytes(FixedScalar(fill).ToSecretBytes());
  if (!k.ok()) std::abort();
  return std::move(*k);
}

// Key material of the fixture (public so the seed corpus can be regenerated from it).
inline constexpr uint8_t kFreshIdentity = 0x11, kFreshHpke = 0x12;
inline constexpr uint8_t kActiveIdentity = 0x21, kActiveHpke = 0x22, kActiveShare = 0x23;
inline constexpr uint8_t kCustomerIdentity = 0x31, kCustomerHpke = 0x32, kCustomerShare = 0x33;
inline constexpr uint8_t kClient = 0x41;

// FixtureCustody is the signed descriptor the active keeper ("p-active") serves, together with
// customer keeper "c1".
inline custody::CustodyDescriptor FixtureCustody() {
  using custody::Domain;
  custody::CustodyDescriptor d;
  d.epoch = 1;
  d.ceremony_id = Bytes(16, 0xce);
  auto record = [](std::string id, Domain dom, uint8_t identity, uint8_t hpke, uint8_t share) {
    custody::KeeperRecord k;
    k.id = std::move(id);
    k.domain = dom;
    k.index = 1;
    k.url = "http://127.0.0.1:1";
    k.identity_key = FixedSigningKey(identity).verifying_key().point();
    k.hpke_key = FixedHpkeKey(hpke).public_key();
    k.verification_key = crypto::Point::BaseMul(FixedScalar(share));
    k.possession_proof = custody::ProvePossession(FixedScalar(share), k.id, dom, k.index);
    return k;
  };
  d.provider.threshold = 1;
  d.provider.keepers.push_back(
      record("p-active", Domain::kProvider, kActiveIdentity, kActiveHpke, kActiveShare));
  d.provider.public_key = d.provider.keepers[0].verification_key;
  d.customer.threshold = 1;
  d.customer.keepers.push_back(
      record("c1", Domain::kCustomer, kCustomerIdentity, kCustomerHpke, kCustomerShare));
  d.customer.public_key = d.customer.keepers[0].verification_key;
  d.public_key = d.provider.public_key + d.customer.public_key;
  d.signatures["p-active"] = FixedSigningKey(kActiveIdentity).Sign(d.SignatureMessage());
  d.signatures["c1"] = FixedSigningKey(kCustomerIdentity).Sign(d.SignatureMessage());
  if (!d.Verify().ok()) std::abort();
  return d;
}

struct Fixture {
  std::string dir;
  std::unique_ptr<KeeperStore> fresh_store, active_store;
  std::unique_ptr<KeeperService> fresh, active;
};

inline std::unique_ptr<KeeperStore> MakeStore(const std::string& dir, const std::string& id,
                                              uint8_t identity, uint8_t hpke) {
  KeeperSecrets secrets{FixedSigningKey(identity), FixedHpkeKey(hpke), std::nullopt, std::nullopt};
  auto store = KeeperStore::CreateFromSecrets(dir, id, custody::Domain::kProvider,
                                              std::move(secrets),
                                              SecretBytes::CopyFrom(std::string_view("fuzz")),
                                              kWeakArgon2);
  if (!store.ok()) std::abort();
  return std::move(*store);
}

inline Fixture& GetFixture() {
  static Fixture* f = [] {
    auto* fx = new Fixture();
    std::string tmpl = (std::filesystem::temp_directory_path() / "custos-fuzz-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) std::abort();
    fx->dir = tmpl;
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(GetFixture().dir, ec);
    });
    fx->fresh_store = MakeStore(fx->dir + "/fresh", "p-fresh", kFreshIdentity, kFreshHpke);
    fx->active_store = MakeStore(fx->dir + "/active", "p-active", kActiveIdentity, kActiveHpke);
    custody::CustodyDescriptor d = FixtureCustody();
    fx->active_store->secrets().active = ShareSlot{d.ToJsonString(), 1, FixedScalar(kActiveShare)};
    if (!fx->active_store->SaveSecrets().ok()) std::abort();
    if (!fx->active_store->AddClient("fuzz-client", FixedSigningKey(kClient).verifying_key().point())
             .ok())
      std::abort();
    fx->fresh = std::make_unique<KeeperService>(*fx->fresh_store);
    fx->active = std::make_unique<KeeperService>(*fx->active_store);
    return fx;
  }();
  return *f;
}

inline constexpr const char* kPostRoutes[] = {
    "/v1/dkg/round",       "/v1/custody/endorse", "/v1/custody/activate",
    "/v1/partial",         "/v1/escrow/put",      "/v1/escrow/get",
    "/v1/reshare/deal",    "/v1/reshare/receive", "/v1/reshare/finalize",
};
inline constexpr size_t kRouteChoices = 12;  // 9 POST routes, GET info, GET on a POST route, 404

inline net::HttpRequest MakeRequest(uint8_t selector, std::string body) {
  net::HttpRequest req;
  size_t route = (selector & 0x7f) % kRouteChoices;
  if (route < 9) {
    req.method = "POST";
    req.target = kPostRoutes[route];
  } else if (route == 9) {
    req.method = "GET";
    req.target = "/v1/keeper";
  } else if (route == 10) {
    req.method = "GET";
    req.target = "/v1/partial";
  } else {
    req.method = "POST";
    req.target = "/v1/no-such-route";
  }
  req.headers["content-type"] = "application/json";
  req.body = std::move(body);
  // Each input comes from its own address: the keeper's per-address failure limit (429 after 100
  // failures in 10 s) would otherwise trip within a second of fuzzing and hide every handler.
  static uint32_t next_source = 0;
  uint32_t source = next_source++;
  req.remote = "10." + std::to_string((source >> 16) & 0xff) + "." + std::to_string((source >> 8) & 0xff) +
               "." + std::to_string(source & 0xff) + ":9";
  return req;
}

}  // namespace custos::keeper::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Handle logs refused requests to std::cerr; that is noise here (libFuzzer uses stdio).
  std::cerr.rdbuf(nullptr);
  (void)custos::keeper::fuzz::GetFixture();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::keeper::fuzz;
  if (size == 0) return 0;
  Fixture& fx = GetFixture();
  custos::keeper::KeeperService& service = (data[0] & 0x80) ? *fx.active : *fx.fresh;
  auto req = MakeRequest(data[0], std::string(reinterpret_cast<const char*>(data + 1), size - 1));
  custos::net::HttpResponse resp = service.Handle(req);
  if (resp.status < 200 || resp.status > 599) std::abort();
  nlohmann::json body = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) std::abort();
  if (resp.status >= 400 && (!body.contains("error") || !body.contains("message"))) std::abort();
  if (req.method == "GET" && req.target == "/v1/keeper" && resp.status != 200) std::abort();
  return 0;
}
