// The reference every lossless test compares with: the target alone, decoding
// without speculation (the engine's BatchGenerator).
#pragma once

#include <cstdint>
#include <vector>

#include "common/engine/generation.h"
#include "common/engine/model.h"

namespace specserve::testing {

// Each request's whole token history (prompt, then what the target alone
// generates), in request order. A request the generator refuses or a step that
// fails is a test failure (and ends the decoding).
std::vector<std::vector<int32_t>> PlainTokens(Model& model,
                                              const std::vector<GenerationRequest>& requests);

}  // namespace specserve::testing
