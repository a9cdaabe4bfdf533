// specserve-client: talks to specserve-router / specserve-serve for people and
// scripts. Exit status 0 on success; on a gRPC error it prints
// "error: CODE: message" to stderr and exits with 2 (1 for usage errors).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/util/cli.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "services/flag_names.h"
#include "specserve/v1/generation.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "Server address HOST:PORT");
ABSL_FLAG(int, max_new_tokens, -1, "New tokens at most (-1: the server's default)");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature (0: greedy)");
ABSL_FLAG(int, top_k, 0, "Top-k filter (0: off)");
ABSL_FLAG(float, top_p, 1.0f, "Nucleus mass in (0, 1]");
ABSL_FLAG(uint64_t, seed, 0,
          "Sampling seed (0: the server picks one and reports it, so that it can be replayed)");
ABSL_FLAG(std::vector<std::string>, stop, {}, "Stop sequences, comma-separated");
ABSL_FLAG(std::string, spec, "", "Speculation for this request: off, chain:G, tree:N, auto");
ABSL_FLAG(std::string, ids, "",
          "Prompt as comma-separated token ids instead of text (generate/stream); ids to "
          "decode (detokenize)");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating past the end-of-sequence token");
ABSL_FLAG(bool, skip_bos, false, "Do not prepend BOS to a text prompt");
ABSL_FLAG(bool, json, false, "Print JSON (one object per line) instead of text");
ABSL_FLAG(double, timeout, 0, "Deadline in seconds (0: none)");

namespace specserve {
namespace {

constexpr const char* kUsage =
    "Talks to specserve-serve / specserve-router: generate, stream, tokenize, detokenize, info or "
    "health.\n"
    "  specserve-client [--server HOST:PORT] generate \"Once upon a time\" --max-new-tokens 64\n"
    "  specserve-client stream \"Once upon a time\" --temperature 0.8 --seed 7\n"
    "  specserve-client stream --ids 1,403,407 --json\n"
    "  specserve-client tokenize \"Hello\"   |  detokenize --ids 1,2,3\n"
    "  specserve-client info   |  health   (exit status 0 when SERVING)";

int Usage(const std::string& message) {
  std::fprintf(stderr, "error: %s\n%s\n", message.c_str(), kUsage);
  return 1;
}

int RpcError(const grpc::Status& st) {
  static const char* kNames[] = {"OK",
                                 "CANCELLED",
                                 "UNKNOWN",
                                 "INVALID_ARGUMENT",
                                 "DEADLINE_EXCEEDED",
                                 "NOT_FOUND",
                                 "ALREADY_EXISTS",
                                 "PERMISSION_DENIED",
                                 "RESOURCE_EXHAUSTED",
                                 "FAILED_PRECONDITION",
                                 "ABORTED",
                                 "OUT_OF_RANGE",
                                 "UNIMPLEMENTED",
                                 "INTERNAL",
                                 "UNAVAILABLE",
                                 "DATA_LOSS",
                                 "UNAUTHENTICATED"};
  const int code = static_cast<int>(st.error_code());
  std::fprintf(stderr, "error: %s: %s\n", code >= 0 && code <= 16 ? kNames[code] : "?",
               st.error_message().c_str());
  return 2;
}

void SetDeadline(grpc::ClientContext* context) {
  const double timeout = absl::GetFlag(FLAGS_timeout);
  if (timeout > 0) {
    context->set_deadline(std::chrono::system_clock::now() +
                          std::chrono::microseconds(static_cast<int64_t>(timeout * 1e6)));
  }
}

bool ParseIds(const std::string& text, std::vector<int32_t>* ids) {
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    int32_t id = 0;
    if (!absl::SimpleAtoi(part, &id)) return false;
    ids->push_back(id);
  }
  return true;
}

const char* ReasonName(v1::FinishReason r) {
  switch (r) {
    case v1::FINISH_REASON_LENGTH:
      return "length";
    case v1::FINISH_REASON_EOS:
      return "eos";
    case v1::FINISH_REASON_STOP:
      return "stop";
    case v1::FINISH_REASON_CONTEXT:
      return "context";
    case v1::FINISH_REASON_CANCELLED:
      return "cancelled";
    default:
      return "unspecified";
  }
}

nlohmann::json StatsJson(const v1::GenerateStats& s) {
  return {{"prompt_tokens", s.prompt_tokens()},
          {"generated_tokens", s.generated_tokens()},
          {"accepted_tokens", s.accepted_tokens()},
          {"steps", s.steps()},
          {"speculated_steps", s.speculated_steps()},
          {"time_to_first_token_seconds", s.time_to_first_token_seconds()},
          {"total_seconds", s.total_seconds()},
          {"finish_reason", ReasonName(s.finish_reason())},
          {"stop", s.stop()},
          {"seed", s.seed()}};
}

std::string StatsLine(const v1::GenerateStats& s) {
  return absl::StrFormat(
      "[%d prompt + %d generated tokens in %d steps (%.2f tokens/step, %d accepted drafted), "
      "first token %.3f s, total %.3f s, finish: %s%s%s]",
      s.prompt_tokens(), s.generated_tokens(), s.steps(),
      s.steps() ? static_cast<double>(s.generated_tokens()) / s.steps() : 0.0, s.accepted_tokens(),
      s.time_to_first_token_seconds(), s.total_seconds(), ReasonName(s.finish_reason()),
      s.stop().empty() ? "" : " '" + s.stop() + "'",
      s.seed() != 0 ? absl::StrFormat(", seed %d", s.seed()) : "");
}

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool BuildRequest(const std::vector<std::string>& args, v1::GenerateRequest* request,
                  std::string* error) {
  const std::string ids = absl::GetFlag(FLAGS_ids);
  if (!ids.empty()) {
    std::vector<int32_t> parsed;
    if (!ParseIds(ids, &parsed)) {
      *error = "--ids must be comma-separated integers";
      return false;
    }
    for (int32_t id : parsed) request->mutable_tokens()->add_ids(id);
  } else if (args.size() == 2) {
    request->set_text(args[1]);
  } else {
    *error = "give the prompt text as one argument (quote it) or --ids";
    return false;
  }
  if (absl::GetFlag(FLAGS_max_new_tokens) >= 0) {
    request->set_max_new_tokens(absl::GetFlag(FLAGS_max_new_tokens));
  }
  for (const std::string& s : absl::GetFlag(FLAGS_stop)) request->add_stop(s);
  request->mutable_sampling()->set_temperature(absl::GetFlag(FLAGS_temperature));
  request->mutable_sampling()->set_top_k(absl::GetFlag(FLAGS_top_k));
  request->mutable_sampling()->set_top_p(absl::GetFlag(FLAGS_top_p));
  request->mutable_sampling()->set_seed(absl::GetFlag(FLAGS_seed));
  request->set_speculation(absl::GetFlag(FLAGS_spec));
  request->set_ignore_eos(absl::GetFlag(FLAGS_ignore_eos));
  request->set_skip_bos(absl::GetFlag(FLAGS_skip_bos));
  return true;
}

int Run(const std::vector<std::string>& args) {
  if (args.empty()) return Usage("no command");
  const std::string& command = args[0];
  const bool json = absl::GetFlag(FLAGS_json);
  auto channel =
      grpc::CreateChannel(absl::GetFlag(FLAGS_server), grpc::InsecureChannelCredentials());
  auto stub = v1::Generation::NewStub(channel);
  grpc::ClientContext context;
  SetDeadline(&context);

  if (command == "generate" || command == "stream") {
    v1::GenerateRequest request;
    std::string error;
    if (!BuildRequest(args, &request, &error)) return Usage(error);
    if (command == "generate") {
      v1::GenerateResponse response;
      grpc::Status st = stub->Generate(&context, request, &response);
      if (!st.ok()) return RpcError(st);
      if (json) {
        std::printf("%s\n", Dump({{"text", response.text()},
                                  {"tokens", std::vector<int32_t>(response.tokens().begin(),
                                                                  response.tokens().end())},
                                  {"stats", StatsJson(response.stats())}})
                                .c_str());
      } else {
        std::printf("%s\n", response.text().c_str());
        std::fprintf(stderr, "%s\n", StatsLine(response.stats()).c_str());
      }
      return 0;
    }
    auto reader = stub->GenerateStream(&context, request);
    v1::GenerateStreamResponse message;
    while (reader->Read(&message)) {
      if (json) {
        nlohmann::json line = {
            {"text", message.text()},
            {"tokens", std::vector<int32_t>(message.tokens().begin(), message.tokens().end())}};
        if (message.has_final()) line["final"] = StatsJson(message.final());
        std::printf("%s\n", Dump(line).c_str());
      } else {
        std::fputs(message.text().c_str(), stdout);
        if (message.has_final()) {
          std::fputs("\n", stdout);
          std::fprintf(stderr, "%s\n", StatsLine(message.final()).c_str());
        }
      }
      std::fflush(stdout);
    }
    grpc::Status st = reader->Finish();
    if (!st.ok()) {
      if (!json) std::fputs("\n", stdout);
      return RpcError(st);
    }
    return 0;
  }
  if (command == "tokenize") {
    if (args.size() != 2) return Usage("tokenize takes the text as one argument");
    v1::TokenizeRequest request;
    request.set_text(args[1]);
    request.set_add_bos(!absl::GetFlag(FLAGS_skip_bos));
    v1::TokenizeResponse response;
    grpc::Status st = stub->Tokenize(&context, request, &response);
    if (!st.ok()) return RpcError(st);
    std::vector<int32_t> ids(response.ids().begin(), response.ids().end());
    std::vector<std::string> pieces(response.pieces().begin(), response.pieces().end());
    if (json) {
      std::printf("%s\n", Dump({{"ids", ids}, {"pieces", pieces}}).c_str());
    } else {
      std::printf("%s\n", absl::StrJoin(ids, ",").c_str());
    }
    return 0;
  }
  if (command == "detokenize") {
    v1::DetokenizeRequest request;
    std::vector<int32_t> ids;
    if (!ParseIds(absl::GetFlag(FLAGS_ids), &ids)) return Usage("--ids must be integers");
    for (int32_t id : ids) request.add_ids(id);
    v1::DetokenizeResponse response;
    grpc::Status st = stub->Detokenize(&context, request, &response);
    if (!st.ok()) return RpcError(st);
    std::printf("%s\n", json ? Dump({{"text", response.text()}}).c_str() : response.text().c_str());
    return 0;
  }
  if (command == "info") {
    v1::ModelInfoResponse response;
    grpc::Status st = stub->ModelInfo(&context, v1::ModelInfoRequest(), &response);
    if (!st.ok()) return RpcError(st);
    nlohmann::json j = {{"model", response.model()},
                        {"deployment", response.deployment()},
                        {"vocab_size", response.vocab_size()},
                        {"bos_id", response.bos_id()},
                        {"eos_id", response.eos_id()},
                        {"max_context", response.max_context()},
                        {"max_new_tokens_limit", response.max_new_tokens_limit()},
                        {"default_max_new_tokens", response.default_max_new_tokens()},
                        {"max_batch", response.max_batch()},
                        {"max_queue", response.max_queue()},
                        {"speculation", response.speculation()},
                        {"draft_available", response.draft_available()},
                        {"draft_window", response.draft_window()}};
    std::printf("%s\n", json ? Dump(j).c_str() : j.dump(2).c_str());
    return 0;
  }
  if (command == "health") {
    auto health = grpc::health::v1::Health::NewStub(channel);
    grpc::health::v1::HealthCheckRequest request;
    if (args.size() == 2) request.set_service(args[1]);
    grpc::health::v1::HealthCheckResponse response;
    grpc::Status st = health->Check(&context, request, &response);
    if (!st.ok()) return RpcError(st);
    const std::string status =
        grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
    std::printf("%s\n", json ? Dump({{"status", status}}).c_str() : status.c_str());
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 3;
  }
  return Usage("unknown command '" + command + "'");
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::DashesToUnderscores(argc, argv);
  std::vector<std::string> args = specserve::ParseCommandLine(argc, argv, specserve::kUsage);
  return specserve::Run(args);
}
