// Where the real models live for tests: $SPECSERVE_MODELS_DIR, else ../shared/models
// beside the source tree. Tests that need them skip with a visible message.
#pragma once

#include <string>

#include "gtest/gtest.h"

namespace specserve::testing {

std::string SharedModelsDir();
// Full path of `relative` inside SharedModelsDir(), or "" when it does not exist.
std::string SharedModelPath(const std::string& relative);

}  // namespace specserve::testing

// Skips the current test (visibly) when the shared model file is absent.
#define SPECSERVE_REQUIRE_SHARED_MODEL(var, relative)                                   \
  const std::string var = ::specserve::testing::SharedModelPath(relative);              \
  if (var.empty()) {                                                                    \
    GTEST_SKIP() << "shared model '" << (relative) << "' not found under "              \
                 << ::specserve::testing::SharedModelsDir()                             \
                 << " (set SPECSERVE_MODELS_DIR); skipping";                            \
  }
