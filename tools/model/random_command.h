// `specserve-model random`: writes a GGUF llama model with seeded random weights.
#pragma once

#include <string>
#include <vector>

namespace specserve::model_tool {

extern const char kRandomUsage[];
// Returns the process exit code.
int RunRandom(const std::vector<std::string>& argv);

}  // namespace specserve::model_tool
