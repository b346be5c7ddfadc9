#include "client/objects/internal/s3_xml.h"

#include <tinyxml2.h>

#include <cctype>
#include <charconv>

namespace custos::objects::internal {
namespace {

constexpr size_t kMaxCodeLength = 128;
constexpr size_t kMaxMessageLength = 512;

// Printable keeps what a service said fit for an error message: printable ASCII only, bounded.
std::string Printable(const char* text, size_t limit) {
  std::string out;
  if (text == nullptr) return out;
  for (const char* p = text; *p != '\0' && out.size() < limit; ++p) {
    unsigned char c = static_cast<unsigned char>(*p);
    out.push_back(c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '?');
  }
  return out;
}

// Parse parses `body` into `doc`; tinyxml2 expands only the five predefined entities and never
// reads a DTD, and it bounds element depth, so hostile documents cost linear time.
bool Parse(tinyxml2::XMLDocument& doc, std::string_view body) {
  if (body.empty()) return false;
  return doc.Parse(body.data(), body.size()) == tinyxml2::XML_SUCCESS && doc.RootElement();
}

// ChildText returns the text of the first child element `name`, or nullopt when there is none.
// An element that exists but is empty has text "".
std::optional<std::string> ChildText(const tinyxml2::XMLElement* parent, const char* name) {
  const tinyxml2::XMLElement* child = parent->FirstChildElement(name);
  if (child == nullptr) return std::nullopt;
  const char* text = child->GetText();
  return std::string(text == nullptr ? "" : text);
}

std::optional<uint64_t> ParseDecimal(const std::string& text) {
  if (text.empty() || text.size() > 20) return std::nullopt;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

void AppendEscaped(std::string& out, std::string_view text) {
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      default:
        out.push_back(c);
    }
  }
}

}  // namespace

std::optional<S3Error> ParseS3Error(std::string_view body) {
  tinyxml2::XMLDocument doc;
  if (!Parse(doc, body)) return std::nullopt;
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (std::string_view(root->Name()) != "Error") return std::nullopt;
  S3Error error;
  if (const auto* code = root->FirstChildElement("Code")) {
    error.code = Printable(code->GetText(), kMaxCodeLength);
  }
  if (const auto* message = root->FirstChildElement("Message")) {
    error.message = Printable(message->GetText(), kMaxMessageLength);
  }
  if (error.code.empty()) return std::nullopt;
  return error;
}

StatusOr<std::string> ParseInitiateMultipartUpload(std::string_view body) {
  tinyxml2::XMLDocument doc;
  if (!Parse(doc, body)) return InvalidArgument("InitiateMultipartUploadResult: not XML");
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (std::string_view(root->Name()) != "InitiateMultipartUploadResult") {
    return InvalidArgument("InitiateMultipartUploadResult: unexpected root element");
  }
  std::optional<std::string> id = ChildText(root, "UploadId");
  if (!id || id->empty()) return InvalidArgument("InitiateMultipartUploadResult: no UploadId");
  return *id;
}

StatusOr<ListObjectsPage> ParseListObjectsV2(std::string_view body) {
  tinyxml2::XMLDocument doc;
  if (!Parse(doc, body)) return InvalidArgument("ListBucketResult: not XML");
  const tinyxml2::XMLElement* root = doc.RootElement();
  if (std::string_view(root->Name()) != "ListBucketResult") {
    return InvalidArgument("ListBucketResult: unexpected root element");
  }
  ListObjectsPage page;
  for (const auto* entry = root->FirstChildElement("Contents"); entry != nullptr;
       entry = entry->NextSiblingElement("Contents")) {
    std::optional<std::string> key = ChildText(entry, "Key");
    if (!key || key->empty()) return InvalidArgument("ListBucketResult: an entry has no Key");
    std::optional<std::string> size_text = ChildText(entry, "Size");
    std::optional<uint64_t> size = size_text ? ParseDecimal(*size_text) : std::nullopt;
    if (!size) return InvalidArgument("ListBucketResult: an entry has no valid Size");
    ObjectInfo info;
    info.key = std::move(*key);
    info.size = *size;
    info.last_modified = NormalizeIso8601(ChildText(entry, "LastModified").value_or(""));
    page.objects.push_back(std::move(info));
  }
  std::optional<std::string> truncated = ChildText(root, "IsTruncated");
  if (truncated && *truncated != "true" && *truncated != "false") {
    return InvalidArgument("ListBucketResult: IsTruncated is neither true nor false");
  }
  page.truncated = truncated && *truncated == "true";
  if (page.truncated) {
    page.next_token = ChildText(root, "NextContinuationToken").value_or("");
    if (page.next_token.empty()) {
      return InvalidArgument("ListBucketResult: truncated without NextContinuationToken");
    }
  }
  return page;
}

std::string CompleteMultipartUploadXml(const std::vector<std::string>& etags) {
  std::string xml = "<CompleteMultipartUpload>";
  for (size_t i = 0; i < etags.size(); ++i) {
    xml += "<Part><PartNumber>" + std::to_string(i + 1) + "</PartNumber><ETag>";
    AppendEscaped(xml, etags[i]);
    xml += "</ETag></Part>";
  }
  xml += "</CompleteMultipartUpload>";
  return xml;
}

std::string NormalizeIso8601(std::string_view timestamp) {
  // YYYY-MM-DDTHH:MM:SS is 19 characters; then an optional fraction, then 'Z'.
  constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd";
  if (timestamp.size() < kShape.size() + 1 || timestamp.back() != 'Z') {
    return std::string(timestamp);
  }
  for (size_t i = 0; i < kShape.size(); ++i) {
    bool digit = std::isdigit(static_cast<unsigned char>(timestamp[i])) != 0;
    if (kShape[i] == 'd' ? !digit : timestamp[i] != kShape[i]) return std::string(timestamp);
  }
  std::string_view rest = timestamp.substr(kShape.size(), timestamp.size() - kShape.size() - 1);
  if (!rest.empty()) {
    if (rest.front() != '.' || rest.size() < 2) return std::string(timestamp);
    for (char c : rest.substr(1)) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return std::string(timestamp);
    }
  }
  return std::string(timestamp.substr(0, kShape.size())) + "Z";
}

}  // namespace custos::objects::internal
