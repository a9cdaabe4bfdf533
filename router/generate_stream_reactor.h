// GenerateStream on gRPC's callback API: one reactor per call and no thread of
// its own. The scheduler's notify thread (NotifyThread) hands it chunks
// (RequestHandle's listener), and it starts each write there or when the
// previous write completes, so a stream costs no thread wake-up per message:
// with the sync API's handler per stream, 64 streams on a 2-core server spent
// about half of its CPU in those threads, mostly waking and sleeping.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>

#include "grpcpp/grpcpp.h"
#include "router/request_handle.h"
#include "specserve/v1/generation.pb.h"

namespace specserve {

class GenerateStreamReactor final : public grpc::ServerWriteReactor<v1::GenerateStreamResponse> {
 public:
  // `submitted`: the outcome of validating and scheduling the request; when it
  // is an error, the call ends with it at once (and `handle` is null).
  GenerateStreamReactor(std::chrono::system_clock::time_point deadline, grpc::Status submitted,
                        std::shared_ptr<RequestHandle> handle);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Starts the next write, or the end, if nothing is in flight and the handle
  // has something to send.
  void Pump();

  const std::chrono::system_clock::time_point deadline_;
  const std::shared_ptr<RequestHandle> handle_;
  std::mutex mu_;
  bool writing_ = false;                // a StartWrite is in flight
  bool finishing_ = false;              // Finish (or StartWriteAndFinish) was called
  bool write_failed_ = false;           // the client stopped reading: chunks are dropped
  v1::GenerateStreamResponse message_;  // the write in flight
};

}  // namespace specserve
