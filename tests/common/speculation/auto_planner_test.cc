// The adaptive planner must speculate where speculation pays and must not where
// it loses. The regimes are made with backends that add fixed wall-clock costs
// to the real workers (as an accelerator's memory-bound verify or a slow draft
// would), so the outcome is asserted by tokens per step, not by luck.
#include <chrono>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/speculation/spec_engine.h"
#include "common/util/status_macros.h"
#include "gtest/gtest.h"
#include "tests/testing/plain_greedy.h"

namespace specserve {
namespace {

void Sleep(double seconds) { std::this_thread::sleep_for(std::chrono::duration<double>(seconds)); }

// Verify costs `base` seconds plus `per_node` per speculated node per sequence.
class TimedTarget final : public TargetBackend {
 public:
  TimedTarget(TargetBackend& inner, double base, double per_node)
      : inner_(inner), base_(base), per_node_(per_node) {}
  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override {
    int nodes = 0;
    for (const VerifyItem& item : items) nodes = std::max(nodes, item.tree ? item.tree->size() : 0);
    Sleep(base_ + per_node_ * nodes);
    return inner_.Verify(items, outputs);
  }
  void Release(int64_t id) override { inner_.Release(id); }

 private:
  TargetBackend& inner_;
  double base_, per_node_;
};

// Every draft pass costs `per_pass` seconds (reported in the pass times too).
class TimedDraft final : public DraftBackend {
 public:
  TimedDraft(DraftBackend& inner, double per_pass) : inner_(inner), per_pass_(per_pass) {}
  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override {
    RETURN_IF_ERROR(inner_.Propose(items, outputs, passes));
    Sleep(per_pass_ * passes->size());
    for (PassTime& p : *passes) p.seconds += per_pass_;
    return absl::OkStatus();
  }
  void Release(int64_t id) override { inner_.Release(id); }

 private:
  DraftBackend& inner_;
  double per_pass_;
};

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 128;
  c.context_length = 512;
  c.rope_dim = 8;
  return c;
}

struct Outcome {
  double tokens_per_step = 0;
  bool equal_to_plain = false;
};

// Self-speculation with a window that covers the whole context: the draft is
// the target, so every drafted token is accepted; only costs decide.
// `on_step`, if set, sees every step's stats.
Outcome RunAuto(double verify_base, double verify_per_node, double draft_per_pass,
                const std::function<void(const StepStats&)>& on_step = nullptr) {
  const Vocabulary vocab = MakeSyntheticVocabulary(128);
  auto model = MakeRandomModel(TinyConfig(), TensorType::kF32, 9, vocab);
  auto ops = MakeCpuOps(1);
  LlamaModel llama(*model, *ops);
  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 4; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 20 + 3 * i; ++t) r.prompt.push_back(1 + (t * 13 + i * 5) % 120);
    // Long enough that the first probe (after 20x its predicted cost of plain
    // decoding, about 40 steps here) is followed by a settled regime.
    r.max_new_tokens = 320;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> plain = testing::PlainTokens(llama, requests);
  EXPECT_EQ(plain.size(), requests.size());
  if (plain.size() != requests.size()) return {};

  DraftWorkerOptions d;
  d.sinks = 4;
  d.window = 508;
  DraftWorker draft_worker(llama, d);
  TargetWorker target_worker(llama, TargetWorkerOptions{});
  TimedDraft draft(draft_worker, draft_per_pass);
  TimedTarget target(target_worker, verify_base, verify_per_node);
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("auto");
  options.sinks = d.sinks;
  options.window = d.window;
  auto engine = *SpecEngine::Create(&draft, target, FactsOf(*model, model.get(), 4, 508), options);
  std::vector<int> ids;
  for (const auto& r : requests) ids.push_back(*engine->Add(r));
  while (engine->HasLive()) {
    EXPECT_TRUE(engine->Step().ok());
    if (on_step) on_step(engine->last_step());
  }
  Outcome out;
  out.tokens_per_step = engine->mean_tokens_per_step();
  out.equal_to_plain = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    out.equal_to_plain &= engine->state(ids[i]).tokens == plain[i];
  }
  return out;
}

TEST(AutoPlannerTest, SpeculatesDeepWhereExtraNodesAreCheapAndTheDraftIsFast) {
  // A memory-bound verify (4 ms, +0.02 ms a node) and a cheap draft (0.2 ms a pass).
  const Outcome out = RunAuto(4e-3, 2e-5, 2e-4);
  EXPECT_TRUE(out.equal_to_plain);
  EXPECT_GT(out.tokens_per_step, 3.0) << "auto should speculate here";
}

TEST(AutoPlannerTest, PredictsTheTokensPerStepOfTheShapesItChooses) {
  // Where it speculates deep, the planner's expected tokens per step for the
  // shape it picked must match what the step gave within 10% once acceptance
  // has settled (from the whole batch's sixth speculative step on; steps where
  // a sequence ends are left out: its budget, not acceptance, cuts its chain).
  int steps = 0, whole_batch = 0;
  double predicted = 0, measured = 0;
  const Outcome out = RunAuto(4e-3, 2e-5, 2e-4, [&](const StepStats& step) {
    if (step.batch < 4 || step.speculated_sequences < step.batch || !step.finished.empty() ||
        ++whole_batch <= 5) {
      return;
    }
    ++steps;
    predicted += step.predicted_tokens;
    measured += static_cast<double>(step.speculated_generated_tokens) / step.speculated_sequences;
  });
  EXPECT_TRUE(out.equal_to_plain);
  ASSERT_GT(steps, 10);
  EXPECT_GT(measured / steps, 3.0);
  EXPECT_NEAR(predicted / measured, 1.0, 0.10)
      << "predicted " << predicted / steps << " tokens a step, measured " << measured / steps;
}

TEST(AutoPlannerTest, DecodesPlainlyWhereTheDraftCostsMoreThanItSaves) {
  // The draft's every pass costs four verify steps: even perfect acceptance loses.
  const Outcome out = RunAuto(1e-3, 1e-4, 4e-3);
  EXPECT_TRUE(out.equal_to_plain);
  // Probes are allowed (bounded to a small share of the time), trees are not.
  EXPECT_LT(out.tokens_per_step, 1.15) << "auto should decode plainly here";
}

TEST(AutoPlannerTest, AProbesTokensAreCountedOverTheSequencesThatSpeculated) {
  // Where auto decodes plainly it still probes a few sequences now and then.
  // The draft is the target here, so a probing sequence's whole chain is
  // accepted: it gains depth + 1 tokens, every other sequence one.
  int probes = 0;
  const Outcome out = RunAuto(1e-3, 1e-4, 4e-3, [&](const StepStats& step) {
    if (step.batch < 4 || step.prefill_tokens > 0) return;  // the ends of the run
    if (step.speculated_sequences == 0) {
      EXPECT_FALSE(step.speculated);
      EXPECT_EQ(step.generated_tokens, step.batch);
      return;
    }
    EXPECT_TRUE(step.speculated);
    if (step.speculated_sequences < step.batch) ++probes;
    EXPECT_EQ(step.speculated_generated_tokens,
              static_cast<int64_t>(step.speculated_sequences) * (step.tree_depth + 1))
        << "step with " << step.speculated_sequences << " of " << step.batch
        << " speculating, depth " << step.tree_depth;
    EXPECT_EQ(step.generated_tokens - step.speculated_generated_tokens,
              step.batch - step.speculated_sequences);
  });
  EXPECT_TRUE(out.equal_to_plain);
  EXPECT_GT(probes, 0) << "the planner should have probed a few sequences";
}

}  // namespace
}  // namespace specserve
