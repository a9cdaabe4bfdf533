// The internal RPCs (Propose, Verify) fuzzed in-process: arbitrary items (ids,
// router instances, starts, lengths, token values, prefix hashes, trees, shapes,
// draft distributions, sampling) built from the fuzzer's bytes and handed to the
// real Draft/Target services over a tiny random model. The services must answer
// every call, per call or per item, with a status a client can act on:
// INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION or RESOURCE_EXHAUSTED, with a
// message; any other outcome (a crash, a hang, an INTERNAL, an empty message)
// aborts, which the fuzzer reports.
#pragma once

#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "common/engine/llama_model.h"
#include "common/model/random_model.h"
#include "common/ops/ops.h"
#include "common/speculation/prefix_hash.h"
#include "services/proto_convert.h"
#include "services/worker_info.h"
#include "specserve/v1/draft.pb.h"
#include "specserve/v1/target.pb.h"

namespace specserve::fuzz {

inline constexpr int kVocab = 64;

// A tiny model (2 layers, dim 32, vocab 64, context 128), built once.
inline const LoadedModel& TinyModel() {
  static const std::unique_ptr<LoadedModel> model = [] {
    ModelConfig c;
    c.name = "fuzz";
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.ffn_dim = 48;
    c.vocab_size = kVocab;
    c.context_length = 128;
    c.rope_dim = 8;
    return MakeRandomModel(c, TensorType::kF32, 3);
  }();
  if (model == nullptr) std::abort();
  return *model;
}

inline LlamaModel& TinyLlama() {
  static std::unique_ptr<Ops> ops = MakeCpuOps(1);
  static LlamaModel llama(TinyModel(), *ops);
  return llama;
}

inline WorkerLimits FuzzLimits() {
  WorkerLimits limits;
  limits.max_batch = 6;
  limits.max_tree_nodes = 24;
  limits.max_history = 128;
  limits.vocab_size = kVocab;
  return limits;
}

// Mostly in range, sometimes anything.
inline int32_t TokenValue(FuzzedDataProvider& in) {
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(0, kVocab - 1)
                          : in.ConsumeIntegral<int32_t>();
}
inline int64_t SmallOrAny(FuzzedDataProvider& in, int64_t small) {
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<int64_t>(0, small)
                          : in.ConsumeIntegral<int64_t>();
}

inline void FillSampling(FuzzedDataProvider& in, v1::WorkerSampling* s) {
  if (in.ConsumeBool()) return;  // greedy
  s->set_temperature(in.ConsumeBool() ? in.ConsumeFloatingPointInRange<float>(0.1f, 3.0f)
                                      : in.ConsumeFloatingPoint<float>());
  s->set_top_k(in.ConsumeIntegralInRange<int32_t>(-2, kVocab + 2));
  s->set_top_p(in.ConsumeBool() ? in.ConsumeFloatingPointInRange<float>(0.0f, 1.0f)
                                : in.ConsumeFloatingPoint<float>());
  s->set_seed(in.ConsumeIntegral<uint64_t>());
}

// Parents mostly well formed (an earlier node or -1), sometimes anything.
inline int32_t Parent(FuzzedDataProvider& in, int node) {
  return in.ConsumeBool() ? in.ConsumeIntegralInRange<int32_t>(-1, node - 1)
                          : in.ConsumeIntegral<int32_t>();
}

// The history of a sequence: `length` tokens, with the PrefixHash of the part
// before `start` right most of the time (so that calls get past the identity check).
inline void FillHistory(FuzzedDataProvider& in, int64_t* start, uint64_t* prefix_hash,
                        google::protobuf::RepeatedField<int32_t>* tokens) {
  const int length = in.ConsumeIntegralInRange<int>(0, 40);
  std::vector<int32_t> history;
  for (int i = 0; i < length; ++i) history.push_back(TokenValue(in));
  *start = in.ConsumeBool() ? 0 : SmallOrAny(in, length);
  const int64_t from = std::clamp<int64_t>(*start, 0, length);
  *prefix_hash = in.ConsumeBool() ? PrefixHash(std::span<const int32_t>(history).subspan(0, from))
                                  : in.ConsumeIntegral<uint64_t>();
  tokens->Assign(history.begin() + from, history.end());
}

// Every status a worker may answer with: a code a client can act on, and words.
inline void CheckStatus(int code, const std::string& message, const char* where) {
  const bool known = code == 0 || code == 3 /*INVALID_ARGUMENT*/ ||
                     code == 8 /*RESOURCE_EXHAUSTED*/ || code == 9 /*FAILED_PRECONDITION*/ ||
                     code == 11 /*OUT_OF_RANGE*/;
  if (!known || (code != 0 && message.empty())) {
    std::fprintf(stderr, "%s: status %d '%s'\n", where, code, message.c_str());
    std::abort();
  }
}

}  // namespace specserve::fuzz
