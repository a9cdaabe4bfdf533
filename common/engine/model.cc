#include "common/engine/model.h"

#include "common/util/status_macros.h"

namespace specserve {

absl::Status Model::ForwardReduced(std::span<const ForwardSequence> batch, LogitRows* rows) {
  RETURN_IF_ERROR(ValidateLogitRows(config(), batch, *rows));
  RETURN_IF_ERROR(Forward(batch, &unchunked_logits_));
  rows->ConsumeFull(0, rows->size(), unchunked_logits_.data());
  return absl::OkStatus();
}

}  // namespace specserve
