#include "router/generation_service.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "router/generate_stream_reactor.h"
#include "router/generation_proto.h"
#include "services/grpc_status.h"

namespace specserve {

GenerationService::GenerationService(Scheduler& scheduler, const Tokenizer& tokenizer,
                                     RequestLimits limits, ServiceDescription description,
                                     RouterMetrics* metrics)
    : scheduler_(scheduler),
      tokenizer_(tokenizer),
      limits_(limits),
      description_(std::move(description)),
      metrics_(metrics) {}

grpc::Status GenerationService::Submit(const grpc::ServerContextBase& context,
                                       const v1::GenerateRequest& request,
                                       std::shared_ptr<RequestHandle>* handle) {
  auto scheduled = ToScheduledRequest(request, tokenizer_, limits_);
  if (!scheduled.ok()) {
    if (metrics_ != nullptr) metrics_->RequestDone("invalid");
    return ToGrpcStatus(scheduled.status());
  }
  const auto deadline = context.deadline();
  if (deadline != std::chrono::system_clock::time_point::max()) {
    const auto left = deadline - std::chrono::system_clock::now();
    scheduled->deadline = std::chrono::steady_clock::now() +
                          std::chrono::duration_cast<std::chrono::nanoseconds>(left);
  }
  auto submitted = scheduler_.Submit(*std::move(scheduled));
  if (!submitted.ok()) return ToGrpcStatus(submitted.status());
  *handle = *std::move(submitted);
  return grpc::Status::OK;
}

grpc::Status GenerationService::Generate(grpc::ServerContext* context,
                                         const v1::GenerateRequest* request,
                                         v1::GenerateResponse* response) {
  std::shared_ptr<RequestHandle> handle;
  if (grpc::Status st = Submit(*context, *request, &handle); !st.ok()) return st;
  RequestHandle& h = *handle;
  std::string text;
  bool cancel_sent = false;
  while (true) {
    GenerationChunk chunk;
    if (h.Next(&chunk, std::chrono::milliseconds(20))) {
      text += chunk.text;
      for (int32_t t : chunk.tokens) response->add_tokens(t);
      continue;
    }
    if (h.done()) break;
    if (!cancel_sent && context->IsCancelled()) {
      h.Cancel(CancelReason(context->deadline(), "the client cancelled the request"));
      cancel_sent = true;
    }
  }
  if (grpc::Status st = ToGrpcStatus(h.status()); !st.ok()) return st;
  response->set_text(text);
  ToProto(h.stats(), response->mutable_stats());
  return grpc::Status::OK;
}

grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerationService::GenerateStream(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  std::shared_ptr<RequestHandle> handle;
  grpc::Status st = Submit(*context, *request, &handle);
  return new GenerateStreamReactor(context->deadline(), std::move(st), std::move(handle));
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
  response->set_drafter(description_.drafter);
  return grpc::Status::OK;
}

}  // namespace specserve
