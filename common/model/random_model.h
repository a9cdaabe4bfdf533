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
#include "common/model/gguf_value.h"
#include "common/model/loaded_model.h"
#include "common/model/model_config.h"
#include "common/model/synthetic_vocabulary.h"
#include "common/model/tensor_type.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// Fills in what a random model's config may leave out: vocab_size from the
// vocabulary (they must agree when both are set), head_dim = dim / n_heads,
// n_kv_heads = n_heads, rope_dim = head_dim, architecture "llama" (also "mistral",
// "qwen2": q/k/v biases), the rope style of its GGUF architecture; then Validate().
absl::StatusOr<ModelConfig> CompleteRandomConfig(ModelConfig config, const Vocabulary& vocab);

// The type a tensor of a random model is stored in: norms are F32; matrices use
// `type`, or F16 when their row length is not a multiple of its block size.
TensorType RandomTensorType(TensorType type, bool is_norm, int64_t cols);

// Bytes of the GGUF file WriteRandomGguf writes (for progress displays).
absl::StatusOr<uint64_t> RandomGgufBytes(const ModelConfig& config, TensorType type,
                                         const Vocabulary& vocab);

// What a random GGUF may carry beyond the model: another general.architecture
// (and key prefix), extra keys, extra F32 tensors. Tests use it to show llama.cpp the
// same weights under an architecture that runs the same math (e.g. Mistral's sliding
// window as `granite_swa` with neutral scales and sinks).
struct GgufExtras {
  std::string architecture;
  std::vector<std::pair<std::string, GgufValue>> metadata;
  struct Tensor {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> values;
  };
  std::vector<Tensor> tensors;
};

// Writes a GGUF v3 file of architecture GgufArchitecture(config) (`llama`, or
// `qwen2`): general.*, <arch>.* (rope scaling, sliding window), tokenizer.ggml.*
// from `vocab` (SentencePiece-style or byte-level), rope_freqs.weight for llama3
// scaling, weights with std 1/sqrt(cols) (norms = 1, biases std 0.5). `progress` (may
// be empty) gets the fraction of bytes written.
absl::Status WriteRandomGguf(const std::string& out_path, const ModelConfig& config,
                             TensorType type, const Vocabulary& vocab, uint64_t seed,
                             std::function<void(double fraction)> progress = {},
                             const GgufExtras& extras = {});

// The same model in memory (owned buffers). An empty vocabulary is replaced by
// MakeSyntheticVocabulary(config.vocab_size).
absl::StatusOr<std::unique_ptr<LoadedModel>> BuildRandomModel(const ModelConfig& config,
                                                              TensorType type, uint64_t seed,
                                                              Vocabulary vocab = {});
// BuildRandomModel for tests: prints the error to stderr and returns nullptr on failure.
std::unique_ptr<LoadedModel> MakeRandomModel(const ModelConfig& config, TensorType type,
                                             uint64_t seed, Vocabulary vocab = {});

}  // namespace specserve
