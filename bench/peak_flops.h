// Measures this machine's peak arithmetic rate the way the kernels compute:
// every thread runs independent chains of fused multiply-adds on the widest
// vectors the CPU has (zmm with AVX-512, ymm with AVX2+FMA), and, where the
// CPU has AVX512_BF16, bf16 dot products (vdpbf16ps: two multiply-adds per
// fp32 lane). The roofline of specserve-bench sets pass times against it.
#pragma once

namespace specserve {

struct PeakFlops {
  double fp32 = 0;  // FLOP/s (an FMA is 2 FLOPs), all threads
  double bf16 = 0;  // FLOP/s of vdpbf16ps, 0 where the CPU lacks AVX512_BF16
};

// Per second of CPU time of each thread, summed over `threads` threads: the
// rate the cores deliver, whatever else runs on them.
PeakFlops MeasurePeakFlops(int threads, double seconds = 0.2);

}  // namespace specserve
