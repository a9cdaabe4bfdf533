#include "router/http/http_options.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/chat_template/model_chat_template.h"
#include "services/server_runner.h"

ABSL_FLAG(std::string, http_listen, "",
          "Serve the OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, "
          "/v1/models, /health) on HOST:PORT (port 0: any free port); empty: off");
ABSL_FLAG(std::string, chat_template, "",
          "Jinja2 chat template file for /v1/chat/completions, instead of the model's own "
          "(GGUF tokenizer.chat_template or tokenizer_config.json chat_template)");
ABSL_FLAG(std::string, served_model_name, "",
          "The model name the HTTP API lists and accepts; empty: the --model file name "
          "without its extension");
ABSL_FLAG(int64_t, http_max_body_bytes, 8 << 20, "Largest HTTP request body (413 above)");
ABSL_FLAG(int64_t, http_max_header_bytes, 16384, "Largest HTTP request line + headers (431 above)");
ABSL_FLAG(int, http_max_connections, 256,
          "Open HTTP connections at most (each streams one request at a time); more are "
          "answered 503 and closed");
ABSL_FLAG(double, http_idle_seconds, 60, "Close a keep-alive HTTP connection idle this long");
ABSL_FLAG(double, http_read_seconds, 30,
          "A request's headers and body must arrive within this many seconds (slow clients "
          "are cut off)");

namespace specserve {

absl::StatusOr<HttpOptions> LoadHttpOptions(const std::string& model_path) {
  HttpOptions o;
  o.listen = absl::GetFlag(FLAGS_http_listen);
  o.limits.max_body_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_http_max_body_bytes)));
  o.limits.max_header_bytes =
      static_cast<size_t>(std::max<int64_t>(0, absl::GetFlag(FLAGS_http_max_header_bytes)));
  o.limits.max_connections = absl::GetFlag(FLAGS_http_max_connections);
  o.limits.idle_seconds = absl::GetFlag(FLAGS_http_idle_seconds);
  o.limits.read_seconds = absl::GetFlag(FLAGS_http_read_seconds);
  if (absl::GetFlag(FLAGS_http_max_body_bytes) < 1024 ||
      absl::GetFlag(FLAGS_http_max_header_bytes) < 1024 || o.limits.max_connections < 1 ||
      o.limits.max_connections > 65536 || !(o.limits.idle_seconds > 0) ||
      !(o.limits.read_seconds > 0)) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "--http-max-body-bytes %d and --http-max-header-bytes %d must be >= 1024, "
        "--http-max-connections %d in [1, 65536], --http-idle-seconds %g and "
        "--http-read-seconds %g > 0",
        absl::GetFlag(FLAGS_http_max_body_bytes), absl::GetFlag(FLAGS_http_max_header_bytes),
        o.limits.max_connections, o.limits.idle_seconds, o.limits.read_seconds));
  }
  o.model_name = absl::GetFlag(FLAGS_served_model_name);
  if (o.model_name.empty()) {
    std::filesystem::path p(model_path);
    if (!p.has_filename()) p = p.parent_path();
    o.model_name = std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
  }
  if (o.listen.empty()) return o;
  if (absl::Status st = ValidateListenAddress(o.listen); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrFormat("--http-listen: %s", st.message()));
  }
  std::string source;
  if (const std::string file = absl::GetFlag(FLAGS_chat_template); !file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return absl::NotFoundError(absl::StrFormat("--chat-template: cannot read %s", file));
    std::stringstream ss;
    ss << in.rdbuf();
    source = ss.str();
    o.chat_template_origin = "--chat-template " + file;
  } else {
    auto from_model = ReadModelChatTemplate(model_path);
    if (!from_model.ok()) return from_model.status();
    source = *from_model;
    o.chat_template_origin = "the chat template of " + model_path;
  }
  if (source.empty()) return o;
  auto parsed = ChatTemplate::Parse(source);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("%s cannot be used: %s (give another with --chat-template FILE)",
                        o.chat_template_origin, parsed.status().message()));
  }
  o.chat_template = *parsed;
  return o;
}

}  // namespace specserve
