#include "protocol/audit/verify.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace custos::audit {

nlohmann::json AuditReport::ToJson() const {
  nlohmann::json j = {{"intact", intact},         {"entries", entries},
                      {"signatures", signatures}, {"head_seq", head_seq},
                      {"head_hash", head_hash}};
  if (!intact) {
    j["failure"] = failure;
    j["failed_seq"] = failed_seq;
  }
  return j;
}

ChainVerifier::ChainVerifier(crypto::VerifyingKey audit_key)
    : key_(std::move(audit_key)), last_hash_(GenesisHash()) {
  report_.head_hash = HexEncode(last_hash_);
}

void ChainVerifier::ExpectHead(const Head& head) { expected_head_ = head; }

void ChainVerifier::Fail(uint64_t seq, std::string message) {
  report_.failed_seq = seq;
  report_.failure = "entry " + std::to_string(seq) + ": " + std::move(message);
}

bool ChainVerifier::Add(uint64_t seq, std::string_view entry, ByteSpan hash, ByteSpan signature) {
  if (!report_.failure.empty()) return false;
  ++report_.entries;
  const uint64_t expected = last_seq_ + 1;
  if (seq != expected) {
    if (last_seq_ == 0) {
      Fail(expected, "the log starts at seq " + std::to_string(seq) +
                         " instead of 1 (deleted or reordered)");
    } else {
      Fail(expected, "seq " + std::to_string(seq) + " follows " + std::to_string(last_seq_) +
                         (seq > expected ? " (deleted or reordered)" : " (duplicated or reordered)"));
    }
    return false;
  }
  // The previous hash is the recomputed one, never the stored one: the chain is rebuilt from
  // the entries' bytes alone.
  Bytes computed = EntryHash(last_hash_, seq, entry);
  if (!std::equal(computed.begin(), computed.end(), hash.begin(), hash.end())) {
    Fail(seq, "hash does not match (edited, inserted or reordered)");
    return false;
  }
  if (!signature.empty()) {
    if (signature.size() != crypto::kSignatureSize ||
        !key_.Verify(CheckpointMessage(seq, computed), signature).ok()) {
      Fail(seq, "signature does not verify");
      return false;
    }
    ++report_.signatures;
    report_.head_seq = seq;
    report_.head_hash = HexEncode(computed);
  }
  if (expected_head_ && expected_head_->seq == seq) {
    if (expected_head_->hash != computed) {
      Fail(seq, "hash differs from the expected head (the log was rewritten after it was "
                "recorded)");
      return false;
    }
    expected_head_seen_ = true;
  }
  last_seq_ = seq;
  last_hash_ = std::move(computed);
  last_signed_ = !signature.empty();
  return true;
}

AuditReport ChainVerifier::Finish() {
  if (report_.failure.empty() && !last_signed_) {
    // Only a signature vouches for the entries before it; whatever follows the last one could
    // have been written by anyone with access to the database.
    report_.failed_seq = report_.head_seq + 1;
    report_.failure = "unsigned tail from seq " + std::to_string(report_.failed_seq) +
                      ": entries written after the last signed head (seq " +
                      std::to_string(report_.head_seq) + ") cannot be trusted";
  }
  if (report_.failure.empty() && expected_head_ && expected_head_->seq != 0 &&
      !expected_head_seen_) {
    report_.failed_seq = expected_head_->seq;
    report_.failure = "the log ends at seq " + std::to_string(last_seq_) +
                      " before the expected head seq " + std::to_string(expected_head_->seq) +
                      " (truncated or rolled back)";
  }
  report_.intact = report_.failure.empty();
  return report_;
}

StatusOr<Head> ParseHead(std::string_view text) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos) return InvalidArgument("audit head: expected SEQ:HASH");
  Head head;
  std::string_view seq = text.substr(0, colon);
  auto [end, ec] = std::from_chars(seq.data(), seq.data() + seq.size(), head.seq);
  if (seq.empty() || ec != std::errc() || end != seq.data() + seq.size())
    return InvalidArgument("audit head: SEQ is not a decimal number");
  ASSIGN_OR_RETURN(head.hash, HexDecode(text.substr(colon + 1)));
  if (head.hash.size() != kHashSize) return InvalidArgument("audit head: HASH must be 32 bytes");
  return head;
}

}  // namespace custos::audit
