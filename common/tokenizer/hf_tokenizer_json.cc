#include "common/tokenizer/hf_tokenizer_json.h"

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/json_document.h"
#include "common/tokenizer/pretokenizer_patterns.h"
#include "common/tokenizer/regex_splitter.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Json = nlohmann::json;
constexpr char kMarker[] = "\xE2\x96\x81";  // U+2581
constexpr int64_t kMaxTokens = int64_t{1} << 24;

absl::Status Error(const std::string& where, const std::string& key, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, ": ", what));
}

absl::Status Unsupported(const std::string& where, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what, " is not supported"));
}

// Short printable form of a string for messages.
std::string Quoted(const std::string& s) {
  return absl::StrCat("'", absl::CHexEscape(s.size() > 40 ? s.substr(0, 40) + "..." : s), "'");
}

// The "type" of a component object at `key`.
absl::StatusOr<std::string> ComponentType(const Json& component, const std::string& key,
                                          const std::string& where) {
  if (!component.is_object()) {
    return Error(where, key, absl::StrCat("must be an object, not ", JsonTypeName(component)));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> type, JsonString(component, "type", where));
  if (!type.has_value()) return Error(where, key, "has no 'type'");
  return *type;
}

// A {"String": "..."} pattern; other kinds (Regex) are refused.
absl::StatusOr<std::string> StringPattern(const Json& component, const std::string& key,
                                          const std::string& where) {
  const auto it = component.find("pattern");
  if (it == component.end() || !it->is_object()) {
    return Error(where, key, "'pattern' must be an object");
  }
  const auto s = it->find("String");
  if (s == it->end() || !s->is_string()) {
    return Unsupported(where, absl::StrCat(key, ": a pattern other than {\"String\": ...}"));
  }
  return s->get<std::string>();
}

absl::Status ParseNormalizer(const Json& n, const std::string& key, const std::string& where,
                             HfBpeRules* rules) {
  if (n.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string type, ComponentType(n, key, where));
  if (type == "Sequence") {
    const auto it = n.find("normalizers");
    if (it == n.end() || !it->is_array())
      return Error(where, key, "'normalizers' must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      RETURN_IF_ERROR(
          ParseNormalizer((*it)[i], absl::StrCat(key, ".normalizers[", i, "]"), where, rules));
    }
    return absl::OkStatus();
  }
  if (type == "NFC") {
    rules->normalizer_nfc = true;
    return absl::OkStatus();
  }
  if (type == "Prepend") {
    ASSIGN_OR_RETURN(std::optional<std::string> prepend, JsonString(n, "prepend", where));
    if (prepend != kMarker) {
      return Unsupported(where, absl::StrCat("normalizer Prepend of ", Quoted(prepend.value_or("")),
                                             " (only '\\u2581')"));
    }
    rules->normalizer_prepend = true;
    return absl::OkStatus();
  }
  if (type == "Replace") {
    ASSIGN_OR_RETURN(const std::string pattern, StringPattern(n, key, where));
    ASSIGN_OR_RETURN(std::optional<std::string> content, JsonString(n, "content", where));
    if (pattern != " " || content != kMarker) {
      return Unsupported(where,
                         absl::StrCat("normalizer Replace of ", Quoted(pattern), " by ",
                                      Quoted(content.value_or("")), " (only ' ' by '\\u2581')"));
    }
    rules->normalizer_replace_spaces = true;
    return absl::OkStatus();
  }
  return Unsupported(where, absl::StrCat("normalizer type ", type));
}

// Metaspace's prepend scheme, from "prepend_scheme" or the older "add_prefix_space".
absl::StatusOr<HfBpeRules::MetaspacePrepend> MetaspacePrepend(const Json& m, const std::string& key,
                                                              const std::string& where) {
  using P = HfBpeRules::MetaspacePrepend;
  ASSIGN_OR_RETURN(std::optional<std::string> replacement, JsonString(m, "replacement", where));
  if (replacement.has_value() && *replacement != kMarker) {
    return Unsupported(where, absl::StrCat(key, ": Metaspace replacement ", Quoted(*replacement)));
  }
  ASSIGN_OR_RETURN(std::optional<std::string> scheme, JsonString(m, "prepend_scheme", where));
  if (scheme.has_value()) {
    if (*scheme == "always") return P::kAlways;
    if (*scheme == "first") return P::kFirst;
    if (*scheme == "never") return P::kNever;
    return Error(where, key, absl::StrCat("unknown prepend_scheme ", Quoted(*scheme)));
  }
  ASSIGN_OR_RETURN(std::optional<bool> add_prefix, JsonBool(m, "add_prefix_space", where));
  return add_prefix.value_or(true) ? P::kAlways : P::kNever;
}

absl::Status ParsePreTokenizer(const Json& p, const std::string& key, const std::string& where,
                               HfBpeRules* rules) {
  if (p.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string type, ComponentType(p, key, where));
  if (type == "Sequence") {
    const auto it = p.find("pretokenizers");
    if (it == p.end() || !it->is_array()) {
      return Error(where, key, "'pretokenizers' must be an array");
    }
    for (size_t i = 0; i < it->size(); ++i) {
      RETURN_IF_ERROR(
          ParsePreTokenizer((*it)[i], absl::StrCat(key, ".pretokenizers[", i, "]"), where, rules));
    }
    return absl::OkStatus();
  }
  if (type == "Metaspace") {
    if (rules->metaspace) return Unsupported(where, "more than one Metaspace pre-tokenizer");
    ASSIGN_OR_RETURN(rules->metaspace_prepend, MetaspacePrepend(p, key, where));
    ASSIGN_OR_RETURN(std::optional<bool> split, JsonBool(p, "split", where));
    rules->metaspace = true;
    rules->split_words = split.value_or(true);
    return absl::OkStatus();
  }
  if (type == "Split") {
    const auto pattern = p.find("pattern");
    if (pattern == p.end() || !pattern->is_object()) {
      return Error(where, key, "'pattern' must be an object");
    }
    std::string regex;
    if (const auto r = pattern->find("Regex"); r != pattern->end() && r->is_string()) {
      regex = r->get<std::string>();
    } else if (const auto t = pattern->find("String"); t != pattern->end() && t->is_string()) {
      regex = absl::StrCat("\\Q", t->get<std::string>(), "\\E");
    } else {
      return Error(where, key, "'pattern' must be {\"Regex\": ...} or {\"String\": ...}");
    }
    ASSIGN_OR_RETURN(std::optional<std::string> behavior, JsonString(p, "behavior", where));
    ASSIGN_OR_RETURN(std::optional<bool> invert, JsonBool(p, "invert", where));
    if (behavior.value_or("Isolated") != "Isolated" || invert.value_or(false)) {
      return Unsupported(
          where, absl::StrCat(key, ": Split with behavior ", behavior.value_or("Isolated"),
                              invert.value_or(false) ? " inverted" : "", " (only Isolated)"));
    }
    if (absl::StatusOr<std::shared_ptr<const RegexSplitter>> compiled =
            RegexSplitter::Compile(regex);
        !compiled.ok()) {
      return Error(where, key, std::string(compiled.status().message()));
    }
    rules->splits.push_back({std::move(regex), false});
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {
    // add_prefix_space and use_regex default to true in `tokenizers`; trim_offsets
    // only moves offsets.
    ASSIGN_OR_RETURN(std::optional<bool> prefix, JsonBool(p, "add_prefix_space", where));
    ASSIGN_OR_RETURN(std::optional<bool> use_regex, JsonBool(p, "use_regex", where));
    if (rules->byte_level) return Unsupported(where, "more than one ByteLevel pre-tokenizer");
    rules->byte_level = true;
    rules->splits.push_back(
        {use_regex.value_or(true) ? std::string(kGpt2Pattern) : "", prefix.value_or(true)});
    return absl::OkStatus();
  }
  return Unsupported(where, absl::StrCat("pre_tokenizer type ", type));
}

struct DecoderSteps {
  bool byte_level = false;
  bool marker_to_space = false;
  bool byte_fallback = false;
  bool strip_first_space = false;
};

absl::Status ParseDecoder(const Json& d, const std::string& key, const std::string& where,
                          DecoderSteps* steps) {
  if (d.is_null()) return absl::OkStatus();
  ASSIGN_OR_RETURN(const std::string type, ComponentType(d, key, where));
  if (type == "Sequence") {
    const auto it = d.find("decoders");
    if (it == d.end() || !it->is_array()) return Error(where, key, "'decoders' must be an array");
    for (size_t i = 0; i < it->size(); ++i) {
      RETURN_IF_ERROR(
          ParseDecoder((*it)[i], absl::StrCat(key, ".decoders[", i, "]"), where, steps));
    }
    return absl::OkStatus();
  }
  if (type == "Replace") {
    ASSIGN_OR_RETURN(const std::string pattern, StringPattern(d, key, where));
    ASSIGN_OR_RETURN(std::optional<std::string> content, JsonString(d, "content", where));
    if (pattern != kMarker || content != " ") {
      return Unsupported(where,
                         absl::StrCat("decoder Replace of ", Quoted(pattern), " by ",
                                      Quoted(content.value_or("")), " (only '\\u2581' by ' ')"));
    }
    steps->marker_to_space = true;
    return absl::OkStatus();
  }
  if (type == "ByteFallback") {
    steps->byte_fallback = true;
    return absl::OkStatus();
  }
  if (type == "ByteLevel") {  // its options only concern offsets
    steps->byte_level = true;
    return absl::OkStatus();
  }
  if (type == "Fuse") return absl::OkStatus();
  if (type == "Strip") {
    ASSIGN_OR_RETURN(std::optional<std::string> content, JsonString(d, "content", where));
    ASSIGN_OR_RETURN(std::optional<int64_t> start, JsonInt(d, "start", where));
    ASSIGN_OR_RETURN(std::optional<int64_t> stop, JsonInt(d, "stop", where));
    if (content != " " || start.value_or(0) > 1 || start.value_or(0) < 0 || stop.value_or(0) != 0) {
      return Unsupported(where,
                         absl::StrCat("decoder Strip of ", Quoted(content.value_or("")), " (start ",
                                      start.value_or(0), ", stop ", stop.value_or(0),
                                      "); only ' ' with start <= 1, stop 0"));
    }
    steps->strip_first_space = start.value_or(0) == 1;
    return absl::OkStatus();
  }
  if (type == "Metaspace") {
    ASSIGN_OR_RETURN(const HfBpeRules::MetaspacePrepend prepend, MetaspacePrepend(d, key, where));
    steps->marker_to_space = true;
    steps->strip_first_space = prepend != HfBpeRules::MetaspacePrepend::kNever;
    return absl::OkStatus();
  }
  return Unsupported(where, absl::StrCat("decoder type ", type));
}

// The id of a template's SpecialToken, through the post-processor's special_tokens.
absl::StatusOr<int32_t> TemplateTokenId(const Json& processor, const Json& item,
                                        const std::string& key, const std::string& where,
                                        const absl::flat_hash_map<std::string, int32_t>& ids) {
  ASSIGN_OR_RETURN(std::optional<std::string> name, JsonString(item, "id", where));
  if (!name.has_value()) return Error(where, key, "SpecialToken has no 'id'");
  const auto specials = processor.find("special_tokens");
  if (specials != processor.end() && specials->is_object()) {
    const auto entry = specials->find(*name);
    if (entry != specials->end() && entry->is_object()) {
      const auto list = entry->find("ids");
      if (list != entry->end() && list->is_array() && list->size() == 1 &&
          (*list)[0].is_number_integer()) {
        const int64_t id = (*list)[0].get<int64_t>();
        if (id < 0 || id >= kMaxTokens) {
          return Error(where, key, absl::StrCat("special token id ", id, " is out of range"));
        }
        return static_cast<int32_t>(id);
      }
      if (list != entry->end() && list->is_array() && list->size() != 1) {
        return Unsupported(where, absl::StrCat(key, ": a special token of ", list->size(), " ids"));
      }
    }
  }
  const auto it = ids.find(*name);
  if (it == ids.end()) {
    return Error(where, key, absl::StrCat("special token ", Quoted(*name), " is not a token"));
  }
  return it->second;
}

// BOS from a TemplateProcessing post-processor whose `single` template is
// [SpecialToken?, Sequence A].
absl::Status ParsePostProcessor(const Json& p, const std::string& where,
                                const absl::flat_hash_map<std::string, int32_t>& ids,
                                Vocabulary* vocab) {
  if (p.is_null()) return absl::OkStatus();
  const std::string key = "post_processor";
  ASSIGN_OR_RETURN(const std::string type, ComponentType(p, key, where));
  if (type == "ByteLevel") return absl::OkStatus();  // it only trims offsets
  if (type == "Sequence") {
    const auto list = p.find("processors");
    if (list == p.end() || !list->is_array()) {
      return Error(where, key, "'processors' must be an array");
    }
    for (const Json& item : *list) RETURN_IF_ERROR(ParsePostProcessor(item, where, ids, vocab));
    return absl::OkStatus();
  }
  if (type != "TemplateProcessing") {
    return Unsupported(where, absl::StrCat("post_processor type ", type));
  }
  const auto single = p.find("single");
  if (single == p.end() || !single->is_array()) {
    return Error(where, "post_processor.single", "must be an array");
  }
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const std::string item_key = absl::StrCat("post_processor.single[", i, "]");
    const Json& item = (*single)[i];
    if (!item.is_object() || item.size() != 1) {
      return Error(where, item_key, "must be an object with one member");
    }
    if (item.contains("Sequence")) {
      if (seen_sequence) return Unsupported(where, absl::StrCat(item_key, ": a second Sequence"));
      seen_sequence = true;
      continue;
    }
    if (!item.contains("SpecialToken")) {
      return Error(where, item_key, "must be a Sequence or a SpecialToken");
    }
    if (seen_sequence) {
      return Unsupported(where,
                         absl::StrCat(item_key, ": a special token after the text (add_eos)"));
    }
    if (vocab->add_bos) {
      return Unsupported(where, absl::StrCat(item_key, ": more than one token before the text"));
    }
    ASSIGN_OR_RETURN(vocab->bos_id, TemplateTokenId(p, item["SpecialToken"], item_key, where, ids));
    vocab->add_bos = true;
  }
  return absl::OkStatus();
}

// One merge: "a b" or ["a", "b"].
absl::StatusOr<std::pair<std::string, std::string>> ParseMerge(const Json& m,
                                                               const std::string& key,
                                                               const std::string& where) {
  if (m.is_string()) {
    const std::string s = m.get<std::string>();
    const size_t space = s.find(' ');
    if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos) {
      return Error(where, key, absl::StrCat(Quoted(s), " is not two pieces separated by a space"));
    }
    return std::make_pair(s.substr(0, space), s.substr(space + 1));
  }
  if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
    return std::make_pair(m[0].get<std::string>(), m[1].get<std::string>());
  }
  return Error(where, key, "must be \"a b\" or [\"a\", \"b\"]");
}

absl::Status ParseModelOptions(const Json& model, const std::string& where, HfBpeRules* rules,
                               std::optional<std::string>* unk_token) {
  ASSIGN_OR_RETURN(std::optional<std::string> type, JsonString(model, "type", where));
  if (type.has_value() && *type != "BPE") {
    return Unsupported(where, absl::StrCat("model type ", *type, " (only BPE)"));
  }
  if (!type.has_value() && !model.contains("merges")) {
    return Error(where, "model", "has no 'type' and no 'merges' (only BPE is supported)");
  }
  ASSIGN_OR_RETURN(std::optional<double> dropout, JsonNumber(model, "dropout", where));
  if (dropout.value_or(0.0) != 0.0) return Unsupported(where, "model.dropout (BPE dropout)");
  for (const char* affix : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    ASSIGN_OR_RETURN(std::optional<std::string> value, JsonString(model, affix, where));
    if (value.has_value() && !value->empty()) {
      return Unsupported(where, absl::StrCat("model.", affix, " ", Quoted(*value)));
    }
  }
  ASSIGN_OR_RETURN(*unk_token, JsonString(model, "unk_token", where));
  ASSIGN_OR_RETURN(std::optional<bool> fuse_unk, JsonBool(model, "fuse_unk", where));
  ASSIGN_OR_RETURN(std::optional<bool> byte_fallback, JsonBool(model, "byte_fallback", where));
  ASSIGN_OR_RETURN(std::optional<bool> ignore_merges, JsonBool(model, "ignore_merges", where));
  rules->fuse_unk = fuse_unk.value_or(false);
  rules->byte_fallback = byte_fallback.value_or(false);
  rules->ignore_merges = ignore_merges.value_or(false);
  return absl::OkStatus();
}

// Token ids must be dense: 0..n-1 each with one piece (model.vocab or added_tokens).
class PieceTable {
 public:
  absl::Status Set(int64_t id, const std::string& piece, const std::string& key,
                   const std::string& where, bool may_replace) {
    if (id < 0 || id >= kMaxTokens) {
      return Error(where, key,
                   absl::StrCat("token id ", id, " is out of range [0, ", kMaxTokens, ")"));
    }
    if (static_cast<size_t>(id) >= pieces_.size()) {
      pieces_.resize(id + 1);
      set_.resize(id + 1, false);
    }
    if (set_[id] && !may_replace && pieces_[id] != piece) {
      return Error(where, key,
                   absl::StrCat("token id ", id, " is given to both ", Quoted(pieces_[id]), " and ",
                                Quoted(piece)));
    }
    pieces_[id] = piece;
    set_[id] = true;
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<std::string>> Take(const std::string& where) {
    for (size_t id = 0; id < set_.size(); ++id) {
      if (!set_[id]) {
        return Error(where, "model.vocab",
                     absl::StrCat("token id ", id, " has no piece (ids must be 0..",
                                  set_.size() - 1, " without gaps)"));
      }
    }
    if (pieces_.empty()) return Error(where, "model.vocab", "is empty");
    return std::move(pieces_);
  }

 private:
  std::vector<std::string> pieces_;
  std::vector<bool> set_;
};

}  // namespace

absl::StatusOr<Vocabulary> ParseHfTokenizerJson(const Json& root, const std::string& where) {
  if (!root.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": must be a JSON object, not ", JsonTypeName(root)));
  }
  const auto model_it = root.find("model");
  if (model_it == root.end() || !model_it->is_object()) {
    return Error(where, "model", "missing or not an object");
  }
  const Json& model = *model_it;
  Vocabulary vocab;
  vocab.model = "llama";
  vocab.hf_bpe = true;
  HfBpeRules& rules = vocab.hf;
  std::optional<std::string> unk_token;
  RETURN_IF_ERROR(ParseModelOptions(model, where, &rules, &unk_token));

  // Pieces.
  PieceTable table;
  const auto vocab_it = model.find("vocab");
  if (vocab_it == model.end() || !vocab_it->is_object()) {
    return Error(where, "model.vocab", "missing or not an object");
  }
  if (static_cast<int64_t>(vocab_it->size()) > kMaxTokens) {
    return Error(where, "model.vocab", absl::StrCat(vocab_it->size(), " tokens is too many"));
  }
  for (const auto& [piece, id] : vocab_it->items()) {
    const std::string key = absl::StrCat("model.vocab[", Quoted(piece), "]");
    if (!id.is_number_integer()) return Error(where, key, "id must be an integer");
    RETURN_IF_ERROR(table.Set(id.get<int64_t>(), piece, key, where, /*may_replace=*/false));
  }
  const auto added_it = root.find("added_tokens");
  if (added_it != root.end() && !added_it->is_null() && !added_it->is_array()) {
    return Error(where, "added_tokens", "must be an array");
  }
  if (added_it != root.end() && added_it->is_array()) {
    for (size_t i = 0; i < added_it->size(); ++i) {
      const std::string key = absl::StrCat("added_tokens[", i, "]");
      const Json& t = (*added_it)[i];
      if (!t.is_object()) return Error(where, key, "must be an object");
      ASSIGN_OR_RETURN(std::optional<int64_t> id, JsonInt(t, "id", where));
      ASSIGN_OR_RETURN(std::optional<std::string> content, JsonString(t, "content", where));
      if (!id.has_value() || !content.has_value() || content->empty()) {
        return Error(where, key, "needs an integer 'id' and a non-empty 'content'");
      }
      ASSIGN_OR_RETURN(std::optional<bool> special, JsonBool(t, "special", where));
      ASSIGN_OR_RETURN(std::optional<bool> normalized, JsonBool(t, "normalized", where));
      for (const char* flag : {"single_word", "lstrip", "rstrip"}) {
        ASSIGN_OR_RETURN(std::optional<bool> value, JsonBool(t, flag, where));
        if (value.value_or(false)) {
          return Unsupported(where, absl::StrCat(key, " (", Quoted(*content), "): ", flag));
        }
      }
      RETURN_IF_ERROR(table.Set(*id, *content, key, where, /*may_replace=*/true));
      AddedToken added;
      added.id = static_cast<int32_t>(*id);
      added.special = special.value_or(false);
      added.normalized = normalized.value_or(!added.special);
      rules.added_tokens.push_back(added);
    }
  }
  ASSIGN_OR_RETURN(vocab.pieces, table.Take(where));
  const int32_t n = vocab.size();
  absl::flat_hash_map<std::string, int32_t> ids;
  ids.reserve(n);
  for (int32_t id = 0; id < n; ++id) ids.try_emplace(vocab.pieces[id], id);

  // Merges, and scores that rank pieces by the merge that makes them.
  const auto merges_it = model.find("merges");
  if (merges_it != model.end() && !merges_it->is_null() && !merges_it->is_array()) {
    return Error(where, "model.merges", "must be an array");
  }
  vocab.scores.assign(n, 0.0f);
  std::vector<bool> made(n, false);
  if (merges_it != model.end() && merges_it->is_array()) {
    if (static_cast<int64_t>(merges_it->size()) > kMaxTokens) {
      return Error(where, "model.merges", absl::StrCat(merges_it->size(), " merges is too many"));
    }
    rules.merges.reserve(merges_it->size());
    for (size_t rank = 0; rank < merges_it->size(); ++rank) {
      const std::string key = absl::StrCat("model.merges[", rank, "]");
      ASSIGN_OR_RETURN(auto merge, ParseMerge((*merges_it)[rank], key, where));
      for (const std::string* part : {&merge.first, &merge.second}) {
        if (!ids.contains(*part)) {
          return Error(where, key, absl::StrCat(Quoted(*part), " is not a token"));
        }
      }
      const auto merged = ids.find(merge.first + merge.second);
      if (merged == ids.end()) {
        return Error(where, key,
                     absl::StrCat("the merged piece ", Quoted(merge.first + merge.second),
                                  " is not a token"));
      }
      if (!made[merged->second]) {
        made[merged->second] = true;
        vocab.scores[merged->second] = -static_cast<float>(rank);
      }
      rules.merges.push_back(std::move(merge));
    }
  }
  // Pieces no merge makes are never merge results in BPE: rank them below every merge.
  const float unreachable = -static_cast<float>(rules.merges.size()) - 1.0f;
  for (int32_t id = 0; id < n; ++id) {
    if (!made[id] && vocab.pieces[id].size() > 1) vocab.scores[id] = unreachable;
  }

  // Types and special ids.
  vocab.types.assign(n, TokenType::kNormal);
  for (int32_t id = 0; id < n; ++id) {
    if (ParseBytePiece(vocab.pieces[id]) >= 0) vocab.types[id] = TokenType::kByte;
  }
  for (const AddedToken& t : rules.added_tokens) {
    vocab.types[t.id] = t.special ? TokenType::kControl : TokenType::kUserDefined;
  }
  vocab.unk_id = -1;
  if (unk_token.has_value()) {
    const auto it = ids.find(*unk_token);
    if (it == ids.end()) {
      return Error(where, "model.unk_token", absl::StrCat(Quoted(*unk_token), " is not a token"));
    }
    vocab.unk_id = it->second;
    vocab.types[vocab.unk_id] = TokenType::kUnknown;
  }
  vocab.eos_id = -1;

  // Normalizer, pre-tokenizer, decoder, post-processor.
  const Json null_json;
  const auto member = [&](const char* key) -> const Json& {
    const auto it = root.find(key);
    return it == root.end() ? null_json : *it;
  };
  RETURN_IF_ERROR(ParseNormalizer(member("normalizer"), "normalizer", where, &rules));
  RETURN_IF_ERROR(ParsePreTokenizer(member("pre_tokenizer"), "pre_tokenizer", where, &rules));
  DecoderSteps decoder;
  RETURN_IF_ERROR(ParseDecoder(member("decoder"), "decoder", where, &decoder));
  vocab.bos_id = -1;
  vocab.add_bos = false;
  RETURN_IF_ERROR(ParsePostProcessor(member("post_processor"), where, ids, &vocab));
  if (vocab.bos_id >= n) {
    return Error(where, "post_processor",
                 absl::StrCat("BOS id ", vocab.bos_id, " is outside the vocabulary of ", n));
  }

  const bool spaces_to_marker = rules.normalizer_replace_spaces || rules.metaspace;
  if (spaces_to_marker != decoder.marker_to_space) {
    return Unsupported(
        where, spaces_to_marker
                   ? "a decoder that does not turn '\\u2581' back into spaces"
                   : "a decoder that turns '\\u2581' into spaces when encoding keeps spaces");
  }
  if (rules.byte_fallback && !decoder.byte_fallback) {
    return Unsupported(where, "a byte_fallback model without a ByteFallback decoder");
  }
  if (rules.byte_level != decoder.byte_level) {
    return Unsupported(where, rules.byte_level
                                  ? "a ByteLevel pre-tokenizer without a ByteLevel decoder"
                                  : "a ByteLevel decoder without a ByteLevel pre-tokenizer");
  }
  if (rules.metaspace && !rules.splits.empty()) {
    return Unsupported(where, "a Metaspace pre-tokenizer together with Split or ByteLevel");
  }
  if (rules.byte_level) {
    vocab.model = "gpt2";
    std::vector<std::string> patterns;
    for (const HfBpeRules::SplitStep& step : rules.splits) {
      if (step.add_prefix_space) patterns.push_back("(add_prefix_space)");
      if (!step.pattern.empty()) patterns.push_back(step.pattern);
    }
    vocab.pre = GgufPreForPatterns(patterns);
  }
  vocab.uses_plain_spaces = !spaces_to_marker;
  vocab.add_space_prefix = decoder.strip_first_space;
  return vocab;
}

}  // namespace specserve
