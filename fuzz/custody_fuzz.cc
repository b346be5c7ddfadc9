// Fuzzes the custody descriptor parser (src/protocol/custody/custody.h). custody.json reaches keepers in
// endorse/activate/reshare requests and the CLI from disk, so Parse, CheckStructure and Verify
// must never crash on any text. A descriptor that parses must also survive its own
// serialization: ToJsonString -> Parse gives the same fingerprint and the same signatures, and
// the verdicts of CheckStructure and Verify do not change.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "protocol/custody/custody.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using custos::custody::CustodyDescriptor;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = CustodyDescriptor::Parse(text);
  if (!parsed.ok()) return 0;
  const CustodyDescriptor& d = *parsed;
  bool structure_ok = d.CheckStructure().ok();
  bool verify_ok = d.Verify().ok();
  if (verify_ok && !structure_ok) std::abort();  // Verify includes CheckStructure
  (void)d.FindKeeper("provider-1");
  (void)d.AllKeepers();

  auto again = CustodyDescriptor::Parse(d.ToJsonString());
  if (!again.ok()) std::abort();  // our own output must parse
  if (again->Fingerprint() != d.Fingerprint()) std::abort();
  if (again->signatures != d.signatures) std::abort();
  if (again->CheckStructure().ok() != structure_ok) std::abort();
  if (again->Verify().ok() != verify_ok) std::abort();
  return 0;
}
