// specserve-bench: decode and prefill throughput of the engine over a grid of
// batch sizes and context lengths, with the bytes each decode step must read
// (weights + KV cache) per second as a fraction of the memory read bandwidth
// measured in the same run. Figures are ratios within one run (machines are noisy).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "bench/grpc_bench.h"
#include "bench/http_bench.h"
#include "bench/memory_bandwidth.h"
#include "bench/spec_bench.h"
#include "common/tokenizer/tokenizer.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "common/speculation/planner.h"
#include "common/util/cli.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::vector<std::string>, model, {}, "Model files (comma-separated)");
ABSL_FLAG(std::string, tokenizer, "", "llama2.c tokenizer.bin for .bin models");
ABSL_FLAG(std::string, batches, "1,8,32,64", "Batch sizes (comma-separated)");
ABSL_FLAG(std::string, contexts, "128,256,512,1024", "Context lengths (comma-separated)");
ABSL_FLAG(int, steps, 8, "Timed decode steps per grid cell (median reported)");
ABSL_FLAG(int, prefill_tokens, 512, "Prompt length of the prefill measurement");
ABSL_FLAG(int, threads, 0, "CPU threads (0 = all cores)");
ABSL_FLAG(std::string, out, "", "Write results to OUT.json and OUT.csv");
ABSL_FLAG(std::string, mode, "engine",
          "engine: plain decode/prefill throughput and bandwidth use; spec: plain vs chain vs "
          "tree vs auto speculative decoding over the grid; grpc: --clients concurrent gRPC "
          "clients against the same workload in-process, speculative vs plain through the "
          "services; http: the same workload over the HTTP API (SSE), gRPC and in-process, "
          "with HTTP's overhead per request and per streamed token");
ABSL_FLAG(std::string, spec_modes, "off,chain:4,tree:16,auto", "Modes compared by --mode spec");
ABSL_FLAG(std::string, draft, "self", "--mode spec: 'self' or a draft model file");
ABSL_FLAG(int, sinks, 16, "--mode spec: draft sink tokens");
ABSL_FLAG(int, window, 64, "--mode spec: draft window tokens");
ABSL_FLAG(int, new_tokens, 32, "--mode spec, grpc: tokens generated per sequence");
ABSL_FLAG(std::string, server, "",
          "--mode grpc: a running specserve-router or specserve-serve HOST:PORT to drive");
ABSL_FLAG(std::vector<std::string>, spawn, {},
          "--mode grpc: start these on 127.0.0.1 from --bin_dir and drive each in turn: "
          "serve (specserve-serve), split (specserve-target + specserve-draft + specserve-router)");
ABSL_FLAG(std::string, bin_dir, "", "--mode grpc --spawn: the service binaries' folder "
          "(default: this executable's)");
ABSL_FLAG(std::string, clients, "1,16,64", "--mode grpc: concurrent clients (comma-separated)");
ABSL_FLAG(int, prompt_tokens, 32, "--mode grpc: prompt tokens per request");
ABSL_FLAG(int, repeats, 3,
          "--mode grpc: runs per cell, gRPC and in-process alternating; the medians are reported");

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<int> ParseList(const std::string& text, const char* flag) {
  std::vector<int> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    int v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) {
      std::fprintf(stderr, "error: --%s: '%s' is not a positive integer\n", flag,
                   std::string(part).c_str());
      std::exit(1);
    }
    out.push_back(v);
  }
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Bytes of all weights one decode step reads (every matrix once; embedding rows are negligible).
double WeightBytesPerStep(const LoadedModel& m) {
  double bytes = 0;
  for (const LayerWeights& l : m.weights.layers) {
    for (const WeightTensor* w : {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm,
                                  &l.w_gate, &l.w_down, &l.w_up}) {
      bytes += w->bytes();
    }
  }
  return bytes + m.weights.output.bytes() + m.weights.output_norm.bytes();
}

// Fills a cache with `n` rows of random K/V without running the model: decode
// cost depends on how much KV there is, not on its values.
void FillCache(KvCache& cache, const KvShape& shape, int n, Rng& rng) {
  std::vector<float> rows(static_cast<size_t>(n) * shape.kv_dim);
  for (float& x : rows) x = static_cast<float>(rng.Uniform() - 0.5);
  const int first = cache.ReservePending(n).value_or(0);
  for (int l = 0; l < shape.n_layers; ++l) {
    cache.WritePending(l, first, rows.data(), rows.data(), n, shape.kv_dim);
  }
  cache.CommitAll();
}

struct Row {
  std::string model;
  std::string kind;  // "decode" or "prefill"
  int batch = 0;
  int context = 0;
  double tokens_per_second = 0;
  double step_seconds = 0;
  double bytes_per_step = 0;
  double bandwidth_fraction = 0;
};

int RunSpec(const std::vector<std::string>& models, const std::vector<int>& batches,
            const std::vector<int>& contexts, Ops& ops, double bandwidth) {
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::string> modes = {"off"};
  for (absl::string_view m : absl::StrSplit(absl::GetFlag(FLAGS_spec_modes), ',', absl::SkipEmpty())) {
    if (m == "off") continue;
    if (!ParseSpecMode(std::string(m)).ok()) {
      std::fprintf(stderr, "error: --spec_modes: '%s' is not off, chain:G, tree:N or auto\n",
                   std::string(m).c_str());
      return 1;
    }
    modes.emplace_back(m);
  }
  LoadOptions load_options;
  load_options.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  for (const std::string& path : models) {
    auto model = LoadModel(path, load_options);
    if (!model.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    LlamaModel target(**model, ops);
    Tokenizer tokenizer((*model)->vocab);
    std::unique_ptr<LoadedModel> draft_model;
    std::unique_ptr<LlamaModel> draft;
    const std::string draft_path = absl::GetFlag(FLAGS_draft);
    if (draft_path != "self") {
      auto loaded = LoadModel(draft_path, load_options);
      if (!loaded.ok()) {
        std::fprintf(stderr, "error: --draft: %s\n", std::string(loaded.status().message()).c_str());
        return 1;
      }
      draft_model = *std::move(loaded);
      draft = std::make_unique<LlamaModel>(*draft_model, ops);
    }
    SpecBenchOptions options;
    options.batches = batches;
    options.contexts = contexts;
    options.modes = modes;
    options.new_tokens = absl::GetFlag(FLAGS_new_tokens);
    options.sinks = absl::GetFlag(FLAGS_sinks);
    options.window = absl::GetFlag(FLAGS_window);
    options.label = draft_path == "self" ? "self" : draft_path.substr(draft_path.find_last_of('/') + 1);
    std::printf("\n%s\n", path.c_str());
    nlohmann::json rows = RunSpecBench(target, draft ? *draft : target, tokenizer, options, bandwidth);
    for (auto& row : rows) {
      row["model"] = path.substr(path.find_last_of('/') + 1);
      all.push_back(row);
    }
  }
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream(out + ".json") << nlohmann::json{{"backend", ops.name()}, {"rows", all}}.dump(2) << "\n";
    std::ofstream csv(out + ".csv");
    csv << "model,draft,batch,context,mode,tokens_per_second,tokens_per_step,accepted_per_step,speedup_over_plain\n";
    for (const auto& r : all) {
      csv << absl::StrFormat("%s,%s,%d,%d,%s,%.3f,%.4f,%.4f,%.4f\n", r["model"].get<std::string>(),
                             r["draft"].get<std::string>(), r["batch"].get<int>(), r["context"].get<int>(),
                             r["mode"].get<std::string>(), r["tokens_per_second"].get<double>(),
                             r["tokens_per_step"].get<double>(), r["accepted_per_step"].get<double>(),
                             r["speedup_over_plain"].get<double>());
    }
    std::printf("\nwrote %s.json and %s.csv\n", out.c_str(), out.c_str());
  }
  return 0;
}

int Run() {
  const std::vector<std::string> models = absl::GetFlag(FLAGS_model);
  if (models.empty()) {
    std::fprintf(stderr, "error: --model is required (one or more model files)\n");
    return 1;
  }
  const std::vector<int> batches = ParseList(absl::GetFlag(FLAGS_batches), "batches");
  const std::vector<int> contexts = ParseList(absl::GetFlag(FLAGS_contexts), "contexts");
  const int steps = std::max(1, absl::GetFlag(FLAGS_steps));
  std::unique_ptr<Ops> ops = MakeCpuOps(absl::GetFlag(FLAGS_threads));
  if (absl::GetFlag(FLAGS_mode) == "grpc") {
    GrpcBenchOptions grpc;
    grpc.models = models;
    grpc.tokenizer = absl::GetFlag(FLAGS_tokenizer);
    grpc.server = absl::GetFlag(FLAGS_server);
    grpc.spawn = absl::GetFlag(FLAGS_spawn);
    grpc.bin_dir = absl::GetFlag(FLAGS_bin_dir);
    grpc.clients = ParseList(absl::GetFlag(FLAGS_clients), "clients");
    grpc.modes = absl::StrSplit(absl::GetFlag(FLAGS_spec_modes), ',', absl::SkipEmpty());
    grpc.new_tokens = absl::GetFlag(FLAGS_new_tokens);
    grpc.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    grpc.repeats = absl::GetFlag(FLAGS_repeats);
    grpc.threads = absl::GetFlag(FLAGS_threads);
    grpc.sinks = absl::GetFlag(FLAGS_sinks);
    grpc.window = absl::GetFlag(FLAGS_window);
    grpc.out = absl::GetFlag(FLAGS_out);
    return RunGrpcBench(grpc, *ops);
  }
  if (absl::GetFlag(FLAGS_mode) == "http") {
    HttpBenchOptions http;
    http.model = models.front();
    http.bin_dir = absl::GetFlag(FLAGS_bin_dir);
    http.clients = ParseList(absl::GetFlag(FLAGS_clients), "clients");
    const std::vector<std::string> modes = absl::StrSplit(absl::GetFlag(FLAGS_spec_modes), ',', absl::SkipEmpty());
    if (absl::GetFlag(FLAGS_spec_modes) != "off,chain:4,tree:16,auto" && !modes.empty()) http.mode = modes.front();
    http.new_tokens = absl::GetFlag(FLAGS_new_tokens);
    http.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    http.repeats = absl::GetFlag(FLAGS_repeats);
    http.threads = absl::GetFlag(FLAGS_threads);
    http.sinks = absl::GetFlag(FLAGS_sinks);
    http.window = absl::GetFlag(FLAGS_window);
    http.out = absl::GetFlag(FLAGS_out);
    return RunHttpBench(http, *ops);
  }
  std::fprintf(stderr, "measuring memory read bandwidth with %d threads...\n", ops->num_threads());
  const double bandwidth = MeasureReadBandwidth(ops->num_threads());
  std::printf("backend %s, memory read bandwidth %.2f GB/s\n", ops->name().c_str(),
              bandwidth / 1e9);

  if (absl::GetFlag(FLAGS_mode) == "spec") return RunSpec(models, batches, contexts, *ops, bandwidth);
  if (absl::GetFlag(FLAGS_mode) != "engine") {
    std::fprintf(stderr, "error: --mode '%s' is not engine, spec, grpc or http\n",
                 absl::GetFlag(FLAGS_mode).c_str());
    return 1;
  }
  std::vector<Row> rows;
  for (const std::string& path : models) {
    LoadOptions options;
    options.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
    auto model = LoadModel(path, options);
    if (!model.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    const ModelConfig& c = (*model)->config;
    LlamaModel llama(**model, *ops);
    const KvShape shape = llama.kv_shape();
    const double weight_bytes = WeightBytesPerStep(**model);
    const std::string name = path.substr(path.find_last_of('/') + 1);
    std::printf("\n%s: dim %d, %d layers, %d/%d heads, ffn %d, vocab %d, weights %.1f MB\n",
                name.c_str(), c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.ffn_dim,
                c.vocab_size, weight_bytes / 1e6);
    std::printf("%-8s %6s %8s %12s %12s %12s %10s\n", "kind", "batch", "context", "tokens/s",
                "step ms", "MB/step", "% of bw");
    Rng rng(1);
    std::vector<float> logits;

    // Prefill: one prompt of prefill_tokens tokens, in one forward.
    {
      const int n = std::min(absl::GetFlag(FLAGS_prefill_tokens), c.context_length - 1);
      std::vector<int32_t> tokens(n);
      for (int32_t& t : tokens) t = static_cast<int32_t>(rng.Next() % c.vocab_size);
      const std::vector<int32_t> last = {n - 1};
      std::vector<double> times;
      for (int r = 0; r < 3; ++r) {
        auto cache = MakeFullKvCache(shape);
        ForwardSequence seq{cache.get(), tokens, {}, {}, {}, last};
        const auto start = Clock::now();
        if (!llama.Forward({&seq, 1}, &logits).ok()) return 1;
        times.push_back(std::chrono::duration<double>(Clock::now() - start).count());
      }
      Row row{name, "prefill", 1, n, n / Median(times), Median(times), 0, 0};
      std::printf("%-8s %6d %8d %12.1f %12.2f %12s %10s\n", "prefill", 1, n,
                  row.tokens_per_second, row.step_seconds * 1e3, "-", "-");
      rows.push_back(row);
    }

    for (int context : contexts) {
      if (context >= c.context_length) {
        std::printf("(context %d skipped: the model's context is %d)\n", context, c.context_length);
        continue;
      }
      for (int batch : batches) {
        std::vector<std::unique_ptr<KvCache>> caches;
        std::vector<int32_t> tokens(batch);
        for (int b = 0; b < batch; ++b) {
          caches.push_back(MakeFullKvCache(shape));
          FillCache(*caches.back(), shape, context, rng);
          tokens[b] = static_cast<int32_t>(rng.Next() % c.vocab_size);
        }
        const std::vector<int32_t> row0 = {0};
        std::vector<ForwardSequence> seqs;
        for (int b = 0; b < batch; ++b) {
          seqs.push_back(ForwardSequence{caches[b].get(), std::span(&tokens[b], 1), {}, {}, {}, row0});
        }
        std::vector<double> times;
        for (int s = 0; s < steps + 1; ++s) {
          const auto start = Clock::now();
          if (!llama.Forward(seqs, &logits).ok()) return 1;
          const double t = std::chrono::duration<double>(Clock::now() - start).count();
          if (s > 0) times.push_back(t);  // the first step warms caches and scratch memory
          for (auto& cache : caches) cache->DropPending();  // context stays fixed
        }
        const double step = Median(times);
        const double kv_bytes =
            static_cast<double>(batch) * context * shape.n_layers * shape.kv_dim * 2 * sizeof(float);
        Row row{name, "decode", batch, context, batch / step, step, weight_bytes + kv_bytes, 0};
        row.bandwidth_fraction = row.bytes_per_step / step / bandwidth;
        std::printf("%-8s %6d %8d %12.1f %12.2f %12.1f %9.1f%%\n", "decode", batch, context,
                    row.tokens_per_second, step * 1e3, row.bytes_per_step / 1e6,
                    100 * row.bandwidth_fraction);
        std::fflush(stdout);
        rows.push_back(row);
      }
    }
  }

  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    nlohmann::json json = {{"backend", ops->name()}, {"memory_read_bandwidth_bytes_per_second", bandwidth}};
    std::ofstream csv(out + ".csv");
    csv << "model,kind,batch,context,tokens_per_second,step_seconds,bytes_per_step,bandwidth_fraction\n";
    for (const Row& r : rows) {
      json["rows"].push_back({{"model", r.model}, {"kind", r.kind}, {"batch", r.batch},
                              {"context", r.context}, {"tokens_per_second", r.tokens_per_second},
                              {"step_seconds", r.step_seconds}, {"bytes_per_step", r.bytes_per_step},
                              {"bandwidth_fraction", r.bandwidth_fraction}});
      csv << absl::StrFormat("%s,%s,%d,%d,%.3f,%.6f,%.0f,%.4f\n", r.model, r.kind, r.batch,
                             r.context, r.tokens_per_second, r.step_seconds, r.bytes_per_step,
                             r.bandwidth_fraction);
    }
    std::ofstream(out + ".json") << json.dump(2) << "\n";
    std::printf("\nwrote %s.json and %s.csv\n", out.c_str(), out.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::ParseCommandLine(
      argc, argv,
      "Measures decode and prefill throughput over batch sizes and context lengths.\n"
      "  specserve-bench --model ../shared/models/stories260K.gguf --batches 1,8,32,64 "
      "--contexts 128,256,512,1024 --out results\n"
      "  specserve-bench --mode grpc --spawn serve,split --model ../shared/models/stories260K.gguf "
      "--clients 1,16,64 --spec_modes off,auto\n"
      "  specserve-bench --mode http --model ../shared/models/stories260K.gguf --clients 1,16,64 "
      "--spec_modes off");
  return specserve::Run();
}
