// The requester side of partial decryption (docs/protocol.md, "Partial decryption"): asks
// keepers of both domains for D_i = x_i*R over signed requests, opens each HPKE-sealed answer,
// verifies every DLEQ proof against custody.json, names any keeper whose answer fails and asks
// another, then combines each domain with Lagrange at 0 and adds the domains: S = y*R.
// Only the requester learns S.
#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "crypto/ecdsa.h"
#include "protocol/custody/custody.h"

namespace custos::requester {

struct CollectOptions {
  const custody::CustodyDescriptor* custody = nullptr;  // verified by the caller
  const crypto::SigningKey* client_key = nullptr;
  // keeper_ids restricts which keepers are asked (in that order); empty = every keeper.
  std::vector<std::string> keeper_ids;
  // url_override replaces a keeper's URL from custody.json (e.g. a recovered keeper).
  std::map<std::string, std::string> url_override;
  std::string ca_file;
  std::ostream* log = nullptr;  // names keepers that failed and why
};

// CollectSharedPoint returns S = y*R, or an error saying which domain fell short and why each
// keeper asked failed. `context` names what is decrypted (e.g. the file header digest).
StatusOr<crypto::Point> CollectSharedPoint(const CollectOptions& opts, const crypto::Point& r,
                                           ByteSpan context);

}  // namespace custos::requester
