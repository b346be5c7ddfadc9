// Location: the s3://bucket/key and file://dir/key arguments of `custos put|get|ls|rm`, and
// OpenStore, which picks the backend for one.
#include <sys/stat.h>

#include <string_view>

#include "client/objects/dir_store.h"
#include "client/objects/object_store.h"
#include "client/objects/s3_store.h"

namespace custos::objects {
namespace {

constexpr std::string_view kS3Scheme = "s3://";
constexpr std::string_view kFileScheme = "file://";
constexpr size_t kMaxS3KeyBytes = 1024;  // S3's own limit on a key's UTF-8 length

bool IsDirectory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

StatusOr<Location> ParseS3(std::string_view rest) {
  size_t slash = rest.find('/');
  std::string bucket(rest.substr(0, slash));
  if (!IsValidS3BucketName(bucket)) {
    return InvalidArgument("s3://" + bucket +
                           ": a bucket name is 3 to 63 characters of a-z, 0-9, '.' and '-'");
  }
  Location loc;
  loc.scheme = Location::Scheme::kS3;
  loc.bucket = std::move(bucket);
  if (slash != std::string_view::npos) loc.key = std::string(rest.substr(slash + 1));
  if (loc.key.size() > kMaxS3KeyBytes) {
    return InvalidArgument("s3://" + loc.bucket + ": key longer than 1024 bytes");
  }
  return loc;
}

StatusOr<Location> ParseFile(std::string_view rest) {
  if (rest.empty()) return InvalidArgument("file://: no path after the scheme");
  std::string path(rest);
  Location loc;
  loc.scheme = Location::Scheme::kFile;
  if (path.back() == '/' || IsDirectory(path)) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    loc.bucket = std::move(path);
    return loc;
  }
  size_t slash = path.rfind('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base == "." || base == "..") {
    return InvalidArgument("file://" + path + ": '" + base + "' does not name a file");
  }
  if (slash == std::string::npos) {
    loc.bucket = ".";
  } else if (slash == 0) {
    loc.bucket = "/";
  } else {
    loc.bucket = path.substr(0, slash);
  }
  loc.key = std::move(base);
  return loc;
}

}  // namespace

std::string Location::ToString() const {
  if (scheme == Scheme::kS3) {
    return std::string(kS3Scheme) + bucket + (key.empty() ? "" : "/" + key);
  }
  std::string out = std::string(kFileScheme) + bucket;
  if (out.back() != '/') out += '/';
  return out + key;
}

StatusOr<Location> ParseLocation(const std::string& text) {
  if (text.find('\0') != std::string::npos) return InvalidArgument("location contains NUL");
  std::string_view view(text);
  if (view.rfind(kS3Scheme, 0) == 0) return ParseS3(view.substr(kS3Scheme.size()));
  if (view.rfind(kFileScheme, 0) == 0) return ParseFile(view.substr(kFileScheme.size()));
  return InvalidArgument("'" + text + "' is not s3://bucket[/key] or file://path");
}

StatusOr<std::unique_ptr<ObjectStore>> OpenStore(const Location& loc, const S3Options& s3) {
  switch (loc.scheme) {
    case Location::Scheme::kS3:
      return OpenS3Store(loc.bucket, s3);
    case Location::Scheme::kFile:
      return OpenDirectoryStore(loc.bucket);
  }
  return InvalidArgument("unknown location scheme");
}

}  // namespace custos::objects
