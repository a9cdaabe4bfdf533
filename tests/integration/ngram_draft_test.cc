// The n-gram (prompt-lookup) drafter through the real binaries: specserve-draft
// --draft=ngram behind the router, and specserve-serve --draft=ngram, give exactly
// the target-only greedy tokens in every speculation mode, speculate on prompts
// whose continuation repeats them, report their drafter, and a bad --draft value
// is refused at start, named.
#include "tests/integration/harness.h"
#include "tests/testing/shared_models.h"

namespace specserve::testing {
namespace {

// Prompts whose continuation the drafter can find in them: a passage said twice
// (the target's greedy output on a random model also falls into loops), and one
// without repetition.
std::vector<std::vector<int32_t>> NgramPrompts() {
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 2; ++i) {
    std::vector<int32_t> p = Prompt(200 + i, 10 + 3 * i);
    const std::vector<int32_t> copy = p;
    p.insert(p.end(), copy.begin(), copy.end());
    prompts.push_back(p);
  }
  prompts.push_back(Prompt(210, 9));
  return prompts;
}

constexpr int kNewTokens = 48;

// Every prompt in every mode equals `reference`; returns the accepted tokens of
// the chain and tree modes (auto may decode plainly where it does not pay).
int64_t ExpectGreedyInEveryMode(v1::Generation::Stub& stub,
                                const std::vector<std::vector<int32_t>>& prompts,
                                const std::vector<std::vector<int32_t>>& reference) {
  int64_t accepted = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {
    for (const std::string mode : {"chain:4", "tree:16", "auto"}) {
      StreamResult r = Stream(stub, TokenRequest(prompts[i], kNewTokens, mode));
      EXPECT_TRUE(r.status.ok()) << "prompt " << i << " " << mode << ": "
                                 << r.status.error_message();
      EXPECT_EQ(r.tokens, reference[i]) << "prompt " << i << ", mode " << mode;
      if (mode != "auto") accepted += r.stats.accepted_tokens();
    }
  }
  return accepted;
}

TEST(NgramDraftTest, TrioWithAnNgramDraftEqualsTargetOnly) {
  const auto prompts = NgramPrompts();
  const auto reference = ReferenceGreedy(SharedRandomModel(), prompts, kNewTokens);
  ASSERT_EQ(reference.size(), prompts.size());
  auto split = Split::Start(SharedRandomModel(), {"--spec=tree:16"}, {"--draft=ngram"});
  ASSERT_NE(split, nullptr);
  EXPECT_NE(split->draft->Log().find("ngram drafter"), std::string::npos) << split->draft->Log();

  // The draft reports its kind and no model cost (the router's prior reads these).
  grpc::ClientContext context;
  SetTimeout(&context, 5);
  v1::WorkerInfo info;
  ASSERT_TRUE(v1::Draft::NewStub(Connect(split->draft->address()))->Info(&context, {}, &info).ok());
  EXPECT_EQ(info.drafter(), "ngram");
  EXPECT_EQ(info.weight_bytes(), 0);
  EXPECT_EQ(info.flops_per_token(), 0);
  EXPECT_EQ(info.window_tokens(), 0);
  EXPECT_EQ(info.vocab_size(), 320);

  auto stub = v1::Generation::NewStub(Connect(split->router->address()));
  EXPECT_GT(ExpectGreedyInEveryMode(*stub, prompts, reference), 0)
      << "the n-gram draft never had a token accepted on repeated prompts";
  grpc::ClientContext mc;
  v1::ModelInfoResponse model_info;
  ASSERT_TRUE(stub->ModelInfo(&mc, {}, &model_info).ok());
  EXPECT_EQ(model_info.drafter(), "ngram");
  EXPECT_EQ(model_info.draft_window(), 0);
  EXPECT_TRUE(WaitForNoSequences(*split, 10)) << "finished sequences left state behind";
}

TEST(NgramDraftTest, ServeWithAnNgramDraftEqualsTargetOnly) {
  const auto prompts = NgramPrompts();
  const auto reference = ReferenceGreedy(SharedRandomModel(), prompts, kNewTokens);
  ASSERT_EQ(reference.size(), prompts.size());
  auto serve = StartService("specserve-serve",
                            {"--model=" + SharedRandomModel(), "--threads=1", "--draft=ngram"});
  ASSERT_NE(serve, nullptr);
  auto stub = v1::Generation::NewStub(Connect(serve->address()));
  EXPECT_GT(ExpectGreedyInEveryMode(*stub, prompts, reference), 0);
  grpc::ClientContext context;
  v1::ModelInfoResponse info;
  ASSERT_TRUE(stub->ModelInfo(&context, {}, &info).ok());
  EXPECT_EQ(info.drafter(), "ngram");
  EXPECT_EQ(info.deployment(), "all-in-one");
}

// A pretrained model on a prompt that tells its story and starts it again: the
// n-gram draft proposes the story's continuation, which the target repeats, and
// greedy output stays the target's.
TEST(NgramDraftTest, Stories260KRepeatedStoryThroughServe) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "stories260K.gguf");
  const std::vector<int32_t> story = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                      315, 421, 395, 317, 426, 338, 401, 396, 267, 337};
  std::vector<int32_t> prompt = story;
  prompt.insert(prompt.end(), story.begin() + 1, story.begin() + 5);  // "Once upon a time"
  const auto reference = ReferenceGreedy(path, {prompt}, 40);
  ASSERT_EQ(reference.size(), 1u);
  auto serve = StartService("specserve-serve", {"--model=" + path, "--threads=1", "--draft=ngram"});
  ASSERT_NE(serve, nullptr);
  auto stub = v1::Generation::NewStub(Connect(serve->address()));
  for (const std::string mode : {"chain:4", "tree:16", "auto"}) {
    StreamResult r = Stream(*stub, TokenRequest(prompt, 40, mode));
    ASSERT_TRUE(r.status.ok()) << mode << ": " << r.status.error_message();
    EXPECT_EQ(r.tokens, reference[0]) << mode;
    if (mode != "auto") {
      EXPECT_GT(r.stats.accepted_tokens(), 0) << mode << ": the story's continuation was quoted";
    }
  }
}

TEST(NgramDraftTest, ABadDraftValueFailsAtStartNamingIt) {
  const std::string model = SharedRandomModel();
  const ToolResult draft = RunTool({DefaultBinDir() + "/specserve-draft", "--model=" + model,
                                    "--draft=ngarm", "--listen=127.0.0.1:0"},
                                   20);
  EXPECT_EQ(draft.exit_code, 1) << draft.output;
  EXPECT_NE(draft.output.find("--draft 'ngarm'"), std::string::npos) << draft.output;
  const ToolResult serve = RunTool({DefaultBinDir() + "/specserve-serve", "--model=" + model,
                                    "--draft=ngarm", "--listen=127.0.0.1:0"},
                                   20);
  EXPECT_EQ(serve.exit_code, 1) << serve.output;
  EXPECT_NE(serve.output.find("--draft 'ngarm'"), std::string::npos) << serve.output;
  // The good value passes the dry run without running a model.
  const ToolResult ok = RunTool(
      {DefaultBinDir() + "/specserve-draft", "--model=" + model, "--draft=ngram", "--dry-run"}, 20);
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
}

}  // namespace
}  // namespace specserve::testing
