#include "keeper/daemon/keeper_store.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>

#include "common/file.h"
#include "crypto/aead.h"
#include "crypto/aead_box.h"
#include "crypto/hash.h"
#include "crypto/random.h"

namespace custos::keeper {

using crypto::Scalar;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr char kMetadata[] = "/keeper.json";
constexpr char kState[] = "/state.sealed";
constexpr char kAllowlist[] = "/allowlist.json";
constexpr char kAudit[] = "/audit.log";

void PutSlot(ByteWriter& w, const std::optional<ShareSlot>& slot) {
  if (!slot) {
    w.U8(0);
    return;
  }
  SecretBytes s = slot->share.ToSecretBytes();
  w.U8(1).Var(slot->custody_json).U32(slot->index).Raw(s.Expose());
}

StatusOr<std::optional<ShareSlot>> GetSlot(ByteReader& r) {
  ASSIGN_OR_RETURN(uint8_t present, r.U8("slot flag"));
  if (present == 0) return std::optional<ShareSlot>();
  if (present != 1) return InvalidArgument("bad slot flag");
  ShareSlot slot;
  ASSIGN_OR_RETURN(ByteSpan custody, r.Var("custody", 1 << 22));
  slot.custody_json = ToString(custody);
  ASSIGN_OR_RETURN(slot.index, r.U32("index"));
  ASSIGN_OR_RETURN(ByteSpan share, r.Raw(32, "share"));
  ASSIGN_OR_RETURN(slot.share, Scalar::FromBytes(share));
  return std::optional<ShareSlot>(std::move(slot));
}

StatusOr<SecretBytes> DeriveAtRestKey(const SecretBytes& passphrase, ByteSpan salt,
                                      const crypto::Argon2Params& params) {
  return crypto::Argon2id(passphrase, salt, params, 32);
}

Bytes AllowlistMacKey(const SecretBytes& at_rest_key) {
  auto k = crypto::Hkdf(at_rest_key.Expose(), {}, AsBytes("custos/v1/keeper/allowlist-mac"), 32);
  return Bytes(k->Expose().begin(), k->Expose().end());
}

}  // namespace

SecretBytes KeeperSecrets::Encode() const {
  ByteWriter w;
  SecretBytes id_sk = identity.ToScalarBytes(), hpke_sk = hpke.ToBytes();
  w.U8(1).Raw(id_sk.Expose()).Raw(hpke_sk.Expose());
  PutSlot(w, active);
  PutSlot(w, pending);
  Bytes b = w.Take();
  SecretBytes out = SecretBytes::CopyFrom(b);
  WipeBytes(b);
  return out;
}

StatusOr<KeeperSecrets> KeeperSecrets::Decode(const SecretBytes& b) {
  ByteReader r(b.Expose());
  ASSIGN_OR_RETURN(uint8_t version, r.U8("state version"));
  if (version != 1) return InvalidArgument("unsupported keeper state version");
  ASSIGN_OR_RETURN(ByteSpan id_sk, r.Raw(32, "identity key"));
  ASSIGN_OR_RETURN(ByteSpan hpke_sk, r.Raw(32, "hpke key"));
  ASSIGN_OR_RETURN(auto identity, crypto::SigningKey::FromScalarBytes(SecretBytes::CopyFrom(id_sk)));
  ASSIGN_OR_RETURN(auto hpke, crypto::hpke::PrivateKey::FromBytes(SecretBytes::CopyFrom(hpke_sk)));
  KeeperSecrets s{std::move(identity), std::move(hpke), std::nullopt, std::nullopt};
  ASSIGN_OR_RETURN(s.active, GetSlot(r));
  ASSIGN_OR_RETURN(s.pending, GetSlot(r));
  RETURN_IF_ERROR(r.ExpectEnd("keeper state"));
  return s;
}

Bytes KeeperStore::StateAad() const {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/keeper-state")).Var(id_).U8(static_cast<uint8_t>(domain_));
  return w.Take();
}

Status KeeperStore::WriteMetadata(const crypto::Argon2Params& params, ByteSpan salt) const {
  json j = {{"suite", 1},
            {"id", id_},
            {"domain", custody::DomainName(domain_)},
            {"identity_key", HexEncode(secrets_->identity.verifying_key().Encode())},
            {"hpke_key", HexEncode(secrets_->hpke.public_key().Encode())},
            {"kdf",
             {{"alg", "argon2id"},
              {"salt", HexEncode(salt)},
              {"t_cost", params.t_cost},
              {"m_cost_kib", params.m_cost_kib},
              {"parallelism", params.parallelism}}}};
  return WriteFileAtomic(dir_ + kMetadata, j.dump(2) + "\n", 0644);
}

StatusOr<std::unique_ptr<KeeperStore>> KeeperStore::CreateFromSecrets(
    const std::string& dir, const std::string& id, custody::Domain domain, KeeperSecrets secrets,
    const SecretBytes& passphrase, const crypto::Argon2Params& params) {
  if (id.empty() || id.size() > 64 ||
      id.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") !=
          std::string::npos)
    return InvalidArgument("keeper id must be 1..64 characters of [A-Za-z0-9._-]");
  if (FileExists(dir + kMetadata)) return AlreadyExists("a keeper already exists in " + dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create directory " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  auto store = std::unique_ptr<KeeperStore>(new KeeperStore());
  store->dir_ = dir;
  store->id_ = id;
  store->domain_ = domain;
  Bytes salt = crypto::RandomBytes(16);
  ASSIGN_OR_RETURN(store->at_rest_key_, DeriveAtRestKey(passphrase, salt, params));
  store->secrets_ = std::make_unique<KeeperSecrets>(std::move(secrets));
  RETURN_IF_ERROR(store->SaveSecrets());
  RETURN_IF_ERROR(store->WriteMetadata(params, salt));
  json allow = {{"clients", json::array()}};
  Bytes mac_key = AllowlistMacKey(store->at_rest_key_);
  allow["mac"] = HexEncode(crypto::HmacSha256(mac_key, AsBytes(allow["clients"].dump())));
  WipeBytes(mac_key);
  RETURN_IF_ERROR(WriteFileAtomic(dir + kAllowlist, allow.dump(2) + "\n", 0600));
  ASSIGN_OR_RETURN(store->audit_, AuditLog::Open(dir + kAudit, &store->secrets_->identity));
  return store;
}

StatusOr<std::unique_ptr<KeeperStore>> KeeperStore::Init(const std::string& dir,
                                                         const std::string& id,
                                                         custody::Domain domain,
                                                         const SecretBytes& passphrase,
                                                         const crypto::Argon2Params& params) {
  KeeperSecrets s{crypto::SigningKey::Generate(), crypto::hpke::PrivateKey::Generate(),
                  std::nullopt, std::nullopt};
  ASSIGN_OR_RETURN(auto store, CreateFromSecrets(dir, id, domain, std::move(s), passphrase, params));
  RETURN_IF_ERROR(store->audit().Append(
      "keeper.init", {{"id", id},
                      {"domain", custody::DomainName(domain)},
                      {"identity_key", HexEncode(store->secrets().identity.verifying_key().Encode())}}));
  return store;
}

StatusOr<std::unique_ptr<KeeperStore>> KeeperStore::Open(const std::string& dir,
                                                         const SecretBytes& passphrase) {
  auto text = ReadFileString(dir + kMetadata);
  if (!text.ok()) return NotFound("no keeper in " + dir + " (run `custos keeper init` first)");
  json meta = json::parse(*text, nullptr, false);
  if (meta.is_discarded() || !meta.contains("kdf") || !meta.contains("id") ||
      !meta.contains("domain"))
    return InvalidArgument("keeper.json is malformed");
  crypto::Argon2Params params;
  Bytes salt;
  try {
    const json& kdf = meta["kdf"];
    params.t_cost = kdf.at("t_cost").get<uint32_t>();
    params.m_cost_kib = kdf.at("m_cost_kib").get<uint32_t>();
    params.parallelism = kdf.at("parallelism").get<uint32_t>();
    ASSIGN_OR_RETURN(salt, HexDecode(kdf.at("salt").get<std::string>()));
    if (!meta["id"].is_string() || !meta["domain"].is_string()) throw std::invalid_argument("id");
  } catch (const std::exception&) {
    return InvalidArgument("keeper.json is malformed (kdf parameters, id or domain)");
  }
  auto store = std::unique_ptr<KeeperStore>(new KeeperStore());
  store->dir_ = dir;
  store->id_ = meta["id"].get<std::string>();
  ASSIGN_OR_RETURN(store->domain_, custody::ParseDomain(meta["domain"].get<std::string>()));
  ASSIGN_OR_RETURN(store->at_rest_key_, DeriveAtRestKey(passphrase, salt, params));
  ASSIGN_OR_RETURN(Bytes sealed, ReadFileBytes(dir + kState));
  if (sealed.size() < crypto::kGcmNonceSize + crypto::kGcmTagSize)
    return IntegrityError("keeper state file is truncated");
  auto plain = crypto::OpenBox(store->at_rest_key_, sealed, store->StateAad());
  if (!plain.ok())
    return PermissionDenied("cannot unseal keeper state: wrong passphrase or tampered state file");
  ASSIGN_OR_RETURN(auto secrets, KeeperSecrets::Decode(*plain));
  store->secrets_ = std::make_unique<KeeperSecrets>(std::move(secrets));
  ASSIGN_OR_RETURN(store->audit_, AuditLog::Open(dir + kAudit, &store->secrets_->identity));
  return store;
}

Status KeeperStore::SaveSecrets() {
  SecretBytes plain = secrets_->Encode();
  // state.sealed = nonce || ciphertext || tag under the at-rest key (crypto/aead_box.h).
  ASSIGN_OR_RETURN(Bytes out, crypto::SealBox(at_rest_key_, plain.Expose(), StateAad()));
  return WriteFileAtomic(dir_ + kState, out, 0600);
}

StatusOr<std::vector<AllowedClient>> KeeperStore::LoadAllowlist() const {
  ASSIGN_OR_RETURN(std::string text, ReadAllowlistText());
  return ParseAllowlist(text);
}

StatusOr<std::string> KeeperStore::ReadAllowlistText() const { return ReadFileString(dir_ + kAllowlist); }

StatusOr<std::vector<AllowedClient>> KeeperStore::ParseAllowlist(std::string_view text) const {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.contains("clients") || !j["clients"].is_array() ||
      !j.contains("mac") || !j["mac"].is_string())
    return IntegrityError("allowlist.json is malformed");
  Bytes mac_key = AllowlistMacKey(at_rest_key_);
  auto mac = crypto::HmacSha256(mac_key, AsBytes(j["clients"].dump()));
  WipeBytes(mac_key);
  auto given = HexDecode(j["mac"].get<std::string>());
  if (!given.ok() || !ConstantTimeEquals(*given, mac))
    return IntegrityError("allowlist.json was modified outside `custos keeper allow`");
  std::vector<AllowedClient> out;
  for (const json& c : j["clients"]) {
    ASSIGN_OR_RETURN(Bytes k, HexDecode(c.value("key", "")));
    ASSIGN_OR_RETURN(auto p, crypto::Point::Decode(k));
    ASSIGN_OR_RETURN(ClientRole role, ParseClientRole(c.value("role", "decrypt")));
    out.push_back({c.value("name", ""), p, role});
  }
  return out;
}

const char* ClientRoleName(ClientRole r) { return r == ClientRole::kAdmin ? "admin" : "decrypt"; }

StatusOr<ClientRole> ParseClientRole(std::string_view s) {
  if (s == "decrypt") return ClientRole::kDecrypt;
  if (s == "admin") return ClientRole::kAdmin;
  return InvalidArgument("client role must be 'decrypt' or 'admin'");
}

Status KeeperStore::WriteAllowlist(const std::vector<AllowedClient>& clients) const {
  json arr = json::array();
  for (const auto& c : clients)
    arr.push_back({{"name", c.name}, {"key", HexEncode(c.key.Encode())}, {"role", ClientRoleName(c.role)}});
  json j = {{"clients", arr}};
  Bytes mac_key = AllowlistMacKey(at_rest_key_);
  j["mac"] = HexEncode(crypto::HmacSha256(mac_key, AsBytes(arr.dump())));
  WipeBytes(mac_key);
  return WriteFileAtomic(dir_ + kAllowlist, j.dump(2) + "\n", 0600);
}

Status KeeperStore::AddClient(const std::string& name, const crypto::Point& key, ClientRole role) {
  ASSIGN_OR_RETURN(auto clients, LoadAllowlist());
  for (const auto& c : clients)
    if (c.key == key)
      return AlreadyExists("client key is already allowed (role " + std::string(ClientRoleName(c.role)) +
                           "; change it with --role, remove it with --remove)");
  clients.push_back({name, key, role});
  RETURN_IF_ERROR(WriteAllowlist(clients));
  return audit_->Append("client.allow", {{"name", name}, {"key", HexEncode(key.Encode())},
                                         {"role", ClientRoleName(role)}});
}

Status KeeperStore::SetClientRole(const crypto::Point& key, ClientRole role) {
  ASSIGN_OR_RETURN(auto clients, LoadAllowlist());
  for (auto& c : clients) {
    if (!(c.key == key)) continue;
    if (c.role == role) return Status::Ok();
    ClientRole before = c.role;
    c.role = role;
    RETURN_IF_ERROR(WriteAllowlist(clients));
    return audit_->Append("client.role", {{"name", c.name}, {"key", HexEncode(key.Encode())},
                                          {"from", ClientRoleName(before)}, {"role", ClientRoleName(role)}});
  }
  return NotFound("client key is not on this keeper's allowlist");
}

Status KeeperStore::RemoveClient(const crypto::Point& key) {
  ASSIGN_OR_RETURN(auto clients, LoadAllowlist());
  for (auto it = clients.begin(); it != clients.end(); ++it) {
    if (!(it->key == key)) continue;
    std::string name = it->name;
    clients.erase(it);
    RETURN_IF_ERROR(WriteAllowlist(clients));
    return audit_->Append("client.remove", {{"name", name}, {"key", HexEncode(key.Encode())}});
  }
  return NotFound("client key is not on this keeper's allowlist");
}

Status KeeperStore::AddAppliancePoint(const crypto::Point& r) {
  ASSIGN_OR_RETURN(bool known, IsAppliancePoint(r));
  if (known) return Status::Ok();
  std::string path = dir_ + "/appliance_points";
  std::string text;
  if (std::filesystem::exists(path)) {
    ASSIGN_OR_RETURN(text, ReadFileString(path));
  }
  text += HexEncode(r.Encode()) + "\n";
  return WriteFileAtomic(path, text, 0600);
}

StatusOr<bool> KeeperStore::IsAppliancePoint(const crypto::Point& r) const {
  std::string path = dir_ + "/appliance_points";
  if (!std::filesystem::exists(path)) return false;
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  return text.find(HexEncode(r.Encode())) != std::string::npos;
}

StatusOr<std::vector<crypto::Point>> KeeperStore::AppliancePoints() const {
  std::vector<crypto::Point> out;
  std::string path = dir_ + "/appliance_points";
  if (!std::filesystem::exists(path)) return out;
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  for (size_t p = 0; p < text.size();) {
    size_t nl = text.find('\n', p);
    std::string line = text.substr(p, nl == std::string::npos ? std::string::npos : nl - p);
    p = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    ASSIGN_OR_RETURN(Bytes b, HexDecode(line));
    ASSIGN_OR_RETURN(crypto::Point r, crypto::Point::Decode(b));
    out.push_back(r);
  }
  return out;
}

std::string KeeperStore::EscrowPath(const std::string& fp, const std::string& keeper_id) const {
  return dir_ + "/escrow/" + fp + "/" + keeper_id + ".blob";
}

StatusOr<SecretBytes> ResolvePassphrase(const std::string& file) {
  if (!file.empty()) {
    ASSIGN_OR_RETURN(std::string p, ReadPassphraseFile(file));
    SecretBytes s = SecretBytes::CopyFrom(p);
    WipeBytes(p);
    return s;
  }
  const char* env = std::getenv("CUSTOS_KEEPER_PASSPHRASE");
  if (env == nullptr || *env == '\0')
    return InvalidArgument(
        "no keeper passphrase: pass --passphrase-file or set CUSTOS_KEEPER_PASSPHRASE");
  return SecretBytes::CopyFrom(std::string_view(env));
}

}  // namespace custos::keeper
