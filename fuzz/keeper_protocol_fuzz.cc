// Fuzzes the keeper wire formats (src/keeper/api/protocol.h, escrow.h, keeper_store.h): the binary
// PartialRequest a requester signs, the EscrowBlob a provider keeper stores for a customer
// keeper, the KeeperSecrets encoding inside state.sealed and escrow blobs, and the JSON forms of
// SignedMessage and ClientAuthorization. The first byte selects the parser. Binary formats must
// be canonical (an accepted input is exactly the encoding of what was decoded) and re-decode to
// the same value; JSON forms must survive ToJson -> FromJson with every field intact. A forged
// signature never verifies against the fixed key below.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "keeper/daemon/escrow.h"
#include "keeper/daemon/keeper_store.h"
#include "keeper/api/protocol.h"

namespace custos::keeper {
namespace {

bool SameBytes(ByteSpan a, ByteSpan b) { return std::equal(a.begin(), a.end(), b.begin(), b.end()); }

const crypto::VerifyingKey& FixedKey() {
  static const crypto::VerifyingKey key = crypto::VerifyingKey::FromPoint(crypto::Point::Generator());
  return key;
}

void FuzzPartialRequest(ByteSpan in) {
  auto req = PartialRequest::Decode(in);
  if (!req.ok()) return;
  Bytes encoded = req->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = PartialRequest::Decode(encoded);
  if (!again.ok() || again->Encode() != encoded) std::abort();
  // The signed form binds the exact request bytes behind a domain-separation prefix.
  Bytes signed_bytes = PartialRequest::SignedBytes(encoded);
  if (signed_bytes.size() <= encoded.size()) std::abort();
  (void)PartialResponseInfo(encoded);
}

void FuzzEscrowBlob(ByteSpan in) {
  auto blob = EscrowBlob::Decode(in);
  if (!blob.ok()) return;
  Bytes encoded = blob->Encode();
  if (!SameBytes(encoded, in)) std::abort();
  auto again = EscrowBlob::Decode(encoded);
  if (!again.ok() || again->Encode() != encoded || again->Header() != blob->Header()) std::abort();
  // The header is the AEAD's associated data: it must be a strict prefix of the blob.
  Bytes header = blob->Header();
  if (header.size() >= encoded.size() || !std::equal(header.begin(), header.end(), encoded.begin()))
    std::abort();
  (void)EscrowUploadMessage(encoded);
}

void FuzzKeeperSecrets(ByteSpan in) {
  SecretBytes sealed = SecretBytes::CopyFrom(in);
  auto secrets = KeeperSecrets::Decode(sealed);
  if (!secrets.ok()) return;
  SecretBytes encoded = secrets->Encode();
  if (!SameBytes(encoded.Expose(), in)) std::abort();
  auto again = KeeperSecrets::Decode(encoded);
  if (!again.ok() || !again->Encode().ConstantTimeEquals(encoded)) std::abort();
}

void FuzzSignedMessage(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto m = SignedMessage::FromJson(j);
  if (!m.ok()) return;
  if (m->Verify(FixedKey(), AsBytes("session")).ok()) std::abort();
  auto again = SignedMessage::FromJson(m->ToJson());
  if (!again.ok() || again->keeper != m->keeper || again->kind != m->kind ||
      again->payload != m->payload || again->sig != m->sig)
    std::abort();
}

void FuzzClientAuthorization(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return;
  auto a = ClientAuthorization::FromJson(j);
  if (!a.ok()) return;
  (void)crypto::VerifyingKey::FromPoint(a->client_key).Verify(a->Message(), a->sig);
  auto again = ClientAuthorization::FromJson(a->ToJson());
  if (!again.ok() || again->action != a->action || again->subject != a->subject ||
      again->timestamp != a->timestamp || again->nonce != a->nonce ||
      !(again->client_key == a->client_key) || again->sig != a->sig ||
      again->Message() != a->Message())
    std::abort();
}

}  // namespace
}  // namespace custos::keeper

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::keeper;
  if (size == 0) return 0;
  custos::ByteSpan rest(data + 1, size - 1);
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 5) {
    case 0: FuzzPartialRequest(rest); break;
    case 1: FuzzEscrowBlob(rest); break;
    case 2: FuzzKeeperSecrets(rest); break;
    case 3: FuzzSignedMessage(text); break;
    case 4: FuzzClientAuthorization(text); break;
  }
  return 0;
}
