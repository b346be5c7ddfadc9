// DCAP quote verification over OpenSSL 3's X.509 machinery (X509_STORE / X509_verify_cert with
// the pinned root as the only trust anchor, CRL checking on every certificate of every chain).
// Collateral formats: Intel PCS API v3/v4 ("TCB Info" v2/v3 and "Enclave Identity" v2 JSON).
#include "protocol/attestation/dcap.h"

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "crypto/ecdsa.h"
#include "crypto/hash.h"

namespace custos::attestation {

namespace {

using json = nlohmann::json;

// The Intel SGX Root CA (CN=Intel SGX Root CA, valid 2018-05-21 to 2049-12-31), the one trust
// anchor of DCAP. It is pinned twice: by its PEM here and by the SHA-256 of its DER below, which
// is checked at first use so an edit to one without the other cannot go unnoticed.
constexpr char kIntelSgxRootCaPem[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIICjzCCAjSgAwIBAgIUImUM1lqdNInzg7SVUr9QGzknBqwwCgYIKoZIzj0EAwIw\n"
    "aDEaMBgGA1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENv\n"
    "cnBvcmF0aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJ\n"
    "BgNVBAYTAlVTMB4XDTE4MDUyMTEwNDUxMFoXDTQ5MTIzMTIzNTk1OVowaDEaMBgG\n"
    "A1UEAwwRSW50ZWwgU0dYIFJvb3QgQ0ExGjAYBgNVBAoMEUludGVsIENvcnBvcmF0\n"
    "aW9uMRQwEgYDVQQHDAtTYW50YSBDbGFyYTELMAkGA1UECAwCQ0ExCzAJBgNVBAYT\n"
    "AlVTMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEC6nEwMDIYZOj/iPWsCzaEKi7\n"
    "1OiOSLRFhWGjbnBVJfVnkY4u3IjkDYYL0MxO4mqsyYjlBalTVYxFP2sJBK5zlKOB\n"
    "uzCBuDAfBgNVHSMEGDAWgBQiZQzWWp00ifODtJVSv1AbOScGrDBSBgNVHR8ESzBJ\n"
    "MEegRaBDhkFodHRwczovL2NlcnRpZmljYXRlcy50cnVzdGVkc2VydmljZXMuaW50\n"
    "ZWwuY29tL0ludGVsU0dYUm9vdENBLmRlcjAdBgNVHQ4EFgQUImUM1lqdNInzg7SV\n"
    "Ur9QGzknBqwwDgYDVR0PAQH/BAQDAgEGMBIGA1UdEwEB/wQIMAYBAf8CAQEwCgYI\n"
    "KoZIzj0EAwIDSQAwRgIhAOW/5QkR+S9CiSDcNoowLuPRLsWGf/Yi7GSX94BgwTwg\n"
    "AiEA4J0lrHoMs+Xo5o/sX6O9QWxHRAvZUGOdRQ7cvqRXaqI=\n"
    "-----END CERTIFICATE-----\n";
constexpr char kIntelSgxRootCaSha256[] =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

// Intel SGX PCK certificate extension OIDs (Intel "SGX PCK Certificate and CRL Profile").
constexpr char kSgxExtensionsOid[] = "1.2.840.113741.1.13.1";
constexpr char kSgxTcbOid[] = "1.2.840.113741.1.13.1.2";
constexpr char kSgxPceIdOid[] = "1.2.840.113741.1.13.1.3";
constexpr char kSgxFmspcOid[] = "1.2.840.113741.1.13.1.4";

constexpr size_t kMaxChainLength = 8;

template <typename T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using X509CrlPtr = std::unique_ptr<X509_CRL, Deleter<X509_CRL, X509_CRL_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE, X509_STORE_free>>;
using X509StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX, X509_STORE_CTX_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Asn1ObjectPtr = std::unique_ptr<ASN1_OBJECT, Deleter<ASN1_OBJECT, ASN1_OBJECT_free>>;

void FreeX509Stack(STACK_OF(X509) * s) { sk_X509_free(s); }
using X509StackPtr = std::unique_ptr<STACK_OF(X509), Deleter<STACK_OF(X509), FreeX509Stack>>;
void FreeAsn1Sequence(ASN1_SEQUENCE_ANY* s) { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); }
using Asn1SequencePtr =
    std::unique_ptr<ASN1_SEQUENCE_ANY, Deleter<ASN1_SEQUENCE_ANY, FreeAsn1Sequence>>;

using Chain = std::vector<X509Ptr>;

// ---------------------------------------------------------------------------------------------
// Certificates, CRLs and keys

Bytes CertDer(const X509* cert) {
  unsigned char* der = nullptr;
  int n = i2d_X509(cert, &der);
  if (n <= 0) return {};
  Bytes out(der, der + n);
  OPENSSL_free(der);
  return out;
}

// ParsePemChain reads one or more PEM certificates. The text must be exactly the canonical PEM
// of the certificates it holds (64-column base64, no other text): a changed byte anywhere,
// framing included, is refused rather than silently skipped by the PEM reader.
StatusOr<Chain> ParsePemChain(std::string_view pem, const std::string& what) {
  if (pem.size() > (1u << 20)) return InvalidArgument(what + ": too large");
  BioPtr in(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  BioPtr out(BIO_new(BIO_s_mem()));
  if (!in || !out) return InternalError("cannot allocate BIO");
  Chain chain;
  while (chain.size() <= kMaxChainLength) {
    X509* cert = PEM_read_bio_X509(in.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    chain.emplace_back(cert);
    if (PEM_write_bio_X509(out.get(), cert) != 1) return InternalError("cannot encode PEM");
  }
  ERR_clear_error();
  if (chain.empty() || chain.size() > kMaxChainLength) {
    return InvalidArgument(what + ": expected 1 to 8 PEM certificates");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(out.get(), &data);
  if (len < 0 || std::string_view(data, static_cast<size_t>(len)) != pem) {
    return InvalidArgument(what + ": not canonical PEM (stray or altered text)");
  }
  return chain;
}

StatusOr<X509Ptr> ParseRootCa() {
  ASSIGN_OR_RETURN(Chain root, ParsePemChain(kIntelSgxRootCaPem, "pinned Intel SGX Root CA"));
  if (root.size() != 1) return InternalError("pinned root must be one certificate");
  if (HexEncode(crypto::Sha256(CertDer(root[0].get()))) != kIntelSgxRootCaSha256) {
    return InternalError("pinned Intel SGX Root CA does not match its pinned fingerprint");
  }
  return std::move(root[0]);
}

StatusOr<X509CrlPtr> ParseCrlDer(ByteSpan der, const std::string& what) {
  const unsigned char* p = der.data();
  X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!crl || p != der.data() + der.size()) return InvalidArgument(what + ": not a DER CRL");
  return crl;
}

// P256Key returns the certificate's public key, which must be an ECDSA P-256 key.
StatusOr<crypto::VerifyingKey> P256Key(X509* cert, const std::string& what) {
  EVP_PKEY* pkey = X509_get0_pubkey(cert);
  char group[32] = {0};
  size_t group_len = 0;
  unsigned char pub[65];
  size_t pub_len = 0;
  bool ok = pkey != nullptr && EVP_PKEY_is_a(pkey, "EC") &&
            EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &group_len) == 1 &&
            std::strcmp(group, "prime256v1") == 0 &&
            EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub,
                                            sizeof(pub), &pub_len) == 1;
  ERR_clear_error();
  if (!ok) return IntegrityError(what + ": key is not ECDSA P-256");
  return crypto::VerifyingKey::Decode(ByteSpan(pub, pub_len));
}

bool IsTimeError(int err) {
  return err == X509_V_ERR_CERT_HAS_EXPIRED || err == X509_V_ERR_CERT_NOT_YET_VALID ||
         err == X509_V_ERR_CRL_HAS_EXPIRED || err == X509_V_ERR_CRL_NOT_YET_VALID;
}

// VerifyChain checks that `chain` (leaf first) ends in the pinned root and that the leaf chains
// to it at `at`, with every certificate checked against `crls` (which must cover each issuer).
Status VerifyChain(const Chain& chain, X509* root, const std::vector<X509_CRL*>& crls,
                   std::time_t at, const std::string& what) {
  if (chain.size() < 2) return IntegrityError(what + ": chain must include its issuer");
  if (CertDer(chain.back().get()) != CertDer(root)) {
    return IntegrityError(what + ": chain does not end in the pinned Intel SGX Root CA");
  }
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  X509StackPtr untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted) return InternalError("cannot allocate X509 store");
  if (X509_STORE_add_cert(store.get(), root) != 1) return InternalError("cannot add root");
  for (X509_CRL* crl : crls) {
    if (X509_STORE_add_crl(store.get(), crl) != 1) return InternalError("cannot add CRL");
  }
  for (size_t i = 1; i + 1 < chain.size(); ++i) {
    if (sk_X509_push(untrusted.get(), chain[i].get()) <= 0) return InternalError("sk_X509_push");
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get()) != 1) {
    return InternalError("cannot initialise X509 store context");
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  X509_VERIFY_PARAM_set_time(param, at);
  int rc = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (rc == 1) return Status::Ok();
  int err = X509_STORE_CTX_get_error(ctx.get());
  std::string msg = what + ": " + X509_verify_cert_error_string(err) + " (depth " +
                    std::to_string(X509_STORE_CTX_get_error_depth(ctx.get())) + ")";
  if (IsTimeError(err)) return FailedPrecondition(msg);
  return IntegrityError(msg);
}

// VerifyCrlIssuer checks that `crl` names and is signed by `issuer`.
Status VerifyCrlIssuer(X509_CRL* crl, X509* issuer, const std::string& what) {
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
    return IntegrityError(what + ": issuer name does not match its issuer chain");
  }
  EVP_PKEY* key = X509_get0_pubkey(issuer);
  int rc = key == nullptr ? -1 : X509_CRL_verify(crl, key);
  ERR_clear_error();
  if (rc != 1) return IntegrityError(what + ": signature does not verify");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// PCK certificate SGX extensions

struct PckExtensions {
  std::array<int64_t, 16> cpu_svn_components{};
  int64_t pce_svn = -1;
  std::string fmspc;   // upper-case hex, 6 bytes
  std::string pce_id;  // upper-case hex, 2 bytes
};

char AsciiUpper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c; }

std::string OidText(const ASN1_OBJECT* obj) {
  char buf[80];
  int n = OBJ_obj2txt(buf, sizeof(buf), obj, /*no_name=*/1);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof(buf)) return {};
  return std::string(buf, static_cast<size_t>(n));
}

StatusOr<Asn1SequencePtr> DecodeSequence(const unsigned char* der, long len) {
  const unsigned char* p = der;
  Asn1SequencePtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, len));
  ERR_clear_error();
  if (!seq || p != der + len) return IntegrityError("PCK certificate: malformed SGX extension");
  return seq;
}

// OidValuePair decodes SEQUENCE { OBJECT IDENTIFIER, value } from an ASN1_TYPE of type SEQUENCE.
StatusOr<std::pair<std::string, Asn1SequencePtr>> OidValuePair(const ASN1_TYPE* t) {
  if (ASN1_TYPE_get(t) != V_ASN1_SEQUENCE) {
    return IntegrityError("PCK certificate: malformed SGX extension entry");
  }
  const ASN1_STRING* s = t->value.sequence;
  ASSIGN_OR_RETURN(Asn1SequencePtr pair,
                   DecodeSequence(ASN1_STRING_get0_data(s), ASN1_STRING_length(s)));
  if (sk_ASN1_TYPE_num(pair.get()) != 2 ||
      ASN1_TYPE_get(sk_ASN1_TYPE_value(pair.get(), 0)) != V_ASN1_OBJECT) {
    return IntegrityError("PCK certificate: malformed SGX extension entry");
  }
  std::string oid = OidText(sk_ASN1_TYPE_value(pair.get(), 0)->value.object);
  return std::make_pair(std::move(oid), std::move(pair));
}

StatusOr<std::string> OctetHex(const ASN1_TYPE* v, size_t size, const char* what) {
  if (ASN1_TYPE_get(v) != V_ASN1_OCTET_STRING ||
      static_cast<size_t>(ASN1_STRING_length(v->value.octet_string)) != size) {
    return IntegrityError(std::string("PCK certificate: malformed ") + what);
  }
  std::string hex = HexEncode(ByteSpan(ASN1_STRING_get0_data(v->value.octet_string), size));
  std::transform(hex.begin(), hex.end(), hex.begin(), AsciiUpper);
  return hex;
}

StatusOr<int64_t> SmallInteger(const ASN1_TYPE* v, const char* what) {
  int64_t out = -1;
  if (ASN1_TYPE_get(v) != V_ASN1_INTEGER || ASN1_INTEGER_get_int64(&out, v->value.integer) != 1 ||
      out < 0 || out > 0xffff) {
    ERR_clear_error();
    return IntegrityError(std::string("PCK certificate: malformed ") + what);
  }
  return out;
}

StatusOr<PckExtensions> ParsePckExtensions(X509* leaf) {
  Asn1ObjectPtr oid(OBJ_txt2obj(kSgxExtensionsOid, 1));
  if (!oid) return InternalError("OBJ_txt2obj");
  int idx = X509_get_ext_by_OBJ(leaf, oid.get(), -1);
  if (idx < 0) return IntegrityError("PCK certificate: no SGX extensions");
  if (X509_get_ext_by_OBJ(leaf, oid.get(), idx) >= 0) {
    return IntegrityError("PCK certificate: duplicate SGX extensions");
  }
  const ASN1_OCTET_STRING* data = X509_EXTENSION_get_data(X509_get_ext(leaf, idx));
  ASSIGN_OR_RETURN(Asn1SequencePtr top,
                   DecodeSequence(ASN1_STRING_get0_data(data), ASN1_STRING_length(data)));
  PckExtensions ext;
  bool have_tcb = false;
  for (int i = 0; i < sk_ASN1_TYPE_num(top.get()); ++i) {
    ASSIGN_OR_RETURN(auto entry, OidValuePair(sk_ASN1_TYPE_value(top.get(), i)));
    const ASN1_TYPE* value = sk_ASN1_TYPE_value(entry.second.get(), 1);
    if (entry.first == kSgxFmspcOid) {
      if (!ext.fmspc.empty()) return IntegrityError("PCK certificate: duplicate FMSPC");
      ASSIGN_OR_RETURN(ext.fmspc, OctetHex(value, 6, "FMSPC"));
    } else if (entry.first == kSgxPceIdOid) {
      if (!ext.pce_id.empty()) return IntegrityError("PCK certificate: duplicate PCE-ID");
      ASSIGN_OR_RETURN(ext.pce_id, OctetHex(value, 2, "PCE-ID"));
    } else if (entry.first == kSgxTcbOid) {
      if (have_tcb || ASN1_TYPE_get(value) != V_ASN1_SEQUENCE) {
        return IntegrityError("PCK certificate: malformed TCB extension");
      }
      have_tcb = true;
      ASSIGN_OR_RETURN(Asn1SequencePtr tcb,
                       DecodeSequence(ASN1_STRING_get0_data(value->value.sequence),
                                      ASN1_STRING_length(value->value.sequence)));
      std::array<bool, 18> seen{};
      for (int j = 0; j < sk_ASN1_TYPE_num(tcb.get()); ++j) {
        ASSIGN_OR_RETURN(auto comp, OidValuePair(sk_ASN1_TYPE_value(tcb.get(), j)));
        const std::string prefix = std::string(kSgxTcbOid) + ".";
        if (comp.first.rfind(prefix, 0) != 0) continue;
        std::string arc = comp.first.substr(prefix.size());
        int n = 0;
        if (arc.empty() || arc.size() > 2 ||
            !std::all_of(arc.begin(), arc.end(), [](char c) { return c >= '0' && c <= '9'; })) {
          continue;
        }
        n = std::stoi(arc);
        const ASN1_TYPE* v = sk_ASN1_TYPE_value(comp.second.get(), 1);
        if (n >= 1 && n <= 17) {
          if (seen[static_cast<size_t>(n)])
            return IntegrityError("PCK certificate: duplicate TCB component");
          seen[static_cast<size_t>(n)] = true;
          ASSIGN_OR_RETURN(int64_t svn, SmallInteger(v, "TCB component"));
          if (n == 17) {
            ext.pce_svn = svn;
          } else {
            if (svn > 255) return IntegrityError("PCK certificate: CPU SVN component out of range");
            ext.cpu_svn_components[static_cast<size_t>(n - 1)] = svn;
          }
        }
      }
      if (!std::all_of(seen.begin() + 1, seen.end(), [](bool b) { return b; })) {
        return IntegrityError("PCK certificate: TCB extension lacks a component");
      }
    }
  }
  if (!have_tcb || ext.fmspc.empty() || ext.pce_id.empty()) {
    return IntegrityError("PCK certificate: SGX extensions lack TCB, FMSPC or PCE-ID");
  }
  return ext;
}

// ---------------------------------------------------------------------------------------------
// JSON helpers: typed access that never throws and names the missing field.

StatusOr<json> ParseJsonObject(std::string_view text, const std::string& what) {
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument(what + ": not a JSON object");
  return j;
}

StatusOr<const json*> Field(const json& obj, const char* key, const std::string& what) {
  auto it = obj.find(key);
  if (it == obj.end()) return InvalidArgument(what + ": missing \"" + key + "\"");
  return &*it;
}

StatusOr<std::string> StringField(const json& obj, const char* key, const std::string& what) {
  ASSIGN_OR_RETURN(const json* v, Field(obj, key, what));
  if (!v->is_string()) return InvalidArgument(what + ": \"" + key + "\" must be a string");
  return v->get_ref<const std::string&>();
}

StatusOr<int64_t> IntField(const json& obj, const char* key, const std::string& what) {
  ASSIGN_OR_RETURN(const json* v, Field(obj, key, what));
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (u > 0xffffffffu) return InvalidArgument(what + ": \"" + key + "\" out of range");
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer())
    return InvalidArgument(what + ": \"" + key + "\" must be an integer");
  int64_t i = v->get<int64_t>();
  if (i < 0 || i > 0xffffffff) return InvalidArgument(what + ": \"" + key + "\" out of range");
  return i;
}

StatusOr<const json*> ArrayField(const json& obj, const char* key, const std::string& what) {
  ASSIGN_OR_RETURN(const json* v, Field(obj, key, what));
  if (!v->is_array()) return InvalidArgument(what + ": \"" + key + "\" must be an array");
  return v;
}

StatusOr<Bytes> HexField(const json& obj, const char* key, size_t size, const std::string& what) {
  ASSIGN_OR_RETURN(std::string hex, StringField(obj, key, what));
  auto bytes = HexDecode(hex);
  if (!bytes.ok() || bytes->size() != size) {
    return InvalidArgument(what + ": \"" + key + "\" must be " + std::to_string(size) +
                           " bytes of hex");
  }
  return std::move(bytes).value();
}

StatusOr<std::vector<std::string>> AdvisoryIds(const json& level, const std::string& what) {
  std::vector<std::string> out;
  auto it = level.find("advisoryIDs");
  if (it == level.end()) return out;
  if (!it->is_array()) return InvalidArgument(what + ": advisoryIDs must be an array");
  for (const json& a : *it) {
    if (!a.is_string()) return InvalidArgument(what + ": advisoryIDs must hold strings");
    out.push_back(a.get<std::string>());
  }
  return out;
}

// ValidityWindow checks issueDate <= at <= nextUpdate.
Status CheckValidity(const json& obj, std::time_t at, const std::string& what) {
  ASSIGN_OR_RETURN(std::string issue_text, StringField(obj, "issueDate", what));
  ASSIGN_OR_RETURN(std::string next_text, StringField(obj, "nextUpdate", what));
  ASSIGN_OR_RETURN(std::time_t issue, ParseRfc3339Utc(issue_text));
  ASSIGN_OR_RETURN(std::time_t next, ParseRfc3339Utc(next_text));
  if (at < issue)
    return FailedPrecondition(what + ": not yet valid (issueDate " + issue_text + ")");
  if (at > next) return FailedPrecondition(what + ": expired (nextUpdate " + next_text + ")");
  return Status::Ok();
}

// Signed collateral: the issuer chain reaches the root (root CA CRL applied) and its leaf signed
// the exact JSON text.
Status VerifySignedJson(std::string_view chain_pem, std::string_view text, ByteSpan signature,
                        X509* root, X509_CRL* root_crl, std::time_t at, const std::string& what) {
  ASSIGN_OR_RETURN(Chain chain, ParsePemChain(chain_pem, what + " issuer chain"));
  RETURN_IF_ERROR(VerifyChain(chain, root, {root_crl}, at, what + " issuer chain"));
  ASSIGN_OR_RETURN(crypto::VerifyingKey key, P256Key(chain[0].get(), what + " signing cert"));
  if (!key.Verify(AsBytes(text), signature).ok()) {
    return IntegrityError(what + ": signature does not verify");
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// TCB status convergence (Intel QVL): a worse QE or TDX-module status drags the platform status.

int Severity(const std::string& s) {
  static const std::map<std::string, int> kOrder = {{"UpToDate", 0},
                                                    {"SWHardeningNeeded", 1},
                                                    {"ConfigurationNeeded", 2},
                                                    {"ConfigurationAndSWHardeningNeeded", 3},
                                                    {"OutOfDate", 4},
                                                    {"OutOfDateConfigurationNeeded", 5},
                                                    {"Revoked", 6}};
  auto it = kOrder.find(s);
  return it == kOrder.end() ? -1 : it->second;
}

std::string Converge(const std::string& platform, const std::string& component) {
  if (component == "Revoked") return "Revoked";
  if (component == "OutOfDate") {
    if (platform == "UpToDate" || platform == "SWHardeningNeeded") return "OutOfDate";
    if (platform == "ConfigurationNeeded" || platform == "ConfigurationAndSWHardeningNeeded") {
      return "OutOfDateConfigurationNeeded";
    }
  }
  return platform;
}

void AppendUnique(std::vector<std::string>& to, const std::vector<std::string>& from) {
  for (const auto& a : from) {
    if (std::find(to.begin(), to.end(), a) == to.end()) to.push_back(a);
  }
}

struct TcbResult {
  std::string status;
  std::vector<std::string> advisories;
};

// MatchQeIdentity checks the QE report against the QE identity and returns its TCB status.
StatusOr<TcbResult> MatchQeIdentity(const json& id, const SgxReportBody& qe, bool tdx) {
  const std::string what = "QE identity";
  ASSIGN_OR_RETURN(std::string name, StringField(id, "id", what));
  if (name != (tdx ? "TD_QE" : "QE")) return IntegrityError(what + ": wrong id \"" + name + "\"");
  ASSIGN_OR_RETURN(int64_t version, IntField(id, "version", what));
  if (version != 2) return InvalidArgument(what + ": unsupported version");
  ASSIGN_OR_RETURN(Bytes mrsigner, HexField(id, "mrsigner", 32, what));
  if (mrsigner != qe.mr_signer) return IntegrityError(what + ": QE mrsigner mismatch");
  ASSIGN_OR_RETURN(int64_t prod_id, IntField(id, "isvprodid", what));
  if (prod_id != qe.isv_prod_id) return IntegrityError(what + ": QE isvprodid mismatch");
  ASSIGN_OR_RETURN(Bytes misc, HexField(id, "miscselect", 4, what));
  ASSIGN_OR_RETURN(Bytes misc_mask, HexField(id, "miscselectMask", 4, what));
  // The JSON writes miscselect as a big-endian 32-bit hex number.
  auto be32 = [](const Bytes& b) {
    return (uint32_t{b[0]} << 24) | (uint32_t{b[1]} << 16) | (uint32_t{b[2]} << 8) | b[3];
  };
  if ((qe.misc_select & be32(misc_mask)) != be32(misc)) {
    return IntegrityError(what + ": QE miscselect mismatch");
  }
  ASSIGN_OR_RETURN(Bytes attrs, HexField(id, "attributes", 16, what));
  ASSIGN_OR_RETURN(Bytes attrs_mask, HexField(id, "attributesMask", 16, what));
  for (size_t i = 0; i < 16; ++i) {
    if ((qe.attributes[i] & attrs_mask[i]) != attrs[i]) {
      return IntegrityError(what + ": QE attributes mismatch");
    }
  }
  ASSIGN_OR_RETURN(const json* levels, ArrayField(id, "tcbLevels", what));
  for (const json& level : *levels) {
    if (!level.is_object()) return InvalidArgument(what + ": tcbLevels must hold objects");
    ASSIGN_OR_RETURN(const json* tcb, Field(level, "tcb", what));
    if (!tcb->is_object()) return InvalidArgument(what + ": tcb must be an object");
    ASSIGN_OR_RETURN(int64_t isvsvn, IntField(*tcb, "isvsvn", what));
    if (isvsvn > qe.isv_svn) continue;
    TcbResult r;
    ASSIGN_OR_RETURN(r.status, StringField(level, "tcbStatus", what));
    ASSIGN_OR_RETURN(r.advisories, AdvisoryIds(level, what));
    return r;
  }
  return IntegrityError(what + ": no TCB level matches the QE's isvsvn");
}

// SgxComponents reads the 16 SGX TCB component SVNs of a TCB info level (v3 array form or v2
// sgxtcbcompNNsvn fields).
StatusOr<std::array<int64_t, 16>> SgxComponents(const json& tcb, int64_t version,
                                                const std::string& what) {
  std::array<int64_t, 16> out{};
  if (version >= 3) {
    ASSIGN_OR_RETURN(const json* comps, ArrayField(tcb, "sgxtcbcomponents", what));
    if (comps->size() != 16) return InvalidArgument(what + ": need 16 sgxtcbcomponents");
    for (size_t i = 0; i < 16; ++i) {
      if (!(*comps)[i].is_object()) return InvalidArgument(what + ": bad sgxtcbcomponents");
      ASSIGN_OR_RETURN(out[i], IntField((*comps)[i], "svn", what));
    }
  } else {
    for (size_t i = 0; i < 16; ++i) {
      char key[24];
      std::snprintf(key, sizeof(key), "sgxtcbcomp%02zusvn", i + 1);
      ASSIGN_OR_RETURN(out[i], IntField(tcb, key, what));
    }
  }
  return out;
}

// MatchTdxModule checks MRSIGNERSEAM and the SEAM attributes against TCB info and, for TDX
// module major versions above 0, returns the module's TCB status from tdxModuleIdentities.
StatusOr<TcbResult> MatchTdxModule(const json& info, const TdReportBody& td) {
  const std::string what = "TCB info";
  TcbResult r{"UpToDate", {}};
  const uint8_t major = td.tee_tcb_svn[1];
  const json* module = nullptr;
  if (major > 0) {
    ASSIGN_OR_RETURN(const json* ids, ArrayField(info, "tdxModuleIdentities", what));
    char want[16];
    std::snprintf(want, sizeof(want), "TDX_%02u", static_cast<unsigned>(major));
    for (const json& m : *ids) {
      if (m.is_object() && m.contains("id") && m["id"].is_string() && m["id"] == want) {
        module = &m;
        break;
      }
    }
    if (module == nullptr) return IntegrityError(what + ": no TDX module identity " + want);
  } else {
    ASSIGN_OR_RETURN(module, Field(info, "tdxModule", what));
    if (!module->is_object()) return InvalidArgument(what + ": tdxModule must be an object");
  }
  ASSIGN_OR_RETURN(Bytes mrsigner, HexField(*module, "mrsigner", 48, what));
  if (mrsigner != td.mr_signer_seam) return IntegrityError(what + ": TDX module mrsigner mismatch");
  ASSIGN_OR_RETURN(Bytes attrs, HexField(*module, "attributes", 8, what));
  ASSIGN_OR_RETURN(Bytes mask, HexField(*module, "attributesMask", 8, what));
  for (size_t i = 0; i < 8; ++i) {
    if ((td.seam_attributes[i] & mask[i]) != attrs[i]) {
      return IntegrityError(what + ": TDX module attributes mismatch");
    }
  }
  if (major == 0) return r;
  ASSIGN_OR_RETURN(const json* levels, ArrayField(*module, "tcbLevels", what));
  for (const json& level : *levels) {
    if (!level.is_object()) return InvalidArgument(what + ": tcbLevels must hold objects");
    ASSIGN_OR_RETURN(const json* tcb, Field(level, "tcb", what));
    if (!tcb->is_object()) return InvalidArgument(what + ": tcb must be an object");
    ASSIGN_OR_RETURN(int64_t isvsvn, IntField(*tcb, "isvsvn", what));
    if (isvsvn > td.tee_tcb_svn[0]) continue;
    ASSIGN_OR_RETURN(r.status, StringField(level, "tcbStatus", what));
    ASSIGN_OR_RETURN(r.advisories, AdvisoryIds(level, what));
    return r;
  }
  return IntegrityError(what + ": no TDX module TCB level matches");
}

// MatchTcbInfo picks the first TCB level the platform meets and returns its status.
StatusOr<TcbResult> MatchTcbInfo(const json& info, const PckExtensions& pck, const DcapQuote& q) {
  const std::string what = "TCB info";
  const bool tdx = q.tee_type == kTeeTypeTdx;
  ASSIGN_OR_RETURN(int64_t version, IntField(info, "version", what));
  if (version != 2 && version != 3) return InvalidArgument(what + ": unsupported version");
  if (version == 3 || tdx) {
    ASSIGN_OR_RETURN(std::string id, StringField(info, "id", what));
    if (id != (tdx ? "TDX" : "SGX")) return IntegrityError(what + ": wrong id \"" + id + "\"");
  }
  ASSIGN_OR_RETURN(std::string fmspc, StringField(info, "fmspc", what));
  std::transform(fmspc.begin(), fmspc.end(), fmspc.begin(), AsciiUpper);
  if (fmspc != pck.fmspc)
    return IntegrityError(what + ": FMSPC does not match the PCK certificate");
  ASSIGN_OR_RETURN(std::string pce_id, StringField(info, "pceId", what));
  std::transform(pce_id.begin(), pce_id.end(), pce_id.begin(), AsciiUpper);
  if (pce_id != pck.pce_id)
    return IntegrityError(what + ": PCE-ID does not match the PCK certificate");

  TcbResult module{"UpToDate", {}};
  if (tdx) {
    ASSIGN_OR_RETURN(module, MatchTdxModule(info, q.td_body));
  }
  // With a TDX module of major version > 0, its SVN is judged by tdxModuleIdentities above, so
  // the first two TEE TCB SVN bytes are not compared against tdxtcbcomponents (Intel QVL).
  const size_t tdx_start = (tdx && q.td_body.tee_tcb_svn[1] > 0) ? 2 : 0;

  ASSIGN_OR_RETURN(const json* levels, ArrayField(info, "tcbLevels", what));
  for (const json& level : *levels) {
    if (!level.is_object()) return InvalidArgument(what + ": tcbLevels must hold objects");
    ASSIGN_OR_RETURN(const json* tcb, Field(level, "tcb", what));
    if (!tcb->is_object()) return InvalidArgument(what + ": tcb must be an object");
    ASSIGN_OR_RETURN(auto sgx, SgxComponents(*tcb, version, what));
    ASSIGN_OR_RETURN(int64_t pcesvn, IntField(*tcb, "pcesvn", what));
    bool meets = pcesvn <= pck.pce_svn;
    for (size_t i = 0; i < 16 && meets; ++i) meets = sgx[i] <= pck.cpu_svn_components[i];
    if (meets && tdx) {
      ASSIGN_OR_RETURN(const json* comps, ArrayField(*tcb, "tdxtcbcomponents", what));
      if (comps->size() != 16) return InvalidArgument(what + ": need 16 tdxtcbcomponents");
      for (size_t i = tdx_start; i < 16 && meets; ++i) {
        if (!(*comps)[i].is_object()) return InvalidArgument(what + ": bad tdxtcbcomponents");
        ASSIGN_OR_RETURN(int64_t svn, IntField((*comps)[i], "svn", what));
        meets = svn <= q.td_body.tee_tcb_svn[i];
      }
    }
    if (!meets) continue;
    TcbResult r;
    ASSIGN_OR_RETURN(r.status, StringField(level, "tcbStatus", what));
    ASSIGN_OR_RETURN(r.advisories, AdvisoryIds(level, what));
    if (tdx) {
      r.status = Converge(r.status, module.status);
      AppendUnique(r.advisories, module.advisories);
    }
    return r;
  }
  return IntegrityError(what + ": no TCB level matches the platform (TCB not supported)");
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

Status VerifyDcapQuoteImpl(const DcapQuote& q, const DcapCollateral& c, std::time_t at,
                           DcapVerdict& v) {
  const bool tdx = q.tee_type == kTeeTypeTdx;
  if (!std::equal(q.qe_vendor_id.begin(), q.qe_vendor_id.end(), kIntelQeVendorId.begin(),
                  kIntelQeVendorId.end())) {
    return IntegrityError("quote: QE vendor id is not Intel's");
  }
  ASSIGN_OR_RETURN(X509Ptr root, ParseRootCa());

  // CRLs: each signed by its issuer, whose chain reaches the root.
  ASSIGN_OR_RETURN(X509CrlPtr root_crl, ParseCrlDer(c.root_ca_crl, "root CA CRL"));
  ASSIGN_OR_RETURN(X509CrlPtr pck_crl, ParseCrlDer(c.pck_crl, "PCK CRL"));
  RETURN_IF_ERROR(VerifyCrlIssuer(root_crl.get(), root.get(), "root CA CRL"));
  ASSIGN_OR_RETURN(Chain crl_chain, ParsePemChain(c.pck_crl_issuer_chain, "PCK CRL issuer chain"));
  RETURN_IF_ERROR(VerifyChain(crl_chain, root.get(), {root_crl.get()}, at, "PCK CRL issuer chain"));
  RETURN_IF_ERROR(VerifyCrlIssuer(pck_crl.get(), crl_chain[0].get(), "PCK CRL"));

  // PCK chain from the quote, both CRLs applied.
  ASSIGN_OR_RETURN(Chain pck_chain, ParsePemChain(q.pck_chain_pem, "PCK certificate chain"));
  RETURN_IF_ERROR(VerifyChain(pck_chain, root.get(), {root_crl.get(), pck_crl.get()}, at,
                              "PCK certificate chain"));
  ASSIGN_OR_RETURN(crypto::VerifyingKey pck_key, P256Key(pck_chain[0].get(), "PCK certificate"));
  ASSIGN_OR_RETURN(PckExtensions pck, ParsePckExtensions(pck_chain[0].get()));

  // TCB info and QE identity: signed by the TCB signing key, within their validity windows.
  RETURN_IF_ERROR(VerifySignedJson(c.tcb_info_issuer_chain, c.tcb_info, c.tcb_info_signature,
                                   root.get(), root_crl.get(), at, "TCB info"));
  ASSIGN_OR_RETURN(json tcb_info, ParseJsonObject(c.tcb_info, "TCB info"));
  RETURN_IF_ERROR(CheckValidity(tcb_info, at, "TCB info"));
  RETURN_IF_ERROR(VerifySignedJson(c.qe_identity_issuer_chain, c.qe_identity,
                                   c.qe_identity_signature, root.get(), root_crl.get(), at,
                                   "QE identity"));
  ASSIGN_OR_RETURN(json qe_identity, ParseJsonObject(c.qe_identity, "QE identity"));
  RETURN_IF_ERROR(CheckValidity(qe_identity, at, "QE identity"));

  // The quoting enclave: its report is signed by the PCK key and binds the attestation key.
  if (!pck_key.Verify(q.qe_report_raw, q.qe_report_signature).ok()) {
    return IntegrityError("QE report signature by the PCK key does not verify");
  }
  crypto::Digest binding = crypto::Sha256(Concat({q.attestation_key, q.qe_auth_data}));
  const Bytes& qe_rd = q.qe_report.report_data;
  if (!std::equal(binding.begin(), binding.end(), qe_rd.begin()) ||
      !std::all_of(qe_rd.begin() + 32, qe_rd.end(), [](uint8_t b) { return b == 0; })) {
    return IntegrityError("QE report_data does not bind the attestation key and QE auth data");
  }
  ASSIGN_OR_RETURN(TcbResult qe_tcb, MatchQeIdentity(qe_identity, q.qe_report, tdx));

  // The quote itself.
  ASSIGN_OR_RETURN(crypto::Point att_point,
                   crypto::Point::FromAffine(ByteSpan(q.attestation_key).first(32),
                                             ByteSpan(q.attestation_key).subspan(32)));
  crypto::VerifyingKey att_key = crypto::VerifyingKey::FromPoint(att_point);
  if (!att_key.Verify(q.signed_part, q.quote_signature).ok()) {
    return IntegrityError("quote signature by the attestation key does not verify");
  }

  // TCB level of the platform, converged with the QE's.
  ASSIGN_OR_RETURN(TcbResult platform, MatchTcbInfo(tcb_info, pck, q));
  if (Severity(platform.status) < 0 || Severity(qe_tcb.status) < 0) {
    return IntegrityError("TCB info or QE identity: unknown tcbStatus");
  }
  v.tcb_status = Converge(platform.status, qe_tcb.status);
  v.advisory_ids = platform.advisories;
  AppendUnique(v.advisory_ids, qe_tcb.advisories);
  if (v.tcb_status == "Revoked") return FailedPrecondition("TCB status: Revoked");

  v.fmspc = pck.fmspc;
  if (tdx) {
    const TdReportBody& b = q.td_body;
    v.tee = "tdx";
    v.measurement = b.mr_td;
    v.signer = b.mr_owner;
    v.debug = b.debug();
    v.report_data = b.report_data;
  } else {
    const SgxReportBody& b = q.sgx_body;
    v.tee = "sgx";
    v.measurement = b.mr_enclave;
    v.signer = b.mr_signer;
    v.product_id = b.isv_prod_id;
    v.svn = b.isv_svn;
    v.debug = b.debug();
    v.report_data = b.report_data;
  }
  return Status::Ok();
}

}  // namespace

StatusOr<std::time_t> ParseRfc3339Utc(std::string_view t) {
  auto digits = [&](size_t pos, size_t n, int& out) {
    if (pos + n > t.size()) return false;
    out = 0;
    for (size_t i = pos; i < pos + n; ++i) {
      if (t[i] < '0' || t[i] > '9') return false;
      out = out * 10 + (t[i] - '0');
    }
    return true;
  };
  int y, mo, d, h, mi, s;
  bool ok = t.size() >= 20 && digits(0, 4, y) && t[4] == '-' && digits(5, 2, mo) && t[7] == '-' &&
            digits(8, 2, d) && (t[10] == 'T' || t[10] == 't') && digits(11, 2, h) && t[13] == ':' &&
            digits(14, 2, mi) && t[16] == ':' && digits(17, 2, s);
  size_t pos = 19;
  if (ok && pos < t.size() && t[pos] == '.') {
    ++pos;
    size_t start = pos;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') ++pos;
    ok = pos > start;
  }
  ok = ok && pos + 1 == t.size() && (t[pos] == 'Z' || t[pos] == 'z');
  if (!ok || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) {
    return InvalidArgument("time must be RFC 3339 UTC, like 2025-06-20T00:00:00Z");
  }
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return static_cast<std::time_t>(days * 86400 + h * 3600 + mi * 60 + s);
}

StatusOr<DcapCollateral> ParseCollateralJson(std::string_view text) {
  try {
    const std::string what = "collateral";
    ASSIGN_OR_RETURN(json j, ParseJsonObject(text, what));
    DcapCollateral c;
    auto crl = [&](const char* key) -> StatusOr<Bytes> {
      ASSIGN_OR_RETURN(std::string s, StringField(j, key, what));
      if (s.rfind("-----BEGIN", 0) == 0) {
        BioPtr bio(BIO_new_mem_buf(s.data(), static_cast<int>(s.size())));
        X509CrlPtr parsed(bio ? PEM_read_bio_X509_CRL(bio.get(), nullptr, nullptr, nullptr)
                              : nullptr);
        ERR_clear_error();
        if (!parsed) return InvalidArgument(what + ": \"" + key + "\" is not a PEM CRL");
        unsigned char* der = nullptr;
        int n = i2d_X509_CRL(parsed.get(), &der);
        if (n <= 0) return InvalidArgument(what + ": \"" + key + "\" cannot be encoded");
        Bytes out(der, der + n);
        OPENSSL_free(der);
        return out;
      }
      auto der = HexDecode(s);
      if (!der.ok()) return InvalidArgument(what + ": \"" + key + "\" is neither hex nor PEM");
      return std::move(der).value();
    };
    auto sig = [&](const char* key) -> StatusOr<Bytes> { return HexField(j, key, 64, what); };
    ASSIGN_OR_RETURN(c.pck_crl_issuer_chain, StringField(j, "pck_crl_issuer_chain", what));
    ASSIGN_OR_RETURN(c.root_ca_crl, crl("root_ca_crl"));
    ASSIGN_OR_RETURN(c.pck_crl, crl("pck_crl"));
    ASSIGN_OR_RETURN(c.tcb_info_issuer_chain, StringField(j, "tcb_info_issuer_chain", what));
    ASSIGN_OR_RETURN(c.tcb_info, StringField(j, "tcb_info", what));
    ASSIGN_OR_RETURN(c.tcb_info_signature, sig("tcb_info_signature"));
    ASSIGN_OR_RETURN(c.qe_identity_issuer_chain, StringField(j, "qe_identity_issuer_chain", what));
    ASSIGN_OR_RETURN(c.qe_identity, StringField(j, "qe_identity", what));
    ASSIGN_OR_RETURN(c.qe_identity_signature, sig("qe_identity_signature"));
    return c;
  } catch (const std::exception&) {
    return InvalidArgument("collateral: malformed JSON");
  }
}

StatusOr<DcapVerdict> VerifyDcapQuote(ByteSpan quote, const DcapCollateral& collateral,
                                      std::time_t at) {
  ASSIGN_OR_RETURN(DcapQuote q, ParseDcapQuote(quote));
  DcapVerdict v;
  try {
    RETURN_IF_ERROR(VerifyDcapQuoteImpl(q, collateral, at, v));
  } catch (const std::exception&) {
    return InvalidArgument("collateral: malformed JSON");
  }
  return v;
}

// ---------------------------------------------------------------------------------------------
// Policy

Status CheckPolicy(const DcapVerdict& v, const AttestationPolicy& p) {
  if (v.tee == "sim" && !p.allow_sim) return PermissionDenied("policy: sim evidence not allowed");
  if (!p.allowed_measurements.empty() &&
      std::find(p.allowed_measurements.begin(), p.allowed_measurements.end(), v.measurement) ==
          p.allowed_measurements.end()) {
    return PermissionDenied("policy: measurement not allowed");
  }
  if (!p.allowed_signers.empty() && std::find(p.allowed_signers.begin(), p.allowed_signers.end(),
                                              v.signer) == p.allowed_signers.end()) {
    return PermissionDenied("policy: signer not allowed");
  }
  if (p.product_id.has_value() && *p.product_id != v.product_id) {
    return PermissionDenied("policy: product id mismatch");
  }
  if (v.svn < p.min_svn) return PermissionDenied("policy: SVN below minimum");
  if (v.debug && !p.allow_debug) return PermissionDenied("policy: debug enclave not allowed");
  if (v.tee != "sim" && std::find(p.accepted_tcb_statuses.begin(), p.accepted_tcb_statuses.end(),
                                  v.tcb_status) == p.accepted_tcb_statuses.end()) {
    return PermissionDenied("policy: TCB status " + v.tcb_status + " not accepted");
  }
  return Status::Ok();
}

StatusOr<AttestationPolicy> ParseAttestationPolicyJson(std::string_view text) {
  try {
    const std::string what = "policy";
    ASSIGN_OR_RETURN(json j, ParseJsonObject(text, what));
    AttestationPolicy p;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& key = it.key();
      const json& v = it.value();
      if (key == "measurements" || key == "signers") {
        if (!v.is_array()) return InvalidArgument(what + ": \"" + key + "\" must be an array");
        auto& list = key == "measurements" ? p.allowed_measurements : p.allowed_signers;
        for (const json& e : v) {
          auto b = e.is_string() ? HexDecode(e.get<std::string>())
                                 : StatusOr<Bytes>(InvalidArgument("not a string"));
          if (!b.ok() || b->empty()) {
            return InvalidArgument(what + ": \"" + key + "\" must hold hex strings");
          }
          list.push_back(std::move(b).value());
        }
      } else if (key == "product_id" || key == "min_svn") {
        ASSIGN_OR_RETURN(int64_t n, IntField(j, key.c_str(), what));
        if (n > 0xffff) return InvalidArgument(what + ": \"" + key + "\" out of range");
        if (key == "product_id") {
          p.product_id = static_cast<uint16_t>(n);
        } else {
          p.min_svn = static_cast<uint16_t>(n);
        }
      } else if (key == "allow_debug" || key == "allow_sim") {
        if (!v.is_boolean()) return InvalidArgument(what + ": \"" + key + "\" must be a boolean");
        (key == "allow_debug" ? p.allow_debug : p.allow_sim) = v.get<bool>();
      } else if (key == "tcb_statuses") {
        if (!v.is_array()) return InvalidArgument(what + ": \"tcb_statuses\" must be an array");
        p.accepted_tcb_statuses.clear();
        for (const json& e : v) {
          if (!e.is_string() || Severity(e.get<std::string>()) < 0) {
            return InvalidArgument(what + ": \"tcb_statuses\" must hold known TCB statuses");
          }
          p.accepted_tcb_statuses.push_back(e.get<std::string>());
        }
      } else {
        return InvalidArgument(what + ": unknown key \"" + key + "\"");
      }
    }
    return p;
  } catch (const std::exception&) {
    return InvalidArgument("policy: malformed JSON");
  }
}

}  // namespace custos::attestation
