#include "protocol/attestation/dcap_quote.h"

#include <algorithm>
#include <string>

namespace custos::attestation {

namespace {

constexpr uint16_t kCertDataPckChain = 5;
constexpr uint16_t kCertDataQeReport = 6;

// LeReader is a bounds-checked cursor over little-endian quote fields; every failure names
// the field being read.
class LeReader {
 public:
  explicit LeReader(ByteSpan data) : data_(data) {}

  StatusOr<ByteSpan> Raw(size_t n, const char* field) {
    if (data_.size() - pos_ < n) {
      return InvalidArgument(std::string("quote truncated reading ") + field);
    }
    ByteSpan s = data_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  StatusOr<Bytes> Copy(size_t n, const char* field) {
    ASSIGN_OR_RETURN(ByteSpan s, Raw(n, field));
    return Bytes(s.begin(), s.end());
  }
  StatusOr<uint16_t> U16(const char* field) {
    ASSIGN_OR_RETURN(ByteSpan s, Raw(2, field));
    return static_cast<uint16_t>(s[0] | (s[1] << 8));
  }
  StatusOr<uint32_t> U32(const char* field) {
    ASSIGN_OR_RETURN(ByteSpan s, Raw(4, field));
    return static_cast<uint32_t>(s[0]) | (static_cast<uint32_t>(s[1]) << 8) |
           (static_cast<uint32_t>(s[2]) << 16) | (static_cast<uint32_t>(s[3]) << 24);
  }
  Status Skip(size_t n, const char* field) { return Raw(n, field).status(); }
  size_t remaining() const { return data_.size() - pos_; }
  ByteSpan rest() const { return data_.subspan(pos_); }

 private:
  ByteSpan data_;
  size_t pos_ = 0;
};

StatusOr<TdReportBody> ParseTdReportBody(ByteSpan body) {
  if (body.size() != kTdReportBodySize) return InvalidArgument("TD report body must be 584 bytes");
  LeReader r(body);
  TdReportBody b;
  ASSIGN_OR_RETURN(b.tee_tcb_svn, r.Copy(16, "tee_tcb_svn"));
  ASSIGN_OR_RETURN(b.mr_seam, r.Copy(48, "mrseam"));
  ASSIGN_OR_RETURN(b.mr_signer_seam, r.Copy(48, "mrsignerseam"));
  ASSIGN_OR_RETURN(b.seam_attributes, r.Copy(8, "seam_attributes"));
  ASSIGN_OR_RETURN(b.td_attributes, r.Copy(8, "td_attributes"));
  ASSIGN_OR_RETURN(b.xfam, r.Copy(8, "xfam"));
  ASSIGN_OR_RETURN(b.mr_td, r.Copy(48, "mrtd"));
  ASSIGN_OR_RETURN(b.mr_config_id, r.Copy(48, "mrconfigid"));
  ASSIGN_OR_RETURN(b.mr_owner, r.Copy(48, "mrowner"));
  ASSIGN_OR_RETURN(b.mr_owner_config, r.Copy(48, "mrownerconfig"));
  for (auto& rtmr : b.rtmr) {
    ASSIGN_OR_RETURN(rtmr, r.Copy(48, "rtmr"));
  }
  ASSIGN_OR_RETURN(b.report_data, r.Copy(64, "report_data"));
  return b;
}

// ParseQeReportCertificationData reads the QE report, its signature, the QE authentication
// data and the nested PCK chain (certification data type 5), which must end `r` exactly.
Status ParseQeReportCertificationData(LeReader& r, DcapQuote& q) {
  ASSIGN_OR_RETURN(q.qe_report_raw, r.Copy(kSgxReportBodySize, "QE report"));
  ASSIGN_OR_RETURN(q.qe_report, ParseSgxReportBody(q.qe_report_raw));
  ASSIGN_OR_RETURN(q.qe_report_signature, r.Copy(64, "QE report signature"));
  ASSIGN_OR_RETURN(uint16_t auth_size, r.U16("QE auth data size"));
  ASSIGN_OR_RETURN(q.qe_auth_data, r.Copy(auth_size, "QE auth data"));
  ASSIGN_OR_RETURN(uint16_t type, r.U16("certification data type"));
  if (type != kCertDataPckChain) {
    return InvalidArgument("unsupported certification data type " + std::to_string(type) +
                           " (want 5, PCK certificate chain)");
  }
  ASSIGN_OR_RETURN(uint32_t size, r.U32("certification data size"));
  if (size != r.remaining()) return InvalidArgument("certification data size does not match");
  ASSIGN_OR_RETURN(ByteSpan pem, r.Raw(size, "PCK certificate chain"));
  // The chain is NUL-terminated text; only NUL padding may follow the PEM.
  size_t end = pem.size();
  while (end > 0 && pem[end - 1] == 0) --end;
  q.pck_chain_pem.assign(pem.begin(), pem.begin() + static_cast<std::ptrdiff_t>(end));
  if (q.pck_chain_pem.find('\0') != std::string::npos) {
    return InvalidArgument("NUL inside PCK certificate chain");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<SgxReportBody> ParseSgxReportBody(ByteSpan body) {
  if (body.size() != kSgxReportBodySize)
    return InvalidArgument("SGX report body must be 384 bytes");
  LeReader r(body);
  SgxReportBody b;
  ASSIGN_OR_RETURN(b.cpu_svn, r.Copy(16, "cpusvn"));
  ASSIGN_OR_RETURN(b.misc_select, r.U32("miscselect"));
  RETURN_IF_ERROR(r.Skip(28, "reserved1"));
  ASSIGN_OR_RETURN(b.attributes, r.Copy(16, "attributes"));
  ASSIGN_OR_RETURN(b.mr_enclave, r.Copy(32, "mrenclave"));
  RETURN_IF_ERROR(r.Skip(32, "reserved2"));
  ASSIGN_OR_RETURN(b.mr_signer, r.Copy(32, "mrsigner"));
  RETURN_IF_ERROR(r.Skip(96, "reserved3"));
  ASSIGN_OR_RETURN(b.isv_prod_id, r.U16("isvprodid"));
  ASSIGN_OR_RETURN(b.isv_svn, r.U16("isvsvn"));
  RETURN_IF_ERROR(r.Skip(60, "reserved4"));
  ASSIGN_OR_RETURN(b.report_data, r.Copy(64, "report_data"));
  return b;
}

StatusOr<DcapQuote> ParseDcapQuote(ByteSpan quote) {
  LeReader r(quote);
  DcapQuote q;
  ASSIGN_OR_RETURN(q.version, r.U16("version"));
  ASSIGN_OR_RETURN(q.attestation_key_type, r.U16("attestation key type"));
  ASSIGN_OR_RETURN(q.tee_type, r.U32("tee type"));
  RETURN_IF_ERROR(r.Skip(4, "qe_svn/pce_svn"));
  ASSIGN_OR_RETURN(q.qe_vendor_id, r.Copy(16, "QE vendor id"));
  ASSIGN_OR_RETURN(q.user_data, r.Copy(20, "user data"));
  if (q.attestation_key_type != kAttestationKeyEcdsaP256) {
    return InvalidArgument("unsupported attestation key type (want 2, ECDSA P-256)");
  }
  size_t body_size = 0;
  if (q.version == 3 && q.tee_type == kTeeTypeSgx) {
    body_size = kSgxReportBodySize;
  } else if (q.version == 4 && q.tee_type == kTeeTypeTdx) {
    body_size = kTdReportBodySize;
  } else {
    return InvalidArgument("unsupported quote version/TEE type (want SGX v3 or TDX v4)");
  }
  ASSIGN_OR_RETURN(ByteSpan body, r.Raw(body_size, "report body"));
  if (q.tee_type == kTeeTypeSgx) {
    ASSIGN_OR_RETURN(q.sgx_body, ParseSgxReportBody(body));
  } else {
    ASSIGN_OR_RETURN(q.td_body, ParseTdReportBody(body));
  }
  q.signed_part.assign(quote.begin(), quote.begin() + kQuoteHeaderSize + body_size);

  ASSIGN_OR_RETURN(uint32_t sig_len, r.U32("signature data length"));
  ASSIGN_OR_RETURN(ByteSpan sig_data, r.Raw(sig_len, "signature data"));
  // Some quote generators pad the buffer; anything after the signature data must be zero.
  ByteSpan tail = r.rest();
  if (!std::all_of(tail.begin(), tail.end(), [](uint8_t b) { return b == 0; })) {
    return InvalidArgument("non-zero bytes after the quote signature data");
  }

  LeReader s(sig_data);
  ASSIGN_OR_RETURN(q.quote_signature, s.Copy(64, "quote signature"));
  ASSIGN_OR_RETURN(q.attestation_key, s.Copy(64, "attestation key"));
  if (q.version == 3) {
    RETURN_IF_ERROR(ParseQeReportCertificationData(s, q));
    return q;
  }
  ASSIGN_OR_RETURN(uint16_t type, s.U16("certification data type"));
  if (type != kCertDataQeReport) {
    return InvalidArgument("unsupported certification data type " + std::to_string(type) +
                           " (want 6, QE report certification data)");
  }
  ASSIGN_OR_RETURN(uint32_t size, s.U32("certification data size"));
  if (size != s.remaining()) return InvalidArgument("certification data size does not match");
  RETURN_IF_ERROR(ParseQeReportCertificationData(s, q));
  return q;
}

}  // namespace custos::attestation
