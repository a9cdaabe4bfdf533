// The boundary between the router (scheduler, planner, token histories) and the
// two model workers. In-process workers implement it directly (all-in-one mode,
// tests); gRPC clients implement it for the split deployment. The router is the
// source of truth: every call carries the history tokens a worker may lack, so a
// restarted worker is rebuilt from the history (it answers FAILED_PRECONDITION
// naming the position it needs).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "absl/status/status.h"
#include "common/sampling/logprobs.h"
#include "common/sampling/sampler.h"
#include "common/speculation/pass_time.h"
#include "common/speculation/sequoia.h"
#include "common/speculation/token_tree.h"
#include "common/speculation/verifier.h"

namespace specserve {

struct ProposeItem {
  // A sequence is (router, sequence_id): `router` is the router instance that owns
  // it (a random id per router process; 0 in-process), so that a restarted router
  // never continues a cache of the one before.
  uint64_t router = 0;
  int64_t sequence_id = 0;
  // History tokens from position `start` to the end; the last one is the root of
  // the tree to draft. The draft uses those it has not cached.
  int64_t start = 0;
  std::span<const int32_t> tokens;
  // PrefixHash of history[0, start) (prefix_hash.h): a worker reuses its cache only
  // when the tokens it holds are this prefix.
  uint64_t prefix_hash = 0;
  // The previous step's accepted nodes of this sequence's previous tree (the
  // commit travels with the next proposal: no separate round trip).
  std::span<const int32_t> previous_accepted;
  const TreeShape* shape = nullptr;
  SamplingParams sampling;
  // Drafting ahead (sent while the target verifies the tree the draft proposed
  // last from exactly this history): draft the tree that would come next if the
  // target accepted that tree's most likely path (every node's first child) and
  // then chose the token the draft itself would. The next proposal whose history
  // is exactly that one gets this tree at once (ProposeOutput::from_ahead); any
  // other history discards it. The answer's tree is for tests and reports only.
  bool ahead = false;
};

struct ProposeOutput {
  absl::Status status;  // per sequence: e.g. FAILED_PRECONDITION "need history from N"
  TokenTree tree;
  std::vector<std::vector<TokenProb>> q;  // sampling: per expanded node (0 = root)
  bool from_ahead = false;  // the tree was drafted ahead (ProposeItem::ahead), no pass now
};

class DraftBackend {
 public:
  virtual ~DraftBackend() = default;
  // One call per step for the whole batch. A failed call (draft down, deadline)
  // makes the router decode without speculation this step.
  virtual absl::Status Propose(std::span<const ProposeItem> items,
                               std::vector<ProposeOutput>* outputs,
                               std::vector<PassTime>* passes) = 0;
  virtual void Release(int64_t sequence_id) = 0;
};

enum class VerifyKind {
  kPrefill,  // cache all the tokens; no output
  kVerify,   // cache the tokens, verify `tree` rooted at the last one
};

struct VerifyItem {
  uint64_t router = 0;  // as in ProposeItem
  int64_t sequence_id = 0;
  VerifyKind kind = VerifyKind::kVerify;
  int64_t start = 0;  // position of tokens[0]
  std::span<const int32_t> tokens;
  uint64_t prefix_hash = 0;         // PrefixHash of history[0, start), as in ProposeItem
  const TokenTree* tree = nullptr;  // kVerify; may be empty (plain decoding)
  const std::vector<std::vector<TokenProb>>* q = nullptr;  // sampling with a tree
  SamplingParams sampling;
  // kVerify: -1, or k >= 0 to return the log-probabilities of the appended tokens with
  // the k most likely alternatives.
  int top_logprobs = -1;
};

struct VerifyOutput {
  absl::Status status;        // per sequence
  VerifyResult result;        // kVerify: accepted nodes and the extra token
  int64_t cached_tokens = 0;  // the target's committed tokens after the call
  // With top_logprobs >= 0: one per appended token (the accepted nodes, then the extra).
  std::vector<TokenLogprobs> logprobs;
};

class TargetBackend {
 public:
  virtual ~TargetBackend() = default;
  // One forward for the whole batch (prefill chunks and verifications together).
  virtual absl::Status Verify(std::span<const VerifyItem> items,
                              std::vector<VerifyOutput>* outputs) = 0;
  virtual void Release(int64_t sequence_id) = 0;
};

}  // namespace specserve
