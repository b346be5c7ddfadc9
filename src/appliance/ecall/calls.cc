#include "appliance/ecall/calls.h"

namespace custos::ecall {

Status DecodeField(ByteSpan in, Bytes* out) {
  out->assign(in.begin(), in.end());
  return Status::Ok();
}

Status DecodeField(ByteSpan in, std::string* out) {
  *out = ToString(in);
  return Status::Ok();
}

Status DecodeField(ByteSpan in, uint32_t* out) {
  if (in.size() != 4) return InvalidArgument("must be a 4-byte integer");
  ByteReader r(in);
  ASSIGN_OR_RETURN(*out, r.U32("u32"));
  return Status::Ok();
}

Status DecodeField(ByteSpan in, bool* out) {
  if (in.size() != 1 || in[0] > 1) return InvalidArgument("must be one byte, 0 or 1");
  *out = in[0] == 1;
  return Status::Ok();
}

Status DecodeField(ByteSpan in, KeyRef* out) {
  ASSIGN_OR_RETURN(*out, KeyRef::Decode(in));
  return Status::Ok();
}

Status DecodeField(ByteSpan in, EncryptionContext* out) {
  ASSIGN_OR_RETURN(*out, DecodeEncryptionContext(in));
  return Status::Ok();
}

Status DecodeField(ByteSpan in, WipedBuffer* out) {
  *out = WipedBuffer::CopyOf(in);
  return Status::Ok();
}

}  // namespace custos::ecall
