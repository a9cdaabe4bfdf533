// Test helpers around common/model/random_model.h: small configs, temporary
// files, and random models that fail the test (instead of returning null).
#pragma once

#include <memory>
#include <string>

#include "common/model/loaded_model.h"
#include "common/model/model_config.h"
#include "common/model/random_model.h"
#include "common/model/tensor_type.h"

namespace specserve::testing {

// dim 64, 2 layers, 4 heads / 2 kv heads (head_dim 16), ffn 96, vocab 320
// (synthetic), context 256, tied embeddings.
ModelConfig TinyConfig();

// A fresh path under the test's temporary directory ("<TempDir>/<unique>_<name>"),
// removed (file or folder) when the test process exits.
std::string TempPath(const std::string& name);

// MakeRandomModel with the synthetic vocabulary; ADD_FAILUREs and returns null on error.
std::unique_ptr<LoadedModel> TinyRandomModel(TensorType type = TensorType::kF32, uint64_t seed = 1,
                                             const ModelConfig& config = TinyConfig());

// Writes a random GGUF (synthetic vocabulary) and returns its path; "" (and a
// test failure) on error.
std::string WriteTinyRandomGguf(const std::string& name, TensorType type = TensorType::kF32,
                                uint64_t seed = 1, const ModelConfig& config = TinyConfig());

}  // namespace specserve::testing
