#include "common/model/model_config.h"

#include <cmath>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace specserve {
namespace {

// Limits well beyond any real Llama model, to catch garbage headers early.
constexpr int kMaxDim = 1 << 17;
constexpr int kMaxLayers = 4096;
constexpr int kMaxHeads = 4096;
constexpr int kMaxFfn = 1 << 20;
constexpr int kMaxVocab = 1 << 24;
constexpr int kMaxContext = 1 << 24;

absl::Status CheckRange(const char* field, int value, int max) {
  if (value <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, " (", value, ") must be positive"));
  }
  if (value > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " (", value, ") is implausibly large (limit ", max, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ModelConfig::Validate() const {
  if (head_dim == 0 && n_heads > 0 && dim > 0) {  // the usual derivation was not done
    if (dim % n_heads != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("n_heads (", n_heads, ") must divide dim (", dim, ")"));
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "head_dim (0) must be positive (usually dim / n_heads = ", dim / n_heads, ")"));
  }
  for (const auto& [field, value, max] : {std::tuple<const char*, int, int>{"dim", dim, kMaxDim},
                                          {"n_layers", n_layers, kMaxLayers},
                                          {"n_heads", n_heads, kMaxHeads},
                                          {"n_kv_heads", n_kv_heads, kMaxHeads},
                                          {"head_dim", head_dim, kMaxDim},
                                          {"ffn_dim", ffn_dim, kMaxFfn},
                                          {"vocab_size", vocab_size, kMaxVocab},
                                          {"context_length", context_length, kMaxContext},
                                          {"rope_dim", rope_dim, kMaxDim}}) {
    if (absl::Status s = CheckRange(field, value, max); !s.ok()) return s;
  }
  if (n_kv_heads > n_heads || n_heads % n_kv_heads != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_kv_heads (", n_kv_heads, ") must divide n_heads (", n_heads, ")"));
  }
  if (static_cast<int64_t>(n_heads) * head_dim > kMaxDim) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_heads (", n_heads, ") * head_dim (", head_dim, ") is implausibly large"));
  }
  if (rope_dim > head_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope_dim (", rope_dim, ") must not exceed head_dim (", head_dim, ")"));
  }
  if (rope_dim % 2 != 0) {
    return absl::InvalidArgumentError(absl::StrCat("rope_dim (", rope_dim, ") must be even"));
  }
  if (!std::isfinite(rope_theta) || rope_theta <= 0.0f) {
    return absl::InvalidArgumentError(
        absl::StrCat("rope_theta (", rope_theta, ") must be a positive number"));
  }
  if (sliding_window < 0 || sliding_window > kMaxContext) {
    return absl::InvalidArgumentError(
        absl::StrCat("sliding_window (", sliding_window, ") must be in [0, ", kMaxContext, "]"));
  }
  if (absl::Status s = rope_scaling.Validate(rope_dim); !s.ok()) return s;
  if (!std::isfinite(rms_eps) || rms_eps <= 0.0f || rms_eps >= 1.0f) {
    return absl::InvalidArgumentError(absl::StrCat("rms_eps (", rms_eps, ") must be in (0, 1)"));
  }
  return absl::OkStatus();
}

}  // namespace specserve
