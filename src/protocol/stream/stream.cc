#include "protocol/stream/stream.h"

#include "common/file.h"
#include "common/wiped_buffer.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace custos::files {
namespace {

using ChunkNonce = uint8_t[crypto::kGcmNonceSize];

void MakeNonce(const uint8_t* prefix, uint64_t index, bool last, ChunkNonce& nonce) {
  std::memcpy(nonce, prefix, kStreamNoncePrefixSize);
  nonce[7] = static_cast<uint8_t>(index >> 24);
  nonce[8] = static_cast<uint8_t>(index >> 16);
  nonce[9] = static_cast<uint8_t>(index >> 8);
  nonce[10] = static_cast<uint8_t>(index);
  nonce[11] = last ? 0x01 : 0x00;
}

Status CheckSizes(size_t dek_size, size_t prefix_size, uint32_t chunk_size, size_t digest_size) {
  if (dek_size != kStreamKeySize) return InvalidArgument("stream DEK must be 32 bytes");
  if (prefix_size != kStreamNoncePrefixSize)
    return InvalidArgument("stream nonce prefix must be 7 bytes");
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
    return InvalidArgument("stream chunk size must be between 4 KiB and 16 MiB");
  if (digest_size != kStreamHeaderDigestSize)
    return InvalidArgument("stream header digest must be 32 bytes");
  return Status::Ok();
}

// ReadFull reads until `buf` is full or EOF and returns how many bytes it got, so that a pipe or
// socket delivering short reads still yields whole chunks.
StatusOr<size_t> ReadFull(int fd, std::span<uint8_t> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("stream read failed: ") + std::strerror(errno));
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  return got;
}

Status PreadFull(int fd, std::span<uint8_t> buf, uint64_t offset) {
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = ::pread(fd, buf.data() + got, buf.size() - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Unavailable(std::string("stream pread failed: ") + std::strerror(errno));
    }
    if (n == 0) return IntegrityError("stream ciphertext shorter than its stated length");
    got += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string ChunkError(uint64_t index, const char* what) {
  return "stream chunk " + std::to_string(index) + ": " + what;
}

// CheckChunkSize is the size rule every opening applies: a non-final chunk carries exactly
// chunk_size plaintext bytes, the final one 0..chunk_size.
Status CheckChunkSize(uint64_t index, size_t stored_size, bool last, uint32_t chunk_size) {
  if (stored_size < kStreamTagSize)
    return IntegrityError(ChunkError(index, "shorter than its tag"));
  const size_t n = stored_size - kStreamTagSize;
  if (last ? n > chunk_size : n != chunk_size)
    return IntegrityError(ChunkError(
        index, last ? "final chunk longer than chunk size" : "non-final chunk is not chunk size"));
  return Status::Ok();
}

}  // namespace

Status ValidateStreamParams(const StreamParams& params) {
  return CheckSizes(params.dek.size(), params.nonce_prefix.size(), params.chunk_size,
                    params.header_digest.size());
}

StatusOr<uint64_t> StreamCiphertextLength(uint64_t plaintext_length, uint32_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
    return InvalidArgument("stream chunk size must be between 4 KiB and 16 MiB");
  // An empty plaintext is one empty final chunk; otherwise no trailing empty chunk.
  uint64_t chunks = plaintext_length == 0 ? 1 : (plaintext_length - 1) / chunk_size + 1;
  if (chunks > kMaxChunks) return InvalidArgument("plaintext needs more than 2^32 stream chunks");
  return plaintext_length + chunks * kStreamTagSize;
}

StatusOr<StreamLayout> StreamPlaintextLength(uint64_t ciphertext_length, uint32_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize)
    return InvalidArgument("stream chunk size must be between 4 KiB and 16 MiB");
  if (ciphertext_length == 0) return IntegrityError("stream truncated: no chunks");
  const uint64_t full = uint64_t{chunk_size} + kStreamTagSize;
  uint64_t whole = ciphertext_length / full;
  uint64_t rest = ciphertext_length % full;
  StreamLayout layout;
  if (rest == 0) {
    layout.chunk_count = whole;
    layout.last_chunk_plaintext = chunk_size;
  } else if (rest >= kStreamTagSize) {
    layout.chunk_count = whole + 1;
    layout.last_chunk_plaintext = static_cast<uint32_t>(rest - kStreamTagSize);
  } else {
    return IntegrityError("stream truncated: final chunk shorter than its tag");
  }
  if (layout.chunk_count > kMaxChunks) return IntegrityError("stream has more than 2^32 chunks");
  layout.plaintext_length = ciphertext_length - layout.chunk_count * kStreamTagSize;
  return layout;
}

// ---------------------------------------------------------------------------------------------
// StreamEncryptor

StreamEncryptor::StreamEncryptor(crypto::AesGcm gcm, ByteSpan nonce_prefix, uint32_t chunk_size,
                                 ByteSpan header_digest)
    : gcm_(std::move(gcm)), chunk_size_(chunk_size) {
  std::memcpy(nonce_prefix_, nonce_prefix.data(), kStreamNoncePrefixSize);
  std::memcpy(header_digest_, header_digest.data(), kStreamHeaderDigestSize);
}

StatusOr<StreamEncryptor> StreamEncryptor::Create(const SecretBytes& dek, ByteSpan nonce_prefix,
                                                  uint32_t chunk_size, ByteSpan header_digest) {
  RETURN_IF_ERROR(CheckSizes(dek.size(), nonce_prefix.size(), chunk_size, header_digest.size()));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(dek));
  return StreamEncryptor(std::move(gcm), nonce_prefix, chunk_size, header_digest);
}

StatusOr<StreamEncryptor> StreamEncryptor::Create(const StreamParams& params) {
  return Create(params.dek, params.nonce_prefix, params.chunk_size, params.header_digest);
}

StatusOr<StreamEncryptor> StreamEncryptor::CreateAt(const StreamParams& params, uint64_t first_index) {
  if (first_index >= kMaxChunks) return InvalidArgument("stream chunk index out of range");
  ASSIGN_OR_RETURN(StreamEncryptor enc, Create(params));
  enc.next_index_ = first_index;
  return enc;
}

Status StreamEncryptor::EncryptChunk(ByteSpan plaintext, bool last, Bytes& out) {
  // Checked here too so that a hostile size never drives the resize below.
  if (plaintext.size() > chunk_size_) return InvalidArgument("stream chunk larger than chunk size");
  out.resize(plaintext.size() + kStreamTagSize);
  return EncryptChunkInto(plaintext, last, out);
}

Status StreamEncryptor::EncryptChunkInto(ByteSpan plaintext, bool last, std::span<uint8_t> out) {
  if (poisoned_) return FailedPrecondition("stream encryptor failed earlier; start a new stream");
  if (finished_) return FailedPrecondition("stream already has its final chunk");
  if (next_index_ >= kMaxChunks) return FailedPrecondition("stream would exceed 2^32 chunks");
  if (last ? plaintext.size() > chunk_size_ : plaintext.size() != chunk_size_)
    return InvalidArgument(last ? "final stream chunk larger than chunk size"
                                : "non-final stream chunk must be exactly chunk size");
  if (out.size() != plaintext.size() + kStreamTagSize)
    return InvalidArgument("stream chunk output must be plaintext size + 16");
  ChunkNonce nonce;
  MakeNonce(nonce_prefix_, next_index_, last, nonce);
  Status st = gcm_.Seal(nonce, plaintext, header_digest_, out);
  if (!st.ok()) {
    // The nonce may have been consumed on partial output; never use it for other plaintext.
    poisoned_ = true;
    return st;
  }
  ++next_index_;
  finished_ = last;
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// StreamDecryptor

StreamDecryptor::StreamDecryptor(crypto::AesGcm gcm, ByteSpan nonce_prefix, uint32_t chunk_size,
                                 ByteSpan header_digest)
    : gcm_(std::move(gcm)), chunk_size_(chunk_size) {
  std::memcpy(nonce_prefix_, nonce_prefix.data(), kStreamNoncePrefixSize);
  std::memcpy(header_digest_, header_digest.data(), kStreamHeaderDigestSize);
}

StatusOr<StreamDecryptor> StreamDecryptor::Create(const SecretBytes& dek, ByteSpan nonce_prefix,
                                                  uint32_t chunk_size, ByteSpan header_digest) {
  RETURN_IF_ERROR(CheckSizes(dek.size(), nonce_prefix.size(), chunk_size, header_digest.size()));
  ASSIGN_OR_RETURN(crypto::AesGcm gcm, crypto::AesGcm::Create(dek));
  return StreamDecryptor(std::move(gcm), nonce_prefix, chunk_size, header_digest);
}

StatusOr<StreamDecryptor> StreamDecryptor::Create(const StreamParams& params) {
  return Create(params.dek, params.nonce_prefix, params.chunk_size, params.header_digest);
}

StatusOr<size_t> StreamDecryptor::DecryptChunk(uint64_t index, ByteSpan ciphertext_chunk, bool last,
                                               std::span<uint8_t> out) {
  if (index >= kMaxChunks) return InvalidArgument("stream chunk index beyond 2^32");
  RETURN_IF_ERROR(CheckChunkSize(index, ciphertext_chunk.size(), last, chunk_size_));
  const size_t n = ciphertext_chunk.size() - kStreamTagSize;
  if (out.size() < n) return InvalidArgument("stream chunk output buffer too small");
  ChunkNonce nonce;
  MakeNonce(nonce_prefix_, index, last, nonce);
  Status st = gcm_.Open(nonce, ciphertext_chunk, header_digest_, out.first(n));
  if (!st.ok()) {
    if (st.code() == ErrorCode::kIntegrity)
      return IntegrityError(ChunkError(index, "authentication failed"));
    return st;
  }
  return n;
}

Status StreamDecryptor::BeginChunk(uint64_t index, size_t stored_size, bool last) {
  opening_.reset();
  if (index >= kMaxChunks) return InvalidArgument("stream chunk index beyond 2^32");
  RETURN_IF_ERROR(CheckChunkSize(index, stored_size, last, chunk_size_));
  ChunkNonce nonce;
  MakeNonce(nonce_prefix_, index, last, nonce);
  RETURN_IF_ERROR(gcm_.OpenBegin(nonce, header_digest_));
  opening_ = Opening{};
  opening_->index = index;
  opening_->ciphertext_size = stored_size - kStreamTagSize;
  return Status::Ok();
}

size_t StreamDecryptor::chunk_bytes_left() const {
  if (!opening_) return 0;
  return opening_->ciphertext_size - opening_->ciphertext_done + kStreamTagSize -
         opening_->tag_done;
}

StatusOr<size_t> StreamDecryptor::UpdateChunk(ByteSpan stored, std::span<uint8_t> plaintext) {
  if (!opening_) return FailedPrecondition("stream: no chunk is being opened");
  Opening& o = *opening_;
  if (plaintext.size() < o.ciphertext_size)
    return InvalidArgument("stream chunk output buffer too small");
  const size_t ct = std::min(stored.size(), o.ciphertext_size - o.ciphertext_done);
  if (ct > 0) {
    Status st = gcm_.OpenUpdate(stored.first(ct), plaintext.subspan(o.ciphertext_done, ct));
    if (!st.ok()) {
      opening_.reset();
      return st;
    }
    o.ciphertext_done += ct;
  }
  const size_t tag = std::min(stored.size() - ct, kStreamTagSize - o.tag_done);
  if (tag > 0) {
    std::memcpy(o.tag + o.tag_done, stored.data() + ct, tag);
    o.tag_done += tag;
  }
  return ct + tag;
}

StatusOr<size_t> StreamDecryptor::FinishChunk(std::span<uint8_t> plaintext) {
  if (!opening_) return FailedPrecondition("stream: no chunk is being opened");
  if (chunk_bytes_left() != 0) return FailedPrecondition("stream: the chunk is not complete");
  const Opening o = *opening_;
  opening_.reset();
  if (plaintext.size() < o.ciphertext_size)
    return InvalidArgument("stream chunk output buffer too small");
  Status st = gcm_.OpenFinish(ByteSpan(o.tag, kStreamTagSize));
  if (!st.ok()) {
    OPENSSL_cleanse(plaintext.data(), o.ciphertext_size);
    if (st.code() == ErrorCode::kIntegrity)
      return IntegrityError(ChunkError(o.index, "authentication failed"));
    return st;
  }
  return o.ciphertext_size;
}

// ---------------------------------------------------------------------------------------------
// Whole streams over file descriptors

Status EncryptStream(int in_fd, int out_fd, const StreamParams& params) {
  ASSIGN_OR_RETURN(StreamEncryptor enc, StreamEncryptor::Create(params));
  const size_t chunk = params.chunk_size;
  // One buffer: plaintext is read into it and sealed in place (the tag needs 16 more bytes). To
  // know whether a full chunk is the last one, each read asks for one byte more than a chunk; that
  // look-ahead byte is saved before sealing overwrites it and becomes the next chunk's first byte.
  WipedBuffer buf(chunk + kStreamTagSize);
  size_t filled = 0;
  for (;;) {
    ASSIGN_OR_RETURN(size_t got, ReadFull(in_fd, buf.span(filled, chunk + 1 - filled)));
    filled += got;
    const bool last = filled <= chunk;
    const size_t n = last ? filled : chunk;
    const uint8_t lookahead = last ? 0 : buf.data()[chunk];
    RETURN_IF_ERROR(enc.EncryptChunkInto(buf.span(0, n), last, buf.span(0, n + kStreamTagSize)));
    RETURN_IF_ERROR(WriteFully(out_fd, buf.span(0, n + kStreamTagSize)));
    if (last) return Status::Ok();
    buf.data()[0] = lookahead;
    filled = 1;
  }
}

Status DecryptStream(int in_fd, int out_fd, const StreamParams& params) {
  ASSIGN_OR_RETURN(StreamDecryptor dec, StreamDecryptor::Create(params));
  const size_t chunk = params.chunk_size;
  const size_t full = chunk + kStreamTagSize;
  // Ciphertext and plaintext live in separate buffers so that a chunk that fails to authenticate
  // is still intact for the one diagnostic retry below. As in EncryptStream, each read asks for
  // one look-ahead byte past the chunk: a chunk is final exactly when EOF follows it.
  WipedBuffer ct(full + 1);
  WipedBuffer pt(chunk);
  size_t filled = 0;
  for (uint64_t index = 0;; ++index) {
    ASSIGN_OR_RETURN(size_t got, ReadFull(in_fd, ct.span(filled, full + 1 - filled)));
    filled += got;
    if (filled == 0) return IntegrityError("stream truncated: no chunks");
    const bool last = filled <= full;
    const size_t n = last ? filled : full;
    if (last && n < kStreamTagSize)
      return IntegrityError(ChunkError(index, "stream truncated inside a chunk"));
    if (index >= kMaxChunks) return IntegrityError("stream has more than 2^32 chunks");
    StatusOr<size_t> opened = dec.DecryptChunk(index, ct.span(0, n), last, pt.span(0, chunk));
    if (!opened.ok()) {
      if (opened.status().code() != ErrorCode::kIntegrity || n != full) return opened.status();
      // A full chunk that fails with the flag EOF implies may be an authentic chunk with the
      // other flag: then the stream was cut at a chunk boundary, or something was appended after
      // its final chunk. Say so, and release nothing either way.
      StatusOr<size_t> flipped = dec.DecryptChunk(index, ct.span(0, n), !last, pt.span(0, chunk));
      if (!flipped.ok()) return opened.status();
      OPENSSL_cleanse(pt.data(), chunk);
      return IntegrityError(last ? "stream truncated: final chunk missing"
                                 : "stream continues after its final chunk");
    }
    RETURN_IF_ERROR(WriteFully(out_fd, pt.span(0, *opened)));
    if (last) return Status::Ok();
    ct.data()[0] = ct.data()[full];
    filled = 1;
  }
}

Status DecryptRange(int fd, uint64_t chunk0_offset, uint64_t ciphertext_length,
                    uint64_t plaintext_offset, std::span<uint8_t> out, const StreamParams& params) {
  ASSIGN_OR_RETURN(StreamDecryptor dec, StreamDecryptor::Create(params));
  ASSIGN_OR_RETURN(StreamLayout layout,
                   StreamPlaintextLength(ciphertext_length, params.chunk_size));
  if (plaintext_offset > layout.plaintext_length ||
      out.size() > layout.plaintext_length - plaintext_offset)
    return InvalidArgument("requested range lies outside the stream plaintext");
  if (out.empty()) return Status::Ok();
  if (chunk0_offset > UINT64_MAX - ciphertext_length)
    return InvalidArgument("stream offset plus length overflows");

  const uint64_t chunk = params.chunk_size;
  const uint64_t full = chunk + kStreamTagSize;
  const uint64_t first = plaintext_offset / chunk;
  const uint64_t end = plaintext_offset + out.size();  // exclusive, <= plaintext_length
  const uint64_t final_index = layout.chunk_count - 1;
  WipedBuffer ct(static_cast<size_t>(full));
  size_t written = 0;
  for (uint64_t index = first; written < out.size(); ++index) {
    const bool last = index == final_index;
    const size_t ct_len = last ? layout.last_chunk_plaintext + kStreamTagSize : full;
    Status st = PreadFull(fd, ct.span(0, ct_len), chunk0_offset + index * full);
    StatusOr<size_t> opened =
        st.ok() ? dec.DecryptChunk(index, ct.span(0, ct_len), last, ct.span(0, ct_len))
                : StatusOr<size_t>(st);
    if (!opened.ok()) {
      OPENSSL_cleanse(out.data(), out.size());
      return opened.status();
    }
    // Copy the part of this chunk that overlaps [plaintext_offset, end).
    const uint64_t chunk_start = index * chunk;
    const uint64_t from = std::max(plaintext_offset, chunk_start);
    const uint64_t to = std::min(end, chunk_start + *opened);
    std::memcpy(out.data() + written, ct.data() + (from - chunk_start), to - from);
    written += to - from;
  }
  return Status::Ok();
}

}  // namespace custos::files
