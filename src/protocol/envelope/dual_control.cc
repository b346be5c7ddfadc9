#include "protocol/envelope/dual_control.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/file.h"
#include "crypto/aead.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "protocol/envelope/kem_wrap.h"
#include "protocol/stream/stream.h"

namespace custos::files {

using crypto::Point;

namespace {
// The KEM label of dual-control files (kem_wrap.h); the root-key envelope is such a file.
constexpr std::string_view kFileKemLabel = "custos/v1/file";
}  // namespace

Bytes DualControlHeader::Prefix() const {
  ByteWriter w;
  w.Raw(AsBytes("CUSTOSDC")).U8(1).U8(1).U8(2).Raw(y.Encode()).Raw(r.Encode()).Raw(file_id);
  w.U32(chunk_size).Raw(nonce_prefix);
  return w.Take();
}

Bytes DualControlHeader::Encode() const { return Concat({Prefix(), wrap_nonce, wrapped_dek}); }

StatusOr<DualControlHeader> DualControlHeader::Decode(ByteSpan b) {
  if (b.size() < kDualControlHeaderSize) return InvalidArgument("file is too short for a custos header (truncated?)");
  ByteReader r(b.subspan(0, kDualControlHeaderSize));
  ASSIGN_OR_RETURN(ByteSpan magic, r.Raw(8, "magic"));
  if (ToString(magic) != "CUSTOSDC") return InvalidArgument("not a custos dual-control file (bad magic)");
  ASSIGN_OR_RETURN(uint8_t version, r.U8("version"));
  if (version != 1) return InvalidArgument("unsupported file format version " + std::to_string(version));
  ASSIGN_OR_RETURN(uint8_t suite, r.U8("suite"));
  if (suite != 1) return InvalidArgument("unsupported suite " + std::to_string(suite));
  ASSIGN_OR_RETURN(uint8_t mode, r.U8("mode"));
  if (mode != 2) return InvalidArgument("file is not in dual-control mode");
  DualControlHeader h;
  ASSIGN_OR_RETURN(ByteSpan y, r.Raw(33, "Y"));
  auto yp = Point::Decode(y);
  if (!yp.ok()) return InvalidArgument("file header has a malformed public key");
  h.y = *yp;
  ASSIGN_OR_RETURN(ByteSpan rr, r.Raw(33, "R"));
  auto rp = Point::Decode(rr);
  if (!rp.ok()) return InvalidArgument("file header has a malformed KEM point");
  h.r = *rp;
  ASSIGN_OR_RETURN(ByteSpan id, r.Raw(16, "file id"));
  h.file_id.assign(id.begin(), id.end());
  ASSIGN_OR_RETURN(h.chunk_size, r.U32("chunk size"));
  if (h.chunk_size < kMinChunkSize || h.chunk_size > kMaxChunkSize)
    return InvalidArgument("file header has an out-of-range chunk size");
  ASSIGN_OR_RETURN(ByteSpan np, r.Raw(7, "nonce prefix"));
  h.nonce_prefix.assign(np.begin(), np.end());
  ASSIGN_OR_RETURN(ByteSpan wn, r.Raw(12, "wrap nonce"));
  h.wrap_nonce.assign(wn.begin(), wn.end());
  ASSIGN_OR_RETURN(ByteSpan wd, r.Raw(48, "wrapped key"));
  h.wrapped_dek.assign(wd.begin(), wd.end());
  return h;
}

Bytes DualControlHeader::Digest() const {
  return crypto::Sha256Bytes(Concat({AsBytes("custos/v1/file-header"), Encode()}));
}

Bytes DualControlHeader::KemContext() const { return envelope::KemContext(kFileKemLabel, Prefix()); }


namespace {
// NewHeader draws a fresh header for `y` and the DEK it wraps.
StatusOr<DualControlHeader> NewHeader(const Point& y, uint32_t chunk_size, SecretBytes& dek) {
  DualControlHeader h;
  h.y = y;
  h.file_id = crypto::RandomBytes(16);
  h.chunk_size = chunk_size;
  h.nonce_prefix = crypto::RandomBytes(kStreamNoncePrefixSize);
  dek = crypto::RandomSecret(kStreamKeySize);
  ASSIGN_OR_RETURN(envelope::KemWrapped w, envelope::WrapToY(y, dek, kFileKemLabel, [&](const Point& r) {
                     h.r = r;
                     return h.Prefix();
                   }));
  h.wrap_nonce = std::move(w.nonce);
  h.wrapped_dek = std::move(w.sealed);
  return h;
}
}  // namespace

Status EncryptDualControl(const Point& y, int in_fd, int out_fd, uint32_t chunk_size) {
  SecretBytes dek;
  ASSIGN_OR_RETURN(DualControlHeader h, NewHeader(y, chunk_size, dek));
  RETURN_IF_ERROR(WriteFully(out_fd, h.Encode()));
  Bytes digest = h.Digest();
  StreamParams params{dek, h.nonce_prefix, digest, chunk_size};
  return EncryptStream(in_fd, out_fd, params);
}

StatusOr<Bytes> SealDualControlSecret(const Point& y, const SecretBytes& secret) {
  if (secret.size() > kMinChunkSize) return InvalidArgument("secret is larger than one chunk");
  SecretBytes dek;
  ASSIGN_OR_RETURN(DualControlHeader h, NewHeader(y, kMinChunkSize, dek));
  Bytes digest = h.Digest();
  ASSIGN_OR_RETURN(StreamEncryptor enc,
                   StreamEncryptor::Create(StreamParams{dek, h.nonce_prefix, digest, kMinChunkSize}));
  Bytes body;
  RETURN_IF_ERROR(enc.EncryptChunk(secret.Expose(), /*last=*/true, body));
  return Concat({h.Encode(), body});
}

StatusOr<SecretBytes> OpenDualControlSecret(ByteSpan file, const Point& s) {
  ASSIGN_OR_RETURN(DualControlHeader h, DualControlHeader::Decode(file));
  ByteSpan body = file.subspan(kDualControlHeaderSize);
  if (body.size() < kStreamTagSize || body.size() > kStreamTagSize + h.chunk_size)
    return IntegrityError("sealed secret has a body that is not exactly one chunk");
  ASSIGN_OR_RETURN(SecretBytes dek, UnwrapDek(h, s));
  Bytes digest = h.Digest();
  ASSIGN_OR_RETURN(StreamDecryptor dec,
                   StreamDecryptor::Create(dek, h.nonce_prefix, h.chunk_size, digest));
  SecretBytes out(body.size() - kStreamTagSize);
  auto n = dec.DecryptChunk(0, body, /*last=*/true, out.ExposeMutable());
  if (!n.ok()) return IntegrityError("sealed secret does not authenticate");
  return out;
}

StatusOr<DualControlHeader> ReadDualControlHeader(int fd) {
  Bytes buf(kDualControlHeaderSize);
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Unavailable(std::string("read failed: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got < buf.size()) return InvalidArgument("file is too short for a custos header (truncated?)");
  return DualControlHeader::Decode(buf);
}

StatusOr<SecretBytes> UnwrapDek(const DualControlHeader& h, const Point& s) {
  auto dek = envelope::UnwrapWithS(s, h.r, h.y, kFileKemLabel, h.Prefix(), h.wrap_nonce, h.wrapped_dek);
  if (!dek.ok()) return IntegrityError("file key does not unwrap: header altered or wrong keepers' result");
  return dek;
}

Status DecryptDualControlBody(const DualControlHeader& h, const SecretBytes& dek, int in_fd,
                              int out_fd) {
  Bytes digest = h.Digest();
  StreamParams params{dek, h.nonce_prefix, digest, h.chunk_size};
  return DecryptStream(in_fd, out_fd, params);
}

}  // namespace custos::files
