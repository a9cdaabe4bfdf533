// The CUDA backend as a MagicDec draft, against the CPU backend: the device
// window cache holds the same rows as the CPU one under the same operations,
// attention over rows pending from earlier passes, a draft's tree passes level
// by level over a window cache, and the draft worker's greedy trees on
// stories260K. Labelled `gpu`; skipped with a message where no CUDA device can
// be used.
//
// Bounds as in cuda_ops_test.cc: attention 1e-4, model logits with f32 device
// weights 1e-3 of the largest |CPU logit|; rows of the caches are copies, equal.
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/engine/cuda/cuda_llama_model.h"
#include "common/engine/llama_model.h"
#include "common/kv/kv_cache.h"
#include "common/model/model_loader.h"
#include "common/model/random_model.h"
#include "common/ops/cuda/cuda_ops.h"
#include "common/ops/cuda/cuda_window_kv_cache.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/sequoia.h"
#include "gtest/gtest.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

using cuda::CudaOps;
using cuda::DeviceBuffer;
using cuda::DeviceType;
using testing::AttentionInputs;
using testing::ExpectAttentionMatchesCpu;
using testing::GpuConfig;
using testing::NewCudaOps;
using testing::RandomVector;
using testing::RelativeError;
using testing::ToDevice;

// Every row (stored, then pending) of every layer of both caches, and the
// device cache's segments against its stored rows.
void ExpectSameRows(const KvCache& cpu, const cuda::CudaWindowKvCache& gpu, const KvShape& shape,
                    const std::string& where) {
  ASSERT_TRUE(gpu.status().ok()) << where << ": " << gpu.status();
  ASSERT_EQ(gpu.committed_tokens(), cpu.committed_tokens()) << where;
  ASSERT_EQ(gpu.stored_rows(), cpu.stored_rows()) << where;
  ASSERT_EQ(gpu.pending_rows(), cpu.pending_rows()) << where;
  std::vector<float> ck(shape.kv_dim), cv(shape.kv_dim), gk(shape.kv_dim), gv(shape.kv_dim);
  for (int l = 0; l < shape.n_layers; ++l) {
    std::vector<float> stored_k;
    for (int64_t r = 0; r < cpu.stored_rows() + cpu.pending_rows(); ++r) {
      ASSERT_TRUE(cpu.ReadRow(l, r, ck.data(), cv.data()));
      ASSERT_TRUE(gpu.ReadRow(l, r, gk.data(), gv.data())) << where << " row " << r;
      ASSERT_EQ(gk, ck) << where << " layer " << l << " row " << r;
      ASSERT_EQ(gv, cv) << where << " layer " << l << " row " << r;
      if (r < cpu.stored_rows()) stored_k.insert(stored_k.end(), ck.begin(), ck.end());
    }
    std::vector<KvSegment> segments;
    gpu.CommittedSegments(l, &segments);
    std::vector<float> by_segments;
    for (const KvSegment& s : segments) {
      std::vector<float> rows(static_cast<size_t>(s.n_rows) * shape.kv_dim);
      ASSERT_EQ(cudaMemcpy(rows.data(), s.k, rows.size() * sizeof(float), cudaMemcpyDeviceToHost),
                cudaSuccess);
      by_segments.insert(by_segments.end(), rows.begin(), rows.end());
    }
    ASSERT_EQ(by_segments, stored_k) << where << " layer " << l;
  }
}

TEST(CudaWindowKvCacheTest, SameRowsAsTheCpuWindowCacheUnderTheSameOperations) {
  SPECSERVE_REQUIRE_GPU();
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  const KvShape shape{2, 8};
  constexpr int kMaxPending = 12;
  for (auto [sinks, window] : {std::pair{0, 5}, {2, 4}, {3, 1}, {4, 16}}) {
    auto cpu = MakeWindowKvCache(shape, sinks, window, kMaxPending);
    auto gpu = cuda::CudaWindowKvCache::Create(shape, sinks, window, kMaxPending, ops->stream());
    ASSERT_TRUE(gpu.ok()) << gpu.status();
    Rng rng(static_cast<uint64_t>(10 * sinks + window));
    for (int step = 0; step < 120; ++step) {
      const std::string where = "sinks " + std::to_string(sinks) + " window " +
                                std::to_string(window) + " step " + std::to_string(step);
      const int op = static_cast<int>(rng.Next() % 6);
      if (op <= 1) {  // reserve and write rows with a wider source stride
        const int n = static_cast<int>(rng.Next() % 5), stride = shape.kv_dim + 3;
        absl::StatusOr<int> first = cpu->ReservePending(n);
        ASSERT_EQ((*gpu)->ReservePending(n).ok(), first.ok()) << where;
        if (!first.ok() || n == 0) continue;
        for (int l = 0; l < shape.n_layers; ++l) {
          const std::vector<float> k = RandomVector(static_cast<size_t>(n) * stride, rng.Next());
          const std::vector<float> v = RandomVector(static_cast<size_t>(n) * stride, rng.Next());
          cpu->WritePending(l, *first, k.data(), v.data(), n, stride);
          DeviceBuffer dk = ToDevice(k), dv = ToDevice(v);
          (*gpu)->WritePending(l, *first, dk.as<float>(), dv.as<float>(), n, stride);
          ASSERT_TRUE(ops->Synchronize().ok());  // before dk, dv are freed
        }
      } else if (op == 2) {
        std::vector<int32_t> keep;
        for (int r = 0; r < cpu->pending_rows(); ++r) {
          if (rng.Next() % 2) keep.push_back(r);
        }
        ASSERT_TRUE(cpu->Commit(keep).ok()) << where;
        ASSERT_TRUE((*gpu)->Commit(keep).ok()) << where;
      } else if (op == 3) {
        cpu->CommitAll();
        (*gpu)->CommitAll();
      } else if (op == 4) {
        const int n = static_cast<int>(rng.Next() % 4);
        cpu->TruncatePending(n);
        (*gpu)->TruncatePending(n);
      } else {
        const int64_t n = static_cast<int64_t>(rng.Next() % 20);
        ASSERT_EQ((*gpu)->SkipTokens(n).ok(), cpu->SkipTokens(n).ok()) << where;
      }
      ExpectSameRows(*cpu, **gpu, shape, where);
    }
  }
}

// New tokens after rows pending from earlier passes (k and v: the pending
// rows, then the new ones), causal and tree-masked, short and split-K caches.
TEST(CudaOpsTest, AttentionAfterPendingRowsMatchesCpu) {
  SPECSERVE_REQUIRE_GPU();
  auto cpu = MakeCpuOps(1);
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  const AttentionShape shape{8, 2, 64, 0.125f};
  const int q_dim = 8 * 64, kv_dim = 2 * 64;
  constexpr int kPending = 5, kNew = 3;
  // Pending rows: two roots (0, 1), 2 and 3 under 0, 4 under 3; new: under 4, 1 and 5.
  const std::vector<int32_t> parents = {-1, -1, 0, 0, 3, 4, 1, 5};
  for (int cached : {0, 7, 3000}) {
    for (bool tree : {false, true}) {
      const AttentionInputs in{RandomVector(static_cast<size_t>(cached) * kv_dim, 1),
                               RandomVector(static_cast<size_t>(cached) * kv_dim, 2),
                               RandomVector(kNew * q_dim, 3, 2.0f),
                               RandomVector((kPending + kNew) * kv_dim, 4),
                               RandomVector((kPending + kNew) * kv_dim, 5)};
      auto describe = [&](const float* bk, const float* bv, const float* bq, const float* nk,
                          const float* nv, float* o) {
        AttentionSequence a;
        if (cached > 0) a.cached.push_back({bk, bv, cached});
        a.n_pending = kPending;
        a.n_new = kNew;
        a.q = bq;
        a.q_stride = q_dim;
        a.k = nk;
        a.v = nv;
        a.kv_stride = kv_dim;
        a.out = o;
        a.out_stride = q_dim;
        a.parents = tree ? parents.data() : nullptr;
        return a;
      };
      ExpectAttentionMatchesCpu(
          *cpu, *ops, shape, in, kNew * q_dim, describe,
          "cached " + std::to_string(cached) + " tree " + std::to_string(tree));
    }
  }
}

// A draft step over a window cache that has slid: prefill, three tree levels
// (each over the rows the earlier levels left pending), the accepted path
// committed, then causal passes over a pending row. All logits of every pass.
std::vector<float> RunDraftPasses(Model& model, int vocab) {
  std::vector<float> all, logits;
  auto cache = model.MakeWindowCache(/*sinks=*/4, /*window=*/16, /*max_pending=*/64);
  EXPECT_TRUE(cache.ok()) << cache.status();
  if (!cache.ok()) return all;
  KvCache& c = **cache;
  // One pass wanting every new token's logits.
  auto pass = [&](std::span<const int32_t> tokens, std::span<const int32_t> positions = {},
                  std::span<const int32_t> parents = {},
                  std::span<const int32_t> pending_parents = {}) {
    std::vector<int32_t> rows(tokens.size());
    for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
    const ForwardSequence seq{&c, tokens, positions, parents, pending_parents, rows};
    const absl::Status st = model.Forward({&seq, 1}, &logits);
    EXPECT_TRUE(st.ok()) << st;
    all.insert(all.end(), logits.begin(), logits.end());
  };
  Rng rng(9);
  std::vector<int32_t> prompt(37);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.Next() % vocab);
  pass(prompt);
  c.CommitAll();
  // Level 1: two children of the root (pending rows 0, 1).
  const std::vector<int32_t> l1 = {5, 6}, l1_parents = {-1, -1}, l1_pos = {37, 37};
  pass(l1, l1_pos, l1_parents);
  // Level 2: under rows 0, 0, 1 (pending rows 2, 3, 4).
  const std::vector<int32_t> l2 = {7, 8, 9}, l2_parents = {0, 0, 1}, l2_pos = {38, 38, 38};
  pass(l2, l2_pos, l2_parents, l1_parents);
  // Level 3: under rows 2 and 4.
  const std::vector<int32_t> l3 = {10, 11}, l3_parents = {2, 4}, l3_pos = {39, 39};
  const std::vector<int32_t> l3_pending = {-1, -1, 0, 0, 1};
  pass(l3, l3_pos, l3_parents, l3_pending);
  const std::vector<int32_t> path = {0, 2, 5};  // tokens 5, 7, 10
  EXPECT_TRUE(c.Commit(path).ok());
  // Causal passes: one token, then another over it while it is still pending.
  const std::vector<int32_t> a = {12}, b = {13, 14};
  pass(a);
  pass(b);
  c.CommitAll();
  pass(a);
  return all;
}

TEST(CudaLlamaModelTest, DraftTreeLevelsOverAWindowCacheMatchTheCpuModel) {
  SPECSERVE_REQUIRE_GPU();
  auto model =
      MakeRandomModel(GpuConfig(), TensorType::kF16, /*seed=*/23);  // see LogitsMatchTheCpuModel
  ASSERT_NE(model, nullptr);
  auto cpu_ops = MakeCpuOps(1);
  LlamaModel cpu(*model, *cpu_ops);
  const std::vector<float> expected = RunDraftPasses(cpu, GpuConfig().vocab_size);
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  ASSERT_TRUE(ops->UploadModel(*model).ok());
  cuda::CudaLlamaModel gpu(*model, *ops);
  const std::vector<float> got = RunDraftPasses(gpu, GpuConfig().vocab_size);
  ASSERT_EQ(got.size(), expected.size());
  EXPECT_LE(RelativeError(expected, got), 1e-3);
}

// Greedy MagicDec drafting through DraftWorker, step after step with the
// accepted path sent back (the window slides): the same trees on both backends.
std::vector<TokenTree> DraftSteps(Model& model, int steps) {
  DraftWorkerOptions options;
  options.sinks = 4;
  options.window = 32;
  DraftWorker worker(model, options);
  const TreeShape shape = KaryShape(2, 3);
  std::vector<int32_t> history = {1, 403, 407, 261, 378};
  std::vector<int32_t> accepted;
  std::vector<TokenTree> trees;
  for (int step = 0; step < steps; ++step) {
    ProposeItem item;
    item.sequence_id = 1;
    item.tokens = history;
    item.prefix_hash = PrefixHash({});
    item.previous_accepted = accepted;
    item.shape = &shape;
    std::vector<ProposeOutput> out;
    std::vector<PassTime> passes;
    const absl::Status st = worker.Propose({&item, 1}, &out, &passes);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok() || !out[0].status.ok()) {
      ADD_FAILURE() << "step " << step << ": " << out[0].status;
      break;
    }
    const TokenTree& tree = out[0].tree;
    trees.push_back(tree);
    // Accept the most likely chain two deep, then one more token of the "target".
    accepted.clear();
    int32_t parent = -1;
    for (int depth = 0; depth < 2; ++depth) {
      int32_t next = -1;
      for (int i = 0; i < tree.size() && next < 0; ++i) {
        if (tree.parents[i] == parent) next = i;
      }
      if (next < 0) break;
      accepted.push_back(next);
      history.push_back(tree.tokens[next]);
      parent = next;
    }
    history.push_back(static_cast<int32_t>((history.back() * 7 + step) % 500 + 2));
  }
  return trees;
}

TEST(CudaRealModelTest, Stories260KDraftWorkerProposesTheCpuTrees) {
  SPECSERVE_REQUIRE_GPU();
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  constexpr int kSteps = 24;  // about 75 tokens: the window of 32 slides
  auto cpu_ops = MakeCpuOps(1);
  LlamaModel cpu(**model, *cpu_ops);
  const std::vector<TokenTree> expected = DraftSteps(cpu, kSteps);
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  cuda::CudaLlamaModel gpu(**model, *ops);
  const std::vector<TokenTree> got = DraftSteps(gpu, kSteps);
  ASSERT_EQ(got.size(), expected.size());
  int same = 0;
  for (size_t s = 0; s < got.size(); ++s) {
    EXPECT_EQ(got[s].tokens, expected[s].tokens) << "step " << s;
    EXPECT_EQ(got[s].parents, expected[s].parents) << "step " << s;
    same += got[s].tokens == expected[s].tokens ? 1 : 0;
  }
  std::printf("stories260K draft on CUDA: %d of %d trees equal the CPU's\n", same, kSteps);
}

}  // namespace
}  // namespace specserve
