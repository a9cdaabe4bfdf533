#include "tests/testing/plain_greedy.h"

#include "common/engine/batch_generator.h"
#include "gtest/gtest.h"

namespace specserve::testing {

std::vector<std::vector<int32_t>> PlainTokens(Model& model,
                                              const std::vector<GenerationRequest>& requests) {
  BatchGenerator generator(model);
  std::vector<int> ids;
  for (const GenerationRequest& request : requests) {
    absl::StatusOr<int> id = generator.Add(request);
    EXPECT_TRUE(id.ok()) << id.status();
    if (!id.ok()) return {};
    ids.push_back(*id);
  }
  while (generator.HasLive()) {
    const absl::Status st = generator.Step();
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) break;
  }
  std::vector<std::vector<int32_t>> tokens;
  for (int id : ids) tokens.push_back(generator.state(id).tokens);
  return tokens;
}

}  // namespace specserve::testing
