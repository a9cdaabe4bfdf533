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
  bool is_norm = false;        // 1-D, kept in F32
  WeightTensor* slot = nullptr;

  int64_t rows() const { return shape.size() == 1 ? 1 : shape[1]; }
  int64_t cols() const { return shape[0]; }
};

// Resizes weights->layers to config.n_layers and lists every tensor in GGUF's
// usual order: token_embd, output_norm, output (unless tied), then per layer
// attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up.
std::vector<LlamaTensorSlot> LlamaTensorSlots(const ModelConfig& config, LlamaWeights* weights);

// "[64, 512]"
std::string ShapeString(const std::vector<int64_t>& shape);

}  // namespace specserve
