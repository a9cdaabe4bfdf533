// The lossless contract: speculative greedy output equals plain greedy output
// token for token, for every tree mode, window, batch and draft; speculative
// sampling keeps the target's distribution.
#include "common/speculation/spec_engine.h"

#include <cmath>
#include <map>
#include <memory>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 300;
  c.context_length = 160;
  c.rope_dim = 8;
  return c;
}

std::vector<int32_t> Prompt(int length, int salt) {
  std::vector<int32_t> p = {1};
  for (int i = 1; i < length; ++i) p.push_back(3 + (i * 37 + salt * 101) % 290);
  return p;
}

// Runs every request to completion with plain batched decoding.
std::vector<std::vector<int32_t>> Plain(LlamaModel& model,
                                        const std::vector<GenerationRequest>& requests) {
  BatchGenerator generator(model);
  std::vector<int> ids;
  for (const auto& r : requests) ids.push_back(*generator.Add(r));
  while (generator.HasLive()) EXPECT_TRUE(generator.Step().ok());
  std::vector<std::vector<int32_t>> out;
  for (int id : ids) out.push_back(generator.state(id).tokens);
  return out;
}

struct SpecRun {
  std::vector<std::vector<int32_t>> tokens;
  double mean_tokens_per_step = 0;
};

SpecRun Speculative(LlamaModel& target, LlamaModel& draft, const SpecEngineOptions& options,
                    const std::vector<GenerationRequest>& requests, int join_late = 0) {
  auto engine = SpecEngine::Create(target, draft, options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  std::vector<int> ids;
  const size_t first = requests.size() - join_late;
  for (size_t i = 0; i < first; ++i) ids.push_back(*(*engine)->Add(requests[i]));
  for (int step = 0; (*engine)->HasLive() || ids.size() < requests.size(); ++step) {
    if (step == 3) {
      for (size_t i = first; i < requests.size(); ++i) ids.push_back(*(*engine)->Add(requests[i]));
    }
    absl::Status st = (*engine)->Step();
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
  }
  SpecRun run;
  for (int id : ids) run.tokens.push_back((*engine)->state(id).tokens);
  run.mean_tokens_per_step = (*engine)->mean_tokens_per_step();
  return run;
}

class SpecEngineLosslessTest : public ::testing::Test {
 protected:
  SpecEngineLosslessTest()
      : vocab_(MakeSyntheticVocabulary(300)),
        target_model_(MakeRandomModel(TinyConfig(), TensorType::kF32, 11, vocab_)),
        draft_model_(MakeRandomModel(TinyConfig(), TensorType::kQ4_0, 11, vocab_)),
        ops_(MakeCpuOps(2)),
        target_(*target_model_, *ops_),
        draft_(*draft_model_, *ops_) {}

  Vocabulary vocab_;
  std::unique_ptr<LoadedModel> target_model_, draft_model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel target_, draft_;
};

TEST_F(SpecEngineLosslessTest, GreedyOutputEqualsPlainForEveryModeWindowAndBatch) {
  const char* modes[] = {"chain:1", "chain:4", "tree:3", "tree:12", "auto"};
  const std::pair<int, int> windows[] = {{0, 1}, {1, 2}, {4, 8}, {16, 256}};
  for (int batch : {1, 3, 16}) {
    std::vector<GenerationRequest> requests;
    for (int i = 0; i < batch; ++i) {
      GenerationRequest r;
      r.prompt = Prompt(2 + (i * 13) % 40, i);
      r.max_new_tokens = 12 + (i % 5) * 3;
      r.stop_at_eos = false;
      requests.push_back(r);
    }
    const auto plain = Plain(target_, requests);
    for (const char* mode : modes) {
      for (const auto& [sinks, window] : windows) {
        // The draft's window of the target's rows (MagicDec), or of its own.
        for (bool take_rows : {true, false}) {
          SpecEngineOptions options;
          options.spec = *ParseSpecMode(mode);
          options.sinks = sinks;
          options.window = window;
          options.draft_takes_target_rows = take_rows;
          const SpecRun run = Speculative(target_, target_, options, requests, batch > 1 ? 1 : 0);
          ASSERT_EQ(run.tokens, plain)
              << "self-speculation, mode " << mode << ", batch " << batch << ", sinks " << sinks
              << ", window " << window << (take_rows ? ", target's rows" : ", own rows");
        }
      }
    }
  }
}

TEST_F(SpecEngineLosslessTest, SpeculativeStepsPriceTheDraftsWorkBeyondItsPasses) {
  // The planner learns what a draft call costs beyond its one-token passes
  // (the drafter's own work between them), which it used to price at nothing.
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("chain:4");
  options.sinks = 4;
  options.window = 32;
  auto engine = SpecEngine::Create(target_, target_, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int i = 0; i < 8; ++i) {
    GenerationRequest r;
    r.prompt = Prompt(20, i);
    r.max_new_tokens = 60;
    r.stop_at_eos = false;
    ASSERT_TRUE((*engine)->Add(r).ok());
  }
  const StepClass c = ClassOf(8, 60);
  EXPECT_EQ((*engine)->planner().DraftStepExtra(c), 0.0) << "nothing measured yet";
  while ((*engine)->HasLive()) ASSERT_TRUE((*engine)->Step().ok());
  EXPECT_GT((*engine)->planner().DraftStepExtra(c), 0.0);
}

TEST_F(SpecEngineLosslessTest, TheFirstDecodeStepAfterAPrefillDoesNotPricePlainDecoding) {
  // It runs slow (new KV blocks, cold caches): plain's cost is timed from
  // the next step on.
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("off");
  auto engine = SpecEngine::Create(target_, target_, options);
  ASSERT_TRUE(engine.ok()) << engine.status();
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    r.prompt = Prompt(20, i);
    r.max_new_tokens = 8;
    r.stop_at_eos = false;
    ASSERT_TRUE((*engine)->Add(r).ok());
  }
  do {
    ASSERT_TRUE((*engine)->Step().ok());
  } while ((*engine)->last_step().batch == 0);  // prefill steps
  const StepClass first = ClassOf(4, (*engine)->last_step().mean_context);
  EXPECT_EQ((*engine)->planner().VerifySamples(first, 1), 0);
  ASSERT_TRUE((*engine)->Step().ok());
  const StepClass second = ClassOf(4, (*engine)->last_step().mean_context);
  EXPECT_EQ((*engine)->planner().VerifySamples(second, 1), 1);
}

TEST_F(SpecEngineLosslessTest, ASequenceWithOneTokenLeftDecodesPlainlyBesideTrees) {
  // The verify pass's own token is all such a sequence can keep: a tree
  // drafted for it would be work thrown away. Of two sequences decoding
  // together under chain:4, one with a single token left and one with many,
  // only the second drafts; output stays the plain one.
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("chain:4");
  std::vector<GenerationRequest> requests(2);
  for (int i = 0; i < 2; ++i) {
    requests[i].prompt = Prompt(12, i);
    requests[i].stop_at_eos = false;
  }
  requests[0].max_new_tokens = 1;
  requests[1].max_new_tokens = 20;
  const auto plain = Plain(target_, requests);
  auto engine = *SpecEngine::Create(target_, target_, options);
  std::vector<int> ids;
  for (const auto& r : requests) ids.push_back(*engine->Add(r));
  do {
    ASSERT_TRUE(engine->Step().ok());
  } while (engine->last_step().batch == 0);  // prefill
  EXPECT_EQ(engine->last_step().batch, 2);
  EXPECT_EQ(engine->last_step().speculated_sequences, 1) << "the one-token sequence drafted";
  EXPECT_TRUE(engine->state(ids[0]).finished());
  while (engine->HasLive()) ASSERT_TRUE(engine->Step().ok());
  for (int i = 0; i < 2; ++i) EXPECT_EQ(engine->state(ids[i]).tokens, plain[i]) << i;
}

TEST_F(SpecEngineLosslessTest, GreedyWithASeparateQuantisedDraftEqualsPlain) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.prompt = Prompt(3 + i * 9, 50 + i);
    r.max_new_tokens = 30;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const auto plain = Plain(target_, requests);
  for (const char* mode : {"chain:3", "tree:16", "auto"}) {
    SpecEngineOptions options;
    options.spec = *ParseSpecMode(mode);
    options.sinks = 4;
    options.window = 32;
    const SpecRun run = Speculative(target_, draft_, options, requests);
    EXPECT_EQ(run.tokens, plain) << mode;
    // A quantised copy of the target agrees with it most of the time.
    if (std::string(mode) == "tree:16") {
      EXPECT_GT(run.mean_tokens_per_step, 1.5) << mode;
    }
  }
}

TEST_F(SpecEngineLosslessTest, StopsAtEosAndLengthLikePlainDecoding) {
  // Make token 2 (EOS) likely by asking for many tokens from many prompts.
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 8; ++i) {
    GenerationRequest r;
    r.prompt = Prompt(5 + i, 200 + i);
    r.max_new_tokens = 7 + i;
    requests.push_back(r);
  }
  const auto plain = Plain(target_, requests);
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("tree:10");
  EXPECT_EQ(Speculative(target_, draft_, options, requests).tokens, plain);
}

// Serving interleaves prefill chunks with decode steps; a batch benchmark asks
// for every prompt first, so each decode step runs at the whole batch size.
TEST_F(SpecEngineLosslessTest, PrefillBeforeDecodeDecodesOnlyWholeBatches) {
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 6; ++i) {
    GenerationRequest r;
    r.prompt = Prompt(30 + 7 * i, 300 + i);
    r.max_new_tokens = 9;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const auto plain = Plain(target_, requests);
  for (bool before : {false, true}) {
    SpecEngineOptions options;
    options.spec = *ParseSpecMode("chain:3");
    options.max_tokens_per_step = 40;  // several prefill steps
    options.prefill_before_decode = before;
    auto engine = *SpecEngine::Create(target_, target_, options);
    std::vector<int> ids;
    for (const auto& r : requests) ids.push_back(*engine->Add(r));
    int prefill_steps = 0, small_decode_steps = 0, prefill_after_decode = 0;
    bool decoded = false, any_finished = false;
    while (engine->HasLive()) {
      ASSERT_TRUE(engine->Step().ok());
      const StepStats& step = engine->last_step();
      if (step.prefill_tokens > 0) {
        ++prefill_steps;
        prefill_after_decode += decoded;
      } else if (step.batch > 0) {
        decoded = true;
        // Until one finishes, every sequence is in the batch.
        small_decode_steps += step.batch < 6 && !any_finished;
        any_finished = any_finished || !step.finished.empty();
      }
    }
    EXPECT_GT(prefill_steps, 3);
    if (before) {
      EXPECT_EQ(prefill_after_decode, 0);
      EXPECT_EQ(small_decode_steps, 0);
    } else {
      EXPECT_GT(prefill_after_decode, 0) << "serving interleaves prefill with decoding";
    }
    std::vector<std::vector<int32_t>> tokens;
    for (int id : ids) tokens.push_back(engine->state(id).tokens);
    EXPECT_EQ(tokens, plain) << "prefill_before_decode " << before;
  }
}

TEST_F(SpecEngineLosslessTest, RefusesADraftWithAnotherVocabulary) {
  Vocabulary other = vocab_;
  other.pieces[200] = "different";
  auto other_model = MakeRandomModel(TinyConfig(), TensorType::kF32, 11, other);
  LlamaModel other_draft(*other_model, *ops_);
  auto engine = SpecEngine::Create(target_, other_draft, SpecEngineOptions{});
  ASSERT_FALSE(engine.ok());
  EXPECT_NE(engine.status().message().find("token 200"), std::string::npos) << engine.status();
}

TEST_F(SpecEngineLosslessTest, TargetCacheAfterStepsEqualsPrefillOfTheFinalSequence) {
  GenerationRequest r;
  r.prompt = Prompt(20, 7);
  r.max_new_tokens = 40;
  r.stop_at_eos = false;
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("tree:8");
  options.sinks = 2;
  options.window = 8;
  auto engine = *SpecEngine::Create(target_, draft_, options);
  const int id = *engine->Add(r);
  while (engine->HasLive()) ASSERT_TRUE(engine->Step().ok());
  // Greedy: the next token after the final sequence, from a fresh prefill, must
  // be what one more plain step on the spec engine's history gives.
  const std::vector<int32_t> final_tokens = engine->state(id).tokens;
  GenerationRequest again;
  again.prompt = final_tokens;
  again.max_new_tokens = 1;
  again.stop_at_eos = false;
  const auto fresh = Plain(target_, {again});
  GenerationRequest longer = r;
  longer.max_new_tokens = 41;
  const auto plain = Plain(target_, {longer});
  EXPECT_EQ(fresh[0], plain[0]);
}

// Distribution of the first two generated tokens over many seeds.
std::map<std::pair<int, int>, double> FirstTwoTokens(LlamaModel& target, LlamaModel& draft,
                                                     const SpecEngineOptions* spec, int runs) {
  std::map<std::pair<int, int>, double> counts;
  std::unique_ptr<SpecEngine> engine;
  if (spec) engine = *SpecEngine::Create(target, draft, *spec);
  BatchGenerator plain(target);
  for (int seed = 0; seed < runs; ++seed) {
    GenerationRequest r;
    r.prompt = Prompt(6, 3);
    r.max_new_tokens = 2;
    r.stop_at_eos = false;
    r.sampling.temperature = 1.5f;
    r.sampling.top_k = 6;
    r.sampling.seed = 1000 + seed;
    std::vector<int32_t> tokens;
    if (spec) {
      const int id = *engine->Add(r);
      while (engine->HasLive()) EXPECT_TRUE(engine->Step().ok());
      tokens = engine->state(id).tokens;
      engine->Remove(id);
    } else {
      const int id = *plain.Add(r);
      while (plain.HasLive()) EXPECT_TRUE(plain.Step().ok());
      tokens = plain.state(id).tokens;
      plain.Remove(id);
    }
    counts[{tokens[6], tokens[7]}] += 1.0 / runs;
  }
  return counts;
}

double TotalVariation(const std::map<std::pair<int, int>, double>& a,
                      const std::map<std::pair<int, int>, double>& b) {
  std::map<std::pair<int, int>, double> diff = a;
  for (const auto& [k, v] : b) diff[k] -= v;
  double tv = 0;
  for (const auto& [k, v] : diff) tv += std::abs(v);
  return tv / 2;
}

TEST_F(SpecEngineLosslessTest, SamplingKeepsTheTargetDistribution) {
  constexpr int kRuns = 4000;
  const auto plain = FirstTwoTokens(target_, target_, nullptr, kRuns);
  const auto plain_again = [&] {  // a second plain sample: the noise floor
    std::map<std::pair<int, int>, double> counts;
    BatchGenerator g(target_);
    for (int seed = 0; seed < kRuns; ++seed) {
      GenerationRequest r;
      r.prompt = Prompt(6, 3);
      r.max_new_tokens = 2;
      r.stop_at_eos = false;
      r.sampling.temperature = 1.5f;
      r.sampling.top_k = 6;
      r.sampling.seed = 900000 + seed;
      const int id = *g.Add(r);
      while (g.HasLive()) EXPECT_TRUE(g.Step().ok());
      counts[{g.state(id).tokens[6], g.state(id).tokens[7]}] += 1.0 / kRuns;
    }
    return counts;
  }();
  const double noise = TotalVariation(plain, plain_again);
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("tree:6");
  options.sinks = 1;
  options.window = 2;
  const double tv = TotalVariation(plain, FirstTwoTokens(target_, draft_, &options, kRuns));
  options.verifier_acceptance_scale = 10.0;  // a verifier biased towards the draft
  const double biased = TotalVariation(plain, FirstTwoTokens(target_, draft_, &options, kRuns));
  std::printf(
      "[ stats    ] total variation over the first two tokens (%d seeds): plain vs plain "
      "%.4f, speculative %.4f, biased verifier %.4f\n",
      kRuns, noise, tv, biased);
  constexpr double kThreshold = 0.09;
  EXPECT_LT(noise, kThreshold);
  EXPECT_LT(tv, kThreshold);
  EXPECT_GT(biased, kThreshold) << "the test must be able to catch a biased verifier";
}

// Real model: self-speculation on stories text is lossless and accepts tokens.
TEST(SpecEngineRealModelTest, StoriesGreedySelfSpeculationIsLossless) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  auto ops = MakeCpuOps(2);
  LlamaModel llama(**model, *ops);
  Tokenizer tokenizer((*model)->vocab);
  std::vector<GenerationRequest> requests;
  for (const char* text : {"Once upon a time", "The little dog", "One day, Lily went to the park",
                           "Tom had a big red ball. He", "She was sad because"}) {
    GenerationRequest r;
    r.prompt = tokenizer.Encode(text, true);
    r.max_new_tokens = 100;
    requests.push_back(r);
  }
  const auto plain = Plain(llama, requests);
  for (const char* mode : {"chain:4", "tree:16", "auto"}) {
    for (int window : {16, 64}) {
      SpecEngineOptions options;
      options.spec = *ParseSpecMode(mode);
      options.sinks = 4;
      options.window = window;
      const SpecRun run = Speculative(llama, llama, options, requests);
      EXPECT_EQ(run.tokens, plain) << mode << " window " << window;
      std::printf(
          "[ accept   ] stories260K self-speculation %s, sinks 4, window %d: %.2f tokens "
          "per step\n",
          mode, window, run.mean_tokens_per_step);
    }
  }
}

}  // namespace
}  // namespace specserve
