// MagicDec's self-speculation in one process: the draft's window holds the
// target's own K/V rows (TargetRows), so it never has a catch-up to feed, its
// first tree level feeds the root alone, and its own rows of a tree are dropped
// once the target has verified them. The rows it takes are exactly the
// target's; another history or rows the target does not hold are refused, and
// the draft then feeds its catch-up itself.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "common/engine/llama_model.h"
#include "common/kv/kv_window_view.h"
#include "common/ops/ops.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/spec_engine.h"
#include "common/speculation/target_worker.h"
#include "gtest/gtest.h"
#include "tests/testing/plain_greedy.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

constexpr int kSinks = 4, kWindow = 24;

// The test helpers' tiny model with room for a 300-token history.
ModelConfig Config() {
  ModelConfig c = testing::TinyConfig();
  c.context_length = 512;
  return c;
}

std::vector<int32_t> History(int length, int salt) {
  std::vector<int32_t> h = {1};
  for (int i = 1; i < length; ++i) h.push_back(2 + (i * 29 + salt * 13) % 120);
  return h;
}

class DraftTargetRowsTest : public ::testing::Test {
 protected:
  DraftTargetRowsTest()
      : model_(testing::TinyRandomModel(TensorType::kF32, 5, Config())),
        other_model_(testing::TinyRandomModel(TensorType::kF32, 6, Config())),
        ops_(MakeCpuOps(2)),
        llama_(*model_, *ops_),
        other_(*other_model_, *ops_),
        target_(llama_, TargetWorkerOptions{}) {}

  // The target caches history[0, n) of sequence `id` (a prefill).
  void TargetHolds(int64_t id, const std::vector<int32_t>& history, int64_t n) {
    VerifyItem item;
    item.sequence_id = id;
    item.kind = VerifyKind::kPrefill;
    item.tokens = std::span<const int32_t>(history).subspan(0, n);
    std::vector<VerifyOutput> out;
    ASSERT_TRUE(target_.Verify({&item, 1}, &out).ok());
    ASSERT_TRUE(out[0].status.ok()) << out[0].status;
    ASSERT_EQ(out[0].cached_tokens, n);
  }

  // Rows [from, to) of `cache`, every layer, K then V, as floats.
  static std::vector<float> Rows(KvCache& cache, int layers, int kv_dim, int64_t from, int64_t to) {
    std::vector<float> rows;
    std::vector<float> k(kv_dim), v(kv_dim);
    for (int layer = 0; layer < layers; ++layer) {
      for (int64_t r = from; r < to; ++r) {
        EXPECT_TRUE(cache.ReadRow(layer, r, k.data(), v.data()));
        rows.insert(rows.end(), k.begin(), k.end());
        rows.insert(rows.end(), v.begin(), v.end());
      }
    }
    return rows;
  }

  std::unique_ptr<LoadedModel> model_, other_model_;
  std::unique_ptr<Ops> ops_;
  LlamaModel llama_, other_;
  TargetWorker target_;
};

TEST_F(DraftTargetRowsTest, OnlyTheTargetsOwnModelSharesItsRows) {
  EXPECT_EQ(target_.RowsFor(llama_), &target_);
  EXPECT_EQ(target_.RowsFor(other_), nullptr) << "another model's rows mean nothing to it";
}

TEST_F(DraftTargetRowsTest, ADraftPassOverTheTargetsRowsEqualsOneOverACopyOfThem) {
  // The target holds 300 tokens (several KV blocks); the draft's view of its
  // rows must attend as a window cache holding copies of the sinks and the
  // last window would: the same logits for a token tree.
  const std::vector<int32_t> history = History(301, 1);
  const int64_t held = 300;
  TargetHolds(7, history, held);
  const uint64_t hash = PrefixHash(std::span<const int32_t>(history).subspan(0, held));
  const KvCache* rows = target_.CommittedRows(0, 7, held, hash);
  ASSERT_NE(rows, nullptr);
  KvWindowView view(llama_.config().n_layers, kSinks, kWindow, 16);
  ASSERT_TRUE(view.Bind(*rows, held).ok());
  EXPECT_EQ(view.committed_tokens(), held);
  EXPECT_EQ(view.stored_rows(), kSinks + kWindow);

  const int layers = llama_.config().n_layers, kv_dim = llama_.config().kv_dim();
  auto copy = *llama_.MakeWindowCache(kSinks, kWindow, 64);
  std::vector<float> k(kv_dim), v(kv_dim);
  const auto append = [&](int64_t from, int64_t to) {
    const int first = *copy->ReservePending(static_cast<int>(to - from));
    for (int layer = 0; layer < layers; ++layer) {
      for (int64_t r = from; r < to; ++r) {
        ASSERT_TRUE(rows->ReadRow(layer, r, k.data(), v.data()));
        copy->WritePending(layer, first + static_cast<int>(r - from), k.data(), v.data(), 1,
                           kv_dim);
      }
    }
    copy->CommitAll();
  };
  append(0, kSinks);
  ASSERT_TRUE(copy->SkipTokens(held - kWindow - kSinks).ok());
  append(held - kWindow, held);
  ASSERT_EQ(Rows(view, layers, kv_dim, 0, kSinks + kWindow),
            Rows(*copy, layers, kv_dim, 0, kSinks + kWindow));

  // The root, then a level of two children under it (the root's row pending).
  std::vector<std::vector<float>> logits(2);
  KvCache* caches[2] = {&view, copy.get()};
  for (int c = 0; c < 2; ++c) {
    const int32_t root = history[held];
    ForwardSequence first;
    first.cache = caches[c];
    first.tokens = {&root, 1};
    std::vector<float> out;
    ASSERT_TRUE(llama_.Forward({&first, 1}, &out).ok());
    const int32_t kids[2] = {5, 9}, parents[2] = {0, 0}, pending_parents[1] = {-1};
    const int32_t positions[2] = {static_cast<int32_t>(held) + 1, static_cast<int32_t>(held) + 1};
    ForwardSequence level;
    level.cache = caches[c];
    level.tokens = kids;
    level.parents = parents;
    level.pending_parents = pending_parents;
    level.positions = positions;
    const int32_t wanted[2] = {0, 1};
    level.logit_rows = wanted;
    ASSERT_TRUE(llama_.Forward({&level, 1}, &logits[c]).ok());
    logits[c].insert(logits[c].begin(), out.begin(), out.end());
  }
  // Equal up to the order of the softmax sums: the view's ring starts inside
  // a tile where the copy's starts on one, so the kernel groups keys apart.
  ASSERT_EQ(logits[0].size(), logits[1].size());
  for (size_t i = 0; i < logits[0].size(); ++i) {
    ASSERT_NEAR(logits[0][i], logits[1][i], 1e-5) << "logit " << i;
  }
  EXPECT_EQ(view.pending_rows(), 3);
  view.CommitAll();  // a view commits nothing: its rows are dropped
  EXPECT_EQ(view.pending_rows(), 0);
  EXPECT_EQ(view.committed_tokens(), held);
}

TEST_F(DraftTargetRowsTest, TheTargetSharesOnlyTheHistoryItHolds) {
  const std::vector<int32_t> history = History(40, 1);
  TargetHolds(7, history, 39);
  const auto hash = [&](const std::vector<int32_t>& h, int64_t n) {
    return PrefixHash(std::span<const int32_t>(h).subspan(0, n));
  };
  EXPECT_NE(target_.CommittedRows(0, 7, 39, hash(history, 39)), nullptr);
  EXPECT_NE(target_.CommittedRows(0, 7, 20, hash(history, 20)), nullptr);
  std::vector<int32_t> other = history;
  other[20] = other[20] == 5 ? 6 : 5;
  EXPECT_EQ(target_.CommittedRows(0, 7, 39, hash(other, 39)), nullptr) << "another history";
  EXPECT_EQ(target_.CommittedRows(0, 7, 40, hash(history, 40)), nullptr) << "rows not kept yet";
  EXPECT_EQ(target_.CommittedRows(0, 8, 39, hash(history, 39)), nullptr) << "another sequence";
  KvWindowView view(llama_.config().n_layers, kSinks, kWindow, 8);
  const KvCache* rows = target_.CommittedRows(0, 7, 39, hash(history, 39));
  EXPECT_FALSE(view.Bind(*rows, 40).ok()) << "past the rows the cache holds";
  ASSERT_TRUE(view.Bind(*rows, 39).ok());
  EXPECT_FALSE(view.SkipTokens(3).ok());
  ASSERT_TRUE(view.ReservePending(2).ok());
  const int32_t keep[1] = {0};
  EXPECT_FALSE(view.Commit(keep).ok()) << "a view keeps none of its rows";
  EXPECT_EQ(view.pending_rows(), 0);
  EXPECT_FALSE(view.ReservePending(9).ok()) << "more than its pending rows";
}

TEST_F(DraftTargetRowsTest, TheViewsPendingRowsSurviveItsGrowth) {
  // The view's own rows start at a tile and grow with the trees drafted; rows
  // written before a growth read back the same after it.
  const std::vector<int32_t> history = History(40, 2);
  TargetHolds(4, history, 39);
  const KvCache* rows =
      target_.CommittedRows(0, 4, 39, PrefixHash(std::span<const int32_t>(history).subspan(0, 39)));
  ASSERT_NE(rows, nullptr);
  KvWindowView view(llama_.config().n_layers, kSinks, kWindow, 70);
  ASSERT_TRUE(view.Bind(*rows, 39).ok());
  const int layers = llama_.config().n_layers, kv_dim = llama_.config().kv_dim();
  const auto value = [&](int row, int layer, int i, bool v) {
    return static_cast<float>(row * 1000 + layer * 100 + i) * (v ? -1.0f : 1.0f);
  };
  const int64_t bytes_at_first = [&] {
    (void)view.ReservePending(1);
    view.TruncatePending(0);
    return view.memory_bytes();
  }();
  std::vector<float> k(kv_dim), v(kv_dim);
  for (int row = 0; row < 70;) {
    const int n = std::min(1 + row % 3, 70 - row);  // 1, 2 or 3 rows a pass, as tree levels
    ASSERT_EQ(*view.ReservePending(n), row);
    for (int layer = 0; layer < layers; ++layer) {
      std::vector<float> ks, vs;
      for (int r = row; r < row + n; ++r) {
        for (int i = 0; i < kv_dim; ++i) {
          ks.push_back(value(r, layer, i, false));
          vs.push_back(value(r, layer, i, true));
        }
      }
      view.WritePending(layer, row, ks.data(), vs.data(), n, kv_dim);
    }
    row += n;
  }
  EXPECT_GT(view.memory_bytes(), bytes_at_first);
  for (int row = 0; row < 70; ++row) {
    for (int layer = 0; layer < layers; ++layer) {
      ASSERT_TRUE(view.ReadRow(layer, view.stored_rows() + row, k.data(), v.data()));
      for (int i = 0; i < kv_dim; ++i) {
        ASSERT_EQ(k[i], value(row, layer, i, false)) << "row " << row << ", layer " << layer;
        ASSERT_EQ(v[i], value(row, layer, i, true)) << "row " << row << ", layer " << layer;
      }
    }
  }
  EXPECT_FALSE(view.ReservePending(1).ok()) << "past its 70 rows";
}

TEST_F(DraftTargetRowsTest, TheDraftNeverFeedsACatchUpAndItsFirstLevelIsTheRootAlone) {
  DraftWorkerOptions options;
  options.sinks = kSinks;
  options.window = kWindow;
  options.target_rows = target_.RowsFor(llama_);
  ASSERT_NE(options.target_rows, nullptr);
  DraftWorker draft(llama_, options);
  // Wide as well as deep: the order of many candidates shows any row that
  // differs from the target's.
  const TreeShape shape = KaryShape(6, 3, 14);
  const int levels = shape.depth();
  std::vector<int32_t> history = History(100, 2);
  // The draft starts at position 60 of a history the target holds (a long
  // prompt), and later finds the target 17 plain steps further on.
  int64_t start = 0;
  std::vector<int32_t> accepted;
  for (int64_t end : {60, 61, 78}) {
    TargetHolds(3, history, end - 1);
    ProposeItem item;
    item.sequence_id = 3;
    item.start = start;
    item.tokens = std::span<const int32_t>(history).subspan(start, end - start);
    item.prefix_hash = PrefixHash(std::span<const int32_t>(history).subspan(0, start));
    item.shape = &shape;
    item.previous_accepted = accepted;
    std::vector<ProposeOutput> out;
    std::vector<PassTime> passes;
    ASSERT_TRUE(draft.Propose({&item, 1}, &out, &passes).ok());
    ASSERT_TRUE(out[0].status.ok()) << out[0].status;
    EXPECT_EQ(out[0].tree.size(), 14);
    // Its window holds exactly the target's rows, as a draft meeting this
    // history for the first time would take them: the same tree, bit for bit.
    DraftWorker fresh(llama_, options);
    ProposeItem whole = item;
    whole.start = 0;
    whole.tokens = std::span<const int32_t>(history).subspan(0, end);
    whole.prefix_hash = kEmptyPrefixHash;
    std::vector<ProposeOutput> fresh_out;
    std::vector<PassTime> fresh_passes;
    ASSERT_TRUE(fresh.Propose({&whole, 1}, &fresh_out, &fresh_passes).ok());
    EXPECT_EQ(out[0].tree.tokens, fresh_out[0].tree.tokens) << "history to " << end;
    // One pass per tree level, the first feeding one token: no catch-up pass
    // however far the target has moved on.
    ASSERT_EQ(passes.size(), static_cast<size_t>(levels)) << "history to " << end;
    EXPECT_EQ(passes[0].tokens_per_sequence, 1) << "history to " << end;
    // The target accepts the first node (its row in the draft, computed under
    // window attention, must give way to the target's); the draft keeps
    // history up to the root, so the next call sends it from there.
    history[end] = out[0].tree.tokens[0];
    accepted = {0};
    start = end - 1;
  }
  // Its cache is the window's, not the history's.
  EXPECT_LE(draft.kv_bytes(), 2 * 1024 * 1024);
}

TEST_F(DraftTargetRowsTest, WhereTheTargetLacksTheRowsTheDraftFeedsItsCatchUpItself) {
  DraftWorkerOptions shared;
  shared.sinks = kSinks;
  shared.window = kWindow;
  shared.target_rows = target_.RowsFor(llama_);
  DraftWorkerOptions own = shared;
  own.target_rows = nullptr;
  DraftWorker with_rows(llama_, shared), without(llama_, own);
  const TreeShape chain = ChainShape(4);
  const std::vector<int32_t> history = History(50, 3);
  ProposeItem item;
  item.sequence_id = 9;  // the target has never seen it
  item.tokens = history;
  item.shape = &chain;
  std::vector<ProposeOutput> a, b;
  std::vector<PassTime> passes_a, passes_b;
  ASSERT_TRUE(with_rows.Propose({&item, 1}, &a, &passes_a).ok());
  ASSERT_TRUE(without.Propose({&item, 1}, &b, &passes_b).ok());
  ASSERT_TRUE(a[0].status.ok()) << a[0].status;
  EXPECT_EQ(a[0].tree.tokens, b[0].tree.tokens);
  EXPECT_EQ(a[0].tree.parents, b[0].tree.parents);
  EXPECT_GT(passes_a[0].tokens_per_sequence, 1) << "the catch-up was fed";
}

TEST_F(DraftTargetRowsTest, GreedySpeculationEqualsPlainAndFeedsOneTokenFirstLevels) {
  std::vector<GenerationRequest> requests;
  for (int l : {3, kWindow - 1, kWindow + kSinks + 1, 3 * kWindow}) {
    GenerationRequest r;
    r.prompt = History(l, l);
    r.max_new_tokens = 30;
    r.stop_at_eos = false;
    requests.push_back(r);
  }
  const std::vector<std::vector<int32_t>> plain = testing::PlainTokens(llama_, requests);
  for (bool take_rows : {true, false}) {
    for (const char* mode : {"chain:3", "tree:8", "auto"}) {
      SpecEngineOptions options;
      options.spec = *ParseSpecMode(mode);
      options.sinks = kSinks;
      options.window = kWindow;
      options.draft_takes_target_rows = take_rows;
      auto engine = *SpecEngine::Create(llama_, llama_, options);
      std::vector<int> ids;
      for (const auto& r : requests) ids.push_back(*engine->Add(r));
      int widest_first_level = 0, speculative_steps = 0;
      while (engine->HasLive()) {
        ASSERT_TRUE(engine->Step().ok());
        const StepStats& s = engine->last_step();
        EXPECT_FALSE(s.draft_failed);
        if (!s.speculated || s.draft_passes.empty() || s.exploring) continue;
        ++speculative_steps;
        if (speculative_steps > 1) {
          widest_first_level = std::max(widest_first_level, s.draft_passes[0].tokens_per_sequence);
        }
      }
      for (size_t i = 0; i < ids.size(); ++i) {
        ASSERT_EQ(engine->state(ids[i]).tokens, plain[i])
            << mode << (take_rows ? ", target's rows" : ", own rows") << ", request " << i;
      }
      if (std::string(mode) != "auto") {
        ASSERT_GT(speculative_steps, 2) << mode;
        // Own rows: the first level feeds the last step's unfed leaf and the
        // bonus token; with the target's rows, the bonus token alone.
        if (take_rows) {
          EXPECT_EQ(widest_first_level, 1) << mode;
        } else {
          EXPECT_EQ(widest_first_level, 2) << mode;
        }
      }
    }
  }
}

}  // namespace
}  // namespace specserve
