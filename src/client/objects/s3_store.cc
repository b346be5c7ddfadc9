// S3 over libcurl. Each request is one easy-handle transfer; libcurl signs it with SigV4
// (CURLOPT_AWS_SIGV4) over the headers we set, including x-amz-content-sha256: UNSIGNED-PAYLOAD,
// which libcurl 7.88 does not add itself but S3 requires. libcurl signs the path and the query
// exactly as written, so both are written here already in SigV4's canonical form: keys and
// query values percent-encoded (objects' keys keep their '/'), query parameters sorted by name,
// valueless ones as "name=".
//
// Threads: a call runs up to concurrency() workers; each leases one easy handle from the
// store's pool for its lifetime and returns it afterwards, so handles (and their connections)
// are reused across requests and calls but never shared between threads at once.
#include "client/objects/s3_store.h"

#include <curl/curl.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <ctime>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "common/secret.h"
#include "client/objects/internal/s3_xml.h"

namespace custos::objects {
namespace {

constexpr size_t kMaxPartCount = 10'000;        // S3's limit for one multipart upload
constexpr size_t kMaxKeyBytes = 1024;           // S3's limit on a key
constexpr size_t kMaxResponseBody = 16u << 20;  // a ListObjectsV2 page is ~1 MiB at most
constexpr long kUploadBufferSize = 512 * 1024;  // libcurl's read chunk for PUT bodies
constexpr long kLowSpeedLimitBytesPerSecond = 1024;

Status GlobalInit() {
  static std::once_flag once;
  static CURLcode rc = CURLE_OK;
  std::call_once(once, [] { rc = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (rc != CURLE_OK) {
    return InternalError(std::string("curl_global_init: ") + curl_easy_strerror(rc));
  }
  return Status::Ok();
}

std::optional<uint64_t> ParseDecimal(std::string_view text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

std::string Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return "";
  size_t end = text.find_last_not_of(" \t\r\n");
  return std::string(text.substr(begin, end - begin + 1));
}

// HttpDateToIso8601 turns an RFC 7231 date ("Wed, 21 Oct 2015 07:28:00 GMT") into ISO 8601 UTC;
// "" when it cannot be parsed.
std::string HttpDateToIso8601(const std::string& http_date) {
  time_t t = curl_getdate(http_date.c_str(), nullptr);
  if (t == -1) return "";
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// ContentRangeTotal reads "bytes FIRST-LAST/TOTAL" and returns TOTAL when FIRST is `first`.
std::optional<uint64_t> ContentRangeTotal(const std::map<std::string, std::string>& headers,
                                          uint64_t first) {
  auto it = headers.find("content-range");
  if (it == headers.end()) return std::nullopt;
  std::string_view v = it->second;
  if (v.rfind("bytes ", 0) != 0) return std::nullopt;
  v.remove_prefix(6);
  size_t dash = v.find('-'), slash = v.find('/');
  if (dash == std::string_view::npos || slash == std::string_view::npos || dash > slash)
    return std::nullopt;
  if (ParseDecimal(v.substr(0, dash)) != first) return std::nullopt;
  if (!ParseDecimal(v.substr(dash + 1, slash - dash - 1))) return std::nullopt;
  return ParseDecimal(v.substr(slash + 1));
}

std::string RangeText(const ByteRange& r) {
  return std::to_string(r.offset) + "+" + std::to_string(r.length);
}

// FirstError keeps the first failure of a group of workers and tells the others to stop.
class FirstError {
 public:
  void Record(Status status) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok()) {
      status_ = std::move(status);
      failed_ = true;
    }
  }
  bool failed() const { return failed_; }
  const std::atomic<bool>* flag() const { return &failed_; }
  Status status() {
    std::lock_guard<std::mutex> lock(mu_);
    return status_;
  }

 private:
  std::mutex mu_;
  Status status_;
  std::atomic<bool> failed_{false};
};

// RunWorkers runs `work` on `count` threads, the calling thread being one of them, and waits
// for all. If the system refuses a thread, the work runs on the threads it has.
void RunWorkers(size_t count, const std::function<void()>& work) {
  std::vector<std::thread> threads;
  for (size_t i = 1; i < count; ++i) {
    try {
      threads.emplace_back(work);
    } catch (const std::system_error&) {
      break;
    }
  }
  work();
  for (std::thread& t : threads) t.join();
}

// CurlHandle owns one easy handle.
class CurlHandle {
 public:
  explicit CurlHandle(CURL* handle) : handle_(handle) {}
  ~CurlHandle() { curl_easy_cleanup(handle_); }
  CurlHandle(const CurlHandle&) = delete;
  CurlHandle& operator=(const CurlHandle&) = delete;
  CURL* get() const { return handle_; }

 private:
  CURL* handle_;
};

// HeaderList owns a curl_slist.
class HeaderList {
 public:
  HeaderList() = default;
  ~HeaderList() { curl_slist_free_all(list_); }
  HeaderList(const HeaderList&) = delete;
  HeaderList& operator=(const HeaderList&) = delete;
  Status Append(const std::string& header) {
    curl_slist* next = curl_slist_append(list_, header.c_str());
    if (next == nullptr) return InternalError("curl_slist_append failed");
    list_ = next;
    return Status::Ok();
  }
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// HandlePool hands each worker thread its own easy handle and keeps returned handles (with
// their open connections) for later requests.
class HandlePool {
 public:
  class Lease {
   public:
    Lease(HandlePool* pool, std::unique_ptr<CurlHandle> handle)
        : pool_(pool), handle_(std::move(handle)) {}
    ~Lease() {
      if (handle_) pool_->Return(std::move(handle_));
    }
    Lease(Lease&&) = default;
    Lease& operator=(Lease&&) = delete;
    CurlHandle& handle() { return *handle_; }

   private:
    HandlePool* pool_;
    std::unique_ptr<CurlHandle> handle_;
  };

  StatusOr<Lease> Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        std::unique_ptr<CurlHandle> handle = std::move(idle_.back());
        idle_.pop_back();
        return Lease(this, std::move(handle));
      }
    }
    CURL* raw = curl_easy_init();
    if (raw == nullptr) return InternalError("curl_easy_init failed");
    return Lease(this, std::make_unique<CurlHandle>(raw));
  }

 private:
  void Return(std::unique_ptr<CurlHandle> handle) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(std::move(handle));
  }

  std::mutex mu_;
  std::vector<std::unique_ptr<CurlHandle>> idle_;
};

// Exchange is the state of one request shared with libcurl's callbacks: where the request
// body comes from, where a successful response body goes, and what came back.
struct Exchange {
  // Request body for PUT: exactly upload_remaining bytes read from `source`.
  BodySource* source = nullptr;
  uint64_t upload_remaining = 0;
  // Response body of a GET: streamed into `sink` when the status is 206, or 200 if
  // `sink_accepts_200`; at most `sink_limit` bytes. Any other body is kept in `body`.
  BodySink* sink = nullptr;
  bool sink_accepts_200 = false;
  uint64_t sink_limit = 0;
  uint64_t streamed = 0;

  TransferStats* stats = nullptr;
  const std::atomic<bool>* cancel = nullptr;  // another worker failed: stop early
  Status callback_status;                     // why a callback aborted the transfer

  long status = 0;                             // HTTP status of the last status line
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;

  bool Streaming() const {
    return sink != nullptr && (status == 206 || (status == 200 && sink_accepts_200));
  }
};

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t total = size * count;
  std::string_view line(data, total);
  if (line.rfind("HTTP/", 0) == 0) {
    ex->headers.clear();
    size_t space = line.find(' ');
    long status = 0;
    if (space != std::string_view::npos && line.size() >= space + 4) {
      std::from_chars(line.data() + space + 1, line.data() + space + 4, status);
    }
    ex->status = status;
    return total;
  }
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return total;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  ex->headers[name] = Trim(line.substr(colon + 1));
  return total;
}

size_t OnWrite(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t total = size * count;
  if (ex->cancel != nullptr && ex->cancel->load()) return 0;
  if (!ex->Streaming()) {
    if (ex->body.size() + total > kMaxResponseBody) {
      ex->callback_status =
          Unavailable("response body larger than " + std::to_string(kMaxResponseBody) + " bytes");
      return 0;
    }
    ex->body.append(data, total);
    return total;
  }
  if (total > ex->sink_limit - ex->streamed) {
    ex->callback_status = IntegrityError("the service sent more than the " +
                                         std::to_string(ex->sink_limit) + " bytes asked for");
    return 0;
  }
  Status status = ex->sink->Write({reinterpret_cast<const uint8_t*>(data), total});
  if (!status.ok()) {
    ex->callback_status = std::move(status);
    return 0;
  }
  ex->streamed += total;
  if (ex->stats != nullptr) ex->stats->bytes += total;
  return total;
}

size_t OnRead(char* buffer, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  if (ex->cancel != nullptr && ex->cancel->load()) return CURL_READFUNC_ABORT;
  size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, ex->upload_remaining));
  if (want == 0) return 0;
  StatusOr<size_t> n = ex->source->Read({reinterpret_cast<uint8_t*>(buffer), want});
  if (!n.ok()) {
    ex->callback_status = n.status();
    return CURL_READFUNC_ABORT;
  }
  if (*n == 0 || *n > want) {
    ex->callback_status =
        InternalError("the body source returned " + std::to_string(*n) + " bytes with " +
                      std::to_string(ex->upload_remaining) + " to go");
    return CURL_READFUNC_ABORT;
  }
  ex->upload_remaining -= *n;
  if (ex->stats != nullptr) ex->stats->bytes += *n;
  return *n;
}

int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* ex = static_cast<Exchange*>(user);
  return ex->cancel != nullptr && ex->cancel->load() ? 1 : 0;
}

// ErrorCodeFor classifies a failed answer by its S3 error code, else by its HTTP status.
ErrorCode ErrorCodeFor(long http_status, const std::string& s3_code) {
  static const std::map<std::string, ErrorCode, std::less<>> kByS3Code = {
      {"NoSuchKey", ErrorCode::kNotFound},
      {"NoSuchBucket", ErrorCode::kNotFound},
      {"NoSuchUpload", ErrorCode::kNotFound},
      {"AccessDenied", ErrorCode::kPermissionDenied},
      {"SignatureDoesNotMatch", ErrorCode::kPermissionDenied},
      {"InvalidAccessKeyId", ErrorCode::kPermissionDenied},
      {"ExpiredToken", ErrorCode::kPermissionDenied},
      {"InvalidToken", ErrorCode::kPermissionDenied},
      {"InvalidRange", ErrorCode::kInvalidArgument},
      {"KeyTooLongError", ErrorCode::kInvalidArgument},
      {"EntityTooSmall", ErrorCode::kInvalidArgument},
      {"EntityTooLarge", ErrorCode::kInvalidArgument},
      {"InternalError", ErrorCode::kUnavailable},
      {"ServiceUnavailable", ErrorCode::kUnavailable},
      {"SlowDown", ErrorCode::kUnavailable},
      {"RequestTimeout", ErrorCode::kUnavailable},
  };
  if (auto it = kByS3Code.find(s3_code); it != kByS3Code.end()) return it->second;
  if (http_status == 404) return ErrorCode::kNotFound;
  if (http_status == 401 || http_status == 403) return ErrorCode::kPermissionDenied;
  if (http_status == 400 || http_status == 411 || http_status == 413 || http_status == 414 ||
      http_status == 416) {
    return ErrorCode::kInvalidArgument;
  }
  if (http_status == 409 || http_status == 412) return ErrorCode::kFailedPrecondition;
  if (http_status >= 500 || http_status == 429) return ErrorCode::kUnavailable;
  return ErrorCode::kInternal;
}

// ServiceFailure describes an answer that is not the success expected:
// "s3://bucket/key: PUT failed: NoSuchBucket: The specified bucket does not exist (HTTP 404)".
Status ServiceFailure(const std::string& what, const Exchange& ex) {
  std::optional<internal::S3Error> error = internal::ParseS3Error(ex.body);
  std::string message = what + " failed: ";
  if (error) message += error->code + ": " + error->message + " ";
  message += "(HTTP " + std::to_string(ex.status) + ")";
  return Status(ErrorCodeFor(ex.status, error ? error->code : ""), message);
}

enum class Method { kGet, kHead, kPut, kPost, kDelete };

const char* MethodName(Method m) {
  switch (m) {
    case Method::kGet:
      return "GET";
    case Method::kHead:
      return "HEAD";
    case Method::kPut:
      return "PUT";
    case Method::kPost:
      return "POST";
    case Method::kDelete:
      return "DELETE";
  }
  return "?";
}

// Request is what one call of S3Store::Perform sends.
struct Request {
  Method method = Method::kGet;
  std::string url;                   // path and canonical query already encoded
  std::vector<std::string> headers;  // beyond the ones every request carries
  std::string_view post_body;        // POST only
  size_t receive_buffer = 0;         // GET: libcurl's receive buffer, 0 = its default (16 KiB)
};

class S3Store : public ObjectStore {
 public:
  S3Store(std::string bucket, std::string endpoint, const S3Options& options)
      : bucket_(std::move(bucket)),
        endpoint_(std::move(endpoint)),
        custom_endpoint_(!options.endpoint.empty()),
        sigv4_("aws:amz:" + options.region + ":s3"),
        access_key_id_(options.access_key_id),
        secret_(SecretBytes::CopyFrom(std::string_view(options.secret_access_key))),
        session_token_(SecretBytes::CopyFrom(std::string_view(options.session_token))),
        ca_file_(options.ca_file),
        concurrency_(options.concurrency),
        connect_timeout_ms_(options.connect_timeout_ms),
        low_speed_timeout_s_(options.low_speed_timeout_s) {}

  Status Put(const std::string& key, const std::vector<ByteRange>& parts, RangeSource& source,
             TransferStats* stats) override {
    RETURN_IF_ERROR(CheckKey(key));
    if (parts.empty()) return InvalidArgument(Name(key) + ": put with no parts");
    if (parts.size() > kMaxPartCount) {
      return InvalidArgument(Name(key) + ": more than 10000 parts");
    }
    uint64_t next_offset = 0;
    for (const ByteRange& part : parts) {
      if (part.offset != next_offset || (part.length == 0 && parts.size() > 1)) {
        return InvalidArgument(Name(key) + ": parts must be consecutive, non-empty, from 0");
      }
      next_offset = part.end();
    }
    if (parts.size() == 1) return PutSingle(key, parts.front(), source, stats);
    return PutMultipart(key, parts, source, stats);
  }

  StatusOr<ObjectInfo> Head(const std::string& key) override {
    RETURN_IF_ERROR(CheckKey(key));
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    Exchange ex;
    RETURN_IF_ERROR(Perform(lease.handle(), {Method::kHead, ObjectUrl(key), {}, {}}, ex)
                        .WithContext(Name(key) + ": HEAD failed"));
    if (ex.status != 200) return ServiceFailure(Name(key) + ": HEAD", ex);
    auto length = ex.headers.find("content-length");
    std::optional<uint64_t> size =
        length == ex.headers.end() ? std::nullopt : ParseDecimal(length->second);
    if (!size) return Unavailable(Name(key) + ": HEAD answer without a valid Content-Length");
    ObjectInfo info;
    info.key = key;
    info.size = *size;
    if (auto modified = ex.headers.find("last-modified"); modified != ex.headers.end()) {
      info.last_modified = HttpDateToIso8601(modified->second);
    }
    return info;
  }

  StatusOr<ObjectPrefix> GetPrefix(const std::string& key, uint64_t max_bytes) override {
    RETURN_IF_ERROR(CheckKey(key));
    if (max_bytes == 0 || max_bytes > kMaxResponseBody)
      return ObjectStore::GetPrefix(key, max_bytes);
    const std::string what = Name(key) + ": GET range " + RangeText({0, max_bytes});
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    Exchange ex;  // no sink: the answer's body is kept in ex.body
    Request request{
        Method::kGet, ObjectUrl(key), {"Range: bytes=0-" + std::to_string(max_bytes - 1)}, {}};
    if (Perform(lease.handle(), request, ex).ok()) {
      if (ex.status == 206) {
        std::optional<uint64_t> total = ContentRangeTotal(ex.headers, 0);
        if (total && *total > 0 && ex.body.size() == std::min(*total, max_bytes)) {
          ObjectPrefix prefix;
          prefix.info.key = key;
          prefix.info.size = *total;
          if (auto modified = ex.headers.find("last-modified"); modified != ex.headers.end())
            prefix.info.last_modified = HttpDateToIso8601(modified->second);
          prefix.bytes.assign(ex.body.begin(), ex.body.end());
          return prefix;
        }
      } else if (ex.status != 200 && ex.status != 416) {
        return ServiceFailure(what, ex);  // NoSuchKey, AccessDenied, 5xx: as HEAD would say
      }
    }
    // No usable answer: an empty object (S3 answers 416; s3rver 3.7.1 an answer libcurl refuses),
    // a service that ignored the range, or a transfer that failed. HEAD then GET say which.
    return ObjectStore::GetPrefix(key, max_bytes);
  }

  Status Get(const std::string& key, const std::vector<ByteRange>& ranges, RangeSink& sink,
             TransferStats* stats, std::optional<uint64_t> object_size) override {
    // The size the service reports bounds every range; HEAD also turns a missing object or
    // bucket into kNotFound before any sink is opened. A caller that just did HEAD passes the size.
    ObjectInfo info;
    if (object_size) {
      RETURN_IF_ERROR(CheckKey(key));
      info.size = *object_size;
    } else {
      ASSIGN_OR_RETURN(info, Head(key));
    }
    for (const ByteRange& range : ranges) {
      if (range.end() < range.offset || range.end() > info.size) {
        return InvalidArgument(Name(key) + ": range " + RangeText(range) +
                               " lies beyond the object's " + std::to_string(info.size) + " bytes");
      }
    }
    FirstError error;
    std::atomic<size_t> next{0};
    auto worker = [&] {
      std::optional<HandlePool::Lease> lease;
      for (size_t i = next++; i < ranges.size() && !error.failed(); i = next++) {
        const ByteRange& range = ranges[i];
        if (range.length > 0 && !lease) {
          StatusOr<HandlePool::Lease> acquired = pool_.Acquire();
          if (!acquired.ok()) return error.Record(acquired.status());
          lease.emplace(std::move(acquired).value());
        }
        Status status =
            GetRange(lease ? &lease->handle() : nullptr, key, range,
                     range.offset == 0 && range.length == info.size, sink, stats, error.flag());
        if (!status.ok()) return error.Record(std::move(status));
      }
    };
    RunWorkers(std::min<size_t>(static_cast<size_t>(concurrency_), ranges.size()), worker);
    return error.status();
  }

  StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    std::string what = "s3://" + bucket_ + "/" + prefix + ": LIST";
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    std::vector<ObjectInfo> objects;
    std::string token;
    while (true) {
      // Parameters in canonical (sorted) order: continuation-token, list-type, prefix.
      std::string query;
      if (!token.empty()) query += "continuation-token=" + S3UriEncode(token, false) + "&";
      query += "list-type=2";
      if (!prefix.empty()) query += "&prefix=" + S3UriEncode(prefix, false);
      Exchange ex;
      RETURN_IF_ERROR(Perform(lease.handle(), {Method::kGet, BucketUrl() + "?" + query, {}, {}}, ex)
                          .WithContext(what + " failed"));
      if (ex.status != 200) return ServiceFailure(what, ex);
      StatusOr<internal::ListObjectsPage> page = internal::ParseListObjectsV2(ex.body);
      if (!page.ok()) {
        return Unavailable(what + ": unexpected answer: " + page.status().message());
      }
      for (ObjectInfo& info : page->objects) objects.push_back(std::move(info));
      if (!page->truncated) break;
      if (page->next_token == token) {
        return Unavailable(what + ": the service repeated its continuation token");
      }
      token = std::move(page->next_token);
    }
    std::sort(objects.begin(), objects.end(),
              [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
    return objects;
  }

  Status Delete(const std::string& key) override {
    // S3 answers 204 whether or not the key existed; HEAD first so that a missing one is
    // reported as the contract says.
    RETURN_IF_ERROR(Head(key).status());
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    Exchange ex;
    RETURN_IF_ERROR(Perform(lease.handle(), {Method::kDelete, ObjectUrl(key), {}, {}}, ex)
                        .WithContext(Name(key) + ": DELETE failed"));
    if (ex.status != 204 && ex.status != 200) return ServiceFailure(Name(key) + ": DELETE", ex);
    return Status::Ok();
  }

  int concurrency() const override { return concurrency_; }

  std::string description() const override {
    return "s3://" + bucket_ + (custom_endpoint_ ? " at " + endpoint_ : "");
  }

 private:
  std::string Name(const std::string& key) const { return "s3://" + bucket_ + "/" + key; }
  std::string BucketUrl() const { return endpoint_ + "/" + bucket_; }
  std::string ObjectUrl(const std::string& key) const {
    return BucketUrl() + "/" + S3UriEncode(key, true);
  }

  Status CheckKey(const std::string& key) const {
    if (key.empty()) return InvalidArgument("s3://" + bucket_ + ": empty key");
    if (key.size() > kMaxKeyBytes) {
      return InvalidArgument("s3://" + bucket_ + ": key longer than 1024 bytes");
    }
    if (key.find('\0') != std::string::npos) {
      return InvalidArgument("s3://" + bucket_ + ": key contains NUL");
    }
    return Status::Ok();
  }

  // Perform runs one request on `handle`. It fails only when no HTTP answer was received (or a
  // callback aborted); the caller judges ex.status.
  Status Perform(CurlHandle& handle, const Request& request, Exchange& ex) {
    CURL* curl = handle.get();
    // reset drops every option of the previous request but keeps the connection cache.
    curl_easy_reset(curl);
    char error_text[CURL_ERROR_SIZE] = {0};
    HeaderList headers;
    RETURN_IF_ERROR(headers.Append("x-amz-content-sha256: UNSIGNED-PAYLOAD"));
    // No "Expect:" line to switch off 100-continue: libcurl 7.88 would sign "expect" as a
    // header but not send it, and S3 would refuse the signature. libcurl's own
    // "Expect: 100-continue" on bodies over 1 MiB is added after signing, unsigned, as the AWS
    // SDKs send it; the service can then refuse a part before its body is sent.
    if (!session_token_.empty()) {
      std::string header = "x-amz-security-token: ";
      header += session_token_.ExposeAsString();
      Status appended = headers.Append(header);
      WipeBytes(header);
      RETURN_IF_ERROR(appended);
    }
    for (const std::string& h : request.headers) RETURN_IF_ERROR(headers.Append(h));

    bool ok = true;
    auto set = [&ok](CURLcode rc) { ok = ok && rc == CURLE_OK; };
    set(curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str()));
    set(curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_text));
    set(curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L));
    set(curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https"));
    set(curl_easy_setopt(curl, CURLOPT_PATH_AS_IS, 1L));  // keys are names, not paths to resolve
    set(curl_easy_setopt(curl, CURLOPT_AWS_SIGV4, sigv4_.c_str()));
    set(curl_easy_setopt(curl, CURLOPT_USERNAME, access_key_id_.c_str()));
    {
      // libcurl copies the string; ours is wiped at once.
      std::string secret(secret_.ExposeAsString());
      set(curl_easy_setopt(curl, CURLOPT_PASSWORD, secret.c_str()));
      WipeBytes(secret);
    }
    set(curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers.get()));
    set(curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms_));
    set(curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedLimitBytesPerSecond));
    set(curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, low_speed_timeout_s_));
    if (!ca_file_.empty()) set(curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file_.c_str()));
    set(curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader));
    set(curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ex));
    set(curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnWrite));
    set(curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex));
    set(curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, OnProgress));
    set(curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &ex));
    set(curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L));
    switch (request.method) {
      case Method::kGet:
        set(curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L));
        if (request.receive_buffer > 0)
          set(curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, static_cast<long>(request.receive_buffer)));
        break;
      case Method::kHead:
        set(curl_easy_setopt(curl, CURLOPT_NOBODY, 1L));
        break;
      case Method::kPut:
        set(curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L));
        set(curl_easy_setopt(curl, CURLOPT_READFUNCTION, OnRead));
        set(curl_easy_setopt(curl, CURLOPT_READDATA, &ex));
        set(curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE,
                             static_cast<curl_off_t>(ex.upload_remaining)));
        set(curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferSize));
        break;
      case Method::kPost:
        set(curl_easy_setopt(curl, CURLOPT_POST, 1L));
        set(curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.post_body.data()));
        set(curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(request.post_body.size())));
        break;
      case Method::kDelete:
        set(curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, "DELETE"));
        break;
    }
    if (!ok) return InternalError(std::string(MethodName(request.method)) + ": curl_easy_setopt");
    if (ex.stats != nullptr) ex.stats->requests++;
    CURLcode rc = curl_easy_perform(curl);
    // The error buffer and header list die with this frame: detach them from the handle.
    curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
    if (rc != CURLE_OK) {
      if (!ex.callback_status.ok()) return ex.callback_status;
      if (ex.cancel != nullptr && ex.cancel->load()) {
        return Unavailable("cancelled after another transfer failed");
      }
      std::string text = error_text[0] != '\0' ? error_text : curl_easy_strerror(rc);
      return Unavailable(text + " (curl error " + std::to_string(static_cast<int>(rc)) + ")");
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (status != 0) ex.status = status;
    return Status::Ok();
  }

  Status PutSingle(const std::string& key, const ByteRange& part, RangeSource& source,
                   TransferStats* stats) {
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    ASSIGN_OR_RETURN(std::unique_ptr<BodySource> body, source.Open(part));
    Exchange ex;
    ex.source = body.get();
    ex.upload_remaining = part.length;
    ex.stats = stats;
    RETURN_IF_ERROR(Perform(lease.handle(), {Method::kPut, ObjectUrl(key), {}, {}}, ex)
                        .WithContext(Name(key) + ": PUT failed"));
    if (ex.status != 200) return ServiceFailure(Name(key) + ": PUT", ex);
    return Status::Ok();
  }

  Status PutMultipart(const std::string& key, const std::vector<ByteRange>& parts,
                      RangeSource& source, TransferStats* stats) {
    std::string what = Name(key) + ": multipart upload";
    std::string upload_id;
    {
      ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
      Exchange ex;
      ex.stats = stats;
      RETURN_IF_ERROR(
          Perform(lease.handle(), {Method::kPost, ObjectUrl(key) + "?uploads=", {}, ""}, ex)
              .WithContext(what + ": CreateMultipartUpload failed"));
      if (ex.status != 200) return ServiceFailure(what + ": CreateMultipartUpload", ex);
      StatusOr<std::string> id = internal::ParseInitiateMultipartUpload(ex.body);
      if (!id.ok()) return Unavailable(what + ": unexpected answer: " + id.status().message());
      upload_id = std::move(id).value();
    }
    std::string upload_query = "uploadId=" + S3UriEncode(upload_id, false);

    std::vector<std::string> etags(parts.size());
    FirstError error;
    std::atomic<size_t> next{0};
    auto worker = [&] {
      StatusOr<HandlePool::Lease> lease = pool_.Acquire();
      if (!lease.ok()) return error.Record(lease.status());
      for (size_t i = next++; i < parts.size() && !error.failed(); i = next++) {
        StatusOr<std::string> etag = UploadPart(lease->handle(), key, upload_query, i + 1, parts[i],
                                                source, stats, error.flag());
        if (!etag.ok()) return error.Record(etag.status());
        etags[i] = std::move(etag).value();
      }
    };
    RunWorkers(std::min<size_t>(static_cast<size_t>(concurrency_), parts.size()), worker);
    Status status = error.status();
    if (status.ok()) status = CompleteUpload(key, upload_query, etags, stats);
    if (!status.ok()) AbortUpload(key, upload_query);
    return status;
  }

  StatusOr<std::string> UploadPart(CurlHandle& handle, const std::string& key,
                                   const std::string& upload_query, size_t number,
                                   const ByteRange& part, RangeSource& source, TransferStats* stats,
                                   const std::atomic<bool>* cancel) {
    std::string what = Name(key) + ": UploadPart " + std::to_string(number);
    ASSIGN_OR_RETURN(std::unique_ptr<BodySource> body, source.Open(part));
    Exchange ex;
    ex.source = body.get();
    ex.upload_remaining = part.length;
    ex.stats = stats;
    ex.cancel = cancel;
    // Canonical order: partNumber before uploadId.
    std::string url = ObjectUrl(key) + "?partNumber=" + std::to_string(number) + "&" + upload_query;
    RETURN_IF_ERROR(Perform(handle, {Method::kPut, url, {}, {}}, ex).WithContext(what + " failed"));
    if (ex.status != 200) return ServiceFailure(what, ex);
    auto etag = ex.headers.find("etag");
    if (etag == ex.headers.end() || etag->second.empty()) {
      return Unavailable(what + ": the answer carries no ETag");
    }
    return etag->second;
  }

  Status CompleteUpload(const std::string& key, const std::string& upload_query,
                        const std::vector<std::string>& etags, TransferStats* stats) {
    std::string what = Name(key) + ": CompleteMultipartUpload";
    std::string xml = internal::CompleteMultipartUploadXml(etags);
    ASSIGN_OR_RETURN(HandlePool::Lease lease, pool_.Acquire());
    Exchange ex;
    ex.stats = stats;
    Request request{
        Method::kPost, ObjectUrl(key) + "?" + upload_query, {"Content-Type: application/xml"}, xml};
    RETURN_IF_ERROR(Perform(lease.handle(), request, ex).WithContext(what + " failed"));
    // S3 may answer 200 and still fail, with an <Error> body.
    if (ex.status != 200 || internal::ParseS3Error(ex.body)) return ServiceFailure(what, ex);
    return Status::Ok();
  }

  // AbortUpload is best effort: the upload already failed, and its parts expire with the
  // bucket's lifecycle rules if this request fails too.
  void AbortUpload(const std::string& key, const std::string& upload_query) {
    StatusOr<HandlePool::Lease> lease = pool_.Acquire();
    if (!lease.ok()) return;
    Exchange ex;
    (void)Perform(lease->handle(), {Method::kDelete, ObjectUrl(key) + "?" + upload_query, {}, {}},
                  ex);
  }

  Status GetRange(CurlHandle* handle, const std::string& key, const ByteRange& range,
                  bool whole_object, RangeSink& sink, TransferStats* stats,
                  const std::atomic<bool>* cancel) {
    std::string what = Name(key) + ": GET range " + RangeText(range);
    ASSIGN_OR_RETURN(std::unique_ptr<BodySink> body, sink.Open(range));
    if (range.length == 0) return body->Finish();
    Exchange ex;
    ex.sink = body.get();
    ex.sink_accepts_200 = whole_object;
    ex.sink_limit = range.length;
    ex.stats = stats;
    ex.cancel = cancel;
    Request request{
        Method::kGet,
        ObjectUrl(key),
        {"Range: bytes=" + std::to_string(range.offset) + "-" + std::to_string(range.end() - 1)},
        {}};
    request.receive_buffer = sink.receive_buffer_size();
    RETURN_IF_ERROR(Perform(*handle, request, ex).WithContext(what + " failed"));
    if (!ex.Streaming()) {
      if (ex.status == 200) {
        return IntegrityError(what + ": the service ignored the range and sent the whole object");
      }
      return ServiceFailure(what, ex);
    }
    if (ex.streamed != range.length) {
      return IntegrityError(what + ": received " + std::to_string(ex.streamed) + " of " +
                            std::to_string(range.length) + " bytes");
    }
    return body->Finish();
  }

  const std::string bucket_;
  const std::string endpoint_;  // no trailing '/'
  const bool custom_endpoint_;
  const std::string sigv4_;  // CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3"
  const std::string access_key_id_;
  const SecretBytes secret_;
  const SecretBytes session_token_;
  const std::string ca_file_;
  const int concurrency_;
  const long connect_timeout_ms_;
  const long low_speed_timeout_s_;
  HandlePool pool_;
};

bool IsValidRegion(std::string_view region) {
  if (region.empty() || region.size() > 64) return false;
  return std::all_of(region.begin(), region.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

}  // namespace

bool IsValidS3BucketName(std::string_view bucket) {
  if (bucket.size() < 3 || bucket.size() > 63) return false;
  return std::all_of(bucket.begin(), bucket.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
  });
}

std::string S3UriEncode(std::string_view text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    unsigned char c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
    if (unreserved) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0x0f]);
    }
  }
  return out;
}

StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(const std::string& bucket,
                                                   const S3Options& options) {
  if (!IsValidS3BucketName(bucket)) {
    return InvalidArgument("s3://" + bucket +
                           ": a bucket name is 3 to 63 characters of a-z, 0-9, '.' and '-'");
  }
  if (!IsValidRegion(options.region)) {
    return InvalidArgument("s3://" + bucket + ": region '" + options.region +
                           "' is not of [a-z0-9-]");
  }
  std::string endpoint = options.endpoint.empty()
                             ? "https://s3." + options.region + ".amazonaws.com"
                             : options.endpoint;
  while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
  bool http = endpoint.rfind("http://", 0) == 0 || endpoint.rfind("https://", 0) == 0;
  if (!http || endpoint.find_first_of("?#@ ") != std::string::npos) {
    // An endpoint with user info may carry a password: it is not repeated.
    std::string shown = endpoint.find('@') == std::string::npos ? endpoint : "(with user info)";
    return InvalidArgument("s3://" + bucket + ": endpoint " + shown +
                           " is not an http:// or https:// base URL without user info");
  }
  if (options.access_key_id.empty() || options.secret_access_key.empty()) {
    return InvalidArgument("s3://" + bucket + ": no access key id or secret access key");
  }
  if (options.access_key_id.find(':') != std::string::npos) {
    return InvalidArgument("s3://" + bucket + ": access key id contains ':'");
  }
  if (options.concurrency < 1) {
    return InvalidArgument("s3://" + bucket + ": concurrency must be at least 1");
  }
  if (options.session_token.find_first_of("\r\n") != std::string::npos) {
    return InvalidArgument("s3://" + bucket + ": session token contains a line break");
  }
  RETURN_IF_ERROR(GlobalInit());
  return std::unique_ptr<ObjectStore>(std::make_unique<S3Store>(bucket, endpoint, options));
}

}  // namespace custos::objects
