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

// Architectures whose tensors, names and math are Llama's.
constexpr const char* kArchitectures[] = {"LlamaForCausalLM", "MistralForCausalLM"};
constexpr const char* kModelTypes[] = {"llama", "mistral"};

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

absl::Status CheckArchitecture(const Json& c, const std::string& where) {
  ASSIGN_OR_RETURN(std::optional<std::string> model_type, JsonString(c, "model_type", where));
  const auto arch = c.find("architectures");
  if (arch != c.end() && !arch->is_null()) {
    if (!arch->is_array() || arch->empty()) {
      return KeyError(where, "architectures", "must be a non-empty array of names");
    }
    for (const Json& name : *arch) {
      if (!name.is_string()) return KeyError(where, "architectures", "must hold strings");
      for (const char* known : kArchitectures) {
        if (name.get<std::string>() == known) return absl::OkStatus();
      }
    }
    return KeyError(where, "architectures",
                    absl::StrCat("architecture ", (*arch)[0].dump(),
                                 " is not supported (only LlamaForCausalLM and "
                                 "MistralForCausalLM)"));
  }
  if (!model_type.has_value()) {
    return KeyError(where, "architectures", "missing (and no model_type)");
  }
  for (const char* known : kModelTypes) {
    if (*model_type == known) return absl::OkStatus();
  }
  return KeyError(where, "model_type",
                  absl::StrCat("model type '", *model_type, "' is not supported"));
}

// Fields that change the math; refused unless they keep Llama's default.
absl::Status CheckUnsupported(const Json& c, const std::string& where, int context_length) {
  ASSIGN_OR_RETURN(std::optional<std::string> act, JsonString(c, "hidden_act", where));
  if (act.has_value() && *act != "silu") {
    return KeyError(where, "hidden_act",
                    absl::StrCat("activation '", *act, "' is not supported (only silu)"));
  }
  for (const char* bias : {"attention_bias", "mlp_bias"}) {
    ASSIGN_OR_RETURN(std::optional<bool> b, JsonBool(c, bias, where));
    if (b.value_or(false)) return KeyError(where, bias, "biases are not supported");
  }
  const auto scaling = c.find("rope_scaling");
  if (scaling != c.end() && !scaling->is_null()) {
    if (!scaling->is_object()) return KeyError(where, "rope_scaling", "must be an object or null");
    std::optional<std::string> type;
    for (const char* key : {"rope_type", "type"}) {
      ASSIGN_OR_RETURN(std::optional<std::string> t, JsonString(*scaling, key, where));
      if (t.has_value() && !type.has_value()) type = t;
    }
    if (type.value_or("") != "default") {
      return KeyError(
          where, "rope_scaling",
          absl::StrCat("rope scaling type '", type.value_or("(none)"), "' is not supported"));
    }
  }
  if (c.contains("quantization_config") && !c["quantization_config"].is_null()) {
    return KeyError(where, "quantization_config",
                    "pre-quantised checkpoints are not supported (use F32, F16 or BF16 weights)");
  }
  const auto window = c.find("sliding_window");
  if (window != c.end() && !window->is_null()) {
    ASSIGN_OR_RETURN(std::optional<int64_t> w, JsonInt(c, "sliding_window", where));
    if (w.has_value() && *w < context_length) {
      return KeyError(where, "sliding_window",
                      absl::StrCat("sliding-window attention (", *w,
                                   " < max_position_embeddings) is not supported"));
    }
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
  RETURN_IF_ERROR(CheckArchitecture(c, where));
  ModelConfig m;
  m.architecture = "llama";
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
  RETURN_IF_ERROR(CheckUnsupported(c, where, m.context_length));
  if (absl::Status s = m.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": ", s.message()));
  }
  return m;
}

}  // namespace specserve
