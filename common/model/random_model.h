// Llama models with seeded random weights: written to a GGUF file (readable by
// llama.cpp too) or built in memory. For the same config, type and seed both
// hold the same values, and every row is generated independently of the others.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"
#include "common/model/model_config.h"
#include "common/model/synthetic_vocabulary.h"
#include "common/model/tensor_type.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// Fills in what a random model's config may leave out: vocab_size from the
// vocabulary (they must agree when both are set), head_dim = dim / n_heads,
// n_kv_heads = n_heads, rope_dim = head_dim; then Validate().
absl::StatusOr<ModelConfig> CompleteRandomConfig(ModelConfig config, const Vocabulary& vocab);

// The type a tensor of a random model is stored in: norms are F32; matrices use
// `type`, or F16 when their row length is not a multiple of its block size.
TensorType RandomTensorType(TensorType type, bool is_norm, int64_t cols);

// Bytes of the GGUF file WriteRandomGguf writes (for progress displays).
absl::StatusOr<uint64_t> RandomGgufBytes(const ModelConfig& config, TensorType type,
                                         const Vocabulary& vocab);

// Writes a GGUF v3 `llama` file: general.*, llama.*, tokenizer.ggml.* from `vocab`,
// weights with std 1/sqrt(cols) (norms = 1). `progress` (may be empty) gets the
// fraction of bytes written.
absl::Status WriteRandomGguf(const std::string& out_path, const ModelConfig& config,
                             TensorType type, const Vocabulary& vocab, uint64_t seed,
                             std::function<void(double fraction)> progress = {});

// The same model in memory (owned buffers). An empty vocabulary is replaced by
// MakeSyntheticVocabulary(config.vocab_size).
absl::StatusOr<std::unique_ptr<LoadedModel>> BuildRandomModel(const ModelConfig& config,
                                                              TensorType type, uint64_t seed,
                                                              Vocabulary vocab = {});
// BuildRandomModel for tests: prints the error to stderr and returns nullptr on failure.
std::unique_ptr<LoadedModel> MakeRandomModel(const ModelConfig& config, TensorType type,
                                             uint64_t seed, Vocabulary vocab = {});

}  // namespace specserve
