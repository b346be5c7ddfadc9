#include "cli/commands.h"

#include <CLI/CLI.hpp>
#include <iostream>

namespace custos::cli {

int Main(int argc, char** argv) {
  CLI::App app{"custos: co-custodial key management"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}

}  // namespace custos::cli
