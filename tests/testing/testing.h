// Shared test helpers: paths to the project's and the shared third-party test data.
#pragma once

#include <string>

#include "gtest/gtest.h"

namespace custos::testing {

// SharedTestdata returns ../shared/testdata/<rel> (the third-party vectors, used as they are).
std::string SharedTestdata(const std::string& rel);
// ProjectTestdata returns <source>/<rel>.
std::string ProjectPath(const std::string& rel);
// TempDir returns a fresh private directory removed at process exit.
std::string TempDir();

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
