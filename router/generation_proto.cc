#include "router/generation_proto.h"

namespace specserve {

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

// The client's clock and ours differ by the transit time, so a cancellation
// within kDeadlineSlack of the deadline counts as the deadline.
constexpr std::chrono::milliseconds kDeadlineSlack(100);

absl::Status CancelReason(std::chrono::system_clock::time_point deadline,
                          const std::string& client_reason) {
  if (deadline != std::chrono::system_clock::time_point::max() &&
      std::chrono::system_clock::now() + kDeadlineSlack >= deadline) {
    return absl::DeadlineExceededError("the request's deadline passed");
  }
  return absl::CancelledError(client_reason);
}

}  // namespace specserve
