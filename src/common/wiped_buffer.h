// WipedBuffer: a heap buffer for bulk plaintext (file and object chunks) that is wiped when it
// goes out of scope, so no plaintext survives in freed memory. Key material, shares and
// passphrases go in SecretBytes (common/secret.h: also locked in memory, constant-time compare);
// this is the one type for everything larger that is secret only for a moment.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/secret.h"

namespace custos {

class WipedBuffer {
 public:
  explicit WipedBuffer(size_t size) : buf_(size) {}
  ~WipedBuffer() { WipeBytes(buf_); }
  WipedBuffer(const WipedBuffer&) = delete;
  WipedBuffer& operator=(const WipedBuffer&) = delete;

  uint8_t* data() { return buf_.data(); }
  size_t size() const { return buf_.size(); }
  std::span<uint8_t> span(size_t offset, size_t n) { return {buf_.data() + offset, n}; }

 private:
  std::vector<uint8_t> buf_;
};

}  // namespace custos
