// `specserve-model convert`: any supported model (GGUF, llama2.c .bin, Hugging Face
// directory) to a GGUF file of a chosen weight type.
#pragma once

#include <string>
#include <vector>

namespace specserve::model_tool {

extern const char kConvertUsage[];
// Returns the process exit code.
int RunConvert(const std::vector<std::string>& argv);

}  // namespace specserve::model_tool
