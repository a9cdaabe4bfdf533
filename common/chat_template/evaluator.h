// Renders a parsed template with Jinja2's semantics: scopes (a for-loop body gets a
// fresh scope each iteration; `if` does not scope; macros see their arguments and the
// template's top level), `loop` variables, loop filters and else, break/continue,
// macros with defaults and `caller`, namespace() assignment, set blocks.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/chat_template/ast.h"
#include "common/chat_template/value.h"

namespace specserve::jinja {

struct RenderLimits {
  size_t max_output_bytes = 64 << 20;
  int max_call_depth = 64;
  int64_t max_loop_iterations = 10'000'000;
};

// `context`: a dict of the template's variables (messages, bos_token, ...). Errors
// (raise_exception, undefined names, type errors) come back as INVALID_ARGUMENT naming
// the line.
absl::StatusOr<std::string> Render(const Program& program, const Value& context,
                                   const RenderLimits& limits = {});

}  // namespace specserve::jinja
