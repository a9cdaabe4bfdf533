#include "router/http/chat_prompt.h"

#include <algorithm>

namespace specserve {

ChatPromptBuilder::ChatPromptBuilder(const Tokenizer& tokenizer,
                                     std::shared_ptr<const ChatTemplate> chat_template)
    : tokenizer_(tokenizer), chat_template_(std::move(chat_template)) {
  const Vocabulary& v = tokenizer.vocab();
  for (int32_t id = 0; id < v.size(); ++id) {
    const TokenType type =
        id < static_cast<int32_t>(v.types.size()) ? v.types[id] : TokenType::kNormal;
    if ((type == TokenType::kControl || type == TokenType::kUserDefined) && !v.pieces[id].empty()) {
      specials_.emplace_back(v.pieces[id], id);
    }
  }
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  first_byte_.fill(false);
  for (const auto& [piece, id] : specials_)
    first_byte_[static_cast<unsigned char>(piece[0])] = true;
}

absl::StatusOr<std::string> ChatPromptBuilder::Render(const nlohmann::ordered_json& messages,
                                                      bool add_generation_prompt) const {
  if (!chat_template_) {
    return absl::FailedPreconditionError(
        "the model has no chat template (GGUF tokenizer.chat_template or chat_template in "
        "tokenizer_config.json); start the server with --chat-template FILE, or use "
        "/v1/completions");
  }
  ChatTemplateInputs in;
  in.messages = messages;
  in.add_generation_prompt = add_generation_prompt;
  const Vocabulary& v = tokenizer_.vocab();
  if (v.bos_id >= 0 && v.bos_id < v.size()) in.bos_token = v.pieces[v.bos_id];
  if (v.eos_id >= 0 && v.eos_id < v.size()) in.eos_token = v.pieces[v.eos_id];
  return chat_template_->Render(in);
}

std::vector<int32_t> ChatPromptBuilder::Encode(std::string_view text) const {
  if (tokenizer_.vocab().hf_bpe)
    return tokenizer_.Encode(text, /*add_bos=*/false, /*parse_special=*/true);
  std::vector<int32_t> out;
  size_t plain_start = 0;
  auto flush = [&](size_t end) {
    if (end > plain_start) {
      const std::vector<int32_t> ids =
          tokenizer_.Encode(text.substr(plain_start, end - plain_start), false);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  };
  for (size_t i = 0; i < text.size();) {
    bool matched = false;
    if (first_byte_[static_cast<unsigned char>(text[i])]) {
      for (const auto& [piece, id] : specials_) {
        if (text.compare(i, piece.size(), piece) == 0) {
          flush(i);
          out.push_back(id);
          i += piece.size();
          plain_start = i;
          matched = true;
          break;
        }
      }
    }
    if (!matched) ++i;
  }
  flush(text.size());
  return out;
}

}  // namespace specserve
