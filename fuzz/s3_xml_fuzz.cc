// Fuzzes the S3 XML parsers (src/client/objects/internal/s3_xml.h), which read whatever an S3 endpoint
// (or anything pretending to be one) sends back: error bodies, InitiateMultipartUploadResult and
// ListBucketResult pages. Every input goes to each parser.
//
// Properties checked: no crash; an S3Error has a non-empty code and both fields are bounded,
// printable ASCII (they end up in error messages); an accepted upload id is non-empty; an
// accepted list page has non-empty keys and, when truncated, a continuation token; and the
// CompleteMultipartUpload writer, given the input's printable lines as ETags, produces XML that
// parses back to exactly those ETags.
#include <tinyxml2.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "client/objects/internal/s3_xml.h"

namespace {

bool PrintableAscii(const std::string& s) {
  for (char c : s) {
    if (c < 0x20 || c >= 0x7f) return false;
  }
  return true;
}

void CheckCompleteWriterRoundTrips(std::string_view input) {
  std::vector<std::string> etags;
  size_t start = 0;
  while (start <= input.size() && etags.size() < 64) {
    size_t newline = std::min(input.find('\n', start), input.size());
    std::string line(input.substr(start, newline - start));
    // XML text loses leading/trailing white space only if asked to; keep lines without it
    // and made of printable ASCII, which an ETag always is.
    if (PrintableAscii(line) && !line.empty() && line.front() != ' ' && line.back() != ' ') {
      etags.push_back(line);
    }
    start = newline + 1;
  }
  std::string xml = custos::objects::internal::CompleteMultipartUploadXml(etags);
  tinyxml2::XMLDocument doc;
  if (doc.Parse(xml.data(), xml.size()) != tinyxml2::XML_SUCCESS) std::abort();
  const tinyxml2::XMLElement* part = doc.RootElement()->FirstChildElement("Part");
  for (size_t i = 0; i < etags.size(); ++i, part = part->NextSiblingElement("Part")) {
    if (part == nullptr) std::abort();
    const char* number = part->FirstChildElement("PartNumber")->GetText();
    const char* etag = part->FirstChildElement("ETag")->GetText();
    if (number == nullptr || std::to_string(i + 1) != number) std::abort();
    if (etag == nullptr || etags[i] != etag) std::abort();
  }
  if (part != nullptr) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace custos::objects::internal;
  std::string_view input(reinterpret_cast<const char*>(data), size);

  if (auto error = ParseS3Error(input)) {
    if (error->code.empty() || error->code.size() > 128 || error->message.size() > 512) {
      std::abort();
    }
    if (!PrintableAscii(error->code) || !PrintableAscii(error->message)) std::abort();
  }

  auto upload_id = ParseInitiateMultipartUpload(input);
  if (upload_id.ok() && upload_id->empty()) std::abort();

  auto page = ParseListObjectsV2(input);
  if (page.ok()) {
    if (page->truncated && page->next_token.empty()) std::abort();
    for (const auto& object : page->objects) {
      if (object.key.empty()) std::abort();
    }
  }

  CheckCompleteWriterRoundTrips(input);
  return 0;
}
