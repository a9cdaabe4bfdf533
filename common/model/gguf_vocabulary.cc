#include "common/model/gguf_vocabulary.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
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
  if (*model->AsString() != "llama") {
    return KeyError(file, "tokenizer.ggml.model",
                    absl::StrCat("tokenizer model '", *model->AsString(),
                                 "' is not supported (only 'llama', SentencePiece)"));
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
  if (vocab.bos_id >= size) vocab.bos_id = -1;
  if (vocab.eos_id >= size) vocab.eos_id = -1;
  if (vocab.unk_id >= size) vocab.unk_id = -1;
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.bos_token_id", size, &vocab.bos_id));
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.eos_token_id", size, &vocab.eos_id));
  RETURN_IF_ERROR(ReadTokenId(file, "tokenizer.ggml.unknown_token_id", size, &vocab.unk_id));
  RETURN_IF_ERROR(ReadBool(file, "tokenizer.ggml.add_bos_token", &vocab.add_bos));
  RETURN_IF_ERROR(ReadBool(file, "tokenizer.ggml.add_space_prefix", &vocab.add_space_prefix));
  vocab.uses_plain_spaces = false;
  return vocab;
}

void AddGgufVocabulary(const Vocabulary& vocab, GgufWriter& writer) {
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
}

}  // namespace specserve
