// The XML an S3-compatible service sends back (error bodies, InitiateMultipartUploadResult,
// ListBucketResult) and the one document custos sends (CompleteMultipartUpload). The parsers are
// pure functions over untrusted bytes so that they can be tested with hostile input and fuzzed
// (fuzz/s3_xml_fuzz.cc); the S3 store (objects/s3_store.cc) is their only caller.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "client/objects/object_store.h"

namespace custos::objects::internal {

// S3Error is the <Error><Code>..</Code><Message>..</Message></Error> body of a failed request.
// Both fields are cut to a bounded length and stripped of anything but printable ASCII, because
// they end up in error messages.
struct S3Error {
  std::string code;
  std::string message;
};

// ParseS3Error returns the error a body describes, or nullopt when `body` is not a well-formed
// <Error> document (e.g. empty, HTML from a proxy, or a successful result).
std::optional<S3Error> ParseS3Error(std::string_view body);

// ParseInitiateMultipartUpload returns the UploadId of an InitiateMultipartUploadResult;
// kInvalidArgument when the document is malformed or the id is missing or empty.
StatusOr<std::string> ParseInitiateMultipartUpload(std::string_view body);

// ListObjectsPage is one page of a ListObjectsV2 answer.
struct ListObjectsPage {
  std::vector<ObjectInfo> objects;  // in the order the service sent them
  bool truncated = false;           // IsTruncated: more pages follow
  std::string next_token;           // NextContinuationToken; non-empty whenever truncated
};

// ParseListObjectsV2 reads a ListBucketResult. Every <Contents> must carry a non-empty Key and
// a decimal Size; LastModified is normalised to "YYYY-MM-DDTHH:MM:SSZ" (kept as sent if it does
// not look like ISO 8601). A truncated page without a continuation token is kInvalidArgument,
// since following it would never end.
StatusOr<ListObjectsPage> ParseListObjectsV2(std::string_view body);

// CompleteMultipartUploadXml builds the body of CompleteMultipartUpload for parts numbered
// 1..etags.size(), in order, with the ETags exactly as UploadPart returned them (XML-escaped).
std::string CompleteMultipartUploadXml(const std::vector<std::string>& etags);

// NormalizeIso8601 turns "2026-11-22T12:50:50.123Z" into "2026-11-22T12:50:50Z"; anything not
// of the form YYYY-MM-DDTHH:MM:SS[.fraction]Z is returned unchanged.
std::string NormalizeIso8601(std::string_view timestamp);

}  // namespace custos::objects::internal
