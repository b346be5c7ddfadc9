// Append-only, hash-chained, signed audit log (docs/protocol.md, "Audit log").
//
// One JSON object per line:
//   {"seq":N,"time":"RFC3339","event":"...","details":{...},"prev":"hex","hash":"hex","sig":"hex"}
// hash = SHA-256("custos/v1/audit" || u64 seq || var(time) || var(event) || var(details JSON,
//        serialized with sorted keys) || prev), prev of the first entry = 32 zero bytes;
// sig  = ECDSA P-256 over hash by the log owner's identity key.
// An entry is durable (fsync) before Append returns: the caller answers only afterwards.
// Entries never contain secrets: callers pass identifiers, fingerprints and hashes only.
#pragma once

#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "crypto/ecdsa.h"

namespace custos::keeper {

class AuditLog {
 public:
  // Open reads and verifies the existing log at `path` (creating it if absent) so new entries
  // chain onto the last verified one. Fails if the existing log does not verify.
  static StatusOr<std::unique_ptr<AuditLog>> Open(const std::string& path,
                                                  const crypto::SigningKey* signer);
  // Append writes one entry and fsyncs it. Thread-safe.
  Status Append(const std::string& event, const nlohmann::json& details);
  uint64_t size() const;

  struct VerifyReport {
    uint64_t entries = 0;
    std::string head;  // hex hash of the last entry
  };
  // Verify checks every hash link, sequence number and signature of the log at `path`.
  // The error names the first bad line.
  static StatusOr<VerifyReport> Verify(const std::string& path, const crypto::VerifyingKey& key);
  // ReadEntries returns the parsed entries (for rebuilding replay caches).
  static StatusOr<std::vector<nlohmann::json>> ReadEntries(const std::string& path);

 private:
  AuditLog(std::string path, const crypto::SigningKey* signer, uint64_t next_seq, Bytes prev);
  std::string path_;
  const crypto::SigningKey* signer_;
  mutable std::mutex mu_;
  uint64_t next_seq_;
  Bytes prev_;
  uint64_t known_size_ = 0;  // file size after our last append; a change means another writer
};

}  // namespace custos::keeper
