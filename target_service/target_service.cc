#include "target_service/target_service.h"

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

grpc::Status ItemError(int i, int64_t id, const absl::Status& s) {
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()),
                      absl::StrFormat("item %d (sequence %d): %s", i, id, s.message()));
}

}  // namespace

TargetService::TargetService(TargetWorker& worker, v1::WorkerInfo info,
                             TargetServiceOptions options, WorkerMetrics* metrics)
    : worker_(worker), info_(std::move(info)), options_(options), metrics_(metrics) {}

void TargetService::UpdateKv() {
  if (metrics_ != nullptr) metrics_->SetKv(worker_.sequences(), worker_.kv_bytes());
}

grpc::Status TargetService::Verify(grpc::ServerContext*, const v1::VerifyRequest* request,
                                   v1::VerifyResponse* response) {
  const auto start = Clock::now();
  grpc::Status st = DoVerify(*request, response);
  if (metrics_ != nullptr) {
    metrics_->ObserveCall("verify", Outcome(st),
                          std::chrono::duration<double>(Clock::now() - start).count(),
                          request->items_size());
    UpdateKv();
  }
  return st;
}

grpc::Status TargetService::DoVerify(const v1::VerifyRequest& request,
                                     v1::VerifyResponse* response) {
  const int n = request.items_size();
  if (n > options_.max_batch) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrFormat("%d items in one Verify; the target takes at most %d "
                                        "(--max-batch)",
                                        n, options_.max_batch));
  }
  const int vocab = info_.vocab_size();
  std::vector<TokenTree> trees(n);
  std::vector<std::vector<std::vector<TokenProb>>> qs(n);
  std::vector<VerifyItem> items(n);
  std::set<int64_t> ids;
  for (int i = 0; i < n; ++i) {
    const v1::VerifyItem& in = request.items(i);
    if (!ids.insert(in.sequence_id()).second) {
      return ItemError(i, in.sequence_id(),
                       absl::InvalidArgumentError("the sequence appears twice in one Verify"));
    }
    if (in.kind() != v1::VERIFY_KIND_VERIFY && in.kind() != v1::VERIFY_KIND_PREFILL) {
      return ItemError(i, in.sequence_id(), absl::InvalidArgumentError(absl::StrFormat(
                                                "unknown kind %d", static_cast<int>(in.kind()))));
    }
    if (absl::Status s = FromProto(in.tree(), options_.max_tree_nodes, &trees[i]); !s.ok()) {
      return ItemError(i, in.sequence_id(), s);
    }
    if (absl::Status s = FromProto(in.q(), vocab, &qs[i]); !s.ok()) {
      return ItemError(i, in.sequence_id(), s);
    }
    if (in.tokens_size() > info_.max_context()) {
      return ItemError(i, in.sequence_id(),
                       absl::OutOfRangeError(absl::StrFormat(
                           "%d history tokens, more than the context of %d", in.tokens_size(),
                           info_.max_context())));
    }
    VerifyItem& item = items[i];
    item.sequence_id = in.sequence_id();
    item.kind = in.kind() == v1::VERIFY_KIND_PREFILL ? VerifyKind::kPrefill : VerifyKind::kVerify;
    item.start = in.start();
    item.tokens = std::span<const int32_t>(in.tokens().data(), in.tokens_size());
    item.tree = &trees[i];
    item.q = in.q_size() > 0 ? &qs[i] : nullptr;
    item.sampling = FromProto(in.sampling());
    item.top_logprobs = std::min(in.logprobs(), kMaxTopLogprobs + 1) - 1;
  }
  std::vector<VerifyOutput> outputs;
  if (absl::Status s = worker_.Verify(items, &outputs); !s.ok()) return ToGrpcStatus(s);
  for (int i = 0; i < n; ++i) {
    const VerifyOutput& out = outputs[i];
    v1::VerifyResult* r = response->add_results();
    ToProto(out.status, r->mutable_status());
    r->set_cached_tokens(out.cached_tokens);
    if (!out.status.ok()) continue;
    r->mutable_accepted()->Assign(out.result.accepted.begin(), out.result.accepted.end());
    r->set_extra_token(out.result.extra_token);
    r->mutable_visited_children()->Assign(out.result.visited_children.begin(),
                                          out.result.visited_children.end());
    r->mutable_accepted_rank()->Assign(out.result.accepted_rank.begin(),
                                       out.result.accepted_rank.end());
    for (const TokenLogprobs& lp : out.logprobs) ToProto(lp, r->add_logprobs());
  }
  return grpc::Status::OK;
}

grpc::Status TargetService::Release(grpc::ServerContext*, const v1::ReleaseRequest* request,
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

grpc::Status TargetService::Info(grpc::ServerContext*, const v1::WorkerInfoRequest*,
                                 v1::WorkerInfo* response) {
  *response = info_;
  response->set_sequences(worker_.sequences());
  response->set_kv_bytes(worker_.kv_bytes());
  return grpc::Status::OK;
}

}  // namespace specserve
