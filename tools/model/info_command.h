// `specserve-model info PATH [--tokenizer F] [--json] [--metadata]`.
#pragma once

#include <string>
#include <vector>

namespace specserve::model_tool {

extern const char kInfoUsage[];
// Returns the process exit code.
int RunInfo(const std::vector<std::string>& argv);

}  // namespace specserve::model_tool
