// The gRPC part of specserve-bench (--mode grpc): N concurrent clients stream
// greedy generations from the public API (a running router or specserve-serve,
// or ones the bench starts on loopback), and the same workload runs in-process
// through SpecEngine. Reports aggregate and decode tokens/s, per-request latency,
// the cost of the RPCs per decoding step (gRPC against in-process), and
// speculative against plain decoding through the services.
#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "common/ops/ops.h"
#include "nlohmann/json.hpp"

namespace specserve {

struct GrpcBenchOptions {
  // The served models, measured in turn: prompts and the in-process baseline come
  // from them; with `spawn` the bench serves each, with `server` give the one it serves.
  std::vector<std::string> models;
  std::string tokenizer;  // llama2.c tokenizer.bin for .bin models
  // An existing router or specserve-serve (HOST:PORT); empty: use `spawn`.
  std::string server;
  // Deployments to start on 127.0.0.1 from `bin_dir`, each measured in turn:
  // "serve" (specserve-serve), "split" (specserve-target + -draft + -router)
  // and/or "pipelined" (split with the router's --pipeline: two micro-batches in flight).
  std::vector<std::string> spawn;
  // Split deployments: the CPUs of the target and of the draft (--cpus LIST of
  // each service); empty: not pinned.
  std::string target_cpus, draft_cpus;
  // Split deployments: the draft service's model (e.g. a Q8_0 copy of the target);
  // empty: the target's.
  std::string draft_model;
  std::string bin_dir;                     // empty: the folder of this executable (build/bin)
  std::vector<int> clients = {1, 16, 64};  // concurrent clients = batch size
  std::vector<std::string> modes = {"off", "auto"};  // "off" is added first when absent
  int new_tokens = 64;                               // generated per request (greedy, EOS ignored)
  int prompt_tokens = 32;                            // prompt length of every request
  int repeats = 3;  // runs per cell (gRPC and in-process alternate); medians reported
  int threads = 0;  // CPU threads of the spawned services (0: all cores)
  int sinks = 16;   // draft window of the spawned services and the baseline
  int window = 64;
  std::string out;  // write OUT.json and OUT.csv when set
  // Where to write every decode step of the timed in-process runs (their
  // engines are the services' twins: what the planner chose and what it
  // cost, bench/step_log.h), labelled with the model file's name; null: nowhere.
  std::ostream* step_log = nullptr;
};

// Runs every model x deployment x client count x mode with its in-process twin,
// prints a table per model, returns 0 on success (1 on an error, printed to stderr).
int RunGrpcBench(const GrpcBenchOptions& options, Ops& ops);

}  // namespace specserve
