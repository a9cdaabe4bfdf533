// Hugging Face config.json -> ModelConfig for Llama-family checkpoints
// (LlamaForCausalLM and architectures with the same tensors and math). Fields that
// would change the math and are not implemented (rope_scaling other than the default,
// biases, another activation, sliding windows, pre-quantised weights) are refused by
// name rather than ignored.
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
