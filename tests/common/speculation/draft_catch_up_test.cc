// The draft's catch-up around its window: every catch-up length near window and
// window + sinks, from an empty and from a partly fed cache, must give a tree for
// that sequence (the missing sinks are fed first, the middle skipped), and a
// batch mixing all of them must not fail as a whole.
#include <memory>
#include <vector>

#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/spec_engine.h"
#include "gtest/gtest.h"
#include "tests/testing/plain_greedy.h"

namespace specserve {
namespace {

constexpr int kSinks = 16, kWindow = 256;

ModelConfig TinyConfig() {
  ModelConfig c;
  c.dim = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 8;
  c.ffn_dim = 64;
  c.vocab_size = 128;
  c.context_length = 1024;
  c.rope_dim = 8;
  return c;
}

std::vector<int32_t> History(int length, int salt) {
  std::vector<int32_t> h;
  for (int i = 0; i < length; ++i) h.push_back(1 + (i * 31 + salt * 17) % 120);
  return h;
}

class DraftCatchUpTest : public ::testing::Test {
 protected:
  DraftCatchUpTest()
      : vocab_(MakeSyntheticVocabulary(128)),
        model_(MakeRandomModel(TinyConfig(), TensorType::kF32, 21, vocab_)),
        ops_(MakeCpuOps(2)),
        llama_(*model_, *ops_) {}
  Vocabulary vocab_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_;
};

TEST_F(DraftCatchUpTest, EveryLengthAroundTheWindowGivesATreeForItsSequenceAlone) {
  DraftWorkerOptions options;
  options.sinks = kSinks;
  options.window = kWindow;
  DraftWorker worker(llama_, options);
  const TreeShape chain = ChainShape(3);
  // Lengths around window + 1 .. window + sinks, where a draft that skips before
  // feeding its sinks fails; fed from an empty cache and after a first call.
  std::vector<int> lengths;
  for (int l = kWindow - 2; l <= kWindow + kSinks + 3; ++l) lengths.push_back(l);
  for (int already : {0, 5, kSinks - 1}) {
    std::vector<std::vector<int32_t>> histories;
    std::vector<ProposeItem> items;
    for (size_t i = 0; i < lengths.size(); ++i) {
      histories.push_back(History(already + lengths[i], static_cast<int>(i)));
    }
    const int64_t base = 1000 * (already + 1);
    if (already > 0) {
      // A first call feeds `already` tokens (all but the root of a short history).
      std::vector<ProposeItem> first(lengths.size());
      for (size_t i = 0; i < lengths.size(); ++i) {
        first[i].sequence_id = base + i;
        first[i].tokens = std::span<const int32_t>(histories[i]).subspan(0, already + 1);
        first[i].shape = &chain;
      }
      std::vector<ProposeOutput> out;
      std::vector<PassTime> passes;
      ASSERT_TRUE(worker.Propose(first, &out, &passes).ok());
      for (const ProposeOutput& o : out) ASSERT_TRUE(o.status.ok()) << o.status;
    }
    for (size_t i = 0; i < lengths.size(); ++i) {
      ProposeItem& item = items.emplace_back();
      item.sequence_id = base + i;
      // After a first call the draft holds `already + 1` tokens (the root too).
      item.start = already > 0 ? already + 1 : 0;
      item.tokens = std::span<const int32_t>(histories[i]).subspan(item.start);
      item.prefix_hash = PrefixHash(std::span<const int32_t>(histories[i]).subspan(0, item.start));
      item.shape = &chain;
    }
    std::vector<ProposeOutput> out;
    std::vector<PassTime> passes;
    ASSERT_TRUE(worker.Propose(items, &out, &passes).ok());
    for (size_t i = 0; i < lengths.size(); ++i) {
      EXPECT_TRUE(out[i].status.ok()) << "catch-up of " << items[i].tokens.size()
                                      << " tokens after " << already << ": " << out[i].status;
      EXPECT_EQ(out[i].tree.size(), 3) << "catch-up " << items[i].tokens.size();
    }
  }
}

TEST_F(DraftCatchUpTest, GreedySpeculationEqualsPlainForPromptsAroundTheWindow) {
  std::vector<GenerationRequest> requests;
  for (int l : {kWindow - 1, kWindow, kWindow + 1, kWindow + 8, kWindow + kSinks,
                kWindow + kSinks + 1, 2 * kWindow + 3}) {
    GenerationRequest r;
    r.prompt = History(l, l);
    r.max_new_tokens = 12;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> plain = testing::PlainTokens(llama_, requests);
  ASSERT_EQ(plain.size(), requests.size());
  SpecEngineOptions options;
  options.spec = *ParseSpecMode("chain:3");
  options.sinks = kSinks;
  options.window = kWindow;
  auto engine = *SpecEngine::Create(llama_, llama_, options);
  std::vector<int> ids;
  for (const auto& r : requests) ids.push_back(*engine->Add(r));
  int failed = 0;
  while (engine->HasLive()) {
    ASSERT_TRUE(engine->Step().ok());
    failed += engine->last_step().draft_failed ? 1 : 0;
  }
  EXPECT_EQ(failed, 0);
  EXPECT_GT(engine->mean_accepted_per_step(), 0.0);
  for (size_t i = 0; i < ids.size(); ++i) {
    EXPECT_EQ(engine->state(ids[i]).tokens, plain[i]) << i;
  }
}

}  // namespace
}  // namespace specserve
