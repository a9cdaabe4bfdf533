#include "router/grpc_backends.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/grpc_status.h"
#include "services/proto_convert.h"
#include "services/server_runner.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

void SetDeadline(grpc::ClientContext* context, double seconds) {
  context->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::microseconds(static_cast<int64_t>(seconds * 1e6)));
}

template <typename Stub>
void SendRelease(Stub& stub, const std::vector<int64_t>& ids) {
  v1::ReleaseRequest request;
  request.mutable_sequence_ids()->Assign(ids.begin(), ids.end());
  v1::ReleaseResponse response;
  grpc::ClientContext context;
  SetDeadline(&context, 5);
  // Best effort: a worker that is down has lost the sequences anyway.
  (void)stub.Release(&context, request, &response);
}

template <typename Stub>
absl::StatusOr<v1::WorkerInfo> CallInfo(Stub& stub, double timeout_seconds, bool wait_for_ready) {
  grpc::ClientContext context;
  SetDeadline(&context, timeout_seconds);
  context.set_wait_for_ready(wait_for_ready);
  v1::WorkerInfo info;
  grpc::Status st = stub.Info(&context, v1::WorkerInfoRequest(), &info);
  if (!st.ok()) return FromGrpcStatus(st);
  return info;
}

}  // namespace

std::shared_ptr<grpc::Channel> MakeWorkerChannel(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  args.SetMaxSendMessageSize(kMaxMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

GrpcDraftBackend::GrpcDraftBackend(std::shared_ptr<grpc::Channel> channel, double timeout_seconds)
    : stub_(v1::Draft::NewStub(channel)),
      timeout_seconds_(timeout_seconds),
      releases_([this](const std::vector<int64_t>& ids) { SendRelease(*stub_, ids); }) {}

absl::StatusOr<v1::WorkerInfo> GrpcDraftBackend::Info(double timeout_seconds,
                                                      bool wait_for_ready) {
  return CallInfo(*stub_, timeout_seconds, wait_for_ready);
}

absl::Status GrpcDraftBackend::Propose(std::span<const ProposeItem> items,
                                       std::vector<ProposeOutput>* outputs,
                                       std::vector<PassTime>* passes) {
  outputs->clear();
  passes->clear();
  if (!available_ && Clock::now() < retry_at_) {
    return absl::UnavailableError("the draft service is backing off after a failure");
  }
  v1::ProposeRequest request;
  request.mutable_items()->Reserve(static_cast<int>(items.size()));
  for (const ProposeItem& item : items) {
    v1::ProposeItem* out = request.add_items();
    out->set_sequence_id(item.sequence_id);
    out->set_start(item.start);
    out->mutable_tokens()->Assign(item.tokens.begin(), item.tokens.end());
    out->mutable_previous_accepted()->Assign(item.previous_accepted.begin(),
                                             item.previous_accepted.end());
    if (item.shape != nullptr) ToProto(*item.shape, out->mutable_shape());
    *out->mutable_sampling() = ToProto(item.sampling);
  }
  grpc::ClientContext context;
  SetDeadline(&context, timeout_seconds_);
  v1::ProposeResponse response;
  grpc::Status st = stub_->Propose(&context, request, &response);
  if (st.ok() && response.results_size() != static_cast<int>(items.size())) {
    st = grpc::Status(grpc::StatusCode::INTERNAL,
                      absl::StrCat("the draft answered ", response.results_size(),
                                   " results for ", items.size(), " items"));
  }
  if (!st.ok()) {
    ++failures_;
    available_ = false;
    backoff_seconds_ = std::clamp(backoff_seconds_ * 2, 0.1, 2.0);
    retry_at_ = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(backoff_seconds_ * 1e6));
    return FromGrpcStatus(st);
  }
  available_ = true;
  backoff_seconds_ = 0;
  outputs->resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::ProposeResult& r = response.results(static_cast<int>(i));
    ProposeOutput& out = (*outputs)[i];
    out.status = StatusFromCode(r.status().code(), r.status().message());
    if (!out.status.ok()) continue;
    out.tree.tokens.assign(r.tree().tokens().begin(), r.tree().tokens().end());
    out.tree.parents.assign(r.tree().parents().begin(), r.tree().parents().end());
    const int limit = items[i].shape != nullptr ? items[i].shape->speculated() : 0;
    if (absl::Status bad = ValidateTree(out.tree, {limit, 64, vocab_size_}); !bad.ok()) {
      out.status = absl::InternalError(absl::StrCat("the draft returned a bad tree: ",
                                                    std::string(bad.message())));
      continue;
    }
    out.q.assign(r.q_size(), {});
    for (int n = 0; n < r.q_size(); ++n) {
      const v1::NodeDistribution& d = r.q(n);
      const int k = std::min(d.tokens_size(), d.probs_size());
      for (int j = 0; j < k; ++j) out.q[n].push_back({d.tokens(j), d.probs(j)});
    }
    if (!items[i].sampling.greedy() && out.tree.size() > 0 &&
        out.q.size() != static_cast<size_t>(out.tree.size()) + 1) {
      out.status = absl::InternalError("the draft returned no distribution for a sampled tree");
    }
  }
  for (const v1::DraftPass& p : response.passes()) {
    passes->push_back({p.tokens_per_sequence(), p.seconds()});
  }
  return absl::OkStatus();
}

GrpcTargetBackend::GrpcTargetBackend(std::shared_ptr<grpc::Channel> channel,
                                     double timeout_seconds)
    : stub_(v1::Target::NewStub(channel)),
      timeout_seconds_(timeout_seconds),
      releases_([this](const std::vector<int64_t>& ids) { SendRelease(*stub_, ids); }) {}

absl::StatusOr<v1::WorkerInfo> GrpcTargetBackend::Info(double timeout_seconds,
                                                       bool wait_for_ready) {
  return CallInfo(*stub_, timeout_seconds, wait_for_ready);
}

absl::Status GrpcTargetBackend::Verify(std::span<const VerifyItem> items,
                                       std::vector<VerifyOutput>* outputs) {
  outputs->clear();
  v1::VerifyRequest request;
  request.mutable_items()->Reserve(static_cast<int>(items.size()));
  for (const VerifyItem& item : items) {
    v1::VerifyItem* out = request.add_items();
    out->set_sequence_id(item.sequence_id);
    out->set_kind(item.kind == VerifyKind::kPrefill ? v1::VERIFY_KIND_PREFILL
                                                    : v1::VERIFY_KIND_VERIFY);
    out->set_start(item.start);
    out->mutable_tokens()->Assign(item.tokens.begin(), item.tokens.end());
    if (item.tree != nullptr) ToProto(*item.tree, out->mutable_tree());
    if (item.q != nullptr && item.tree != nullptr && item.tree->size() > 0) {
      ToProto(*item.q, out->mutable_q());
    }
    *out->mutable_sampling() = ToProto(item.sampling);
    out->set_logprobs(item.top_logprobs + 1);
  }
  grpc::ClientContext context;
  SetDeadline(&context, timeout_seconds_);
  v1::VerifyResponse response;
  grpc::Status st = stub_->Verify(&context, request, &response);
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // The target may still finish this call and commit KV the router never
    // learns of: release the batch's sequences so that they are re-prefilled from
    // the histories (the target answers "need history from 0").
    std::vector<int64_t> ids;
    for (const VerifyItem& item : items) ids.push_back(item.sequence_id);
    SendRelease(*stub_, ids);
  }
  if (!st.ok()) return FromGrpcStatus(st);
  if (response.results_size() != static_cast<int>(items.size())) {
    return absl::InternalError(absl::StrCat("the target answered ", response.results_size(),
                                            " results for ", items.size(), " items"));
  }
  outputs->resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::VerifyResult& r = response.results(static_cast<int>(i));
    VerifyOutput& out = (*outputs)[i];
    out.status = StatusFromCode(r.status().code(), r.status().message());
    out.cached_tokens = r.cached_tokens();
    if (!out.status.ok()) continue;
    // The engine indexes the tree with these: a bad answer fails the call.
    const int nodes = items[i].tree != nullptr ? items[i].tree->size() : 0;
    for (int32_t node : r.accepted()) {
      if (node < 0 || node >= nodes) {
        return absl::InternalError(absl::StrCat("the target accepted node ", node,
                                                " of a tree of ", nodes, " nodes"));
      }
    }
    if (items[i].kind == VerifyKind::kVerify &&
        (r.extra_token() < 0 || (vocab_size_ > 0 && r.extra_token() >= vocab_size_))) {
      return absl::InternalError(
          absl::StrCat("the target returned token ", r.extra_token(), " outside the vocabulary"));
    }
    out.result.accepted.assign(r.accepted().begin(), r.accepted().end());
    out.result.extra_token = r.extra_token();
    out.result.visited_children.assign(r.visited_children().begin(), r.visited_children().end());
    out.result.accepted_rank.assign(r.accepted_rank().begin(), r.accepted_rank().end());
    for (const v1::TokenLogprobs& lp : r.logprobs()) out.logprobs.push_back(FromProto(lp));
  }
  return absl::OkStatus();
}

}  // namespace specserve
