// Parsing of the JSON files that come with models (tokenizer.json, config.json,
// safetensors headers) into nlohmann::json, with errors that name the file, and
// typed lookups whose errors name the file and the key.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace specserve {

// Nesting deeper than this is refused before parsing (no real file comes close).
inline constexpr int kMaxJsonDepth = 64;

// Parses `text`; `where` names the source in errors ("<where>: invalid JSON: ...").
absl::StatusOr<nlohmann::json> ParseJson(std::string_view text, const std::string& where);

// Reads and parses a whole file of at most `max_bytes`.
absl::StatusOr<nlohmann::json> ReadJsonFile(const std::string& path, uint64_t max_bytes);

// Typed member lookups in `object` (which must be a JSON object). Absent or null
// members give std::nullopt; a member of the wrong type is an error
// "<where>: key '<key>': must be <type>, not <what it is>".
absl::StatusOr<std::optional<std::string>> JsonString(const nlohmann::json& object,
                                                      const std::string& key,
                                                      const std::string& where);
absl::StatusOr<std::optional<bool>> JsonBool(const nlohmann::json& object, const std::string& key,
                                             const std::string& where);
// Integers must be whole numbers within int64 (floats such as 2.0 are refused).
absl::StatusOr<std::optional<int64_t>> JsonInt(const nlohmann::json& object, const std::string& key,
                                               const std::string& where);
absl::StatusOr<std::optional<double>> JsonNumber(const nlohmann::json& object,
                                                 const std::string& key, const std::string& where);

// "object", "array", "string", "number", "boolean", "null".
std::string JsonTypeName(const nlohmann::json& value);

}  // namespace specserve
