// Drawing a sampled token from a whole logit row, at the vocabularies of the
// models people serve (Llama 2: 32000, Llama 3: 128256): what a sampled
// request pays per generated token on top of the model's pass, once through
// SampleToken (BatchGenerator) and once through the verifier's plain row (a
// SpecEngine step that does not speculate, or the extra token of one that does).
// Logits drawn from N(0, 2.5), about the spread of a trained model's row.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/sampling/logit_rows.h"
#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"
#include "common/speculation/verifier.h"

namespace specserve::bench {
namespace {

std::vector<float> LogitRow(int vocab) {
  std::mt19937 gen(7);
  std::normal_distribution<float> normal(0.0f, 2.5f);
  std::vector<float> row(vocab);
  for (float& v : row) v = normal(gen);
  return row;
}

// Args: vocabulary, cut (0: temperature alone, 1: top_p 0.9, 2: top_k 40).
SamplingParams Params(int64_t cut) {
  SamplingParams p;
  p.temperature = 0.8f;
  if (cut == 1) p.top_p = 0.9f;
  if (cut == 2) p.top_k = 40;
  return p;
}

std::string Label(int64_t cut) {
  return cut == 0 ? "temperature" : (cut == 1 ? "top_p 0.9" : "top_k 40");
}

void BM_SampleToken(benchmark::State& state) {
  const std::vector<float> logits = LogitRow(static_cast<int>(state.range(0)));
  const SamplingParams params = Params(state.range(1));
  Rng rng(1);
  for (auto _ : state) benchmark::DoNotOptimize(SampleToken(logits, params, rng));
  state.SetLabel(Label(state.range(1)));
}
BENCHMARK(BM_SampleToken)
    ->ArgNames({"vocab", "cut"})
    ->ArgsProduct({{32000, 128256}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

// A verifier row without children: the plain step's draw.
void BM_VerifyPlainRow(benchmark::State& state) {
  const int vocab = static_cast<int>(state.range(0));
  const std::vector<float> logits = LogitRow(vocab);
  const SamplingParams params = Params(state.range(1));
  LogitRows rows;
  const std::vector<LogitRowNeeds> needs = {LogitRowNeeds{.full = true}};
  rows.Reset(needs, vocab);
  rows.ConsumeFull(0, 1, logits.data());
  const TokenTree tree;
  const std::vector<std::vector<TokenProb>> draft(1);
  Rng rng(1);
  VerifyInput in;
  in.tree = &tree;
  in.rows = &rows;
  in.sampling = &params;
  in.draft = &draft;
  in.rng = &rng;
  for (auto _ : state) benchmark::DoNotOptimize(VerifyTree(in).extra_token);
  state.SetLabel(Label(state.range(1)));
}
BENCHMARK(BM_VerifyPlainRow)
    ->ArgNames({"vocab", "cut"})
    ->ArgsProduct({{32000, 128256}, {0, 1, 2}})
    ->Unit(benchmark::kMicrosecond);

// A drafted node's row as the head's chunks feed it (LogitRows::Consume): the
// argmax and the 8 most likely tokens (a tree's candidates).
void BM_ConsumeTopRow(benchmark::State& state) {
  const int vocab = static_cast<int>(state.range(0));
  const std::vector<float> logits = LogitRow(vocab);
  const std::vector<LogitRowNeeds> needs = {LogitRowNeeds{.top_n = 8}};
  LogitRows rows;
  for (auto _ : state) {
    rows.Reset(needs, vocab);
    rows.ConsumeFull(0, 1, logits.data());
    benchmark::DoNotOptimize(rows.top(0).data());
  }
}
BENCHMARK(BM_ConsumeTopRow)
    ->ArgNames({"vocab"})
    ->Arg(32000)
    ->Arg(128256)
    ->Unit(benchmark::kMicrosecond);

// A token's logprob and its 5 most likely alternatives from a whole row (a
// request with logprobs and top_logprobs 5).
void BM_Logprobs(benchmark::State& state) {
  const std::vector<float> logits = LogitRow(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(ComputeLogprobs(logits, 3, 5).logprob);
}
BENCHMARK(BM_Logprobs)->ArgNames({"vocab"})->Arg(32000)->Arg(128256)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace specserve::bench
