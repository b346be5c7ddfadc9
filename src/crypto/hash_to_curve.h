// RFC 9380 hashing to P-256: suite P256_XMD:SHA-256_SSWU_RO_ (expand_message_xmd with SHA-256,
// simplified SWU map, random-oracle variant: two field elements, two maps, one addition).
#pragma once

#include <array>

#include "common/bytes.h"
#include "crypto/p256.h"

namespace custos::crypto {

// ExpandMessageXmd implements expand_message_xmd(msg, DST, len_in_bytes) with SHA-256
// (RFC 9380 section 5.3.1). Fails if len > 8160 or DST longer than 255 bytes.
StatusOr<Bytes> ExpandMessageXmd(ByteSpan msg, ByteSpan dst, size_t len_in_bytes);

// HashToFieldP256 returns u[0], u[1] as 32-byte big-endian field elements (count = 2, L = 48).
StatusOr<std::array<Bytes, 2>> HashToFieldP256(ByteSpan msg, ByteSpan dst);

// MapToCurveSswuP256 maps one field element (32-byte big-endian, < p) to a curve point.
StatusOr<Point> MapToCurveSswuP256(ByteSpan u);

// HashToCurveP256 = map(u0) + map(u1) (P-256 has cofactor 1).
StatusOr<Point> HashToCurveP256(ByteSpan msg, ByteSpan dst);

// PedersenH returns custos' second generator H = hash_to_curve("H",
// DST = "CUSTOS-V1-P256-PEDERSEN"); nobody knows log_G(H). Computed once, then cached.
const Point& PedersenH();

}  // namespace custos::crypto
