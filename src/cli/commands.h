// The `custos` command line: one binary, subcommands (docs/operations.md).
#pragma once

namespace custos::cli {

// Main parses argv, runs the subcommand and returns the process exit code. Failures print a
// one-line reason on stderr and return non-zero.
int Main(int argc, char** argv);

}  // namespace custos::cli
