// WipedBuffer: a heap buffer for bulk plaintext (file and object chunks) that is wiped when it
// goes out of scope, so no plaintext survives in freed memory. Key material, shares and
// passphrases go in SecretBytes (common/secret.h: also locked in memory, constant-time compare);
// this is the one type for everything larger that is secret only for a moment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "common/bytes.h"
#include "common/secret.h"

namespace custos {

class WipedBuffer {
 public:
  WipedBuffer() = default;
  explicit WipedBuffer(size_t size) : buf_(size) {}
  // Takes `bytes` over (no copy is left behind: the vector's storage moves).
  explicit WipedBuffer(Bytes&& bytes) : buf_(std::move(bytes)) {}
  static WipedBuffer CopyOf(ByteSpan bytes) { return WipedBuffer(Bytes(bytes.begin(), bytes.end())); }
  ~WipedBuffer() { WipeBytes(buf_); }
  WipedBuffer(const WipedBuffer&) = delete;
  WipedBuffer& operator=(const WipedBuffer&) = delete;
  WipedBuffer(WipedBuffer&& other) noexcept : buf_(std::move(other.buf_)) { other.buf_.clear(); }
  WipedBuffer& operator=(WipedBuffer&& other) noexcept {
    if (this != &other) {
      WipeBytes(buf_);
      buf_ = std::move(other.buf_);
      other.buf_.clear();
    }
    return *this;
  }

  uint8_t* data() { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  bool empty() const { return buf_.empty(); }
  std::span<uint8_t> span(size_t offset, size_t n) { return {buf_.data() + offset, n}; }
  ByteSpan view() const { return buf_; }

 private:
  Bytes buf_;
};

}  // namespace custos
