#include "keeper/api/protocol.h"

#include <chrono>

#include "common/file.h"
#include "crypto/hash.h"
#include "crypto/random.h"
#include "net/json_fields.h"

namespace custos::keeper {

using nlohmann::json;

namespace {
Bytes SignedMessageBytes(ByteSpan session, const std::string& kind, const std::string& keeper,
                         ByteSpan payload) {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/signed")).Var(session).Var(kind).Var(keeper).Var(payload);
  return w.Take();
}
}  // namespace

SignedMessage SignedMessage::Sign(const crypto::SigningKey& key, ByteSpan session, std::string kind,
                                  std::string keeper, Bytes payload) {
  SignedMessage m{std::move(keeper), std::move(kind), std::move(payload), {}};
  m.sig = key.Sign(SignedMessageBytes(session, m.kind, m.keeper, m.payload));
  return m;
}

Status SignedMessage::Verify(const crypto::VerifyingKey& key, ByteSpan session) const {
  if (!key.Verify(SignedMessageBytes(session, kind, keeper, payload), sig).ok())
    return IntegrityError("signature of keeper " + keeper + " on its " + kind +
                          " message does not verify");
  return Status::Ok();
}

json SignedMessage::ToJson() const {
  return {{"keeper", keeper}, {"kind", kind}, {"payload", Base64Encode(payload)},
          {"sig", HexEncode(sig)}};
}

StatusOr<SignedMessage> SignedMessage::FromJson(const json& j) {
  SignedMessage m;
  ASSIGN_OR_RETURN(m.keeper, GetString(j, "keeper"));
  ASSIGN_OR_RETURN(m.kind, GetString(j, "kind"));
  ASSIGN_OR_RETURN(m.payload, GetBase64(j, "payload"));
  ASSIGN_OR_RETURN(m.sig, GetHex(j, "sig"));
  return m;
}

Bytes PartialRequest::Encode() const {
  ByteWriter w;
  w.U8(1).Var(custody_fp).Var(keeper_id).Raw(r.Encode()).Var(context);
  w.Raw(requester_key.EncodeUncompressed()).U64(timestamp).Raw(nonce).Raw(client_key.Encode());
  return w.Take();
}

StatusOr<PartialRequest> PartialRequest::Decode(ByteSpan b, PointEncodings* encodings) {
  ByteReader rd(b);
  PartialRequest p;
  ASSIGN_OR_RETURN(uint8_t suite, rd.U8("suite"));
  if (suite != 1) return InvalidArgument("unsupported suite in partial request");
  ASSIGN_OR_RETURN(ByteSpan fp, rd.Var("custody fingerprint", 32));
  p.custody_fp.assign(fp.begin(), fp.end());
  ASSIGN_OR_RETURN(ByteSpan id, rd.Var("keeper id", 64));
  p.keeper_id = ToString(id);
  ASSIGN_OR_RETURN(ByteSpan r, rd.Raw(crypto::kPointSize, "R"));
  ASSIGN_OR_RETURN(p.r, crypto::Point::Decode(r));
  ASSIGN_OR_RETURN(ByteSpan ctx, rd.Var("context", 1024));
  p.context.assign(ctx.begin(), ctx.end());
  ASSIGN_OR_RETURN(ByteSpan rk, rd.Raw(65, "requester key"));
  ASSIGN_OR_RETURN(p.requester_key, crypto::Point::Decode(rk));
  ASSIGN_OR_RETURN(p.timestamp, rd.U64("timestamp"));
  ASSIGN_OR_RETURN(ByteSpan nonce, rd.Raw(16, "nonce"));
  p.nonce.assign(nonce.begin(), nonce.end());
  ASSIGN_OR_RETURN(ByteSpan ck, rd.Raw(crypto::kPointSize, "client key"));
  ASSIGN_OR_RETURN(p.client_key, crypto::Point::Decode(ck));
  RETURN_IF_ERROR(rd.ExpectEnd("partial request"));
  if (encodings != nullptr) *encodings = {r, rk, ck};
  return p;
}

Bytes PartialRequest::SignedBytes(ByteSpan encoded) {
  return Concat({AsBytes("custos/v1/partial-request"), encoded});
}

Bytes PartialResponseInfo(ByteSpan encoded_request) {
  return Concat({AsBytes("custos/v1/partial-response"), crypto::Sha256Bytes(encoded_request)});
}

ClientAuthorization ClientAuthorization::Create(const crypto::SigningKey& key, std::string action,
                                                Bytes subject) {
  ClientAuthorization a;
  a.action = std::move(action);
  a.subject = std::move(subject);
  a.timestamp = UnixNow();
  a.nonce = crypto::RandomBytes(16);
  a.client_key = key.verifying_key().point();
  a.sig = key.Sign(a.Message());
  return a;
}

Bytes ClientAuthorization::Message() const {
  ByteWriter w;
  w.Raw(AsBytes("custos/v1/authorize")).Var(action).Var(subject).U64(timestamp).Var(nonce);
  return w.Take();
}

json ClientAuthorization::ToJson() const {
  return {{"action", action}, {"subject", HexEncode(subject)}, {"timestamp", timestamp},
          {"nonce", HexEncode(nonce)}, {"client_key", HexEncode(client_key.Encode())},
          {"sig", HexEncode(sig)}};
}

StatusOr<ClientAuthorization> ClientAuthorization::FromJson(const json& j) {
  ClientAuthorization a;
  ASSIGN_OR_RETURN(a.action, GetString(j, "action"));
  ASSIGN_OR_RETURN(a.subject, GetHex(j, "subject"));
  ASSIGN_OR_RETURN(a.timestamp, GetUint(j, "timestamp"));
  ASSIGN_OR_RETURN(a.nonce, GetHex(j, "nonce"));
  ASSIGN_OR_RETURN(a.client_key, GetPoint(j, "client_key"));
  ASSIGN_OR_RETURN(a.sig, GetHex(j, "sig"));
  return a;
}

Status WriteClientKey(const std::string& path, const crypto::SigningKey& key) {
  if (FileExists(path)) return AlreadyExists("refusing to overwrite " + path);
  SecretBytes d = key.ToScalarBytes();
  std::string hex = HexEncode(d.Expose());
  std::string text = "{\n  \"type\": \"custos-client-key\",\n  \"suite\": 1,\n  \"private_key\": \"" +
                     hex + "\"\n}\n";
  Status st = WriteFileAtomic(path, text, 0600);
  WipeBytes(hex);
  WipeBytes(text);
  RETURN_IF_ERROR(st);
  json pub = {{"type", "custos-client-public-key"},
              {"suite", 1},
              {"public_key", HexEncode(key.verifying_key().Encode())}};
  return WriteFileAtomic(path + ".pub", pub.dump(2) + "\n", 0644);
}

StatusOr<crypto::SigningKey> ReadClientKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  json j = json::parse(text, nullptr, false);
  WipeBytes(text);
  if (j.is_discarded() || j.value("type", "") != "custos-client-key")
    return InvalidArgument(path + " is not a custos client key");
  std::string hex = j.value("private_key", "");
  auto d = HexDecode(hex);
  WipeBytes(hex);
  j.clear();
  if (!d.ok() || d->size() != 32) return InvalidArgument(path + " holds a malformed private key");
  SecretBytes s = SecretBytes::CopyFrom(*d);
  WipeBytes(*d);
  return crypto::SigningKey::FromScalarBytes(s);
}

StatusOr<crypto::Point> ReadClientPublicKey(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || j.value("type", "") != "custos-client-public-key")
    return InvalidArgument(path + " is not a custos client public key");
  return GetPoint(j, "public_key");
}

StatusOr<json> ParseJsonObject(std::string_view text) {
  RETURN_IF_ERROR(net::CheckJsonDepth(text));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("request body is not a JSON object");
  return j;
}

StatusOr<uint64_t> GetUint(const json& j, const char* field) {
  if (!j.is_object() || !j.contains(field) || !j[field].is_number_unsigned())
    return InvalidArgument(std::string("missing or non-integer field '") + field + "'");
  return j[field].get<uint64_t>();
}

StatusOr<crypto::Point> GetPoint(const json& j, const char* field) {
  ASSIGN_OR_RETURN(Bytes b, GetHex(j, field));
  auto p = crypto::Point::Decode(b);
  if (!p.ok()) return InvalidArgument(std::string("field '") + field + "' is not a P-256 point");
  return p;
}

uint64_t UnixNow() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

}  // namespace custos::keeper
