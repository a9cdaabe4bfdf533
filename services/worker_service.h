// The common body of the Draft and Target gRPC services: Release, Info, and the
// frame of the one batch call (convert and check the request, run the worker,
// convert its outputs; observed in the worker metrics). A service adds only its
// batch method (Propose or Verify).
#pragma once

#include <grpcpp/server_context.h>

#include <string>
#include <utility>

#include "services/grpc_status.h"
#include "services/proto_convert.h"
#include "services/worker_calls.h"
#include "services/worker_metrics.h"

namespace specserve {

// WorkerCaches over a worker with sequences(), kv_bytes() and Release(router, id).
template <typename Worker>
class CachesOf final : public WorkerCaches {
 public:
  explicit CachesOf(Worker& worker) : worker_(worker) {}
  int sequences() const override { return worker_.sequences(); }
  int64_t kv_bytes() const override { return worker_.kv_bytes(); }
  void Release(uint64_t router, int64_t sequence_id) override {
    worker_.Release(router, sequence_id);
  }

 private:
  Worker& worker_;
};

template <typename GrpcService, typename Worker>
class WorkerService : public GrpcService {
 public:
  // `worker` and `metrics` (may be null) must outlive the service; `limits.vocab_size`
  // is taken from `info`.
  WorkerService(Worker& worker, v1::WorkerInfo info, WorkerLimits limits, WorkerMetrics* metrics)
      : worker_(worker),
        limits_(limits),
        caches_(worker),
        calls_(caches_, std::move(info), metrics) {
    limits_.vocab_size = calls_.info().vocab_size();
  }

  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                       v1::ReleaseResponse*) override {
    return calls_.Release(*request);
  }
  grpc::Status Info(grpc::ServerContext*, const v1::WorkerInfoRequest*,
                    v1::WorkerInfo* response) override {
    calls_.Info(response);
    return grpc::Status::OK;
  }
  // Refreshes the KV gauges (after idle caches expired).
  void UpdateKv() { calls_.UpdateKv(); }

 protected:
  // One batch call observed as `method`: the request becomes a `Batch`
  // (FromProto(request, limits, &batch)), then `run(batch, response)` returns the
  // worker's absl::Status.
  template <typename Batch, typename Request, typename Response, typename Run>
  grpc::Status Serve(const std::string& method, const Request& request, Response* response,
                     Run&& run) {
    return calls_.Observe(method, request.items_size(), [&] {
      Batch batch;
      if (absl::Status st = FromProto(request, limits_, &batch); !st.ok()) {
        return ToGrpcStatus(st);
      }
      return ToGrpcStatus(run(batch, response));
    });
  }

  Worker& worker_;

 private:
  WorkerLimits limits_;
  CachesOf<Worker> caches_;
  WorkerCalls calls_;
};

}  // namespace specserve
