// The speculative part of specserve-bench: plain decoding, a chain, a fixed
// Sequoia tree and the adaptive planner over a grid of batch sizes and context
// lengths, each speedup measured against plain decoding in the same run.
#pragma once

#include <string>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace specserve {

struct SpecBenchOptions {
  std::vector<int> batches;
  std::vector<int> contexts;
  std::vector<std::string> modes;  // "off" first: the baseline of every cell
  int new_tokens = 32;
  int sinks = 16;
  int window = 64;
  std::string label;  // e.g. "self" or the draft's file name
};

// Prints a table and returns its rows as JSON objects.
nlohmann::json RunSpecBench(LlamaModel& target, LlamaModel& draft, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, double bandwidth);

}  // namespace specserve
