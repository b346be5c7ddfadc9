#include "keeper/daemon/custody_handler.h"

#include <optional>

namespace custos::keeper {

using custody::CustodyDescriptor;
using custody::Domain;
using nlohmann::json;

StatusOr<json> CustodyHandler::Info() {
  KeeperStore& store = ctx_.store();
  const KeeperSecrets& s = store.secrets();
  json j = {{"suite", 1},
            {"id", store.id()},
            {"domain", custody::DomainName(store.domain())},
            {"identity_key", HexEncode(s.identity.verifying_key().Encode())},
            {"hpke_key", HexEncode(s.hpke.public_key().Encode())},
            {"audit_entries", store.audit().size()}};
  if (s.active) {
    ASSIGN_OR_RETURN(auto c, CustodyDescriptor::Parse(s.active->custody_json));
    j["custody_fingerprint"] = c.FingerprintHex();
    j["index"] = s.active->index;
  } else {
    j["custody_fingerprint"] = nullptr;
  }
  return j;
}

StatusOr<json> CustodyHandler::Endorse(const json& body) {
  KeeperStore& store = ctx_.store();
  if (!body.contains("descriptor")) return InvalidArgument("missing 'descriptor'");
  ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::FromJson(body["descriptor"]));
  RETURN_IF_ERROR(d.CheckStructure());
  const custody::KeeperRecord* mine = d.FindKeeper(store.id());
  KeeperSecrets& secrets = store.secrets();
  std::string sid = HexEncode(d.ceremony_id);
  if (body.contains("session")) {
    ASSIGN_OR_RETURN(sid, GetString(body, "session"));
  }
  // Which check applies: a finished DKG session, a finished reshare this keeper received in, a
  // reshare it dealt in and leaves, or else a reshare of the other domain.
  std::optional<ShareSlot> slot;
  std::optional<Status> dealt;
  if (auto from_dkg = dkg_.EndorseFinished(sid, d, mine)) {
    ASSIGN_OR_RETURN(slot, std::move(*from_dkg));
  } else if (auto from_reshare = reshare_.EndorseFinished(sid, d, mine)) {
    ASSIGN_OR_RETURN(slot, std::move(*from_reshare));
  } else if (mine == nullptr && (dealt = reshare_.CheckDealtTransition(sid, d))) {
    RETURN_IF_ERROR(*dealt);
  } else {
    // A descriptor that replaces our active one without touching our domain: the other domain
    // reshared. Accept it only with the approval of a threshold of that domain's old keepers.
    ASSIGN_OR_RETURN(CustodyDescriptor active, ctx_.ActiveCustody());
    if (d.previous != active.Fingerprint())
      return FailedPrecondition("descriptor is not a successor of this keeper's custody");
    if (!SameDomain(d.domain(store.domain()), active.domain(store.domain())))
      return IntegrityError("descriptor changes this keeper's domain without a reshare session");
    if (mine == nullptr) return IntegrityError("descriptor does not list this keeper");
    Domain other = OtherDomain(store.domain());
    ASSIGN_OR_RETURN(CustodyDescriptor with_sigs, CustodyDescriptor::FromJson(body["descriptor"]));
    if (with_sigs.CountApprovals(active.domain(other)) < active.domain(other).threshold)
      return PermissionDenied(
          "a threshold of the reshared domain's current keepers has not "
          "approved this descriptor");
    slot = ShareSlot{d.ToJsonString(), secrets.active->index, secrets.active->share};
  }
  if (secrets.active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ctx_.ActiveCustody());
    if (!(active.public_key == d.public_key))
      return IntegrityError("descriptor changes the joint public key");
    if (d.previous != active.Fingerprint() || d.epoch != active.epoch + 1)
      return IntegrityError("descriptor is not the next epoch of this keeper's custody");
  }
  if (slot) {
    secrets.pending = std::move(slot);
    RETURN_IF_ERROR(store.SaveSecrets());
  }
  RETURN_IF_ERROR(store.audit().Append("custody.endorse",
                                       {{"fingerprint", d.FingerprintHex()}, {"epoch", d.epoch}}));
  return json{{"keeper", store.id()},
              {"signature", HexEncode(secrets.identity.Sign(d.SignatureMessage()))}};
}

StatusOr<json> CustodyHandler::Activate(const json& body) {
  KeeperStore& store = ctx_.store();
  if (!body.contains("descriptor")) return InvalidArgument("missing 'descriptor'");
  ASSIGN_OR_RETURN(CustodyDescriptor d, CustodyDescriptor::FromJson(body["descriptor"]));
  RETURN_IF_ERROR(d.Verify());
  KeeperSecrets& secrets = store.secrets();
  if (secrets.active) {
    ASSIGN_OR_RETURN(CustodyDescriptor active, ctx_.ActiveCustody());
    if (active.Fingerprint() == d.Fingerprint()) return json{{"status", "active"}};
    if (d.previous == active.Fingerprint() && d.FindKeeper(store.id()) == nullptr) {
      // Only a transition approved by a threshold of our domain's current keepers may make us
      // erase our share; anyone else's descriptor is refused.
      if (d.CountApprovals(active.domain(store.domain())) < active.domain(store.domain()).threshold)
        return PermissionDenied(
            "a threshold of this domain's keepers has not approved the "
            "descriptor that removes this keeper");
      // We were removed by a reshare: erase our share so it can never count again.
      secrets.active.reset();
      secrets.pending.reset();
      RETURN_IF_ERROR(store.SaveSecrets());
      RETURN_IF_ERROR(store.audit().Append(
          "custody.retire",
          {{"fingerprint", d.FingerprintHex()}, {"previous", active.FingerprintHex()}}));
      return json{{"status", "retired"}};
    }
  }
  if (!secrets.pending) return FailedPrecondition("keeper has not endorsed this descriptor");
  ASSIGN_OR_RETURN(CustodyDescriptor pending,
                   CustodyDescriptor::Parse(secrets.pending->custody_json));
  if (pending.Fingerprint() != d.Fingerprint())
    return IntegrityError("descriptor differs from the one this keeper endorsed");
  secrets.active = ShareSlot{d.ToJsonString(), secrets.pending->index, secrets.pending->share};
  secrets.pending.reset();
  RETURN_IF_ERROR(store.SaveSecrets());
  RETURN_IF_ERROR(store.audit().Append("custody.activate",
                                       {{"fingerprint", d.FingerprintHex()}, {"epoch", d.epoch}}));
  dkg_.ForgetAll();
  reshare_.Forget(HexEncode(d.ceremony_id));
  return json{{"status", "active"}};
}

}  // namespace custos::keeper
