#include "common/speculation/ngram_drafter.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "common/speculation/child_picker.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/propose_validation.h"

namespace specserve {

NgramDrafter::NgramDrafter(NgramDrafterOptions options) : options_(options) {}

int NgramDrafter::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.size();
}

int64_t NgramDrafter::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t bytes = 0;
  sequences_.ForEach([&](const SequenceKey&, const Sequence& seq) {
    bytes += seq.index.memory_bytes() + seq.held.memory_bytes();
  });
  return bytes;
}

void NgramDrafter::Release(uint64_t router, int64_t sequence_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.Erase({router, sequence_id});
}

int NgramDrafter::ExpireIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.ExpireIdle(options_.idle_seconds);
}

absl::Status NgramDrafter::CatchUp(const ProposeItem& item, Sequence& seq) {
  const int64_t have = static_cast<int64_t>(seq.index.history().size());
  const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
  if (have < item.start) {
    return absl::FailedPreconditionError(
        absl::StrFormat("sequence %d: need history from position %d (sent %d..%d)",
                        item.sequence_id, have, item.start, end));
  }
  // What we indexed must be a prefix of the history sent (by hash): not ahead of
  // it (a lost answer) and not another history (a restarted router reusing ids).
  const bool same = have <= end && seq.held.at(item.start) == item.prefix_hash &&
                    seq.held.at(have) ==
                        PrefixHash(item.tokens.subspan(0, static_cast<size_t>(have - item.start)),
                                   item.prefix_hash);
  if (!same) {
    seq = Sequence(options_);
    return absl::FailedPreconditionError(absl::StrFormat(
        "sequence %d: the index does not hold this history's prefix (%d tokens held, history "
        "sent from %d to %d); need history from 0",
        item.sequence_id, have, item.start, end));
  }
  const std::span<const int32_t> fresh =
      item.tokens.subspan(static_cast<size_t>(have - item.start));
  seq.index.Append(fresh);
  seq.held.Append(fresh);
  return absl::OkStatus();
}

void NgramDrafter::BuildTree(const ProposeItem& item, Sequence& seq, Rng& rng,
                             ProposeOutput* out) const {
  const TreeShape& shape = *item.shape;
  const bool greedy = item.sampling.greedy();
  const std::vector<int32_t>& history = seq.index.history();
  std::vector<std::vector<int32_t>> children(shape.speculated() + 1);  // index 0 = root
  for (int i = 0; i < shape.speculated(); ++i) children[shape.parents[i] + 1].push_back(i);
  std::vector<int32_t> tree_of_shape(shape.speculated(), -1);
  out->q.assign(1, {});
  // Shape nodes are in breadth-first order: a node is realised before its children.
  for (int v = -1; v < shape.speculated(); ++v) {
    const std::vector<int32_t>& kids = children[v + 1];
    const int node = v < 0 ? -1 : tree_of_shape[v];
    if (kids.empty() || (v >= 0 && node < 0)) continue;
    // The context's last max_n tokens: the history's tail, then the path to `node`.
    std::vector<int32_t> path;
    for (int n = node; n >= 0; n = out->tree.parents[n]) path.push_back(out->tree.tokens[n]);
    std::vector<int32_t> tail;
    const size_t from_history =
        path.size() >= static_cast<size_t>(options_.max_n) ? 0 : options_.max_n - path.size();
    tail.assign(history.end() - std::min(history.size(), from_history), history.end());
    tail.insert(tail.end(), path.rbegin(), path.rend());
    const std::vector<NgramContinuation> found = seq.index.Continuations(tail, options_.min_n);
    if (found.empty()) continue;
    double total = 0;
    for (const NgramContinuation& c : found) total += c.count;
    std::vector<TokenProb> q;
    for (const NgramContinuation& c : found) {
      q.push_back({c.token, static_cast<float>(c.count / total)});
    }
    const std::vector<int32_t> picked = PickChildren(q, static_cast<int>(kids.size()), greedy, rng);
    if (!greedy) out->q[node + 1] = std::move(q);
    for (size_t k = 0; k < picked.size(); ++k) {
      tree_of_shape[kids[k]] = out->tree.size();
      out->tree.tokens.push_back(picked[k]);
      out->tree.parents.push_back(node);
      out->q.emplace_back();
    }
  }
}

absl::Status NgramDrafter::Propose(std::span<const ProposeItem> items,
                                   std::vector<ProposeOutput>* outputs,
                                   std::vector<PassTime>* passes) {
  const auto start = std::chrono::steady_clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  outputs->assign(items.size(), ProposeOutput{});
  passes->clear();
  const TreeLimits limits{options_.max_tree_nodes, options_.max_depth, options_.vocab_size};
  for (size_t i = 0; i < items.size(); ++i) {
    const ProposeItem& item = items[i];
    ProposeOutput& out = (*outputs)[i];
    if (out.status = ValidateProposeItem(item, limits); !out.status.ok()) continue;
    if (item.ahead) {  // lookups cost next to nothing: nothing to gain ahead of time
      out.status = absl::UnimplementedError("the n-gram drafter does not draft ahead");
      continue;
    }
    absl::StatusOr<Sequence*> seq =
        sequences_.FindOrMake({item.router, item.sequence_id}, std::chrono::steady_clock::now(),
                              options_.max_sequences, options_.idle_seconds, "the draft",
                              [&]() -> absl::StatusOr<Sequence> { return Sequence(options_); });
    if (!seq.ok()) {
      out.status = seq.status();
      continue;
    }
    if (out.status = CatchUp(item, **seq); !out.status.ok()) continue;
    // Draws keyed by the root's position (the last history token), as the model drafter's.
    const int64_t root = item.start + static_cast<int64_t>(item.tokens.size()) - 1;
    Rng rng = Rng::ForStep(item.sampling.seed, root, kDraftDraws);
    BuildTree(item, **seq, rng, &out);
  }
  // One "pass": the lookups for the whole batch.
  passes->push_back(
      {1, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()});
  return absl::OkStatus();
}

}  // namespace specserve
