#include "protocol/custody/custody.h"

#include <set>

#include "common/file.h"
#include "crypto/hash.h"
#include "protocol/threshold/dleq.h"
#include "protocol/threshold/shamir.h"

namespace custos::custody {

using crypto::Point;
using nlohmann::json;

const char* DomainName(Domain d) { return d == Domain::kProvider ? "provider" : "customer"; }

StatusOr<Domain> ParseDomain(std::string_view s) {
  if (s == "provider") return Domain::kProvider;
  if (s == "customer") return Domain::kCustomer;
  return InvalidArgument("domain must be 'provider' or 'customer'");
}

Bytes CustodyDescriptor::SigningBytes() const {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/custody-descriptor")).U32(suite).U64(epoch).Var(ceremony_id);
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    const DomainRecord& r = domain(d);
    w.U8(static_cast<uint8_t>(d)).U32(r.threshold).Var(r.public_key.Encode());
    w.U32(static_cast<uint32_t>(r.keepers.size()));
    for (const KeeperRecord& k : r.keepers) {
      w.Var(k.id).U8(static_cast<uint8_t>(k.domain)).U32(k.index).Var(k.url);
      w.Var(k.identity_key.Encode()).Var(k.hpke_key.Encode()).Var(k.verification_key.Encode());
      w.Var(k.possession_proof);
    }
  }
  w.Var(public_key.Encode()).Var(previous);
  w.U32(static_cast<uint32_t>(excluded.size()));
  for (const auto& e : excluded) w.Var(e.id).Var(e.reason);
  return w.Take();
}

Bytes CustodyDescriptor::Fingerprint() const {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/custody"), SigningBytes()}));
}

Bytes CustodyDescriptor::SignatureMessage() const {
  return Concat({AsBytes("custos/v1/custody-sign"), SigningBytes()});
}

json CustodyDescriptor::ToJson() const {
  json j;
  j["suite"] = suite;
  j["epoch"] = epoch;
  j["ceremony_id"] = HexEncode(ceremony_id);
  j["public_key"] = HexEncode(public_key.Encode());
  j["fingerprint"] = FingerprintHex();
  if (!previous.empty()) j["previous"] = HexEncode(previous);
  json domains = json::object();
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    const DomainRecord& r = domain(d);
    json jd;
    jd["threshold"] = r.threshold;
    jd["public_key"] = HexEncode(r.public_key.Encode());
    jd["keepers"] = json::array();
    for (const KeeperRecord& k : r.keepers) {
      jd["keepers"].push_back({{"id", k.id},
                               {"index", k.index},
                               {"url", k.url},
                               {"identity_key", HexEncode(k.identity_key.Encode())},
                               {"hpke_key", HexEncode(k.hpke_key.Encode())},
                               {"verification_key", HexEncode(k.verification_key.Encode())},
                               {"possession_proof", HexEncode(k.possession_proof)}});
    }
    domains[DomainName(d)] = jd;
  }
  j["domains"] = domains;
  j["excluded"] = json::array();
  for (const auto& e : excluded) j["excluded"].push_back({{"id", e.id}, {"reason", e.reason}});
  j["signatures"] = json::object();
  for (const auto& [id, sig] : signatures) j["signatures"][id] = HexEncode(sig);
  return j;
}

namespace {

StatusOr<Point> PointField(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string())
    return InvalidArgument(std::string("custody: missing field ") + name);
  ASSIGN_OR_RETURN(Bytes b, HexDecode(j[name].get<std::string>()));
  auto p = Point::Decode(b);
  if (!p.ok()) return InvalidArgument(std::string("custody: bad point in ") + name);
  return p;
}

StatusOr<std::string> StringField(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_string())
    return InvalidArgument(std::string("custody: missing field ") + name);
  return j[name].get<std::string>();
}

StatusOr<uint64_t> UintField(const json& j, const char* name) {
  if (!j.contains(name) || !j[name].is_number_unsigned())
    return InvalidArgument(std::string("custody: missing or negative field ") + name);
  return j[name].get<uint64_t>();
}

}  // namespace

StatusOr<CustodyDescriptor> CustodyDescriptor::FromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("custody: not a JSON object");
  CustodyDescriptor c;
  ASSIGN_OR_RETURN(uint64_t suite, UintField(j, "suite"));
  if (suite != 1) return InvalidArgument("custody: unsupported suite " + std::to_string(suite));
  c.suite = 1;
  ASSIGN_OR_RETURN(c.epoch, UintField(j, "epoch"));
  ASSIGN_OR_RETURN(std::string cid, StringField(j, "ceremony_id"));
  ASSIGN_OR_RETURN(c.ceremony_id, HexDecode(cid));
  ASSIGN_OR_RETURN(c.public_key, PointField(j, "public_key"));
  if (j.contains("previous")) {
    ASSIGN_OR_RETURN(std::string prev, StringField(j, "previous"));
    ASSIGN_OR_RETURN(c.previous, HexDecode(prev));
  }
  if (!j.contains("domains") || !j["domains"].is_object())
    return InvalidArgument("custody: missing field domains");
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    const char* name = DomainName(d);
    if (!j["domains"].contains(name)) return InvalidArgument(std::string("custody: missing domain ") + name);
    const json& jd = j["domains"][name];
    DomainRecord& r = c.domain(d);
    ASSIGN_OR_RETURN(uint64_t t, UintField(jd, "threshold"));
    if (t > 256) return InvalidArgument("custody: threshold too large");
    r.threshold = static_cast<uint32_t>(t);
    ASSIGN_OR_RETURN(r.public_key, PointField(jd, "public_key"));
    if (!jd.contains("keepers") || !jd["keepers"].is_array() || jd["keepers"].size() > 256)
      return InvalidArgument(std::string("custody: bad keeper list in ") + name);
    for (const json& jk : jd["keepers"]) {
      KeeperRecord k;
      k.domain = d;
      ASSIGN_OR_RETURN(k.id, StringField(jk, "id"));
      ASSIGN_OR_RETURN(uint64_t idx, UintField(jk, "index"));
      if (idx == 0 || idx > 256) return InvalidArgument("custody: keeper index out of range");
      k.index = static_cast<uint32_t>(idx);
      ASSIGN_OR_RETURN(k.url, StringField(jk, "url"));
      ASSIGN_OR_RETURN(k.identity_key, PointField(jk, "identity_key"));
      ASSIGN_OR_RETURN(k.hpke_key, PointField(jk, "hpke_key"));
      ASSIGN_OR_RETURN(k.verification_key, PointField(jk, "verification_key"));
      ASSIGN_OR_RETURN(std::string pop, StringField(jk, "possession_proof"));
      ASSIGN_OR_RETURN(k.possession_proof, HexDecode(pop));
      r.keepers.push_back(std::move(k));
    }
  }
  if (j.contains("excluded")) {
    if (!j["excluded"].is_array()) return InvalidArgument("custody: excluded must be a list");
    for (const json& e : j["excluded"]) {
      ExcludedKeeper x;
      ASSIGN_OR_RETURN(x.id, StringField(e, "id"));
      ASSIGN_OR_RETURN(x.reason, StringField(e, "reason"));
      c.excluded.push_back(std::move(x));
    }
  }
  if (j.contains("signatures")) {
    if (!j["signatures"].is_object()) return InvalidArgument("custody: signatures must be an object");
    for (const auto& [id, sig] : j["signatures"].items()) {
      if (!sig.is_string()) return InvalidArgument("custody: signature must be a hex string");
      ASSIGN_OR_RETURN(Bytes s, HexDecode(sig.get<std::string>()));
      c.signatures[id] = std::move(s);
    }
  }
  if (j.contains("fingerprint")) {
    ASSIGN_OR_RETURN(std::string fp, StringField(j, "fingerprint"));
    if (fp != c.FingerprintHex())
      return IntegrityError("custody: fingerprint does not match the descriptor's contents");
  }
  return c;
}

StatusOr<CustodyDescriptor> CustodyDescriptor::Parse(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("custody: not valid JSON");
  return FromJson(j);
}

StatusOr<CustodyDescriptor> CustodyDescriptor::Load(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  auto c = Parse(text);
  if (!c.ok()) return c.status().WithContext(path);
  return c;
}

Status CustodyDescriptor::CheckStructure() const {
  if (suite != 1) return InvalidArgument("custody: unsupported suite");
  std::set<std::string> ids;
  for (Domain d : {Domain::kProvider, Domain::kCustomer}) {
    const DomainRecord& r = domain(d);
    std::string name = DomainName(d);
    if (r.keepers.empty()) return InvalidArgument("custody: domain " + name + " has no keepers");
    if (r.threshold < 1 || r.threshold > r.keepers.size())
      return InvalidArgument("custody: domain " + name + " threshold out of range");
    std::set<uint32_t> indices;
    for (const KeeperRecord& k : r.keepers) {
      if (k.id.empty() || k.id.size() > 64) return InvalidArgument("custody: bad keeper id");
      if (!ids.insert(k.id).second) return InvalidArgument("custody: keeper id repeats: " + k.id);
      if (!indices.insert(k.index).second)
        return InvalidArgument("custody: keeper index repeats in domain " + name);
      if (k.domain != d) return InvalidArgument("custody: keeper listed under the wrong domain");
      auto proof = threshold::DleqProof::Decode(k.possession_proof);
      if (!proof.ok() ||
          !threshold::VerifyDleq(*proof, Point::Generator(), k.verification_key, Point::Generator(),
                                 k.verification_key, PossessionContext(k.id, k.domain, k.index))
               .ok())
        return IntegrityError("custody: keeper " + k.id +
                              " has no valid proof of possession of its share");
    }
    // The verification keys must interpolate (degree t-1) to the domain key, and every keeper
    // beyond the first t must lie on the same polynomial.
    std::vector<uint32_t> base;
    std::vector<Point> base_pts;
    for (size_t k = 0; k < r.threshold; ++k) {
      base.push_back(r.keepers[k].index);
      base_pts.push_back(r.keepers[k].verification_key);
    }
    ASSIGN_OR_RETURN(Point y, threshold::InterpolatePointsAtZero(base, base_pts));
    if (!(y == r.public_key))
      return IntegrityError("custody: verification keys of domain " + name +
                            " do not interpolate to its public key");
    for (size_t k = r.threshold; k < r.keepers.size(); ++k) {
      Point at;
      for (size_t m = 0; m < base.size(); ++m) {
        ASSIGN_OR_RETURN(crypto::Scalar l, threshold::LagrangeAt(base, base[m], r.keepers[k].index));
        at += base_pts[m] * l;
      }
      if (!(at == r.keepers[k].verification_key))
        return IntegrityError("custody: verification key of keeper " + r.keepers[k].id +
                              " is inconsistent with its domain");
    }
  }
  if (!(provider.public_key + customer.public_key == public_key))
    return IntegrityError("custody: public key is not the sum of the domain keys");
  return Status::Ok();
}

Status CustodyDescriptor::Verify() const {
  RETURN_IF_ERROR(CheckStructure());
  Bytes msg = SignatureMessage();
  for (const KeeperRecord* k : AllKeepers()) {
    auto it = signatures.find(k->id);
    if (it == signatures.end())
      return IntegrityError("custody: keeper " + k->id + " did not sign the descriptor");
    auto vk = crypto::VerifyingKey::FromPoint(k->identity_key);
    if (!vk.Verify(msg, it->second).ok())
      return IntegrityError("custody: signature of keeper " + k->id + " does not verify");
  }
  return Status::Ok();
}

size_t CustodyDescriptor::CountApprovals(const DomainRecord& approvers) const {
  Bytes msg = SignatureMessage();
  size_t n = 0;
  for (const KeeperRecord& k : approvers.keepers) {
    auto it = signatures.find(k.id);
    if (it != signatures.end() &&
        crypto::VerifyingKey::FromPoint(k.identity_key).Verify(msg, it->second).ok())
      n++;
  }
  return n;
}

Bytes PossessionContext(const std::string& id, Domain domain, uint32_t index) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/possession")).Var(id).U8(static_cast<uint8_t>(domain)).U32(index);
  return w.Take();
}

Bytes ProvePossession(const crypto::Scalar& share, const std::string& id, Domain domain,
                      uint32_t index) {
  Point x = Point::BaseMul(share);
  return threshold::ProveDleq(share, Point::Generator(), x, Point::Generator(), x,
                              PossessionContext(id, domain, index))
      .Encode();
}

const KeeperRecord* CustodyDescriptor::FindKeeper(std::string_view id) const {
  for (const KeeperRecord* k : AllKeepers())
    if (k->id == id) return k;
  return nullptr;
}

std::vector<const KeeperRecord*> CustodyDescriptor::AllKeepers() const {
  std::vector<const KeeperRecord*> out;
  for (const auto& k : provider.keepers) out.push_back(&k);
  for (const auto& k : customer.keepers) out.push_back(&k);
  return out;
}

}  // namespace custos::custody
