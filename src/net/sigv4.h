// AWS Signature Version 4 verification: the server side of the request signing every AWS SDK
// and the AWS CLI perform, so that stock KMS clients can call custos's KMS JSON 1.1 API.
//
// The scheme (AWS IAM User Guide, "AWS Signature Version 4 for API requests" and "Create a
// signed AWS API request"):
//
//   CanonicalRequest = Method '\n' CanonicalURI '\n' CanonicalQuery '\n'
//                      CanonicalHeaders '\n' SignedHeaders '\n' PayloadHash
//   Scope            = YYYYMMDD '/' region '/' service '/aws4_request'
//   StringToSign     = "AWS4-HMAC-SHA256" '\n' X-Amz-Date '\n' Scope '\n'
//                      hex(SHA-256(CanonicalRequest))
//   SigningKey       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, YYYYMMDD), region), service),
//                           "aws4_request")
//   Signature        = hex(HMAC(SigningKey, StringToSign))
//
// The client sends the signature either in an Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/YYYYMMDD/region/service/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<64 hex>") or, presigned, in the query string
// (X-Amz-Algorithm, X-Amz-Credential, X-Amz-Date, X-Amz-SignedHeaders, X-Amz-Expires,
// X-Amz-Signature). The verifier rebuilds the canonical request from the request as received,
// recomputes the signature with the secret the caller looks up, and compares in constant time.
//
// Canonicalization choices, each matching what the AWS signers produce for non-S3 services
// (checked against the aws-c-auth signing suite in ../shared/testdata/sigv4):
//   - URI: the path exactly as sent (still percent-encoded), dot segments removed and empty
//     segments collapsed when normalize_path, then every byte outside RFC 3986 "unreserved"
//     and '/' encoded as %XX (upper case). A '%' already on the wire becomes "%25": non-S3
//     signers encode the already-encoded path a second time.
//   - Query: split at '&', each name and value percent-decoded (RFC 3986 only: '+' is a
//     literal plus, not a space; a malformed %XX is refused) and re-encoded, sorted by name
//     then value. X-Amz-Signature is never part of the canonical query.
//   - Headers: names lower case; each value trimmed with runs of white space (SP, HTAB, CR,
//     LF; obs-fold arrives as a space) collapsed to one space; repeated field lines joined
//     with ','. net::HttpServer joins repeated field lines with ", " before a handler sees the
//     request (RFC 9110 section 5.3), which loses the line boundaries the client signed. When
//     the signature does not match the value as received, VerifySigV4 tries once more with
//     every signed value that contains ", " read as several field lines split there. Both
//     readings are of the same received bytes and mean the same list per RFC 9110, so this
//     accepts no request whose signed content differs from what the client signed.
//
// Error messages are the fixed strings in sigv4_error below (never the secret, the expected
// signature or a quoted piece of the request), so the KMS front end can map each to its AWS
// error name.
#pragma once

#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "common/secret.h"
#include "common/status.h"
#include "net/http.h"

namespace custos::kms {

// The refusals VerifySigV4 (and the parsers it uses) return. The code is kInvalidArgument for
// a request that is malformed and kPermissionDenied for one that is well formed but not
// authentic, current or authorised; the comment names the AWS error the front end answers.
namespace sigv4_error {
// kPermissionDenied; MissingAuthenticationTokenException.
inline constexpr std::string_view kMissingAuthorization = "sigv4: missing Authorization header";
// kInvalidArgument; IncompleteSignatureException.
inline constexpr std::string_view kAmbiguousAuthorization =
    "sigv4: both an Authorization header and presigned query parameters";
inline constexpr std::string_view kUnsupportedAlgorithm = "sigv4: unsupported signing algorithm";
inline constexpr std::string_view kMalformedAuthorization = "sigv4: malformed Authorization header";
inline constexpr std::string_view kMalformedPresignedQuery =
    "sigv4: malformed presigned query parameters";
inline constexpr std::string_view kMalformedCredentialScope = "sigv4: malformed credential scope";
inline constexpr std::string_view kMalformedSignedHeaders = "sigv4: malformed SignedHeaders";
inline constexpr std::string_view kMalformedSignature = "sigv4: malformed Signature";
inline constexpr std::string_view kMissingDate = "sigv4: missing x-amz-date";
inline constexpr std::string_view kMalformedDate = "sigv4: malformed x-amz-date";
inline constexpr std::string_view kMalformedExpires = "sigv4: malformed X-Amz-Expires";
inline constexpr std::string_view kRequiredHeaderNotSigned =
    "sigv4: a required header is not signed";
inline constexpr std::string_view kSignedHeaderAbsent =
    "sigv4: a signed header is not in the request";
inline constexpr std::string_view kMalformedTarget = "sigv4: malformed request target";
inline constexpr std::string_view kMalformedQuery = "sigv4: malformed query string";
inline constexpr std::string_view kMalformedContentSha256 = "sigv4: malformed x-amz-content-sha256";
inline constexpr std::string_view kUnsignedPayloadRefused =
    "sigv4: UNSIGNED-PAYLOAD is accepted only on presigned requests";
// kInvalidArgument; XAmzContentSHA256Mismatch.
inline constexpr std::string_view kContentSha256Mismatch =
    "sigv4: x-amz-content-sha256 does not match the body";
// kPermissionDenied; InvalidSignatureException ("Credential should be scoped to ...").
inline constexpr std::string_view kWrongRegion = "sigv4: credential scope names another region";
inline constexpr std::string_view kWrongService = "sigv4: credential scope names another service";
inline constexpr std::string_view kScopeDateMismatch =
    "sigv4: credential scope date does not match x-amz-date";
// kPermissionDenied; UnrecognizedClientException.
inline constexpr std::string_view kUnknownAccessKey = "sigv4: unknown access key id";
inline constexpr std::string_view kSecurityTokenInvalid =
    "sigv4: security token missing or not the credential's";
// The lookup failed for another reason than NotFound; its code is kept.
inline constexpr std::string_view kLookupFailed = "sigv4: credential lookup failed";
// kPermissionDenied; InvalidSignatureException ("Signature expired").
inline constexpr std::string_view kClockSkew = "sigv4: signature expired or not yet valid";
inline constexpr std::string_view kPresignExpired = "sigv4: presigned URL expired";
// kPermissionDenied; InvalidSignatureException.
inline constexpr std::string_view kSignatureMismatch = "sigv4: signature does not match";
}  // namespace sigv4_error

// SigningKeyCache holds one secret access key and the signing keys derived from it (four
// HMAC-SHA256 steps each), one per credential scope (date, region, service), the newest
// kSlots of them: a server verifying many requests under one key derives it once a day, not
// once a request. Thread-safe.
class SigningKeyCache {
 public:
  static constexpr size_t kSlots = 4;
  explicit SigningKeyCache(SecretBytes secret_access_key);
  std::shared_ptr<const SecretBytes> Get(std::string_view date, std::string_view region,
                                         std::string_view service);

 private:
  struct Slot {
    std::string date, region, service;
    std::shared_ptr<const SecretBytes> key;
  };
  const SecretBytes secret_;
  std::mutex mu_;
  std::vector<Slot> slots_;  // guarded by mu_; newest last
};

// SigV4Credentials is one access key as the credential store holds it. `session_token` is
// empty for long-term keys; when set, every request under the key must present it. A store
// that keeps the key's SigningKeyCache passes it as `signing_keys` and may leave
// `secret_access_key` empty; VerifySigV4 then derives through the cache.
struct SigV4Credentials {
  std::string access_key_id;
  SecretBytes secret_access_key;
  std::string session_token;
  std::shared_ptr<SigningKeyCache> signing_keys;
};

// CredentialLookup finds the credentials for an access key id. It returns NotFound for an
// unknown key (VerifySigV4 turns that into kUnknownAccessKey); any other error is passed on
// with its code and the fixed message kLookupFailed. It may be called from several server
// threads at once.
using CredentialLookup = std::function<StatusOr<SigV4Credentials>(std::string_view access_key_id)>;

// SigV4Options is what this server accepts.
struct SigV4Options {
  // The credential scope must name exactly this region (any, when empty: the XKS proxy API is
  // called from whichever region the AWS KMS key is in) and this service.
  std::string region;
  std::string service = "kms";
  // How far x-amz-date may be from the server clock (either way) for Authorization-header
  // requests, and how far in the future for presigned ones.
  std::chrono::seconds max_skew{300};
  // Remove dot segments and collapse empty segments before encoding the path (every AWS
  // service but S3).
  bool normalize_path = true;
  // Headers that must be in SignedHeaders whenever the request carries them. x-amz-target
  // names the KMS operation: left unsigned, a captured request could be replayed as another
  // operation on the same body.
  std::vector<std::string> must_sign_if_present = {"x-amz-target"};
};

// SigV4Identity is who signed an accepted request.
struct SigV4Identity {
  std::string access_key_id;
  std::string region;
  std::string service;
  std::string signed_at;  // the X-Amz-Date the client signed, "YYYYMMDDTHHMMSSZ"
};

// HeaderLine is one header field line: lower-case name, value as received.
struct HeaderLine {
  std::string name;
  std::string value;
};

// ParsedRequest is the part of an HTTP request that SigV4 signs, with header field lines kept
// apart (net::HttpRequest joins repeated ones).
struct ParsedRequest {
  std::string method;
  std::string target;  // path plus optional "?query", exactly as sent (origin-form)
  std::vector<HeaderLine> headers;
};

// SigV4Authorization is a parsed Authorization header (or its presigned equivalent).
struct SigV4Authorization {
  std::string access_key_id;
  std::string scope_date;  // YYYYMMDD
  std::string region;
  std::string service;
  std::vector<std::string> signed_headers;  // lower case, strictly ascending, non-empty
  std::string signature;                    // 64 lower-case hex digits
};

// ParseAuthorizationHeader parses "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
// Signature=...". Each of the three components must appear exactly once, in any order,
// separated by commas with optional white space. Refuses with kUnsupportedAlgorithm,
// kMalformedAuthorization, kMalformedCredentialScope, kMalformedSignedHeaders or
// kMalformedSignature (all kInvalidArgument).
StatusOr<SigV4Authorization> ParseAuthorizationHeader(std::string_view value);

// ParseAmzDate parses the basic ISO 8601 form "YYYYMMDDTHHMMSSZ" (UTC) into seconds since the
// epoch; kMalformedDate for anything else, including impossible dates.
StatusOr<std::time_t> ParseAmzDate(std::string_view amz_date);

// CredentialScope returns "date/region/service/aws4_request".
std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service);

// CanonicalRequest builds the canonical request of `request` over `signed_headers` (lower
// case, in the order given, which the caller has checked is ascending) and the hex
// `payload_hash`. Fails with kMalformedTarget (target not origin-form), kMalformedQuery (bad
// percent-encoding) or kSignedHeaderAbsent.
StatusOr<std::string> CanonicalRequest(const ParsedRequest& request,
                                       const std::vector<std::string>& signed_headers,
                                       std::string_view payload_hash, bool normalize_path);

// StringToSign returns the AWS4-HMAC-SHA256 string to sign for `canonical_request`.
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);

// SigningKey derives the signing key for one day, region and service from the secret access
// key. Intermediate keys are wiped.
SecretBytes SigningKey(const SecretBytes& secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service);

// Signature returns hex(HMAC-SHA256(signing_key, string_to_sign)), lower case.
std::string Signature(const SecretBytes& signing_key, std::string_view string_to_sign);

// SignSigV4 signs `request` as an AWS SDK does (the client side, for custos's own KMS client,
// load generator and tests): it sets x-amz-date (from `now`) and an Authorization header over
// every header the request carries (names must already be lower case, `host` included) and
// the SHA-256 of the body. Fails only for a target that is not origin-form.
Status SignSigV4(net::HttpRequest& request, const SigV4Credentials& credentials, std::string_view region,
                 std::string_view service, std::time_t now);

// VerifySigV4 authenticates `request` (as net::HttpServer hands it over) at server time `now`.
// It accepts the Authorization-header form and the presigned query form, and requires:
// algorithm AWS4-HMAC-SHA256; a credential scope naming options.region and options.service on
// the day of X-Amz-Date; host, x-amz-date (header form) and every must_sign_if_present header
// the request carries in SignedHeaders; X-Amz-Date within now ± max_skew (header form) or,
// presigned, now within [X-Amz-Date - max_skew, X-Amz-Date + X-Amz-Expires] with Expires in
// 1..604800; a known access key; the credential's session token (x-amz-security-token
// header, or X-Amz-Security-Token when presigned) when it has one and none when it has none;
// an x-amz-content-sha256 header, when present, equal to the body's SHA-256 (or
// "UNSIGNED-PAYLOAD", presigned only); and a signature equal, in constant time, to the one
// recomputed. On success returns who signed; on failure one of sigv4_error. Thread-safe if
// `lookup` is.
StatusOr<SigV4Identity> VerifySigV4(const net::HttpRequest& request, const CredentialLookup& lookup,
                                    const SigV4Options& options, std::time_t now);

}  // namespace custos::kms
