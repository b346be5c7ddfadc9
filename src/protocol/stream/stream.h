// Streaming authenticated encryption of objects: the STREAM construction of Hoang, Reyhanitabar,
// Rogaway and Vizár ("Online Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance",
// CRYPTO 2015) instantiated with AES-256-GCM. See docs/DESIGN.md, "Objects".
//
// A plaintext is cut into chunks of `chunk_size` bytes; every chunk but the last is full, the last
// carries 0..chunk_size bytes (an empty plaintext is one empty final chunk). Chunk i is sealed
// with AES-256-GCM under the object's DEK with
//
//   nonce = nonce_prefix (7 bytes) || u32be(i) || last_flag (0x00, or 0x01 for the final chunk)
//   aad   = header_digest (32 bytes, binds the object header and id)
//
// and stored as ciphertext || tag (chunk_size + 16 bytes for every chunk but the last). The
// counter stops reordering and dropping chunks inside a stream, the last flag stops truncation
// and extension at a chunk boundary, the header digest stops moving chunks between objects. Each
// chunk authenticates on its own, so a reader can decrypt any chunk without reading the others
// (random access) and a streaming reader releases plaintext chunk by chunk in constant memory.
//
// The ciphertext length alone fixes the chunk layout (see StreamPlaintextLength), so no length
// field is stored. The encoding of a given plaintext is canonical: the encryptors here never emit
// an empty final chunk after full chunks, but the decryptors accept one (it is still a valid,
// authenticated STREAM encoding).
//
// Nonce uniqueness: a (DEK, nonce_prefix) pair must seal exactly one stream. Custos draws a fresh
// DEK per object and a random prefix, so this holds by construction; callers that reuse a DEK
// must never reuse a prefix with it.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "common/bytes.h"
#include "common/secret.h"
#include "common/status.h"
#include "crypto/aead.h"

namespace custos::files {

// kStreamKeySize is the DEK length (AES-256).
inline constexpr size_t kStreamKeySize = 32;
// kStreamNoncePrefixSize is the per-stream nonce prefix length.
inline constexpr size_t kStreamNoncePrefixSize = 7;
// kStreamHeaderDigestSize is the length of the associated data bound into every chunk.
inline constexpr size_t kStreamHeaderDigestSize = 32;
// kStreamTagSize is the per-chunk ciphertext expansion.
inline constexpr size_t kStreamTagSize = crypto::kGcmTagSize;
// kDefaultChunkSize is the plaintext bytes per chunk unless the header says otherwise.
inline constexpr uint32_t kDefaultChunkSize = 64 * 1024;
// kMinChunkSize and kMaxChunkSize bound the chunk size a stream may declare, so that a hostile
// header cannot make a reader allocate more than a few times 16 MiB.
inline constexpr uint32_t kMinChunkSize = 4 * 1024;
inline constexpr uint32_t kMaxChunkSize = 16 * 1024 * 1024;
// kMaxChunks is the number of distinct chunk counters (u32 in the nonce).
inline constexpr uint64_t kMaxChunks = uint64_t{1} << 32;

// StreamParams names what both directions need. It is a non-owning view: `dek`, `nonce_prefix`
// and `header_digest` must outlive every call that receives it.
struct StreamParams {
  const SecretBytes& dek;  // 32 bytes
  ByteSpan nonce_prefix;   // 7 bytes
  ByteSpan header_digest;  // 32 bytes
  uint32_t chunk_size = kDefaultChunkSize;
};

// ValidateStreamParams checks the sizes of every field; it never looks at the key's value.
Status ValidateStreamParams(const StreamParams& params);

// StreamCiphertextLength returns the ciphertext length the encryptors produce for a plaintext of
// `plaintext_length` bytes, or kInvalidArgument if the chunk size is out of range or the
// plaintext needs more than 2^32 chunks.
StatusOr<uint64_t> StreamCiphertextLength(uint64_t plaintext_length, uint32_t chunk_size);

// StreamLayout describes a ciphertext of a known length.
struct StreamLayout {
  uint64_t chunk_count = 0;           // >= 1
  uint64_t plaintext_length = 0;      // sum of the chunks' plaintext lengths
  uint32_t last_chunk_plaintext = 0;  // plaintext bytes in the final chunk (0..chunk_size)
};

// StreamPlaintextLength derives the layout from the total ciphertext length. A length that no
// STREAM encoding can have (zero, a final piece shorter than a tag, more than 2^32 chunks) is
// kIntegrity: it means the stored object was truncated or padded. The result is not
// authenticated until the final chunk has been decrypted with last = true.
StatusOr<StreamLayout> StreamPlaintextLength(uint64_t ciphertext_length, uint32_t chunk_size);

// StreamEncryptor seals one stream chunk by chunk, in order. It owns one AES-GCM key schedule and
// is not thread-safe. After the last chunk, or after any internal failure, it refuses further
// chunks (a failed seal may have used a nonce; it is never used again).
class StreamEncryptor {
 public:
  // Create checks the parameter sizes and expands the key once.
  static StatusOr<StreamEncryptor> Create(const SecretBytes& dek, ByteSpan nonce_prefix,
                                          uint32_t chunk_size, ByteSpan header_digest);
  static StatusOr<StreamEncryptor> Create(const StreamParams& params);
  // CreateAt starts the counter at `first_index`, for a writer that seals disjoint runs of one
  // stream's chunks in parallel (objects/transfer.h: one run per multipart part). The caller must
  // give every index to exactly one encryptor: two runs covering one index would reuse a nonce.
  static StatusOr<StreamEncryptor> CreateAt(const StreamParams& params, uint64_t first_index);

  // EncryptChunk seals the next chunk and OVERWRITES `out` with ciphertext || tag
  // (plaintext.size() + 16 bytes; `out`'s capacity is reused; `out` must not hold `plaintext`,
  // since resizing may move it). A chunk that is not `last` must
  // carry exactly chunk_size bytes; the last chunk carries 0..chunk_size bytes. Fails with
  // kInvalidArgument on a wrong size and kFailedPrecondition after the final chunk or when the
  // stream would exceed 2^32 chunks; on failure the chunk counter does not advance.
  Status EncryptChunk(ByteSpan plaintext, bool last, Bytes& out);
  // EncryptChunkInto is EncryptChunk writing to a caller buffer of exactly plaintext.size() + 16
  // bytes. `out` may start at plaintext.data() (in-place sealing); other overlaps are not allowed.
  Status EncryptChunkInto(ByteSpan plaintext, bool last, std::span<uint8_t> out);

  // next_index is the counter the next chunk will use.
  uint64_t next_index() const { return next_index_; }
  // finished reports whether the final chunk has been sealed.
  bool finished() const { return finished_; }
  uint32_t chunk_size() const { return chunk_size_; }

 private:
  StreamEncryptor(crypto::AesGcm gcm, ByteSpan nonce_prefix, uint32_t chunk_size,
                  ByteSpan header_digest);
  crypto::AesGcm gcm_;
  uint8_t nonce_prefix_[kStreamNoncePrefixSize];
  uint8_t header_digest_[kStreamHeaderDigestSize];
  uint32_t chunk_size_;
  uint64_t next_index_ = 0;
  bool finished_ = false;
  bool poisoned_ = false;
};

// StreamDecryptor opens chunks of one stream in any order (random access). It owns one AES-GCM
// key schedule and is not thread-safe. It does not track which chunks it has seen: ordering and
// completeness come from the caller passing the true index and `last` flag, which DecryptStream
// and DecryptRange derive from the position and the total length.
class StreamDecryptor {
 public:
  // Create checks the parameter sizes and expands the key once.
  static StatusOr<StreamDecryptor> Create(const SecretBytes& dek, ByteSpan nonce_prefix,
                                          uint32_t chunk_size, ByteSpan header_digest);
  static StatusOr<StreamDecryptor> Create(const StreamParams& params);

  // DecryptChunk authenticates chunk `index` (ciphertext || tag) as final or non-final chunk and
  // writes its plaintext to the front of `out`, returning the plaintext length. `out` needs at
  // least ciphertext_chunk.size() - 16 bytes and may start at ciphertext_chunk.data() (in-place).
  // Fails with kIntegrity when the chunk is too short, has the wrong size for a non-final chunk,
  // or does not authenticate under this index, flag and header digest; then the first
  // ciphertext_chunk.size() - 16 bytes of `out` are wiped. kInvalidArgument for index >= 2^32 or
  // a too small `out`.
  StatusOr<size_t> DecryptChunk(uint64_t index, ByteSpan ciphertext_chunk, bool last,
                                std::span<uint8_t> out);

  // Incremental opening of one chunk whose stored bytes (ciphertext || tag) arrive in pieces:
  // each piece is decrypted straight from the buffer it arrived in (objects/transfer.cc: the HTTP
  // client's receive buffer), so that no chunk is assembled, and no byte copied, first. The checks
  // are DecryptChunk's: the same size rules, nonce (index, last flag) and associated data.
  //
  // BeginChunk starts chunk `index` of `stored_size` bytes (ciphertext || tag) as final or
  // non-final chunk; kIntegrity for a size such a chunk cannot have, kInvalidArgument for
  // index >= 2^32. It abandons any chunk in progress.
  Status BeginChunk(uint64_t index, size_t stored_size, bool last);
  // UpdateChunk consumes the first min(stored.size(), chunk_bytes_left()) bytes of `stored` and
  // returns how many: ciphertext bytes are decrypted into `plaintext`, the chunk's whole plaintext
  // buffer (the same buffer, of at least stored_size - 16 bytes, at every call of one chunk), at
  // their offset in the chunk; tag bytes are kept. The plaintext written is NOT authenticated
  // until FinishChunk returns OK.
  StatusOr<size_t> UpdateChunk(ByteSpan stored, std::span<uint8_t> plaintext);
  // chunk_bytes_left is how many stored bytes the chunk in progress still needs (0 when none is).
  size_t chunk_bytes_left() const;
  // FinishChunk authenticates the chunk once all its stored bytes were consumed and returns its
  // plaintext length. kIntegrity (plaintext[0, stored_size - 16) wiped) when the chunk does not
  // authenticate; kFailedPrecondition when no chunk is in progress or bytes are still missing.
  StatusOr<size_t> FinishChunk(std::span<uint8_t> plaintext);

  uint32_t chunk_size() const { return chunk_size_; }

 private:
  StreamDecryptor(crypto::AesGcm gcm, ByteSpan nonce_prefix, uint32_t chunk_size,
                  ByteSpan header_digest);
  crypto::AesGcm gcm_;
  uint8_t nonce_prefix_[kStreamNoncePrefixSize];
  uint8_t header_digest_[kStreamHeaderDigestSize];
  uint32_t chunk_size_;
  // The chunk being opened incrementally (BeginChunk .. FinishChunk).
  struct Opening {
    uint64_t index = 0;
    size_t ciphertext_size = 0;  // stored size - 16
    size_t ciphertext_done = 0;
    uint8_t tag[kStreamTagSize] = {};
    size_t tag_done = 0;
  };
  std::optional<Opening> opening_;
};

// EncryptStream reads `in_fd` to EOF and writes the STREAM ciphertext to `out_fd`. Memory use is
// one chunk buffer whatever the input size; both descriptors may be pipes or sockets (no seeking).
// Read and write errors are kUnavailable naming the failing call; an input needing more than
// 2^32 chunks is kFailedPrecondition. On failure `out_fd` holds an incomplete ciphertext that
// will not decrypt (it has no final chunk).
Status EncryptStream(int in_fd, int out_fd, const StreamParams& params);

// DecryptStream reads a STREAM ciphertext from `in_fd` to EOF and writes the plaintext to
// `out_fd`, chunk by chunk; a chunk's plaintext is written only after that chunk authenticated.
// The final chunk is the one followed by EOF. Fails with kIntegrity if any chunk does not
// authenticate, if the input ends without a chunk flagged last ("stream truncated: final chunk
// missing"), ends inside a chunk, or continues after the last-flagged chunk. On failure `out_fd`
// may already hold the authentic plaintext of the chunks before the failing one: a caller that
// writes a file must write it under a temporary name and discard it unless this returns OK.
// Memory use is two chunk buffers whatever the input size.
Status DecryptStream(int in_fd, int out_fd, const StreamParams& params);

// DecryptRange decrypts plaintext bytes [plaintext_offset, plaintext_offset + out.size()) of a
// stream stored in `fd` at byte offset `chunk0_offset`, whose ciphertext is `ciphertext_length`
// bytes long. It preads only the chunks the range touches (one chunk buffer), using the length to
// find the final chunk. A range outside the plaintext is kInvalidArgument; a ciphertext length no
// STREAM encoding can have, a short read, or a chunk that does not authenticate is kIntegrity
// (and `out` is wiped). Only the touched chunks are authenticated: truncation or extension of the
// object is detected when the range reaches the (claimed) final chunk, not before.
Status DecryptRange(int fd, uint64_t chunk0_offset, uint64_t ciphertext_length,
                    uint64_t plaintext_offset, std::span<uint8_t> out, const StreamParams& params);

}  // namespace custos::files
