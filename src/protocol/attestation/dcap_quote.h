// Intel DCAP quote layout: SGX quote v3 and TDX quote v4 with an ECDSA P-256 attestation key
// (Intel "SGX ECDSA Quote Library Reference", appendix "Quote Format"; Intel TDX DCAP quote
// format v4). This file only parses: every field is bounds-checked and every length must add
// up, but nothing here is trusted until VerifyDcapQuote (dcap.h) has checked the signatures.
//
// All integers in a quote are little-endian.
#pragma once

#include <array>
#include <cstdint>

#include "common/bytes.h"

namespace custos::attestation {

// kTeeTypeSgx / kTeeTypeTdx are the header's tee_type values.
inline constexpr uint32_t kTeeTypeSgx = 0x00000000;
inline constexpr uint32_t kTeeTypeTdx = 0x00000081;
// kAttestationKeyEcdsaP256 is the header's attestation key type for ECDSA-256-with-P-256.
inline constexpr uint16_t kAttestationKeyEcdsaP256 = 2;
// kIntelQeVendorId is the QE vendor id of Intel's quoting enclaves.
inline constexpr std::array<uint8_t, 16> kIntelQeVendorId = {
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

// kQuoteHeaderSize, kSgxReportBodySize and kTdReportBodySize are the fixed sizes of the signed
// parts of a quote.
inline constexpr size_t kQuoteHeaderSize = 48;
inline constexpr size_t kSgxReportBodySize = 384;
inline constexpr size_t kTdReportBodySize = 584;

// SgxReportBody is an SGX enclave REPORT body (384 bytes): the application enclave's report in
// an SGX quote, and the quoting enclave's own report in the certification data.
struct SgxReportBody {
  Bytes cpu_svn;  // 16
  uint32_t misc_select = 0;
  Bytes attributes;  // 16: flags (u64 LE) then xfrm; flags bit 1 is DEBUG
  Bytes mr_enclave;  // 32
  Bytes mr_signer;   // 32
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  Bytes report_data;  // 64
  // debug reports the DEBUG attribute (bit 1 of the attribute flags).
  bool debug() const { return !attributes.empty() && (attributes[0] & 0x02) != 0; }
};

// TdReportBody is a TDX TD report body as carried in a v4 quote (584 bytes).
struct TdReportBody {
  Bytes tee_tcb_svn;          // 16
  Bytes mr_seam;              // 48
  Bytes mr_signer_seam;       // 48
  Bytes seam_attributes;      // 8
  Bytes td_attributes;        // 8: bit 0 is DEBUG
  Bytes xfam;                 // 8
  Bytes mr_td;                // 48
  Bytes mr_config_id;         // 48
  Bytes mr_owner;             // 48
  Bytes mr_owner_config;      // 48
  std::array<Bytes, 4> rtmr;  // 48 each
  Bytes report_data;          // 64
  // debug reports the TD's DEBUG attribute (bit 0 of td_attributes).
  bool debug() const { return !td_attributes.empty() && (td_attributes[0] & 0x01) != 0; }
};

// DcapQuote is a parsed quote. Spans of the original buffer are copied, so it owns its bytes.
struct DcapQuote {
  uint16_t version = 0;  // 3 (SGX) or 4 (TDX)
  uint16_t attestation_key_type = 0;
  uint32_t tee_type = 0;
  Bytes qe_vendor_id;      // 16
  Bytes user_data;         // 20
  SgxReportBody sgx_body;  // when tee_type == kTeeTypeSgx
  TdReportBody td_body;    // when tee_type == kTeeTypeTdx
  Bytes signed_part;       // header || body: what the attestation key signed
  Bytes quote_signature;   // 64, r || s
  Bytes attestation_key;   // 64, x || y
  Bytes qe_report_raw;     // 384: what the PCK key signed
  SgxReportBody qe_report;
  Bytes qe_report_signature;  // 64, r || s
  Bytes qe_auth_data;
  std::string pck_chain_pem;  // certification data type 5, trailing NUL padding removed
};

// ParseDcapQuote parses an SGX v3 or TDX v4 quote with an ECDSA P-256 attestation key and
// certification data type 5 (PCK chain), nested in type 6 (QE report certification data) for
// v4. Refuses unknown versions, key types, TEE types and certification data types, lengths that
// do not add up, and trailing bytes other than zero padding. InvalidArgument on failure.
StatusOr<DcapQuote> ParseDcapQuote(ByteSpan quote);

// ParseSgxReportBody parses a 384-byte SGX report body.
StatusOr<SgxReportBody> ParseSgxReportBody(ByteSpan body);

}  // namespace custos::attestation
