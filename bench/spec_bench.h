// The speculative part of specserve-bench: plain decoding, a chain, a fixed
// Sequoia tree and the adaptive planner over a grid of batch sizes and context
// lengths. Each cell runs every mode several times, the modes interleaved, and
// reports medians; decode time excludes prefill. Beside each measured speedup
// it prints the one the roofline predicts for the steps the mode actually ran
// (their passes' bytes and FLOPs against the measured bandwidth and peak), so a
// mode that loses can be told apart from kernels that miss their bound.
#pragma once

#include <string>
#include <vector>

#include "common/engine/model.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace specserve {

struct SpecBenchOptions {
  std::vector<int> batches;
  std::vector<int> contexts;
  std::vector<std::string> modes;  // "off" first: the baseline of every cell
  int new_tokens = 128;
  int repetitions = 3;  // runs of every mode per cell, interleaved; medians reported
  int sinks = 16;
  int window = 64;
  std::string label;  // e.g. "self" or the draft's file name
};

struct Roofline {
  double bandwidth = 0;   // bytes/s, measured in the same run
  double peak_flops = 0;  // FLOP/s, measured in the same run
};

// Prints a table and returns its rows as JSON objects.
nlohmann::json RunSpecBench(Model& target, Model& draft, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, const Roofline& roofline);

}  // namespace specserve
