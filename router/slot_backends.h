// Several engines (one per speculation mode in use) share one draft and one
// target: each engine gets a slot, and its sequence ids travel as id * kSlots + slot
// so that they never collide on the workers.
#pragma once

#include "common/speculation/backends.h"

namespace specserve {

inline constexpr int kEngineSlots = 8;

class SlotDraftBackend final : public DraftBackend {
 public:
  SlotDraftBackend(DraftBackend& inner, int slot) : inner_(inner), slot_(slot) {}
  absl::Status Propose(std::span<const ProposeItem> items, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) override;
  void Release(int64_t sequence_id) override { inner_.Release(sequence_id * kEngineSlots + slot_); }

 private:
  DraftBackend& inner_;
  int slot_;
};

class SlotTargetBackend final : public TargetBackend {
 public:
  SlotTargetBackend(TargetBackend& inner, int slot) : inner_(inner), slot_(slot) {}
  absl::Status Verify(std::span<const VerifyItem> items,
                      std::vector<VerifyOutput>* outputs) override;
  void Release(int64_t sequence_id) override { inner_.Release(sequence_id * kEngineSlots + slot_); }

 private:
  TargetBackend& inner_;
  int slot_;
};

}  // namespace specserve
