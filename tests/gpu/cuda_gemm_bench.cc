// The batch-invariant bf16 GEMM (common/ops/cuda/gemm.h) against cuBLAS on the
// projection shapes of a 7B Llama, from decode (1-64 rows) through verify
// (160-1024) to prefill (4096), timed with CUDA events (median of 15 after
// warm-up) in one run: both kernels' ms, cuBLAS's, the faster one's TFLOP/s and
// GB/s of the bytes that must move (weights, activations, output), ours/cuBLAS;
// and batch invariance checked bit for bit: the two kernels agree, and row 0
// is the same in every pass as in the 1-row pass. Exits 1 when they do not.
//
//   gpu_gemm_bench
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/device_buffer.h"
#include "common/ops/cuda/gemm.h"
#include "common/sampling/rng.h"

namespace specserve::cuda {
namespace {

template <class F>
double MedianMs(cudaStream_t stream, F&& f) {
  for (int i = 0; i < 3; ++i) f();
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  std::vector<float> ms;
  for (int i = 0; i < 15; ++i) {
    cudaEventRecord(a, stream);
    f();
    cudaEventRecord(b, stream);
    cudaEventSynchronize(b);
    float t = 0;
    cudaEventElapsedTime(&t, a, b);
    ms.push_back(t);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

std::vector<__nv_bfloat16> RandomBf16(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<__nv_bfloat16> out(n);
  for (auto& v : out) v = __float2bfloat16(static_cast<float>(rng.Uniform() * 2.0 - 1.0));
  return out;
}

int Run() {
  if (absl::Status s = CudaDeviceAvailable(); !s.ok()) {
    std::fprintf(stderr, "no usable CUDA device: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  cudaStream_t stream;
  cudaStreamCreate(&stream);
  cublasHandle_t cublas;
  cublasCreate(&cublas);
  cublasSetStream(cublas, stream);
  std::printf("%-5s %-11s %8s %8s %8s %7s %7s %7s %6s %s\n", "rows", "out x in", "split ms",
              "tiled ms", "cublas", "best/cb", "TFLOP/s", "GB/s", "cbGB/s",
              "split==tiled, row 0 == 1-row pass (bits), |ours - cublas| / max|y|");
  struct Shape {
    int out, in;
  };
  bool all_same = true;
  for (Shape shape : {Shape{4096, 4096}, Shape{11008, 4096}, Shape{4096, 11008}, Shape{32000, 4096},
                      Shape{2048, 2048}}) {
    const int64_t ld = GemmLeadingDim(shape.in);
    const auto w_host = RandomBf16(static_cast<size_t>(GemmWeightRows(shape.out)) * ld, 1);
    DeviceBuffer w, x, y_split, y_tiled, y_cublas;
    if (!w.Reserve(w_host.size() * 2).ok()) return 1;
    cudaMemcpy(w.data(), w_host.data(), w_host.size() * 2, cudaMemcpyHostToDevice);
    const auto x_host = RandomBf16(static_cast<size_t>(GemmActivationRows(4096)) * ld, 2);
    if (!x.Reserve(x_host.size() * 2).ok()) return 1;
    cudaMemcpy(x.data(), x_host.data(), x_host.size() * 2, cudaMemcpyHostToDevice);
    std::vector<float> row0;  // row 0 of the 1-row pass
    for (int rows : {1, 8, 16, 32, 64, 160, 512, 1024, 4096}) {
      const size_t y_bytes = static_cast<size_t>(rows) * shape.out * 4;
      if (!y_split.Reserve(y_bytes).ok() || !y_tiled.Reserve(y_bytes).ok() ||
          !y_cublas.Reserve(y_bytes).ok()) {
        return 1;
      }
      auto ours = [&](GemmVariant variant, DeviceBuffer& y) {
        return MedianMs(stream, [&] {
          (void)BatchInvariantGemm(w.data(), x.data(), DeviceType::kBF16, shape.out, shape.in, rows,
                                   y.as<float>(), stream, variant);
        });
      };
      const double split = ours(GemmVariant::kSplitWarps, y_split);
      const double tiled = ours(GemmVariant::kTiled, y_tiled);
      const float alpha = 1.0f, beta = 0.0f;
      const double theirs = MedianMs(stream, [&] {
        cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, shape.out, rows, shape.in, &alpha, w.data(),
                     CUDA_R_16BF, ld, x.data(), CUDA_R_16BF, ld, &beta, y_cublas.data(), CUDA_R_32F,
                     shape.out, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      });
      if (absl::Status s = CudaStatus(cudaStreamSynchronize(stream), "bench"); !s.ok()) {
        std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
        return 1;
      }
      const size_t count = static_cast<size_t>(rows) * shape.out;
      std::vector<float> a(count), b(count), c(count);
      cudaMemcpy(a.data(), y_split.data(), count * 4, cudaMemcpyDeviceToHost);
      cudaMemcpy(b.data(), y_tiled.data(), count * 4, cudaMemcpyDeviceToHost);
      cudaMemcpy(c.data(), y_cublas.data(), count * 4, cudaMemcpyDeviceToHost);
      if (rows == 1) row0.assign(a.begin(), a.begin() + shape.out);
      const bool same = std::memcmp(a.data(), b.data(), count * 4) == 0;
      const bool row_same = std::memcmp(a.data(), row0.data(), shape.out * 4) == 0 &&
                            std::memcmp(b.data(), row0.data(), shape.out * 4) == 0;
      all_same = all_same && same && row_same;
      double diff = 0, scale = 0;
      for (size_t i = 0; i < count; ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(a[i] - c[i])));
        scale = std::max(scale, static_cast<double>(std::fabs(c[i])));
      }
      const double best = std::min(split, tiled);
      const double flops = 2.0 * rows * shape.out * shape.in;
      const double bytes =
          2.0 * shape.out * shape.in + 2.0 * rows * shape.in + 4.0 * rows * shape.out;
      std::printf("%-5d %5dx%-5d %8.4f %8.4f %8.4f %7.2f %7.1f %7.0f %6.0f %s %s %.1e\n", rows,
                  shape.out, shape.in, split, tiled, theirs, best / theirs, flops / best / 1e9,
                  bytes / best / 1e6, bytes / theirs / 1e6, same ? "yes" : "NO",
                  row_same ? "yes" : "NO", diff / std::max(scale, 1e-30));
    }
  }
  std::printf(all_same
                  ? "batch invariance: every result bit-identical across kernels and row counts\n"
                  : "BATCH INVARIANCE BROKEN: see the NO entries\n");
  cublasDestroy(cublas);
  cudaStreamDestroy(stream);
  return all_same ? 0 : 1;
}

}  // namespace
}  // namespace specserve::cuda

int main() { return specserve::cuda::Run(); }
