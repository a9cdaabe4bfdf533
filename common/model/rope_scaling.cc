#include "common/model/rope_scaling.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"
#include "common/model/model_config.h"

namespace specserve {
namespace {

absl::Status Bad(const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat("rope scaling: ", what));
}

bool Positive(float v) { return std::isfinite(v) && v > 0.0f; }

// theta^(-2i/d) for pair i.
double BaseInvFreq(double theta, int i, int rope_dim) {
  return std::pow(theta, -2.0 * i / static_cast<double>(rope_dim));
}

// YaRN's dimension (in pairs' index units times 2) at which a wavelength makes
// `rotations` turns over `context` positions.
double YarnCorrectionDim(double rotations, int rope_dim, double theta, int context) {
  return rope_dim * std::log(context / (rotations * 2.0 * std::numbers::pi)) /
         (2.0 * std::log(theta));
}

}  // namespace

const char* RopeScalingTypeName(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::kNone:
      return "none";
    case RopeScalingType::kLinear:
      return "linear";
    case RopeScalingType::kLlama3:
      return "llama3";
    case RopeScalingType::kYarn:
      return "yarn";
  }
  return "none";
}

absl::StatusOr<RopeScalingType> ParseRopeScalingType(std::string_view name) {
  for (RopeScalingType t : {RopeScalingType::kNone, RopeScalingType::kLinear,
                            RopeScalingType::kLlama3, RopeScalingType::kYarn}) {
    if (name == RopeScalingTypeName(t)) return t;
  }
  if (name == "default") return RopeScalingType::kNone;  // HF's name for none
  return absl::InvalidArgumentError(
      absl::StrCat("rope scaling type '", std::string(name),
                   "' is not supported (only none, linear, llama3, yarn)"));
}

absl::Status RopeScaling::Validate(int rope_dim) const {
  if (type != RopeScalingType::kNone && (!Positive(factor) || factor < 1.0f)) {
    return Bad(absl::StrCat(RopeScalingTypeName(type), " factor (", factor, ") must be >= 1"));
  }
  if (type == RopeScalingType::kLlama3) {
    if (original_context <= 0) {
      return Bad(
          absl::StrCat("llama3 needs the original context length (got ", original_context, ")"));
    }
    if (!Positive(low_freq_factor) || !Positive(high_freq_factor) ||
        high_freq_factor <= low_freq_factor) {
      return Bad(absl::StrCat("llama3 low_freq_factor (", low_freq_factor,
                              ") and high_freq_factor (", high_freq_factor,
                              ") must be positive with low < high"));
    }
  }
  if (type == RopeScalingType::kYarn) {
    if (original_context < 0) {
      return Bad(absl::StrCat("yarn original context (", original_context, ") is negative"));
    }
    if (!Positive(beta_fast) || !Positive(beta_slow) || beta_slow > beta_fast) {
      return Bad(absl::StrCat("yarn beta_fast (", beta_fast, ") and beta_slow (", beta_slow,
                              ") must be positive with slow <= fast"));
    }
    if (!std::isfinite(attention_factor) || attention_factor < 0.0f) {
      return Bad(absl::StrCat("yarn attention factor (", attention_factor,
                              ") must be >= 0 (0: the default)"));
    }
  }
  if (!freq_factors.empty()) {
    if (static_cast<int>(freq_factors.size()) != rope_dim / 2) {
      return Bad(absl::StrCat(freq_factors.size(), " frequency factors for ", rope_dim / 2,
                              " rotated pairs (rope_dim ", rope_dim, ")"));
    }
    for (size_t i = 0; i < freq_factors.size(); ++i) {
      if (!Positive(freq_factors[i])) {
        return Bad(absl::StrCat("frequency factor ", i, " (", freq_factors[i],
                                ") must be a positive number"));
      }
    }
  }
  return absl::OkStatus();
}

std::string RopeScaling::Describe() const {
  std::string s = RopeScalingTypeName(type);
  switch (type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      absl::StrAppend(&s, " factor ", factor);
      break;
    case RopeScalingType::kLlama3:
      absl::StrAppend(&s, " factor ", factor, " original ", original_context, " low ",
                      low_freq_factor, " high ", high_freq_factor);
      break;
    case RopeScalingType::kYarn:
      absl::StrAppend(&s, " factor ", factor, " original ", original_context, " beta ", beta_fast,
                      "/", beta_slow, " attention ", attention_factor);
      break;
  }
  if (!freq_factors.empty()) absl::StrAppend(&s, " + ", freq_factors.size(), " frequency factors");
  return s;
}

RopeFrequencies PlainRopeFrequencies(float theta, int rope_dim) {
  ModelConfig c;
  c.rope_theta = theta;
  c.rope_dim = rope_dim;
  return ComputeRopeFrequencies(c);
}

std::vector<float> Llama3FrequencyFactors(const RopeScaling& s, float rope_theta, int rope_dim) {
  const int pairs = rope_dim / 2;
  std::vector<float> factors(pairs, 1.0f);
  const double low_wavelen = s.original_context / static_cast<double>(s.low_freq_factor);
  const double high_wavelen = s.original_context / static_cast<double>(s.high_freq_factor);
  for (int i = 0; i < pairs; ++i) {
    const double wavelen = 2.0 * std::numbers::pi / BaseInvFreq(rope_theta, i, rope_dim);
    if (wavelen < high_wavelen) continue;
    if (wavelen > low_wavelen) {
      factors[i] = s.factor;
      continue;
    }
    const double smooth = (s.original_context / wavelen - s.low_freq_factor) /
                          (s.high_freq_factor - s.low_freq_factor);
    factors[i] = static_cast<float>(1.0 / ((1.0 - smooth) / s.factor + smooth));
  }
  return factors;
}

RopeFrequencies ComputeRopeFrequencies(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  const int pairs = c.rope_dim / 2;
  std::vector<double> inv(pairs);
  for (int i = 0; i < pairs; ++i) {
    inv[i] =
        1.0f / std::pow(c.rope_theta, static_cast<float>(2 * i) / static_cast<float>(c.rope_dim));
  }
  RopeFrequencies out;
  switch (s.type) {
    case RopeScalingType::kNone:
      break;
    case RopeScalingType::kLinear:
      for (double& f : inv) f /= s.factor;
      break;
    case RopeScalingType::kLlama3: {
      const std::vector<float> factors = Llama3FrequencyFactors(s, c.rope_theta, c.rope_dim);
      for (int i = 0; i < pairs; ++i) inv[i] /= factors[i];
      break;
    }
    case RopeScalingType::kYarn: {
      const int context = s.original_context > 0 ? s.original_context : c.context_length;
      const double low = std::max(
          0.0, std::floor(YarnCorrectionDim(s.beta_fast, c.rope_dim, c.rope_theta, context)));
      const double high =
          std::min(static_cast<double>(c.rope_dim - 1),
                   std::ceil(YarnCorrectionDim(s.beta_slow, c.rope_dim, c.rope_theta, context)));
      for (int i = 0; i < pairs; ++i) {
        // 1 keeps the extrapolated (original) frequency, 0 takes the interpolated one.
        const double ramp = std::clamp((i - low) / std::max(0.001, high - low), 0.0, 1.0);
        const double extrapolate = 1.0 - ramp;
        inv[i] = inv[i] / s.factor * (1.0 - extrapolate) + inv[i] * extrapolate;
      }
      out.mscale = s.attention_factor > 0.0f ? s.attention_factor
                   : s.factor <= 1.0f        ? 1.0f
                                             : static_cast<float>(0.1 * std::log(s.factor) + 1.0);
      break;
    }
  }
  if (!s.freq_factors.empty()) {
    for (int i = 0; i < pairs; ++i) inv[i] /= s.freq_factors[i];
  }
  out.inv_freq.assign(inv.begin(), inv.end());
  return out;
}

}  // namespace specserve
