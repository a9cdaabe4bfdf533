#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {

const KernelTable& KernelsFor(CpuIsa isa) {
  static const KernelTable kScalar = {
      .isa = CpuIsa::kScalar,
      .matmul = MatMulRangeScalar,
      .quantize_activations = QuantizeActivationsScalar,
      .matmul_quantized = MatMulQuantizedRangeScalar,
      .attention_rows = AttentionRowsScalar,
      .swiglu = SwiGluScalar,
  };
  static const KernelTable kAvx2 = {
      .isa = CpuIsa::kAvx2,
      .matmul = MatMulRangeAvx2,
      .quantize_activations = QuantizeActivationsAvx2,
      .matmul_quantized = MatMulQuantizedRangeAvx2,
      .attention_rows = AttentionRowsAvx2,
      .swiglu = SwiGluAvx2,
      .pack_lanes = PackLanesAvx2,
      .lanes_panel_rows = kMatMulLanesPanelRowsAvx2,
  };
  static const KernelTable kAvx512 = {
      .isa = CpuIsa::kAvx512,
      .matmul = MatMulRangeAvx512,
      .quantize_activations = QuantizeActivationsAvx512,
      // vpdpbusd where the CPU has AVX-512 VNNI; both variants give identical results.
      .matmul_quantized = GetCpuFeatures().avx512_vnni ? MatMulQuantizedRangeAvx512Vnni
                                                       : MatMulQuantizedRangeAvx512,
      // vdpbf16ps for bf16 caches where the CPU has it and it computes what
      // the FMA variant does (it flushes subnormal results, which the others
      // do not: only sums below 2^-126 can tell them apart).
      .attention_rows = GetCpuFeatures().avx512_bf16 && Bf16DotAgreesWithFmas()
                            ? AttentionRowsAvx512Bf16
                            : AttentionRowsAvx512,
      .swiglu = SwiGluAvx512,
      .pack_lanes = PackLanesAvx512,
      .lanes_panel_rows = kMatMulLanesPanelRowsAvx512,
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
