#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {

const KernelTable& KernelsFor(CpuIsa isa) {
  static const KernelTable kScalar = {CpuIsa::kScalar, MatMulRangeScalar, AttentionScoresScalar,
                                      AttentionSoftmaxScalar, AttentionAccumulateScalar};
  static const KernelTable kAvx2 = {CpuIsa::kAvx2, MatMulRangeAvx2, AttentionScoresAvx2,
                                    AttentionSoftmaxAvx2, AttentionAccumulateAvx2};
  static const KernelTable kAvx512 = {CpuIsa::kAvx512, MatMulRangeAvx512, AttentionScoresAvx512,
                                      AttentionSoftmaxAvx512, AttentionAccumulateAvx512};
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
