// Conversions between the engine's structs and the internal worker messages,
// with the checks that keep a malformed message from reaching the engine.
#pragma once

#include <vector>

#include "absl/status/status.h"
#include "common/sampling/sampler.h"
#include "common/speculation/sequoia.h"
#include "common/speculation/token_tree.h"
#include "common/sampling/logprobs.h"
#include "specserve/v1/draft.pb.h"
#include "specserve/v1/target.pb.h"
#include "specserve/v1/worker.pb.h"

namespace specserve {

v1::WorkerSampling ToProto(const SamplingParams& params);
SamplingParams FromProto(const v1::WorkerSampling& params);

void ToProto(const TokenTree& tree, v1::TokenTree* out);
// Arrays must have equal lengths, at most `max_nodes` (the tree itself is
// validated by the worker: parents, depth, token range).
absl::Status FromProto(const v1::TokenTree& tree, int max_nodes, TokenTree* out);

void ToProto(const TreeShape& shape, v1::TreeShape* out);
// Equal lengths, at most `max_nodes`, parents in [-1, i), ranks >= 0.
absl::Status FromProto(const v1::TreeShape& shape, int max_nodes, TreeShape* out);

void ToProto(const std::vector<std::vector<TokenProb>>& q,
             google::protobuf::RepeatedPtrField<v1::NodeDistribution>* out);
// Equal lengths, tokens in [0, vocab_size), probabilities finite in [0, 1].
absl::Status FromProto(const google::protobuf::RepeatedPtrField<v1::NodeDistribution>& q,
                       int vocab_size, std::vector<std::vector<TokenProb>>* out);

void ToProto(const absl::Status& status, v1::ItemStatus* out);

void ToProto(const TokenLogprobs& logprobs, v1::TokenLogprobs* out);
// Pairs beyond the shorter of top_tokens / top_logprobs are dropped.
TokenLogprobs FromProto(const v1::TokenLogprobs& logprobs);

// FNV-1a 64 over the pieces (each followed by a 0 byte).
uint64_t VocabularyFingerprint(const std::vector<std::string>& pieces);

}  // namespace specserve
