// Rotary-embedding frequency scaling for contexts past the trained one: linear
// (position interpolation, e.g. LLaMA-2-7B-32K), `llama3` (Llama 3.1: low frequencies
// divided by the factor, high ones kept, a smooth ramp between) and YaRN (Qwen2.5
// long context: per-dimension ramp between interpolated and extrapolated frequencies,
// and cos/sin scaled by an attention factor). The forward pass never sees the kind: it
// gets one inverse-frequency table per model, computed once here. A window KV cache
// keeps each token's true position, so the same table serves the draft.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace specserve {

struct ModelConfig;

enum class RopeScalingType { kNone, kLinear, kLlama3, kYarn };

// "none", "linear", "llama3", "yarn" (the names of HF rope_type and GGUF rope.scaling.type).
const char* RopeScalingTypeName(RopeScalingType type);
// The type named `name`; an unknown name is an error that names it.
absl::StatusOr<RopeScalingType> ParseRopeScalingType(std::string_view name);

struct RopeScaling {
  RopeScalingType type = RopeScalingType::kNone;
  // linear, yarn: positions count as position / factor; llama3: the longest
  // wavelengths are divided by it.
  float factor = 1.0f;
  // llama3, yarn: the context length before scaling (HF original_max_position_embeddings).
  int original_context = 0;
  // llama3: wavelengths above original_context / low_freq_factor are scaled by 1/factor,
  // those below original_context / high_freq_factor kept, a linear mix in between.
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  // yarn: the rotation counts that bound the ramp, and the factor cos/sin are
  // multiplied by (0: the YaRN default 0.1 * ln(factor) + 1).
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float attention_factor = 0.0f;
  // Per rotated pair, a divisor of its frequency (GGUF rope_freqs.weight, how llama.cpp
  // stores `llama3` scaling); empty: none. Applies on top of `type`.
  std::vector<float> freq_factors;

  bool is_identity() const { return type == RopeScalingType::kNone && freq_factors.empty(); }
  // Checks the numbers for a model rotating `rope_dim` dimensions; names the bad field.
  absl::Status Validate(int rope_dim) const;
  // One line for `info`: "llama3 factor 8 original 8192 low 1 high 4".
  std::string Describe() const;
};

// What the Rope op needs: for rotated pair i (of rope_dim / 2), the angle per unit of
// position, and the factor cos and sin are multiplied by.
struct RopeFrequencies {
  std::vector<float> inv_freq;
  float mscale = 1.0f;
};

// From rope_theta, rope_dim and rope_scaling of `config` (which must be valid): the
// base frequency 1 / powf(theta, 2i / rope_dim) in float as llama2.c computes it (so
// unscaled models rotate exactly as before), then the scaling and the freq_factors
// in double.
RopeFrequencies ComputeRopeFrequencies(const ModelConfig& config);
// Unscaled frequencies of `theta` over `rope_dim` dimensions (tests, tools).
RopeFrequencies PlainRopeFrequencies(float theta, int rope_dim);

// The llama3 scaling as per-pair divisors (what llama.cpp's converter writes as
// rope_freqs.weight), for rope_dim / 2 pairs.
std::vector<float> Llama3FrequencyFactors(const RopeScaling& scaling, float rope_theta,
                                          int rope_dim);

}  // namespace specserve
