// CLI commands for encrypted objects (docs/objects.md): `custos put|get|ls|rm`.
#pragma once
#include <functional>
#include "CLI/CLI.hpp"
#include "common/status.h"

namespace custos::cli {

// AddObjectCommands registers put, get, ls and rm.
void AddObjectCommands(CLI::App& app, std::function<void(Status)> run);

}  // namespace custos::cli
