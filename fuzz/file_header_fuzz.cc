// Fuzz target: the dual-control file header parser and the decrypt path that follows it.
// Arbitrary bytes are parsed as a header; a header that parses must re-encode to the same bytes,
// and unwrapping its key with an unrelated point must fail (never crash, never succeed).
#include <cstdint>
#include <cstdlib>

#include "crypto/p256.h"
#include "protocol/envelope/dual_control.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos;
  auto h = files::DualControlHeader::Decode(ByteSpan(data, size));
  if (!h.ok()) return 0;
  Bytes again = h->Encode();
  if (again.size() != files::kDualControlHeaderSize ||
      !std::equal(again.begin(), again.end(), data))
    std::abort();
  static const crypto::Point kOther = crypto::Point::BaseMul(crypto::Scalar::FromUint(7));
  if (files::UnwrapDek(*h, kOther).ok()) std::abort();
  return 0;
}
