#include "tests/testing/shared_models.h"

#include <cstdlib>
#include <filesystem>

namespace specserve::testing {

std::string SharedModelsDir() {
  if (const char* env = std::getenv("SPECSERVE_MODELS_DIR"); env != nullptr && *env != '\0') {
    return env;
  }
  return std::string(SPECSERVE_SOURCE_DIR) + "/../shared/models";
}

std::string SharedModelPath(const std::string& relative) {
  const std::string path = SharedModelsDir() + "/" + relative;
  std::error_code ec;
  return std::filesystem::exists(path, ec) ? path : std::string();
}

}  // namespace specserve::testing
