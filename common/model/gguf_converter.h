// Writes any loaded model (GGUF, llama2.c, Hugging Face) as a GGUF v3 `llama` or
// `qwen2` file that specserve and llama.cpp load and decode alike: weights re-encoded
// as F32, F16, BF16, Q8_0 or Q4_0 (norms and biases stay F32; matrices whose rows are
// not whole blocks fall back to F16), q/k rows (and biases) of rotate_half (Hugging
// Face) models permuted into GGUF `llama`'s interleaved rotary layout (`qwen2` keeps
// rotate_half, as llama.cpp runs it), rope scaling as GGUF keys or rope_freqs.weight,
// and the vocabulary as a `llama` (SentencePiece-style) tokenizer, whose tokenizer.json
// BPE vocabularies keep their -rank scores so that merging by score follows the merge
// ranks, or as a byte-level `gpt2` one with merges and tokenizer.ggml.pre.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "common/model/loaded_model.h"
#include "common/model/tensor_type.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

struct ConvertOptions {
  TensorType type = TensorType::kF32;
  // Called as tensor data is written: bytes written so far, total bytes.
  std::function<void(uint64_t written, uint64_t total)> progress;
};

// The stored type of one tensor of the converted file.
TensorType ConvertedTensorType(TensorType type, bool is_norm, int64_t cols);

// The vocabulary as a GGUF `llama` tokenizer stores it (Hugging Face BPE rules
// dropped: scores carry the merge order; the space prefix as the normalizer adds it).
Vocabulary GgufStyleVocabulary(const Vocabulary& vocab);

// Writes `out_path` (via a temporary file renamed into place when complete).
absl::Status ConvertToGguf(const LoadedModel& model, const std::string& out_path,
                           const ConvertOptions& options);

}  // namespace specserve
