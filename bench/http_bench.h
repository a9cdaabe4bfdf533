// The HTTP part of specserve-bench (--mode http): the cost of the OpenAI-compatible
// HTTP API. One specserve-serve (gRPC + HTTP) is started on loopback; the same greedy
// workload (N concurrent streaming requests) runs in-process through a SpecEngine, over
// gRPC (GenerateStream) and over HTTP (SSE, cpp-httplib client), interleaved, repeated.
// Reports per client count the median time to first token, client-side inter-token time
// (the step time a client sees) and end-to-end time of each path, and HTTP's overhead
// per request and per streamed token against in-process and gRPC, also as a fraction of
// the step time.
#pragma once

#include <string>
#include <vector>

#include "common/ops/ops.h"

namespace specserve {

struct HttpBenchOptions {
  std::string model;
  std::string bin_dir;                     // empty: the folder of this executable
  std::vector<int> clients = {1, 16, 64};  // concurrent streams
  std::string mode = "off";                // speculation of every request
  int new_tokens = 64;
  int prompt_tokens = 32;
  int repeats = 3;
  int threads = 0;  // CPU threads of the spawned server and the in-process engine
  int sinks = 16;
  int window = 64;
  std::string out;  // write OUT.json when set
};

int RunHttpBench(const HttpBenchOptions& options, Ops& ops);

}  // namespace specserve
