// The appliance server's configuration file. `custos server --config server.toml` reads one
// TOML file (docs/server.example.toml is a commented example) with three tables:
//
//   [server]   listen, data_dir, custody, tls_cert, tls_key, insecure_http, join, node_name,
//              cpu_scheduling
//   [tee]      backend, enclave_binary, sim_key_dir, sim_product_id, sim_svn, sim_debug,
//              gramine_root, tsm_root
//   [cluster]  collateral, approval
//   [kms]      region, account_id
//   [xks]      region, max_requests_per_second, listen, client_ca, client_subject
//   [kmip]     listen
//   [audit]    sync
//   [store]    url
//
// The parser is strict because a typo in a security setting must stop the server, not silently
// fall back to a default: unknown tables and keys, values of the wrong type, integers out of
// range and inconsistent settings are all refused with kInvalidArgument. Error messages name
// the file label, the key ("server.toml: unknown key tee.bakend") and, for TOML syntax errors,
// the line and column; they never quote a value from the file, which may be a secret pasted
// into the wrong place.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/status.h"

namespace custos::host {

// ServerConfig is a parsed and checked server.toml. The fields listed as paths are resolved
// against the directory of the configuration file (ParseServerConfig's `base_dir`), so the
// server does not depend on its working directory; paths are used as written otherwise (no
// "~" expansion, ".." kept, symlinks not resolved).
struct ServerConfig {
  // [server] listen: "host:port" or "[ipv6]:port" the HTTP(S) API binds. The port is required
  // (0..65535; 0 picks a free port, for tests); the host must not be empty and an IPv6
  // literal must be bracketed. A host name is resolved by the server when it binds.
  std::string listen = "127.0.0.1:8200";
  // [server] data_dir (required, path): the node's state directory (sealed state, audit log).
  std::string data_dir;
  // [server] custody (required, path): the custody.json this node serves under.
  std::string custody_path;
  // [server] tls_cert, tls_key (paths, both or neither): PEM certificate chain (leaf first) and
  // its PEM private key. Neither: the server makes a self-signed identity in data_dir/tls at
  // its first start (net/tls_identity.h) and serves HTTPS with it.
  std::string tls_cert;
  std::string tls_key;
  // [server] insecure_http (boolean): serve plain HTTP (with a warning) instead. KMS plaintexts,
  // data keys, admin tokens and new access-key secrets then cross the network in clear.
  bool insecure_http = false;
  // [server] join (optional): base URL (http:// or https://, checked by net::ParseUrl) of an
  // unsealed node of the same cluster to join instead of waiting for a quorum unseal.
  std::string join_url;
  // [tee] backend: the evidence source, "sim", "sgx-gramine" or "tdx-configfs"
  // (attestation::MakeTeeBackend).
  std::string tee_backend = "sim";
  // [tee] enclave_binary (path): the custos-enclave executable the host launches as its
  // trusted core. Empty means "next to the running custos binary"; the caller resolves that,
  // this parser does not.
  std::string enclave_binary;
  // [tee] sim_key_dir (path, sim backend): directory of the simulated platform key. Empty or
  // absent means data_dir + "/sim" (filled in by the parser, so it is never empty after a
  // successful parse).
  std::string sim_key_dir;
  // [tee] sim_product_id, sim_svn (integers 0..65535, sim backend): the ISV product id and
  // security version the sim evidence reports.
  uint16_t sim_product_id = 0;
  uint16_t sim_svn = 0;
  // [tee] sim_debug (boolean, sim backend): report a debug enclave. Policies normally refuse
  // debug evidence; this exists to test that they do.
  bool sim_debug = false;
  // [tee] gramine_root (absolute path, sgx-gramine backend): Gramine's attestation
  // pseudo-file directory. Not resolved against base_dir; a relative value is refused.
  std::string gramine_root = "/dev/attestation";
  // [tee] tsm_root (absolute path, tdx-configfs backend): the configfs-tsm report directory.
  // Not resolved against base_dir; a relative value is refused.
  std::string tsm_root = "/sys/kernel/config/tsm/report";
  // [tee] core_workers (integer 0..256): threads of the trusted core serving calls at once,
  // each over its own channel (docs/architecture.md "The trusted core's workers"); 0, the
  // default, means one per CPU the host may use.
  uint16_t core_workers = 0;
  // [cluster] collateral (optional, path): DCAP collateral JSON (Intel PCS format) handed to
  // the trusted core, which verifies it against the pinned Intel root: for the envelope's
  // origin quote at start, for the peer's quote when this node joins, and sent along with this
  // node's own quote so the peer can verify it. Not needed with the sim backend.
  std::string join_collateral;
  // [cluster] approval (optional, path): a measurement approval (custody/approval.h; made with
  // `custos keeper policy approve`) of this node's core build, signed by t_p provider AND t_c
  // customer keepers. It lets this node join a cluster that runs another build (a rolling
  // upgrade, docs/operations.md "Upgrades"); the serving core checks it before handing over
  // the root key. Read at each join attempt.
  std::string join_approval;
  // [kms] region: the AWS region clients sign for and key ARNs name (SigV4 credential scope).
  std::string kms_region = "us-east-1";
  // [kms] account_id: the 12-digit account in key and principal ARNs.
  std::string kms_account_id = "000000000000";
  // [xks] region: the region XKS proxy API requests must be signed for; empty (default): any,
  // since AWS KMS signs with the region of the KMS key (docs/xks.md).
  std::string xks_region;
  // [xks] max_requests_per_second (integer 0..65535): requests accepted per URI prefix and
  // second, ThrottlingException beyond; 0 (default): no limit.
  uint16_t xks_max_requests_per_second = 0;
  // [xks] listen (optional, host:port): a second listener that serves the XKS proxy API only,
  // with the node's TLS identity; [xks] client_ca (path) makes it mutual TLS: only a client
  // certificate chained to that CA gets in, and with [xks] client_subject only one whose
  // subject CN is exactly that (AWS KMS presents CN=cks.kms.<region>.amazonaws.com, chained to
  // Amazon Trust Services; docs/xks.md).
  std::string xks_listen;
  std::string xks_client_ca;
  std::string xks_client_subject;
  // [kmip] listen (host:port; KMIP's port is 5696): the KMIP server (docs/kmip.md), mutual TLS
  // with client certificates of the node's KMIP client CA (data_dir/kmip). Empty: no KMIP.
  std::string kmip_listen;
  // [audit] sync: when a request's audit entry may be acknowledged (docs/audit.md
  // "Durability"): "group" (default) once written, fsynced by group commit within 10 ms;
  // "request" once signed by the core and fsynced.
  std::string audit_sync = "group";
  // [store] url: where keys, aliases, access keys and the audit log live. Empty (the default):
  // the SQLite file data_dir/custos.db, this node's alone. A "postgresql://" or "postgres://"
  // URL (libpq's URI form; several hosts and target_session_attrs=read-write for a primary
  // with standbys; a password belongs in a passfile=, not in the URL): a database shared by
  // every node of a cluster (docs/operations.md "A cluster of nodes").
  std::string store_url;
  // [server] node_name: this node's name in a cluster: its audit log in the shared database
  // (1 to 64 characters of [A-Za-z0-9._-]). Required with store.url, "" otherwise (a single
  // node's log).
  std::string node_name;
  // [server] cpu_scheduling: "batch" (default): the process's threads and its trusted core run
  // under SCHED_BATCH (cpu_scheduling.h); "normal": the policy it was started with.
  std::string cpu_scheduling = "batch";

  bool operator==(const ServerConfig&) const = default;
};

// ParseServerConfig parses the text of a server.toml and checks every rule described on
// ServerConfig. Relative paths are resolved against `base_dir` (which should be absolute; if
// it is empty, relative paths stay relative to the working directory). Error messages are
// prefixed "server.toml: ". Returns kInvalidArgument for any refusal, kInternal only if the
// TOML library fails in an unexpected way. Never throws; safe to call concurrently.
StatusOr<ServerConfig> ParseServerConfig(std::string_view toml_text, const std::string& base_dir);

// LoadServerConfig reads the file at `path` (at most 1 MiB) and parses it with base_dir = the
// absolute directory containing `path`. Error messages are prefixed with `path` as given.
// kNotFound if the file does not exist, kUnavailable if it cannot be read, kInvalidArgument if
// it is too large, ParseServerConfig's errors otherwise.
StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

// RenderServerConfig writes `config` as a TOML file, every table and key in the order of the
// documentation above. For any config ParseServerConfig returned, parsing the output with the
// same base_dir gives an equal config (paths were already resolved, so they are written as
// resolved). Strings with bytes that are not valid UTF-8 cannot be represented; such a config
// never comes out of the parser.
std::string RenderServerConfig(const ServerConfig& config);

}  // namespace custos::host
