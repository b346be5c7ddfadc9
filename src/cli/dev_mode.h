// `custos server --dev`: a whole co-custody deployment in one process, for development only
// (docs/operations.md "Dev mode"). It runs, in this process, one provider keeper and three
// customer keepers (threshold 2) served over loopback HTTP, the DKG ceremony between them, and
// the appliance host; the trusted core still runs as its own custos-enclave process with the
// `sim` TEE. It initialises the appliance, unseals it by releasing from P1, C1 and C2 exactly as
// `custos keeper release` would (SIGMA, evidence checked against a policy pinning the running
// core's measurement), creates a SigV4 access key and prints the endpoint and credentials.
//
// What makes it unfit for production, on purpose: the keepers' at-rest passphrase is a file next
// to their shares, the shares of both domains live on one machine under one user, the sim TEE
// protects nothing against that user, and the access key's secret is stored in clear (0600) so
// that a restart prints the same credentials.
//
// Data directory layout (all created 0700/0600 except the public custody.json):
//   D/keepers/passphrase        the keepers' at-rest passphrase (random, 0600)
//   D/keepers/{P1,C1,C2,C3}/    keeper directories (keeper/keeper_store.h)
//   D/custody.json              the DKG's signed custody descriptor
//   D/server/                   the appliance's data_dir (envelope, sim platform key, admin token)
//   D/dev-credentials           the dev access key, secret included (0600)
//   D/dev.env                   the printed lines; exists only while the server is ready
#pragma once

#include <string>

#include "common/status.h"

namespace custos::cli {

// DevModeOptions are `custos server --dev`'s flags.
struct DevModeOptions {
  // listen is HOST:PORT for the appliance API; HOST must be a loopback address (127.0.0.0/8,
  // [::1] or localhost). Port 0 picks a free port; the printed endpoint shows the real one.
  std::string listen = "127.0.0.1:8200";
  // data_dir holds everything dev mode creates; reused as is on the next start.
  std::string data_dir = ".custos-dev";
  // enclave_binary is the trusted core's executable; empty means next to this binary.
  std::string enclave_binary;
  // kmip_port is the KMIP listener's port on the same host (docs/kmip.md); empty: a free one.
  std::string kmip_port;
};

// kDevEnvFile is the name, in the data directory, of the file holding the printed
// KEY=VALUE lines. It is written (0600, temporary file then rename) only once the server is
// unsealed and the access key works, and removed on a graceful stop, so its appearance means
// "ready".
inline constexpr char kDevEnvFile[] = "dev.env";

// RunDevMode sets up (first start) or reopens (later starts) everything under
// options.data_dir, prints the KEY=VALUE lines on stdout, then serves until SIGTERM or SIGINT
// and stops the HTTP server (draining requests), the appliance and the keepers in that order.
// Logs are JSON lines on stderr and never carry a secret. Returns OK after a graceful stop;
// any failure during start-up is returned with the step that failed as context (the data
// directory is left as it was, so the next start resumes or the reason can be inspected).
Status RunDevMode(const DevModeOptions& options);

}  // namespace custos::cli
