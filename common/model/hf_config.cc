#include "common/model/hf_config.h"

#include <cmath>
#include <limits>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_document.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Json = nlohmann::json;

// Architectures whose tensors, names and math are Llama's (Mistral: with a sliding
// window; Qwen2: with q/k/v biases), and the ModelConfig::architecture of each.
struct KnownArchitecture {
  const char* hf_name;
  const char* model_type;
};
constexpr KnownArchitecture kArchitectures[] = {{"LlamaForCausalLM", "llama"},
                                                {"MistralForCausalLM", "mistral"},
                                                {"Qwen2ForCausalLM", "qwen2"}};

absl::Status KeyError(const std::string& where, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": key '", key, "': ", what));
}

absl::Status ReadPositiveInt(const Json& c, const std::string& key, const std::string& where,
                             bool required, int* out) {
  ASSIGN_OR_RETURN(std::optional<int64_t> v, JsonInt(c, key, where));
  if (!v.has_value()) {
    if (required) return KeyError(where, key, "missing");
    return absl::OkStatus();
  }
  if (*v <= 0 || *v > std::numeric_limits<int32_t>::max()) {
    return KeyError(where, key, absl::StrCat("value ", *v, " is out of range"));
  }
  *out = static_cast<int>(*v);
  return absl::OkStatus();
}

absl::Status ReadPositiveFloat(const Json& c, const std::string& key, const std::string& where,
                               float* out) {
  ASSIGN_OR_RETURN(std::optional<double> v, JsonNumber(c, key, where));
  if (!v.has_value()) return absl::OkStatus();
  if (!std::isfinite(*v) || *v <= 0) {
    return KeyError(where, key, absl::StrCat("value ", *v, " must be a positive number"));
  }
  *out = static_cast<float>(*v);
  return absl::OkStatus();
}

// "llama", "mistral" or "qwen2", from `architectures` (else `model_type`).
absl::StatusOr<std::string> ReadArchitecture(const Json& c, const std::string& where) {
  ASSIGN_OR_RETURN(std::optional<std::string> model_type, JsonString(c, "model_type", where));
  const auto arch = c.find("architectures");
  if (arch != c.end() && !arch->is_null()) {
    if (!arch->is_array() || arch->empty()) {
      return KeyError(where, "architectures", "must be a non-empty array of names");
    }
    for (const Json& name : *arch) {
      if (!name.is_string()) return KeyError(where, "architectures", "must hold strings");
      for (const KnownArchitecture& known : kArchitectures) {
        if (name.get<std::string>() == known.hf_name) return std::string(known.model_type);
      }
    }
    return KeyError(where, "architectures",
                    absl::StrCat("architecture ", (*arch)[0].dump(),
                                 " is not supported (only LlamaForCausalLM, MistralForCausalLM "
                                 "and Qwen2ForCausalLM)"));
  }
  if (!model_type.has_value()) {
    return KeyError(where, "architectures", "missing (and no model_type)");
  }
  for (const KnownArchitecture& known : kArchitectures) {
    if (*model_type == known.model_type) return *model_type;
  }
  return KeyError(where, "model_type",
                  absl::StrCat("model type '", *model_type, "' is not supported"));
}

// rope_scaling (or transformers 5's rope_parameters): linear, llama3, yarn; any
// other type, and options that would change the math, are refused by name.
absl::Status ReadRopeScaling(const Json& c, const std::string& where, ModelConfig* m) {
  std::string key = "rope_scaling";
  auto it = c.find(key);
  if (it == c.end() || it->is_null()) {
    key = "rope_parameters";
    it = c.find(key);
  }
  if (it == c.end() || it->is_null()) return absl::OkStatus();
  const Json& r = *it;
  if (!r.is_object()) return KeyError(where, key, "must be an object or null");
  if (key == "rope_parameters") {
    RETURN_IF_ERROR(ReadPositiveFloat(r, "rope_theta", where, &m->rope_theta));
  }
  std::optional<std::string> type;
  for (const char* k : {"rope_type", "type"}) {
    ASSIGN_OR_RETURN(std::optional<std::string> t, JsonString(r, k, where));
    if (t.has_value() && !type.has_value()) type = t;
  }
  if (!type.has_value()) return KeyError(where, key, "has no rope_type");
  absl::StatusOr<RopeScalingType> parsed = ParseRopeScalingType(*type);
  if (!parsed.ok()) return KeyError(where, key, std::string(parsed.status().message()));
  RopeScaling& s = m->rope_scaling;
  s.type = *parsed;
  if (s.type == RopeScalingType::kNone) return absl::OkStatus();
  ASSIGN_OR_RETURN(std::optional<double> factor, JsonNumber(r, "factor", where));
  if (!factor.has_value()) return KeyError(where, key, absl::StrCat(*type, " needs a factor"));
  s.factor = static_cast<float>(*factor);
  int original = 0;
  RETURN_IF_ERROR(ReadPositiveInt(r, "original_max_position_embeddings", where, false, &original));
  s.original_context = original;
  if (s.type == RopeScalingType::kLlama3) {
    if (original == 0) {
      return KeyError(where, key, "llama3 needs original_max_position_embeddings");
    }
    RETURN_IF_ERROR(ReadPositiveFloat(r, "low_freq_factor", where, &s.low_freq_factor));
    RETURN_IF_ERROR(ReadPositiveFloat(r, "high_freq_factor", where, &s.high_freq_factor));
  }
  if (s.type == RopeScalingType::kYarn) {
    RETURN_IF_ERROR(ReadPositiveFloat(r, "beta_fast", where, &s.beta_fast));
    RETURN_IF_ERROR(ReadPositiveFloat(r, "beta_slow", where, &s.beta_slow));
    RETURN_IF_ERROR(ReadPositiveFloat(r, "attention_factor", where, &s.attention_factor));
    for (const char* unsupported : {"mscale", "mscale_all_dim"}) {
      if (r.contains(unsupported) && !r[unsupported].is_null()) {
        return KeyError(where, absl::StrCat(key, ".", unsupported), "is not supported");
      }
    }
    ASSIGN_OR_RETURN(std::optional<bool> truncate, JsonBool(r, "truncate", where));
    if (!truncate.value_or(true)) {
      return KeyError(where, absl::StrCat(key, ".truncate"), "false is not supported");
    }
  }
  return absl::OkStatus();
}

// Fields that change the math; refused unless they keep Llama's default.
absl::Status CheckUnsupported(const Json& c, const std::string& where, ModelConfig* m) {
  ASSIGN_OR_RETURN(std::optional<std::string> act, JsonString(c, "hidden_act", where));
  if (act.has_value() && *act != "silu") {
    return KeyError(where, "hidden_act",
                    absl::StrCat("activation '", *act, "' is not supported (only silu)"));
  }
  // Qwen2's q/k/v biases come with the architecture; Llama's attention_bias would add
  // an output bias too.
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    ASSIGN_OR_RETURN(std::optional<bool> b, JsonBool(c, bias, where));
    if (b.value_or(false)) return KeyError(where, bias, "biases are not supported");
  }
  if (c.contains("quantization_config") && !c["quantization_config"].is_null()) {
    return KeyError(where, "quantization_config",
                    "pre-quantised checkpoints are not supported (use F32, F16 or BF16 weights)");
  }
  // Mistral: every layer attends to the last sliding_window positions. Qwen2 uses
  // windows only with use_sliding_window, and then on some layers only.
  ASSIGN_OR_RETURN(std::optional<bool> use_window, JsonBool(c, "use_sliding_window", where));
  if (use_window.value_or(false)) {
    return KeyError(
        where, "use_sliding_window",
        "per-layer sliding-window attention (Qwen2 max_window_layers) is not supported");
  }
  ASSIGN_OR_RETURN(std::optional<int64_t> window, JsonInt(c, "sliding_window", where));
  if (window.has_value() && m->architecture == "mistral") {
    if (*window <= 0 || *window > std::numeric_limits<int32_t>::max()) {
      return KeyError(where, "sliding_window", absl::StrCat("value ", *window, " is out of range"));
    }
    m->sliding_window = static_cast<int>(*window);
  } else if (window.has_value() && m->architecture == "llama" && *window < m->context_length) {
    return KeyError(where, "sliding_window",
                    absl::StrCat("sliding-window attention (", *window,
                                 " < max_position_embeddings) is not supported for llama"));
  }
  ASSIGN_OR_RETURN(std::optional<double> partial, JsonNumber(c, "partial_rotary_factor", where));
  if (partial.has_value() && *partial != 1.0) {
    return KeyError(where, "partial_rotary_factor", "partial rotary embedding is not supported");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ParseHfConfig(const Json& c, const std::string& where) {
  if (!c.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": must be a JSON object, not ", JsonTypeName(c)));
  }
  ModelConfig m;
  ASSIGN_OR_RETURN(m.architecture, ReadArchitecture(c, where));
  m.attention_bias = m.architecture == "qwen2";
  ASSIGN_OR_RETURN(std::optional<std::string> name, JsonString(c, "_name_or_path", where));
  m.name = name.value_or("");
  RETURN_IF_ERROR(ReadPositiveInt(c, "hidden_size", where, true, &m.dim));
  RETURN_IF_ERROR(ReadPositiveInt(c, "num_hidden_layers", where, true, &m.n_layers));
  RETURN_IF_ERROR(ReadPositiveInt(c, "num_attention_heads", where, true, &m.n_heads));
  m.n_kv_heads = m.n_heads;
  RETURN_IF_ERROR(ReadPositiveInt(c, "num_key_value_heads", where, false, &m.n_kv_heads));
  RETURN_IF_ERROR(ReadPositiveInt(c, "head_dim", where, false, &m.head_dim));
  if (m.head_dim == 0) {
    if (m.dim % m.n_heads != 0) {
      return KeyError(where, "num_attention_heads",
                      absl::StrCat(m.n_heads, " heads do not divide hidden_size ", m.dim,
                                   " (and there is no head_dim)"));
    }
    m.head_dim = m.dim / m.n_heads;
  }
  m.rope_dim = m.head_dim;
  RETURN_IF_ERROR(ReadPositiveInt(c, "intermediate_size", where, true, &m.ffn_dim));
  RETURN_IF_ERROR(ReadPositiveInt(c, "vocab_size", where, true, &m.vocab_size));
  m.context_length = 2048;  // LlamaConfig's default
  RETURN_IF_ERROR(ReadPositiveInt(c, "max_position_embeddings", where, false, &m.context_length));
  m.rms_eps = 1e-6f;  // LlamaConfig's default
  RETURN_IF_ERROR(ReadPositiveFloat(c, "rms_norm_eps", where, &m.rms_eps));
  m.rope_theta = 10000.0f;
  RETURN_IF_ERROR(ReadPositiveFloat(c, "rope_theta", where, &m.rope_theta));
  ASSIGN_OR_RETURN(std::optional<bool> tied, JsonBool(c, "tie_word_embeddings", where));
  m.tied_embeddings = tied.value_or(false);
  m.rope_style = RopeStyle::kHalf;
  RETURN_IF_ERROR(CheckUnsupported(c, where, &m));
  RETURN_IF_ERROR(ReadRopeScaling(c, where, &m));
  if (absl::Status s = m.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  }
  return m;
}

}  // namespace specserve
