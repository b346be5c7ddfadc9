// Fuzzes the server.toml parser (src/appliance/host/config.h). The file is operator input, but a parser
// that crashes, or leaks file content into an error that ends up in a log, on a malformed file
// is a defect. Properties checked: no crash; every refusal is kInvalidArgument with a
// printable one-line message labelled "server.toml: "; an accepted config has its required
// paths, a known backend and a sim key directory; and it survives RenderServerConfig ->
// ParseServerConfig unchanged.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "appliance/host/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using custos::host::ParseServerConfig;
  using custos::host::RenderServerConfig;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = ParseServerConfig(text, "/base");
  if (!parsed.ok()) {
    if (parsed.status().code() != custos::ErrorCode::kInvalidArgument) std::abort();
    const std::string& message = parsed.status().message();
    if (message.rfind("server.toml: ", 0) != 0) std::abort();
    for (char c : message) {
      if (c < 0x20 || c >= 0x7f) std::abort();  // no line breaks or raw bytes from the file
    }
    return 0;
  }
  const custos::host::ServerConfig& config = *parsed;
  if (config.data_dir.empty() || config.custody_path.empty() || config.sim_key_dir.empty()) {
    std::abort();
  }
  if (config.tee_backend != "sim" && config.tee_backend != "sgx-gramine" &&
      config.tee_backend != "tdx-configfs") {
    std::abort();
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) std::abort();

  std::string rendered = RenderServerConfig(config);
  auto again = ParseServerConfig(rendered, "/elsewhere");  // paths are absolute by now
  if (!again.ok()) std::abort();                           // our own output must parse
  if (!(*again == config)) std::abort();
  if (RenderServerConfig(*again) != rendered) std::abort();
  return 0;
}
