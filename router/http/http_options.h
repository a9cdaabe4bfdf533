// The OpenAI-compatible HTTP API's settings (flags shared by specserve-router and
// specserve-serve, defined in http_options.cc): where to listen, the server's limits,
// the model name clients use, and the chat template.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/chat_template/chat_template.h"

namespace specserve {

struct HttpLimits {
  size_t max_body_bytes = 8 << 20;  // larger bodies: 413
  size_t max_header_bytes = 16384;  // request line + headers; larger: 431
  int max_connections = 256;        // open connections; more are answered 503 and closed
  double idle_seconds = 60;         // a keep-alive connection idle this long is closed
  double read_seconds = 30;         // a request (headers + body) must arrive within this
};

struct HttpOptions {
  std::string listen;      // HOST:PORT; empty: no HTTP API
  std::string model_name;  // the `model` clients send (also accepted: the --model path)
  HttpLimits limits;
  // The chat template: --chat-template FILE, else the model's own; null when there is
  // none (chat requests are then refused, naming the problem).
  std::shared_ptr<const ChatTemplate> chat_template;
  std::string chat_template_origin;  // "tokenizer.chat_template of m.gguf", "--chat-template f"
};

// Reads the --http-* flags and, when --http-listen is set, the chat template of the
// model at `model_path` (or --chat-template). A template the engine cannot use is an
// error naming the construct.
absl::StatusOr<HttpOptions> LoadHttpOptions(const std::string& model_path);

}  // namespace specserve
