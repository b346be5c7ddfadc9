// Shared test helpers: paths to the project's and the shared third-party test data.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace custos::testing {

// SharedTestdata returns ../shared/testdata/<rel> (the third-party vectors, used as they are).
std::string SharedTestdata(const std::string& rel);
// ProjectTestdata returns <source>/<rel>.
std::string ProjectPath(const std::string& rel);
// TempDir returns a fresh private directory removed at process exit.
std::string TempDir();
// ReadFileBytes returns a file's contents (empty if it cannot be read); WriteFileBytes replaces
// a file with `bytes` (no fsync: test fixtures only).
std::vector<uint8_t> ReadFileBytes(const std::string& path);
void WriteFileBytes(const std::string& path, std::span<const uint8_t> bytes);

}  // namespace custos::testing

#define ASSERT_OK(expr)                                   \
  do {                                                    \
    auto _st = (expr);                                    \
    ASSERT_TRUE(_st.ok()) << _st.ToString();              \
  } while (0)
#define EXPECT_OK(expr)                                   \
  do {                                                    \
    auto _st = (expr);                                    \
    EXPECT_TRUE(_st.ok()) << _st.ToString();              \
  } while (0)
