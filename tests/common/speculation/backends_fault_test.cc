// The router core over explicit backends: a draft that fails or forgets and a
// target that restarts must not change a single output token.
#include <memory>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/speculation/spec_engine.h"
#include "gtest/gtest.h"
#include "tests/testing/plain_greedy.h"

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
  c.context_length = 200;
  c.rope_dim = 8;
  return c;
}

// Fails every `period`-th call, and forgets every sequence every `forget`-th call.
class FlakyDraft final : public DraftBackend {
 public:
  FlakyDraft(DraftWorker& inner, int period, int forget)
      : inner_(inner), period_(period), forget_(forget) {}
  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override {
    ++calls_;
    if (forget_ > 0 && calls_ % forget_ == 0) {
      for (const ProposeItem& item : items) inner_.Release(item.sequence_id);
    }
    if (period_ > 0 && calls_ % period_ == 0) return absl::UnavailableError("draft is down");
    return inner_.Propose(items, outputs, passes);
  }
  void Release(int64_t id) override { inner_.Release(id); }
  int calls_ = 0;

 private:
  DraftWorker& inner_;
  int period_, forget_;
};

class RestartingTarget final : public TargetBackend {
 public:
  RestartingTarget(TargetWorker& inner, int restart_every) : inner_(inner), every_(restart_every) {}
  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override {
    if (++calls_ % every_ == 0) {
      for (const VerifyItem& item : items) inner_.Release(item.sequence_id);  // lost all state
    }
    return inner_.Verify(items, outputs);
  }
  void Release(int64_t id) override { inner_.Release(id); }
  int calls_ = 0;

 private:
  TargetWorker& inner_;
  int every_;
};

TEST(BackendFaultTest, FlakyDraftAndRestartingTargetKeepGreedyOutputExact) {
  const Vocabulary vocab = MakeSyntheticVocabulary(300);
  auto model = MakeRandomModel(TinyConfig(), TensorType::kF32, 5, vocab);
  auto ops = MakeCpuOps(2);
  LlamaModel llama(*model, *ops);

  std::vector<GenerationRequest> requests;
  for (int i = 0; i < 5; ++i) {
    GenerationRequest r;
    for (int t = 0; t < 10 + 9 * i; ++t) r.prompt.push_back(3 + (t * 41 + i * 7) % 290);
    r.max_new_tokens = 40;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> plain = testing::PlainTokens(llama, requests);
  ASSERT_EQ(plain.size(), requests.size());

  DraftWorkerOptions dopt;
  dopt.sinks = 2;
  dopt.window = 8;
  DraftWorker draft_worker(llama, dopt);
  TargetWorker target_worker(llama, TargetWorkerOptions{});
  FlakyDraft draft(draft_worker, /*period=*/3, /*forget=*/7);
  RestartingTarget target(target_worker, /*restart_every=*/11);
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("tree:6");
  options.sinks = 2;
  options.window = 8;
  options.max_tokens_per_step = 16;
  auto engine = *SpecEngine::Create(&draft, target, FactsOf(*model, model.get(), 2, 8), options);
  std::vector<int> ids;
  for (const auto& r : requests) ids.push_back(*engine->Add(r));
  int steps = 0, failed_drafts = 0;
  while (engine->HasLive() && steps < 2000) {
    ASSERT_TRUE(engine->Step().ok());
    failed_drafts += engine->last_step().draft_failed ? 1 : 0;
    ++steps;
  }
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(engine->state(ids[i]).tokens, plain[i])
        << "request " << i << " " << engine->state(ids[i]).error;
  }
  EXPECT_GT(failed_drafts, 0);
  EXPECT_GT(target.calls_, 11);
  EXPECT_GT(engine->mean_accepted_per_step(), 0.0);  // it still speculated between faults
  // Released sequences free their caches on both workers.
  for (int id : ids) engine->Remove(id);
  EXPECT_EQ(draft_worker.sequences(), 0);
  EXPECT_EQ(target_worker.sequences(), 0);
}

TEST(BackendFaultTest, NoDraftMeansPlainDecoding) {
  const Vocabulary vocab = MakeSyntheticVocabulary(300);
  auto model = MakeRandomModel(TinyConfig(), TensorType::kF32, 6, vocab);
  auto ops = MakeCpuOps(2);
  LlamaModel llama(*model, *ops);
  TargetWorker target(llama, TargetWorkerOptions{});
  auto engine = *SpecEngine::Create(nullptr, target, FactsOf(*model, model.get(), 4, 16), {});
  GenerationRequest r;
  r.prompt = {1, 5, 9};
  r.max_new_tokens = 10;
  r.stop_at_eos = false;
  const int id = *engine->Add(r);
  while (engine->HasLive()) ASSERT_TRUE(engine->Step().ok());
  EXPECT_EQ(engine->state(id).generated(), 10);
  EXPECT_DOUBLE_EQ(engine->mean_tokens_per_step(), 1.0);
}

}  // namespace
}  // namespace specserve
