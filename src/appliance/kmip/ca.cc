#include "appliance/kmip/ca.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <filesystem>
#include <memory>

#include "common/file.h"

namespace custos::kmip {
namespace {

template <class T, void (*F)(T*)>
struct Deleter {
  void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

StatusOr<std::string> BioString(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  if (n < 0) return InternalError("kmip ca: cannot encode PEM");
  return std::string(data, static_cast<size_t>(n));
}

StatusOr<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return InternalError("kmip ca: cannot encode a certificate");
  return BioString(bio.get());
}

StatusOr<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    return InternalError("kmip ca: cannot encode a key");
  return BioString(bio.get());
}

StatusOr<std::string> PublicPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) return InternalError("kmip ca: cannot encode a public key");
  return BioString(bio.get());
}

Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return InternalError("kmip ca: cannot build a certificate extension");
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::Ok() : InternalError("kmip ca: cannot add a certificate extension");
}

StatusOr<X509Ptr> NewCert(EVP_PKEY* subject_key, const std::string& cn, long days) {
  X509Ptr cert(X509_new());
  if (!cert) return InternalError("kmip ca: cannot allocate a certificate");
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) return InternalError("kmip ca: no randomness for the serial");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * 24 * 3600);
  X509_set_pubkey(cert.get(), subject_key);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

StatusOr<PkeyPtr> ReadKey(const std::string& file) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(file));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!key) return InvalidArgument("kmip ca: not a PEM private key: " + file);
  return key;
}

StatusOr<X509Ptr> ReadCert(const std::string& file) {
  ASSIGN_OR_RETURN(std::string pem, ReadFileString(file));
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  X509Ptr cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return InvalidArgument("kmip ca: not a PEM certificate: " + file);
  return cert;
}

Status WriteKeyFile(const std::string& file, EVP_PKEY* key) {
  ASSIGN_OR_RETURN(std::string pem, KeyPem(key));
  Status st = WriteFileAtomic(file, pem, 0600);
  OPENSSL_cleanse(pem.data(), pem.size());
  return st;
}

}  // namespace

Status CheckClientName(const std::string& name) {
  if (name.empty() || name.size() > 64) return InvalidArgument("kmip client name must be 1 to 64 characters");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.')
      return InvalidArgument("kmip client name may hold only A-Z a-z 0-9 _ . -");
  return Status::Ok();
}

StatusOr<KmipCa> EnsureCa(const std::string& dir, const std::string& host) {
  KmipCa ca{dir, dir + "/ca.crt", dir + "/ca.key", dir + "/server.crt", dir + "/server.key"};
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Unavailable("kmip ca: cannot create " + dir + ": " + ec.message());
  ::chmod(dir.c_str(), 0700);
  const bool have_ca = std::filesystem::exists(ca.ca_cert_file) && std::filesystem::exists(ca.ca_key_file);
  if (!have_ca) {
    PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) return InternalError("kmip ca: cannot generate the CA key");
    ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key.get(), "custos KMIP client CA", 10L * 365));
    X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
    RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
    RETURN_IF_ERROR(AddExtension(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return InternalError("kmip ca: cannot sign the CA");
    RETURN_IF_ERROR(WriteKeyFile(ca.ca_key_file, key.get()));
    ASSIGN_OR_RETURN(std::string pem, CertPem(cert.get()));
    RETURN_IF_ERROR(WriteFileAtomic(ca.ca_cert_file, pem, 0644));
    std::filesystem::remove(ca.server_cert_file, ec);  // a server certificate of another CA
  }
  if (!std::filesystem::exists(ca.server_cert_file) || !std::filesystem::exists(ca.server_key_file)) {
    ASSIGN_OR_RETURN(PkeyPtr ca_key, ReadKey(ca.ca_key_file));
    ASSIGN_OR_RETURN(X509Ptr ca_cert, ReadCert(ca.ca_cert_file));
    PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
    if (!key) return InternalError("kmip ca: cannot generate the server key");
    ASSIGN_OR_RETURN(X509Ptr cert, NewCert(key.get(), "custos KMIP server", 5L * 365));
    X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
    std::string san = (ip != nullptr ? "IP:" : "DNS:") + host;
    ASN1_OCTET_STRING_free(ip);
    if (host != "127.0.0.1") san += ",IP:127.0.0.1";
    if (host != "localhost") san += ",DNS:localhost";
    RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_subject_alt_name, san));
    RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
    RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature"));
    RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "serverAuth"));
    if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) return InternalError("kmip ca: cannot sign the server certificate");
    RETURN_IF_ERROR(WriteKeyFile(ca.server_key_file, key.get()));
    ASSIGN_OR_RETURN(std::string pem, CertPem(cert.get()));
    RETURN_IF_ERROR(WriteFileAtomic(ca.server_cert_file, pem, 0644));
  }
  return ca;
}

StatusOr<std::string> IssueClientCertificate(const KmipCa& ca, const std::string& name,
                                             const std::string& public_key_pem, int days) {
  RETURN_IF_ERROR(CheckClientName(name));
  if (days < 1 || days > 3650) return InvalidArgument("kmip client certificate validity must be 1 to 3650 days");
  BioPtr bio(BIO_new_mem_buf(public_key_pem.data(), static_cast<int>(public_key_pem.size())));
  PkeyPtr pub(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!pub) return InvalidArgument("kmip client public key is not a PEM public key");
  ASSIGN_OR_RETURN(PkeyPtr ca_key, ReadKey(ca.ca_key_file));
  ASSIGN_OR_RETURN(X509Ptr ca_cert, ReadCert(ca.ca_cert_file));
  ASSIGN_OR_RETURN(X509Ptr cert, NewCert(pub.get(), name, days));
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_basic_constraints, "critical,CA:FALSE"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_key_usage, "critical,digitalSignature"));
  RETURN_IF_ERROR(AddExtension(cert.get(), ca_cert.get(), NID_ext_key_usage, "clientAuth"));
  if (X509_sign(cert.get(), ca_key.get(), EVP_sha256()) == 0) return InternalError("kmip ca: cannot sign the client certificate");
  return CertPem(cert.get());
}

StatusOr<std::pair<std::string, std::string>> MakeClientKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return InternalError("kmip: cannot generate a client key");
  ASSIGN_OR_RETURN(std::string priv, KeyPem(key.get()));
  ASSIGN_OR_RETURN(std::string pub, PublicPem(key.get()));
  return std::make_pair(std::move(priv), std::move(pub));
}

}  // namespace custos::kmip
