// The public Generation gRPC service. GenerateStream runs on the callback API
// (GenerateStreamReactor: no thread per stream; 64 streams' handler threads,
// woken per message, took half of a 2-core server's CPU); the unary calls on
// the sync API (one handler thread per call, which waits on its RequestHandle).
// Used by specserve-router and specserve-serve alike.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/tokenizer/tokenizer.h"
#include "router/request_validation.h"
#include "router/router_metrics.h"
#include "router/scheduler.h"
#include "specserve/v1/generation.grpc.pb.h"

namespace specserve {

struct ServiceDescription {
  std::string model;
  std::string architecture = "llama";
  std::string deployment;  // "split" or "all-in-one"
  int draft_sinks = 0;
  int draft_window = 0;
  std::string drafter;                    // "model", "ngram", or "" (no draft)
  std::function<bool()> draft_available;  // may be empty: always true
  std::function<bool()> target_ready;     // for the HTTP /health; may be empty: always true
};

class GenerationService final
    : public v1::Generation::WithCallbackMethod_GenerateStream<v1::Generation::Service> {
 public:
  // Everything passed must outlive the service; `metrics` may be null.
  GenerationService(Scheduler& scheduler, const Tokenizer& tokenizer, RequestLimits limits,
                    ServiceDescription description, RouterMetrics* metrics);

  grpc::Status Generate(grpc::ServerContext* context, const v1::GenerateRequest* request,
                        v1::GenerateResponse* response) override;
  grpc::ServerWriteReactor<v1::GenerateStreamResponse>* GenerateStream(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::Status Tokenize(grpc::ServerContext* context, const v1::TokenizeRequest* request,
                        v1::TokenizeResponse* response) override;
  grpc::Status Detokenize(grpc::ServerContext* context, const v1::DetokenizeRequest* request,
                          v1::DetokenizeResponse* response) override;
  grpc::Status ModelInfo(grpc::ServerContext* context, const v1::ModelInfoRequest* request,
                         v1::ModelInfoResponse* response) override;

 private:
  // Validates `request` and hands it to the scheduler, with the call's deadline.
  grpc::Status Submit(const grpc::ServerContextBase& context, const v1::GenerateRequest& request,
                      std::shared_ptr<RequestHandle>* handle);

  Scheduler& scheduler_;
  const Tokenizer& tokenizer_;
  RequestLimits limits_;
  ServiceDescription description_;
  RouterMetrics* metrics_;
};

}  // namespace specserve
