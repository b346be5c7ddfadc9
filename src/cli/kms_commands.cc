#include "cli/kms_commands.h"

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "appliance/kmip/ca.h"
#include "cli/appliance_commands.h"
#include "common/file.h"
#include "common/secret.h"
#include "net/http_client.h"
#include "net/json_fields.h"

namespace custos::cli {

using json = nlohmann::json;

namespace {

// AccessKeyCreate asks the appliance for a new SigV4 credential. The secret is printed once,
// to stdout, as shell-sourceable lines; it is never logged.
Status AccessKeyCreate(const std::string& url, const std::string& name, std::string token_file,
                       const std::string& ca_file) {
  ASSIGN_OR_RETURN(std::string token, AdminToken(token_file));
  net::HttpClientOptions o;
  o.ca_file = ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(url, o));
  auto r = client.Post("/v1/sys/access-keys", json{{"name", name}}.dump(),
                       {{"content-type", "application/json"}, {"authorization", "Bearer " + token}});
  WipeBytes(token);
  ASSIGN_OR_RETURN(json out, net::DecodeJsonResponse(r, "appliance " + url));
  ASSIGN_OR_RETURN(std::string id, net::GetString(out, "access_key_id"));
  ASSIGN_OR_RETURN(std::string secret, net::GetString(out, "secret_access_key"));
  ASSIGN_OR_RETURN(std::string principal, net::GetString(out, "principal_arn"));
  std::cout << "AWS_ACCESS_KEY_ID=" << id << "\nAWS_SECRET_ACCESS_KEY=" << secret
            << "\nCUSTOS_PRINCIPAL_ARN=" << principal << std::endl;
  WipeBytes(secret);
  return Status::Ok();
}

// AdminCall sends one admin request (POST with `body`, or GET when body is null) and decodes
// the JSON answer.
StatusOr<json> AdminCall(const std::string& url, const std::string& path, const json& body, std::string token_file,
                         const std::string& ca_file) {
  ASSIGN_OR_RETURN(std::string token, AdminToken(token_file));
  net::HttpClientOptions o;
  o.ca_file = ca_file;
  ASSIGN_OR_RETURN(net::HttpClient client, net::HttpClient::Create(url, o));
  net::HttpHeaders h = {{"content-type", "application/json"}, {"authorization", "Bearer " + token}};
  auto r = body.is_null() ? client.Get(path, h) : client.Post(path, body.dump(), h);
  WipeBytes(token);
  return net::DecodeJsonResponse(r, "appliance " + url);
}

// XksCredentialCreate prints a new XKS proxy credential once: what AWS KMS's
// CreateCustomKeyStore needs (XksProxyUriPath and the credential), as the AWS console's JSON
// file, and as shell lines.
Status XksCredentialCreate(const std::string& url, const std::string& prefix, const std::string& name,
                           std::string token_file, const std::string& ca_file) {
  json body = {{"uri_prefix", prefix}};
  if (!name.empty()) body["name"] = name;
  ASSIGN_OR_RETURN(json out, AdminCall(url, "/v1/sys/xks-credentials", body, std::move(token_file), ca_file));
  ASSIGN_OR_RETURN(std::string id, net::GetString(out, "access_key_id"));
  ASSIGN_OR_RETURN(std::string secret, net::GetString(out, "secret_access_key"));
  ASSIGN_OR_RETURN(std::string path, net::GetString(out, "uri_path"));
  std::cout << json{{"XksProxyUriPath", path},
                    {"XksProxyAuthenticationCredential", {{"AccessKeyId", id}, {"RawSecretAccessKey", secret}}}}
                   .dump(2)
            << "\n";
  WipeBytes(secret);
  std::cerr << "XKS credential " << id << " (" << out.value("name", "") << ") for URI path " << path
            << ": the JSON above is the AWS KMS console's proxy configuration file; the secret is shown only once\n";
  return Status::Ok();
}

// KmipClientCreate makes a KMIP client's key pair here (the private key never leaves this
// machine), has the appliance's KMIP CA certify the public key for `name`, and writes
// DIR/client.key (0600), DIR/client.crt and DIR/ca.crt (docs/kmip.md "Client certificates").
Status KmipClientCreate(const std::string& url, const std::string& name, const std::string& out_dir,
                        std::string token_file, const std::string& ca_file) {
  RETURN_IF_ERROR(kmip::CheckClientName(name));
  ASSIGN_OR_RETURN(auto pair, kmip::MakeClientKey());
  ASSIGN_OR_RETURN(json out, AdminCall(url, "/v1/sys/kmip-clients", json{{"name", name}, {"public_key", pair.second}},
                                       std::move(token_file), ca_file));
  ASSIGN_OR_RETURN(std::string cert, net::GetString(out, "certificate"));
  ASSIGN_OR_RETURN(std::string ca, net::GetString(out, "ca_certificate"));
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) return Unavailable("cannot create " + out_dir + ": " + ec.message());
  Status st = WriteFileAtomic(out_dir + "/client.key", pair.first, 0600);
  WipeBytes(pair.first);
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(WriteFileAtomic(out_dir + "/client.crt", cert, 0644));
  RETURN_IF_ERROR(WriteFileAtomic(out_dir + "/ca.crt", ca, 0644));
  std::cout << "CUSTOS_KMIP_CERT=" << out_dir << "/client.crt\nCUSTOS_KMIP_KEY=" << out_dir
            << "/client.key\nCUSTOS_KMIP_CA=" << out_dir << "/ca.crt\nCUSTOS_KMIP_PRINCIPAL_ARN="
            << out.value("principal_arn", "") << std::endl;
  return Status::Ok();
}

}  // namespace

void AddKmsCommands(CLI::App& app, std::function<void(Status)> run) {
  static std::string url, name, token_file, ca_file;
  CLI::App* op = app.get_subcommand("operator");
  auto* ak = op->add_subcommand("access-key", "SigV4 access keys for the KMS API")->require_subcommand(1);
  auto* create = ak->add_subcommand("create", "create an access key; prints AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY once");
  create->add_option("--name", name, "the principal's name: arn:aws:iam::ACCOUNT:user/NAME")->required();
  create->add_option("--server", url, "appliance URL")->required();
  create->add_option("--token-file", token_file, "admin token file (data_dir/admin.token; default $CUSTOS_ADMIN_TOKEN_FILE)");
  create->add_option("--ca-file", ca_file, "CA bundle for https");
  create->callback([run] { run(AccessKeyCreate(url, name, token_file, ca_file)); });

  static std::string prefix, access_key_id;
  auto* xc = op->add_subcommand("xks-credential", "SigV4 credentials for the AWS KMS XKS proxy API (docs/xks.md)")
                 ->require_subcommand(1);
  auto add_common = [](CLI::App* c) {
    c->add_option("--server", url, "appliance URL")->required();
    c->add_option("--token-file", token_file, "admin token file (data_dir/admin.token; default $CUSTOS_ADMIN_TOKEN_FILE)");
    c->add_option("--ca-file", ca_file, "CA bundle for https");
  };
  auto* xcreate = xc->add_subcommand(
      "create", "create a credential for one URI prefix; prints the AWS KMS console's proxy configuration JSON once");
  xcreate->add_option("--prefix", prefix, "the optional path prefix before /kms/xks/v1: \"\" or /a/b")->required();
  xcreate->add_option("--name", name, "a name for the credential (default: a random one)");
  add_common(xcreate);
  xcreate->callback([run] { run(XksCredentialCreate(url, prefix, name, token_file, ca_file)); });
  auto* xlist = xc->add_subcommand("list", "list the XKS credentials (no secrets)");
  add_common(xlist);
  xlist->callback([run] {
    auto r = AdminCall(url, "/v1/sys/xks-credentials", json(), token_file, ca_file);
    if (r.ok()) std::cout << (*r)["credentials"].dump(2) << "\n";
    run(r.status());
  });
  static std::string out_dir;
  auto* kc = op->add_subcommand("kmip-client", "certificates for KMIP clients (docs/kmip.md)")->require_subcommand(1);
  auto* kcreate = kc->add_subcommand(
      "create", "make a KMIP client key here and have the appliance's KMIP CA certify it; writes DIR/client.key, "
                "DIR/client.crt, DIR/ca.crt");
  kcreate->add_option("--name", name, "the client's name (its certificate's CN and principal user/kmip/NAME)")->required();
  kcreate->add_option("--out", out_dir, "the directory to write to")->required();
  add_common(kcreate);
  kcreate->callback([run] { run(KmipClientCreate(url, name, out_dir, token_file, ca_file)); });
  auto* xdelete = xc->add_subcommand("delete", "delete a credential (after AWS KMS uses its successor: rotation)");
  xdelete->add_option("--access-key-id", access_key_id)->required();
  add_common(xdelete);
  xdelete->callback([run] {
    run(AdminCall(url, "/v1/sys/xks-credentials/delete", json{{"access_key_id", access_key_id}}, token_file, ca_file)
            .status());
  });
}

}  // namespace custos::cli
