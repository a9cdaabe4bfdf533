#include "common/chat_template/model_chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/model/gguf_reader.h"
#include "nlohmann/json.hpp"

namespace specserve {
namespace {

absl::StatusOr<std::string> FromTokenizerConfig(const std::filesystem::path& dir) {
  const std::filesystem::path path = dir / "tokenizer_config.json";
  if (!std::filesystem::exists(path)) return std::string();
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  const auto config = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(path.string() + ": not a JSON object");
  }
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) return std::string();
  if (it->is_string()) return it->get<std::string>();
  if (it->is_array()) {
    // Named templates: "default", else the first.
    std::string first;
    for (const auto& entry : *it) {
      if (!entry.is_object() || !entry.contains("template") || !entry["template"].is_string())
        continue;
      if (entry.value("name", "") == "default") return entry["template"].get<std::string>();
      if (first.empty()) first = entry["template"].get<std::string>();
    }
    return first;
  }
  return absl::InvalidArgumentError(path.string() + ": chat_template must be a string or a list");
}

}  // namespace

absl::StatusOr<std::string> ReadModelChatTemplate(const std::string& model_path) {
  std::error_code ec;
  if (std::filesystem::is_directory(model_path, ec)) return FromTokenizerConfig(model_path);
  std::ifstream in(model_path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() != 4 || std::string(magic, 4) != "GGUF") return std::string();
  auto file = GgufFile::Open(model_path);
  if (!file.ok()) return file.status();
  const GgufValue* value = (*file)->FindValue("tokenizer.chat_template");
  if (value == nullptr || value->AsString() == nullptr) return std::string();
  return *value->AsString();
}

}  // namespace specserve
