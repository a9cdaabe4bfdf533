// The AVX-512 VNNI variant of the integer Q8_0 / Q4_0 kernel (compiled with
// -mavx512f/bw/vl/dq -mavx512vnni -mfma -mf16c; chosen by kernel_table.cc only
// where the CPU has AVX512_VNNI). Same results as MatMulQuantizedRangeAvx512.

// GCC 12 (bug 105593): AVX-512 intrinsics built on _mm512_undefined_*() trip
// -Wuninitialized / -Wmaybe-uninitialized once inlined. Fixed in GCC 13.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

#include "common/ops/cpu/matmul_quantized_avx512.inc"

}  // namespace

void MatMulQuantizedRangeAvx512Vnni(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                                    float*) {
  quantized::QuantizedRange<true>(p, o_begin, o_end);
}

}  // namespace specserve::cpu
