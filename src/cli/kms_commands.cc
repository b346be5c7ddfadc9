#include "cli/kms_commands.h"

#include <cstdlib>
#include <iostream>

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
}

}  // namespace custos::cli
