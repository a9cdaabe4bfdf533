// Parses the tokens of a template into a Program, with Jinja2's grammar and operator
// precedence. Constructs the engine does not implement ({% include %}, {% extends %},
// {% import %}, unknown filters or tests, methods of Python objects it does not model,
// recursive loops...) are refused here, naming the construct and its line, so a
// template is known to be usable when the model loads.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "common/chat_template/ast.h"

namespace specserve::jinja {

absl::StatusOr<Program> ParseTemplate(const std::string& source);

}  // namespace specserve::jinja
