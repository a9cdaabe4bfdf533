// Every weight tensor of a Llama model, named as the forward pass uses it.
#pragma once

#include <array>
#include <vector>

#include "common/model/weight_tensor.h"

namespace specserve {

struct LayerWeights {
  WeightTensor attn_norm;  // [1 x dim]
  WeightTensor wq;         // [q_dim x dim]
  WeightTensor wk;         // [kv_dim x dim]
  WeightTensor wv;         // [kv_dim x dim]
  WeightTensor wo;         // [dim x q_dim]
  WeightTensor ffn_norm;   // [1 x dim]
  WeightTensor w_gate;     // [ffn_dim x dim]  (llama2.c w1, GGUF ffn_gate)
  WeightTensor w_down;     // [dim x ffn_dim]  (llama2.c w2, GGUF ffn_down)
  WeightTensor w_up;       // [ffn_dim x dim]  (llama2.c w3, GGUF ffn_up)
  // With config.attention_bias (Qwen2): [1 x q_dim], [1 x kv_dim], [1 x kv_dim], F32,
  // added after the projections; otherwise empty (data == nullptr).
  WeightTensor bq, bk, bv;

  // The seven projection matrices (what MatMul reads), for code that treats them alike.
  std::array<WeightTensor*, 7> matrices() { return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down}; }
  std::array<const WeightTensor*, 7> matrices() const {
    return {&wq, &wk, &wv, &wo, &w_gate, &w_up, &w_down};
  }
};

struct LlamaWeights {
  WeightTensor token_embedding;  // [vocab x dim]
  std::vector<LayerWeights> layers;
  WeightTensor output_norm;  // [1 x dim]
  WeightTensor output;       // [vocab x dim]; aliases token_embedding when tied
};

}  // namespace specserve
