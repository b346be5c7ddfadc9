// Ceremony coordinator (`custos ceremony dkg|reshare`). The coordinator is untrusted: it only
// relays keeper-signed messages (private shares travel HPKE-encrypted to their recipient), and
// the outcome, custody.json, is valid only with the signature of every keeper it lists, each of
// which checks the descriptor against its own view first (docs/protocol.md, "DKG", "Resharing").
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "crypto/ecdsa.h"
#include "protocol/custody/custody.h"

namespace custos::ceremony {

struct DkgCeremonyOptions {
  std::vector<std::string> provider_urls, customer_urls;
  uint32_t provider_threshold = 1, customer_threshold = 1;
  // Admin client keys approving the DKG: each keeper starts only if one of them is an admin on
  // its own allowlist (one key per keeper operator, each allowed only on its own keeper).
  std::vector<const crypto::SigningKey*> admin_keys;
  std::string ca_file;
  std::ostream* log = nullptr;  // progress and named cheaters; may be null
};

// RunDkg runs both domains' GJKR DKGs, excludes (and names) any disqualified keeper by running
// that domain again without it, collects every keeper's endorsement, activates the descriptor
// on every keeper and returns it (fully signed and verified).
StatusOr<custody::CustodyDescriptor> RunDkg(const DkgCeremonyOptions& opts);

struct ReshareCeremonyOptions {
  custody::CustodyDescriptor current;
  custody::Domain domain = custody::Domain::kCustomer;
  std::vector<std::string> new_urls;
  uint32_t new_threshold = 1;
  // Admin client keys authorising the reshare; each old keeper needs one of its own admins.
  std::vector<const crypto::SigningKey*> admin_keys;
  // Appliances of this custody to keep: those named here and every one an old keeper released
  // to (its audit log), except `skip_appliances` (retired, or reachable only under another
  // address that is listed in `appliances`).
  std::vector<std::string> appliances, skip_appliances;
  std::string ca_file;
  std::ostream* log = nullptr;
};

// RunReshare re-deals one domain's secret to `new_urls` with `new_threshold`. Old keepers whose
// deal fails verification are named and left out of the quorum; removed keepers are told to
// erase their share. The joint public key does not change.
//
// No appliance may lose its root key: before any keeper commits, every appliance of this
// custody is checked (CheckApplianceSurvives) and the reshare is refused, with the reason, if
// one would be stranded; after activation each is handed the new descriptor (POST
// /v1/sys/custody; a failure there is only logged: keepers hand it over at their next release).
StatusOr<custody::CustodyDescriptor> RunReshare(const ReshareCeremonyOptions& opts);

// CheckApplianceSurvives reads an appliance's status and says whether it keeps its root key
// across a reshare of `current`: OK for a node that is not initialised or whose envelope's
// origin evidence binds the joint key; kFailedPrecondition, naming the cause, for a node that
// cannot be reached, serves another joint key, runs a core without custody updates, or holds
// legacy origin evidence (bound to one custody fingerprint). `initialized` is set when known.
Status CheckApplianceSurvives(const std::string& url, const custody::CustodyDescriptor& current,
                              const std::string& ca_file, bool* initialized);

}  // namespace custos::ceremony
