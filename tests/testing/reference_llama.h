// A deliberately plain double-precision Llama forward for one sequence, used as
// the oracle for the engine's batched, cached, SIMD forward. Every tensor is
// dequantised with DequantizeRow and every loop is written out. Covers q/k/v
// biases, sliding windows (by position) and rope scaling (its frequencies from
// ComputeRopeFrequencies; llama.cpp is the oracle for those).
#pragma once

#include <functional>
#include <vector>

#include "common/model/loaded_model.h"

namespace specserve::testing {

// visible(i, j): may token i attend to token j (j <= i)? Default: causal.
using Visibility = std::function<bool(int i, int j)>;

// Logits (vocab_size each) for every token of `tokens` at positions `positions`
// (empty: 0, 1, 2, ...).
std::vector<std::vector<double>> ReferenceLogits(const LoadedModel& model,
                                                 const std::vector<int32_t>& tokens,
                                                 const std::vector<int32_t>& positions = {},
                                                 const Visibility& visible = nullptr);

}  // namespace specserve::testing
