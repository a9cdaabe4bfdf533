#include "common/model/safetensors_index.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_document.h"

namespace specserve {

absl::StatusOr<std::map<std::string, std::string>> ParseSafetensorsIndex(
    const nlohmann::json& index, const std::string& where) {
  if (!index.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": must be a JSON object, not ", JsonTypeName(index)));
  }
  const auto map = index.find("weight_map");
  if (map == index.end() || !map->is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": key 'weight_map': missing or not an object"));
  }
  std::map<std::string, std::string> out;
  for (const auto& [tensor, file] : map->items()) {
    if (!file.is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": weight_map['", tensor, "']: must be a file name, not ", JsonTypeName(file)));
    }
    const std::string name = file.get<std::string>();
    if (name.empty() || name.find('/') != std::string::npos ||
        name.find('\\') != std::string::npos || name == "." || name == ".." ||
        name.find('\0') != std::string::npos || !absl::EndsWith(name, ".safetensors")) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": weight_map['", tensor, "']: '", name,
                       "' is not a .safetensors file name inside the model directory"));
    }
    out[tensor] = name;
  }
  if (out.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": key 'weight_map': is empty"));
  }
  return out;
}

}  // namespace specserve
