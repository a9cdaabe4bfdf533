// specserve-bench: decode and prefill throughput of the engine over a grid of
// batch sizes and context lengths, as a roofline (bench/roofline.h): each pass
// kind's bytes and FLOPs against the memory read bandwidth and the peak FLOP/s
// measured in the same run, and where its time goes. Figures are ratios within
// one run (machines are noisy).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "bench/grpc_bench.h"
#include "bench/http_bench.h"
#include "bench/memory_bandwidth.h"
#include "bench/peak_flops.h"
#include "bench/roofline.h"
#include "bench/spec_bench.h"
#include "bench/step_log.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "common/speculation/planner.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/cli.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::vector<std::string>, model, {}, "Model files (comma-separated)");
ABSL_FLAG(std::string, tokenizer, "", "llama2.c tokenizer.bin for .bin models");
ABSL_FLAG(std::string, batches, "1,8,32,64", "Batch sizes (comma-separated)");
ABSL_FLAG(std::string, contexts, "128,256,512,1024", "Context lengths (comma-separated)");
ABSL_FLAG(int, steps, 8, "Timed decode steps per grid cell (median reported)");
ABSL_FLAG(int, prefill_tokens, 512, "Prompt length of the prefill measurement");
ABSL_FLAG(int, threads, 0, "CPU threads (0 = all cores)");
ABSL_FLAG(int, verify_nodes, 5,
          "--mode engine: tree nodes per sequence of the verify pass (a chain)");
ABSL_FLAG(int, draft_width, 4, "--mode engine: nodes per sequence of the draft-level pass");
ABSL_FLAG(std::string, passes, "prefill,decode,verify,draft",
          "--mode engine: the pass kinds timed (comma-separated: prefill, decode, verify, "
          "draft); one kind alone, e.g. under perf record, runs nothing else in the loop (its "
          "data then stays in cache between steps, where other passes would evict it)");
ABSL_FLAG(std::string, logits, "reduced",
          "--mode engine: how decode, verify and draft take their logits: reduced (from "
          "vocabulary chunks, each row's argmax or top tokens, as served) or full (rows x vocab "
          "floats, as before)");
ABSL_FLAG(std::string, kv_type, "f32", "KV cache element type: f32 or bf16");
ABSL_FLAG(std::string, clock, "wall",
          "--mode engine: wall, or cpu: pass times, bandwidth and peak FLOP/s per CPU-second of "
          "this process (divided by the threads), for a machine shared with other work "
          "(exact with --threads 1)");
ABSL_FLAG(std::string, out, "", "Write results to OUT.json and OUT.csv");
ABSL_FLAG(std::string, mode, "engine",
          "engine: plain decode/prefill throughput and bandwidth use; spec: plain vs chain vs "
          "tree vs auto speculative decoding over the grid; grpc: --clients concurrent gRPC "
          "clients against the same workload in-process, speculative vs plain through the "
          "services; http: the same workload over the HTTP API (SSE), gRPC and in-process, "
          "with HTTP's overhead per request and per streamed token");
ABSL_FLAG(std::string, spec_modes, "off,chain:4,tree:16,auto", "Modes compared by --mode spec");
ABSL_FLAG(std::vector<std::string>, draft, {"self"},
          "--mode spec: the drafters compared, comma-separated: self (the target's weights "
          "with a window KV cache of the target's own rows, MagicDec), self:own (the same, "
          "but the draft computes its window's rows itself, as a separate draft service "
          "does), ngram (prompt lookup, no model), or a draft model file");
ABSL_FLAG(std::string, workload, "stories",
          "--mode spec: stories (the target's own sampled text as contexts), or repetitive "
          "(a passage of half the context said twice, so the continuation quotes the prompt)");
ABSL_FLAG(int, sinks, 16, "--mode spec: draft sink tokens");
ABSL_FLAG(int, window, 64, "--mode spec: draft window tokens");
ABSL_FLAG(int, repetitions, 3,
          "--mode spec: runs of every mode per cell, interleaved (medians are reported)");
ABSL_FLAG(int, new_tokens, 128, "--mode spec, grpc: tokens generated per sequence");
ABSL_FLAG(bool, warm, false,
          "--mode spec: each run's engine first serves an untimed generation of the same cell, "
          "as a server that has been running similar requests (its planner has timed the passes "
          "and measured the acceptance); without it a run is a freshly started engine, whose "
          "one-time costs (auto's first exploration) count");
ABSL_FLAG(std::string, step_log, "",
          "--mode spec, and --mode grpc's in-process runs: write every decode step of the timed "
          "runs to this CSV file: the tree "
          "the planner chose (nodes, depth, exploring, sequences that speculated), the tokens it "
          "expected and gained per speculating sequence, and the draft passes', verify's and "
          "whole step's milliseconds (what auto chose, and what each choice cost)");
ABSL_FLAG(std::string, server, "",
          "--mode grpc: a running specserve-router or specserve-serve HOST:PORT to drive");
ABSL_FLAG(std::vector<std::string>, spawn, {},
          "--mode grpc: start these on 127.0.0.1 from --bin_dir and drive each in turn: "
          "serve (specserve-serve), split (specserve-target + specserve-draft + specserve-router), "
          "pipelined (split with the router's --pipeline), pipelined-noahead (the same with "
          "--draft-ahead=false)");
ABSL_FLAG(std::string, target_cpus, "",
          "--mode grpc --spawn split/pipelined: the target's CPUs (its --cpus), e.g. 0");
ABSL_FLAG(std::string, draft_model, "",
          "--mode grpc --spawn split/pipelined: the draft service's model file (e.g. a Q8_0 "
          "copy of the target); default: the target's");
ABSL_FLAG(std::string, draft_cpus, "",
          "--mode grpc --spawn split/pipelined: the draft's CPUs (its --cpus), e.g. 1");
ABSL_FLAG(std::string, bin_dir, "",
          "--mode grpc --spawn: the service binaries' folder "
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

// `step_log`: --step_log's file, open, its header written (null: none).
int RunSpec(const std::vector<std::string>& models, const std::vector<int>& batches,
            const std::vector<int>& contexts, Ops& ops, double bandwidth, double peak_flops,
            std::ostream* step_log) {
  nlohmann::json all = nlohmann::json::array();
  std::vector<std::string> modes = {"off"};
  for (absl::string_view m :
       absl::StrSplit(absl::GetFlag(FLAGS_spec_modes), ',', absl::SkipEmpty())) {
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
    target.set_kv_type(KvTypeFromName(absl::GetFlag(FLAGS_kv_type)).value_or(KvType::kF32));
    Tokenizer tokenizer((*model)->vocab);
    std::vector<std::unique_ptr<LoadedModel>> draft_models;
    std::vector<std::unique_ptr<LlamaModel>> draft_llamas;
    SpecBenchOptions options;
    for (const std::string& draft_flag : absl::GetFlag(FLAGS_draft)) {
      BenchDraft d;
      d.label = draft_flag;
      d.kind = DrafterKindOf(draft_flag);
      if (IsSelfDraft(draft_flag)) d.model = &target;
      d.own_rows = SelfDraftKeepsOwnRows(draft_flag);
      if (d.kind == DrafterKind::kModel && !IsSelfDraft(draft_flag)) {
        auto loaded = LoadModel(draft_flag, load_options);
        if (!loaded.ok()) {
          std::fprintf(stderr, "error: --draft '%s' is not self, ngram or a model file: %s\n",
                       draft_flag.c_str(), std::string(loaded.status().message()).c_str());
          return 1;
        }
        draft_models.push_back(*std::move(loaded));
        draft_llamas.push_back(std::make_unique<LlamaModel>(*draft_models.back(), ops));
        draft_llamas.back()->set_kv_type(target.kv_shape().type);
        d.model = draft_llamas.back().get();
        d.label = draft_flag.substr(draft_flag.find_last_of('/') + 1);
      }
      options.drafts.push_back(d);
    }
    if (options.drafts.empty()) {
      std::fprintf(stderr, "error: --draft names no drafter (self, ngram or a model file)\n");
      return 1;
    }
    const std::string workload = absl::GetFlag(FLAGS_workload);
    if (workload != "stories" && workload != "repetitive") {
      std::fprintf(stderr, "error: --workload '%s' is not stories or repetitive\n",
                   workload.c_str());
      return 1;
    }
    options.workload =
        workload == "repetitive" ? BenchWorkload::kRepetitive : BenchWorkload::kStories;
    options.batches = batches;
    options.contexts = contexts;
    options.modes = modes;
    options.new_tokens = absl::GetFlag(FLAGS_new_tokens);
    options.repetitions = absl::GetFlag(FLAGS_repetitions);
    options.warm = absl::GetFlag(FLAGS_warm);
    options.sinks = absl::GetFlag(FLAGS_sinks);
    options.window = absl::GetFlag(FLAGS_window);
    options.step_log = step_log;
    options.model_label = path.substr(path.find_last_of('/') + 1);
    std::printf("\n%s\n", path.c_str());
    nlohmann::json rows = RunSpecBench(target, tokenizer, options, Roofline{bandwidth, peak_flops});
    for (auto& row : rows) {
      row["model"] = path.substr(path.find_last_of('/') + 1);
      all.push_back(row);
    }
  }
  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    std::ofstream(out + ".json") << nlohmann::json{{"backend", ops.name()}, {"rows", all}}.dump(2)
                                 << "\n";
    std::ofstream csv(out + ".csv");
    csv << "model,draft,workload,batch,context,mode,tokens_per_second,tokens_per_step,"
           "predicted_tokens_per_step,accepted_per_step,speedup_over_plain,"
           "roofline_predicted_speedup\n";
    for (const auto& r : all) {
      csv << absl::StrFormat(
          "%s,%s,%s,%d,%d,%s,%.3f,%.4f,%.4f,%.4f,%.4f,%.4f\n", r["model"].get<std::string>(),
          r["draft"].get<std::string>(), r["workload"].get<std::string>(), r["batch"].get<int>(),
          r["context"].get<int>(), r["mode"].get<std::string>(),
          r["tokens_per_second"].get<double>(), r["tokens_per_step"].get<double>(),
          r["predicted_tokens_per_step"].get<double>(), r["accepted_per_step"].get<double>(),
          r["speedup_over_plain"].get<double>(), r["roofline_predicted_speedup"].get<double>());
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
  const std::optional<KvType> parsed_kv_type = KvTypeFromName(absl::GetFlag(FLAGS_kv_type));
  if (!parsed_kv_type) {
    std::fprintf(stderr, "error: --kv_type '%s' is not f32 or bf16\n",
                 absl::GetFlag(FLAGS_kv_type).c_str());
    return 1;
  }
  const KvType kv_type = *parsed_kv_type;
  // Opened before the measurements below: a path that cannot be written fails at once.
  std::ofstream step_log;
  if (const std::string log = absl::GetFlag(FLAGS_step_log); !log.empty()) {
    if (absl::GetFlag(FLAGS_mode) != "spec" && absl::GetFlag(FLAGS_mode) != "grpc") {
      std::fprintf(stderr, "error: --step_log is for --mode spec or grpc (not '%s')\n",
                   absl::GetFlag(FLAGS_mode).c_str());
      return 1;
    }
    step_log.open(log);
    if (!step_log) {
      std::fprintf(stderr, "error: --step_log: cannot write '%s'\n", log.c_str());
      return 1;
    }
    step_log << StepLogHeader() << "\n";
  }
  if (absl::GetFlag(FLAGS_mode) == "grpc") {
    GrpcBenchOptions grpc;
    grpc.models = models;
    grpc.tokenizer = absl::GetFlag(FLAGS_tokenizer);
    grpc.server = absl::GetFlag(FLAGS_server);
    grpc.spawn = absl::GetFlag(FLAGS_spawn);
    grpc.target_cpus = absl::GetFlag(FLAGS_target_cpus);
    grpc.draft_cpus = absl::GetFlag(FLAGS_draft_cpus);
    grpc.draft_model = absl::GetFlag(FLAGS_draft_model);
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
    grpc.step_log = step_log.is_open() ? &step_log : nullptr;
    return RunGrpcBench(grpc, *ops);
  }
  if (absl::GetFlag(FLAGS_mode) == "http") {
    HttpBenchOptions http;
    http.model = models.front();
    http.bin_dir = absl::GetFlag(FLAGS_bin_dir);
    http.clients = ParseList(absl::GetFlag(FLAGS_clients), "clients");
    const std::vector<std::string> modes =
        absl::StrSplit(absl::GetFlag(FLAGS_spec_modes), ',', absl::SkipEmpty());
    if (absl::GetFlag(FLAGS_spec_modes) != "off,chain:4,tree:16,auto" && !modes.empty())
      http.mode = modes.front();
    http.new_tokens = absl::GetFlag(FLAGS_new_tokens);
    http.prompt_tokens = absl::GetFlag(FLAGS_prompt_tokens);
    http.repeats = absl::GetFlag(FLAGS_repeats);
    http.threads = absl::GetFlag(FLAGS_threads);
    http.sinks = absl::GetFlag(FLAGS_sinks);
    http.window = absl::GetFlag(FLAGS_window);
    http.out = absl::GetFlag(FLAGS_out);
    return RunHttpBench(http, *ops);
  }
  const bool cpu_clock = absl::GetFlag(FLAGS_clock) == "cpu";
  if (!cpu_clock && absl::GetFlag(FLAGS_clock) != "wall") {
    std::fprintf(stderr, "error: --clock '%s' is not wall or cpu\n",
                 absl::GetFlag(FLAGS_clock).c_str());
    return 1;
  }
  const std::string logits = absl::GetFlag(FLAGS_logits);
  if (logits != "reduced" && logits != "full") {
    std::fprintf(stderr, "error: --logits '%s' is not reduced or full\n", logits.c_str());
    return 1;
  }
  const std::set<std::string> all_passes = RooflineOptions{}.passes;  // every kind
  std::set<std::string> passes;
  for (absl::string_view kind :
       absl::StrSplit(absl::GetFlag(FLAGS_passes), ',', absl::SkipWhitespace())) {
    if (!all_passes.contains(std::string(kind))) {
      std::fprintf(stderr, "error: --passes: '%s' is not one of %s\n", std::string(kind).c_str(),
                   absl::StrJoin(all_passes, ", ").c_str());
      return 1;
    }
    passes.insert(std::string(kind));
  }
  if (passes.empty()) {
    std::fprintf(stderr, "error: --passes names no pass kind\n");
    return 1;
  }
  std::fprintf(stderr, "measuring memory read bandwidth with %d threads...\n", ops->num_threads());
  const double bandwidth = cpu_clock ? MeasureReadBandwidthPerCpuSecond(ops->num_threads())
                                     : MeasureReadBandwidth(ops->num_threads());
  std::printf("backend %s, memory read bandwidth %.2f GB/s%s\n", ops->name().c_str(),
              bandwidth / 1e9, cpu_clock ? " per CPU-second (--clock cpu)" : "");

  if (absl::GetFlag(FLAGS_mode) == "spec") {
    const PeakFlops peak = MeasurePeakFlops(ops->num_threads());
    std::printf("peak fp32 %.1f GFLOP/s (FMA)\n", peak.fp32 / 1e9);
    return RunSpec(models, batches, contexts, *ops, bandwidth, peak.fp32,
                   step_log.is_open() ? &step_log : nullptr);
  }
  if (absl::GetFlag(FLAGS_mode) != "engine") {
    std::fprintf(stderr, "error: --mode '%s' is not engine, spec, grpc or http\n",
                 absl::GetFlag(FLAGS_mode).c_str());
    return 1;
  }
  const PeakFlops peak = MeasurePeakFlops(ops->num_threads());
  std::printf("peak fp32 %.1f GFLOP/s (FMA)", peak.fp32 / 1e9);
  if (peak.bf16 > 0) std::printf(", bf16 dot %.1f GFLOP/s", peak.bf16 / 1e9);
  std::printf("\n");
  RooflineOptions roofline;
  roofline.batches = batches;
  roofline.contexts = contexts;
  roofline.steps = steps;
  roofline.prefill_tokens = absl::GetFlag(FLAGS_prefill_tokens);
  roofline.verify_nodes = std::max(1, absl::GetFlag(FLAGS_verify_nodes));
  roofline.draft_width = std::max(1, absl::GetFlag(FLAGS_draft_width));
  roofline.sinks = absl::GetFlag(FLAGS_sinks);
  roofline.window = absl::GetFlag(FLAGS_window);
  roofline.cpu_clock = cpu_clock;
  roofline.threads = ops->num_threads();
  roofline.logits = logits;
  roofline.passes = passes;
  std::vector<RooflineRow> rows;
  for (const std::string& path : models) {
    LoadOptions options;
    options.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
    auto model = LoadModel(path, options);
    if (!model.ok()) {
      std::fprintf(stderr, "error: %s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    LlamaModel llama(**model, *ops);
    llama.set_kv_type(kv_type);
    const std::string name = path.substr(path.find_last_of('/') + 1);
    for (RooflineRow& r : RunRoofline(llama, name, roofline, bandwidth, peak)) rows.push_back(r);
  }

  if (const std::string out = absl::GetFlag(FLAGS_out); !out.empty()) {
    nlohmann::json json = {{"backend", ops->name()},
                           {"memory_read_bandwidth_bytes_per_second", bandwidth},
                           {"peak_fp32_flops", peak.fp32},
                           {"peak_bf16_flops", peak.bf16},
                           {"kv_type", absl::GetFlag(FLAGS_kv_type)}};
    std::ofstream csv(out + ".csv");
    csv << "model,kind,batch,context,rows_per_sequence,tokens_per_second,step_seconds,"
           "bytes_per_step,flops_per_step,bandwidth_fraction,bound,bound_fraction,matmul_share,"
           "attention_share,other_share,logits,logits_bytes\n";
    for (const RooflineRow& r : rows) {
      const double bw_fraction = r.bytes / r.seconds / bandwidth;
      json["rows"].push_back({{"model", r.model},
                              {"kind", r.kind},
                              {"batch", r.batch},
                              {"context", r.context},
                              {"rows_per_sequence", r.rows_per_sequence},
                              {"tokens_per_second", r.tokens_per_second()},
                              {"step_seconds", r.seconds},
                              {"bytes_per_step", r.bytes},
                              {"flops_per_step", r.flops},
                              {"bandwidth_fraction", bw_fraction},
                              {"bound", r.bound},
                              {"bound_fraction", r.bound_seconds / r.seconds},
                              {"matmul_share", r.matmul_share},
                              {"attention_share", r.attention_share},
                              {"other_share", r.other_share},
                              {"logits", r.logits},
                              {"logits_bytes", r.logits_bytes}});
      csv << absl::StrFormat(
          "%s,%s,%d,%d,%d,%.3f,%.6f,%.0f,%.0f,%.4f,%s,%.4f,%.3f,%.3f,%.3f,%s,%.0f\n", r.model,
          r.kind, r.batch, r.context, r.rows_per_sequence, r.tokens_per_second(), r.seconds,
          r.bytes, r.flops, bw_fraction, r.bound, r.bound_seconds / r.seconds, r.matmul_share,
          r.attention_share, r.other_share, r.logits, r.logits_bytes);
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
      "  specserve-bench --mode spec --workload repetitive --draft self,ngram "
      "--model ../shared/models/stories260K.gguf --batches 1,8 --contexts 128\n"
      "  specserve-bench --mode grpc --spawn serve,split --model ../shared/models/stories260K.gguf "
      "--clients 1,16,64 --spec_modes off,auto\n"
      "  specserve-bench --mode http --model ../shared/models/stories260K.gguf --clients 1,16,64 "
      "--spec_modes off");
  return specserve::Run();
}
