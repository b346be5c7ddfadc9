// Fuzzes the binary decoders of the threshold protocols: the six GJKR DKG round messages
// (src/protocol/threshold/dkg.h), ReshareDeal (reshare.h), PartialDecryption (partial.h) and DleqProof
// (dleq.h). The first input byte selects the decoder, the rest is the message. Every message a
// keeper relays or receives goes through one of these, so a decoder must never crash, and
// whatever it accepts must survive Encode -> Decode -> Encode unchanged. Formats without maps
// are also canonical: an accepted input must be exactly the encoding of what was decoded (no
// second spelling of one message). DealMessage and ReshareDeal keep their encrypted shares in
// a map keyed by recipient, so only their re-encoding is required to be stable.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "protocol/threshold/dkg.h"
#include "protocol/threshold/dleq.h"
#include "protocol/threshold/partial.h"
#include "protocol/threshold/reshare.h"

namespace custos::threshold {
namespace {

template <typename Message>
void CheckRoundTrip(ByteSpan in, bool canonical) {
  auto decoded = Message::Decode(in);
  if (!decoded.ok()) return;
  Bytes encoded = decoded->Encode();
  if (canonical && !std::equal(encoded.begin(), encoded.end(), in.begin(), in.end())) std::abort();
  auto again = Message::Decode(encoded);
  if (!again.ok()) std::abort();  // the encoder produced something its own decoder refuses
  if (again->Encode() != encoded) std::abort();
}

using Checker = void (*)(ByteSpan);

constexpr Checker kCheckers[] = {
    [](ByteSpan b) { CheckRoundTrip<DealMessage>(b, /*canonical=*/false); },
    [](ByteSpan b) { CheckRoundTrip<ComplaintMessage>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<ResponseMessage>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<FeldmanMessage>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<ExtractionComplaintMessage>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<RevealMessage>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<ReshareDeal>(b, /*canonical=*/false); },
    [](ByteSpan b) { CheckRoundTrip<PartialDecryption>(b, true); },
    [](ByteSpan b) { CheckRoundTrip<DleqProof>(b, true); },
};

}  // namespace
}  // namespace custos::threshold

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using custos::threshold::kCheckers;
  if (size == 0) return 0;
  constexpr size_t kCount = sizeof(kCheckers) / sizeof(kCheckers[0]);
  kCheckers[data[0] % kCount](custos::ByteSpan(data + 1, size - 1));
  return 0;
}
