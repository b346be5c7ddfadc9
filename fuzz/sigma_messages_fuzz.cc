// Fuzzes the SIGMA-I parsers (src/protocol/sigma/messages.h, channel.h): the three handshake message
// decoders, the two sealed authentication payloads, and SecureChannel::Open under fixed keys.
// The first byte selects the parser. Decoders must be canonical (an accepted input is exactly
// the encoding of what was decoded). Open must refuse everything not sealed under its keys: a
// fuzzer-made record that authenticates would be a forgery, so it aborts.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "common/secret.h"
#include "protocol/sigma/channel.h"
#include "protocol/sigma/messages.h"

namespace custos::sigma {
namespace {

bool SameBytes(ByteSpan a, ByteSpan b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

template <typename T>
void FuzzDecoder(ByteSpan in) {
  auto m = T::Decode(in);
  if (!m.ok()) return;
  Bytes encoded = m->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = T::Decode(encoded);
  if (!again.ok() || again->Encode() != encoded) std::abort();
}

void FuzzRecordOpen(ByteSpan in) {
  static const SecretBytes k2e = SecretBytes::CopyFrom(Bytes(32, 0x11));
  static const SecretBytes e2k = SecretBytes::CopyFrom(Bytes(32, 0x22));
  auto channel = SecureChannel::Create(Role::kResponder, k2e, e2k);
  if (!channel.ok()) std::abort();
  auto pt = channel->Open(in);
  if (pt.ok()) std::abort();
  if (pt.status().code() != ErrorCode::kIntegrity) std::abort();
  // A refused record closes the channel for reading.
  if (channel->Open(in).status().code() != ErrorCode::kFailedPrecondition) std::abort();
  // A genuine record still round-trips on a fresh channel, and a one-byte change is refused.
  auto sender = SecureChannel::Create(Role::kInitiator, k2e, e2k);
  auto receiver = SecureChannel::Create(Role::kResponder, k2e, e2k);
  if (!sender.ok() || !receiver.ok()) std::abort();
  auto rec = sender->Seal(in.subspan(0, std::min<size_t>(in.size(), 256)));
  if (!rec.ok()) std::abort();
  Bytes bad = *rec;
  bad[in.empty() ? 0 : in[0] % bad.size()] ^= 0x01;
  if (receiver->Open(bad).ok()) std::abort();
  auto fresh = SecureChannel::Create(Role::kResponder, k2e, e2k);
  if (!fresh.ok()) std::abort();
  auto back = fresh->Open(*rec);
  if (!back.ok() || !SameBytes(*back, in.subspan(0, std::min<size_t>(in.size(), 256))))
    std::abort();
}

}  // namespace
}  // namespace custos::sigma

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::sigma;
  if (size == 0) return 0;
  custos::ByteSpan rest(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0:
      FuzzDecoder<Message1>(rest);
      break;
    case 1:
      FuzzDecoder<Message2>(rest);
      break;
    case 2:
      FuzzDecoder<Message3>(rest);
      break;
    case 3:
      FuzzDecoder<ResponderAuth>(rest);
      break;
    case 4:
      FuzzDecoder<InitiatorAuth>(rest);
      break;
    case 5:
      FuzzRecordOpen(rest);
      break;
  }
  return 0;
}
