// The CUDA backend against the CPU backend on fresh random inputs (labelled
// `gpu`; skipped with a message where no CUDA device can be used).
//
// Error bounds, relative to the largest |CPU value| of the output:
//   fp32 element-wise ops and norms: 1e-5; attention: 1e-4 (__expf);
//   MatMul with weights on the device in f32: 1e-4 (cuBLAS sgemm order),
//   f16: 4e-3, bf16: 3e-2 (weights and activations rounded to 11/8 bits);
//   model logits: f32 weights 1e-3, bf16 weights 1e-1.
#include "common/ops/cuda/cuda_ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/engine/cuda/cuda_llama_model.h"
#include "common/engine/llama_model.h"
#include "common/model/model_loader.h"
#include "common/model/quantize.h"
#include "common/model/random_model.h"
#include "common/ops/cuda/attention.h"
#include "common/ops/cuda/cuda_kv_cache.h"
#include "common/ops/cuda/sampling.h"
#include "common/ops/ops.h"
#include "common/sampling/rng.h"
#include "common/sampling/sampler.h"
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
using testing::ToHost;

TEST(CudaOpsTest, MatMulMatchesCpuForEveryWeightTypeAndDevicePrecision) {
  SPECSERVE_REQUIRE_GPU();
  auto cpu = MakeCpuOps(1);
  for (TensorType type : {TensorType::kF32, TensorType::kF16, TensorType::kBF16, TensorType::kQ8_0,
                          TensorType::kQ4_0}) {
    auto model = MakeRandomModel(GpuConfig(), type, /*seed=*/7);
    ASSERT_NE(model, nullptr);
    const WeightTensor& w = model->weights.layers[0].w_gate;
    std::vector<float> dequantised(static_cast<size_t>(w.elements()));
    DequantizeRow(w.type, w.data, w.elements(), dequantised.data());
    WeightTensor reference = w;
    reference.type = TensorType::kF32;
    reference.data = dequantised.data();
    reference.packed = {};
    for (auto [device_type, bound] :
         {std::pair{DeviceType::kF32, 1e-4}, {DeviceType::kF16, 4e-3}, {DeviceType::kBF16, 3e-2}}) {
      auto ops = NewCudaOps(device_type);
      ASSERT_NE(ops, nullptr);
      for (int rows : {1, 7, 64}) {
        const std::vector<float> x = RandomVector(static_cast<size_t>(rows) * w.cols, rows);
        // The reference multiplies the dequantised weights: the CPU's own Q8_0 and
        // Q4_0 products quantise the activations to 8 bits too (as llama.cpp's
        // do), which the device does not (it rounds them to its weight type).
        std::vector<float> expected(static_cast<size_t>(rows) * w.rows);
        cpu->MatMul(reference, x.data(), rows, expected.data());
        DeviceBuffer dx = ToDevice(x), dy;
        ASSERT_TRUE(dy.Reserve(expected.size() * sizeof(float)).ok());
        ops->MatMul(w, dx.as<float>(), rows, dy.as<float>());
        ASSERT_TRUE(ops->Synchronize().ok()) << ops->status();
        EXPECT_LE(RelativeError(expected, ToHost<float>(dy, expected.size())), bound)
            << TensorTypeName(type) << " rows " << rows << " device type "
            << static_cast<int>(device_type);
      }
    }
  }
}

TEST(CudaOpsTest, ElementwiseOpsMatchCpu) {
  SPECSERVE_REQUIRE_GPU();
  auto cpu = MakeCpuOps(1);
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  auto model = MakeRandomModel(GpuConfig(), TensorType::kF32, /*seed=*/3);
  ASSERT_NE(model, nullptr);
  const ModelConfig& c = model->config;
  constexpr int kRows = 5;
  const std::vector<int32_t> tokens = {3, 1, 511, 0, 42};
  const std::vector<int32_t> positions = {0, 9, 100, 2047, 4000};

  // EmbedRows.
  std::vector<float> expected(kRows * c.dim);
  cpu->EmbedRows(model->weights.token_embedding, tokens, expected.data());
  DeviceBuffer out;
  ASSERT_TRUE(out.Reserve(expected.size() * sizeof(float)).ok());
  ops->EmbedRows(model->weights.token_embedding, tokens, out.as<float>());
  ASSERT_TRUE(ops->Synchronize().ok());
  EXPECT_LE(RelativeError(expected, ToHost<float>(out, expected.size())), 1e-6);

  // RmsNorm.
  const std::vector<float> x = RandomVector(kRows * c.dim, 11);
  cpu->RmsNorm(x.data(), model->weights.layers[0].attn_norm, c.rms_eps, kRows, expected.data());
  DeviceBuffer dx = ToDevice(x);
  ops->RmsNorm(dx.as<float>(), model->weights.layers[0].attn_norm, c.rms_eps, kRows,
               out.as<float>());
  ASSERT_TRUE(ops->Synchronize().ok());
  EXPECT_LE(RelativeError(expected, ToHost<float>(out, expected.size())), 1e-5);

  // Rope, both styles, with a row stride wider than the heads.
  for (RopeStyle style : {RopeStyle::kInterleaved, RopeStyle::kHalf}) {
    std::vector<float> host = x;
    cpu->Rope(host.data(), kRows, c.dim, 4, 32, positions, PlainRopeFrequencies(10000.0f, 16),
              style);
    DeviceBuffer d = ToDevice(x);
    ops->Rope(d.as<float>(), kRows, c.dim, 4, 32, positions, PlainRopeFrequencies(10000.0f, 16),
              style);
    ASSERT_TRUE(ops->Synchronize().ok());
    EXPECT_LE(RelativeError(host, ToHost<float>(d, host.size())), 1e-5);
  }

  // SwiGlu and Add.
  const std::vector<float> up = RandomVector(x.size(), 12, 3.0f);
  cpu->SwiGlu(x.data(), up.data(), static_cast<int64_t>(x.size()), expected.data());
  DeviceBuffer dup = ToDevice(up);
  ops->SwiGlu(dx.as<float>(), dup.as<float>(), static_cast<int64_t>(x.size()), out.as<float>());
  ASSERT_TRUE(ops->Synchronize().ok());
  EXPECT_LE(RelativeError(expected, ToHost<float>(out, expected.size())), 1e-5);
  std::vector<float> sum = x;
  cpu->Add(sum.data(), up.data(), static_cast<int64_t>(x.size()));
  ops->Add(dx.as<float>(), dup.as<float>(), static_cast<int64_t>(x.size()));
  ASSERT_TRUE(ops->Synchronize().ok());
  EXPECT_LE(RelativeError(sum, ToHost<float>(dx, sum.size())), 1e-6);
}

// Attention over two cached segments (as a window cache gives: sinks + ring)
// and new rows, causal and tree-masked, short and long (split-K) contexts.
TEST(CudaOpsTest, AttentionMatchesCpu) {
  SPECSERVE_REQUIRE_GPU();
  auto cpu = MakeCpuOps(1);
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  const AttentionShape shape{8, 2, 64, 0.125f};
  const int q_dim = 8 * 64, kv_dim = 2 * 64;
  for (int cached : {0, 5, 300, 6000}) {
    for (bool tree : {false, true}) {
      const int n_new = 6;
      const std::vector<int32_t> parents = {-1, 0, 0, 1, -1, 4};
      const int seg0 = cached / 3;
      const AttentionInputs in{RandomVector(static_cast<size_t>(cached) * kv_dim, 1),
                               RandomVector(static_cast<size_t>(cached) * kv_dim, 2),
                               RandomVector(n_new * q_dim, 3, 2.0f),
                               RandomVector(n_new * kv_dim, 4), RandomVector(n_new * kv_dim, 5)};
      auto describe = [&](const float* bk, const float* bv, const float* bq, const float* nk,
                          const float* nv, float* o) {
        AttentionSequence a;
        if (seg0 > 0) a.cached.push_back({bk, bv, seg0});
        if (cached > seg0) {
          a.cached.push_back({bk + static_cast<size_t>(seg0) * kv_dim,
                              bv + static_cast<size_t>(seg0) * kv_dim, cached - seg0});
        }
        a.n_new = n_new;
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
          *cpu, *ops, shape, in, n_new * q_dim, describe,
          "cached " + std::to_string(cached) + " tree " + std::to_string(tree));
    }
  }
}

TEST(CudaKvCacheTest, CommitCompactsTheKeptRows) {
  SPECSERVE_REQUIRE_GPU();
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  constexpr int kKvDim = 4;
  auto cache = cuda::CudaKvCache::Create({1, kKvDim}, 16, ops->stream());
  ASSERT_TRUE(cache.ok()) << cache.status();
  std::vector<float> rows(6 * kKvDim);
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<float>(i);
  DeviceBuffer d = ToDevice(rows);
  ASSERT_TRUE((*cache)->ReservePending(2).ok());
  (*cache)->WritePending(0, 0, d.as<float>(), d.as<float>(), 2, kKvDim);
  (*cache)->CommitAll();
  ASSERT_TRUE((*cache)->ReservePending(4).ok());
  (*cache)->WritePending(0, 0, d.as<float>() + 2 * kKvDim, d.as<float>() + 2 * kKvDim, 4, kKvDim);
  const std::vector<int32_t> keep = {1, 3};
  ASSERT_TRUE((*cache)->Commit(keep).ok());
  EXPECT_EQ((*cache)->committed_tokens(), 4);
  std::vector<KvSegment> segments;
  (*cache)->CommittedSegments(0, &segments);
  ASSERT_EQ(segments.size(), 1u);
  std::vector<float> got(4 * kKvDim);
  ASSERT_EQ(
      cudaMemcpy(got.data(), segments[0].k, got.size() * sizeof(float), cudaMemcpyDeviceToHost),
      cudaSuccess);
  for (int c = 0; c < kKvDim; ++c) {
    EXPECT_EQ(got[0 * kKvDim + c], rows[0 * kKvDim + c]);
    EXPECT_EQ(got[1 * kKvDim + c], rows[1 * kKvDim + c]);
    EXPECT_EQ(got[2 * kKvDim + c], rows[3 * kKvDim + c]);  // pending 1 = row 3
    EXPECT_EQ(got[3 * kKvDim + c], rows[5 * kKvDim + c]);  // pending 3 = row 5
  }
  EXPECT_EQ((*cache)->ReservePending(13).status().code(), absl::StatusCode::kResourceExhausted);
}

// Commits that keep a prefix in place, move the rest, or move more rows than
// one launch takes (MovedRows::kMax), on every layer's K and V: the committed
// rows equal a host model of the same operations.
TEST(CudaKvCacheTest, CommitMovesOnlyRowsOutOfPlaceOnEveryLayer) {
  SPECSERVE_REQUIRE_GPU();
  auto ops = NewCudaOps(DeviceType::kF32);
  ASSERT_NE(ops, nullptr);
  constexpr int kLayers = 3, kKvDim = 8, kMax = 1200;
  auto cache = cuda::CudaKvCache::Create({kLayers, kKvDim}, kMax, ops->stream());
  ASSERT_TRUE(cache.ok()) << cache.status();
  // host[layer][k or v]: the committed rows, as the cache should hold them.
  std::vector<std::vector<float>> host(2 * kLayers);
  float next_value = 1.0f;
  auto pass = [&](int n, const std::vector<int32_t>& keep) {
    ASSERT_TRUE((*cache)->ReservePending(n).ok());
    std::vector<std::vector<float>> written(2 * kLayers);
    for (int l = 0; l < kLayers; ++l) {
      std::vector<float> k(static_cast<size_t>(n) * kKvDim), v(k.size());
      for (float& x : k) x = next_value++;
      for (float& x : v) x = next_value++;
      DeviceBuffer dk = ToDevice(k), dv = ToDevice(v);
      (*cache)->WritePending(l, 0, dk.as<float>(), dv.as<float>(), n, kKvDim);
      ASSERT_TRUE(ops->Synchronize().ok());
      written[2 * l] = k;
      written[2 * l + 1] = v;
    }
    ASSERT_TRUE((*cache)->Commit(keep).ok());
    for (int p = 0; p < 2 * kLayers; ++p) {
      for (int32_t row : keep) {
        host[p].insert(host[p].end(), written[p].begin() + row * kKvDim,
                       written[p].begin() + (row + 1) * kKvDim);
      }
    }
  };
  pass(1, {0});           // a plain step: in place
  pass(5, {0, 1, 2});     // an accepted chain prefix: in place
  pass(6, {0, 1, 3, 5});  // a tree path: two rows move
  pass(4, {2});           // nothing in place
  std::vector<int32_t> every_other;
  for (int i = 1; i < 700; i += 2) every_other.push_back(i);  // 350 moved rows
  pass(700, every_other);
  const int committed = static_cast<int>(host[0].size()) / kKvDim;
  EXPECT_EQ((*cache)->committed_tokens(), committed);
  for (int l = 0; l < kLayers; ++l) {
    std::vector<KvSegment> segments;
    (*cache)->CommittedSegments(l, &segments);
    ASSERT_EQ(segments.size(), 1u);
    for (int kv = 0; kv < 2; ++kv) {
      std::vector<float> got(host[2 * l + kv].size());
      ASSERT_EQ(cudaMemcpy(got.data(), kv == 0 ? segments[0].k : segments[0].v,
                           got.size() * sizeof(float), cudaMemcpyDeviceToHost),
                cudaSuccess);
      EXPECT_EQ(got, host[2 * l + kv]) << "layer " << l << (kv == 0 ? " K" : " V");
    }
  }
}

// Prefill, decode and a tree verification on both backends.
std::vector<float> RunModel(const std::function<absl::Status(std::span<const ForwardSequence>,
                                                             std::vector<float>*)>& forward,
                            KvCache& cache, int vocab) {
  std::vector<float> all, logits;
  Rng rng(9);
  std::vector<int32_t> prompt(37);
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.Next() % vocab);
  std::vector<int32_t> rows(prompt.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
  ForwardSequence prefill{&cache, prompt, {}, {}, {}, rows};
  EXPECT_TRUE(forward({&prefill, 1}, &logits).ok());
  all.insert(all.end(), logits.begin(), logits.end());
  cache.CommitAll();
  const std::vector<int32_t> tree_tokens = {5, 6, 7, 8, 9};
  const std::vector<int32_t> parents = {-1, 0, 0, 1, -1};
  const std::vector<int32_t> positions = {37, 38, 38, 39, 37};
  const std::vector<int32_t> tree_rows = {0, 1, 2, 3, 4};
  ForwardSequence verify{&cache, tree_tokens, positions, parents, {}, tree_rows};
  EXPECT_TRUE(forward({&verify, 1}, &logits).ok());
  all.insert(all.end(), logits.begin(), logits.end());
  const std::vector<int32_t> keep = {0, 1, 3};
  EXPECT_TRUE(cache.Commit(keep).ok());
  const std::vector<int32_t> next = {11};
  const std::vector<int32_t> last = {0};
  ForwardSequence decode{&cache, next, {}, {}, {}, last};
  EXPECT_TRUE(forward({&decode, 1}, &logits).ok());
  all.insert(all.end(), logits.begin(), logits.end());
  return all;
}

TEST(CudaLlamaModelTest, LogitsMatchTheCpuModel) {
  SPECSERVE_REQUIRE_GPU();
  // f16 weights: the CPU multiplies them exactly (its Q8_0/Q4_0 products would
  // quantise the activations, which the device does not; MatMul's test covers those).
  auto model = MakeRandomModel(GpuConfig(), TensorType::kF16, /*seed=*/21);
  ASSERT_NE(model, nullptr);
  auto cpu_ops = MakeCpuOps(1);
  LlamaModel cpu(*model, *cpu_ops);
  auto cpu_cache = MakeFullKvCache(cpu.kv_shape());
  const std::vector<float> expected = RunModel([&](auto b, auto* l) { return cpu.Forward(b, l); },
                                               *cpu_cache, GpuConfig().vocab_size);
  for (auto [type, bound] : {std::pair{DeviceType::kF32, 1e-3}, {DeviceType::kBF16, 1e-1}}) {
    auto ops = NewCudaOps(type);
    ASSERT_NE(ops, nullptr);
    ASSERT_TRUE(ops->UploadModel(*model).ok());
    cuda::CudaLlamaModel gpu(*model, *ops);
    auto cache = gpu.NewKvCache(256);
    ASSERT_TRUE(cache.ok()) << cache.status();
    const std::vector<float> got = RunModel([&](auto b, auto* l) { return gpu.Forward(b, l); },
                                            **cache, GpuConfig().vocab_size);
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_LE(RelativeError(expected, got), bound) << static_cast<int>(type);
  }
}

TEST(CudaSamplingTest, ArgmaxAndTopKOneMatchTheCpuArgmax) {
  SPECSERVE_REQUIRE_GPU();
  constexpr int kRows = 9, kVocab = 5000;
  const std::vector<float> logits = RandomVector(kRows * kVocab, 31, 8.0f);
  DeviceBuffer d = ToDevice(logits), out;
  ASSERT_TRUE(out.Reserve(kRows * sizeof(int32_t)).ok());
  ASSERT_TRUE(cuda::ArgmaxRows(d.as<float>(), kRows, kVocab, out.as<int32_t>(), nullptr).ok());
  std::vector<int32_t> got = ToHost<int32_t>(out, kRows);
  std::vector<cuda::DeviceSamplingRow> params(kRows, {0.7f, 1, 1.0f, 0.5f});
  DeviceBuffer dp = ToDevice(params), sampled;
  ASSERT_TRUE(sampled.Reserve(kRows * sizeof(int32_t)).ok());
  ASSERT_TRUE(cuda::SampleRows(d.as<float>(), kRows, kVocab, dp.as<const cuda::DeviceSamplingRow>(),
                               sampled.as<int32_t>(), nullptr)
                  .ok());
  const std::vector<int32_t> top1 = ToHost<int32_t>(sampled, kRows);
  for (int r = 0; r < kRows; ++r) {
    const int32_t expected = Argmax({logits.data() + r * kVocab, kVocab});
    EXPECT_EQ(got[r], expected) << r;
    EXPECT_EQ(top1[r], expected) << r;
  }
}

// Draw frequencies of one row follow the CPU's SamplingDistribution.
TEST(CudaSamplingTest, DrawsFollowTheCpuDistribution) {
  SPECSERVE_REQUIRE_GPU();
  constexpr int kVocab = 64, kDraws = 20000;
  const std::vector<float> row = RandomVector(kVocab, 41, 3.0f);
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_k = 20;
  p.top_p = 0.9f;
  const std::vector<TokenProb> dist = SamplingDistribution(row, p);
  std::vector<float> logits;
  for (int i = 0; i < kDraws; ++i) logits.insert(logits.end(), row.begin(), row.end());
  Rng rng(5);
  std::vector<cuda::DeviceSamplingRow> params(kDraws);
  for (auto& q : params) {
    q = {p.temperature, p.top_k, p.top_p, static_cast<float>(rng.Uniform())};
  }
  DeviceBuffer d = ToDevice(logits), dp = ToDevice(params), out;
  ASSERT_TRUE(out.Reserve(kDraws * sizeof(int32_t)).ok());
  ASSERT_TRUE(cuda::SampleRows(d.as<float>(), kDraws, kVocab,
                               dp.as<const cuda::DeviceSamplingRow>(), out.as<int32_t>(), nullptr)
                  .ok());
  std::vector<int> counts(kVocab, 0);
  for (int32_t t : ToHost<int32_t>(out, kDraws)) counts[t]++;
  std::vector<double> expected(kVocab, 0.0);
  for (const TokenProb& tp : dist) expected[tp.token] = tp.prob;
  for (int t = 0; t < kVocab; ++t) {
    const double freq = static_cast<double>(counts[t]) / kDraws;
    EXPECT_NEAR(freq, expected[t], 0.015) << "token " << t;
  }
}

TEST(CudaRealModelTest, Stories260KGreedyMatchesTheCpu) {
  SPECSERVE_REQUIRE_GPU();
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  auto model = LoadModel(path);
  ASSERT_TRUE(model.ok()) << model.status();
  auto cpu_ops = MakeCpuOps(1);
  LlamaModel cpu(**model, *cpu_ops);
  constexpr int kTokens = 64;
  auto greedy = [&](auto forward, KvCache& cache) {
    std::vector<int32_t> input = {1, 403, 407, 261, 378}, out;
    for (int i = 0; i < kTokens; ++i) {
      const std::vector<int32_t> last = {static_cast<int32_t>(input.size()) - 1};
      ForwardSequence seq{&cache, input, {}, {}, {}, last};
      std::vector<float> logits;
      if (!forward(seq, &logits).ok()) break;
      cache.CommitAll();
      out.push_back(Argmax(logits));
      input = {out.back()};
    }
    return out;
  };
  auto cpu_cache = MakeFullKvCache(cpu.kv_shape());
  const std::vector<int32_t> expected = greedy(
      [&](const ForwardSequence& s, std::vector<float>* l) {
        return cpu.Forward({&s, 1}, l);
      },
      *cpu_cache);
  for (DeviceType type : {DeviceType::kF32, DeviceType::kBF16}) {
    auto ops = NewCudaOps(type);
    ASSERT_NE(ops, nullptr);
    cuda::CudaLlamaModel gpu(**model, *ops);
    auto cache = gpu.NewKvCache(256);
    ASSERT_TRUE(cache.ok());
    const std::vector<int32_t> got = greedy(
        [&](const ForwardSequence& s, std::vector<float>* l) {
          return gpu.Forward({&s, 1}, l);
        },
        **cache);
    int same = 0;
    while (same < static_cast<int>(std::min(got.size(), expected.size())) &&
           got[same] == expected[same]) {
      ++same;
    }
    std::printf("stories260K %s: %d of %d greedy tokens equal the CPU's\n",
                type == DeviceType::kF32 ? "f32" : "bf16", same, kTokens);
    if (type == DeviceType::kF32) {
      EXPECT_EQ(got, expected);
    }
  }
}

}  // namespace
}  // namespace specserve
