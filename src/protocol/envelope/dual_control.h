// Dual-control file format (`custos encrypt|decrypt`; docs/protocol.md, "Dual-control file
// format"). The data key is wrapped under a KEM to the joint key Y, so opening a file needs
// t_p provider AND t_c customer keepers; the body is a STREAM (files/stream.h).
//
//   header (164 bytes) =
//     magic "CUSTOSDC" (8) || u8 version (1) || u8 suite (1) || u8 mode (2 = dual control) ||
//     Y (33) || R (33) || file id (16) || u32 chunk size || nonce prefix (7) ||
//     wrap nonce (12) || wrapped DEK (32 + 16)
//   prefix        = the first 104 bytes (everything before the wrap nonce)
//   KEK           = KEM(S = r*Y; context = "custos/v1/file" || SHA-256(prefix))
//   wrapped DEK   = AES-256-GCM(KEK, wrap nonce, DEK, aad = prefix)
//   header digest = SHA-256("custos/v1/file-header" || header), the AAD of every body chunk
//   body          = STREAM chunks of `chunk size` plaintext bytes
#pragma once

#include "common/bytes.h"
#include "common/secret.h"
#include "crypto/p256.h"

namespace custos::files {

inline constexpr size_t kDualControlHeaderSize = 164;

struct DualControlHeader {
  crypto::Point y, r;
  Bytes file_id;       // 16
  uint32_t chunk_size = 0;
  Bytes nonce_prefix;  // 7
  Bytes wrap_nonce;    // 12
  Bytes wrapped_dek;   // 48

  Bytes Prefix() const;
  Bytes Encode() const;
  // Decode parses exactly kDualControlHeaderSize bytes and names the first bad field.
  static StatusOr<DualControlHeader> Decode(ByteSpan b);
  Bytes Digest() const;
  Bytes KemContext() const;
};

// EncryptDualControl reads `in_fd` to EOF and writes header + body to `out_fd`, in constant
// memory. No keeper is contacted: only the public key Y is needed.
Status EncryptDualControl(const crypto::Point& y, int in_fd, int out_fd,
                          uint32_t chunk_size = 64 * 1024);

// SealDualControlSecret returns a complete dual-control file (header || one final chunk), built
// in memory, whose plaintext is `secret` (at most kMinChunkSize bytes). The appliance stores its
// root key this way (the custody envelope, docs/protocol.md "Custody envelope"), so any quorum of
// both domains can also open it with `custos decrypt`.
StatusOr<Bytes> SealDualControlSecret(const crypto::Point& y, const SecretBytes& secret);

// OpenDualControlSecret opens a file made by SealDualControlSecret (or any single-chunk
// dual-control file) with the combined point S = y*R. kInvalidArgument for a malformed header,
// kIntegrity for a wrong S, an altered header or body, or a body that is not one chunk.
StatusOr<SecretBytes> OpenDualControlSecret(ByteSpan file, const crypto::Point& s);

// ReadDualControlHeader reads and parses the header from the current position of `fd`.
StatusOr<DualControlHeader> ReadDualControlHeader(int fd);

// UnwrapDek derives the KEK from the combined point S = y*R and opens the wrapped DEK;
// kIntegrity if S is wrong or the header was altered.
StatusOr<SecretBytes> UnwrapDek(const DualControlHeader& h, const crypto::Point& s);

// DecryptDualControlBody decrypts the body that follows the header in `in_fd` to `out_fd`.
Status DecryptDualControlBody(const DualControlHeader& h, const SecretBytes& dek, int in_fd,
                              int out_fd);

}  // namespace custos::files
