#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {

const KernelTable& KernelsFor(CpuIsa isa) {
  static const KernelTable kScalar = {
      .isa = CpuIsa::kScalar,
      .matmul = MatMulRangeScalar,
      .quantize_activations = QuantizeActivationsScalar,
      .matmul_quantized = MatMulQuantizedRangeScalar,
      .attention_rows = AttentionRowsScalar,
  };
  static const KernelTable kAvx2 = {
      .isa = CpuIsa::kAvx2,
      .matmul = MatMulRangeAvx2,
      .quantize_activations = QuantizeActivationsAvx2,
      .matmul_quantized = MatMulQuantizedRangeAvx2,
      .attention_rows = AttentionRowsAvx2,
  };
  static const KernelTable kAvx512 = {
      .isa = CpuIsa::kAvx512,
      .matmul = MatMulRangeAvx512,
      .quantize_activations = QuantizeActivationsAvx512,
      // vpdpbusd where the CPU has AVX-512 VNNI; both variants give identical results.
      .matmul_quantized = GetCpuFeatures().avx512_vnni ? MatMulQuantizedRangeAvx512Vnni
                                                       : MatMulQuantizedRangeAvx512,
      .attention_rows = AttentionRowsAvx512,
  };
  switch (isa) {
    case CpuIsa::kAvx512:
      return kAvx512;
    case CpuIsa::kAvx2:
      return kAvx2;
    case CpuIsa::kScalar:
      break;
  }
  return kScalar;
}

}  // namespace specserve::cpu
