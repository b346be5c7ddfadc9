// Byte strings and the length-prefixed binary encoding used by every custos wire format
// (docs/protocol.md, "Encoding"): integers are big-endian; variable fields carry a u32 length.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace custos {

using Bytes = std::vector<uint8_t>;
using ByteSpan = std::span<const uint8_t>;

inline ByteSpan AsBytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
inline Bytes ToBytes(std::string_view s) { return Bytes(s.begin(), s.end()); }
inline std::string ToString(ByteSpan b) { return std::string(b.begin(), b.end()); }
Bytes Concat(std::initializer_list<ByteSpan> parts);

std::string HexEncode(ByteSpan data);
// HexDecode accepts upper or lower case; rejects odd length and non-hex characters.
StatusOr<Bytes> HexDecode(std::string_view hex);
// Standard base64 with padding (RFC 4648 section 4).
std::string Base64Encode(ByteSpan data);
StatusOr<Bytes> Base64Decode(std::string_view b64);

// ByteWriter appends big-endian integers and length-prefixed fields.
class ByteWriter {
 public:
  ByteWriter& U8(uint8_t v);
  ByteWriter& U16(uint16_t v);
  ByteWriter& U32(uint32_t v);
  ByteWriter& U64(uint64_t v);
  ByteWriter& Raw(ByteSpan data);
  // Var writes a u32 length then the bytes.
  ByteWriter& Var(ByteSpan data);
  ByteWriter& Var(std::string_view s) { return Var(AsBytes(s)); }
  // Reserve sizes the buffer once, so that a writer filled with secret bytes never reallocates
  // (a reallocation would free the old buffer unwiped).
  ByteWriter& Reserve(size_t n) {
    out_.reserve(n);
    return *this;
  }
  const Bytes& bytes() const { return out_; }
  Bytes Take() { return std::move(out_); }

 private:
  Bytes out_;
};

// ByteReader consumes what ByteWriter wrote. Every read is bounds-checked and names the field
// it was reading on failure; Var reads refuse lengths above `max_len`.
class ByteReader {
 public:
  explicit ByteReader(ByteSpan data) : data_(data) {}
  StatusOr<uint8_t> U8(const char* field);
  StatusOr<uint16_t> U16(const char* field);
  StatusOr<uint32_t> U32(const char* field);
  StatusOr<uint64_t> U64(const char* field);
  StatusOr<ByteSpan> Raw(size_t n, const char* field);
  StatusOr<ByteSpan> Var(const char* field, size_t max_len = 1 << 20);
  size_t remaining() const { return data_.size() - pos_; }
  size_t position() const { return pos_; }
  // ExpectEnd fails if unread bytes remain (trailing garbage is an error, not ignored).
  Status ExpectEnd(const char* what) const;

 private:
  ByteSpan data_;
  size_t pos_ = 0;
};

}  // namespace custos
