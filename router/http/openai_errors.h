// Errors in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with the
// HTTP status clients act on: 400 for a bad parameter (named in `param`), 404 for an
// unknown model or path, 413 for a body over the limit, 429 when the queue is full,
// 503 while draining or when the target is down.
#pragma once

#include <string>

#include "absl/status/status.h"

namespace specserve {

struct OpenAiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // "" -> null
  std::string code;   // "" -> null

  std::string ToJson() const;
};

OpenAiError BadParam(const std::string& param, const std::string& message);
// From an engine or scheduler status: INVALID_ARGUMENT / OUT_OF_RANGE 400,
// NOT_FOUND 404, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, DEADLINE_EXCEEDED 504,
// CANCELLED 499, others 500. `param` names the parameter when one is at fault.
OpenAiError FromStatus(const absl::Status& status, const std::string& param = "");
// The body for an HTTP error status without one (httplib's 400/404/413/431...).
std::string ErrorBodyForStatus(int status);

}  // namespace specserve
