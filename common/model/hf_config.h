// Hugging Face config.json -> ModelConfig for Llama-family checkpoints:
// LlamaForCausalLM, MistralForCausalLM (sliding_window) and Qwen2ForCausalLM (q/k/v
// biases), with rope_scaling linear, llama3 or yarn. Fields that would change the math
// and are not implemented (other rope scalings, Llama's attention_bias, MLP biases,
// another activation, per-layer windows, pre-quantised weights) are refused by name
// rather than ignored.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/model/model_config.h"
#include "nlohmann/json.hpp"

namespace specserve {

// `where` names the file in errors: "<where>: key '<key>': <problem>". Sets
// rope_style = kHalf (Hugging Face's rotate_half pairing of q/k dimensions).
absl::StatusOr<ModelConfig> ParseHfConfig(const nlohmann::json& config, const std::string& where);

}  // namespace specserve
