#include "router/generate_stream_reactor.h"

#include <utility>

#include "router/generation_proto.h"
#include "services/grpc_status.h"

namespace specserve {

GenerateStreamReactor::GenerateStreamReactor(std::chrono::system_clock::time_point deadline,
                                             grpc::Status submitted,
                                             std::shared_ptr<RequestHandle> handle)
    : deadline_(deadline), handle_(std::move(handle)) {
  if (!submitted.ok() || handle_ == nullptr) {
    finishing_ = true;
    Finish(submitted.ok() ? grpc::Status(grpc::StatusCode::INTERNAL, "no request handle")
                          : submitted);
    return;
  }
  handle_->SetListener([this] { Pump(); });
  Pump();  // what the scheduler pushed before the listener was set
}

void GenerateStreamReactor::Pump() {
  std::unique_lock<std::mutex> lock(mu_);
  if (writing_ || finishing_) return;
  GenerationChunk chunk;
  while (true) {
    switch (handle_->TryNext(&chunk)) {
      case RequestHandle::Take::kChunk:
        if (write_failed_) continue;  // nobody reads: drop it
        message_.Clear();
        message_.set_text(chunk.text);
        message_.mutable_tokens()->Assign(chunk.tokens.begin(), chunk.tokens.end());
        writing_ = true;
        lock.unlock();
        StartWrite(&message_);
        return;
      case RequestHandle::Take::kPaced:
      case RequestHandle::Take::kNone:
        return;
      case RequestHandle::Take::kDone: {
        finishing_ = true;
        const absl::Status status = handle_->status();
        lock.unlock();
        if (!status.ok()) {
          Finish(ToGrpcStatus(status));
        } else if (write_failed_) {
          Finish(grpc::Status::OK);
        } else {
          message_.Clear();
          ToProto(handle_->stats(), message_.mutable_final());
          StartWriteAndFinish(&message_, grpc::WriteOptions(), grpc::Status::OK);
        }
        return;
      }
    }
  }
}

void GenerateStreamReactor::OnWriteDone(bool ok) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok && !write_failed_) {
      write_failed_ = true;
      handle_->Cancel(CancelReason(deadline_, "the client stopped reading the stream"));
    }
  }
  Pump();
}

void GenerateStreamReactor::OnCancel() {
  if (handle_ != nullptr) {
    handle_->Cancel(CancelReason(deadline_, "the client cancelled the request"));
  }
}

void GenerateStreamReactor::OnDone() {
  // The scheduler may be inside the listener now: wait for it, then no more calls.
  if (handle_ != nullptr) handle_->SetListener(nullptr);
  delete this;
}

}  // namespace specserve
