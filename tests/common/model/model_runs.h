// Running a loaded model in the model tests: prompt logits and greedy continuations
// through the engine (CPU ops, 2 threads).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/engine/batch_generator.h"
#include "common/engine/llama_model.h"
#include "common/kv/kv_cache.h"
#include "common/model/loaded_model.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"

namespace specserve::testing {

inline std::vector<int32_t> ParseIds(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    int32_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(part, &id));
    ids.push_back(id);
  }
  return ids;
}

// Logits (vocab_size floats per token) of every prompt position, in one pass.
inline std::vector<float> PromptLogits(const LoadedModel& model,
                                       const std::vector<int32_t>& prompt) {
  auto ops = MakeCpuOps(2);
  LlamaModel llama(model, *ops);
  std::unique_ptr<KvCache> cache = MakeFullKvCache(llama.kv_shape(), 0);
  std::vector<int32_t> rows(prompt.size());
  for (size_t i = 0; i < rows.size(); ++i) rows[i] = static_cast<int32_t>(i);
  ForwardSequence seq;
  seq.cache = cache.get();
  seq.tokens = prompt;
  seq.logit_rows = rows;
  std::vector<float> logits;
  const absl::Status s = llama.Forward(std::span<const ForwardSequence>(&seq, 1), &logits);
  EXPECT_TRUE(s.ok()) << s;
  return logits;
}

// Greedy ids after `prompt` (which includes BOS), stopping at EOS.
inline std::vector<int32_t> GreedyContinuation(const LoadedModel& model,
                                               const std::vector<int32_t>& prompt, int n) {
  auto ops = MakeCpuOps(2);
  LlamaModel llama(model, *ops);
  BatchGenerator generator(llama);
  GenerationRequest request;
  request.prompt = prompt;
  request.max_new_tokens = n;
  auto id = generator.Add(request);
  EXPECT_TRUE(id.ok()) << id.status();
  if (!id.ok()) return {};
  while (generator.HasLive()) {
    const absl::Status s = generator.Step();
    EXPECT_TRUE(s.ok()) << s;
    if (!s.ok()) return {};
  }
  const SequenceState& st = generator.state(*id);
  return std::vector<int32_t>(st.tokens.begin() + st.prompt_tokens, st.tokens.end());
}

}  // namespace specserve::testing
