// Wire formats between keepers, the ceremony coordinator and requesters (docs/protocol.md).
// Binary payloads use common/bytes.h encoding and travel base64 inside JSON bodies; every
// signature covers a domain-separated byte string so no message can stand in for another.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "net/json_fields.h"

#include "common/bytes.h"
#include "crypto/ecdsa.h"
#include "crypto/p256.h"

namespace custos::keeper {

// SignedMessage is a keeper's signed broadcast in a ceremony.
//   sig = ECDSA(identity, "custos/v1/signed" || var(session) || var(kind) || var(keeper) ||
//                         var(payload))
struct SignedMessage {
  std::string keeper;
  std::string kind;  // "dkg/1".."dkg/6", "reshare/deal", "reshare/verdict"
  Bytes payload;
  Bytes sig;

  static SignedMessage Sign(const crypto::SigningKey& key, ByteSpan session, std::string kind,
                            std::string keeper, Bytes payload);
  Status Verify(const crypto::VerifyingKey& key, ByteSpan session) const;
  nlohmann::json ToJson() const;
  static StatusOr<SignedMessage> FromJson(const nlohmann::json& j);
};

// PartialRequest asks one keeper for its partial decryption of R. The client signs
//   "custos/v1/partial-request" || Encode().
// Encode = u8 suite(1) || var(custody fp) || var(keeper id) || R(33) || var(context) ||
//          requester HPKE key(65) || u64 unix time || nonce(16) || client key(33)
struct PartialRequest {
  Bytes custody_fp;
  std::string keeper_id;
  crypto::Point r;
  Bytes context;  // <= 1024 bytes; names what is being decrypted (e.g. the file header hash)
  crypto::Point requester_key;
  uint64_t timestamp = 0;
  Bytes nonce;
  crypto::Point client_key;

  // PointEncodings are the request's points as they arrived (views into the decoded bytes; the
  // encodings are canonical, so each equals the point's Encode / EncodeUncompressed): a keeper
  // logs and hashes them without encoding the points again.
  struct PointEncodings {
    ByteSpan r, requester_key, client_key;
  };

  Bytes Encode() const;
  static StatusOr<PartialRequest> Decode(ByteSpan b, PointEncodings* encodings = nullptr);
  static Bytes SignedBytes(ByteSpan encoded);
};

// The partial response is HPKE-sealed to requester_key with
//   info = "custos/v1/partial-response" || SHA-256(encoded request), aad = keeper id,
// plaintext = threshold::PartialDecryption::Encode(); its DLEQ context is SHA-256(encoded
// request), so a proof cannot be replayed into another request.
Bytes PartialResponseInfo(ByteSpan encoded_request);

// ClientAuthorization lets an allowlisted client approve an administrative action.
//   sig = ECDSA(client, "custos/v1/authorize" || var(action) || var(subject) || u64 time ||
//               var(nonce))
struct ClientAuthorization {
  std::string action;  // e.g. "reshare"
  Bytes subject;       // SHA-256 of what is approved
  uint64_t timestamp = 0;
  Bytes nonce;
  crypto::Point client_key;
  Bytes sig;

  static ClientAuthorization Create(const crypto::SigningKey& key, std::string action,
                                    Bytes subject);
  Bytes Message() const;
  nlohmann::json ToJson() const;
  static StatusOr<ClientAuthorization> FromJson(const nlohmann::json& j);
};

// Client key files (`custos client init`): JSON, the private one mode 0600.
Status WriteClientKey(const std::string& path, const crypto::SigningKey& key);
StatusOr<crypto::SigningKey> ReadClientKey(const std::string& path);
StatusOr<crypto::Point> ReadClientPublicKey(const std::string& path);

// JSON helpers that turn a missing or mistyped field into a clear kInvalidArgument.
StatusOr<nlohmann::json> ParseJsonObject(std::string_view text);
using net::GetString;  // net/json_fields.h
StatusOr<uint64_t> GetUint(const nlohmann::json& j, const char* field);
using net::GetBase64;
using net::GetHex;
StatusOr<crypto::Point> GetPoint(const nlohmann::json& j, const char* field);

// UnixNow returns the current time in seconds.
uint64_t UnixNow();
// kRequestWindowSeconds bounds clock skew for signed requests; nonces are remembered this long.
inline constexpr uint64_t kRequestWindowSeconds = 300;

}  // namespace custos::keeper
