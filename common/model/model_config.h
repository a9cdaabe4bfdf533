// Hyper-parameters of a Llama-family model, whatever file they came from.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "common/model/rope_scaling.h"

namespace specserve {

// How rotary embedding pairs dimensions. GGUF `llama` and llama2.c checkpoints
// rotate adjacent pairs (2i, 2i+1); Hugging Face checkpoints rotate (i, i + d/2)
// ("rotate_half", GPT-NeoX style) unless their q/k weights are permuted.
enum class RopeStyle { kInterleaved, kHalf };

struct ModelConfig {
  std::string architecture = "llama";
  std::string name;
  int dim = 0;  // embedding width
  int n_layers = 0;
  int n_heads = 0;     // query heads
  int n_kv_heads = 0;  // key/value heads (grouped-query attention when < n_heads)
  int head_dim = 0;    // usually dim / n_heads
  int ffn_dim = 0;     // SwiGLU hidden width
  int vocab_size = 0;
  int context_length = 0;  // trained context (from metadata)
  float rope_theta = 10000.0f;
  int rope_dim = 0;  // rotated dimensions per head (<= head_dim)
  RopeStyle rope_style = RopeStyle::kInterleaved;
  RopeScaling rope_scaling;  // frequencies for contexts past the trained one
  float rms_eps = 1e-5f;
  bool tied_embeddings = false;  // output projection shares the token embedding
  bool attention_bias = false;   // q, k and v projections add a bias (Qwen2)
  // > 0: sliding-window attention (Mistral): the token at position p attends to
  // positions p - sliding_window + 1 .. p only.
  int sliding_window = 0;

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  // Checks that the numbers are positive and consistent; names the bad field.
  absl::Status Validate() const;
};

}  // namespace specserve
