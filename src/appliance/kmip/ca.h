// The KMIP client CA (docs/kmip.md "Client certificates"): a P-256 CA an appliance makes for
// itself in its data directory (kmip/ca.key 0600, kmip/ca.crt), which issues the KMIP
// listener's server certificate (kmip/server.crt, kmip/server.key) and the clients'
// certificates. A client's certificate names it (subject CN); that name is its principal. The
// client's private key never reaches the appliance: the operator command makes the key pair and
// sends only the public key (IssueClientCertificate).
//
// The CA key lives with the host (like the node's TLS key): whoever controls the host can mint
// client certificates, as it can already act on requests it terminates (docs/threat-model.md).
// A cluster shares one CA by giving every node the same kmip/ directory.
#pragma once

#include <string>

#include "common/status.h"

namespace custos::kmip {

struct KmipCa {
  std::string dir;
  std::string ca_cert_file, ca_key_file;
  std::string server_cert_file, server_key_file;
};

// EnsureCa returns the CA in `dir`, creating the CA and the server certificate (for `host`; a
// loopback host also gets 127.0.0.1 and localhost) when absent.
StatusOr<KmipCa> EnsureCa(const std::string& dir, const std::string& host);

// IssueClientCertificate signs a client certificate for `name` (1-64 of [A-Za-z0-9_.-]) over
// the PEM public key `public_key_pem`, valid `days` days, for client authentication only.
// Returns the certificate PEM.
StatusOr<std::string> IssueClientCertificate(const KmipCa& ca, const std::string& name,
                                             const std::string& public_key_pem, int days = 365);

// MakeClientKey makes a P-256 key pair for a client: {private key PEM, public key PEM}.
StatusOr<std::pair<std::string, std::string>> MakeClientKey();

// ClientName checks a client name.
Status CheckClientName(const std::string& name);

}  // namespace custos::kmip
