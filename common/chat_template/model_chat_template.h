// Where a model keeps its chat template: the GGUF key tokenizer.chat_template, or
// "chat_template" in a Hugging Face directory's tokenizer_config.json (a string, or a
// list of {"name", "template"} of which "default" is taken). llama2.c checkpoints have
// none.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace specserve {

// The template source, "" when the model has none; errors for unreadable files.
absl::StatusOr<std::string> ReadModelChatTemplate(const std::string& model_path);

}  // namespace specserve
