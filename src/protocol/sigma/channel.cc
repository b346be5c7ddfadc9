// SIGMA record layer; the format is specified in channel.h.
#include "protocol/sigma/channel.h"

#include <limits>

namespace custos::sigma {
namespace {

Bytes RecordNonce(uint64_t seq) {
  ByteWriter w;
  w.U32(0).U64(seq);
  return w.Take();
}

Bytes RecordAad(std::string_view label, uint64_t seq) {
  ByteWriter w;
  w.Raw(AsBytes(label)).U64(seq);
  return w.Take();
}

}  // namespace

StatusOr<SecureChannel> SecureChannel::Create(Role role, const SecretBytes& k2e,
                                              const SecretBytes& e2k) {
  if (k2e.size() != 32 || e2k.size() != 32)
    return InvalidArgument("sigma: record keys must be 32 bytes");
  ASSIGN_OR_RETURN(crypto::AesGcm k2e_aead, crypto::AesGcm::Create(k2e));
  ASSIGN_OR_RETURN(crypto::AesGcm e2k_aead, crypto::AesGcm::Create(e2k));
  if (role == Role::kInitiator)
    return SecureChannel(std::move(k2e_aead), std::move(e2k_aead), kLabelRecordK2e,
                         kLabelRecordE2k);
  return SecureChannel(std::move(e2k_aead), std::move(k2e_aead), kLabelRecordE2k, kLabelRecordK2e);
}

StatusOr<Bytes> SecureChannel::Seal(ByteSpan plaintext) {
  if (plaintext.size() > kMaxRecordPlaintext)
    return InvalidArgument("sigma: record plaintext too large");
  if (send_seq_ == std::numeric_limits<uint64_t>::max())
    return FailedPrecondition("sigma: send sequence number exhausted");
  const uint64_t seq = send_seq_;
  Bytes record(8 + plaintext.size() + crypto::kGcmTagSize);
  for (int i = 0; i < 8; ++i) record[i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
  RETURN_IF_ERROR(send_.Seal(RecordNonce(seq), plaintext, RecordAad(send_label_, seq),
                             std::span<uint8_t>(record).subspan(8)));
  ++send_seq_;
  return record;
}

StatusOr<ByteSpan> SecureChannel::CheckRecord(ByteSpan record) {
  if (recv_broken_) return FailedPrecondition("sigma: channel closed after a refused record");
  recv_broken_ = true;  // cleared below only when the record authenticates
  if (record.size() < kRecordOverhead) return IntegrityError("sigma: record truncated");
  if (record.size() > kMaxRecordPlaintext + kRecordOverhead)
    return IntegrityError("sigma: record too large");
  if (recv_seq_ == std::numeric_limits<uint64_t>::max())
    return IntegrityError("sigma: receive sequence number exhausted");
  uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq = (seq << 8) | record[i];
  if (seq != recv_seq_) return IntegrityError("sigma: record out of sequence");
  return record.subspan(8);
}

StatusOr<Bytes> SecureChannel::Open(ByteSpan record) {
  ASSIGN_OR_RETURN(ByteSpan ct, CheckRecord(record));
  auto pt = recv_.Open(RecordNonce(recv_seq_), ct, RecordAad(recv_label_, recv_seq_));
  if (!pt.ok()) return IntegrityError("sigma: record does not authenticate");
  ++recv_seq_;
  recv_broken_ = false;
  return pt;
}

StatusOr<SecretBytes> SecureChannel::OpenSecret(ByteSpan record) {
  ASSIGN_OR_RETURN(ByteSpan ct, CheckRecord(record));
  auto pt = recv_.OpenSecret(RecordNonce(recv_seq_), ct, RecordAad(recv_label_, recv_seq_));
  if (!pt.ok()) return IntegrityError("sigma: record does not authenticate");
  ++recv_seq_;
  recv_broken_ = false;
  return pt;
}

}  // namespace custos::sigma
