// A TLS identity a custos daemon makes for itself when none is configured, so that nothing
// serves plain HTTP by default (issue 12): on first start a P-256 key and a self-signed
// certificate naming the listen host, kept in a directory (key 0600), reused afterwards. The
// certificate is its own trust anchor: clients pin it with --ca-file (or CUSTOS_CA_FILE),
// after checking its SHA-256 fingerprint, which the daemon logs, over another channel.
#pragma once

#include <string>

#include "common/status.h"

namespace custos::net {

// TlsIdentity is where an identity is and what to pin.
struct TlsIdentity {
  std::string cert_file;    // PEM certificate (self-signed)
  std::string key_file;     // PEM private key, 0600
  std::string fingerprint;  // SHA-256 of the certificate's DER, hex with ':' between bytes
  bool created = false;     // made by this call
};

// EnsureSelfSignedIdentity returns the identity in `dir` (server.crt, server.key), creating it
// if absent: the certificate names `host` (an IP literal as an IP SAN, else a DNS SAN) and, for
// a loopback host, 127.0.0.1 and localhost too; CN `common_name`; valid 5 years. An identity
// present but unreadable or mismatched is an error (never silently replaced).
StatusOr<TlsIdentity> EnsureSelfSignedIdentity(const std::string& dir, const std::string& host,
                                               const std::string& common_name);

// CertificateFingerprint returns the SHA-256 fingerprint of the first certificate in a PEM file.
StatusOr<std::string> CertificateFingerprint(const std::string& pem_file);

}  // namespace custos::net
