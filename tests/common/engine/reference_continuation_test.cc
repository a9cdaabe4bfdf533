// The real models of ../shared/models reproduce the greedy continuations that
// llama2.c's run.c and llama.cpp computed (../shared/models/README.md).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/engine/llama_model.h"
#include "common/ops/ops.h"
#include "common/engine/batch_generator.h"
#include "common/model/model_loader.h"
#include "common/tokenizer/tokenizer.h"
#include "gtest/gtest.h"
#include "tests/testing/shared_models.h"

namespace specserve {
namespace {

std::vector<int32_t> Ids(const std::string& text) {
  std::vector<int32_t> ids;
  for (absl::string_view part : absl::StrSplit(text, ' ', absl::SkipEmpty())) {
    int32_t id = 0;
    EXPECT_TRUE(absl::SimpleAtoi(part, &id));
    ids.push_back(id);
  }
  return ids;
}

struct Reference {
  const char* model;
  const char* tokenizer;  // llama2.c vocabulary, or "" for GGUF
  const char* prompt_ids;
  const char* generated_ids;
};

const char kStoriesPrompt[] = "1 403 407 261 378";
const char kStoriesGenerated[] =
    "432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 "
    "282 295 433 426 385 328 432 358 394 261 370 432 352 266 268 388 426 338 391 266 267 337 335 "
    "312 432 398 312 286 267 414 270 333 415 426 13 438 310 439 419 357 336";
const char kBabyPrompt[] = "1 3 34 9 22 4 3 18 20 7 9 3 5 3 6 10 16 4";
const char kBabyGenerated[] =
    "25 3 6 8 4 13 4 3 17 5 12 3 5 3 14 10 6 6 14 4 3 21 10 13 14 3 9 5 16 4 11 3 31 10 14 15 19 "
    "3 30 8 4 3 14 7 28 4 11 3 6 7 3 20 14 5 15 3 7 18 6 12 10 11 4 3";

class ReferenceContinuationTest : public ::testing::TestWithParam<Reference> {};

TEST_P(ReferenceContinuationTest, GreedyContinuationMatchesTokenForToken) {
  const Reference& ref = GetParam();
  SPECSERVE_REQUIRE_SHARED_MODEL(model_path, ref.model);
  LoadOptions options;
  if (*ref.tokenizer != '\0') {
    SPECSERVE_REQUIRE_SHARED_MODEL(tokenizer_path, ref.tokenizer);
    options.tokenizer_path = tokenizer_path;
  }
  auto model = LoadModel(model_path, options);
  ASSERT_TRUE(model.ok()) << model.status();
  Tokenizer tokenizer((*model)->vocab);
  const std::vector<int32_t> prompt = tokenizer.Encode("Once upon a time", true);
  EXPECT_EQ(prompt, Ids(ref.prompt_ids));

  auto ops = MakeCpuOps(2);
  LlamaModel llama(**model, *ops);
  BatchGenerator generator(llama);
  GenerationRequest request;
  request.prompt = Ids(ref.prompt_ids);
  request.max_new_tokens = 64;
  auto id = generator.Add(request);
  ASSERT_TRUE(id.ok()) << id.status();
  while (generator.HasLive()) ASSERT_TRUE(generator.Step().ok());
  const SequenceState& st = generator.state(*id);
  const std::vector<int32_t> generated(st.tokens.begin() + st.prompt_tokens, st.tokens.end());
  EXPECT_EQ(generated, Ids(ref.generated_ids));
}

INSTANTIATE_TEST_SUITE_P(
    SharedModels, ReferenceContinuationTest,
    ::testing::Values(Reference{"stories260K.bin", "tok512.bin", kStoriesPrompt, kStoriesGenerated},
                      Reference{"stories260K.gguf", "", kStoriesPrompt, kStoriesGenerated},
                      Reference{"babyllama-tok105/model5000.bin", "babyllama-tok105/tok105.bin",
                                kBabyPrompt, kBabyGenerated}),
    [](const auto& info) {
      return std::string(info.index == 0 ? "stories260K_bin"
                                         : info.index == 1 ? "stories260K_gguf" : "babyllama_bin");
    });

// Text round trip through the real stories vocabulary, as the README prints it.
TEST(ReferenceContinuationTest, StoriesTextDecodes) {
  SPECSERVE_REQUIRE_SHARED_MODEL(model_path, "stories260K.gguf");
  auto model = LoadModel(model_path);
  ASSERT_TRUE(model.ok()) << model.status();
  Tokenizer tokenizer((*model)->vocab);
  std::vector<int32_t> ids = Ids(kStoriesPrompt);
  for (int32_t id : Ids(kStoriesGenerated)) ids.push_back(id);
  auto text = tokenizer.Decode(ids);
  ASSERT_TRUE(text.ok());
  EXPECT_TRUE(text->starts_with(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park. One day, she saw a big, red ball."))
      << *text;
}

}  // namespace
}  // namespace specserve
