#include "common/model/gguf_llama_metadata.h"

#include <cmath>
#include <string>

#include "common/model/llama_layout.h"

namespace specserve {

uint32_t GgufFileType(TensorType type) { return Traits(type).gguf_file_type; }

std::vector<float> GgufRopeFreqs(const ModelConfig& c) {
  const RopeScaling& s = c.rope_scaling;
  std::vector<float> freqs;
  if (s.type == RopeScalingType::kLlama3)
    freqs = Llama3FrequencyFactors(s, c.rope_theta, c.rope_dim);
  if (!s.freq_factors.empty()) {
    freqs.resize(s.freq_factors.size(), 1.0f);
    for (size_t i = 0; i < freqs.size(); ++i) freqs[i] *= s.freq_factors[i];
  }
  return freqs;
}

void AddGgufLlamaMetadata(const ModelConfig& c, TensorType type, GgufWriter& w,
                          const std::string& architecture) {
  const std::string arch = architecture.empty() ? GgufArchitecture(c) : architecture;
  const auto key = [&arch](const char* name) { return arch + "." + name; };
  w.AddMetadata("general.architecture", GgufValue::String(arch));
  w.AddMetadata("general.name", GgufValue::String(c.name.empty() ? "specserve" : c.name));
  w.AddMetadata("general.file_type", GgufValue::Uint32(GgufFileType(type)));
  if (BlockElements(type) > 1) w.AddMetadata("general.quantization_version", GgufValue::Uint32(2));
  w.AddMetadata(key("vocab_size"), GgufValue::Uint32(c.vocab_size));
  w.AddMetadata(key("context_length"), GgufValue::Uint32(c.context_length));
  w.AddMetadata(key("embedding_length"), GgufValue::Uint32(c.dim));
  w.AddMetadata(key("block_count"), GgufValue::Uint32(c.n_layers));
  w.AddMetadata(key("feed_forward_length"), GgufValue::Uint32(c.ffn_dim));
  w.AddMetadata(key("rope.dimension_count"), GgufValue::Uint32(c.rope_dim));
  w.AddMetadata(key("attention.head_count"), GgufValue::Uint32(c.n_heads));
  w.AddMetadata(key("attention.head_count_kv"), GgufValue::Uint32(c.n_kv_heads));
  if (c.head_dim * c.n_heads != c.dim) {
    w.AddMetadata(key("attention.key_length"), GgufValue::Uint32(c.head_dim));
    w.AddMetadata(key("attention.value_length"), GgufValue::Uint32(c.head_dim));
  }
  w.AddMetadata(key("attention.layer_norm_rms_epsilon"), GgufValue::Float32(c.rms_eps));
  w.AddMetadata(key("rope.freq_base"), GgufValue::Float32(c.rope_theta));
  const RopeScaling& s = c.rope_scaling;
  if (s.type == RopeScalingType::kLinear) {
    w.AddMetadata(key("rope.scaling.type"), GgufValue::String("linear"));
    w.AddMetadata(key("rope.scaling.factor"), GgufValue::Float32(s.factor));
  } else if (s.type == RopeScalingType::kYarn) {
    w.AddMetadata(key("rope.scaling.type"), GgufValue::String("yarn"));
    w.AddMetadata(key("rope.scaling.factor"), GgufValue::Float32(s.factor));
    w.AddMetadata(
        key("rope.scaling.original_context_length"),
        GgufValue::Uint32(s.original_context > 0 ? s.original_context : c.context_length));
    // llama.cpp reads only the factor and the original context for these
    // architectures (beta 32/1); the yarn_* keys are what its converter writes.
    if (s.beta_fast != 32.0f)
      w.AddMetadata(key("rope.scaling.yarn_beta_fast"), GgufValue::Float32(s.beta_fast));
    if (s.beta_slow != 1.0f)
      w.AddMetadata(key("rope.scaling.yarn_beta_slow"), GgufValue::Float32(s.beta_slow));
    if (s.attention_factor > 0.0f) {
      w.AddMetadata(key("rope.scaling.yarn_attn_factor"), GgufValue::Float32(s.attention_factor));
      // llama.cpp multiplies its default 1 + 0.1 ln(factor) by rope.scaling.attn_factor.
      w.AddMetadata(key("rope.scaling.attn_factor"),
                    GgufValue::Float32(s.attention_factor /
                                       (1.0f + 0.1f * std::log(std::max(1.0f, s.factor)))));
    }
  }
  if (c.sliding_window > 0) {
    w.AddMetadata(key("attention.sliding_window"), GgufValue::Uint32(c.sliding_window));
  }
}

}  // namespace specserve
