#include "protocol/custody/approval.h"

#include <time.h>

#include <nlohmann/json.hpp>

namespace custos::custody {
namespace {

using json = nlohmann::json;

constexpr std::string_view kTag = "custos-measurement/v1";

std::string FormatUtc(std::time_t t) {
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

StatusOr<std::time_t> ParseUtc(const std::string& s) {
  std::tm tm{};
  const char* end = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  if (end == nullptr || *end != '\0')
    return InvalidArgument("measurement approval: not_after must read YYYY-MM-DDTHH:MM:SSZ, got '" + s + "'");
  return timegm(&tm);
}

StatusOr<std::string> Text(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string())
    return InvalidArgument(std::string("measurement approval: ") + key + " must be a string");
  return j[key].get<std::string>();
}

}  // namespace

Bytes MeasurementApproval::SignatureMessage() const {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/measurement-approval"))
      .Var(joint_key.Encode())
      .Var(tee)
      .Var(measurement)
      .U64(static_cast<uint64_t>(not_after));
  return w.Take();
}

void MeasurementApproval::Sign(const std::string& keeper_id, const crypto::SigningKey& key) {
  signatures[keeper_id] = key.Sign(SignatureMessage());
}

std::string MeasurementApproval::ToJsonString() const {
  json j = {{"approval", kTag},
            {"joint_key", HexEncode(joint_key.Encode())},
            {"tee", tee},
            {"measurement", HexEncode(measurement)},
            {"not_after", FormatUtc(not_after)},
            {"signatures", json::object()}};
  for (const auto& [id, sig] : signatures) j["signatures"][id] = HexEncode(sig);
  return j.dump(2) + "\n";
}

StatusOr<MeasurementApproval> MeasurementApproval::Parse(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return InvalidArgument("measurement approval: not a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (key != "approval" && key != "joint_key" && key != "tee" && key != "measurement" &&
        key != "not_after" && key != "signatures")
      return InvalidArgument("measurement approval: unknown key '" + key + "'");
  }
  ASSIGN_OR_RETURN(std::string tag, Text(j, "approval"));
  if (tag != kTag)
    return InvalidArgument("measurement approval: approval must be \"" + std::string(kTag) + "\", got '" + tag + "'");
  MeasurementApproval a;
  ASSIGN_OR_RETURN(std::string y, Text(j, "joint_key"));
  ASSIGN_OR_RETURN(Bytes y_bytes, HexDecode(y));
  auto point = crypto::Point::Decode(y_bytes);
  if (!point.ok()) return InvalidArgument("measurement approval: joint_key: " + point.status().message());
  a.joint_key = *point;
  ASSIGN_OR_RETURN(a.tee, Text(j, "tee"));
  if (a.tee.empty() || a.tee.size() > 16) return InvalidArgument("measurement approval: tee must be 1..16 characters");
  ASSIGN_OR_RETURN(std::string m, Text(j, "measurement"));
  auto measurement = HexDecode(m);
  if (!measurement.ok() || (measurement->size() != 32 && measurement->size() != 48))
    return InvalidArgument("measurement approval: measurement must be 32 or 48 bytes in hex");
  a.measurement = std::move(*measurement);
  ASSIGN_OR_RETURN(std::string not_after, Text(j, "not_after"));
  ASSIGN_OR_RETURN(a.not_after, ParseUtc(not_after));
  if (!j.contains("signatures") || !j["signatures"].is_object())
    return InvalidArgument("measurement approval: signatures must be an object");
  for (const auto& [id, sig] : j["signatures"].items()) {
    if (!sig.is_string()) return InvalidArgument("measurement approval: signature of " + id + " must be hex");
    auto s = HexDecode(sig.get<std::string>());
    if (!s.ok()) return InvalidArgument("measurement approval: signature of " + id + " must be hex");
    a.signatures[id] = std::move(*s);
  }
  return a;
}

StatusOr<ApprovalQuorum> CountApproval(const MeasurementApproval& a, const CustodyDescriptor& c,
                                       std::time_t now) {
  if (!(a.joint_key == c.public_key))
    return FailedPrecondition("measurement approval: for another custody (joint key " +
                              HexEncode(a.joint_key.Encode()).substr(0, 16) + "…, this custody's is " +
                              HexEncode(c.public_key.Encode()).substr(0, 16) + "…)");
  if (now > a.not_after)
    return FailedPrecondition("measurement approval: expired at " + FormatUtc(a.not_after));
  Bytes msg = a.SignatureMessage();
  ApprovalQuorum q;
  q.provider_threshold = c.provider.threshold;
  q.customer_threshold = c.customer.threshold;
  for (const auto& [id, sig] : a.signatures) {
    const KeeperRecord* k = c.FindKeeper(id);
    if (k == nullptr) continue;
    if (!crypto::VerifyingKey::FromPoint(k->identity_key).Verify(msg, sig).ok())
      return IntegrityError("measurement approval: signature of keeper " + id + " does not verify");
    (k->domain == Domain::kProvider ? q.provider : q.customer)++;
  }
  return q;
}

StatusOr<ApprovalQuorum> CheckApproval(const MeasurementApproval& a, const CustodyDescriptor& c,
                                       std::time_t now) {
  ASSIGN_OR_RETURN(ApprovalQuorum q, CountApproval(a, c, now));
  if (q.provider < q.provider_threshold || q.customer < q.customer_threshold)
    return PermissionDenied("measurement approval: provider " + std::to_string(q.provider) + " of " +
                            std::to_string(q.provider_threshold) + " needed, customer " +
                            std::to_string(q.customer) + " of " + std::to_string(q.customer_threshold) +
                            " needed: both domains must approve");
  return q;
}

}  // namespace custos::custody
