#include "common/speculation/tree_drafter.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {

TreeDrafter::TreeDrafter(LlamaModel& draft, int window, int max_candidates, int sinks)
    : draft_(draft),
      window_(std::max(1, window)),
      max_candidates_(std::max(1, max_candidates)),
      sinks_(std::max(0, sinks)) {}

namespace {

// Picks up to `count` children from draft logits: the top tokens (greedy) or
// draws without replacement from q (sampling; q is returned for verification).
std::vector<int32_t> PickChildren(std::span<const float> logits, int count,
                                  const SamplingParams& sampling, int max_candidates, Rng& rng,
                                  std::vector<TokenProb>* q) {
  std::vector<int32_t> picked;
  if (sampling.greedy()) {
    std::vector<int32_t> order(logits.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
    count = std::min<int>(count, static_cast<int>(order.size()));
    std::partial_sort(order.begin(), order.begin() + count, order.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    picked.assign(order.begin(), order.begin() + count);
    return picked;
  }
  SamplingParams draft_params = sampling;
  draft_params.top_k = sampling.top_k > 0 ? std::min(sampling.top_k, max_candidates) : max_candidates;
  *q = SamplingDistribution(logits, draft_params);
  std::vector<TokenProb> remaining = *q;
  while (static_cast<int>(picked.size()) < count && !remaining.empty()) {
    const int32_t token = SampleFrom(remaining, rng);
    picked.push_back(token);
    remaining.erase(std::find_if(remaining.begin(), remaining.end(),
                                 [&](const TokenProb& tp) { return tp.token == token; }));
    double mass = 0.0;
    for (const TokenProb& tp : remaining) mass += tp.prob;
    if (mass <= 0.0) break;
    for (TokenProb& tp : remaining) tp.prob = static_cast<float>(tp.prob / mass);
  }
  return picked;
}

}  // namespace

absl::Status TreeDrafter::Draft(std::span<const DraftRequest> requests,
                                std::vector<DraftResult>* results) {
  const int vocab = draft_.config().vocab_size;
  results->assign(requests.size(), DraftResult{});

  passes_.clear();
  // A long catch-up (a prompt, or history while speculation was off) keeps only
  // the sinks and the last W tokens: feed missing sinks first, skip the middle.
  std::vector<std::span<const int32_t>> catch_up(requests.size());
  std::vector<ForwardSequence> batch;
  for (size_t s = 0; s < requests.size(); ++s) {
    const DraftRequest& r = requests[s];
    if (r.catch_up.empty()) {
      return absl::InvalidArgumentError(absl::StrFormat("sequence %d: nothing to draft from", s));
    }
    catch_up[s] = r.catch_up;
    const int64_t missing_sinks = std::max<int64_t>(sinks_ - r.cache->committed_tokens(), 0);
    if (static_cast<int64_t>(r.catch_up.size()) > window_ + missing_sinks && missing_sinks > 0) {
      ForwardSequence fs;
      fs.cache = r.cache;
      fs.tokens = r.catch_up.subspan(0, missing_sinks);
      batch.push_back(fs);
      catch_up[s] = r.catch_up.subspan(missing_sinks);
    }
  }
  if (!batch.empty()) {
    RETURN_IF_ERROR(TimedForward(batch));
    for (const ForwardSequence& fs : batch) fs.cache->CommitAll();
  }

  // Level 0: catch up on the history; the root's logits give the first level.
  batch.clear();
  std::vector<int32_t> last_row(requests.size());
  std::vector<size_t> members;
  for (size_t s = 0; s < requests.size(); ++s) {
    const DraftRequest& r = requests[s];
    std::span<const int32_t> feed = catch_up[s];
    if (static_cast<int>(feed.size()) > window_) {
      // Tokens before the last W would leave the ring anyway: count them, skip them.
      RETURN_IF_ERROR(r.cache->SkipTokens(static_cast<int64_t>(feed.size()) - window_));
      feed = feed.subspan(feed.size() - window_);
    }
    last_row[s] = static_cast<int32_t>(feed.size()) - 1;
    ForwardSequence fs;
    fs.cache = r.cache;
    fs.tokens = feed;
    fs.logit_rows = std::span<const int32_t>(&last_row[s], 1);
    batch.push_back(fs);
    members.push_back(s);
  }
  RETURN_IF_ERROR(TimedForward(batch));
  for (size_t s = 0; s < requests.size(); ++s) requests[s].cache->CommitAll();

  // Per sequence: the shape nodes realised so far (shape node -> tree node).
  struct Expansion {
    std::vector<int32_t> tree_of_shape;  // -2: not realised
    std::vector<std::vector<int32_t>> shape_children;  // index 0 = root
    std::vector<int32_t> shape_depth;
  };
  std::vector<Expansion> exp(requests.size());
  int max_depth = 0;
  for (size_t s = 0; s < requests.size(); ++s) {
    const TreeShape& shape = *requests[s].shape;
    Expansion& e = exp[s];
    e.tree_of_shape.assign(shape.speculated(), -2);
    e.shape_children.assign(shape.speculated() + 1, {});
    e.shape_depth.resize(shape.speculated());
    for (int i = 0; i < shape.speculated(); ++i) {
      e.shape_children[shape.parents[i] + 1].push_back(i);
      e.shape_depth[i] = shape.parents[i] < 0 ? 1 : e.shape_depth[shape.parents[i]] + 1;
      max_depth = std::max(max_depth, e.shape_depth[i]);
    }
    (*results)[s].q.assign(1, {});
  }

  // Adds the children of shape node `parent_shape` (-1 = root) to the tree from `logits`.
  auto expand = [&](size_t s, int parent_shape, std::span<const float> logits) {
    Expansion& e = exp[s];
    DraftResult& out = (*results)[s];
    const std::vector<int32_t>& kids = e.shape_children[parent_shape + 1];
    if (kids.empty()) return;
    const int parent_tree = parent_shape < 0 ? -1 : e.tree_of_shape[parent_shape];
    std::vector<TokenProb> q;
    const std::vector<int32_t> tokens =
        PickChildren(logits, static_cast<int>(kids.size()), *requests[s].sampling,
                     max_candidates_, *requests[s].rng, &q);
    if (!requests[s].sampling->greedy()) out.q[parent_tree + 1] = std::move(q);
    for (size_t r = 0; r < tokens.size(); ++r) {
      e.tree_of_shape[kids[r]] = out.tree.size();
      out.tree.tokens.push_back(tokens[r]);
      out.tree.parents.push_back(parent_tree);
      out.pending_row.push_back(-1);
      out.q.emplace_back();
    }
  };
  for (size_t i = 0; i < members.size(); ++i) {
    expand(members[i], -1,
           std::span<const float>(logits_.data() + static_cast<size_t>(i) * vocab, vocab));
  }

  // Levels 1..max_depth-1: feed the realised nodes that have children in the shape.
  for (int depth = 1; depth < max_depth; ++depth) {
    batch.clear();
    members.clear();
    std::vector<std::vector<int32_t>> level_tokens(requests.size()), level_parents(requests.size()),
        level_pending_parents(requests.size()), level_rows(requests.size()),
        level_shape_nodes(requests.size());
    for (size_t s = 0; s < requests.size(); ++s) {
      Expansion& e = exp[s];
      DraftResult& out = (*results)[s];
      KvCache* cache = requests[s].cache;
      const int pending = static_cast<int>(cache->pending_rows());
      for (int i = 0; i < requests[s].shape->speculated(); ++i) {
        const int node = e.tree_of_shape[i];
        if (e.shape_depth[i] != depth || node < 0 || e.shape_children[i + 1].empty()) continue;
        const int parent = out.tree.parents[node];
        level_parents[s].push_back(parent < 0 ? -1 : out.pending_row[parent]);
        out.pending_row[node] = pending + static_cast<int32_t>(level_tokens[s].size());
        level_tokens[s].push_back(out.tree.tokens[node]);
        level_shape_nodes[s].push_back(i);
      }
      if (level_tokens[s].empty()) continue;
      // Parents of the rows already pending: pending rows are tree nodes in feed order.
      level_pending_parents[s].assign(pending, -1);
      for (int n = 0; n < out.tree.size(); ++n) {
        const int row = out.pending_row[n];
        if (row >= 0 && row < pending) {
          const int parent = out.tree.parents[n];
          level_pending_parents[s][row] = parent < 0 ? -1 : out.pending_row[parent];
        }
      }
      for (size_t i = 0; i < level_tokens[s].size(); ++i) {
        level_rows[s].push_back(static_cast<int32_t>(i));
      }
      ForwardSequence fs;
      fs.cache = cache;
      fs.tokens = level_tokens[s];
      fs.parents = level_parents[s];
      fs.pending_parents = level_pending_parents[s];
      fs.logit_rows = level_rows[s];
      batch.push_back(fs);
      members.push_back(s);
    }
    if (batch.empty()) break;
    // The root is the last committed token (position committed - 1), so nodes at
    // depth d sit at position committed + d - 1.
    std::vector<std::vector<int32_t>> positions(batch.size());
    for (size_t b = 0; b < batch.size(); ++b) {
      positions[b].assign(batch[b].tokens.size(),
                          static_cast<int32_t>(batch[b].cache->committed_tokens()) + depth - 1);
      batch[b].positions = positions[b];
    }
    RETURN_IF_ERROR(TimedForward(batch));
    size_t row = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      const size_t s = members[b];
      for (int shape_node : level_shape_nodes[s]) {
        expand(s, shape_node,
               std::span<const float>(logits_.data() + row * vocab, vocab));
        ++row;
      }
    }
  }
  return absl::OkStatus();
}

absl::Status TreeDrafter::TimedForward(std::span<const ForwardSequence> batch) {
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(draft_.Forward(batch, &logits_));
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
      return absl::InvalidArgumentError(absl::StrFormat("accepted node %d is not in the tree", node));
    }
    const int32_t row = result.pending_row[node];
    if (row < 0) break;  // a leaf: never fed, so neither is anything after it
    keep.push_back(row);
  }
  return cache.Commit(keep);
}

}  // namespace specserve
