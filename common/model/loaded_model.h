// A model ready for the engine: its configuration, its weights (views into
// memory maps or owned buffers), its vocabulary, and what `info` prints.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/model/llama_weights.h"
#include "common/model/model_config.h"
#include "common/tokenizer/vocabulary.h"

namespace specserve {

// Keeps a memory map or a heap buffer alive for as long as the model lives.
struct StorageHandle {
  virtual ~StorageHandle() = default;
};

struct TensorDescription {
  std::string name;
  TensorType type;
  std::vector<int64_t> shape;  // GGUF order: shape[0] is the contiguous dimension
  uint64_t offset = 0;         // byte offset in its file
};

struct LoadedModel {
  std::string path;           // what the user named
  std::string format;         // "gguf", "llama2c", "hf"
  ModelConfig config;
  LlamaWeights weights;
  Vocabulary vocab;
  std::vector<TensorDescription> tensors;  // for `specserve-model info`
  uint64_t file_bytes = 0;
  std::vector<std::shared_ptr<StorageHandle>> storage;
};

}  // namespace specserve
