// The roofline view of specserve-bench --mode engine: for each kind of forward
// pass the serving path runs, its bytes (weights once, each sequence's visible
// KV rows once), FLOPs (matrix products and attention), median time, achieved
// GB/s and GFLOP/s, the bound it hits (memory read bandwidth or peak FLOP/s,
// both measured in the same run) and how close it gets, and where the time
// went (GEMM, attention, the rest). Pass kinds, interleaved step by step so
// ratios between them hold under load:
//   decode   one new token per sequence over `context` cached rows (full cache)
//   verify   a chain of `verify_nodes` tree nodes per sequence over the same cache
//   draft    one tree level of `draft_width` nodes over a window (sinks +
//            window rows, MagicDec's draft) read in place from a full cache
//            of the context, as the self-draft reads the target's rows
//   prefill  one prompt of `prefill_tokens` tokens (batch 1), timed on its own.
// Decode, verify and draft take their logits as `logits` says: "reduced", each
// row's argmax (a draft row: its draft_width most likely tokens) from vocabulary
// chunks (LlamaModel::ForwardReduced, greedy, as served), or "full", rows x vocab
// floats (LlamaModel::Forward, as before). Compare the two in separate runs,
// alternated: in one process the full passes' large logits buffer slows the
// passes after them.
// Decode never includes prefill: caches are filled with random rows directly.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "bench/peak_flops.h"
#include "common/engine/llama_model.h"

namespace specserve {

struct RooflineOptions {
  std::vector<int> batches;
  std::vector<int> contexts;
  int steps = 8;
  int prefill_tokens = 512;
  int verify_nodes = 5;
  int draft_width = 4;
  int sinks = 16;
  int window = 64;
  // Pass times from the process's CPU time divided by the threads (the time
  // the pass takes when its threads have the cores to themselves) instead of
  // the wall clock: on a machine shared with other work. Exact with one
  // thread; with more, the pool's spinning between jobs counts too.
  bool cpu_clock = false;
  int threads = 1;
  std::string logits = "reduced";  // reduced or full
  // The pass kinds timed; the default is every kind there is.
  std::set<std::string> passes = {"prefill", "decode", "verify", "draft"};
};

struct RooflineRow {
  std::string model;
  std::string kind;  // decode, verify, draft, prefill
  int batch = 0;
  int context = 0;
  int rows_per_sequence = 0;  // new tokens per sequence in the pass
  std::string logits;         // full or reduced
  double logits_bytes = 0;    // the logits the pass holds (full) or its chunk (reduced)
  double seconds = 0;         // median pass time
  double bytes = 0;           // weights + visible KV, each read once
  double flops = 0;
  double matmul_share = 0, attention_share = 0, other_share = 0;  // of the pass time
  double bound_seconds = 0;  // max(bytes / bandwidth, flops / peak)
  std::string bound;         // "memory" or "compute"
  double tokens_per_second() const { return batch * rows_per_sequence / seconds; }
};

// Runs every pass kind over the grid for one model, prints the table and
// returns its rows.
std::vector<RooflineRow> RunRoofline(LlamaModel& llama, const std::string& name,
                                     const RooflineOptions& options, double bandwidth,
                                     const PeakFlops& peak);

}  // namespace specserve
