#include "router/grpc_backends.h"

#include <algorithm>
#include <cstdio>
#include <random>

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
void SendRelease(Stub& stub, uint64_t router_instance, const std::vector<int64_t>& ids) {
  v1::ReleaseRequest request;
  request.mutable_sequence_ids()->Assign(ids.begin(), ids.end());
  request.set_router_instance(router_instance);
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

// The worker did not answer at all (as opposed to answering with an error).
bool Unreachable(const grpc::Status& st) {
  return st.error_code() == grpc::StatusCode::UNAVAILABLE ||
         st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
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

uint64_t NewRouterInstance() {
  std::random_device device;
  uint64_t id = 0;
  while (id == 0) id = (static_cast<uint64_t>(device()) << 32) ^ device();
  return id;
}

void WorkerHealthLog::Up() {
  std::lock_guard<std::mutex> lock(mu_);
  if (!down_) return;
  down_ = false;
  std::fprintf(stderr, "specserve-router: %s answers again\n", worker_.c_str());
}

void WorkerHealthLog::Down(const std::string& why, const std::string& consequence) {
  std::lock_guard<std::mutex> lock(mu_);
  if (down_) return;
  down_ = true;
  std::fprintf(stderr, "specserve-router: %s is down (%s); %s\n", worker_.c_str(), why.c_str(),
               consequence.c_str());
}

GrpcDraftBackend::GrpcDraftBackend(const std::string& address, double timeout_seconds,
                                   uint64_t router_instance)
    : stub_(v1::Draft::NewStub(MakeWorkerChannel(address))),
      timeout_seconds_(timeout_seconds),
      router_instance_(router_instance),
      health_("the draft at " + address),
      releases_([this](const std::vector<int64_t>& ids) {
        SendRelease(*stub_, router_instance_, ids);
      }) {}

absl::StatusOr<v1::WorkerInfo> GrpcDraftBackend::Info(double timeout_seconds, bool wait_for_ready) {
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
  ToProto(items, router_instance_, &request);
  grpc::ClientContext context;
  SetDeadline(&context, timeout_seconds_);
  v1::ProposeResponse response;
  const grpc::Status st = stub_->Propose(&context, request, &response);
  absl::Status answer =
      st.ok() ? FromProto(response, items, vocab_size_, outputs, passes) : FromGrpcStatus(st);
  if (!answer.ok()) {
    ++failures_;
    available_ = false;
    backoff_seconds_ = std::clamp(backoff_seconds_ * 2, 0.1, 2.0);
    retry_at_ =
        Clock::now() + std::chrono::microseconds(static_cast<int64_t>(backoff_seconds_ * 1e6));
    if (Unreachable(st)) {
      health_.Down(std::string(answer.message()), "decoding without speculation");
    }
    return answer;
  }
  available_ = true;
  backoff_seconds_ = 0;
  health_.Up();
  return absl::OkStatus();
}

GrpcTargetBackend::GrpcTargetBackend(const std::string& address, double timeout_seconds,
                                     uint64_t router_instance)
    : stub_(v1::Target::NewStub(MakeWorkerChannel(address))),
      timeout_seconds_(timeout_seconds),
      router_instance_(router_instance),
      health_("the target at " + address),
      releases_([this](const std::vector<int64_t>& ids) {
        SendRelease(*stub_, router_instance_, ids);
      }) {}

absl::StatusOr<v1::WorkerInfo> GrpcTargetBackend::Info(double timeout_seconds,
                                                       bool wait_for_ready) {
  return CallInfo(*stub_, timeout_seconds, wait_for_ready);
}

absl::Status GrpcTargetBackend::Verify(std::span<const VerifyItem> items,
                                       std::vector<VerifyOutput>* outputs) {
  outputs->clear();
  v1::VerifyRequest request;
  ToProto(items, router_instance_, &request);
  grpc::ClientContext context;
  SetDeadline(&context, timeout_seconds_);
  v1::VerifyResponse response;
  const grpc::Status st = stub_->Verify(&context, request, &response);
  if (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // The target may still finish this call and commit KV the router never
    // learns of: release the batch's sequences so that they are re-prefilled from
    // the histories (the target answers "need history from 0").
    std::vector<int64_t> ids;
    for (const VerifyItem& item : items) ids.push_back(item.sequence_id);
    SendRelease(*stub_, router_instance_, ids);
  }
  if (!st.ok()) {
    if (Unreachable(st)) {
      health_.Down(st.error_message(), "retrying, then re-prefilling from the histories");
    }
    return FromGrpcStatus(st);
  }
  health_.Up();
  return FromProto(response, items, vocab_size_, outputs);
}

}  // namespace specserve
