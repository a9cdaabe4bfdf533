#include "common/chat_template/chat_template.h"

#include "common/chat_template/ast.h"
#include "common/chat_template/evaluator.h"
#include "common/chat_template/parser.h"

namespace specserve {

ChatTemplate::~ChatTemplate() = default;

absl::StatusOr<std::shared_ptr<const ChatTemplate>> ChatTemplate::Parse(const std::string& source) {
  auto program = jinja::ParseTemplate(source);
  if (!program.ok()) {
    return absl::InvalidArgumentError("chat template: " + std::string(program.status().message()));
  }
  auto t = std::shared_ptr<ChatTemplate>(new ChatTemplate());
  t->source_ = source;
  t->program_ = std::make_unique<jinja::Program>(*std::move(program));
  return std::shared_ptr<const ChatTemplate>(std::move(t));
}

absl::StatusOr<std::string> ChatTemplate::Render(const ChatTemplateInputs& inputs) const {
  jinja::Value context = jinja::Value::NewDict();
  jinja::Dict& d = context.dict();
  d.Set(jinja::Value("messages"), jinja::Value::FromJson(inputs.messages));
  d.Set(jinja::Value("add_generation_prompt"), jinja::Value(inputs.add_generation_prompt));
  d.Set(jinja::Value("bos_token"), jinja::Value(inputs.bos_token));
  d.Set(jinja::Value("eos_token"), jinja::Value(inputs.eos_token));
  d.Set(jinja::Value("tools"), jinja::Value::None());
  d.Set(jinja::Value("documents"), jinja::Value::None());
  if (inputs.extra.is_object()) {
    for (const auto& [k, v] : inputs.extra.items())
      d.Set(jinja::Value(k), jinja::Value::FromJson(v));
  }
  return jinja::Render(*program_, context);
}

}  // namespace specserve
