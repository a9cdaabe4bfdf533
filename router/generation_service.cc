#include "router/generation_service.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "services/grpc_status.h"

namespace specserve {
namespace {

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
    case FinishReason::kEos:
      return v1::FINISH_REASON_EOS;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kContext:
      return v1::FINISH_REASON_CONTEXT;
    case FinishReason::kCancelled:
      return v1::FINISH_REASON_CANCELLED;
    case FinishReason::kError:
    case FinishReason::kNone:
      break;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

void ToProto(const GenerationStats& s, v1::GenerateStats* out) {
  out->set_prompt_tokens(s.prompt_tokens);
  out->set_generated_tokens(s.generated_tokens);
  out->set_accepted_tokens(s.accepted_tokens);
  out->set_steps(s.steps);
  out->set_speculated_steps(s.speculated_steps);
  out->set_time_to_first_token_seconds(s.time_to_first_token_seconds);
  out->set_total_seconds(s.total_seconds);
  out->set_finish_reason(ToProto(s.reason));
  out->set_stop(s.stop);
  out->set_seed(s.seed);
}

// Why a call ends early: its deadline (gRPC cancels a call whose deadline passed,
// and a stream's writes fail then too) or the client. The client's clock and ours
// differ by the transit time, so a cancellation within kDeadlineSlack of the
// deadline counts as the deadline.
constexpr std::chrono::milliseconds kDeadlineSlack(100);

absl::Status CancelReason(std::chrono::system_clock::time_point deadline,
                          const std::string& client_reason) {
  if (deadline != std::chrono::system_clock::time_point::max() &&
      std::chrono::system_clock::now() + kDeadlineSlack >= deadline) {
    return absl::DeadlineExceededError("the request's deadline passed");
  }
  return absl::CancelledError(client_reason);
}

}  // namespace

GenerationService::GenerationService(Scheduler& scheduler, const Tokenizer& tokenizer,
                                     RequestLimits limits, ServiceDescription description,
                                     RouterMetrics* metrics)
    : scheduler_(scheduler),
      tokenizer_(tokenizer),
      limits_(limits),
      description_(std::move(description)),
      metrics_(metrics) {}

grpc::Status GenerationService::Run(grpc::ServerContext* context,
                                    const v1::GenerateRequest& request,
                                    const std::function<bool(const GenerationChunk&)>& on_chunk,
                                    GenerationStats* stats) {
  auto scheduled = ToScheduledRequest(request, tokenizer_, limits_);
  if (!scheduled.ok()) {
    if (metrics_ != nullptr) metrics_->RequestDone("invalid");
    return ToGrpcStatus(scheduled.status());
  }
  const auto deadline = context->deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const auto left = deadline - std::chrono::system_clock::now();
    scheduled->deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::nanoseconds>(left);
  }
  auto handle = scheduler_.Submit(*std::move(scheduled));
  if (!handle.ok()) return ToGrpcStatus(handle.status());
  RequestHandle& h = **handle;
  bool cancel_sent = false;
  while (true) {
    GenerationChunk chunk;
    if (h.Next(&chunk, std::chrono::milliseconds(20))) {
      if (!on_chunk(chunk) && !cancel_sent) {
        h.Cancel(CancelReason(deadline, "the client stopped reading the stream"));
        cancel_sent = true;
      }
      continue;
    }
    if (h.done()) break;
    if (!cancel_sent && context->IsCancelled()) {
      h.Cancel(CancelReason(deadline, "the client cancelled the request"));
      cancel_sent = true;
    }
  }
  *stats = h.stats();
  return ToGrpcStatus(h.status());
}

grpc::Status GenerationService::Generate(grpc::ServerContext* context,
                                         const v1::GenerateRequest* request,
                                         v1::GenerateResponse* response) {
  GenerationStats stats;
  std::string text;
  grpc::Status st = Run(
      context, *request,
      [&](const GenerationChunk& chunk) {
        text += chunk.text;
        for (int32_t t : chunk.tokens) response->add_tokens(t);
        return true;
      },
      &stats);
  if (!st.ok()) return st;
  response->set_text(text);
  ToProto(stats, response->mutable_stats());
  return grpc::Status::OK;
}

grpc::Status GenerationService::GenerateStream(
    grpc::ServerContext* context, const v1::GenerateRequest* request,
    grpc::ServerWriter<v1::GenerateStreamResponse>* writer) {
  GenerationStats stats;
  grpc::Status st = Run(
      context, *request,
      [&](const GenerationChunk& chunk) {
        v1::GenerateStreamResponse message;
        message.set_text(chunk.text);
        message.mutable_tokens()->Assign(chunk.tokens.begin(), chunk.tokens.end());
        return writer->Write(message);
      },
      &stats);
  if (!st.ok()) return st;
  v1::GenerateStreamResponse last;
  ToProto(stats, last.mutable_final());
  writer->Write(last);
  return grpc::Status::OK;
}

grpc::Status GenerationService::Tokenize(grpc::ServerContext*, const v1::TokenizeRequest* request,
                                         v1::TokenizeResponse* response) {
  if (static_cast<int64_t>(request->text().size()) > limits_.max_prompt_bytes) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrFormat("the text has %d bytes; the limit is %d",
                                        request->text().size(), limits_.max_prompt_bytes));
  }
  if (absl::Status st = CheckUtf8(request->text(), "the text"); !st.ok()) return ToGrpcStatus(st);
  for (int32_t id : tokenizer_.Encode(request->text(), request->add_bos())) {
    response->add_ids(id);
    response->add_pieces(tokenizer_.vocab().pieces[id]);
  }
  return grpc::Status::OK;
}

grpc::Status GenerationService::Detokenize(grpc::ServerContext*,
                                           const v1::DetokenizeRequest* request,
                                           v1::DetokenizeResponse* response) {
  if (request->ids_size() > limits_.max_context) {
    return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                        absl::StrFormat("%d ids; the limit is the context length, %d",
                                        request->ids_size(), limits_.max_context));
  }
  for (int i = 0; i < request->ids_size(); ++i) {
    if (request->ids(i) < 0 || request->ids(i) >= limits_.vocab_size) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrFormat("token %d: id %d is outside the vocabulary [0, %d)", i,
                                          request->ids(i), limits_.vocab_size));
    }
  }
  // Through the streaming decoder: the answer is well-formed UTF-8 (U+FFFD for bytes
  // that are not), and equals Decode otherwise.
  StreamingDecoder decoder(tokenizer_);
  std::string text;
  for (int32_t id : request->ids()) text += decoder.Push(id);
  text += decoder.Finish();
  response->set_text(text);
  return grpc::Status::OK;
}

grpc::Status GenerationService::ModelInfo(grpc::ServerContext*, const v1::ModelInfoRequest*,
                                          v1::ModelInfoResponse* response) {
  response->set_model(description_.model);
  response->set_architecture(description_.architecture);
  response->set_vocab_size(limits_.vocab_size);
  response->set_bos_id(tokenizer_.bos_id());
  response->set_eos_id(tokenizer_.eos_id());
  response->set_max_context(limits_.max_context);
  response->set_max_new_tokens_limit(limits_.max_new_tokens_limit);
  response->set_default_max_new_tokens(limits_.default_max_new_tokens);
  response->set_max_prompt_bytes(limits_.max_prompt_bytes);
  response->set_max_batch(scheduler_.options().max_batch);
  response->set_max_queue(scheduler_.options().max_queue);
  response->set_speculation(SpecModeName(limits_.default_spec));
  response->set_draft_available(!description_.draft_available || description_.draft_available());
  response->set_draft_sinks(description_.draft_sinks);
  response->set_draft_window(description_.draft_window);
  response->set_deployment(description_.deployment);
  return grpc::Status::OK;
}

}  // namespace specserve
