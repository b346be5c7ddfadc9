#include "net/tls_identity.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "common/file.h"

namespace custos::net {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

bool IsIp(const std::string& host) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  bool ok = ip != nullptr;
  ASN1_OCTET_STRING_free(ip);
  return ok;
}

bool IsLoopback(const std::string& host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

StatusOr<std::string> Pem(int (*write)(BIO*, void*), void* obj) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get(), obj) != 1) return InternalError("cannot encode PEM");
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

int WriteCert(BIO* b, void* x) { return PEM_write_bio_X509(b, static_cast<X509*>(x)); }
int WriteKey(BIO* b, void* k) {
  return PEM_write_bio_PrivateKey(b, static_cast<EVP_PKEY*>(k), nullptr, nullptr, 0, nullptr, nullptr);
}

Status AddExtension(X509* cert, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return InternalError("cannot build certificate extension");
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::Ok() : InternalError("cannot add certificate extension");
}

std::string FingerprintOf(X509* cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  X509_digest(cert, EVP_sha256(), md, &n);
  std::string out;
  char hex[4];
  for (unsigned int i = 0; i < n; ++i) {
    std::snprintf(hex, sizeof(hex), i == 0 ? "%02X" : ":%02X", md[i]);
    out += hex;
  }
  return out;
}

}  // namespace

StatusOr<std::string> CertificateFingerprint(const std::string& pem_file) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(pem_file));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument("not a PEM certificate: " + pem_file);
  return FingerprintOf(cert.get());
}

StatusOr<TlsIdentity> EnsureSelfSignedIdentity(const std::string& dir, const std::string& host,
                                               const std::string& common_name) {
  TlsIdentity id{dir + "/server.crt", dir + "/server.key", "", false};
  std::error_code ec;
  bool have_cert = std::filesystem::exists(id.cert_file, ec), have_key = std::filesystem::exists(id.key_file, ec);
  if (have_cert && have_key) {
    ASSIGN_OR_RETURN(id.fingerprint, CertificateFingerprint(id.cert_file));
    return id;
  }
  if (have_cert != have_key)
    return FailedPrecondition("TLS identity in " + dir + " is incomplete (server.crt and server.key go together)");
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);

  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return InternalError("cannot generate the TLS key");
  X509Ptr cert(X509_new());
  if (!cert) return InternalError("cannot allocate a certificate");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return InternalError("no randomness for the serial");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 5L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(common_name.c_str()),
                             -1, -1, 0);
  X509_set_issuer_name(cert.get(), name);
  std::string san = (IsIp(host) ? "IP:" : "DNS:") + host;
  if (IsLoopback(host)) {
    if (host != "127.0.0.1") san += ",IP:127.0.0.1";
    if (host != "localhost") san += ",DNS:localhost";
  }
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_alt_name, san));
  // Its own trust anchor: a CA that can only certify itself (pathlen 0).
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_key_usage, "critical,digitalSignature,keyCertSign"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_ext_key_usage, "serverAuth"));
  RETURN_IF_ERROR(AddExtension(cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return InternalError("cannot sign the certificate");

  ASSIGN_OR_RETURN(std::string key_pem, Pem(WriteKey, key.get()));
  ASSIGN_OR_RETURN(std::string cert_pem, Pem(WriteCert, cert.get()));
  // The key first: a certificate on disk always has its key.
  Status st = WriteFileAtomic(id.key_file, key_pem, 0600);
  OPENSSL_cleanse(key_pem.data(), key_pem.size());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(WriteFileAtomic(id.cert_file, cert_pem, 0644));
  id.fingerprint = FingerprintOf(cert.get());
  id.created = true;
  return id;
}

}  // namespace custos::net
