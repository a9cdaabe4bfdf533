// Builds a LoadedModel from a Hugging Face model directory: config.json,
// model.safetensors (or the shards that model.safetensors.index.json lists, F32, F16
// or BF16, memory-mapped) and tokenizer.json. The q/k projections keep Hugging
// Face's layout, so the config says rope_style = kHalf; tied output embeddings are
// found however they are stored (embed_tokens, or only lm_head as some exporters write).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"

namespace specserve {

// Largest model.safetensors.index.json read.
inline constexpr uint64_t kMaxIndexJsonBytes = uint64_t{64} << 20;

// Errors name the file and the key or tensor: "<dir>/model.safetensors: tensor
// 'model.layers.0.self_attn.q_proj.weight': shape is [64, 128] but the config needs
// [128, 128]".
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadHfModel(const std::string& dir);

// The Hugging Face name of a tensor named as GGUF names it ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"); "" for names it does not know.
std::string HfTensorName(const std::string& gguf_name);

}  // namespace specserve
