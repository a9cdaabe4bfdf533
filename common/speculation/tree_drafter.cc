#include "common/speculation/tree_drafter.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/speculation/child_picker.h"
#include "common/util/status_macros.h"

namespace specserve {

TreeDrafter::TreeDrafter(Model& draft, int window, int max_candidates, int sinks)
    : draft_(draft),
      window_(std::max(1, window)),
      max_candidates_(std::max(1, max_candidates)),
      sinks_(std::max(0, sinks)) {}

namespace {

// What a node's logit row must keep to expand `count` children: the top
// `count` tokens (greedy), or the top_k that q is cut to (sampling).
LogitRowNeeds CandidateNeeds(int count, const SamplingParams& sampling, int max_candidates) {
  LogitRowNeeds needs;
  needs.top_n = sampling.greedy() ? count
                                  : (sampling.top_k > 0 ? std::min(sampling.top_k, max_candidates)
                                                        : max_candidates);
  return needs;
}

// The candidates of a node from its most likely draft tokens (CandidateNeeds):
// the top `count` (greedy), or q, the sampling distribution kept to
// `max_candidates` (exact and small to send), which the children are drawn from
// without replacement.
std::vector<TokenProb> Candidates(std::span<const TokenLogit> top, int count,
                                  const SamplingParams& sampling, int max_candidates) {
  if (sampling.greedy()) {
    std::vector<TokenProb> out;
    for (int i = 0; i < count && i < static_cast<int>(top.size()); ++i) {
      out.push_back({top[i].token, 1.0f});
    }
    return out;
  }
  SamplingParams draft_params = sampling;
  draft_params.top_k = CandidateNeeds(count, sampling, max_candidates).top_n;
  return SamplingDistributionOfTop(top, draft_params);
}

}  // namespace

// Per sequence of one Draft call: how its catch-up is fed and how its tree grows.
struct TreeDrafter::Work {
  // A long catch-up keeps only the sinks and the last W tokens: the missing sinks
  // are fed first (their own pass), the middle is skipped, the last W fed.
  std::span<const int32_t> sink_feed, feed;
  int64_t skip = 0;
  // The root's pending row (DraftRequest::root_pending), or -1: committed.
  int32_t root_row = -1;
  bool active = false;  // false once this sequence failed (its status says why)
  // The shape nodes realised so far (shape node -> tree node, -2: not realised).
  std::vector<int32_t> tree_of_shape;
  std::vector<std::vector<int32_t>> shape_children;  // index 0 = root
  std::vector<int32_t> shape_depth;
  // Scratch for one level's pass.
  std::vector<int32_t> tokens, parents, pending_parents, rows, positions, shape_nodes;
};

absl::Status TreeDrafter::PlanCatchUp(const DraftRequest& r, Work* w) const {
  const int64_t length = static_cast<int64_t>(r.catch_up.size());
  if (length == 0) return absl::InvalidArgumentError("nothing to draft from");
  const int64_t missing_sinks = std::max<int64_t>(sinks_ - r.cache->committed_tokens(), 0);
  // Sinks go first whenever part of the catch-up will be skipped; the root (the
  // last token) always stays in the main feed for its logits.
  const int64_t sink_feed = length > window_ ? std::min(missing_sinks, length - 1) : 0;
  w->sink_feed = r.catch_up.subspan(0, sink_feed);
  const std::span<const int32_t> rest = r.catch_up.subspan(sink_feed);
  w->skip = std::max<int64_t>(static_cast<int64_t>(rest.size()) - window_, 0);
  w->feed = rest.subspan(w->skip);
  w->root_row = r.root_pending && length == 1 && r.cache->pending_rows() == 0 ? 0 : -1;
  return absl::OkStatus();
}

void TreeDrafter::Fail(size_t s, absl::Status status, std::vector<Work>& work,
                       std::vector<DraftResult>* results, std::span<const DraftRequest> requests) {
  work[s].active = false;
  requests[s].cache->DropPending();
  (*results)[s] = DraftResult{};
  (*results)[s].status = std::move(status);
}

absl::Status TreeDrafter::FeedSinks(std::span<const DraftRequest> requests,
                                    std::vector<Work>& work) {
  std::vector<ForwardSequence> batch;
  for (size_t s = 0; s < requests.size(); ++s) {
    if (!work[s].active || work[s].sink_feed.empty()) continue;
    ForwardSequence& fs = batch.emplace_back();
    fs.cache = requests[s].cache;
    fs.tokens = work[s].sink_feed;
  }
  if (batch.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(TimedForward(batch, {}));
  for (const ForwardSequence& fs : batch) fs.cache->CommitAll();
  return absl::OkStatus();
}

void TreeDrafter::StartTree(const DraftRequest& r, Work* w, DraftResult* out, int* max_depth) {
  const TreeShape& shape = *r.shape;
  w->tree_of_shape.assign(shape.speculated(), -2);
  w->shape_children.assign(shape.speculated() + 1, {});
  w->shape_depth.resize(shape.speculated());
  for (int i = 0; i < shape.speculated(); ++i) {
    w->shape_children[shape.parents[i] + 1].push_back(i);
    w->shape_depth[i] = shape.parents[i] < 0 ? 1 : w->shape_depth[shape.parents[i]] + 1;
    *max_depth = std::max(*max_depth, w->shape_depth[i]);
  }
  out->q.assign(1, {});
}

LogitRowNeeds TreeDrafter::RowNeeds(const DraftRequest& r, int parent_shape, const Work& w) const {
  const int count = static_cast<int>(w.shape_children[parent_shape + 1].size());
  return CandidateNeeds(count, *r.sampling, max_candidates_);
}

void TreeDrafter::Expand(const DraftRequest& r, int parent_shape, int row, Work* w,
                         DraftResult* out) {
  const std::vector<int32_t>& kids = w->shape_children[parent_shape + 1];
  if (kids.empty()) return;
  const int parent_tree = parent_shape < 0 ? -1 : w->tree_of_shape[parent_shape];
  std::vector<TokenProb> q =
      Candidates(rows_.top(row), static_cast<int>(kids.size()), *r.sampling, max_candidates_);
  const std::vector<int32_t> tokens =
      PickChildren(q, static_cast<int>(kids.size()), r.sampling->greedy(), *r.rng);
  if (!r.sampling->greedy()) out->q[parent_tree + 1] = std::move(q);
  for (size_t k = 0; k < tokens.size(); ++k) {
    w->tree_of_shape[kids[k]] = out->tree.size();
    out->tree.tokens.push_back(tokens[k]);
    out->tree.parents.push_back(parent_tree);
    out->pending_row.push_back(-1);
    out->q.emplace_back();
  }
}

absl::Status TreeDrafter::FeedHistory(std::span<const DraftRequest> requests,
                                      std::vector<Work>& work, std::vector<DraftResult>* results) {
  std::vector<ForwardSequence> batch;
  std::vector<size_t> members;
  std::vector<LogitRowNeeds> needs;
  for (size_t s = 0; s < requests.size(); ++s) {
    Work& w = work[s];
    if (!w.active) continue;
    if (absl::Status st = requests[s].cache->SkipTokens(w.skip); !st.ok()) {
      Fail(s, std::move(st), work, results, requests);
      continue;
    }
    w.rows.assign(1, static_cast<int32_t>(w.feed.size()) - 1);
    ForwardSequence& fs = batch.emplace_back();
    fs.cache = requests[s].cache;
    fs.tokens = w.feed;
    fs.logit_rows = w.rows;
    members.push_back(s);
    needs.push_back(RowNeeds(requests[s], -1, w));
  }
  if (batch.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(TimedForward(batch, needs));
  for (size_t b = 0; b < members.size(); ++b) {
    const size_t s = members[b];
    if (work[s].root_row < 0) requests[s].cache->CommitAll();
    Expand(requests[s], -1, static_cast<int>(b), &work[s], &(*results)[s]);
  }
  return absl::OkStatus();
}

bool TreeDrafter::BuildLevel(const DraftRequest& r, int depth, Work* w, DraftResult* out) {
  w->tokens.clear();
  w->parents.clear();
  w->rows.clear();
  w->shape_nodes.clear();
  KvCache* cache = r.cache;
  const int pending = static_cast<int>(cache->pending_rows());
  // The realised nodes at this depth that have children in the shape.
  for (int i = 0; i < r.shape->speculated(); ++i) {
    const int node = w->tree_of_shape[i];
    if (w->shape_depth[i] != depth || node < 0 || w->shape_children[i + 1].empty()) continue;
    const int parent = out->tree.parents[node];
    w->parents.push_back(parent < 0 ? w->root_row : out->pending_row[parent]);
    out->pending_row[node] = pending + static_cast<int32_t>(w->tokens.size());
    w->tokens.push_back(out->tree.tokens[node]);
    w->shape_nodes.push_back(i);
  }
  if (w->tokens.empty()) return false;
  // Parents of the rows already pending: pending rows are tree nodes in feed
  // order (after the root's, when it is pending: a child of the committed rows).
  w->pending_parents.assign(pending, -1);
  for (int n = 0; n < out->tree.size(); ++n) {
    const int row = out->pending_row[n];
    if (row >= 0 && row < pending) {
      const int parent = out->tree.parents[n];
      w->pending_parents[row] = parent < 0 ? w->root_row : out->pending_row[parent];
    }
  }
  for (size_t i = 0; i < w->tokens.size(); ++i) w->rows.push_back(static_cast<int32_t>(i));
  // The root is the last committed token (position committed - 1) or the one
  // after them while pending, so nodes at depth d sit at position
  // committed + d - 1, or one further.
  w->positions.assign(w->tokens.size(), static_cast<int32_t>(cache->committed_tokens()) + depth -
                                            1 + (w->root_row >= 0 ? 1 : 0));
  return true;
}

absl::Status TreeDrafter::ExpandLevels(std::span<const DraftRequest> requests, int max_depth,
                                       std::vector<Work>& work, std::vector<DraftResult>* results) {
  // Levels 1..max_depth-1: one pass feeds every sequence's realised nodes of that
  // depth that have children in the shape; their logits give the next level.
  for (int depth = 1; depth < max_depth; ++depth) {
    std::vector<ForwardSequence> batch;
    std::vector<size_t> members;
    std::vector<LogitRowNeeds> needs;
    for (size_t s = 0; s < requests.size(); ++s) {
      Work& w = work[s];
      if (!w.active || !BuildLevel(requests[s], depth, &w, &(*results)[s])) continue;
      for (int shape_node : w.shape_nodes) needs.push_back(RowNeeds(requests[s], shape_node, w));
      ForwardSequence& fs = batch.emplace_back();
      fs.cache = requests[s].cache;
      fs.tokens = w.tokens;
      fs.parents = w.parents;
      fs.pending_parents = w.pending_parents;
      fs.positions = w.positions;
      fs.logit_rows = w.rows;
      members.push_back(s);
    }
    if (batch.empty()) break;
    RETURN_IF_ERROR(TimedForward(batch, needs));
    int row = 0;
    for (size_t s : members) {
      for (int shape_node : work[s].shape_nodes) {
        Expand(requests[s], shape_node, row++, &work[s], &(*results)[s]);
      }
    }
  }
  return absl::OkStatus();
}

absl::Status TreeDrafter::Draft(std::span<const DraftRequest> requests,
                                std::vector<DraftResult>* results) {
  results->assign(requests.size(), DraftResult{});
  passes_.clear();
  std::vector<Work> work(requests.size());
  int max_depth = 0;
  for (size_t s = 0; s < requests.size(); ++s) {
    work[s].active = true;
    if (absl::Status st = PlanCatchUp(requests[s], &work[s]); !st.ok()) {
      Fail(s, std::move(st), work, results, requests);
      continue;
    }
    StartTree(requests[s], &work[s], &(*results)[s], &max_depth);
  }
  RETURN_IF_ERROR(FeedSinks(requests, work));
  RETURN_IF_ERROR(FeedHistory(requests, work, results));
  return ExpandLevels(requests, max_depth, work, results);
}

absl::Status TreeDrafter::TimedForward(std::span<const ForwardSequence> batch,
                                       std::span<const LogitRowNeeds> needs) {
  rows_.Reset(needs, draft_.config().vocab_size);
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(draft_.ForwardReduced(batch, &rows_));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  size_t tokens = 0;
  for (const ForwardSequence& fs : batch) tokens += fs.tokens.size();
  const int per_sequence =
      static_cast<int>((tokens + batch.size() - 1) / std::max<size_t>(batch.size(), 1));
  passes_.push_back({per_sequence, seconds});
  return absl::OkStatus();
}

absl::Status TreeDrafter::CommitAccepted(KvCache& cache, const DraftResult& result,
                                         std::span<const int32_t> accepted) {
  std::vector<int32_t> keep;
  for (int32_t node : accepted) {
    if (node < 0 || node >= result.tree.size()) {
      cache.DropPending();
      return absl::InvalidArgumentError(
          absl::StrFormat("accepted node %d is not in the tree", node));
    }
    const int32_t row = result.pending_row[node];
    if (row < 0) break;  // a leaf: never fed, so neither is anything after it
    keep.push_back(row);
  }
  return cache.Commit(keep);
}

}  // namespace specserve
