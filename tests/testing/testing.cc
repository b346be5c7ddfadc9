#include "tests/testing/testing.h"

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <mutex>
#include <vector>

namespace custos::testing {

std::string SharedTestdata(const std::string& rel) {
  return std::string(CUSTOS_SHARED_TESTDATA) + "/" + rel;
}

std::string ProjectPath(const std::string& rel) { return std::string(CUSTOS_SOURCE_DIR) + "/" + rel; }

std::vector<uint8_t> ReadFileBytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

void WriteFileBytes(const std::string& path, std::span<const uint8_t> bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::string TempDir() {
  static std::mutex mu;
  static std::vector<std::string>* dirs = [] {
    auto* v = new std::vector<std::string>();
    atexit([] {
      for (auto& d : *dirs) {
        std::error_code ec;
        std::filesystem::remove_all(d, ec);
      }
    });
    return v;
  }();
  std::string tmpl = (std::filesystem::temp_directory_path() / "custos-test-XXXXXX").string();
  if (mkdtemp(tmpl.data()) == nullptr) abort();
  std::lock_guard<std::mutex> lock(mu);
  dirs->push_back(tmpl);
  return tmpl;
}

}  // namespace custos::testing
