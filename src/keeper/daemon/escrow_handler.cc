#include "keeper/daemon/escrow_handler.h"

#include <filesystem>
#include <vector>

#include "common/file.h"
#include "crypto/hash.h"
#include "keeper/daemon/escrow.h"

namespace custos::keeper {

using custody::CustodyDescriptor;
using custody::Domain;
using nlohmann::json;

namespace {
constexpr char kLegacyEscrow[] =
    "escrow blob version 1 carries no recovery verifier and is no longer stored or served: "
    "re-export it "
    "with this release (custos keeper escrow export)";
}  // namespace

StatusOr<json> EscrowHandler::Put(const json& body) {
  KeeperStore& store = ctx_.store();
  if (store.domain() != Domain::kProvider)
    return FailedPrecondition("escrow blobs are held by provider keepers");
  ASSIGN_OR_RETURN(Bytes blob_bytes, GetBase64(body, "blob"));
  ASSIGN_OR_RETURN(Bytes sig, GetHex(body, "sig"));
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(blob_bytes));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  ASSIGN_OR_RETURN(CustodyDescriptor custody, ctx_.ActiveCustody());
  if (blob.custody_fp != custody.Fingerprint())
    return FailedPrecondition("escrow blob belongs to another custody");
  const custody::KeeperRecord* owner = custody.FindKeeper(blob.keeper_id);
  if (owner == nullptr || owner->domain != Domain::kCustomer)
    return PermissionDenied("escrow blob is not from a customer keeper of this custody");
  if (!crypto::VerifyingKey::FromPoint(owner->identity_key)
           .Verify(EscrowUploadMessage(blob_bytes), sig)
           .ok())
    return PermissionDenied("escrow upload signature does not verify");
  std::string path = store.EscrowPath(custody.FingerprintHex(), blob.keeper_id);
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return Unavailable("cannot create escrow directory");
  RETURN_IF_ERROR(WriteFileAtomic(path, blob_bytes, 0600));
  RETURN_IF_ERROR(store.audit().Append(
      "escrow.store", {{"keeper", blob.keeper_id},
                       {"custody", custody.FingerprintHex()},
                       {"blob_hash", HexEncode(crypto::Sha256Bytes(blob_bytes))}}));
  return json{{"stored", blob.keeper_id}};
}

StatusOr<std::pair<std::string, Bytes>> EscrowHandler::Locate(const json& body) const {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(Bytes fp, GetHex(body, "custody_fp"));
  std::string keeper_id;
  if (body.contains("keeper_id")) {
    ASSIGN_OR_RETURN(keeper_id, GetString(body, "keeper_id"));
  }
  std::string dir = store.dir() + "/escrow/" + HexEncode(fp);
  if (keeper_id.empty()) {
    // A blob being written meanwhile is "ID.blob.tmp-N" (WriteFileAtomic): not counted here.
    std::vector<std::string> ids;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(dir, ec))
      if (e.path().extension() == ".blob") ids.push_back(e.path().stem().string());
    if (ids.empty()) return NotFound("no escrow blob for this custody");
    if (ids.size() > 1)
      return InvalidArgument("several escrow blobs for this custody; name the keeper");
    keeper_id = ids[0];
  }
  if (keeper_id.empty() || keeper_id.size() > 64 || keeper_id.find('/') != std::string::npos ||
      keeper_id.find("..") != std::string::npos)
    return InvalidArgument("bad keeper id");
  auto blob = ReadFileBytes(store.EscrowPath(HexEncode(fp), keeper_id));
  if (!blob.ok()) return NotFound("no escrow blob for keeper " + keeper_id);
  return std::make_pair(keeper_id, std::move(*blob));
}

StatusOr<json> EscrowHandler::Params(const json& body) {
  ASSIGN_OR_RETURN(auto found, Locate(body));
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(found.second));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  // Salt and cost are not secret: they let the recovering side derive its auth key. Neither
  // the auth key nor the ciphertext leaves without a proof.
  return json{{"keeper_id", found.first},
              {"provider", ctx_.store().id()},
              {"salt", HexEncode(blob.salt)},
              {"t_cost", blob.params.t_cost},
              {"m_cost_kib", blob.params.m_cost_kib},
              {"parallelism", blob.params.parallelism}};
}

StatusOr<json> EscrowHandler::Get(const json& body) {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(auto found, Locate(body));
  const std::string& keeper_id = found.first;
  ASSIGN_OR_RETURN(EscrowBlob blob, EscrowBlob::Decode(found.second));
  if (!blob.auth_key) return FailedPrecondition(kLegacyEscrow);
  std::string fp_hex = HexEncode(blob.custody_fp);
  // A blob is locked after kMaxEscrowFailures bad proofs in a window: online guessing of the
  // recovery secret gets a handful of tries an hour, each audited.
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t now = UnixNow();
  Failures& f = failures_[fp_hex + "/" + keeper_id];
  if (now >= f.window_start + kEscrowFailureWindowSeconds) f = Failures{now, 0};
  if (f.count >= kMaxEscrowFailures)
    return PermissionDenied("too many failed recovery attempts for keeper " + keeper_id +
                            "'s escrow blob: locked for " +
                            std::to_string(f.window_start + kEscrowFailureWindowSeconds - now) +
                            " s");
  auto refuse = [&](const Status& why) -> Status {
    ++f.count;
    (void)store.audit().Append("escrow.refused", {{"keeper", keeper_id},
                                                  {"custody", fp_hex},
                                                  {"reason", why.message()},
                                                  {"failures", f.count}});
    return why;
  };
  auto ts = GetUint(body, "timestamp");
  auto nonce = GetHex(body, "nonce");
  auto sig = GetHex(body, "sig");
  if (!ts.ok() || !nonce.ok() || !sig.ok() || nonce->size() != 16)
    return refuse(PermissionDenied(
        "escrow fetch needs a proof of the recovery secret (timestamp, nonce, sig): "
        "use custos keeper recover"));
  Bytes message = EscrowFetchMessage(blob.custody_fp, keeper_id, store.id(), *ts, *nonce);
  if (!crypto::VerifyingKey::FromPoint(*blob.auth_key).Verify(message, *sig).ok())
    return refuse(PermissionDenied("escrow fetch proof does not verify: wrong recovery secret"));
  RETURN_IF_ERROR(ctx_.replay().CheckFresh(*nonce, *ts));
  RETURN_IF_ERROR(store.audit().Append("escrow.fetch", {{"keeper", keeper_id},
                                                        {"custody", fp_hex},
                                                        {"nonce", HexEncode(*nonce)},
                                                        {"timestamp", *ts}}));
  f = Failures{now, 0};
  return json{{"keeper_id", keeper_id}, {"blob", Base64Encode(found.second)}};
}

}  // namespace custos::keeper
