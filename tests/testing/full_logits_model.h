// A Model that hands every call to another model but keeps Model's default
// ForwardReduced (the full rows x vocab logits, then reduced): the path of the
// backends that do not chunk their output projection (tensor parallel, CUDA),
// and the reference the chunked path is compared with.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/engine/model.h"

namespace specserve::testing {

class FullLogitsModel final : public Model {
 public:
  explicit FullLogitsModel(Model& inner) : inner_(inner) {}

  const LoadedModel& loaded() const override { return inner_.loaded(); }
  std::string description() const override { return inner_.description() + " (full logits)"; }
  absl::StatusOr<std::unique_ptr<KvCache>> MakeFullCache(int64_t max_tokens) override {
    return inner_.MakeFullCache(max_tokens);
  }
  absl::StatusOr<std::unique_ptr<KvCache>> MakeWindowCache(int sinks, int window,
                                                           int max_pending) override {
    return inner_.MakeWindowCache(sinks, window, max_pending);
  }
  absl::Status Forward(std::span<const ForwardSequence> batch,
                       std::vector<float>* logits) override {
    return inner_.Forward(batch, logits);
  }

 private:
  Model& inner_;
};

}  // namespace specserve::testing
