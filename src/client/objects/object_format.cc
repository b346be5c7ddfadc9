#include "client/objects/object_format.h"

#include <cstring>

#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/stream/stream.h"
#include "protocol/envelope/kem_wrap.h"

namespace custos::objects {

using crypto::Point;

namespace {
constexpr uint8_t kVersion = 1;
constexpr uint8_t kSuite = 1;
constexpr size_t kObjectIdSize = 16;

// WriteThroughKeyRef writes the header up to and including the wrapped-key length field.
void WriteThroughKeyRef(const ObjectHeader& h, ByteWriter& w) {
  w.Raw(AsBytes(std::string_view(kObjectMagic, 8)))
      .U8(kVersion)
      .U8(kSuite)
      .U8(static_cast<uint8_t>(h.mode))
      .U8(0)
      .Raw(h.object_id)
      .U32(h.chunk_size)
      .Raw(h.nonce_prefix)
      .U64(h.plaintext_length)
      .U16(static_cast<uint16_t>(h.key_ref.size()))
      .Raw(AsBytes(h.key_ref))
      .U32(static_cast<uint32_t>(h.wrapped_key.size()));
}

// DualControlPrefix is the header through R: what the wrapped DEK's AAD and the KEM context cover.
Bytes DualControlPrefix(const ObjectHeader& h, const Point& y, const Point& r) {
  ByteWriter w;
  WriteThroughKeyRef(h, w);
  w.Raw(y.Encode()).Raw(r.Encode());
  return w.Take();
}

// The KEM label of dual-control objects (protocol/envelope/kem_wrap.h).
constexpr std::string_view kObjectKemLabel = "custos/v1/object";
}  // namespace

Bytes ObjectHeader::Encode() const {
  ByteWriter w;
  WriteThroughKeyRef(*this, w);
  w.Raw(wrapped_key);
  return w.Take();
}

Bytes ObjectHeader::Digest() const {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/object-header"), Encode()}));
}

std::string ObjectHeader::ObjectIdHex() const { return HexEncode(object_id); }

StatusOr<uint64_t> ObjectHeader::BodyLength() const {
  return files::StreamCiphertextLength(plaintext_length, chunk_size);
}

StatusOr<uint64_t> ObjectHeader::StoredSize() const {
  ASSIGN_OR_RETURN(uint64_t body, BodyLength());
  return body + EncodedSize();
}

bool LooksLikeObject(ByteSpan b) {
  return b.size() >= 8 && std::memcmp(b.data(), kObjectMagic, 8) == 0;
}

StatusOr<ObjectHeader> ObjectHeader::Decode(ByteSpan b) {
  if (!LooksLikeObject(b)) {
    if (b.size() < 8) return InvalidArgument("object is too short for a custos header");
    return InvalidArgument("not a custos object (no CUSTOSOB header)");
  }
  ByteReader r(b);
  auto truncated = [](const Status&) { return InvalidArgument("object header is truncated"); };
  (void)r.Raw(8, "magic");
  ASSIGN_OR_RETURN(uint8_t version, r.U8("version"));
  if (version != kVersion) return InvalidArgument("unsupported object format version " + std::to_string(version));
  ASSIGN_OR_RETURN(uint8_t suite, r.U8("suite"));
  if (suite != kSuite) return InvalidArgument("unsupported object suite " + std::to_string(suite));
  ASSIGN_OR_RETURN(uint8_t mode, r.U8("mode"));
  if (mode != 1 && mode != 2) return InvalidArgument("unknown object mode " + std::to_string(mode));
  ASSIGN_OR_RETURN(uint8_t flags, r.U8("flags"));
  if (flags != 0) return InvalidArgument("object header has unknown flags");
  ObjectHeader h;
  h.mode = static_cast<ObjectMode>(mode);
  auto id = r.Raw(kObjectIdSize, "object id");
  if (!id.ok()) return truncated(id.status());
  h.object_id.assign(id->begin(), id->end());
  auto chunk = r.U32("chunk size");
  if (!chunk.ok()) return truncated(chunk.status());
  h.chunk_size = *chunk;
  if (h.chunk_size < files::kMinChunkSize || h.chunk_size > files::kMaxChunkSize)
    return InvalidArgument("object header has an out-of-range chunk size");
  auto np = r.Raw(files::kStreamNoncePrefixSize, "nonce prefix");
  if (!np.ok()) return truncated(np.status());
  h.nonce_prefix.assign(np->begin(), np->end());
  auto len = r.U64("plaintext length");
  if (!len.ok()) return truncated(len.status());
  h.plaintext_length = *len;
  if (!h.BodyLength().ok()) return InvalidArgument("object header declares an impossible plaintext length");
  auto kl = r.U16("key reference length");
  if (!kl.ok()) return truncated(kl.status());
  if (*kl == 0 || *kl > kMaxKeyRefSize) return InvalidArgument("object header has an out-of-range key reference length");
  auto kr = r.Raw(*kl, "key reference");
  if (!kr.ok()) return truncated(kr.status());
  h.key_ref = ToString(*kr);
  for (char c : h.key_ref)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return InvalidArgument("object header has a control character in its key reference");
  auto wl = r.U32("wrapped key length");
  if (!wl.ok()) return truncated(wl.status());
  if (*wl == 0 || *wl > kMaxWrappedKeySize) return InvalidArgument("object header has an out-of-range wrapped key length");
  if (h.mode == ObjectMode::kDualControl && *wl != kDualControlWrappedKeySize)
    return InvalidArgument("dual-control object header has a wrapped key of the wrong length");
  auto wk = r.Raw(*wl, "wrapped key");
  if (!wk.ok()) return truncated(wk.status());
  h.wrapped_key.assign(wk->begin(), wk->end());
  return h;
}

StatusOr<DualControlWrap> ParseDualControlWrap(ByteSpan wrapped_key) {
  if (wrapped_key.size() != kDualControlWrappedKeySize)
    return InvalidArgument("dual-control wrapped key has the wrong length");
  DualControlWrap w;
  auto y = Point::Decode(wrapped_key.subspan(0, 33));
  if (!y.ok()) return InvalidArgument("object header has a malformed public key");
  auto r = Point::Decode(wrapped_key.subspan(33, 33));
  if (!r.ok()) return InvalidArgument("object header has a malformed KEM point");
  w.y = *y;
  w.r = *r;
  ByteSpan nonce = wrapped_key.subspan(66, 12), sealed = wrapped_key.subspan(78, 48);
  w.wrap_nonce.assign(nonce.begin(), nonce.end());
  w.wrapped_dek.assign(sealed.begin(), sealed.end());
  return w;
}

StatusOr<SecretBytes> SealDualControlKey(ObjectHeader& h, const Point& y,
                                         const std::string& custody_fingerprint_hex) {
  h.mode = ObjectMode::kDualControl;
  h.key_ref = custody_fingerprint_hex;
  h.wrapped_key.assign(kDualControlWrappedKeySize, 0);  // fixes the length field in the prefix
  SecretBytes dek = crypto::RandomSecret(files::kStreamKeySize);
  ASSIGN_OR_RETURN(envelope::KemWrapped w, envelope::WrapToY(y, dek, kObjectKemLabel, [&](const Point& r) {
                     return DualControlPrefix(h, y, r);
                   }));
  h.wrapped_key = Concat({y.Encode(), w.r.Encode(), w.nonce, w.sealed});
  return dek;
}

Bytes DualControlKemContext(const ObjectHeader& h) {
  auto w = ParseDualControlWrap(h.wrapped_key);
  if (!w.ok()) return {};
  return envelope::KemContext(kObjectKemLabel, DualControlPrefix(h, w->y, w->r));
}

StatusOr<SecretBytes> OpenDualControlKey(const ObjectHeader& h, const Point& s) {
  ASSIGN_OR_RETURN(DualControlWrap w, ParseDualControlWrap(h.wrapped_key));
  Bytes prefix = DualControlPrefix(h, w.y, w.r);
  auto dek = envelope::UnwrapWithS(s, w.r, w.y, kObjectKemLabel, prefix, w.wrap_nonce, w.wrapped_dek);
  if (!dek.ok()) return IntegrityError("object data key does not unwrap: header altered or wrong keepers' result");
  return dek;
}

}  // namespace custos::objects
