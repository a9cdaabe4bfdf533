// Measures this machine's memory read bandwidth the way a decode step reads:
// several threads streaming through a buffer much larger than the caches.
#pragma once

namespace specserve {

// Bytes per second, best of `repeats` passes over `bytes` bytes with `threads` threads.
double MeasureReadBandwidth(int threads, double bytes = 1.0e9, int repeats = 5);

// The same passes, each thread's bytes over its own CPU seconds, summed: what
// the cores deliver when other processes share them (--clock cpu).
double MeasureReadBandwidthPerCpuSecond(int threads, double bytes = 1.0e9, int repeats = 5);

}  // namespace specserve
