#include "draft_service/draft_service.h"

#include <chrono>
#include <set>
#include <vector>

#include "absl/strings/str_format.h"
#include "services/grpc_status.h"
#include "services/proto_convert.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

std::string Outcome(const grpc::Status& st) {
  return st.ok() ? "ok" : absl::StrFormat("code_%d", static_cast<int>(st.error_code()));
}

}  // namespace

DraftService::DraftService(DraftWorker& worker, v1::WorkerInfo info, DraftServiceOptions options,
                           WorkerMetrics* metrics)
    : worker_(worker), info_(std::move(info)), options_(options), metrics_(metrics) {}

void DraftService::UpdateKv() {
  if (metrics_ != nullptr) metrics_->SetKv(worker_.sequences(), worker_.kv_bytes());
}

grpc::Status DraftService::Propose(grpc::ServerContext*, const v1::ProposeRequest* request,
                                   v1::ProposeResponse* response) {
  const auto start = Clock::now();
  grpc::Status st = DoPropose(*request, response);
  if (metrics_ != nullptr) {
    metrics_->ObserveCall("propose", Outcome(st),
                          std::chrono::duration<double>(Clock::now() - start).count(),
                          request->items_size());
    UpdateKv();
  }
  return st;
}

grpc::Status DraftService::DoPropose(const v1::ProposeRequest& request,
                                     v1::ProposeResponse* response) {
  const int n = request.items_size();
  if (n > options_.max_batch) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrFormat("%d items in one Propose; the draft takes at most %d "
                                        "(--max-batch)",
                                        n, options_.max_batch));
  }
  std::vector<TreeShape> shapes(n);
  std::vector<ProposeItem> items(n);
  std::set<int64_t> ids;
  for (int i = 0; i < n; ++i) {
    const v1::ProposeItem& in = request.items(i);
    if (!ids.insert(in.sequence_id()).second) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrFormat("item %d: sequence %d appears twice in one Propose", i,
                                          in.sequence_id()));
    }
    if (absl::Status s = FromProto(in.shape(), options_.max_tree_nodes, &shapes[i]); !s.ok()) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          absl::StrFormat("item %d (sequence %d): %s", i, in.sequence_id(),
                                          s.message()));
    }
    if (in.tokens_size() > options_.max_history) {
      return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                          absl::StrFormat("item %d (sequence %d): %d history tokens, more than "
                                          "the limit of %d",
                                          i, in.sequence_id(), in.tokens_size(),
                                          options_.max_history));
    }
    ProposeItem& item = items[i];
    item.sequence_id = in.sequence_id();
    item.start = in.start();
    item.tokens = std::span<const int32_t>(in.tokens().data(), in.tokens_size());
    item.previous_accepted =
        std::span<const int32_t>(in.previous_accepted().data(), in.previous_accepted_size());
    item.shape = &shapes[i];
    item.sampling = FromProto(in.sampling());
  }
  std::vector<ProposeOutput> outputs;
  std::vector<PassTime> passes;
  if (absl::Status s = worker_.Propose(items, &outputs, &passes); !s.ok()) {
    return ToGrpcStatus(s);
  }
  for (int i = 0; i < n; ++i) {
    v1::ProposeResult* r = response->add_results();
    ToProto(outputs[i].status, r->mutable_status());
    if (!outputs[i].status.ok()) continue;
    ToProto(outputs[i].tree, r->mutable_tree());
    ToProto(outputs[i].q, r->mutable_q());
  }
  for (const PassTime& p : passes) {
    v1::DraftPass* out = response->add_passes();
    out->set_tokens_per_sequence(p.tokens_per_sequence);
    out->set_seconds(p.seconds);
  }
  return grpc::Status::OK;
}

grpc::Status DraftService::Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
                                   v1::ReleaseResponse*) {
  const auto start = Clock::now();
  for (int64_t id : request->sequence_ids()) worker_.Release(id);
  if (metrics_ != nullptr) {
    metrics_->ObserveCall("release", "ok",
                          std::chrono::duration<double>(Clock::now() - start).count(),
                          request->sequence_ids_size());
    UpdateKv();
  }
  return grpc::Status::OK;
}

grpc::Status DraftService::Info(grpc::ServerContext*, const v1::WorkerInfoRequest*,
                                v1::WorkerInfo* response) {
  *response = info_;
  response->set_sequences(worker_.sequences());
  response->set_kv_bytes(worker_.kv_bytes());
  return grpc::Status::OK;
}

}  // namespace specserve
