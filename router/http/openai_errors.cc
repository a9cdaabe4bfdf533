#include "router/http/openai_errors.h"

#include "nlohmann/json.hpp"

namespace specserve {

std::string OpenAiError::ToJson() const {
  nlohmann::ordered_json j = {
      {"error",
       {{"message", message},
        {"type", type},
        {"param", param.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(param)},
        {"code", code.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(code)}}}};
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

OpenAiError BadParam(const std::string& param, const std::string& message) {
  OpenAiError e;
  e.status = 400;
  e.message = message;
  e.param = param;
  return e;
}

OpenAiError FromStatus(const absl::Status& status, const std::string& param) {
  OpenAiError e;
  e.message = std::string(status.message());
  e.param = param;
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kFailedPrecondition:
      e.status = 400;
      break;
    case absl::StatusCode::kNotFound:
      e.status = 404;
      e.code = "not_found";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.status = 429;
      e.type = "rate_limit_error";
      e.code = "queue_full";
      break;
    case absl::StatusCode::kUnavailable:
      e.status = 503;
      e.type = "service_unavailable";
      e.code = "unavailable";
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.status = 504;
      e.type = "timeout";
      break;
    case absl::StatusCode::kCancelled:
      e.status = 499;
      e.type = "cancelled";
      break;
    default:
      e.status = 500;
      e.type = "internal_error";
  }
  return e;
}

std::string ErrorBodyForStatus(int status) {
  OpenAiError e;
  e.status = status;
  switch (status) {
    case 400:
      e.message = "the request is malformed (bad request line, headers or body)";
      break;
    case 404:
      e.message =
          "no such endpoint: the API serves POST /v1/completions, POST /v1/chat/completions, GET "
          "/v1/models and GET /health";
      e.code = "not_found";
      break;
    case 405:
      e.message = "method not allowed";
      break;
    case 408:
      e.message = "the request did not arrive in time (--http-read-seconds)";
      e.type = "timeout";
      break;
    case 413:
      e.message = "the request body is larger than the server's limit (--http-max-body-bytes)";
      e.code = "body_too_large";
      break;
    case 414:
      e.message = "the request URI is too long";
      break;
    case 431:
      e.message =
          "the request headers are larger than the server's limit (--http-max-header-bytes)";
      break;
    case 503:
      e.message = "the server has too many open connections (--http-max-connections); retry later";
      e.type = "service_unavailable";
      break;
    default:
      e.message = "HTTP error " + std::to_string(status);
      e.type = status >= 500 ? "internal_error" : "invalid_request_error";
  }
  return e.ToJson();
}

}  // namespace specserve
