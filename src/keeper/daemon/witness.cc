#include "keeper/daemon/witness.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <ctime>
#include <mutex>
#include <optional>

#include "common/file.h"
#include "net/http_client.h"
#include "net/json_fields.h"
#include "protocol/custody/custody.h"

namespace custos::keeper {

namespace {

using json = nlohmann::json;

// StateLock serialises the witnesses of one keeper directory across processes (`keeper serve`'s
// auto-release and a `custos keeper witness` beside it): read, check, write under one flock.
class StateLock {
 public:
  static StatusOr<StateLock> Take(const std::string& dir) {
    std::string path = dir + "/witness.lock";
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return Unavailable("witness: cannot open " + path);
    if (::flock(fd, LOCK_EX) != 0) {
      ::close(fd);
      return Unavailable("witness: cannot lock " + path);
    }
    return StateLock(fd);
  }
  StateLock(StateLock&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  StateLock& operator=(StateLock&&) = delete;
  ~StateLock() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }

 private:
  explicit StateLock(int fd) : fd_(fd) {}
  int fd_;
};

Status SaveState(const std::string& dir, const audit::WitnessState& state) {
  return WriteFileAtomic(dir + "/" + kWitnessFile, state.ToJson().dump(2) + "\n", 0600);
}

// Reader makes the keeper's signed reads of the appliance's audit routes.
StatusOr<std::vector<audit::RecordShown>> ParseRecords(const json& j);
StatusOr<std::vector<audit::RecordShown>> ParseRecordsBinary(std::string_view body);

class Reader {
 public:
  Reader(net::HttpClient client, std::string keeper_id, crypto::SigningKey identity, std::string peer)
      : client_(std::move(client)), keeper_id_(std::move(keeper_id)), identity_(std::move(identity)),
        peer_(std::move(peer)) {}

  StatusOr<json> Get(const std::string& path) {
    return net::DecodeJsonResponse(SignedGet(path), peer_);
  }

  // GetRecords reads one page of audit records, asking for the binary form; an appliance that
  // answers in JSON (one from before that form) is read as JSON.
  StatusOr<std::vector<audit::RecordShown>> GetRecords(const std::string& path_without_format) {
    StatusOr<net::HttpResponse> response = SignedGet(path_without_format + "&format=binary");
    if (response.ok() && response->status == 200 && response->content_type == "application/octet-stream")
      return ParseRecordsBinary(response->body);
    ASSIGN_OR_RETURN(json j, net::DecodeJsonResponse(response, peer_));
    return ParseRecords(j);
  }

 private:
  // SignedGet sends a GET signed as a keeper's audit read (docs/protocol.md "Audit witness").
  StatusOr<net::HttpResponse> SignedGet(const std::string& path) {
    const int64_t now = static_cast<int64_t>(std::time(nullptr));
    // The appliance checks the signature over the target it receives: base path included.
    const std::string target = client_.url().path_prefix + path;
    Bytes signature = identity_.Sign(audit::ReadRequestMessage(keeper_id_, target, now));
    net::HttpHeaders headers = {{audit::kReadKeeperHeader, keeper_id_},
                                {audit::kReadTimeHeader, std::to_string(now)},
                                {audit::kReadSignatureHeader, HexEncode(signature)}};
    return client_.Get(path, headers);
  }

  net::HttpClient client_;
  std::string keeper_id_;
  crypto::SigningKey identity_;
  std::string peer_;
};

StatusOr<Bytes> HexField(const json& j, const char* key) {
  if (!j.contains(key) || !j[key].is_string()) return IntegrityError(std::string("appliance answer: no ") + key);
  StatusOr<Bytes> b = HexDecode(j[key].get<std::string>());
  if (!b.ok()) return IntegrityError(std::string("appliance answer: ") + key + " is not hex");
  return b;
}

StatusOr<audit::HeadShown> ParseHead(const json& j) {
  audit::HeadShown h;
  if (!j.is_object() || !j.value("log", json()).is_string() || !j.value("seq", json()).is_number_unsigned())
    return IntegrityError("appliance answer: malformed audit head");
  h.log = j["log"].get<std::string>();
  h.seq = j["seq"].get<uint64_t>();
  if (j.contains("audit_public_key") && j["audit_public_key"].is_string())
    h.audit_public_key = j["audit_public_key"].get<std::string>();
  if (h.seq != 0) {
    ASSIGN_OR_RETURN(h.hash, HexField(j, "hash"));
    ASSIGN_OR_RETURN(h.signature, HexField(j, "signature"));
    // The core's line statement for this head, when the appliance gives one.
    if (j.contains("line")) {
      if (!j["line"].is_object()) return IntegrityError("appliance answer: malformed audit line");
      ASSIGN_OR_RETURN(h.line_run, HexField(j["line"], "run"));
      ASSIGN_OR_RETURN(h.line_signature, HexField(j["line"], "signature"));
    }
  }
  return h;
}

StatusOr<std::vector<audit::RecordShown>> ParseRecords(const json& j) {
  if (!j.is_object() || !j.contains("records") || !j["records"].is_array())
    return IntegrityError("appliance answer: malformed audit records");
  std::vector<audit::RecordShown> out;
  for (const json& r : j["records"]) {
    if (!r.is_object() || !r.value("seq", json()).is_number_unsigned() || !r.value("entry", json()).is_string())
      return IntegrityError("appliance answer: malformed audit record");
    audit::RecordShown rec;
    rec.seq = r["seq"].get<uint64_t>();
    rec.entry = r["entry"].get<std::string>();
    ASSIGN_OR_RETURN(rec.hash, HexField(r, "hash"));
    out.push_back(std::move(rec));
  }
  return out;
}

// ParseRecordsBinary reads the ?format=binary page: u32 count, then per record u64 seq ||
// hash (32) || var(signature) || var(entry) (docs/protocol.md "Audit witness").
StatusOr<std::vector<audit::RecordShown>> ParseRecordsBinary(std::string_view body) {
  auto malformed = [] { return IntegrityError("appliance answer: malformed audit records (binary)"); };
  ByteReader r(AsBytes(body));
  StatusOr<uint32_t> count = r.U32("count");
  if (!count.ok() || *count > 100'000) return malformed();
  std::vector<audit::RecordShown> out;
  out.reserve(*count);
  for (uint32_t i = 0; i < *count; ++i) {
    StatusOr<uint64_t> seq = r.U64("seq");
    if (!seq.ok()) return malformed();
    StatusOr<ByteSpan> hash = r.Raw(audit::kHashSize, "hash");
    StatusOr<ByteSpan> signature = hash.ok() ? r.Var("signature", 1024) : StatusOr<ByteSpan>(hash.status());
    StatusOr<ByteSpan> entry = signature.ok() ? r.Var("entry", 1 << 20) : StatusOr<ByteSpan>(signature.status());
    if (!entry.ok()) return malformed();
    audit::RecordShown rec;
    rec.seq = *seq;
    rec.hash = Bytes(hash->begin(), hash->end());
    rec.entry = std::string(entry->begin(), entry->end());
    out.push_back(std::move(rec));
  }
  if (!r.ExpectEnd("audit records").ok()) return malformed();
  return out;
}

// RecordAt reads the record of `log` at `seq` (nullopt when the log has none there).
StatusOr<std::optional<audit::RecordShown>> RecordAt(Reader& reader, const std::string& log, uint64_t seq) {
  ASSIGN_OR_RETURN(std::vector<audit::RecordShown> one,
                   reader.GetRecords("/v1/sys/audit/records?log=" + log + "&from=" + std::to_string(seq) + "&limit=1"));
  if (one.empty()) return std::optional<audit::RecordShown>();
  return std::optional<audit::RecordShown>(std::move(one.front()));
}

const audit::RecordShown* OrNull(const std::optional<audit::RecordShown>& r) { return r ? &*r : nullptr; }

// Check runs the witness against `witnessed` and returns what to record; nothing is written.
StatusOr<WitnessOutcome> Check(Reader& reader, const audit::CustodyWitness& witnessed, audit::HeadShown* shown) {
  ASSIGN_OR_RETURN(json head_json, reader.Get("/v1/sys/audit/head"));
  ASSIGN_OR_RETURN(*shown, ParseHead(head_json));
  WitnessOutcome out;
  out.log = shown->log;
  out.seq = shown->seq;
  out.hash = HexEncode(shown->hash);
  ASSIGN_OR_RETURN(audit::WitnessCheck check, audit::WitnessCheck::Begin(witnessed, *shown));
  auto known = witnessed.logs.find(shown->log);
  out.first_sight = shown->seq != 0 && known == witnessed.logs.end();
  out.advanced = shown->seq != 0 && (out.first_sight || known->second.seq != shown->seq);
  out.by_line = check.ByLine();
  if (check.ByLine()) {
    // Taken on the core's word: the log must still hold the witnessed head's record and hold
    // the new head's, each with its hash (two one-record reads instead of every record between).
    ASSIGN_OR_RETURN(auto witnessed_record, RecordAt(reader, shown->log, known->second.seq));
    RETURN_IF_ERROR(audit::CheckOtherLog(shown->log, known->second, OrNull(witnessed_record)));
    ASSIGN_OR_RETURN(auto head_record, RecordAt(reader, shown->log, shown->seq));
    RETURN_IF_ERROR(audit::CheckRecordAt(shown->log, check.Recorded(), OrNull(head_record)));
  }
  constexpr uint64_t kPage = 1000;
  while (!check.Done()) {
    const uint64_t from = check.NextSeq();
    ASSIGN_OR_RETURN(std::vector<audit::RecordShown> page,
                     reader.GetRecords("/v1/sys/audit/records?log=" + shown->log + "&from=" + std::to_string(from) +
                                       "&limit=" + std::to_string(kPage)));
    for (const audit::RecordShown& r : page) {
      RETURN_IF_ERROR(check.Add(r));
      if (check.Done()) break;
    }
    if (page.empty() || page.size() < kPage) break;
  }
  RETURN_IF_ERROR(check.Finish());
  if (!out.first_sight && out.advanced && !out.by_line) out.checked = shown->seq - known->second.seq;
  out.run = check.Recorded().run;
  // The other nodes' logs this keeper witnessed (a shared database): still there, same hash.
  for (const auto& [log, head] : witnessed.logs) {
    if (log == shown->log) continue;
    ASSIGN_OR_RETURN(auto at, RecordAt(reader, log, head.seq));
    RETURN_IF_ERROR(audit::CheckOtherLog(log, head, OrNull(at)));
  }
  return out;
}

struct ActiveCustody {
  std::string joint_key_hex;
  crypto::SigningKey identity;
};

StatusOr<ActiveCustody> Active(KeeperStore& store) {
  std::lock_guard<std::mutex> lock(store.mu());
  if (!store.secrets().active) return FailedPrecondition("keeper holds no active share yet: nothing to witness for");
  ASSIGN_OR_RETURN(custody::CustodyDescriptor custody,
                   custody::CustodyDescriptor::Parse(store.secrets().active->custody_json));
  SecretBytes scalar = store.secrets().identity.ToScalarBytes();
  ASSIGN_OR_RETURN(crypto::SigningKey identity, crypto::SigningKey::FromScalarBytes(scalar));
  return ActiveCustody{HexEncode(custody.public_key.Encode()), std::move(identity)};
}

}  // namespace

StatusOr<audit::WitnessState> LoadWitnessState(const std::string& dir) {
  const std::string path = dir + "/" + kWitnessFile;
  if (!FileExists(path)) return audit::WitnessState{};
  ASSIGN_OR_RETURN(std::string text, ReadFileString(path));
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(path + ": not JSON");
  StatusOr<audit::WitnessState> s = audit::WitnessState::FromJson(j);
  if (!s.ok()) return s.status().WithContext(path);
  return s;
}

StatusOr<WitnessOutcome> WitnessAppliance(KeeperStore& store, const std::string& server_url,
                                          const std::string& ca_file) {
  ASSIGN_OR_RETURN(ActiveCustody active, Active(store));
  net::HttpClientOptions http;
  http.ca_file = ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(server_url, http));
  Reader reader(std::move(client), store.id(), std::move(active.identity), "appliance " + server_url);

  ASSIGN_OR_RETURN(StateLock lock, StateLock::Take(store.dir()));
  ASSIGN_OR_RETURN(audit::WitnessState state, LoadWitnessState(store.dir()));
  audit::CustodyWitness& witnessed = state.custodies[active.joint_key_hex];
  audit::HeadShown shown;
  StatusOr<WitnessOutcome> out = Check(reader, witnessed, &shown);
  if (!out.ok()) {
    if (out.status().code() == ErrorCode::kIntegrity) {
      // The refusal is part of the keeper's record (best effort: the refusal is what matters).
      (void)store.audit().Append("audit.witness.refused",
                                 {{"appliance", server_url}, {"log", shown.log}, {"reason", out.status().message()}});
    }
    return out;
  }
  // The same head shown with a line statement of another run (a restarted core signed it again,
  // as it does for a tail whose signature was not stored): recorded too, so that the next
  // witness can take heads of that run by line. A head shown without a line keeps its run.
  auto known = witnessed.logs.find(out->log);
  const bool new_run = out->seq != 0 && !out->run.empty() && known != witnessed.logs.end() &&
                       known->second.run != out->run;
  if (!out->advanced && !new_run) return out;
  // Durable in the keeper's own log before the state moves on.
  RETURN_IF_ERROR(store.audit().Append("audit.witness", {{"appliance", server_url},
                                                         {"log", out->log},
                                                         {"seq", out->seq},
                                                         {"hash", out->hash},
                                                         {"audit_public_key", shown.audit_public_key},
                                                         {"records_checked", out->checked},
                                                         {"by_line", out->by_line},
                                                         {"run", HexEncode(out->run)},
                                                         {"first_sight", out->first_sight}}));
  witnessed.audit_public_key = shown.audit_public_key;
  witnessed.logs[out->log] = audit::WitnessedHead{shown.seq, shown.hash, out->run};
  RETURN_IF_ERROR(SaveState(store.dir(), state));
  return out;
}

Status ResetWitness(KeeperStore& store, const std::string& reason) {
  ASSIGN_OR_RETURN(ActiveCustody active, Active(store));
  ASSIGN_OR_RETURN(StateLock lock, StateLock::Take(store.dir()));
  ASSIGN_OR_RETURN(audit::WitnessState state, LoadWitnessState(store.dir()));
  auto it = state.custodies.find(active.joint_key_hex);
  json forgotten = json::object();
  if (it != state.custodies.end())
    for (const auto& [log, head] : it->second.logs) forgotten[log] = {{"seq", head.seq}, {"hash", HexEncode(head.hash)}};
  RETURN_IF_ERROR(store.audit().Append("audit.witness.reset", {{"reason", reason}, {"forgotten", forgotten}}));
  if (it != state.custodies.end()) state.custodies.erase(it);
  return SaveState(store.dir(), state);
}

}  // namespace custos::keeper
