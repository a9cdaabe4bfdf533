// specserve-soak: a bounded soak of the split deployment on loopback (issue 12,
// item 8). Router, draft and target run as real processes; N client threads stream
// greedy requests without pause, some cancelled at a random moment, some with a
// short deadline; meanwhile the draft and the target are killed (SIGKILL) and
// restarted on their ports at random moments. Every output is checked against the
// target alone (greedy, in-process): a completed request must equal it, a cut one
// must be a prefix of it. Reports requests by outcome, wrong outputs (must be 0),
// time to first token and inter-token latency (p50, p99), and the router's RSS and
// the workers' held sequences before and after.
#pragma once

#include <string>

namespace specserve {

struct SoakOptions {
  std::string model;                // served model (also the in-process reference)
  std::string bin_dir;              // the service binaries (empty: this executable's folder)
  double seconds = 300;             // how long clients send requests
  int clients = 256;                // concurrent streams
  int prompts = 32;                 // distinct prompts (references computed once)
  int prompt_tokens = 24;           // at most; prompts vary in length below it
  int max_new_tokens = 96;          // at most; requests vary below it
  double cancel_fraction = 0.15;    // cancelled at a random moment
  double deadline_fraction = 0.15;  // given a deadline shorter than they need
  double kill_every_seconds = 20;   // mean time between worker kills (0: none)
  int threads = 1;                  // CPU threads of each service
  double idle_seconds = 5;          // workers' --idle-seconds
  std::string out;                  // OUT.json with the figures, when set
};

// Runs the soak; returns 0 when there was no wrong output and every request ended
// with an expected status, 1 otherwise (problems printed to stderr).
int RunSoak(const SoakOptions& options);

}  // namespace specserve
