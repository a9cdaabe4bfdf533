// Batch invariance of the CUDA forward pass in its serving precisions (bf16
// and f16 weights), the property lossless speculation rests on: a row's logits
// are bit-identical whether its sequence runs alone or inside a batch of 1-64
// mixed sequences (other contexts long enough to change how many attention
// splits a pass has, causal chunks, trees), and a node of a token tree (with
// sibling decoys between it and its ancestors) equals the same token decoded
// plainly after its path. Widths that are not whole 16-column tiles (ffn 172,
// as stories260K's) take the padded GEMM layout; GQA groups of 4 and one query
// head per KV head change how many rows share an attention block.
#include <cuda_bf16.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/engine/cuda/cuda_llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/cuda/gemm.h"
#include "common/sampling/rng.h"
#include "gtest/gtest.h"
#include "tests/gpu/gpu_test_util.h"
#include "tests/testing/token_rows.h"

namespace specserve {
namespace {

using testing::AllRows;
using testing::ExpectSameBits;

std::vector<int32_t> Tokens(int n, uint64_t seed, int vocab) {
  return testing::RandomTokens(n, vocab, seed);
}

using cuda::DeviceType;

struct Case {
  DeviceType type;
  int ffn_dim;
  int n_kv_heads;  // of 8 query heads: 2 (GQA groups of 4) or 8 (one query head a KV head)
};

class CudaBatchInvarianceTest : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    SPECSERVE_REQUIRE_GPU();
    config_ = testing::GpuConfig();
    config_.ffn_dim = GetParam().ffn_dim;
    config_.n_kv_heads = GetParam().n_kv_heads;
    model_ = MakeRandomModel(config_, TensorType::kF32, /*seed=*/31);
    ASSERT_NE(model_, nullptr);
    ops_ = testing::NewCudaOps(GetParam().type);
    ASSERT_NE(ops_, nullptr);
    gpu_ = std::make_unique<cuda::CudaLlamaModel>(*model_, *ops_);
  }
  std::unique_ptr<KvCache> Full() {
    auto cache = gpu_->MakeFullCache(2048);
    EXPECT_TRUE(cache.ok()) << cache.status();
    return cache.ok() ? std::move(*cache) : nullptr;
  }
  std::unique_ptr<KvCache> Window() {
    auto cache = gpu_->MakeWindowCache(4, 40, 64);
    EXPECT_TRUE(cache.ok()) << cache.status();
    return cache.ok() ? std::move(*cache) : nullptr;
  }
  void Prefill(KvCache& cache, const std::vector<int32_t>& tokens, int chunk) {
    std::vector<float> logits;
    for (size_t i = 0; i < tokens.size(); i += chunk) {
      const size_t n = std::min<size_t>(chunk, tokens.size() - i);
      ForwardSequence seq{&cache, std::span(tokens).subspan(i, n), {}, {}, {}, {}};
      ASSERT_TRUE(gpu_->Forward({&seq, 1}, &logits).ok());
      cache.CommitAll();
    }
  }
  int vocab() const { return config_.vocab_size; }

  ModelConfig config_;
  std::unique_ptr<LoadedModel> model_;
  std::unique_ptr<cuda::CudaOps> ops_;
  std::unique_ptr<cuda::CudaLlamaModel> gpu_;
};

TEST_P(CudaBatchInvarianceTest, DecodeRowAloneEqualsInsideMixedBatches) {
  for (bool window : {false, true}) {
    auto target = window ? Window() : Full();
    ASSERT_NE(target, nullptr);
    Prefill(*target, Tokens(300, 1, vocab()), 60);  // window caches take 64 pending rows
    const std::vector<int32_t> next = {42};
    const std::vector<int32_t> row0 = {0};
    std::vector<float> alone;
    ForwardSequence seq{target.get(), next, {}, {}, {}, row0};
    ASSERT_TRUE(gpu_->Forward({&seq, 1}, &alone).ok());
    target->DropPending();

    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<std::vector<int32_t>> tokens, parents, rows;
    for (int s = 0; s < 63; ++s) {
      caches.push_back(s % 3 == 2 ? Window() : Full());
      ASSERT_NE(caches.back(), nullptr);
      // Contexts 1-900: some passes have four attention splits, the target's three.
      Prefill(*caches.back(), Tokens(1 + (s * 137) % 900, 100 + s, vocab()), s % 3 == 2 ? 60 : 256);
      const int n = s % 4 == 0 ? 3 : 1;
      tokens.push_back(Tokens(n, 200 + s, vocab()));
      parents.push_back(s % 8 == 4 ? std::vector<int32_t>{-1, 0, 0} : std::vector<int32_t>{});
      rows.push_back(AllRows(n));
    }
    for (int batch : {1, 2, 5, 17, 33, 64}) {
      std::vector<ForwardSequence> seqs;
      const int place = (batch * 7) % batch;
      int before = 0;
      for (int s = 0, o = 0; s < batch; ++s, ++o) {
        if (s == place) {
          seqs.push_back(seq);
          --o;
          continue;
        }
        seqs.push_back(ForwardSequence{caches[o].get(), tokens[o], {}, parents[o], {}, rows[o]});
        if (s < place) before += static_cast<int>(rows[o].size());
      }
      std::vector<float> logits;
      ASSERT_TRUE(gpu_->Forward(seqs, &logits).ok());
      for (const ForwardSequence& f : seqs) f.cache->DropPending();
      ExpectSameBits(logits.data() + static_cast<size_t>(before) * vocab(), alone.data(), vocab(),
                     "batch " + std::to_string(batch) + (window ? " window" : " full"));
    }
  }
}

TEST_P(CudaBatchInvarianceTest, TreeNodeAndChunkRowEqualPlainDecodeOfItsPath) {
  // A context that ends just before a split boundary, so that the path crosses it.
  const std::vector<int32_t> context = Tokens(253, 3, vocab());
  const std::vector<int32_t> path = Tokens(6, 4, vocab());
  const int k = static_cast<int>(path.size());
  std::vector<std::vector<float>> plain;
  {
    auto cache = Full();
    ASSERT_NE(cache, nullptr);
    Prefill(*cache, context, 100);
    const std::vector<int32_t> row0 = {0};
    for (int i = 0; i < k; ++i) {
      std::vector<float> logits;
      ForwardSequence seq{cache.get(), std::span(&path[i], 1), {}, {}, {}, row0};
      ASSERT_TRUE(gpu_->Forward({&seq, 1}, &logits).ok());
      cache->CommitAll();
      plain.push_back(logits);
    }
  }
  {
    auto cache = Full();
    ASSERT_NE(cache, nullptr);
    Prefill(*cache, context, 100);
    std::vector<float> logits;
    const std::vector<int32_t> rows = AllRows(k);
    ForwardSequence seq{cache.get(), path, {}, {}, {}, rows};
    ASSERT_TRUE(gpu_->Forward({&seq, 1}, &logits).ok());
    for (int i = 0; i < k; ++i) {
      ExpectSameBits(logits.data() + i * vocab(), plain[i].data(), vocab(),
                     "chunk row " + std::to_string(i));
    }
  }
  {
    auto cache = Full();
    ASSERT_NE(cache, nullptr);
    Prefill(*cache, context, 100);
    // Path node i at index 2i, a sibling decoy at 2i + 1.
    std::vector<int32_t> tokens, parents;
    for (int i = 0; i < k; ++i) {
      tokens.push_back(path[i]);
      parents.push_back(i == 0 ? -1 : 2 * (i - 1));
      tokens.push_back((path[i] + 1) % vocab());
      parents.push_back(i == 0 ? -1 : 2 * (i - 1) + 1);
    }
    const std::vector<int32_t> rows = AllRows(2 * k);
    std::vector<int32_t> positions(2 * k);
    for (int i = 0; i < 2 * k; ++i) positions[i] = static_cast<int32_t>(context.size()) + i / 2;
    std::vector<float> logits;
    ForwardSequence seq{cache.get(), tokens, positions, parents, {}, rows};
    ASSERT_TRUE(gpu_->Forward({&seq, 1}, &logits).ok());
    for (int i = 0; i < k; ++i) {
      ExpectSameBits(logits.data() + 2 * i * vocab(), plain[i].data(), vocab(),
                     "tree node at depth " + std::to_string(i + 1));
    }
  }
}

// The GEMM's two kernels and every row count give the same bits for a row,
// for widths of 1-11 chunks of 16 (fewer chunks than k-slices, odd counts)
// and output counts that are not whole tiles.
TEST(CudaGemmInvarianceTest, KernelsAndRowCountsGiveTheSameBits) {
  SPECSERVE_REQUIRE_GPU();
  cudaStream_t stream = nullptr;
  for (auto [out, cols] : {std::pair{40, 16}, {100, 48}, {130, 172}, {257, 512}}) {
    const int64_t ld = cuda::GemmLeadingDim(cols);
    const int max_rows = 200;
    Rng rng(out * 1000 + cols);
    auto random_bf16 = [&](int64_t rows) {
      std::vector<__nv_bfloat16> v(static_cast<size_t>(rows) * ld, __float2bfloat16(0.0f));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t c = 0; c < cols; ++c) {
          v[r * ld + c] = __float2bfloat16(static_cast<float>(rng.Uniform() * 2.0 - 1.0));
        }
      }
      return v;
    };
    const auto w = random_bf16(cuda::GemmWeightRows(out));
    const auto x = random_bf16(cuda::GemmActivationRows(max_rows));
    cuda::DeviceBuffer dw = testing::ToDevice(w), dx = testing::ToDevice(x), dy;
    ASSERT_TRUE(dy.Reserve(static_cast<size_t>(max_rows) * out * sizeof(float)).ok());
    std::vector<float> reference;  // every row, from the 200-row split-warps pass
    for (cuda::GemmVariant variant : {cuda::GemmVariant::kSplitWarps, cuda::GemmVariant::kTiled}) {
      for (int rows : {max_rows, 1, 7, 16, 33, 64, 65, 129}) {
        ASSERT_TRUE(cuda::BatchInvariantGemm(dw.data(), dx.data(), DeviceType::kBF16, out, cols,
                                             rows, dy.as<float>(), stream, variant)
                        .ok());
        ASSERT_EQ(cudaStreamSynchronize(stream), cudaSuccess);
        const std::vector<float> y = testing::ToHost<float>(dy, static_cast<size_t>(rows) * out);
        if (reference.empty()) {
          reference = y;
          // And the sums are right: against a double-precision product.
          double worst = 0, scale = 0;
          for (int r = 0; r < rows; r += 37) {
            for (int o = 0; o < out; ++o) {
              double sum = 0;
              for (int64_t c = 0; c < cols; ++c) {
                sum += static_cast<double>(__bfloat162float(x[r * ld + c])) *
                       __bfloat162float(w[o * ld + c]);
              }
              worst = std::max(worst, std::abs(sum - y[static_cast<size_t>(r) * out + o]));
              scale = std::max(scale, std::abs(sum));
            }
          }
          EXPECT_LE(worst / scale, 1e-4) << out << " x " << cols;
        }
        ASSERT_EQ(std::memcmp(y.data(), reference.data(), y.size() * sizeof(float)), 0)
            << out << " x " << cols << ", " << rows << " rows, kernel "
            << static_cast<int>(variant);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    ServingPrecisions, CudaBatchInvarianceTest,
    ::testing::Values(Case{DeviceType::kBF16, 256, 2}, Case{DeviceType::kBF16, 172, 2},
                      Case{DeviceType::kBF16, 256, 8}, Case{DeviceType::kF16, 256, 2}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.type == DeviceType::kBF16 ? "bf16" : "f16") + "_ffn" +
             std::to_string(info.param.ffn_dim) + "_kv" + std::to_string(info.param.n_kv_heads);
    });

}  // namespace
}  // namespace specserve
