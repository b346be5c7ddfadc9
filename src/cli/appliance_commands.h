// The appliance's commands (`custos server`, `custos operator ...`, `custos keeper release`):
// docs/operations.md "Running the appliance".
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "keeper/daemon/release.h"

namespace custos::cli {

// AddApplianceCommands registers `server`, `operator init|status` and `keeper release` (under
// `keeper_cmd`). Each callback hands its Status to `run`.
void AddApplianceCommands(CLI::App& app, CLI::App* keeper_cmd, std::function<void(Status)> run);

// AutoReleaseFlags are `keeper serve`'s --auto-release options.
struct AutoReleaseFlags {
  std::string url;
  std::string policy_path;
  std::string collateral_path;
  std::string ca_file;
  int interval_ms = 2000;
  int witness_interval_ms = 60'000;
  std::vector<std::string> approval_paths;
};
// AddAutoReleaseFlags adds them to `serve`.
void AddAutoReleaseFlags(CLI::App* serve, AutoReleaseFlags& flags);
// AdminToken reads the appliance's admin token from `token_file`, else from the file
// CUSTOS_ADMIN_TOKEN_FILE names (dev.env sets it). The admin routes need it (docs/protocol.md
// "Appliance API").
StatusOr<std::string> AdminToken(std::string token_file);

// LoadReleaseOptions reads the policy (and collateral) files into ReleaseOptions.
// `approval_paths`: measurement approval files (custody/approval.h) the keeper honours.
StatusOr<keeper::ReleaseOptions> LoadReleaseOptions(const std::string& url, const std::string& policy_path,
                                                    const std::string& collateral_path,
                                                    const std::string& ca_file,
                                                    const std::vector<std::string>& approval_paths = {});

}  // namespace custos::cli
