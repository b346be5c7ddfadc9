// CLI commands for the appliance's KMS (docs/kms.md): `custos operator access-key create`.
#pragma once
#include <functional>
#include "CLI/CLI.hpp"
#include "common/status.h"

namespace custos::cli {

// AddKmsCommands registers the KMS subcommands under the existing `operator` subcommand.
void AddKmsCommands(CLI::App& app, std::function<void(Status)> run);

}  // namespace custos::cli
