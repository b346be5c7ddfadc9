#include "cli/commands.h"

int main(int argc, char** argv) { return custos::cli::Main(argc, argv); }
