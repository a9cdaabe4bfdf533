// The speculative part of specserve-bench: plain decoding, a chain, a fixed
// Sequoia tree and the adaptive planner over a grid of batch sizes and context
// lengths. Each cell runs every mode several times, the modes interleaved, and
// reports medians; decode time excludes prefill. Beside each measured speedup
// it prints the one the roofline predicts for the steps the mode actually ran
// (their passes' bytes and FLOPs against the measured bandwidth and peak), so a
// mode that loses can be told apart from kernels that miss their bound.
//
// Several drafters can be compared in one run (self-speculation, a draft model
// file, the n-gram prompt-lookup drafter): every (drafter, mode) pair is one
// interleaved column beside plain decoding. The repetitive workload gives prompts
// whose continuation quotes them (a passage said twice), where prompt lookup pays.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/engine/model.h"
#include "common/speculation/drafter_factory.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace specserve {

// A drafter to compare: a model (the target itself for self-speculation) or n-grams.
struct BenchDraft {
  std::string label;  // "self", "ngram" or the draft's file name
  DrafterKind kind = DrafterKind::kModel;
  Model* model = nullptr;  // kModel: the draft (must outlive the run); null for kNgram
  // Self-speculation whose draft computes its own window rows ("self:own")
  // instead of taking the target's (SpecEngineOptions::draft_takes_target_rows).
  bool own_rows = false;
};

enum class BenchWorkload {
  kStories,     // the target's own sampled stories, cut to the context length
  kRepetitive,  // a passage of half the context said twice: the answer quotes the prompt
};

struct SpecBenchOptions {
  std::vector<int> batches;
  std::vector<int> contexts;
  std::vector<std::string> modes;  // "off" first: the baseline of every cell
  std::vector<BenchDraft> drafts;  // each speculative mode runs with each of these
  BenchWorkload workload = BenchWorkload::kStories;
  int new_tokens = 128;
  int repetitions = 3;  // runs of every mode per cell, interleaved; medians reported
  // Each run's engine first serves an untimed generation of the same cell (a
  // server's steady state), rather than starting fresh (one-time costs count).
  bool warm = false;
  int sinks = 16;
  int window = 64;
  // Where to write every timed decode step of every run as a CSV row
  // (bench/step_log.h), labelled with `model_label`; null: nowhere.
  std::ostream* step_log = nullptr;
  std::string model_label;
};

struct Roofline {
  double bandwidth = 0;   // bytes/s, measured in the same run
  double peak_flops = 0;  // FLOP/s, measured in the same run
};

// Prints a table and returns its rows as JSON objects.
nlohmann::json RunSpecBench(Model& target, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, const Roofline& roofline);

}  // namespace specserve
