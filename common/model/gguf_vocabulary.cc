#include "common/model/gguf_vocabulary.h"

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/tokenizer/pretokenizer_patterns.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

absl::Status KeyError(const GgufFile& file, absl::string_view key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": key '", key, "': ", what));
}

// The array under `key` with elements of `type`, or nullptr when absent.
absl::StatusOr<const GgufArray*> FindArray(const GgufFile& file, absl::string_view key,
                                           GgufType type, size_t expected_size) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) return nullptr;
  const GgufArray* array = value->AsArray();
  if (array == nullptr || array->element_type != type) {
    return KeyError(file, key,
                    absl::StrCat("must be an array of ", std::string(GgufTypeName(type))));
  }
  if (expected_size != 0 && array->items.size() != expected_size) {
    return KeyError(file, key,
                    absl::StrCat("has ", array->items.size(), " entries but there are ",
                                 expected_size, " tokens"));
  }
  return array;
}

absl::Status ReadTokenId(const GgufFile& file, absl::string_view key, int32_t size, int32_t* id) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) return absl::OkStatus();
  const std::optional<int64_t> v = value->AsInt();
  if (!v.has_value()) return KeyError(file, key, "must be an integer");
  if (*v < 0 || *v >= size) {
    return KeyError(
        file, key, absl::StrCat("token id ", *v, " is outside the vocabulary (", size, " tokens)"));
  }
  *id = static_cast<int32_t>(*v);
  return absl::OkStatus();
}

absl::Status ReadBool(const GgufFile& file, absl::string_view key, bool* out) {
  const GgufValue* value = file.FindValue(key);
  if (value == nullptr) return absl::OkStatus();
  const std::optional<bool> b = value->AsBool();
  if (!b.has_value()) return KeyError(file, key, "must be a bool");
  *out = *b;
  return absl::OkStatus();
}

// tokenizer.ggml.eot_token_id / eom_token_id from the end-of-turn ids.
void AddEndOfTurnIds(const Vocabulary& vocab, GgufWriter& writer) {
  int32_t eot = -1, eom = -1;
  for (int32_t id : vocab.end_of_turn_ids) {
    if (id < 0 || id >= vocab.size() || id == vocab.eos_id) continue;
    if (vocab.pieces[id] == "<|eom_id|>" && eom < 0) {
      eom = id;
    } else if (eot < 0) {
      eot = id;
    }
  }
  if (eot >= 0) writer.AddMetadata("tokenizer.ggml.eot_token_id", GgufValue::Uint32(eot));
  if (eom >= 0) writer.AddMetadata("tokenizer.ggml.eom_token_id", GgufValue::Uint32(eom));
}

absl::Status AddGgufByteLevelVocabulary(const Vocabulary& vocab, GgufWriter& writer) {
  std::vector<std::string> patterns;
  for (const HfBpeRules::SplitStep& step : vocab.hf.splits) {
    if (step.add_prefix_space) patterns.push_back("(add_prefix_space)");
    if (!step.pattern.empty()) patterns.push_back(step.pattern);
  }
  std::string pre = GgufPreForPatterns(patterns);
  const absl::StatusOr<GgufPreTokenizer> no_key = GgufPreTokenizerFor("");
  const bool is_default = no_key.ok() && patterns == no_key->patterns;
  if (pre.empty() && !is_default) {
    return absl::InvalidArgumentError(
        absl::StrCat("the tokenizer's pre-tokenizer (",
                     patterns.empty() ? "none" : absl::CHexEscape(patterns[0]),
                     patterns.size() > 1 ? ", ..." : "",
                     ") is none that llama.cpp knows (the Llama 3, Qwen2 and GPT-2 splits): no "
                     "tokenizer.ggml.pre to write"));
  }
  std::vector<int32_t> types(vocab.pieces.size(), static_cast<int32_t>(TokenType::kNormal));
  for (size_t i = 0; i < vocab.types.size() && i < types.size(); ++i) {
    types[i] = static_cast<int32_t>(vocab.types[i]);
  }
  std::vector<std::string> merges;
  merges.reserve(vocab.hf.merges.size());
  for (const auto& [a, b] : vocab.hf.merges) merges.push_back(absl::StrCat(a, " ", b));
  writer.AddMetadata("tokenizer.ggml.model", GgufValue::String("gpt2"));
  if (!pre.empty()) writer.AddMetadata("tokenizer.ggml.pre", GgufValue::String(pre));
  writer.AddMetadata("tokenizer.ggml.tokens", GgufValue::StringArray(vocab.pieces));
  writer.AddMetadata("tokenizer.ggml.token_type", GgufValue::Int32Array(types));
  writer.AddMetadata("tokenizer.ggml.merges", GgufValue::StringArray(merges));
  if (vocab.bos_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.bos_token_id", GgufValue::Uint32(vocab.bos_id));
  }
  if (vocab.eos_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.eos_token_id", GgufValue::Uint32(vocab.eos_id));
  }
  if (vocab.unk_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.unknown_token_id", GgufValue::Uint32(vocab.unk_id));
  }
  writer.AddMetadata("tokenizer.ggml.add_bos_token", GgufValue::Bool(vocab.add_bos));
  writer.AddMetadata("tokenizer.ggml.add_eos_token", GgufValue::Bool(false));
  AddEndOfTurnIds(vocab, writer);
  return absl::OkStatus();
}

// tokenizer.ggml.merges / .pre of a "gpt2" vocabulary into vocab->hf.
absl::Status ReadByteLevelRules(const GgufFile& file, Vocabulary* vocab) {
  const char* pre_key = "tokenizer.ggml.pre";
  if (const GgufValue* pre = file.FindValue(pre_key); pre != nullptr) {
    if (pre->AsString() == nullptr) return KeyError(file, pre_key, "must be a string");
    vocab->pre = *pre->AsString();
  }
  absl::StatusOr<GgufPreTokenizer> split = GgufPreTokenizerFor(vocab->pre);
  if (!split.ok()) return KeyError(file, pre_key, split.status().message());
  HfBpeRules& rules = vocab->hf;
  vocab->hf_bpe = true;
  rules.byte_level = true;
  rules.normalizer_nfc = split->nfc;
  rules.ignore_merges = split->ignore_merges;
  for (std::string& pattern : split->patterns) rules.splits.push_back({std::move(pattern), false});
  vocab->add_space_prefix = false;
  vocab->uses_plain_spaces = true;

  const char* merges_key = "tokenizer.ggml.merges";
  ASSIGN_OR_RETURN(const GgufArray* merges, FindArray(file, merges_key, GgufType::kString, 0));
  if (merges == nullptr) return KeyError(file, merges_key, "missing (a gpt2 vocabulary needs it)");
  absl::flat_hash_set<std::string_view> pieces(vocab->pieces.begin(), vocab->pieces.end());
  rules.merges.reserve(merges->items.size());
  for (size_t i = 0; i < merges->items.size(); ++i) {
    const std::string& merge = *merges->items[i].AsString();
    const size_t space = merge.find(' ', 1);  // as llama.cpp splits them
    if (space == std::string::npos) {
      return KeyError(file, merges_key,
                      absl::StrCat("merge ", i, " '", absl::CHexEscape(merge),
                                   "' is not two pieces separated by a space"));
    }
    std::string a = merge.substr(0, space), b = merge.substr(space + 1);
    if (!pieces.contains(a) || !pieces.contains(b) || !pieces.contains(a + b)) {
      return KeyError(file, merges_key,
                      absl::StrCat("merge ", i, " '", absl::CHexEscape(merge),
                                   "' joins pieces that are not all tokens"));
    }
    rules.merges.emplace_back(std::move(a), std::move(b));
  }
  for (int32_t id = 0; id < vocab->size(); ++id) {
    const TokenType t = vocab->types[id];
    if (t != TokenType::kControl && t != TokenType::kUserDefined) continue;
    AddedToken added;
    added.id = id;
    added.special = t == TokenType::kControl;
    rules.added_tokens.push_back(added);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Vocabulary> ReadGgufVocabulary(const GgufFile& file) {
  Vocabulary vocab;
  const GgufValue* model = file.FindValue("tokenizer.ggml.model");
  if (model == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(),
                     ": key 'tokenizer.ggml.model': missing: the file has no "
                     "embedded tokenizer"));
  }
  if (model->AsString() == nullptr) {
    return KeyError(file, "tokenizer.ggml.model", "must be a string");
  }
  if (*model->AsString() != "llama" && *model->AsString() != "gpt2") {
    return KeyError(file, "tokenizer.ggml.model",
                    absl::StrCat("tokenizer model '", *model->AsString(),
                                 "' is not supported (only 'llama', SentencePiece, and 'gpt2', "
                                 "byte-level BPE)"));
  }
  vocab.model = *model->AsString();

  ASSIGN_OR_RETURN(const GgufArray* tokens,
                   FindArray(file, "tokenizer.ggml.tokens", GgufType::kString, 0));
  if (tokens == nullptr || tokens->items.empty()) {
    return KeyError(file, "tokenizer.ggml.tokens", "missing or empty");
  }
  if (tokens->items.size() > (1u << 24)) {
    return KeyError(file, "tokenizer.ggml.tokens",
                    absl::StrCat(tokens->items.size(), " tokens is implausibly many"));
  }
  const size_t n = tokens->items.size();
  vocab.pieces.reserve(n);
  for (const GgufValue& t : tokens->items) vocab.pieces.push_back(*t.AsString());

  ASSIGN_OR_RETURN(const GgufArray* scores,
                   FindArray(file, "tokenizer.ggml.scores", GgufType::kFloat32, n));
  vocab.scores.assign(n, 0.0f);
  if (scores != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      vocab.scores[i] = static_cast<float>(scores->items[i].AsDouble().value_or(0.0));
    }
  }

  ASSIGN_OR_RETURN(const GgufArray* types,
                   FindArray(file, "tokenizer.ggml.token_type", GgufType::kInt32, n));
  vocab.types.assign(n, TokenType::kNormal);
  if (types != nullptr) {
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = types->items[i].AsInt().value_or(0);
      if (t < 0 || t > static_cast<int64_t>(TokenType::kByte)) {
        return KeyError(file, "tokenizer.ggml.token_type",
                        absl::StrCat("token ", i, " has unknown type ", t));
      }
      // 0 is "undefined" in llama.cpp; treat it as a normal piece.
      vocab.types[i] = t == 0 ? TokenType::kNormal : static_cast<TokenType>(t);
    }
  }

  const int32_t size = vocab.size();
  if (vocab.model == "gpt2") {  // no SentencePiece defaults (<unk> 0, <s> 1, </s> 2)
    vocab.bos_id = vocab.eos_id = vocab.unk_id = -1;
  }
  if (vocab.bos_id >= size) vocab.bos_id = -1;
  if (vocab.eos_id >= size) vocab.eos_id = -1;
  if (vocab.unk_id >= size) vocab.unk_id = -1;
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.bos_token_id", size, &vocab.bos_id));
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.eos_token_id", size, &vocab.eos_id));
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.unknown_token_id", size, &vocab.unk_id));
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    int32_t id = -1;
    RETURN_IF_ERROR(ReadTokenId(file, key, size, &id));
    if (id >= 0) vocab.end_of_turn_ids.push_back(id);
  }
  if (vocab.model == "gpt2") {
    RETURN_IF_ERROR(ReadByteLevelRules(file, &vocab));
    vocab.add_bos = vocab.pre == "llama-bpe" || vocab.pre == "default";  // llama.cpp's default
  }
  RETURN_IF_ERROR(ReadBool(file, "tokenizer.ggml.add_bos_token", &vocab.add_bos));
  if (vocab.model == "gpt2") return vocab;
  RETURN_IF_ERROR(ReadBool(file, "tokenizer.ggml.add_space_prefix", &vocab.add_space_prefix));
  vocab.uses_plain_spaces = false;
  return vocab;
}

absl::Status AddGgufVocabulary(const Vocabulary& vocab, GgufWriter& writer) {
  if (vocab.hf_bpe && vocab.hf.byte_level) return AddGgufByteLevelVocabulary(vocab, writer);
  std::vector<std::string> pieces = vocab.pieces;
  if (vocab.uses_plain_spaces) {
    // llama2.c's tokenizer.bin: spaces as ' ' and BOS/EOS as "\n<s>\n", "\n</s>\n".
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string& p = pieces[i];
      if (i < vocab.types.size() && vocab.types[i] == TokenType::kControl) {
        p = std::string(absl::StripAsciiWhitespace(p));
      } else {
        p = absl::StrReplaceAll(p, {{" ", "\xe2\x96\x81"}});
      }
    }
  }
  std::vector<float> scores = vocab.scores;
  scores.resize(pieces.size(), 0.0f);
  std::vector<int32_t> types(pieces.size(), static_cast<int32_t>(TokenType::kNormal));
  for (size_t i = 0; i < vocab.types.size() && i < types.size(); ++i) {
    types[i] = static_cast<int32_t>(vocab.types[i]);
  }
  writer.AddMetadata("tokenizer.ggml.model", GgufValue::String(vocab.model));
  writer.AddMetadata("tokenizer.ggml.tokens", GgufValue::StringArray(pieces));
  writer.AddMetadata("tokenizer.ggml.scores", GgufValue::Float32Array(scores));
  writer.AddMetadata("tokenizer.ggml.token_type", GgufValue::Int32Array(types));
  if (vocab.bos_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.bos_token_id", GgufValue::Uint32(vocab.bos_id));
  }
  if (vocab.eos_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.eos_token_id", GgufValue::Uint32(vocab.eos_id));
  }
  if (vocab.unk_id >= 0) {
    writer.AddMetadata("tokenizer.ggml.unknown_token_id", GgufValue::Uint32(vocab.unk_id));
  }
  writer.AddMetadata("tokenizer.ggml.add_bos_token", GgufValue::Bool(vocab.add_bos));
  writer.AddMetadata("tokenizer.ggml.add_eos_token", GgufValue::Bool(false));
  writer.AddMetadata("tokenizer.ggml.add_space_prefix", GgufValue::Bool(vocab.add_space_prefix));
  AddEndOfTurnIds(vocab, writer);
  return absl::OkStatus();
}

}  // namespace specserve
