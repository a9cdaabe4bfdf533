// specserve-soak: the bounded soak of the split deployment (bench/soak_bench.h).
// Not part of CI: it runs for minutes.
//   specserve-soak --model ../shared/models/stories260K.gguf --seconds 300 --clients 256
#include <cstdio>
#include <string>

#include "absl/flags/flag.h"
#include "bench/soak_bench.h"
#include "common/util/cli.h"

ABSL_FLAG(std::string, model, "", "Model served and used for the reference outputs (required)");
ABSL_FLAG(std::string, bin_dir, "", "Folder of the service binaries (default: this one's)");
ABSL_FLAG(double, seconds, 300, "How long clients send requests");
ABSL_FLAG(int, clients, 256, "Concurrent streams");
ABSL_FLAG(int, prompts, 32, "Distinct prompts");
ABSL_FLAG(int, prompt_tokens, 24, "Prompt tokens at most");
ABSL_FLAG(int, max_new_tokens, 96, "New tokens per request at most");
ABSL_FLAG(double, cancel_fraction, 0.15, "Requests cancelled at a random moment");
ABSL_FLAG(double, deadline_fraction, 0.15, "Requests with a deadline shorter than they need");
ABSL_FLAG(double, kill_every_seconds, 20,
          "Mean seconds between kills (SIGKILL) of the draft or the target (0: none)");
ABSL_FLAG(int, threads, 1, "CPU threads of each service");
ABSL_FLAG(double, idle_seconds, 5, "The workers' --idle-seconds");
ABSL_FLAG(std::string, out, "", "Write OUT.json with the figures");

int main(int argc, char** argv) {
  specserve::ParseCommandLine(
      argc, argv,
      "A bounded soak of router + draft + target on loopback: concurrent streams with random "
      "cancellations and deadlines while the workers are killed and restarted; every output "
      "checked against the target alone.\n"
      "  specserve-soak --model ../shared/models/stories260K.gguf --seconds 300 --clients 256");
  specserve::SoakOptions o;
  o.model = absl::GetFlag(FLAGS_model);
  if (o.model.empty()) {
    std::fprintf(stderr, "error: --model is required\n");
    return 1;
  }
  o.bin_dir = absl::GetFlag(FLAGS_bin_dir);
  o.seconds = absl::GetFlag(FLAGS_seconds);
  o.clients = absl::GetFlag(FLAGS_clients);
  o.prompts = absl::GetFlag(FLAGS_prompts);
  o.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
  o.max_new_tokens = absl::GetFlag(FLAGS_max_new_tokens);
  o.cancel_fraction = absl::GetFlag(FLAGS_cancel_fraction);
  o.deadline_fraction = absl::GetFlag(FLAGS_deadline_fraction);
  o.kill_every_seconds = absl::GetFlag(FLAGS_kill_every_seconds);
  o.threads = absl::GetFlag(FLAGS_threads);
  o.idle_seconds = absl::GetFlag(FLAGS_idle_seconds);
  o.out = absl::GetFlag(FLAGS_out);
  if (o.seconds <= 0 || o.clients < 1 || o.prompts < 1 || o.prompt_tokens < 5 ||
      o.max_new_tokens < 8 || o.threads < 1 || !(o.idle_seconds > 0)) {
    std::fprintf(stderr,
                 "error: --seconds, --idle-seconds must be > 0; --clients, --prompts, --threads "
                 ">= 1; --prompt-tokens >= 5; --max-new-tokens >= 8\n");
    return 1;
  }
  return specserve::RunSoak(o);
}
