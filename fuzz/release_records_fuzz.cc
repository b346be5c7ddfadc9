// Fuzzes the unseal and join record decoders and the envelope origin file (src/protocol/sigma/release.h). These are the plaintexts of
// SIGMA records: a keeper or a joining enclave authenticates first, but an authenticated peer is
// still an untrusted author of these bytes, so no decoder may crash on any input. Every input
// is offered to every decoder; each one checks the type byte first, so at most one accepts, and
// only the one RecordType names. An accepted record must be canonical (its encoding is exactly
// the input) and decode again to the same value.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "common/secret.h"
#include "protocol/sigma/release.h"

namespace custos::sigma {
namespace {

bool SameBytes(ByteSpan a, ByteSpan b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end());
}

// Accepted counts the decoders that accepted the input, and checks the accepting decoder is
// the one the type byte names.
struct Accepted {
  int count = 0;
  void Add(ByteSpan in, ReleaseRecord type) {
    ++count;
    auto t = RecordType(in);
    if (!t.ok() || *t != type) std::abort();
  }
};

void FuzzUnsealRequest(ByteSpan in, Accepted& accepted) {
  auto u = UnsealRequest::Decode(in);
  if (!u.ok()) return;
  accepted.Add(in, ReleaseRecord::kUnsealRequest);
  if (u->custody_fp.size() != 32 || u->envelope_digest.size() != 32) std::abort();
  if (u->r.IsIdentity()) std::abort();
  Bytes encoded = u->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = UnsealRequest::Decode(encoded);
  if (!again.ok() || again->custody_fp != u->custody_fp || !(again->r == u->r) ||
      again->envelope_digest != u->envelope_digest)
    std::abort();
}

void FuzzPartialRelease(ByteSpan in, Accepted& accepted) {
  auto p = DecodePartialRelease(in);
  if (!p.ok()) return;
  accepted.Add(in, ReleaseRecord::kPartialRelease);
  if (p->d.IsIdentity()) std::abort();
  Bytes encoded = EncodePartialRelease(*p);
  if (!SameBytes(encoded, in)) std::abort();
  auto again = DecodePartialRelease(encoded);
  if (!again.ok() || again->index != p->index || !(again->d == p->d) ||
      !(again->proof.c == p->proof.c) || !(again->proof.z == p->proof.z))
    std::abort();
}

void FuzzUnsealProgress(ByteSpan in, Accepted& accepted) {
  auto p = UnsealProgress::Decode(in);
  if (!p.ok()) return;
  accepted.Add(in, ReleaseRecord::kUnsealProgress);
  Bytes encoded = p->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = UnsealProgress::Decode(encoded);
  if (!again.ok() || again->unsealed != p->unsealed || again->provider != p->provider ||
      again->customer != p->customer)
    std::abort();
}

void FuzzJoinRequest(ByteSpan in, Accepted& accepted) {
  auto j = JoinRequest::Decode(in);
  if (!j.ok()) return;
  accepted.Add(in, ReleaseRecord::kJoinRequest);
  Bytes encoded = j->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = JoinRequest::Decode(encoded);
  if (!again.ok() || again->evidence != j->evidence || again->collateral != j->collateral)
    std::abort();
}

void FuzzJoinGrant(ByteSpan in, Accepted& accepted) {
  // The grant carries the root key, so the decoder only takes SecretBytes.
  auto g = JoinGrant::Decode(SecretBytes::CopyFrom(in));
  if (!g.ok()) return;
  accepted.Add(in, ReleaseRecord::kJoinGrant);
  if (g->root_key.size() != kRootKeySize) std::abort();
  SecretBytes encoded = g->Encode();
  if (!SameBytes(encoded.Expose(), in)) std::abort();
  auto again = JoinGrant::Decode(encoded);
  if (!again.ok() || !again->root_key.ConstantTimeEquals(g->root_key) ||
      again->envelope != g->envelope || again->origin_evidence != g->origin_evidence)
    std::abort();
}

}  // namespace
}  // namespace custos::sigma

namespace custos::sigma {
namespace {
// The envelope's origin file (host-stored, read by the core at load): never fails on input
// without the magic (legacy evidence, returned whole); with the magic, an accepted file
// re-encodes to exactly the input.
void FuzzEnvelopeOrigin(ByteSpan in) {
  auto o = EnvelopeOrigin::Decode(in);
  bool magic = in.size() >= 4 && in[0] == 'C' && in[1] == 'O' && in[2] == 'R' && in[3] == 'G';
  if (!magic) {
    if (!o.ok() || o->binding != OriginBinding::kCustodyFingerprint || !SameBytes(o->evidence, in)) std::abort();
    return;
  }
  if (!o.ok()) return;
  if (o->evidence.empty() || !SameBytes(o->Encode(), in)) std::abort();
}
}  // namespace
}  // namespace custos::sigma

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::sigma;
  custos::ByteSpan in(data, size);
  auto type = RecordType(in);
  if (type.ok() != (size > 0 && data[0] >= 1 && data[0] <= 5)) std::abort();
  Accepted accepted;
  FuzzUnsealRequest(in, accepted);
  FuzzPartialRelease(in, accepted);
  FuzzUnsealProgress(in, accepted);
  FuzzJoinRequest(in, accepted);
  FuzzJoinGrant(in, accepted);
  if (accepted.count > 1) std::abort();
  FuzzEnvelopeOrigin(in);
  return 0;
}
