#include "router/engine_factory.h"

#include <memory>
#include <vector>

#include "router/slot_backends.h"

namespace specserve {

EngineFactory MakeEngineFactory(DraftBackend* draft, TargetBackend& target, ModelFacts facts,
                                SpecEngineOptions base) {
  struct Slots {
    std::vector<std::unique_ptr<DraftBackend>> draft;
    std::vector<std::unique_ptr<TargetBackend>> target;
  };
  auto slots = std::make_shared<Slots>();
  return [slots, draft, &target, facts, base](
             const SpecConfig& spec, int slot) -> absl::StatusOr<std::unique_ptr<SpecEngine>> {
    DraftBackend* slot_draft = nullptr;
    if (draft != nullptr) {
      slots->draft.push_back(std::make_unique<SlotDraftBackend>(*draft, slot));
      slot_draft = slots->draft.back().get();
    }
    slots->target.push_back(std::make_unique<SlotTargetBackend>(target, slot));
    SpecEngineOptions options = base;
    options.spec = spec;
    return SpecEngine::Create(slot_draft, *slots->target.back(), facts, options);
  };
}

}  // namespace specserve
