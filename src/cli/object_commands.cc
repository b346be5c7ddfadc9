// `custos put|get|ls|rm`: move files to and from S3-compatible storage or a directory, encrypted
// under an appliance KMS key (--key) or the co-custody joint key (--custody), or as they are
// (--plain). Where settings come from (flags first, then the environment), docs/objects.md.
#include "cli/object_commands.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "keeper/api/protocol.h"
#include "client/objects/progress.h"
#include "client/objects/transfer.h"

namespace custos::cli {

namespace {

using objects::Location;

std::string Env(std::initializer_list<const char*> names, const std::string& fallback = "") {
  for (const char* n : names) {
    const char* v = std::getenv(n);
    if (v != nullptr && *v != '\0') return v;
  }
  return fallback;
}

// ObjectFlags are the settings every object command shares.
struct ObjectFlags {
  std::string endpoint, region, ca_file;
  std::string kms_endpoint, key, custody, client_key, keepers;
  std::vector<std::string> keeper_urls;
  std::string range;
  bool plain = false, quiet = false;
  uint32_t chunk_kib = 64;
  uint32_t part_mib = 8;
  int concurrency = 4;
};

std::string Region(const ObjectFlags& f) { return !f.region.empty() ? f.region : Env({"AWS_REGION", "AWS_DEFAULT_REGION"}, "us-east-1"); }

objects::S3Options S3Settings(const ObjectFlags& f) {
  objects::S3Options o;
  o.endpoint = !f.endpoint.empty() ? f.endpoint : Env({"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"});
  o.region = Region(f);
  o.access_key_id = Env({"AWS_ACCESS_KEY_ID"});
  o.secret_access_key = Env({"AWS_SECRET_ACCESS_KEY"});
  o.session_token = Env({"AWS_SESSION_TOKEN"});
  o.ca_file = !f.ca_file.empty() ? f.ca_file : Env({"AWS_CA_BUNDLE"});
  o.concurrency = f.concurrency;
  return o;
}

StatusOr<std::unique_ptr<objects::ObjectStore>> Open(const Location& loc, const ObjectFlags& f) {
  objects::S3Options o = S3Settings(f);
  if (loc.scheme == Location::Scheme::kS3 && (o.access_key_id.empty() || o.secret_access_key.empty()))
    return InvalidArgument("S3 needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
  return objects::OpenStore(loc, o);
}

// KmsFromEnv builds the appliance client: --kms-endpoint or CUSTOS_ENDPOINT; credentials from
// CUSTOS_ACCESS_KEY_ID/CUSTOS_SECRET_ACCESS_KEY, else the AWS_* ones (one identity for both).
StatusOr<kms::KmsClient> KmsFromEnv(const ObjectFlags& f) {
  std::string endpoint = !f.kms_endpoint.empty() ? f.kms_endpoint : Env({"CUSTOS_ENDPOINT"});
  if (endpoint.empty()) return InvalidArgument("appliance mode needs the KMS endpoint: --kms-endpoint or CUSTOS_ENDPOINT");
  kms::SigV4Credentials c;
  c.access_key_id = Env({"CUSTOS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"});
  std::string secret = Env({"CUSTOS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"});
  if (c.access_key_id.empty() || secret.empty())
    return InvalidArgument("appliance mode needs KMS credentials: CUSTOS_ACCESS_KEY_ID and CUSTOS_SECRET_ACCESS_KEY (or the AWS_* ones)");
  c.secret_access_key = SecretBytes::CopyFrom(secret);
  WipeBytes(secret);
  if (std::getenv("CUSTOS_ACCESS_KEY_ID") == nullptr) c.session_token = Env({"AWS_SESSION_TOKEN"});
  net::HttpClientOptions ho;
  ho.ca_file = !f.ca_file.empty() ? f.ca_file : Env({"AWS_CA_BUNDLE"});
  return kms::KmsClient::Create(endpoint, std::move(c), Env({"CUSTOS_REGION"}, Region(f)), ho);
}

StatusOr<objects::DualControlSettings> DualFromFlags(const ObjectFlags& f, bool need_client) {
  objects::DualControlSettings s;
  ASSIGN_OR_RETURN(s.custody, custody::CustodyDescriptor::Load(f.custody));
  Status v = s.custody.Verify();
  if (!v.ok()) return v.WithContext(f.custody);
  if (need_client && !f.client_key.empty()) {
    ASSIGN_OR_RETURN(crypto::SigningKey k, keeper::ReadClientKey(f.client_key));
    s.client_key.emplace(std::move(k));
  }
  for (size_t b = 0; b < f.keepers.size();) {
    size_t e = f.keepers.find(',', b);
    if (e == std::string::npos) e = f.keepers.size();
    if (e > b) s.keeper_ids.push_back(f.keepers.substr(b, e - b));
    b = e + 1;
  }
  for (const std::string& ov : f.keeper_urls) {
    auto eq = ov.find('=');
    if (eq == std::string::npos) return InvalidArgument("--keeper-url takes ID=URL");
    s.url_override[ov.substr(0, eq)] = ov.substr(eq + 1);
  }
  s.ca_file = !f.ca_file.empty() ? f.ca_file : Env({"AWS_CA_BUNDLE"});
  s.log = &std::cerr;
  return s;
}

objects::TransferTuning Tuning(const ObjectFlags& f) {
  objects::TransferTuning t;
  t.chunk_size = f.chunk_kib * 1024;
  t.part_size = uint64_t{f.part_mib} << 20;
  return t;
}

Status CheckTuning(const ObjectFlags& f) {
  if (f.chunk_kib < 4 || f.chunk_kib > 16384) return InvalidArgument("--chunk-kib must be 4..16384");
  if (f.part_mib < 5 || f.part_mib > 5120) return InvalidArgument("--part-mib must be 5..5120 (S3's part limits)");
  if (f.concurrency < 1 || f.concurrency > 64) return InvalidArgument("--concurrency must be 1..64");
  return Status::Ok();
}

std::string Rate(uint64_t bytes, double seconds) {
  return objects::FormatBytes(static_cast<uint64_t>(seconds > 0 ? static_cast<double>(bytes) / seconds : 0)) + "/s";
}

bool ShowProgress(const ObjectFlags& f) { return !f.quiet && ::isatty(2) == 1; }

Status Put(const std::string& src, const std::string& dest, const ObjectFlags& f) {
  RETURN_IF_ERROR(CheckTuning(f));
  int modes = (f.plain ? 1 : 0) + (f.key.empty() ? 0 : 1) + (f.custody.empty() ? 0 : 1);
  if (modes != 1) return InvalidArgument("put needs exactly one of --key alias/NAME (appliance), --custody custody.json (dual control) or --plain");
  ASSIGN_OR_RETURN(Location loc, objects::ParseLocation(dest));
  if (loc.key.empty() || loc.key.back() == '/') loc.key += std::filesystem::path(src).filename().string();
  if (loc.scheme == Location::Scheme::kFile) {
    // Like S3, where a key's "directories" need not exist: create the destination directory.
    std::error_code ec;
    std::filesystem::create_directories(loc.bucket, ec);
    if (ec) return Unavailable("cannot create " + loc.bucket + ": " + ec.message());
  }
  ASSIGN_OR_RETURN(auto store, Open(loc, f));
  std::unique_ptr<objects::DataKeyCustodian> custodian;
  if (!f.key.empty()) {
    ASSIGN_OR_RETURN(kms::KmsClient kms, KmsFromEnv(f));
    custodian = objects::NewApplianceCustodian(std::move(kms), f.key);
  } else if (!f.custody.empty()) {
    ASSIGN_OR_RETURN(objects::DualControlSettings s, DualFromFlags(f, false));
    custodian = objects::NewDualControlCustodian(std::move(s));
  }
  objects::TransferStats stats;
  objects::ProgressBar bar(stats, ShowProgress(f));
  std::error_code ec;
  auto size = std::filesystem::file_size(src, ec);
  if (!ec) bar.SetTotal(size);
  auto r = objects::PutObject(src, *store, loc.key, custodian.get(), Tuning(f), &stats);
  bar.Stop();
  if (!r.ok()) return r.status().WithContext("put " + src + " -> " + loc.ToString());
  if (!f.quiet) {
    std::cout << "upload: " << src << " to " << loc.ToString() << " (" << objects::FormatBytes(r->plaintext_bytes)
              << ", " << Rate(r->plaintext_bytes, bar.elapsed()) << ", " << r->parts << (r->parts == 1 ? " part" : " parts");
    if (!r->key_ref.empty()) std::cout << ", key " << r->key_ref;
    std::cout << ")\n";
  }
  return Status::Ok();
}

Status Get(const std::string& src, std::string dest, const ObjectFlags& f) {
  RETURN_IF_ERROR(CheckTuning(f));
  ASSIGN_OR_RETURN(Location loc, objects::ParseLocation(src));
  if (loc.key.empty() || loc.key.back() == '/') return InvalidArgument("get needs an object, not a prefix: " + src);
  std::error_code ec;
  if (std::filesystem::is_directory(dest, ec)) dest = (std::filesystem::path(dest) / std::filesystem::path(loc.key).filename()).string();
  std::optional<objects::PlaintextRange> range;
  if (!f.range.empty()) {
    ASSIGN_OR_RETURN(objects::PlaintextRange r, objects::ParseRange(f.range));
    range = r;
  }
  ASSIGN_OR_RETURN(auto store, Open(loc, f));
  // The custodian is built only once the header says which one the object needs.
  std::unique_ptr<objects::DataKeyCustodian> custodian;
  objects::CustodianFactory factory = [&](objects::ObjectMode mode) -> StatusOr<objects::DataKeyCustodian*> {
    if (mode == objects::ObjectMode::kAppliance) {
      auto kms = KmsFromEnv(f);
      if (!kms.ok()) return kms.status().WithContext("object is protected by an appliance key");
      custodian = objects::NewApplianceCustodian(std::move(*kms), f.key);
    } else {
      if (f.custody.empty()) return InvalidArgument("object is under dual control: pass --custody custody.json and --client-key");
      ASSIGN_OR_RETURN(objects::DualControlSettings s, DualFromFlags(f, true));
      custodian = objects::NewDualControlCustodian(std::move(s));
    }
    return custodian.get();
  };
  objects::TransferStats stats;
  objects::ProgressBar bar(stats, ShowProgress(f));
  auto r = objects::GetObject(*store, loc.key, dest, f.plain, factory, Tuning(f), range, &stats,
                              [&](uint64_t n) { bar.SetTotal(n); });
  bar.Stop();
  if (!r.ok()) return r.status().WithContext("get " + loc.ToString() + " -> " + dest + " (no file written)");
  if (!f.quiet)
    std::cout << "download: " << loc.ToString() << " to " << dest << " (" << objects::FormatBytes(r->plaintext_bytes)
              << ", " << Rate(r->plaintext_bytes, bar.elapsed()) << ")\n";
  return Status::Ok();
}

Status List(const std::string& remote, const ObjectFlags& f) {
  ASSIGN_OR_RETURN(Location loc, objects::ParseLocation(remote));
  ASSIGN_OR_RETURN(auto store, Open(loc, f));
  ASSIGN_OR_RETURN(std::vector<objects::ObjectInfo> list, store->List(loc.key));
  for (const objects::ObjectInfo& o : list) {
    std::string when = o.last_modified;
    for (char& c : when)
      if (c == 'T') c = ' ';
    if (!when.empty() && when.back() == 'Z') when.pop_back();
    std::string size = std::to_string(o.size);
    std::cout << when << "  " << std::string(size.size() < 12 ? 12 - size.size() : 0, ' ') << size << "  " << o.key << "\n";
  }
  return Status::Ok();
}

Status Remove(const std::string& remote, const ObjectFlags& f) {
  ASSIGN_OR_RETURN(Location loc, objects::ParseLocation(remote));
  if (loc.key.empty() || loc.key.back() == '/') return InvalidArgument("rm needs an object, not a prefix: " + remote);
  ASSIGN_OR_RETURN(auto store, Open(loc, f));
  RETURN_IF_ERROR(store->Delete(loc.key));
  if (!f.quiet) std::cout << "delete: " << loc.ToString() << "\n";
  return Status::Ok();
}

void AddS3Flags(CLI::App* c, ObjectFlags& f) {
  c->add_option("--endpoint", f.endpoint, "S3-compatible endpoint URL (default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS)");
  c->add_option("--region", f.region, "S3 region (default $AWS_REGION, $AWS_DEFAULT_REGION, us-east-1)");
  c->add_option("--ca-file", f.ca_file, "CA bundle for https endpoints (default $CUSTOS_CA_FILE, $AWS_CA_BUNDLE)");
  c->add_flag("--quiet,-q", f.quiet, "no progress bar and no summary line");
  c->add_option("--concurrency", f.concurrency, "parts or ranges in flight (default 4)");
}

void AddKeyFlags(CLI::App* c, ObjectFlags& f) {
  c->add_option("--key", f.key, "appliance mode: the KMS key (alias/NAME, key id or ARN)");
  c->add_option("--kms-endpoint", f.kms_endpoint, "the appliance's KMS endpoint (default $CUSTOS_ENDPOINT)");
  c->add_option("--custody", f.custody, "dual-control mode: custody.json");
  c->add_flag("--plain", f.plain, "move the bytes as they are, unencrypted (for comparison)");
  c->add_option("--part-mib", f.part_mib, "MiB per multipart part / ranged GET (default 8)");
}

}  // namespace

void AddObjectCommands(CLI::App& app, std::function<void(Status)> run) {
  static ObjectFlags f;
  static std::string a, b;
  auto* put = app.add_subcommand("put", "encrypt a file and upload it: custos put FILE s3://bucket/key | file://DIR/key");
  put->add_option("SRC", a, "local file")->required();
  put->add_option("DEST", b, "s3://bucket/key or file://DIR/key (a trailing / appends the file name)")->required();
  AddS3Flags(put, f);
  AddKeyFlags(put, f);
  put->add_option("--chunk-kib", f.chunk_kib, "plaintext KiB per encrypted chunk (4..16384, default 64)");
  put->callback([run] { run(Put(a, b, f)); });

  auto* get = app.add_subcommand("get", "download and decrypt an object: custos get s3://bucket/key FILE");
  get->add_option("SRC", a, "s3://bucket/key or file://DIR/key")->required();
  get->add_option("DEST", b, "local file (or directory)")->required();
  AddS3Flags(get, f);
  AddKeyFlags(get, f);
  get->add_option("--client-key", f.client_key, "dual control: the client key the keepers allow");
  get->add_option("--keepers", f.keepers, "dual control: ask only these keepers: ID[,ID...]");
  get->add_option("--keeper-url", f.keeper_urls, "dual control: ID=URL, reach a keeper at another address");
  get->add_option("--range", f.range, "plaintext bytes FIRST-LAST (inclusive) or FIRST-; fetches only the chunks they need");
  get->callback([run] { run(Get(a, b, f)); });

  auto* ls = app.add_subcommand("ls", "list objects: custos ls s3://bucket[/prefix] | file://DIR[/prefix]");
  ls->add_option("REMOTE", a, "bucket or directory, with an optional key prefix")->required();
  AddS3Flags(ls, f);
  ls->callback([run] { run(List(a, f)); });

  auto* rm = app.add_subcommand("rm", "delete an object: custos rm s3://bucket/key");
  rm->add_option("REMOTE", a, "the object")->required();
  AddS3Flags(rm, f);
  rm->callback([run] { run(Remove(a, f)); });
}

}  // namespace custos::cli
