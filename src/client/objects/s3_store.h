// The S3 backend of ObjectStore (objects/object_store.h): path-style requests to an
// S3-compatible service over libcurl, signed by libcurl's built-in AWS SigV4 with an unsigned
// payload (x-amz-content-sha256: UNSIGNED-PAYLOAD, so bodies stream without being hashed first;
// TLS protects them in transit). Operations used: PutObject, CreateMultipartUpload, UploadPart,
// CompleteMultipartUpload, AbortMultipartUpload, GetObject with Range, HeadObject,
// ListObjectsV2 and DeleteObject. docs/objects.md describes how `custos put|get` use them.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "client/objects/object_store.h"

namespace custos::objects {

// OpenS3Store returns a store for `bucket` as `options` describe; it sends no request (a missing
// bucket shows as kNotFound on first use). kInvalidArgument for a bad bucket name, an endpoint
// that is not http:// or https://, a bad region, missing credentials or concurrency < 1.
//
// The store keeps one libcurl easy handle per worker thread and reuses handles (and so their
// connections) across requests and calls. TLS peers are verified against options.ca_file, or
// the system store when it is empty. The secret key and session token never appear in a
// message.
StatusOr<std::unique_ptr<ObjectStore>> OpenS3Store(const std::string& bucket,
                                                   const S3Options& options);

// IsValidS3BucketName: 3..63 characters of [a-z0-9.-] (what ParseLocation accepts).
bool IsValidS3BucketName(std::string_view bucket);

// S3UriEncode percent-encodes every byte of `text` except A-Za-z0-9-._~ and, when
// `keep_slash`, '/' (keys in paths keep their slashes; query values do not), with upper-case
// hex as SigV4's canonical form requires.
std::string S3UriEncode(std::string_view text, bool keep_slash);

}  // namespace custos::objects
