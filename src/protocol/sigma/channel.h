// SIGMA record layer: the secure channel a completed SIGMA-I handshake yields (messages.h;
// docs/protocol.md, "SIGMA-I records").
//
//   record = u64 seq || AES-256-GCM(key_dir, nonce = 0^4 || u64 seq,
//                                   aad = label_dir || u64 seq, plaintext)
//   key_dir / label_dir: keeper -> enclave  k2e, "custos/v1/sigma/record/k2e"
//                        enclave -> keeper  e2k, "custos/v1/sigma/record/e2k"
//
// Each direction counts its records from 0. Open accepts only the next expected sequence
// number, so a replayed, reordered or dropped-then-continued record is refused, as is any
// tampering; every refusal is kIntegrity and closes the channel for reading (the peer must run a
// new handshake), so an attacker gets no second try against the same receive state.
#pragma once

#include <optional>
#include <string_view>

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/aead.h"

namespace custos::sigma {

// Role says which end of the session a SecureChannel is.
enum class Role { kInitiator, kResponder };

// Record labels (AAD prefixes), byte-exact as in the comment above.
inline constexpr std::string_view kLabelRecordK2e = "custos/v1/sigma/record/k2e";
inline constexpr std::string_view kLabelRecordE2k = "custos/v1/sigma/record/e2k";
// kMaxRecordPlaintext bounds one record's plaintext (16 MiB).
inline constexpr size_t kMaxRecordPlaintext = size_t{1} << 24;
// kRecordOverhead is the size of a record minus its plaintext (sequence number and tag).
inline constexpr size_t kRecordOverhead = 8 + crypto::kGcmTagSize;

// SecureChannel seals records to the peer and opens records from it. It owns its two AEAD key
// schedules (wiped on destruction). Not thread-safe: one sender and one receiver at a time, or
// external locking.
class SecureChannel {
 public:
  // Create builds the `role` end from the two 32-byte direction keys of messages.h. The
  // handshake calls it; tests and fuzzers may too. The keys are copied into the AEAD contexts.
  static StatusOr<SecureChannel> Create(Role role, const SecretBytes& k2e, const SecretBytes& e2k);
  SecureChannel(SecureChannel&&) noexcept = default;
  SecureChannel& operator=(SecureChannel&&) noexcept = default;

  // Seal returns the next record carrying `plaintext`. Fails (kInvalidArgument) above
  // kMaxRecordPlaintext, (kFailedPrecondition) once the send sequence number is exhausted.
  StatusOr<Bytes> Seal(ByteSpan plaintext);
  // Open authenticates the next record from the peer and returns its plaintext. kIntegrity for a
  // wrong sequence number ("sigma: record out of sequence") or a tag that does not verify
  // ("sigma: record does not authenticate"); after any refusal every later Open fails with
  // kFailedPrecondition.
  StatusOr<Bytes> Open(ByteSpan record);
  // OpenSecret is Open for plaintexts that are key material.
  StatusOr<SecretBytes> OpenSecret(ByteSpan record);

  // send_sequence / receive_sequence are the next sequence numbers (public values).
  uint64_t send_sequence() const { return send_seq_; }
  uint64_t receive_sequence() const { return recv_seq_; }

 private:
  SecureChannel(crypto::AesGcm send, crypto::AesGcm recv, std::string_view send_label,
                std::string_view recv_label)
      : send_(std::move(send)),
        recv_(std::move(recv)),
        send_label_(send_label),
        recv_label_(recv_label) {}
  // CheckRecord validates the header of `record` and returns the ciphertext part.
  StatusOr<ByteSpan> CheckRecord(ByteSpan record);

  crypto::AesGcm send_;
  crypto::AesGcm recv_;
  std::string_view send_label_;
  std::string_view recv_label_;
  uint64_t send_seq_ = 0;
  uint64_t recv_seq_ = 0;
  bool recv_broken_ = false;
};

}  // namespace custos::sigma
