#include "common/bytes.h"

#include <openssl/evp.h>

namespace custos {

Bytes Concat(std::initializer_list<ByteSpan> parts) {
  Bytes out;
  size_t n = 0;
  for (auto p : parts) n += p.size();
  out.reserve(n);
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

std::string HexEncode(ByteSpan data) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(data.size() * 2);
  for (uint8_t b : data) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

static int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

StatusOr<Bytes> HexDecode(std::string_view hex) {
  if (hex.size() % 2 != 0) return InvalidArgument("hex string has odd length");
  Bytes out(hex.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = HexValue(hex[2 * i]), lo = HexValue(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return InvalidArgument("hex string has a non-hex character");
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string Base64Encode(ByteSpan data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data.data(),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

StatusOr<Bytes> Base64Decode(std::string_view b64) {
  if (b64.size() % 4 != 0) return InvalidArgument("base64 length is not a multiple of 4");
  for (size_t i = 0; i < b64.size(); ++i) {
    char c = b64[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/' || (c == '=' && i + 2 >= b64.size());
    if (!ok) return InvalidArgument("base64 has an invalid character");
  }
  if (b64.empty()) return Bytes{};
  Bytes out(b64.size() / 4 * 3);
  int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char*>(b64.data()),
                          static_cast<int>(b64.size()));
  if (n < 0) return InvalidArgument("base64 does not decode");
  size_t pad = 0;
  if (b64.back() == '=') pad++;
  if (b64.size() >= 2 && b64[b64.size() - 2] == '=') pad++;
  if (b64.size() >= 2 && b64[b64.size() - 2] == '=' && b64.back() != '=')
    return InvalidArgument("base64 padding is malformed");
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

ByteWriter& ByteWriter::U8(uint8_t v) {
  out_.push_back(v);
  return *this;
}
ByteWriter& ByteWriter::U16(uint16_t v) {
  out_.push_back(static_cast<uint8_t>(v >> 8));
  out_.push_back(static_cast<uint8_t>(v));
  return *this;
}
ByteWriter& ByteWriter::U32(uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out_.push_back(static_cast<uint8_t>(v >> s));
  return *this;
}
ByteWriter& ByteWriter::U64(uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) out_.push_back(static_cast<uint8_t>(v >> s));
  return *this;
}
ByteWriter& ByteWriter::Raw(ByteSpan data) {
  out_.insert(out_.end(), data.begin(), data.end());
  return *this;
}
ByteWriter& ByteWriter::Var(ByteSpan data) {
  U32(static_cast<uint32_t>(data.size()));
  return Raw(data);
}

StatusOr<ByteSpan> ByteReader::Raw(size_t n, const char* field) {
  if (remaining() < n) return InvalidArgument(std::string("truncated input reading ") + field);
  ByteSpan s = data_.subspan(pos_, n);
  pos_ += n;
  return s;
}

StatusOr<uint8_t> ByteReader::U8(const char* field) {
  ASSIGN_OR_RETURN(auto s, Raw(1, field));
  return s[0];
}
StatusOr<uint16_t> ByteReader::U16(const char* field) {
  ASSIGN_OR_RETURN(auto s, Raw(2, field));
  return static_cast<uint16_t>(s[0] << 8 | s[1]);
}
StatusOr<uint32_t> ByteReader::U32(const char* field) {
  ASSIGN_OR_RETURN(auto s, Raw(4, field));
  return uint32_t{s[0]} << 24 | uint32_t{s[1]} << 16 | uint32_t{s[2]} << 8 | uint32_t{s[3]};
}
StatusOr<uint64_t> ByteReader::U64(const char* field) {
  ASSIGN_OR_RETURN(auto s, Raw(8, field));
  uint64_t v = 0;
  for (uint8_t b : s) v = v << 8 | b;
  return v;
}
StatusOr<ByteSpan> ByteReader::Var(const char* field, size_t max_len) {
  ASSIGN_OR_RETURN(uint32_t n, U32(field));
  if (n > max_len) return InvalidArgument(std::string("length too large for ") + field);
  return Raw(n, field);
}
Status ByteReader::ExpectEnd(const char* what) const {
  if (remaining() != 0) return InvalidArgument(std::string("trailing bytes after ") + what);
  return Status::Ok();
}

}  // namespace custos
