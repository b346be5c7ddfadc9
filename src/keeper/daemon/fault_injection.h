// Fault injection: a test seam that makes a keeper cheat on purpose, so the tests can run
// cheaters through the real protocol and check that verifiers name and exclude them
// (tests/e2e, docs/threat-model.md "Keeper"). A misbehaving keeper only harms itself: its
// messages are refused and it is named, never trusted.
//
// Production code consults a Misbehaviour only through a pointer that is null unless
// CUSTOS_FAULT_INJECTION is set; the handlers hold no fault flag of their own.
#pragma once

#include <memory>

#include "common/status.h"
#include "protocol/threshold/dkg.h"
#include "protocol/threshold/partial.h"

namespace custos::keeper {

// Misbehaviour is one way for a keeper to cheat. Its hooks are const and called from the
// handlers' threads, so an implementation must be safe to call concurrently.
class Misbehaviour {
 public:
  virtual ~Misbehaviour() = default;
  // DkgDealing says how this keeper deals in a DKG (kDealBadShares: shares that fail the
  // Pedersen check, so the others complain and disqualify it).
  virtual threshold::DkgBehavior DkgDealing() const = 0;
  // DealBadReshareShares makes a reshare deal carry shares inconsistent with its commitments.
  virtual bool DealBadReshareShares() const = 0;
  // TamperPartial changes a partial decryption after it is computed, before it is sealed for
  // the requester or an enclave (its DLEQ proof then fails).
  virtual void TamperPartial(threshold::PartialDecryption& partial) const = 0;
};

// MisbehaviourFromEnv reads CUSTOS_FAULT_INJECTION: unset or empty gives a null pointer (the
// production case); "dkg-bad-shares", "bad-partial" and "reshare-bad-shares" each give one
// fault; any other value is kInvalidArgument.
StatusOr<std::shared_ptr<const Misbehaviour>> MisbehaviourFromEnv();

}  // namespace custos::keeper
