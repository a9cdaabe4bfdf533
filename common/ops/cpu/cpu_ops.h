// The CPU backend of Ops (fp32 activations; weights read in their own type).
// MakeCpuOps (ops.h) picks the widest kernels this CPU supports, lowered by
// SPECSERVE_CPU_ISA; MakeCpuOpsWithIsa forces a level (tests, comparisons).
//
// An Ops object is used by one thread at a time (it owns its thread pool and
// attention scratch); give each engine its own. Two busy objects on one small
// machine compete for cores: size their thread counts to share them.
//
// Numerics: fp32 activations and accumulation. MatMul dequantises weights to
// fp32 exactly and gives bit-identical rows whatever n_rows and the thread
// count (batch invariance); attention uses an online softmax (max
// subtraction, fp32 sums, polynomial exp within ~2 ulp).
#pragma once

#include <memory>

#include "common/ops/ops.h"
#include "common/util/cpu_features.h"

namespace specserve {

// `isa` is clamped to what the CPU supports; num_threads 0 = all hardware threads.
std::unique_ptr<Ops> MakeCpuOpsWithIsa(int num_threads, CpuIsa isa);

}  // namespace specserve
