#include "protocol/audit/chain.h"

#include "crypto/hash.h"

namespace custos::audit {

Bytes GenesisHash() { return Bytes(kHashSize, 0); }

Bytes EntryHash(ByteSpan previous_hash, uint64_t seq, std::string_view entry) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/audit-entry")).Raw(previous_hash).U64(seq).Var(entry);
  return crypto::Sha256Bytes(w.bytes());
}

Bytes CheckpointMessage(uint64_t seq, ByteSpan hash) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/audit-head")).U64(seq).Raw(hash);
  return w.Take();
}

Bytes LineMessage(ByteSpan run_id, uint64_t seq, ByteSpan hash) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/audit-line")).Raw(run_id).U64(seq).Raw(hash);
  return w.Take();
}

Bytes EncodeHead(uint64_t seq, ByteSpan hash) {
  ByteWriter w;
  w.U64(seq).Raw(hash);
  return w.Take();
}

StatusOr<Head> DecodeHead(ByteSpan encoded) {
  ByteReader r(encoded);
  Head h;
  ASSIGN_OR_RETURN(h.seq, r.U64("audit head seq"));
  ASSIGN_OR_RETURN(ByteSpan hash, r.Raw(kHashSize, "audit head hash"));
  h.hash.assign(hash.begin(), hash.end());
  if (r.remaining() != 0) return InvalidArgument("audit head: trailing bytes");
  return h;
}

}  // namespace custos::audit
