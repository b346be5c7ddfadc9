// AWS Signature Version 4 verification; see sigv4.h for the scheme and the canonicalization
// choices.
#include "net/sigv4.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <utility>

#include "common/bytes.h"
#include "crypto/hash.h"

namespace custos::kms {
namespace {

namespace err = sigv4_error;

constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
constexpr std::string_view kScopeTerminator = "aws4_request";
constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
// AWS caps presigned URLs at seven days.
constexpr int64_t kMaxPresignExpires = 7 * 24 * 3600;

Status Malformed(std::string_view message) { return InvalidArgument(std::string(message)); }
Status Denied(std::string_view message) { return PermissionDenied(std::string(message)); }

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsLowerHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f'); }
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// IsHeaderNameChar accepts the RFC 9110 token characters, lower case only.
bool IsHeaderNameChar(char c) {
  if ((c >= 'a' && c <= 'z') || IsDigit(c)) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  for (;;) {
    size_t end = s.find(sep, start);
    if (end == std::string_view::npos) {
      parts.push_back(s.substr(start));
      return parts;
    }
    parts.push_back(s.substr(start, end - start));
    start = end + 1;
  }
}

// UriEncode percent-encodes every byte outside "unreserved" (and '/' when keep_slash).
void UriEncode(std::string_view in, bool keep_slash, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char ch : in) {
    auto c = static_cast<unsigned char>(ch);
    if (IsUnreserved(c) || (keep_slash && c == '/')) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
}

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// UriDecode undoes %XX; '+' stays a plus. Nullopt on a truncated or non-hex escape.
std::optional<std::string> UriDecode(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return std::nullopt;
    int hi = HexValue(in[i + 1]);
    int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

struct QueryParam {
  std::string name;   // decoded
  std::string value;  // decoded
};

// ParseQuery splits a raw query string into decoded parameters, skipping empty pieces
// ("a=1&&b=2"). A piece without '=' is a name with an empty value.
StatusOr<std::vector<QueryParam>> ParseQuery(std::string_view query) {
  std::vector<QueryParam> params;
  if (query.empty()) return params;
  for (std::string_view piece : Split(query, '&')) {
    if (piece.empty()) continue;
    size_t eq = piece.find('=');
    std::string_view raw_name = piece.substr(0, eq);
    std::string_view raw_value = eq == std::string_view::npos ? "" : piece.substr(eq + 1);
    auto name = UriDecode(raw_name);
    auto value = UriDecode(raw_value);
    if (!name || !value) return Malformed(err::kMalformedQuery);
    params.push_back({std::move(*name), std::move(*value)});
  }
  return params;
}

struct SplitTarget {
  std::string_view path;
  std::string_view query;
};

StatusOr<SplitTarget> SplitRequestTarget(std::string_view target) {
  size_t q = target.find('?');
  SplitTarget out{target.substr(0, q), q == std::string_view::npos ? "" : target.substr(q + 1)};
  if (!out.path.empty() && out.path.front() != '/') return Malformed(err::kMalformedTarget);
  return out;
}

std::string CanonicalUri(std::string_view path, bool normalize) {
  if (path.empty()) return std::string(1, '/');
  std::string out;
  if (!normalize) {
    UriEncode(path, /*keep_slash=*/true, out);
    return out;
  }
  // RFC 3986 section 5.2.4 dot-segment removal plus collapsing of empty segments, as the AWS
  // signers do: "//a//" -> "/a/", "/a/b/../.." -> "/". A trailing '/' survives when the
  // result is not the root.
  std::vector<std::string_view> kept;
  for (std::string_view segment : Split(path.substr(1), '/')) {
    if (segment.empty() || segment == ".") continue;
    if (segment == "..") {
      if (!kept.empty()) kept.pop_back();
      continue;
    }
    kept.push_back(segment);
  }
  out.push_back('/');
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out.push_back('/');
    UriEncode(kept[i], /*keep_slash=*/false, out);
  }
  if (!kept.empty() && path.back() == '/') out.push_back('/');
  return out;
}

std::string CanonicalQuery(std::vector<QueryParam> params) {
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (QueryParam& p : params) {
    if (p.name == "X-Amz-Signature") continue;  // the signature cannot sign itself
    std::pair<std::string, std::string> e;
    UriEncode(p.name, false, e.first);
    UriEncode(p.value, false, e.second);
    encoded.push_back(std::move(e));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (size_t i = 0; i < encoded.size(); ++i) {
    if (i > 0) out.push_back('&');
    out += encoded[i].first;
    out.push_back('=');
    out += encoded[i].second;
  }
  return out;
}

// AppendTrimAll appends `value` without leading and trailing white space and with each run
// of inner white space replaced by one space.
void AppendTrimAll(std::string_view value, std::string& out) {
  value = Trim(value);
  bool in_space = false;
  for (char c : value) {
    if (IsSpace(c)) {
      in_space = true;
      continue;
    }
    if (in_space) out.push_back(' ');
    in_space = false;
    out.push_back(c);
  }
}

bool IsValidScopeField(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return IsUnreserved(static_cast<unsigned char>(c)); });
}

bool IsValidAccessKeyId(std::string_view s) {
  if (s.empty() || s.size() > 128) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// ParseCredential parses "AKID/YYYYMMDD/region/service/aws4_request" into `auth`.
Status ParseCredential(std::string_view credential, SigV4Authorization& auth) {
  std::vector<std::string_view> parts = Split(credential, '/');
  if (parts.size() != 5 || !IsValidAccessKeyId(parts[0]) || parts[1].size() != 8 ||
      !std::all_of(parts[1].begin(), parts[1].end(), IsDigit) || !IsValidScopeField(parts[2]) ||
      !IsValidScopeField(parts[3]) || parts[4] != kScopeTerminator) {
    return Malformed(err::kMalformedCredentialScope);
  }
  auth.access_key_id = std::string(parts[0]);
  auth.scope_date = std::string(parts[1]);
  auth.region = std::string(parts[2]);
  auth.service = std::string(parts[3]);
  return Status::Ok();
}

// ParseSignedHeaders parses "a;b;c": non-empty lower-case names, strictly ascending.
Status ParseSignedHeaders(std::string_view list, SigV4Authorization& auth) {
  auth.signed_headers.clear();
  for (std::string_view name : Split(list, ';')) {
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsHeaderNameChar) ||
        (!auth.signed_headers.empty() && !(auth.signed_headers.back() < name))) {
      return Malformed(err::kMalformedSignedHeaders);
    }
    auth.signed_headers.emplace_back(name);
  }
  return Status::Ok();
}

Status ParseSignatureHex(std::string_view signature, SigV4Authorization& auth) {
  if (signature.size() != 64 || !std::all_of(signature.begin(), signature.end(), IsLowerHex)) {
    return Malformed(err::kMalformedSignature);
  }
  auth.signature = std::string(signature);
  return Status::Ok();
}

// SignedRequest is what either authentication form yields before the checks that need the
// credential.
struct SignedRequest {
  SigV4Authorization auth;
  std::string amz_date;
  bool presigned = false;
  int64_t expires = 0;                             // presigned only
  std::optional<std::string> query_session_token;  // presigned only
};

bool IsPresignParam(std::string_view name) {
  return name == "X-Amz-Algorithm" || name == "X-Amz-Credential" || name == "X-Amz-Date" ||
         name == "X-Amz-SignedHeaders" || name == "X-Amz-Signature" || name == "X-Amz-Expires";
}

StatusOr<SignedRequest> ParsePresigned(const std::vector<QueryParam>& params) {
  std::optional<std::string_view> algorithm, credential, date, signed_headers, signature, expires,
      token;
  auto take = [](std::optional<std::string_view>& slot, std::string_view value) {
    if (slot) return false;  // a repeated parameter is ambiguous
    slot = value;
    return true;
  };
  for (const QueryParam& p : params) {
    bool fresh = true;
    if (p.name == "X-Amz-Algorithm") fresh = take(algorithm, p.value);
    if (p.name == "X-Amz-Credential") fresh = take(credential, p.value);
    if (p.name == "X-Amz-Date") fresh = take(date, p.value);
    if (p.name == "X-Amz-SignedHeaders") fresh = take(signed_headers, p.value);
    if (p.name == "X-Amz-Signature") fresh = take(signature, p.value);
    if (p.name == "X-Amz-Expires") fresh = take(expires, p.value);
    if (p.name == "X-Amz-Security-Token") fresh = take(token, p.value);
    if (!fresh) return Malformed(err::kMalformedPresignedQuery);
  }
  if (!algorithm || !credential || !date || !signed_headers || !signature || !expires) {
    return Malformed(err::kMalformedPresignedQuery);
  }
  if (*algorithm != kAlgorithm) return Malformed(err::kUnsupportedAlgorithm);
  SignedRequest out;
  out.presigned = true;
  RETURN_IF_ERROR(ParseCredential(*credential, out.auth));
  RETURN_IF_ERROR(ParseSignedHeaders(*signed_headers, out.auth));
  RETURN_IF_ERROR(ParseSignatureHex(*signature, out.auth));
  if (expires->empty() || expires->size() > 6 ||
      !std::all_of(expires->begin(), expires->end(), IsDigit)) {
    return Malformed(err::kMalformedExpires);
  }
  out.expires = std::stoll(std::string(*expires));
  if (out.expires < 1 || out.expires > kMaxPresignExpires) {
    return Malformed(err::kMalformedExpires);
  }
  out.amz_date = std::string(*date);
  if (token) out.query_session_token = std::string(*token);
  return out;
}

const std::string* FindHeader(const net::HttpRequest& request, const std::string& name) {
  auto it = request.headers.find(name);
  return it == request.headers.end() ? nullptr : &it->second;
}

bool Contains(const std::vector<std::string>& names, std::string_view name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

bool EqualInConstantTime(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ConstantTimeEquals(AsBytes(a), AsBytes(b));
}

// SecretHmac returns HMAC-SHA256(key, data) as a secret and wipes the stack copy.
SecretBytes SecretHmac(std::span<const uint8_t> key, std::string_view data) {
  crypto::Digest digest = crypto::HmacSha256(key, AsBytes(data));
  SecretBytes out = SecretBytes::CopyFrom(std::span<const uint8_t>(digest));
  OPENSSL_cleanse(digest.data(), digest.size());
  return out;
}

// Days since 1970-01-01 of a proleptic Gregorian date (the usual era-based computation).
int64_t DaysFromCivil(int64_t y, int64_t m, int64_t d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

// ParsedRequestFrom turns the server's request into field lines, one per map entry (the
// literal reading) or, with split_joined, with every value that holds ", " split there.
ParsedRequest ParsedRequestFrom(const net::HttpRequest& request, bool split_joined,
                                const std::vector<std::string>& signed_headers) {
  ParsedRequest parsed{request.method, request.target, {}};
  for (const auto& [name, value] : request.headers) {
    if (!split_joined || !Contains(signed_headers, name)) {
      parsed.headers.push_back({name, value});
      continue;
    }
    std::string_view rest = value;
    for (;;) {
      size_t at = rest.find(", ");
      parsed.headers.push_back({name, std::string(rest.substr(0, at))});
      if (at == std::string_view::npos) break;
      rest.remove_prefix(at + 2);
    }
  }
  return parsed;
}

// SignatureMatches recomputes the signature over one reading of the request.
StatusOr<bool> SignatureMatches(const ParsedRequest& parsed, const SignedRequest& signed_request,
                                std::string_view payload_hash, const SecretBytes& signing_key,
                                const SigV4Options& options) {
  const SigV4Authorization& auth = signed_request.auth;
  ASSIGN_OR_RETURN(std::string canonical, CanonicalRequest(parsed, auth.signed_headers,
                                                           payload_hash, options.normalize_path));
  std::string expected = Signature(
      signing_key,
      StringToSign(signed_request.amz_date,
                   CredentialScope(auth.scope_date, auth.region, auth.service), canonical));
  bool match = EqualInConstantTime(expected, auth.signature);
  // The expected signature of a forged request is as good as a forgery; do not leave it in
  // freed memory.
  WipeBytes(expected);
  return match;
}

}  // namespace

StatusOr<SigV4Authorization> ParseAuthorizationHeader(std::string_view value) {
  value = Trim(value);
  size_t space = value.find_first_of(" \t");
  std::string_view algorithm = value.substr(0, space);
  if (algorithm != kAlgorithm) return Malformed(err::kUnsupportedAlgorithm);
  if (space == std::string_view::npos) return Malformed(err::kMalformedAuthorization);

  std::optional<std::string_view> credential, signed_headers, signature;
  for (std::string_view component : Split(value.substr(space), ',')) {
    component = Trim(component);
    size_t eq = component.find('=');
    if (eq == std::string_view::npos) return Malformed(err::kMalformedAuthorization);
    std::string_view key = component.substr(0, eq);
    std::string_view field = component.substr(eq + 1);
    // A missing comma shows up as white space inside a value.
    if (std::any_of(field.begin(), field.end(), IsSpace)) {
      return Malformed(err::kMalformedAuthorization);
    }
    std::optional<std::string_view>* slot = nullptr;
    if (key == "Credential") slot = &credential;
    if (key == "SignedHeaders") slot = &signed_headers;
    if (key == "Signature") slot = &signature;
    if (slot == nullptr || slot->has_value()) return Malformed(err::kMalformedAuthorization);
    *slot = field;
  }
  if (!credential || !signed_headers || !signature) {
    return Malformed(err::kMalformedAuthorization);
  }
  SigV4Authorization auth;
  RETURN_IF_ERROR(ParseCredential(*credential, auth));
  RETURN_IF_ERROR(ParseSignedHeaders(*signed_headers, auth));
  RETURN_IF_ERROR(ParseSignatureHex(*signature, auth));
  return auth;
}

StatusOr<std::time_t> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z') return Malformed(err::kMalformedDate);
  for (size_t i : {0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14}) {
    if (!IsDigit(s[i])) return Malformed(err::kMalformedDate);
  }
  auto num = [&](size_t at, size_t len) {
    int64_t v = 0;
    for (size_t i = at; i < at + len; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  int64_t year = num(0, 4), month = num(4, 2), day = num(6, 2);
  int64_t hour = num(9, 2), minute = num(11, 2), second = num(13, 2);
  static constexpr int kDaysInMonth[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  if (month < 1 || month > 12 || day < 1 || day > kDaysInMonth[month - 1] ||
      (month == 2 && day == 29 && !leap) || hour > 23 || minute > 59 || second > 59) {
    return Malformed(err::kMalformedDate);
  }
  int64_t days = DaysFromCivil(year, month, day);
  return static_cast<std::time_t>(days * 86400 + hour * 3600 + minute * 60 + second);
}

std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service) {
  std::string scope;
  scope.append(date).append("/").append(region).append("/").append(service).append("/");
  scope.append(kScopeTerminator);
  return scope;
}

StatusOr<std::string> CanonicalRequest(const ParsedRequest& request,
                                       const std::vector<std::string>& signed_headers,
                                       std::string_view payload_hash, bool normalize_path) {
  ASSIGN_OR_RETURN(SplitTarget target, SplitRequestTarget(request.target));
  ASSIGN_OR_RETURN(std::vector<QueryParam> params, ParseQuery(target.query));

  std::string out = request.method;
  out.push_back('\n');
  out += CanonicalUri(target.path, normalize_path);
  out.push_back('\n');
  out += CanonicalQuery(std::move(params));
  out.push_back('\n');
  for (const std::string& name : signed_headers) {
    out += name;
    out.push_back(':');
    bool found = false;
    for (const HeaderLine& line : request.headers) {
      if (line.name != name) continue;
      if (found) out.push_back(',');
      AppendTrimAll(line.value, out);
      found = true;
    }
    if (!found) return Malformed(err::kSignedHeaderAbsent);
    out.push_back('\n');
  }
  out.push_back('\n');
  for (size_t i = 0; i < signed_headers.size(); ++i) {
    if (i > 0) out.push_back(';');
    out += signed_headers[i];
  }
  out.push_back('\n');
  out.append(payload_hash);
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.push_back('\n');
  out.append(amz_date).append("\n").append(scope).append("\n");
  out += HexEncode(crypto::Sha256(AsBytes(canonical_request)));
  return out;
}

SecretBytes SigningKey(const SecretBytes& secret_access_key, std::string_view date,
                       std::string_view region, std::string_view service) {
  SecretBytes initial(4 + secret_access_key.size());
  std::span<uint8_t> raw = initial.ExposeMutable();
  std::memcpy(raw.data(), "AWS4", 4);
  std::span<const uint8_t> secret = secret_access_key.Expose();
  if (!secret.empty()) std::memcpy(raw.data() + 4, secret.data(), secret.size());
  SecretBytes date_key = SecretHmac(initial.Expose(), date);
  SecretBytes region_key = SecretHmac(date_key.Expose(), region);
  SecretBytes service_key = SecretHmac(region_key.Expose(), service);
  return SecretHmac(service_key.Expose(), kScopeTerminator);
}

SigningKeyCache::SigningKeyCache(SecretBytes secret_access_key)
    : secret_(std::move(secret_access_key)) {}

std::shared_ptr<const SecretBytes> SigningKeyCache::Get(std::string_view date,
                                                         std::string_view region,
                                                         std::string_view service) {
  std::lock_guard lock(mu_);
  for (const Slot& s : slots_)
    if (s.date == date && s.region == region && s.service == service) return s.key;
  auto key = std::make_shared<const SecretBytes>(SigningKey(secret_, date, region, service));
  if (slots_.size() == kSlots) slots_.erase(slots_.begin());
  slots_.push_back({std::string(date), std::string(region), std::string(service), key});
  return key;
}

std::string Signature(const SecretBytes& signing_key, std::string_view string_to_sign) {
  crypto::Digest mac = crypto::HmacSha256(signing_key.Expose(), AsBytes(string_to_sign));
  return HexEncode(mac);
}

StatusOr<SigV4Identity> VerifySigV4(const net::HttpRequest& request, const CredentialLookup& lookup,
                                    const SigV4Options& options, std::time_t now) {
  // Which form: an Authorization header, presigned query parameters, never both.
  ASSIGN_OR_RETURN(SplitTarget target, SplitRequestTarget(request.target));
  ASSIGN_OR_RETURN(std::vector<QueryParam> params, ParseQuery(target.query));
  const bool has_presign_params = std::any_of(
      params.begin(), params.end(), [](const QueryParam& p) { return IsPresignParam(p.name); });
  const std::string* authorization = FindHeader(request, "authorization");
  if (authorization != nullptr && has_presign_params) {
    return Malformed(err::kAmbiguousAuthorization);
  }
  if (authorization == nullptr && !has_presign_params) {
    return Denied(err::kMissingAuthorization);
  }

  SignedRequest signed_request;
  if (has_presign_params) {
    ASSIGN_OR_RETURN(signed_request, ParsePresigned(params));
  } else {
    ASSIGN_OR_RETURN(signed_request.auth, ParseAuthorizationHeader(*authorization));
    const std::string* date = FindHeader(request, "x-amz-date");
    if (date == nullptr) return Malformed(err::kMissingDate);
    signed_request.amz_date = *date;
  }
  const SigV4Authorization& auth = signed_request.auth;
  ASSIGN_OR_RETURN(std::time_t signed_at, ParseAmzDate(signed_request.amz_date));

  // The scope: this server's region and service, on the day the request says it was signed.
  if (auth.scope_date != std::string_view(signed_request.amz_date).substr(0, 8)) {
    return Denied(err::kScopeDateMismatch);
  }
  if (!options.region.empty() && auth.region != options.region) return Denied(err::kWrongRegion);
  if (auth.service != options.service) return Denied(err::kWrongService);

  // What must be signed. Presigned requests carry their date in the (signed) query.
  if (!Contains(auth.signed_headers, "host") ||
      (!signed_request.presigned && !Contains(auth.signed_headers, "x-amz-date"))) {
    return Malformed(err::kRequiredHeaderNotSigned);
  }
  for (const std::string& name : options.must_sign_if_present) {
    if (request.headers.count(name) != 0 && !Contains(auth.signed_headers, name)) {
      return Malformed(err::kRequiredHeaderNotSigned);
    }
  }

  // When.
  const int64_t age = static_cast<int64_t>(now) - static_cast<int64_t>(signed_at);
  const int64_t skew = options.max_skew.count();
  if (age < -skew) return Denied(err::kClockSkew);
  if (!signed_request.presigned && age > skew) return Denied(err::kClockSkew);
  if (signed_request.presigned && age > signed_request.expires) {
    return Denied(err::kPresignExpired);
  }

  // Who.
  StatusOr<SigV4Credentials> credentials = lookup(auth.access_key_id);
  if (!credentials.ok()) {
    if (credentials.status().code() == ErrorCode::kNotFound) {
      return Denied(err::kUnknownAccessKey);
    }
    return Status(credentials.status().code(), std::string(err::kLookupFailed));
  }
  if (credentials->secret_access_key.empty() && !credentials->signing_keys)
    return Denied(err::kUnknownAccessKey);

  // Session token: every copy presented must be the credential's, and a credential with one
  // needs at least one copy.
  std::vector<std::string_view> tokens;
  if (const std::string* header = FindHeader(request, "x-amz-security-token")) {
    tokens.push_back(*header);
  }
  if (signed_request.query_session_token) tokens.push_back(*signed_request.query_session_token);
  const std::string& expected_token = credentials->session_token;
  if (expected_token.empty() != tokens.empty()) return Denied(err::kSecurityTokenInvalid);
  for (std::string_view token : tokens) {
    if (!EqualInConstantTime(token, expected_token)) return Denied(err::kSecurityTokenInvalid);
  }

  // The payload.
  std::string payload_hash = HexEncode(crypto::Sha256(AsBytes(request.body)));
  if (const std::string* declared = FindHeader(request, "x-amz-content-sha256")) {
    if (*declared == kUnsignedPayload) {
      if (!signed_request.presigned) return Malformed(err::kUnsignedPayloadRefused);
      payload_hash = std::string(kUnsignedPayload);
    } else if (declared->size() != 64 ||
               !std::all_of(declared->begin(), declared->end(), IsLowerHex)) {
      return Malformed(err::kMalformedContentSha256);
    } else if (*declared != payload_hash) {
      return Malformed(err::kContentSha256Mismatch);
    }
  }

  // The signature, over the request as received and, if that fails and a signed value may
  // be several field lines the server joined, over that reading (see sigv4.h).
  std::shared_ptr<const SecretBytes> signing_key_ptr =
      credentials->signing_keys
          ? credentials->signing_keys->Get(auth.scope_date, auth.region, auth.service)
          : std::make_shared<const SecretBytes>(SigningKey(
                credentials->secret_access_key, auth.scope_date, auth.region, auth.service));
  const SecretBytes& signing_key = *signing_key_ptr;
  ASSIGN_OR_RETURN(bool match,
                   SignatureMatches(ParsedRequestFrom(request, false, auth.signed_headers),
                                    signed_request, payload_hash, signing_key, options));
  if (!match) {
    const bool may_be_joined = std::any_of(
        auth.signed_headers.begin(), auth.signed_headers.end(), [&](const std::string& name) {
          const std::string* value = FindHeader(request, name);
          return value != nullptr && value->find(", ") != std::string::npos;
        });
    if (may_be_joined) {
      ASSIGN_OR_RETURN(match,
                       SignatureMatches(ParsedRequestFrom(request, true, auth.signed_headers),
                                        signed_request, payload_hash, signing_key, options));
    }
  }
  if (!match) return Denied(err::kSignatureMismatch);

  return SigV4Identity{auth.access_key_id, auth.region, auth.service, signed_request.amz_date};
}

Status SignSigV4(net::HttpRequest& request, const SigV4Credentials& credentials, std::string_view region,
                 std::string_view service, std::time_t now) {
  std::tm tm{};
  gmtime_r(&now, &tm);
  char date[32];
  std::strftime(date, sizeof(date), "%Y%m%dT%H%M%SZ", &tm);
  std::string amz_date = date;
  std::string day = amz_date.substr(0, 8);
  request.headers["x-amz-date"] = amz_date;
  request.headers.erase("authorization");
  if (!credentials.session_token.empty()) request.headers["x-amz-security-token"] = credentials.session_token;
  ParsedRequest parsed{request.method, request.target, {}};
  std::vector<std::string> names;
  for (const auto& [name, value] : request.headers) {  // std::map: already ascending
    parsed.headers.push_back({name, value});
    names.push_back(name);
  }
  std::string payload_hash = HexEncode(crypto::Sha256(AsBytes(request.body)));
  ASSIGN_OR_RETURN(std::string canonical, CanonicalRequest(parsed, names, payload_hash, /*normalize_path=*/true));
  std::string scope = CredentialScope(day, region, service);
  SecretBytes key = SigningKey(credentials.secret_access_key, day, region, service);
  std::string signed_names;
  for (const auto& n : names) signed_names += (signed_names.empty() ? "" : ";") + n;
  request.headers["authorization"] = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                                     ", SignedHeaders=" + signed_names +
                                     ", Signature=" + Signature(key, StringToSign(amz_date, scope, canonical));
  return Status::Ok();
}

}  // namespace custos::kms
