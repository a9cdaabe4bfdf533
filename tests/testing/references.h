// The reference implementations in tests/references/node (installed by
// scripts/setup.d/40-references.sh): real tokenizer.json files, JavaScript encoders
// and llama.cpp through node-llama-cpp. Tests that use them skip with a visible
// message when they are not installed.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace specserve::testing {

// tests/references/node in the source tree.
std::string ReferencesDir();
// Empty when node and the packages are installed, else why not (for GTEST_SKIP).
std::string ReferencesMissing();
// The folder of a tokenizer.json shipped by @lenml/tokenizer-<name> (llama3,
// llama3_1, qwen2_5).
std::string ReferenceTokenizerDir(const std::string& name);

// Runs `node <script> <args...>` in ReferencesDir() and parses its stdout as JSON;
// errors carry the exit status and the end of stderr.
absl::StatusOr<nlohmann::json> RunReferenceScript(const std::string& script,
                                                  const std::vector<std::string>& args);

}  // namespace specserve::testing
