// The CPU backend of Ops (fp32 activations; weights read in their own type).
// MakeCpuOps (ops.h) picks the widest kernels this CPU supports, lowered by
// SPECSERVE_CPU_ISA; MakeCpuOpsWithIsa forces a level (tests, comparisons).
#pragma once

#include <memory>

#include "common/ops/ops.h"
#include "common/util/cpu_features.h"

namespace specserve {

// `isa` is clamped to what the CPU supports; num_threads 0 = all hardware threads.
std::unique_ptr<Ops> MakeCpuOpsWithIsa(int num_threads, CpuIsa isa);

}  // namespace specserve
