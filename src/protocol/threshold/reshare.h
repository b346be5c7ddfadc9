// Resharing a domain's secret to a new keeper set and threshold (Desmedt-Jajodia style, with
// Feldman verification; docs/protocol.md, "Resharing"). Each old keeper i of a quorum Q deals
// its share x_i with a fresh polynomial g_i of the new degree (g_i(0) = x_i); the commitment
// A_i0 must equal its published verification key X_i, so nobody can change the secret.
// New keeper j takes x'_j = sum_{i in Q} lambda_i^Q * g_i(j). The domain public key is
// unchanged; shares of the old polynomial do not combine with the new ones.
#pragma once

#include <map>
#include <vector>

#include "common/bytes.h"
#include "crypto/hpke.h"
#include "protocol/threshold/shamir.h"

namespace custos::threshold {

struct ReshareDeal {
  uint32_t dealer = 0;                          // old index
  std::vector<crypto::Point> commitments;       // Feldman A_0..A_{t'-1}
  std::map<uint32_t, Bytes> encrypted_shares;   // new index -> HPKE(enc || ct)
  Bytes Encode() const;
  static StatusOr<ReshareDeal> Decode(ByteSpan b);
};

struct ReshareRecipient {
  uint32_t index = 0;  // new index
  crypto::Point hpke_key;
};

// DealReshare is run by an old keeper. `corrupt` deals shares that fail verification (tests).
StatusOr<ReshareDeal> DealReshare(ByteSpan session_id, uint32_t old_index,
                                  const crypto::Scalar& old_share, uint32_t new_threshold,
                                  const std::vector<ReshareRecipient>& recipients,
                                  bool corrupt = false);

struct ReshareResult {
  crypto::Scalar share;                                 // x'_me (secret)
  std::map<uint32_t, crypto::Point> verification_keys;  // X'_j for every new keeper
};

// ReshareReceiver is run by a new keeper.
class ReshareReceiver {
 public:
  // `old_keys` maps old indices to X_i; `public_key` is the domain key Y_d (must not change).
  ReshareReceiver(Bytes session_id, uint32_t my_index, crypto::hpke::PrivateKey hpke_key,
                  uint32_t old_threshold, uint32_t new_threshold,
                  std::vector<uint32_t> new_indices, std::map<uint32_t, crypto::Point> old_keys,
                  crypto::Point public_key);
  // ProcessDeals verifies every deal and returns the old indices whose deal is bad for us.
  StatusOr<std::vector<uint32_t>> ProcessDeals(const std::vector<ReshareDeal>& deals);
  // Finalize combines the deals of quorum `q` (exactly old_threshold good dealers).
  StatusOr<ReshareResult> Finalize(const std::vector<uint32_t>& q);

 private:
  Bytes session_id_;
  uint32_t me_;
  crypto::hpke::PrivateKey hpke_key_;
  uint32_t old_threshold_, new_threshold_;
  std::vector<uint32_t> new_indices_;
  std::map<uint32_t, crypto::Point> old_keys_;
  crypto::Point public_key_;
  std::map<uint32_t, std::vector<crypto::Point>> commitments_;
  std::map<uint32_t, crypto::Scalar> shares_;
};

// ReshareShareInfo is the HPKE info string binding an encrypted share to its session and slot.
Bytes ReshareShareInfo(ByteSpan session_id, uint32_t dealer, uint32_t recipient);

}  // namespace custos::threshold
