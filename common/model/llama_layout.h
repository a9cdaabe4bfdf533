// The tensors of a Llama model under their GGUF names, with the shape each must
// have for a configuration, and the LlamaWeights slot each one fills.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/llama_weights.h"
#include "common/model/model_config.h"

namespace specserve {

struct LlamaTensorSlot {
  std::string name;            // e.g. "blk.3.attn_q.weight"
  std::vector<int64_t> shape;  // GGUF order: {cols} for norms, {cols, rows} for matrices
  bool is_norm = false;        // 1-D, kept in F32 (norm weights and biases)
  bool is_bias = false;        // a bias (random models fill it with small values, not ones)
  WeightTensor* slot = nullptr;

  int64_t rows() const { return shape.size() == 1 ? 1 : shape[1]; }
  int64_t cols() const { return shape[0]; }
};

// Resizes weights->layers to config.n_layers and lists every tensor in GGUF's
// usual order: token_embd, output_norm, output (unless tied), then per layer
// attn_norm, attn_q, attn_k, attn_v (each followed by its bias with
// config.attention_bias), attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up.
std::vector<LlamaTensorSlot> LlamaTensorSlots(const ModelConfig& config, LlamaWeights* weights);

// The GGUF general.architecture of a config: "qwen2" for Qwen2 (q/k/v biases,
// rotate_half rotary), else "llama" (Mistral included, as llama.cpp writes it).
std::string GgufArchitecture(const ModelConfig& config);

// How a GGUF architecture pairs rotary dimensions: llama.cpp rotates `qwen2` as
// rotate_half (NEOX) and `llama` interleaved (its converter permutes q/k rows).
RopeStyle GgufRopeStyle(const std::string& architecture);

// "[64, 512]"
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace specserve
