// A model's chat template (Hugging Face's Jinja2 format: GGUF tokenizer.chat_template,
// or chat_template in tokenizer_config.json): parsed once when the model loads,
// rendered per chat request with the variables Hugging Face's apply_chat_template
// passes (messages, add_generation_prompt, bos_token, eos_token, tools = None,
// documents = None). The output is byte for byte what transformers renders; a
// template using a construct this engine lacks is refused by Parse, naming it.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace specserve {

namespace jinja {
struct Program;
}

struct ChatTemplateInputs {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  bool add_generation_prompt = true;
  std::string bos_token, eos_token;
  // More variables (an object), e.g. date_string; they override the defaults above.
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();
};

class ChatTemplate {
 public:
  // INVALID_ARGUMENT naming the line and the construct when the template cannot be used.
  static absl::StatusOr<std::shared_ptr<const ChatTemplate>> Parse(const std::string& source);

  // INVALID_ARGUMENT with the template's own message for raise_exception() (e.g.
  // "Conversation roles must alternate user/assistant/user/assistant/...").
  absl::StatusOr<std::string> Render(const ChatTemplateInputs& inputs) const;

  const std::string& source() const { return source_; }
  ~ChatTemplate();

 private:
  ChatTemplate() = default;
  std::string source_;
  std::unique_ptr<jinja::Program> program_;
};

}  // namespace specserve
