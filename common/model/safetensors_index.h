// model.safetensors.index.json: which shard file of a Hugging Face directory holds
// each tensor ({"weight_map": {"<tensor>": "<file>"}}).
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace specserve {

// Tensor name -> shard file name. Shard names must be plain file names inside the
// directory (no '/', no "..", ending in .safetensors). `where` names the file in errors.
absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    const nlohmann::json& index, const std::string& where);

}  // namespace specserve
