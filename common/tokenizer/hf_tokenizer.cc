#include "common/tokenizer/hf_tokenizer.h"

#include <filesystem>
#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/hf_tokenizer_json.h"
#include "common/tokenizer/json_document.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Json = nlohmann::json;

// An optional JSON file of the directory: null when absent.
absl::StatusOr<Json> ReadOptional(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Json();
  ASSIGN_OR_RETURN(Json json, ReadJsonFile(path, kMaxConfigJsonBytes));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": must be a JSON object, not ", JsonTypeName(json)));
  }
  return json;
}

// A token named by tokenizer_config.json: "<s>" or {"content": "<s>", ...}.
absl::StatusOr<int32_t> NamedToken(const Json& config, const std::string& key,
                                   const std::string& path, const Vocabulary& vocab) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return -1;
  std::string content;
  if (it->is_string()) {
    content = it->get<std::string>();
  } else if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) {
    content = (*it)["content"].get<std::string>();
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": key '", key, "': must be a string or {\"content\": ...}"));
  }
  for (int32_t id = 0; id < vocab.size(); ++id) {
    if (vocab.pieces[id] == content) return id;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(path, ": key '", key, "': '", content, "' is not a token"));
}

// "bos_token_id" / "eos_token_id": an id, or a list whose first id is taken.
absl::StatusOr<int32_t> TokenId(const Json& config, const std::string& key, const std::string& path,
                                const Vocabulary& vocab) {
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return -1;
  const Json* value = &*it;
  if (value->is_array() && !value->empty()) value = &(*value)[0];
  if (!value->is_number_integer()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": key '", key, "': must be a token id or a list of them"));
  }
  const int64_t id = value->get<int64_t>();
  if (id < 0 || id >= vocab.size()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": key '", key, "': token id ", id,
                                                   " is outside the vocabulary of ", vocab.size(),
                                                   " tokens"));
  }
  return static_cast<int32_t>(id);
}

// Every id of "eos_token_id": one id or a list.
absl::StatusOr<std::vector<int32_t>> TokenIds(const Json& config, const std::string& key,
                                              const std::string& path, const Vocabulary& vocab) {
  std::vector<int32_t> ids;
  const auto it = config.find(key);
  if (it == config.end() || it->is_null()) return ids;
  if (!it->is_array()) {
    ASSIGN_OR_RETURN(const int32_t id, TokenId(config, key, path, vocab));
    ids.push_back(id);
    return ids;
  }
  for (const Json& v : *it) {
    if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab.size()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": key '", key, "': ", v.dump(),
                                                     " is not a token id of the vocabulary of ",
                                                     vocab.size(), " tokens"));
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  return ids;
}

}  // namespace

absl::StatusOr<Vocabulary> LoadHfTokenizer(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string tokenizer_path = (fs::path(dir) / "tokenizer.json").string();
  std::error_code ec;
  if (!fs::exists(tokenizer_path, ec)) {
    if (fs::exists(fs::path(dir) / "tokenizer.model", ec)) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir,
                       ": has tokenizer.model (SentencePiece) but no tokenizer.json, which is not "
                       "supported: convert the tokenizer with Hugging Face `tokenizers` first"));
    }
    return absl::NotFoundError(absl::StrCat(tokenizer_path, ": no such file"));
  }
  ASSIGN_OR_RETURN(const Json tokenizer_json, ReadJsonFile(tokenizer_path, kMaxTokenizerJsonBytes));
  ASSIGN_OR_RETURN(Vocabulary vocab, ParseHfTokenizerJson(tokenizer_json, tokenizer_path));

  const std::string tc_path = (fs::path(dir) / "tokenizer_config.json").string();
  const std::string gc_path = (fs::path(dir) / "generation_config.json").string();
  const std::string mc_path = (fs::path(dir) / "config.json").string();
  ASSIGN_OR_RETURN(const Json tc, ReadOptional(tc_path));
  ASSIGN_OR_RETURN(const Json gc, ReadOptional(gc_path));
  ASSIGN_OR_RETURN(const Json mc, ReadOptional(mc_path));

  if (tc.is_object()) {
    ASSIGN_OR_RETURN(std::optional<bool> add_eos, JsonBool(tc, "add_eos_token", tc_path));
    if (add_eos.value_or(false)) {
      return absl::InvalidArgumentError(
          absl::StrCat(tc_path, ": add_eos_token true (EOS after every text) is not supported"));
    }
    // Byte-level tokenizers (GPT2/Qwen2TokenizerFast) take it as the ByteLevel
    // pre-tokenizer's own flag: the value the tokenizer.json already has changes nothing.
    bool byte_level_prefix = false;
    for (const HfBpeRules::SplitStep& step : vocab.hf.splits) {
      byte_level_prefix = byte_level_prefix || step.add_prefix_space;
    }
    if (tc.contains("add_prefix_space") && !tc["add_prefix_space"].is_null() &&
        !(vocab.hf.byte_level && tc["add_prefix_space"].is_boolean() &&
          tc["add_prefix_space"].get<bool>() == byte_level_prefix)) {
      return absl::InvalidArgumentError(
          absl::StrCat(tc_path,
                       ": add_prefix_space (which makes transformers rebuild the tokenizer from "
                       "its SentencePiece model) is not supported"));
    }
  }

  int32_t bos = -1;
  if (tc.is_object()) {
    ASSIGN_OR_RETURN(bos, NamedToken(tc, "bos_token", tc_path, vocab));
  }
  if (bos < 0) bos = vocab.bos_id;
  if (bos < 0 && gc.is_object()) {
    ASSIGN_OR_RETURN(bos, TokenId(gc, "bos_token_id", gc_path, vocab));
  }
  if (bos < 0 && mc.is_object()) {
    ASSIGN_OR_RETURN(bos, TokenId(mc, "bos_token_id", mc_path, vocab));
  }

  int32_t eos = -1;
  if (gc.is_object()) {
    ASSIGN_OR_RETURN(eos, TokenId(gc, "eos_token_id", gc_path, vocab));
  }
  if (eos < 0 && tc.is_object()) {
    ASSIGN_OR_RETURN(eos, NamedToken(tc, "eos_token", tc_path, vocab));
  }
  if (eos < 0 && mc.is_object()) {
    ASSIGN_OR_RETURN(eos, TokenId(mc, "eos_token_id", mc_path, vocab));
  }

  if (tc.is_object()) {
    ASSIGN_OR_RETURN(std::optional<bool> add_bos, JsonBool(tc, "add_bos_token", tc_path));
    if (add_bos.has_value()) vocab.add_bos = *add_bos;
  }
  vocab.bos_id = bos;
  vocab.eos_id = eos;
  // Every other id that ends a turn: the rest of the eos_token_id lists (Llama 3.1:
  // <|end_of_text|>, <|eom_id|>, <|eot_id|>) and tokenizer_config's eos_token.
  for (const auto& [config, path] : {std::pair{&gc, &gc_path}, std::pair{&mc, &mc_path}}) {
    if (!config->is_object()) continue;
    ASSIGN_OR_RETURN(const std::vector<int32_t> ids,
                     TokenIds(*config, "eos_token_id", *path, vocab));
    for (int32_t id : ids) vocab.end_of_turn_ids.push_back(id);
  }
  if (tc.is_object()) {
    ASSIGN_OR_RETURN(const int32_t named, NamedToken(tc, "eos_token", tc_path, vocab));
    if (named >= 0) vocab.end_of_turn_ids.push_back(named);
  }
  vocab.end_of_turn_ids = StopTokenIds(vocab);  // without repeats; eos first
  if (!vocab.end_of_turn_ids.empty() && vocab.end_of_turn_ids.front() == eos) {
    vocab.end_of_turn_ids.erase(vocab.end_of_turn_ids.begin());
  }
  if (vocab.add_bos && bos < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(dir, ": the tokenizer adds a BOS token but no file names one"));
  }
  return vocab;
}

}  // namespace specserve
