// The KMS audit log's entry (docs/audit.md "Entries"): the one type the request path builds
// and the writer serialises. It has no field for plaintext, key material, ciphertext or
// encryption context values, on purpose: a caller cannot add them.
#pragma once

#include <chrono>
#include <string>

#include "nlohmann/json.hpp"

namespace custos::audit {

struct Entry {
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();  // received
  std::string request_id;     // x-amzn-RequestId of the response
  std::string principal;      // the caller's ARN; empty when SigV4 verification failed
  std::string access_key_id;  // as the request named it (also when it was refused)
  std::string operation;      // "Encrypt", "CreateKey", ...
  std::string key_id;         // the key's UUID once resolved, else as the request named it
  std::string outcome;        // "ok" or the AWS error name ("AccessDeniedException", ...)
  int http_status = 0;
  std::string source;         // the client's address
  // XKS proxy API requests: AWS KMS's requestMetadata (its principal, KMS key ARN, KMS
  // operation and request id, ...), string fields only; null for other requests.
  nlohmann::json request_metadata;

  // ToJson renders the entry; time is RFC 3339 UTC with milliseconds.
  nlohmann::json ToJson() const;
  // ToText is the entry's stored text: exactly ToJson().dump() with sorted keys, no spaces and
  // invalid UTF-8 replaced (what the chain hashes). Written directly, without building the
  // object, when every field is printable ASCII needing no escape (the request path's case);
  // through ToJson otherwise.
  std::string ToText() const;
};

// Rfc3339Millis renders `t` as "2024-05-01T12:00:00.123Z".
std::string Rfc3339Millis(std::chrono::system_clock::time_point t);

}  // namespace custos::audit
