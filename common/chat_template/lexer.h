// Splits a Jinja2 template into tokens the way Jinja2's lexer does with the settings
// Hugging Face renders chat templates with: trim_blocks (the first newline after a
// block or comment tag is dropped), lstrip_blocks (spaces and tabs before a block or
// comment tag at the start of a line are dropped), `-`/`+` whitespace control on
// every tag, {% raw %} blocks, newlines normalised to "\n" and one trailing newline
// of the source dropped.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace specserve::jinja {

struct Token {
  enum class Kind {
    kData,        // template text to output as is
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // text: the decoded value
    kInt,
    kFloat,
    kOp,  // text: the operator, e.g. "==", "(", "|"
    kEnd,
  };
  Kind kind = Kind::kEnd;
  std::string text;
  int line = 1;
};

absl::StatusOr<std::vector<Token>> Tokenize(const std::string& source);

}  // namespace specserve::jinja
