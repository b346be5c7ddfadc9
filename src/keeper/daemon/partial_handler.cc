#include "keeper/daemon/partial_handler.h"

#include "crypto/hash.h"
#include "crypto/hpke.h"
#include "protocol/threshold/partial.h"

namespace custos::keeper {

using nlohmann::json;

StatusOr<json> PartialHandler::Partial(const json& body) {
  KeeperStore& store = ctx_.store();
  ASSIGN_OR_RETURN(Bytes encoded, GetBase64(body, "request"));
  ASSIGN_OR_RETURN(Bytes sig, GetHex(body, "sig"));
  PartialRequest::PointEncodings wire;
  ASSIGN_OR_RETURN(PartialRequest req, PartialRequest::Decode(encoded, &wire));
  if (req.keeper_id != store.id())
    return InvalidArgument("request is addressed to keeper " + req.keeper_id);
  // Signature first, so the answer does not tell a stranger whether a key is allowlisted.
  std::string client_name;
  RETURN_IF_ERROR(ctx_.AuthenticateClient(req.client_key, PartialRequest::SignedBytes(encoded), sig,
                                          &client_name));
  ASSIGN_OR_RETURN(bool appliance_point, store.IsAppliancePoint(req.r));
  if (appliance_point)
    return PermissionDenied(
        "R is an appliance envelope's point: its partials go only to attested enclaves");
  ASSIGN_OR_RETURN(const ActiveCustodyView* custody, ctx_.ActiveView());
  if (req.custody_fp != custody->fingerprint)
    return FailedPrecondition("request names custody " + HexEncode(req.custody_fp) +
                              " but this keeper serves " + custody->fingerprint_hex);
  RETURN_IF_ERROR(ctx_.replay().CheckFresh(req.nonce, req.timestamp));
  const ShareSlot& slot = *store.secrets().active;
  const custody::KeeperRecord* me = custody->descriptor.FindKeeper(store.id());
  if (me == nullptr) return FailedPrecondition("active custody does not list this keeper");
  Bytes request_hash = crypto::Sha256Bytes(encoded);
  // The release is in the audit log before any answer leaves (durable at once, or within the
  // group-commit window: audit_log.h).
  RETURN_IF_ERROR(
      store.audit().Append("release",
                           {{"client", client_name},
                            {"client_key", HexEncode(wire.client_key)},
                            {"custody", custody->fingerprint_hex},
                            {"r", HexEncode(wire.r)},
                            {"context_hash", HexEncode(crypto::Sha256Bytes(req.context))},
                            {"request_hash", HexEncode(request_hash)},
                            {"nonce", HexEncode(req.nonce)},
                            {"timestamp", req.timestamp}},
                           AuditWait::kPerPolicy));
  threshold::PartialDecryption partial = threshold::ComputePartial(
      slot.index, slot.share, custody->own_verification_key, req.r, wire.r, request_hash);
  if (const Misbehaviour* cheat = ctx_.misbehaviour()) cheat->TamperPartial(partial);
  ASSIGN_OR_RETURN(Bytes sealed,
                   crypto::hpke::SealBase(req.requester_key, PartialResponseInfo(encoded),
                                          AsBytes(store.id()), partial.Encode()));
  return json{{"keeper", store.id()}, {"sealed", Base64Encode(sealed)}};
}

}  // namespace custos::keeper
