// Every conversion between the engine's structs and the internal worker messages
// (draft.proto, target.proto, worker.proto), in both directions, with the checks
// that keep a malformed message from reaching the engine:
//   worker side (draft and target services): request -> items, outputs -> response;
//   router side (gRPC backends): items -> request, response -> outputs.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling/sampler.h"
#include "common/speculation/backends.h"
#include "common/speculation/planner.h"
#include "common/speculation/sequoia.h"
#include "common/speculation/token_tree.h"
#include "common/sampling/logprobs.h"
#include "specserve/v1/draft.pb.h"
#include "specserve/v1/target.pb.h"
#include "specserve/v1/worker.pb.h"

namespace specserve {

// ---------------------------------------------------------------------------
// Parts.

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
absl::Status FromProto(const v1::ItemStatus& status);

void ToProto(const TokenLogprobs& logprobs, v1::TokenLogprobs* out);
// Pairs beyond the shorter of top_tokens / top_logprobs are dropped.
TokenLogprobs FromProto(const v1::TokenLogprobs& logprobs);

// FNV-1a 64 over the pieces (each followed by a 0 byte).
uint64_t VocabularyFingerprint(const std::vector<std::string>& pieces);

// The planner's prior from the two workers' Info answers.
CostPrior PriorFrom(const v1::WorkerInfo& target, const v1::WorkerInfo& draft);

// ---------------------------------------------------------------------------
// Worker side: a request becomes items that point into it (valid while it lives).

// What a worker service accepts in one call.
struct WorkerLimits {
  int max_batch = 256;        // items per call
  int max_tree_nodes = 256;   // nodes per tree or shape
  int max_history = 1 << 20;  // history tokens per item
  int vocab_size = 0;         // draft distributions are checked against it
};

struct ProposeBatch {
  std::vector<TreeShape> shapes;
  std::vector<ProposeItem> items;
};
// RESOURCE_EXHAUSTED for more than max_batch items; INVALID_ARGUMENT for a sequence
// twice or a malformed shape; OUT_OF_RANGE for a history past max_history. Errors
// name the item and its sequence.
absl::Status FromProto(const v1::ProposeRequest& request, const WorkerLimits& limits,
                       ProposeBatch* out);
void ToProto(std::span<const ProposeOutput> outputs, std::span<const PassTime> passes,
             v1::ProposeResponse* out);

struct VerifyBatch {
  std::vector<TokenTree> trees;
  std::vector<std::vector<std::vector<TokenProb>>> qs;
  std::vector<VerifyItem> items;
};
// As for ProposeRequest, plus an unknown kind and malformed draft distributions.
absl::Status FromProto(const v1::VerifyRequest& request, const WorkerLimits& limits,
                       VerifyBatch* out);
void ToProto(std::span<const VerifyOutput> outputs, v1::VerifyResponse* out);

// ---------------------------------------------------------------------------
// Router side: items become a request; the answer is checked before the engine
// indexes anything with it.

void ToProto(std::span<const ProposeItem> items, uint64_t router_instance, v1::ProposeRequest* out);
// One result per item (else INTERNAL). A bad tree (size beyond the item's shape,
// tokens outside [0, vocab_size)) or a sampled tree without distributions fails
// that item only, with INTERNAL.
absl::Status FromProto(const v1::ProposeResponse& response, std::span<const ProposeItem> items,
                       int vocab_size, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes);

void ToProto(std::span<const VerifyItem> items, uint64_t router_instance, v1::VerifyRequest* out);
// One result per item, accepted nodes inside their tree and extra tokens inside
// the vocabulary, else INTERNAL for the whole answer.
absl::Status FromProto(const v1::VerifyResponse& response, std::span<const VerifyItem> items,
                       int vocab_size, std::vector<VerifyOutput>* outputs);

}  // namespace specserve
