// Chat messages -> prompt tokens: the chat template renders the conversation (as
// Hugging Face's apply_chat_template does, with the vocabulary's BOS/EOS pieces as
// bos_token/eos_token), then the text is tokenised with special tokens parsed (the
// template's "<|im_start|>" or "<s>" become those tokens, as llama.cpp and Hugging Face
// do for chat prompts) and without adding a BOS (the template writes it when the model
// wants one).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/chat_template/chat_template.h"
#include "common/tokenizer/tokenizer.h"
#include "nlohmann/json.hpp"

namespace specserve {

class ChatPromptBuilder {
 public:
  ChatPromptBuilder(const Tokenizer& tokenizer, std::shared_ptr<const ChatTemplate> chat_template);

  bool has_template() const { return chat_template_ != nullptr; }
  // The rendered conversation; the template's raise_exception() message on refusal.
  absl::StatusOr<std::string> Render(const nlohmann::ordered_json& messages,
                                     bool add_generation_prompt) const;
  // Text with special tokens: control and user-defined pieces that appear in the
  // text become their tokens (longest first); the text between them is encoded as
  // plain text.
  std::vector<int32_t> Encode(std::string_view text) const;

 private:
  const Tokenizer& tokenizer_;
  std::shared_ptr<const ChatTemplate> chat_template_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // longest first
  std::array<bool, 256> first_byte_;                       // of some special piece
};

}  // namespace specserve
