#include "common/model/gguf_llama_metadata.h"

namespace specserve {

uint32_t GgufFileType(TensorType type) { return Traits(type).gguf_file_type; }

void AddGgufLlamaMetadata(const ModelConfig& c, TensorType type, GgufWriter& w) {
  w.AddMetadata("general.architecture", GgufValue::String("llama"));
  w.AddMetadata("general.name", GgufValue::String(c.name.empty() ? "specserve" : c.name));
  w.AddMetadata("general.file_type", GgufValue::Uint32(GgufFileType(type)));
  if (BlockElements(type) > 1) w.AddMetadata("general.quantization_version", GgufValue::Uint32(2));
  w.AddMetadata("llama.vocab_size", GgufValue::Uint32(c.vocab_size));
  w.AddMetadata("llama.context_length", GgufValue::Uint32(c.context_length));
  w.AddMetadata("llama.embedding_length", GgufValue::Uint32(c.dim));
  w.AddMetadata("llama.block_count", GgufValue::Uint32(c.n_layers));
  w.AddMetadata("llama.feed_forward_length", GgufValue::Uint32(c.ffn_dim));
  w.AddMetadata("llama.rope.dimension_count", GgufValue::Uint32(c.rope_dim));
  w.AddMetadata("llama.attention.head_count", GgufValue::Uint32(c.n_heads));
  w.AddMetadata("llama.attention.head_count_kv", GgufValue::Uint32(c.n_kv_heads));
  if (c.head_dim * c.n_heads != c.dim) {
    w.AddMetadata("llama.attention.key_length", GgufValue::Uint32(c.head_dim));
    w.AddMetadata("llama.attention.value_length", GgufValue::Uint32(c.head_dim));
  }
  w.AddMetadata("llama.attention.layer_norm_rms_epsilon", GgufValue::Float32(c.rms_eps));
  w.AddMetadata("llama.rope.freq_base", GgufValue::Float32(c.rope_theta));
}

}  // namespace specserve
