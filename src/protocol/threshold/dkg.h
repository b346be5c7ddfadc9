// Distributed key generation of Gennaro, Jarecki, Krawczyk and Rabin (J. Cryptology 2007):
// Pedersen VSS with complaints fixes the qualified set QUAL before any public key material is
// revealed; Feldman commitments then extract y = sum_{i in QUAL} a_i0, reconstructing in public
// the polynomial of any qualified dealer whose Feldman commitments are inconsistent.
//
// This file is the pure per-participant state machine: no networking, no signatures (the
// keeper signs each message; the coordinator relays). Rounds (docs/protocol.md, "DKG"):
//   1 Deal            -> DealMessage (Pedersen commitments, HPKE-encrypted shares)
//   2 ProcessDeals    -> ComplaintMessage
//   3 ProcessComplaints -> ResponseMessage (dealer reveals shares that were complained about)
//   4 ProcessResponses  -> FeldmanMessage (QUAL is now fixed)
//   5 ProcessFeldman    -> ExtractionComplaintMessage
//   6 ProcessExtractionComplaints -> RevealMessage
//   7 Finalize          -> DkgResult
// Every honest participant that sees the same messages computes the same QUAL, public key and
// verification keys; the custody descriptor signature step checks that they did.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "crypto/hpke.h"
#include "crypto/p256.h"
#include "protocol/threshold/shamir.h"

namespace custos::threshold {

struct DkgParticipantInfo {
  uint32_t index = 0;     // 1..n
  crypto::Point hpke_key;  // receives this participant's private shares
};

struct DkgParams {
  Bytes session_id;  // 16..64 random bytes chosen by the coordinator
  uint32_t threshold = 0;
  std::vector<DkgParticipantInfo> participants;
  Status Validate() const;
};

struct DealMessage {
  uint32_t dealer = 0;
  std::vector<crypto::Point> commitments;   // Pedersen C_0..C_{t-1}
  std::map<uint32_t, Bytes> encrypted_shares;  // recipient index -> HPKE(enc || ct)
  Bytes Encode() const;
  static StatusOr<DealMessage> Decode(ByteSpan b);
};

// A revealed pair (s, s') of a dealer's sharing polynomials at one index.
struct RevealedShare {
  uint32_t other = 0;  // the complainer (in responses) or the dealer (in complaints/reveals)
  crypto::Scalar s;
  crypto::Scalar s_blind;
};

struct ComplaintMessage {
  uint32_t complainer = 0;
  std::vector<uint32_t> against;  // dealers whose share did not verify
  Bytes Encode() const;
  static StatusOr<ComplaintMessage> Decode(ByteSpan b);
};

struct ResponseMessage {
  uint32_t dealer = 0;
  std::vector<RevealedShare> revealed;  // other = complainer
  Bytes Encode() const;
  static StatusOr<ResponseMessage> Decode(ByteSpan b);
};

struct FeldmanMessage {
  uint32_t dealer = 0;
  std::vector<crypto::Point> commitments;  // A_0..A_{t-1}
  Bytes Encode() const;
  static StatusOr<FeldmanMessage> Decode(ByteSpan b);
};

struct ExtractionComplaintMessage {
  uint32_t complainer = 0;
  std::vector<RevealedShare> evidence;  // other = dealer; the share that fails Feldman
  Bytes Encode() const;
  static StatusOr<ExtractionComplaintMessage> Decode(ByteSpan b);
};

struct RevealMessage {
  uint32_t revealer = 0;
  std::vector<RevealedShare> shares;  // other = dealer being reconstructed
  Bytes Encode() const;
  static StatusOr<RevealMessage> Decode(ByteSpan b);
};

struct DkgResult {
  std::vector<uint32_t> qual;
  std::map<uint32_t, std::string> disqualified;  // index -> reason
  std::map<uint32_t, std::string> reconstructed;  // QUAL dealers whose secret became public
  crypto::Point public_key;                       // Y_domain
  std::map<uint32_t, crypto::Point> verification_keys;  // X_j for every participant
  crypto::Scalar share;                                 // x_me (secret)
};

// DkgBehavior exists so tests can run a cheating dealer through the real protocol.
enum class DkgBehavior { kHonest, kDealBadShares };

class DkgParticipant {
 public:
  static StatusOr<DkgParticipant> Create(DkgParams params, uint32_t my_index,
                                         crypto::hpke::PrivateKey my_hpke_key,
                                         DkgBehavior behavior = DkgBehavior::kHonest);

  StatusOr<DealMessage> Deal();
  StatusOr<ComplaintMessage> ProcessDeals(const std::vector<DealMessage>& deals);
  StatusOr<ResponseMessage> ProcessComplaints(const std::vector<ComplaintMessage>& complaints);
  StatusOr<FeldmanMessage> ProcessResponses(const std::vector<ResponseMessage>& responses);
  StatusOr<ExtractionComplaintMessage> ProcessFeldman(const std::vector<FeldmanMessage>& msgs);
  StatusOr<RevealMessage> ProcessExtractionComplaints(
      const std::vector<ExtractionComplaintMessage>& msgs);
  StatusOr<DkgResult> Finalize(const std::vector<RevealMessage>& reveals);

  uint32_t index() const { return me_; }
  const DkgParams& params() const { return params_; }

 private:
  DkgParticipant(DkgParams params, uint32_t me, crypto::hpke::PrivateKey key, DkgBehavior b);
  Status ExpectRound(int round);
  bool IsParticipant(uint32_t i) const;
  Bytes ShareInfo(uint32_t dealer, uint32_t recipient) const;

  DkgParams params_;
  uint32_t me_;
  crypto::hpke::PrivateKey hpke_key_;
  DkgBehavior behavior_;
  int round_ = 0;

  std::optional<Polynomial> f_, f_blind_;
  std::map<uint32_t, std::vector<crypto::Point>> pedersen_;  // dealer -> C
  std::map<uint32_t, std::pair<crypto::Scalar, crypto::Scalar>> my_shares_;  // dealer -> (s, s')
  std::map<uint32_t, std::set<uint32_t>> complaints_;  // dealer -> complainers
  std::map<uint32_t, std::string> disqualified_;
  std::vector<uint32_t> qual_;
  std::map<uint32_t, std::vector<crypto::Point>> feldman_;  // dealer -> A (valid ones)
  std::set<uint32_t> to_reconstruct_;
  std::map<uint32_t, std::string> reconstruct_reason_;
};

}  // namespace custos::threshold
