#include "bench/spec_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_format.h"
#include "bench/step_log.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/engine/pass_cost.h"
#include "common/speculation/spec_engine.h"

namespace specserve {
namespace {

// Real text for the contexts: the target's own sampled continuation of a few
// story openings (what a served model sees), cut to length; or, for the
// repetitive workload, half of that length said twice (BOS, passage, passage),
// so that the continuation quotes the prompt.
std::vector<std::vector<int32_t>> MakeContexts(Model& target, const Tokenizer& tokenizer,
                                               int length, int count, BenchWorkload workload) {
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
    if (workload == BenchWorkload::kRepetitive && src.size() > start + 2) {
      const size_t half = static_cast<size_t>(length + 1) / 2;
      const auto first = src.begin() + 1 + start;  // past the BOS
      const std::vector<int32_t> passage(first, first + std::min(half, src.size() - 1 - start));
      std::vector<int32_t> ctx = {src[0]};
      while (static_cast<int>(ctx.size()) < length) {
        ctx.insert(ctx.end(), passage.begin(), passage.end());
      }
      ctx.resize(length);
      out.push_back(ctx);
      continue;
    }
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
  std::vector<double> acceptance;     // by candidate rank (NaN: never drafted)
  // Where a decode step's time goes (means over the decode steps, ms): the whole
  // step, the draft's passes and the target's verify (the rest is the engine's own).
  double step_ms = 0, draft_ms = 0, verify_ms = 0;
};

// One column of the table: a speculation mode with a drafter (none for "off").
struct Variant {
  std::string mode;
  const BenchDraft* draft = nullptr;
  std::string name() const { return draft ? draft->label + " " + mode : mode; }
};

// `run`: the repetition (its steps go to --step_log), or -1 for an untimed run.
ModeRun RunMode(Model& target, const std::vector<std::vector<int32_t>>& contexts, int batch,
                const Variant& variant, const SpecBenchOptions& options, const Roofline& roofline,
                int run_index) {
  const bool ngram = variant.draft && variant.draft->kind == DrafterKind::kNgram;
  Model& draft = variant.draft && variant.draft->model ? *variant.draft->model : target;
  SpecEngineOptions eo;
  eo.spec = *ParseSpecMode(variant.mode);
  eo.drafter = ngram ? DrafterKind::kNgram : DrafterKind::kModel;
  eo.sinks = options.sinks;
  eo.window = options.window;
  eo.draft_takes_target_rows = !(variant.draft && variant.draft->own_rows);
  eo.prefill_before_decode = true;  // every decode step at the cell's batch size
  // The planner's prior: this machine's bandwidth, but not its FMA peak, which
  // no pass reaches (the prior's rate is what a pass's arithmetic runs at: a
  // verify's extra rows at stories260K 1-2 x 128 run at ~50-90 GFLOP/s where
  // the peak reads 450); priced at the peak, an extra row looked free and a
  // fresh engine explored chains at 1-2 x 128 that cost 4-8% of the run. The
  // engine's default rate stands until prefill calibrates it, as in a server.
  eo.bandwidth_bytes_per_second = roofline.bandwidth;
  auto engine = *SpecEngine::Create(target, draft, eo);
  auto add_batch = [&] {
    std::vector<int> ids;
    for (int b = 0; b < batch; ++b) {
      GenerationRequest r;
      r.prompt = contexts[b];
      r.max_new_tokens = options.new_tokens;
      r.stop_at_eos = false;
      if (auto id = engine->Add(r); id.ok()) ids.push_back(*id);
    }
    return ids;
  };
  if (options.warm) {
    // The same cell once, untimed: the planner then starts the timed run with
    // the passes timed and the acceptance measured, as in a running server.
    const std::vector<int> ids = add_batch();
    while (engine->HasLive() && engine->Step().ok()) {
    }
    for (int id : ids) engine->Remove(id);
  }
  (void)add_batch();
  ModeRun run;
  const double context_start = static_cast<double>(contexts[0].size());
  double predicted = 0, measured = 0;
  int speculated_steps = 0, decode_steps = 0;
  // Per sequence per decode step, over this run's steps (the engine's own means
  // would include a warm-up generation).
  int64_t sequence_steps = 0, generated = 0, accepted = 0;
  // Throughput at the cell's batch size: the decode steps before the first
  // sequence finishes. Speculative sequences finish at different steps, and the
  // tail of smaller batches that follows is a property of this benchmark's fixed
  // lengths, not of serving (where new requests fill the batch).
  double full_seconds = 0;
  int64_t full_tokens = 0;
  int logged_steps = 0;
  const double window_rows = options.sinks + options.window;
  auto bound = [&](const LoadedModel& m, const PassShape& shape) {
    return EstimatePass(m, shape).RooflineSeconds(roofline.bandwidth, roofline.peak_flops);
  };
  while (engine->HasLive()) {
    const auto step_start = std::chrono::steady_clock::now();
    if (!engine->Step().ok()) break;
    // The whole step: the passes and the engine's own work between them
    // (planning, sampling, acceptance, the draft's bookkeeping).
    const double step_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
    const StepStats& step = engine->last_step();
    if (step.batch == 0) continue;  // a prefill step
    if (options.step_log != nullptr && run_index >= 0) {
      const StepLogRun labels{options.model_label,
                              variant.draft ? variant.draft->label : "none",
                              variant.mode,
                              static_cast<int>(contexts[0].size()),
                              batch,
                              run_index};
      WriteStepLogRow(*options.step_log, labels, logged_steps++, step, step_seconds);
    }
    sequence_steps += step.batch;
    generated += step.generated_tokens;
    accepted += step.accepted_tokens;
    if (step.batch < batch) continue;  // the tail (see full_seconds)
    ++decode_steps;
    run.draft_ms += 1e3 * step.draft_seconds;
    run.verify_ms += 1e3 * step.verify_seconds;
    full_seconds += step_seconds;
    full_tokens += step.generated_tokens;
    const double context = step.mean_context;
    const int width = std::max(1, step.verify_tokens_per_sequence);
    run.roofline_seconds += bound(target.loaded(), {step.batch, context, width, width});
    // An n-gram draft reads no weights: its passes are not on the roofline.
    for (const PassTime& pass : ngram ? std::vector<PassTime>{} : step.draft_passes) {
      run.roofline_seconds +=
          bound(draft.loaded(), {step.batch, std::min(context, window_rows),
                                 pass.tokens_per_sequence, pass.tokens_per_sequence});
    }
    // Plain decoding would take one step per token of each sequence.
    const double plain_step = bound(target.loaded(), {step.batch, context, 1, 1});
    run.plain_roofline_seconds += plain_step * step.generated_tokens / step.batch;
    // Prediction against measurement once acceptance has settled: the second half
    // of the run (tokens past half of each sequence's new tokens), over the
    // sequences that speculated (a probe's few: the plan's figure is theirs;
    // counted over the whole batch, a probe of 4 tokens "gave" 1.1).
    if (step.speculated_sequences > 0 &&
        step.mean_context - context_start >= options.new_tokens / 2.0) {
      predicted += step.predicted_tokens;
      measured += static_cast<double>(step.speculated_generated_tokens) / step.speculated_sequences;
      ++speculated_steps;
    }
  }
  run.tokens_per_second = full_seconds > 0 ? full_tokens / full_seconds : 0;
  if (decode_steps > 0) {
    run.step_ms = 1e3 * full_seconds / decode_steps;
    run.draft_ms /= decode_steps;
    run.verify_ms /= decode_steps;
  }
  run.tokens_per_step = sequence_steps ? static_cast<double>(generated) / sequence_steps : 0;
  run.accepted_per_step = sequence_steps ? static_cast<double>(accepted) / sequence_steps : 0;
  run.predicted_tokens_per_step = speculated_steps ? predicted / speculated_steps : 1.0;
  run.settled_tokens_per_step = speculated_steps ? measured / speculated_steps : 1.0;
  const AcceptanceStats& acc = engine->planner().acceptance();
  for (int k = 0; k < std::min(acc.k(), 4); ++k) {
    // NaN: no child of this rank was ever drafted (a chain drafts only first children).
    run.acceptance.push_back(acc.visits(k) ? static_cast<double>(acc.hits(k)) / acc.visits(k)
                                           : std::nan(""));
  }
  return run;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

nlohmann::json RunSpecBench(Model& target, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, const Roofline& roofline) {
  nlohmann::json rows = nlohmann::json::array();
  std::vector<Variant> variants;
  std::string labels;
  for (const BenchDraft& d : options.drafts) labels += (labels.empty() ? "" : ", ") + d.label;
  for (const std::string& mode : options.modes) {
    if (mode == "off") {
      variants.push_back({mode, nullptr});
      continue;
    }
    for (const BenchDraft& d : options.drafts) variants.push_back({mode, &d});
  }
  const bool repetitive = options.workload == BenchWorkload::kRepetitive;
  std::printf(
      "\nspeculative decoding, %s workload, drafts %s, sinks %d, window %d, %d new tokens per "
      "sequence, %d interleaved runs per mode (medians; runs: the lowest and highest speedup of "
      "one run against its side-by-side baseline run) after an untimed plain run per cell%s; "
      "tokens/s and step times over the decode steps at the full batch (before the first "
      "sequence finishes), a step timed whole (step ms - draft - verify: the engine's own "
      "work)\n",
      repetitive ? "repetitive (a passage said twice)" : "stories", labels.c_str(), options.sinks,
      options.window, options.new_tokens, options.repetitions,
      options.warm ? ", each run's engine warmed by an untimed generation of the cell (--warm)"
                   : ", each run a fresh engine");
  std::printf("%6s %8s %-16s %11s %9s %9s %9s %9s %11s %9s %9s %8s %8s %8s  %s\n", "batch",
              "context", "mode", "tokens/s", "tok/step", "settled", "predicted", "speedup", "runs",
              "roofline", "of bound", "step ms", "draft", "verify",
              "acceptance of children by rank");
  for (int context : options.contexts) {
    if (context + options.new_tokens + 80 >= target.config().context_length) {
      std::printf("(context %d skipped: the model's context is %d)\n", context,
                  target.config().context_length);
      continue;
    }
    int max_batch = 0;
    for (int b : options.batches) max_batch = std::max(max_batch, b);
    const auto contexts = MakeContexts(target, tokenizer, context, max_batch, options.workload);
    for (int batch : options.batches) {
      // runs[variant][repetition], variants rotated each repetition so drift hits all alike.
      std::vector<std::vector<ModeRun>> runs(variants.size());
      // An untimed plain run first: the first run of a cell faults in fresh KV
      // blocks (about 10 us a page on these VMs; one step at 32 x 1024 took
      // 150 ms), which the pool then keeps for the runs that count. Without it
      // the first variant's first run (plain decoding) read up to 2x slow.
      (void)RunMode(target, contexts, batch, Variant{"off", nullptr}, options, roofline, -1);
      for (int rep = 0; rep < std::max(1, options.repetitions); ++rep) {
        for (size_t k = 0; k < variants.size(); ++k) {
          const size_t m = (k + rep) % variants.size();
          runs[m].push_back(RunMode(target, contexts, batch, variants[m], options, roofline, rep));
        }
      }
      auto median_of = [&](size_t m, double ModeRun::*field) {
        std::vector<double> v;
        for (const ModeRun& r : runs[m]) v.push_back(r.*field);
        return Median(v);
      };
      const double baseline = median_of(0, &ModeRun::tokens_per_second);
      for (size_t m = 0; m < variants.size(); ++m) {
        const double tps = median_of(m, &ModeRun::tokens_per_second);
        const double speedup = baseline > 0 ? tps / baseline : 0;
        // Each repetition's own speedup, against the baseline's run of the same
        // repetition (run side by side): their spread shows how far the
        // machine's noise moves the median.
        std::vector<double> per_run;
        for (size_t rep = 0; rep < runs[m].size(); ++rep) {
          const double base = runs[0][rep].tokens_per_second;
          per_run.push_back(base > 0 ? runs[m][rep].tokens_per_second / base : 0);
        }
        const auto [low, high] = std::minmax_element(per_run.begin(), per_run.end());
        const std::string spread = absl::StrFormat("%.2f-%.2f", *low, *high);
        // What the roofline predicts for the steps run: plain-decoding bound time
        // for the same tokens over the bound time of the passes this mode ran.
        const double predicted_speedup = median_of(m, &ModeRun::plain_roofline_seconds) /
                                         std::max(1e-12, median_of(m, &ModeRun::roofline_seconds));
        std::string by_position;
        nlohmann::json acceptance = nlohmann::json::array();
        for (size_t k = 0; k < runs[m].back().acceptance.size(); ++k) {
          const double p = runs[m].back().acceptance[k];
          if (std::isnan(p)) {
            acceptance.push_back(nullptr);
            by_position += absl::StrFormat("%s   -", k ? " " : "");
          } else {
            acceptance.push_back(p);
            by_position += absl::StrFormat("%s%.2f", k ? " " : "", p);
          }
        }
        const double tokens_per_step = median_of(m, &ModeRun::tokens_per_step);
        const double predicted_tokens = median_of(m, &ModeRun::predicted_tokens_per_step);
        const double settled_tokens = median_of(m, &ModeRun::settled_tokens_per_step);
        const double step_ms = median_of(m, &ModeRun::step_ms);
        const double draft_ms = median_of(m, &ModeRun::draft_ms);
        const double verify_ms = median_of(m, &ModeRun::verify_ms);
        std::printf(
            "%6d %8d %-16s %11.1f %9.2f %9.2f %9.2f %8.2fx %11s %8.2fx %8.0f%% %8.2f %8.2f %8.2f  "
            "%s\n",
            batch, context, variants[m].name().c_str(), tps, tokens_per_step, settled_tokens,
            predicted_tokens, speedup, spread.c_str(), predicted_speedup,
            predicted_speedup > 0 ? 100 * speedup / predicted_speedup : 0, step_ms, draft_ms,
            verify_ms, by_position.c_str());
        std::fflush(stdout);
        rows.push_back({{"draft", variants[m].draft ? variants[m].draft->label : "none"},
                        {"workload", repetitive ? "repetitive" : "stories"},
                        {"batch", batch},
                        {"context", context},
                        {"mode", variants[m].mode},
                        {"tokens_per_second", tps},
                        {"tokens_per_step", tokens_per_step},
                        {"settled_tokens_per_step", settled_tokens},
                        {"predicted_tokens_per_step", predicted_tokens},
                        {"accepted_per_step", median_of(m, &ModeRun::accepted_per_step)},
                        {"speedup_over_plain", speedup},
                        {"speedup_per_run", per_run},
                        {"roofline_predicted_speedup", predicted_speedup},
                        {"repetitions", runs[m].size()},
                        {"warm", options.warm},
                        {"step_ms", step_ms},
                        {"draft_ms", draft_ms},
                        {"verify_ms", verify_ms},
                        {"acceptance_by_position", acceptance}});
      }
    }
  }
  return rows;
}

}  // namespace specserve
