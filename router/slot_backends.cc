#include "router/slot_backends.h"

#include <vector>

namespace specserve {

absl::Status SlotDraftBackend::Propose(std::span<const ProposeItem> items,
                                       std::vector<ProposeOutput>* outputs,
                                       std::vector<PassTime>* passes) {
  std::vector<ProposeItem> mapped(items.begin(), items.end());
  for (ProposeItem& item : mapped) item.sequence_id = item.sequence_id * kEngineSlots + slot_;
  return inner_.Propose(mapped, outputs, passes);
}

absl::Status SlotTargetBackend::Verify(std::span<const VerifyItem> items,
                                       std::vector<VerifyOutput>* outputs) {
  std::vector<VerifyItem> mapped(items.begin(), items.end());
  for (VerifyItem& item : mapped) item.sequence_id = item.sequence_id * kEngineSlots + slot_;
  return inner_.Verify(mapped, outputs);
}

}  // namespace specserve
