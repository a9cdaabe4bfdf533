#include "bench/spec_bench.h"

#include <chrono>
#include <cstdio>

#include "common/engine/llama_model.h"
#include "common/engine/batch_generator.h"
#include "common/speculation/spec_engine.h"

namespace specserve {
namespace {

// Real text for the contexts: the target's own greedy continuation of a few
// story openings (what a served model sees), cut to length.
std::vector<std::vector<int32_t>> MakeContexts(LlamaModel& target, const Tokenizer& tokenizer,
                                               int length, int count) {
  const char* openings[] = {"Once upon a time", "One day, a little boy", "The sun was shining",
                            "Lily and Ben were", "There was a big tree", "Tom liked to"};
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

}  // namespace

nlohmann::json RunSpecBench(LlamaModel& target, LlamaModel& draft, const Tokenizer& tokenizer,
                            const SpecBenchOptions& options, double bandwidth) {
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\nspeculative decoding, draft %s, sinks %d, window %d, %d new tokens per sequence\n",
              options.label.c_str(), options.sinks, options.window, options.new_tokens);
  std::printf("%6s %8s %-10s %12s %10s %10s %9s %s\n", "batch", "context", "mode", "tokens/s",
              "tok/step", "accepted", "speedup", "acceptance by position");
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
      double baseline = 0;
      for (const std::string& mode : options.modes) {
        SpecEngineOptions eo;
        eo.spec = *ParseSpecMode(mode);
        eo.sinks = options.sinks;
        eo.window = options.window;
        eo.bandwidth_bytes_per_second = bandwidth;
        auto engine = *SpecEngine::Create(target, draft, eo);
        for (int b = 0; b < batch; ++b) {
          GenerationRequest r;
          r.prompt = contexts[b];
          r.max_new_tokens = options.new_tokens;
          r.stop_at_eos = false;
          (void)engine->Add(r);
        }
        // Prefill first (not timed as decode), then decode to the end.
        while (engine->HasLive()) {
          if (!engine->Step().ok()) break;
        }
        const double tps = engine->decode_seconds() > 0
                               ? engine->decoded_tokens() / engine->decode_seconds()
                               : 0;
        if (mode == "off") baseline = tps;
        const AcceptanceStats& acc = engine->planner().acceptance();
        std::string by_position;
        nlohmann::json acceptance = nlohmann::json::array();
        for (int k = 0; k < std::min(acc.k(), 4); ++k) {
          const double p = acc.visits(k) ? static_cast<double>(acc.hits(k)) / acc.visits(k) : 0;
          acceptance.push_back(p);
          char buf[32];
          std::snprintf(buf, sizeof(buf), "%s%.2f", k ? " " : "", p);
          by_position += buf;
        }
        const double speedup = baseline > 0 ? tps / baseline : 0;
        std::printf("%6d %8d %-10s %12.1f %10.2f %10.2f %8.2fx %s\n", batch, context, mode.c_str(),
                    tps, engine->mean_tokens_per_step(), engine->mean_accepted_per_step(), speedup,
                    by_position.c_str());
        std::fflush(stdout);
        rows.push_back({{"draft", options.label}, {"batch", batch}, {"context", context},
                        {"mode", mode}, {"tokens_per_second", tps},
                        {"tokens_per_step", engine->mean_tokens_per_step()},
                        {"accepted_per_step", engine->mean_accepted_per_step()},
                        {"speedup_over_plain", speedup}, {"acceptance_by_position", acceptance}});
      }
    }
  }
  return rows;
}

}  // namespace specserve
