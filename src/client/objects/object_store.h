// ObjectStore: where `custos put|get|ls|rm` keep objects (docs/objects.md). Two backends: an
// S3-compatible service reached with libcurl and its built-in SigV4 (objects/s3_store.h), and a
// local directory (objects/dir_store.h).
//
// The store moves opaque bytes; it never sees a key or a plaintext in encrypted modes. The caller
// (objects/transfer.h) decides how an object is cut into parts and ranges, so that part and range
// boundaries fall on STREAM chunk boundaries; the store decides how to move them (one PUT or a
// multipart upload, how many transfers run at once).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/bytes.h"
#include "common/status.h"

namespace custos::objects {

// ByteRange is [offset, offset + length) of an object.
struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
  bool operator==(const ByteRange&) const = default;
};

// BodySource produces the bytes of one range, in order. The store calls Read until it has
// received exactly the range's length; Read returns how many bytes it wrote to `out` (> 0 while
// bytes remain) or an error, which aborts the transfer. A source is used by one thread.
class BodySource {
 public:
  virtual ~BodySource() = default;
  virtual StatusOr<size_t> Read(std::span<uint8_t> out) = 0;
};

// RangeSource opens a BodySource for any one of the ranges the caller listed. Open may be called
// from several threads at once (one per part in flight), each for a different range.
class RangeSource {
 public:
  virtual ~RangeSource() = default;
  virtual StatusOr<std::unique_ptr<BodySource>> Open(const ByteRange& range) = 0;
};

// BodySink consumes the bytes of one range, in order: Write is called with consecutive pieces
// whose total is the range's length, then Finish once. An error from either aborts the transfer.
class BodySink {
 public:
  virtual ~BodySink() = default;
  virtual Status Write(std::span<const uint8_t> bytes) = 0;
  virtual Status Finish() = 0;
};

// RangeSink opens a BodySink for one of the ranges the caller asked for; thread-safe like
// RangeSource.
class RangeSink {
 public:
  virtual ~RangeSink() = default;
  virtual StatusOr<std::unique_ptr<BodySink>> Open(const ByteRange& range) = 0;
  // receive_buffer_size is how many bytes the sink would like per Write at most, as a hint for the
  // backend's receive buffer (S3: libcurl's); 0 = the backend's default.
  virtual size_t receive_buffer_size() const { return 0; }
};

// ObjectInfo describes one stored object.
struct ObjectInfo {
  std::string key;            // the object's key (S3) or path relative to the directory
  uint64_t size = 0;          // stored bytes (ciphertext size for encrypted objects)
  std::string last_modified;  // ISO 8601 UTC, e.g. "2026-11-22T12:50:50Z"
};

// ObjectPrefix is an object's first bytes together with its size (ObjectStore::GetPrefix).
struct ObjectPrefix {
  ObjectInfo info;  // key and size; last_modified when the backend reported it
  Bytes bytes;      // the first min(info.size, max_bytes) bytes
};

// TransferStats counts what moved; the progress bar reads it while a transfer runs.
struct TransferStats {
  std::atomic<uint64_t> bytes{0};     // object bytes sent or received so far
  std::atomic<uint64_t> requests{0};  // HTTP requests (or file operations) issued
};

// ObjectStore is one bucket (S3) or one directory. Every method may be called from one thread at
// a time per store object; each method may use several threads internally. Errors name the store
// and the key and what failed (the S3 error code and message, or the errno), never object data:
//   kNotFound          no such object (S3 NoSuchKey / 404, ENOENT), or no such bucket/directory
//   kPermissionDenied  S3 AccessDenied / 403 (including SignatureDoesNotMatch), EACCES
//   kInvalidArgument   a key the backend cannot hold, a range beyond the object
//   kUnavailable       connection or I/O failure, 5xx
//   kIntegrity         the store returned fewer or more bytes than asked for
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Put stores an object of sum(parts) bytes under `key`, replacing any previous object only
  // once the whole new object is stored (S3: single PUT or CompleteMultipartUpload; directory:
  // temporary file, fsync, rename). `parts` are consecutive, start at 0 and each is non-empty,
  // except that an empty object is one part of length 0. With one part the store issues one PUT;
  // with several it runs a multipart upload (S3 needs every part but the last to be >= 5 MiB;
  // the caller guarantees that) with up to `concurrency()` parts in flight, each streamed from
  // source.Open(part). On any failure the multipart upload is aborted / the temporary file
  // removed, so no partial object is ever visible under `key`.
  virtual Status Put(const std::string& key, const std::vector<ByteRange>& parts, RangeSource& source,
                     TransferStats* stats = nullptr) = 0;

  // Head returns the object's size (kNotFound if absent).
  virtual StatusOr<ObjectInfo> Head(const std::string& key) = 0;

  // Get fetches each of `ranges` (ranged GETs, up to `concurrency()` at once, each streamed into
  // sink.Open(range)). A range must lie inside the object (kInvalidArgument otherwise, checked
  // against the size the server reports); a server answer with a different length is kIntegrity.
  // `object_size`, when the caller already knows it from Head, spares the store its own HEAD (S3:
  // one request fewer per call); the directory store then refuses a file of another size
  // (kFailedPrecondition: it was replaced meanwhile).
  virtual Status Get(const std::string& key, const std::vector<ByteRange>& ranges, RangeSink& sink,
                     TransferStats* stats = nullptr, std::optional<uint64_t> object_size = std::nullopt) = 0;

  // GetPrefix returns the first min(size, max_bytes) bytes of `key` and the object's size, with
  // Head's and Get's errors. The default is Head then Get; the S3 backend sends one ranged GET
  // and reads the size from its Content-Range (falling back to HEAD then GET when the answer has
  // none it can use), so that reading an encrypted object's header costs no round trip more than
  // a plain download's HEAD.
  virtual StatusOr<ObjectPrefix> GetPrefix(const std::string& key, uint64_t max_bytes);

  // List returns every object whose key starts with `prefix`, sorted by key (S3: ListObjectsV2,
  // following continuation tokens; directory: recursive walk, skipping temporary files).
  virtual StatusOr<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;

  // Delete removes `key`; kNotFound if it did not exist (the directory backend; S3 answers 204
  // either way, so the S3 backend first checks with HEAD).
  virtual Status Delete(const std::string& key) = 0;

  // concurrency is how many parts/ranges Put/Get move at once.
  virtual int concurrency() const = 0;
  // description names the store for messages: "s3://bucket" at endpoint, or "file:///dir".
  virtual std::string description() const = 0;
};

// S3Options configures the S3 backend.
struct S3Options {
  // endpoint: base URL of an S3-compatible service ("http://127.0.0.1:4568"); path-style
  // addressing (endpoint/bucket/key). Empty means AWS itself: https://s3.<region>.amazonaws.com,
  // path-style as well.
  std::string endpoint;
  std::string region = "us-east-1";
  std::string access_key_id;
  std::string secret_access_key;  // never logged or put in an error
  std::string session_token;      // optional (X-Amz-Security-Token)
  std::string ca_file;            // PEM trust anchors for https; empty = system store
  int concurrency = 4;            // parts / ranges in flight
  long connect_timeout_ms = 10'000;
  // low_speed_timeout_s: a transfer slower than 1 KiB/s for this long fails (kUnavailable).
  long low_speed_timeout_s = 60;
};

// Location is a parsed remote argument: s3://bucket/key or file:///abs/dir/key.
struct Location {
  enum class Scheme { kS3, kFile };
  Scheme scheme = Scheme::kS3;
  std::string bucket;  // S3 bucket; for file:// the directory that plays the bucket's role
  std::string key;     // object key ("" for a bucket/directory itself, e.g. `ls s3://b`)
  std::string ToString() const;
};

// ParseLocation accepts "s3://bucket[/key]" (bucket: 3..63 chars of [a-z0-9.-]) and
// "file://DIR[/KEY]" handled as follows: the path after file:// (absolute or relative) names a
// file; its parent directory is the store and its base name the key, except that a path ending
// in '/' or naming an existing directory is the store itself with key "". Anything else is
// kInvalidArgument with the reason.
StatusOr<Location> ParseLocation(const std::string& text);

// OpenStore returns the backend for `loc` (S3 options are ignored for file://).
StatusOr<std::unique_ptr<ObjectStore>> OpenStore(const Location& loc, const S3Options& s3);

}  // namespace custos::objects
