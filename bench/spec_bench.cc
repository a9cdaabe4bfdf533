#include "bench/spec_bench.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/engine/pass_cost.h"
#include "common/speculation/spec_engine.h"

namespace specserve {
namespace {

// Real text for the contexts: the target's own greedy continuation of a few
// story openings (what a served model sees), cut to length.
std::vector<std::vector<int32_t>> MakeContexts(Model& target, const Tokenizer& tokenizer,
                                               int length, int count) {
  const char* openings[] = {"Once upon a time",  "One day, a little boy", "The sun was shining",
                            "Lily and Ben were", "There was a big tree",  "Tom liked to"};
  std::vector<std::vector<int32_t>> sources;
  BatchGenerator generator(target);
  std::vector<int> ids;
  for (const char* text : openings) {
    GenerationRequest r;
    r.prompt = tokenizer.Encode(text, true);
    r.max_new_tokens = length;
    r.stop_at_eos = false;
    r.sampling.temperature = 0.7f;  // varied text, not one greedy loop
    r.sampling.seed = sources.size() + ids.size();
    ids.push_back(*generator.Add(r));
  }
  while (generator.HasLive()) (void)generator.Step();
  for (int id : ids) sources.push_back(generator.state(id).tokens);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < count; ++i) {
    const auto& src = sources[i % sources.size()];
    // Different sequences start at different offsets so batches are not copies.
    const size_t start = (i / sources.size()) % 7;
    std::vector<int32_t> ctx(src.begin() + std::min(start, src.size() - 1), src.end());
    ctx.resize(std::min<size_t>(ctx.size(), length));
    while (static_cast<int>(ctx.size()) < length) ctx.push_back(ctx[ctx.size() % 16 + 1]);
    out.push_back(ctx);
  }
  return out;
}

// One run of one mode: decode throughput and what its steps cost on the roofline.
struct ModeRun {
  double tokens_per_second = 0;
  double tokens_per_step = 0, accepted_per_step = 0;
  // Over the speculated steps of the run's second half (acceptance settled): the
  // planner's expected tokens per step for its shapes, and what the steps gave.
  double predicted_tokens_per_step = 0, settled_tokens_per_step = 0;
  double roofline_seconds = 0;        // sum over decode steps of the passes' bounds
  double plain_roofline_seconds = 0;  // the same tokens decoded plainly, on the roofline
  std::vector<double> acceptance;     // by candidate position
};

ModeRun RunMode(Model& target, Model& draft, const std::vector<std::vector<int32_t>>& contexts,
                int batch, const std::string& mode, const SpecBenchOptions& options,
                const Roofline& roofline) {
  SpecEngineOptions eo;
  eo.spec = *ParseSpecMode(mode);
  eo.sinks = options.sinks;
  eo.window = options.window;
  eo.bandwidth_bytes_per_second = roofline.bandwidth;
  eo.flops_per_second = roofline.peak_flops;
  auto engine = *SpecEngine::Create(target, draft, eo);
  for (int b = 0; b < batch; ++b) {
    GenerationRequest r;
    r.prompt = contexts[b];
    r.max_new_tokens = options.new_tokens;
    r.stop_at_eos = false;
    (void)engine->Add(r);
  }
  ModeRun run;
  const double context_start = static_cast<double>(contexts[0].size());
  double predicted = 0, measured = 0;
  int speculated_steps = 0;
  const double window_rows = options.sinks + options.window;
  auto bound = [&](const LoadedModel& m, const PassShape& shape) {
    return EstimatePass(m, shape).RooflineSeconds(roofline.bandwidth, roofline.peak_flops);
  };
  while (engine->HasLive()) {
    if (!engine->Step().ok()) break;
    const StepStats& step = engine->last_step();
    if (step.batch == 0) continue;  // a prefill step
    const double context = step.mean_context;
    const int width = std::max(1, step.verify_tokens_per_sequence);
    run.roofline_seconds += bound(target.loaded(), {step.batch, context, width, width});
    for (const PassTime& pass : step.draft_passes) {
      run.roofline_seconds +=
          bound(draft.loaded(), {step.batch, std::min(context, window_rows),
                                 pass.tokens_per_sequence, pass.tokens_per_sequence});
    }
    // Plain decoding would take one step per token of each sequence.
    const double plain_step = bound(target.loaded(), {step.batch, context, 1, 1});
    run.plain_roofline_seconds += plain_step * step.generated_tokens / step.batch;
    // Prediction against measurement once acceptance has settled: the second half
    // of the run (tokens past half of each sequence's new tokens).
    if (step.speculated && step.mean_context - context_start >= options.new_tokens / 2.0) {
      predicted += step.predicted_tokens;
      measured += static_cast<double>(step.generated_tokens) / step.batch;
      ++speculated_steps;
    }
  }
  run.tokens_per_second =
      engine->decode_seconds() > 0 ? engine->decoded_tokens() / engine->decode_seconds() : 0;
  run.tokens_per_step = engine->mean_tokens_per_step();
  run.accepted_per_step = engine->mean_accepted_per_step();
  run.predicted_tokens_per_step = speculated_steps ? predicted / speculated_steps : 1.0;
  run.settled_tokens_per_step = speculated_steps ? measured / speculated_steps : 1.0;
  const AcceptanceStats& acc = engine->planner().acceptance();
  for (int k = 0; k < std::min(acc.k(), 4); ++k) {
    run.acceptance.push_back(acc.visits(k) ? static_cast<double>(acc.hits(k)) / acc.visits(k) : 0);
  }
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

nlohmann::json RunSpecBench(Model& target, Model& draft, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, const Roofline& roofline) {
  nlohmann::json rows = nlohmann::json::array();
  std::printf(
      "\nspeculative decoding, draft %s, sinks %d, window %d, %d new tokens per sequence, "
      "%d interleaved runs per mode (medians)\n",
      options.label.c_str(), options.sinks, options.window, options.new_tokens,
      options.repetitions);
  std::printf("%6s %8s %-10s %11s %9s %9s %9s %9s %9s %9s  %s\n", "batch", "context", "mode",
              "tokens/s", "tok/step", "settled", "predicted", "speedup", "roofline", "of bound",
              "acceptance by position");
  for (int context : options.contexts) {
    if (context + options.new_tokens + 80 >= target.config().context_length) {
      std::printf("(context %d skipped: the model's context is %d)\n", context,
                  target.config().context_length);
      continue;
    }
    int max_batch = 0;
    for (int b : options.batches) max_batch = std::max(max_batch, b);
    const auto contexts = MakeContexts(target, tokenizer, context, max_batch);
    for (int batch : options.batches) {
      // runs[mode][repetition], modes rotated each repetition so drift hits all alike.
      std::vector<std::vector<ModeRun>> runs(options.modes.size());
      for (int rep = 0; rep < std::max(1, options.repetitions); ++rep) {
        for (size_t k = 0; k < options.modes.size(); ++k) {
          const size_t m = (k + rep) % options.modes.size();
          runs[m].push_back(
              RunMode(target, draft, contexts, batch, options.modes[m], options, roofline));
        }
      }
      auto median_of = [&](size_t m, double ModeRun::*field) {
        std::vector<double> v;
        for (const ModeRun& r : runs[m]) v.push_back(r.*field);
        return Median(v);
      };
      const double baseline = median_of(0, &ModeRun::tokens_per_second);
      for (size_t m = 0; m < options.modes.size(); ++m) {
        const double tps = median_of(m, &ModeRun::tokens_per_second);
        const double speedup = baseline > 0 ? tps / baseline : 0;
        // What the roofline predicts for the steps run: plain-decoding bound time
        // for the same tokens over the bound time of the passes this mode ran.
        const double predicted_speedup = median_of(m, &ModeRun::plain_roofline_seconds) /
                                         std::max(1e-12, median_of(m, &ModeRun::roofline_seconds));
        std::string by_position;
        nlohmann::json acceptance = nlohmann::json::array();
        for (size_t k = 0; k < runs[m].back().acceptance.size(); ++k) {
          const double p = runs[m].back().acceptance[k];
          acceptance.push_back(p);
          by_position += absl::StrFormat("%s%.2f", k ? " " : "", p);
        }
        const double tokens_per_step = median_of(m, &ModeRun::tokens_per_step);
        const double predicted_tokens = median_of(m, &ModeRun::predicted_tokens_per_step);
        const double settled_tokens = median_of(m, &ModeRun::settled_tokens_per_step);
        std::printf("%6d %8d %-10s %11.1f %9.2f %9.2f %9.2f %8.2fx %8.2fx %8.0f%%  %s\n", batch,
                    context, options.modes[m].c_str(), tps, tokens_per_step, settled_tokens,
                    predicted_tokens, speedup, predicted_speedup,
                    predicted_speedup > 0 ? 100 * speedup / predicted_speedup : 0,
                    by_position.c_str());
        std::fflush(stdout);
        rows.push_back({{"draft", options.label},
                        {"batch", batch},
                        {"context", context},
                        {"mode", options.modes[m]},
                        {"tokens_per_second", tps},
                        {"tokens_per_step", tokens_per_step},
                        {"settled_tokens_per_step", settled_tokens},
                        {"predicted_tokens_per_step", predicted_tokens},
                        {"accepted_per_step", median_of(m, &ModeRun::accepted_per_step)},
                        {"speedup_over_plain", speedup},
                        {"roofline_predicted_speedup", predicted_speedup},
                        {"repetitions", runs[m].size()},
                        {"acceptance_by_position", acceptance}});
      }
    }
  }
  return rows;
}

}  // namespace specserve
