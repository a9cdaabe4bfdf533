#include "common/speculation/draft_worker.h"

#include <chrono>

#include "absl/strings/str_format.h"
#include "common/speculation/propose_validation.h"
#include "common/util/status_macros.h"

namespace specserve {

DraftWorker::DraftWorker(Model& draft, DraftWorkerOptions options)
    : draft_(draft),
      options_(options),
      drafter_(draft, options.window, options.max_candidates, options.sinks) {}

absl::StatusOr<std::unique_ptr<KvCache>> DraftWorker::NewCache() {
  // Pending room for a whole catch-up window plus a tree on top of it.
  return draft_.MakeWindowCache(options_.sinks, options_.window,
                                options_.window + options_.max_tree_nodes + 8);
}

absl::Status DraftWorker::StartOver(Sequence& seq) {
  ASSIGN_OR_RETURN(seq.cache, NewCache());
  seq.held.Clear();
  seq.last = DraftResult{};
  return absl::OkStatus();
}

int DraftWorker::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.size();
}

int64_t DraftWorker::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.memory_bytes();
}

void DraftWorker::Release(uint64_t router, int64_t sequence_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.Erase({router, sequence_id});
}

int DraftWorker::ExpireIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.ExpireIdle(options_.idle_seconds);
}

absl::Status DraftWorker::ValidateItem(const ProposeItem& item) const {
  return ValidateProposeItem(
      item, {options_.max_tree_nodes, options_.max_depth, draft_.config().vocab_size});
}

absl::StatusOr<DraftWorker::Sequence*> DraftWorker::SequenceFor(const ProposeItem& item) {
  ASSIGN_OR_RETURN(
      Sequence * found,
      sequences_.FindOrMake({item.router, item.sequence_id}, std::chrono::steady_clock::now(),
                            options_.max_sequences, options_.idle_seconds, "the draft",
                            [&]() -> absl::StatusOr<Sequence> {
                              Sequence seq;
                              ASSIGN_OR_RETURN(seq.cache, NewCache());
                              return seq;
                            }));
  Sequence& seq = *found;
  // Commit the previous step's accepted path (the nodes that were fed: a prefix of
  // it), then catch up from our position.
  if (seq.cache->pending_rows() > 0) {
    const int64_t before = seq.cache->committed_tokens();
    absl::Status st = TreeDrafter::CommitAccepted(*seq.cache, seq.last, item.previous_accepted);
    if (!st.ok()) seq.cache->DropPending();
    const int64_t added = seq.cache->committed_tokens() - before;
    for (int64_t j = 0; j < added && j < static_cast<int64_t>(item.previous_accepted.size()); ++j) {
      const int32_t node = item.previous_accepted[j];
      if (node >= 0 && node < seq.last.tree.size()) seq.held.Append(seq.last.tree.tokens[node]);
    }
  }
  const int64_t have = seq.cache->committed_tokens();
  const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
  if (have < item.start) {
    return absl::FailedPreconditionError(
        absl::StrFormat("sequence %d: need history from position %d (sent %d..%d)",
                        item.sequence_id, have, item.start, end));
  }
  // We are ahead of the history (an answer was lost), or hold another history
  // than the one sent (a restarted router reusing the id): start over.
  const bool same = have < end && seq.held.size() == have &&
                    seq.held.at(item.start) == item.prefix_hash &&
                    seq.held.at(have) ==
                        PrefixHash(item.tokens.subspan(0, static_cast<size_t>(have - item.start)),
                                   item.prefix_hash);
  if (!same) {
    RETURN_IF_ERROR(StartOver(seq));
    return absl::FailedPreconditionError(absl::StrFormat(
        "sequence %d: the cache does not hold this history's prefix (%d tokens held, history "
        "sent from %d to %d); need history from 0",
        item.sequence_id, have, item.start, end));
  }
  return &seq;
}

absl::Status DraftWorker::Propose(std::span<const ProposeItem> items,
                                  std::vector<ProposeOutput>* outputs,
                                  std::vector<PassTime>* passes) {
  std::lock_guard<std::mutex> lock(mu_);
  outputs->assign(items.size(), ProposeOutput{});
  passes->clear();
  // 1. Per item: validate, find its cache; failures stay per item.
  std::vector<DraftRequest> requests;
  std::vector<size_t> members;
  std::vector<Sequence*> seqs;
  std::vector<Rng> rngs;
  rngs.reserve(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const ProposeItem& item = items[i];
    ProposeOutput& out = (*outputs)[i];
    if (out.status = ValidateItem(item); !out.status.ok()) continue;
    absl::StatusOr<Sequence*> seq = SequenceFor(item);
    if (!seq.ok()) {
      out.status = seq.status();
      continue;
    }
    const int64_t have = (*seq)->cache->committed_tokens();
    // Draws keyed by the root's position (the last history token).
    const int64_t root = item.start + static_cast<int64_t>(item.tokens.size()) - 1;
    rngs.push_back(Rng::ForStep(item.sampling.seed, root, kDraftDraws));
    DraftRequest r;
    r.cache = (*seq)->cache.get();
    r.catch_up = item.tokens.subspan(static_cast<size_t>(have - item.start));
    r.shape = item.shape;
    r.sampling = &item.sampling;
    r.rng = &rngs.back();
    requests.push_back(r);
    members.push_back(i);
    seqs.push_back(*seq);
  }
  if (requests.empty()) return absl::OkStatus();

  // 2. One drafted tree per sequence, one forward per tree level.
  std::vector<DraftResult> results;
  absl::Status st = drafter_.Draft(requests, &results);
  *passes = drafter_.last_passes();
  if (!st.ok()) {
    for (size_t k = 0; k < members.size(); ++k) {
      requests[k].cache->DropPending();
      // The catch-up may be half taken in: the hashes no longer say what is held.
      if (seqs[k]->held.size() != seqs[k]->cache->committed_tokens()) (void)StartOver(*seqs[k]);
    }
    return st;
  }

  // 3. Per item: record the catch-up taken in, answer the tree.
  for (size_t k = 0; k < members.size(); ++k) {
    const ProposeItem& item = items[members[k]];
    ProposeOutput& out = (*outputs)[members[k]];
    Sequence& seq = *seqs[k];
    const int64_t taken = seq.cache->committed_tokens() - seq.held.size();
    if (taken == static_cast<int64_t>(requests[k].catch_up.size())) {
      seq.held.Append(requests[k].catch_up);
    } else if (absl::Status restart = StartOver(seq); !restart.ok()) {
      out.status = restart;
      continue;
    }
    out.status = results[k].status;
    if (!out.status.ok()) {
      out.status =
          absl::Status(out.status.code(),
                       absl::StrFormat("sequence %d: %s", item.sequence_id, out.status.message()));
      continue;
    }
    out.tree = results[k].tree;
    out.q = results[k].q;
    seq.last = std::move(results[k]);
  }
  return absl::OkStatus();
}

}  // namespace specserve
