// The batch-invariant bf16 GEMM (common/ops/cuda/gemm.h) against cuBLAS on the
// projection shapes of a 7B Llama, from decode (1-64 rows) through verify
// (160-1024) to prefill (4096), timed with CUDA events (median of 15 after
// warm-up) in one run: ms, TFLOP/s, GB/s of the bytes that must move (weights,
// activations, output), and ours/cuBLAS. The two results are compared too.
//
//   gpu_gemm_bench
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
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
  std::printf("%-6s %-12s %9s %9s %8s %8s %9s %9s %s\n", "rows", "out x in", "ours ms", "cublas ms",
              "ours/cb", "TFLOP/s", "GB/s", "cb GB/s", "max |diff| / max |y|");
  struct Shape {
    int out, in;
  };
  for (Shape shape : {Shape{4096, 4096}, Shape{11008, 4096}, Shape{4096, 11008}}) {
    const int64_t ld = GemmLeadingDim(shape.in);
    const auto w_host = RandomBf16(static_cast<size_t>(shape.out) * ld, 1);
    DeviceBuffer w, x, y_ours, y_cublas;
    if (!w.Reserve(w_host.size() * 2).ok()) return 1;
    cudaMemcpy(w.data(), w_host.data(), w_host.size() * 2, cudaMemcpyHostToDevice);
    for (int rows : {1, 8, 32, 64, 160, 512, 1024, 4096}) {
      const auto x_host = RandomBf16(static_cast<size_t>(GemmActivationRows(rows)) * ld, rows);
      if (!x.Reserve(x_host.size() * 2).ok() ||
          !y_ours.Reserve(static_cast<size_t>(rows) * shape.out * 4).ok() ||
          !y_cublas.Reserve(static_cast<size_t>(rows) * shape.out * 4).ok()) {
        return 1;
      }
      cudaMemcpy(x.data(), x_host.data(), x_host.size() * 2, cudaMemcpyHostToDevice);
      const double ours = MedianMs(stream, [&] {
        (void)BatchInvariantGemm(w.data(), x.data(), DeviceType::kBF16, shape.out, shape.in, rows,
                                 y_ours.as<float>(), stream);
      });
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
      std::vector<float> a(static_cast<size_t>(rows) * shape.out), b(a.size());
      cudaMemcpy(a.data(), y_ours.data(), a.size() * 4, cudaMemcpyDeviceToHost);
      cudaMemcpy(b.data(), y_cublas.data(), b.size() * 4, cudaMemcpyDeviceToHost);
      double diff = 0, scale = 0;
      for (size_t i = 0; i < a.size(); ++i) {
        diff = std::max(diff, static_cast<double>(std::fabs(a[i] - b[i])));
        scale = std::max(scale, static_cast<double>(std::fabs(b[i])));
      }
      const double flops = 2.0 * rows * shape.out * shape.in;
      const double bytes =
          2.0 * shape.out * shape.in + 2.0 * rows * shape.in + 4.0 * rows * shape.out;
      std::printf("%-6d %5dx%-6d %9.4f %9.4f %8.2f %8.1f %9.0f %9.0f %.2e\n", rows, shape.out,
                  shape.in, ours, theirs, ours / theirs, flops / ours / 1e9, bytes / ours / 1e6,
                  bytes / theirs / 1e6, diff / std::max(scale, 1e-30));
    }
  }
  cublasDestroy(cublas);
  cudaStreamDestroy(stream);
  return 0;
}

}  // namespace
}  // namespace specserve::cuda

int main() { return specserve::cuda::Run(); }
