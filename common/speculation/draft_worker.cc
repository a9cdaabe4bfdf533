#include "common/speculation/draft_worker.h"

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"
#include "common/util/tree_parents.h"

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

int DraftWorker::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(sequences_.size());
}

int64_t DraftWorker::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t bytes = 0;
  for (const auto& [id, seq] : sequences_) bytes += seq.cache->memory_bytes();
  return bytes;
}

void DraftWorker::Release(int64_t sequence_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.erase(sequence_id);
}

absl::Status DraftWorker::Propose(std::span<const ProposeItem> items,
                                  std::vector<ProposeOutput>* outputs,
                                  std::vector<PassTime>* passes) {
  std::lock_guard<std::mutex> lock(mu_);
  outputs->assign(items.size(), ProposeOutput{});
  passes->clear();
  const int vocab = draft_.config().vocab_size;
  std::vector<DraftRequest> requests;
  std::vector<size_t> members;
  for (size_t i = 0; i < items.size(); ++i) {
    const ProposeItem& item = items[i];
    ProposeOutput& out = (*outputs)[i];
    auto fail = [&](absl::Status st) { out.status = std::move(st); };
    if (item.shape == nullptr || item.tokens.empty()) {
      fail(absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: a proposal needs history tokens and a tree shape", item.sequence_id)));
      continue;
    }
    if (item.shape->speculated() > options_.max_tree_nodes ||
        item.shape->depth() > options_.max_depth) {
      fail(absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: tree of %d nodes and depth %d exceeds the limits (%d nodes, depth %d)",
          item.sequence_id, item.shape->speculated(), item.shape->depth(), options_.max_tree_nodes,
          options_.max_depth)));
      continue;
    }
    absl::Status shape_ok = ValidateParents(item.shape->parents, 0, "shape node");
    if (shape_ok.ok() && item.shape->ranks.size() != item.shape->parents.size()) {
      shape_ok = absl::InvalidArgumentError(absl::StrFormat(
          "%d ranks for %d nodes", item.shape->ranks.size(), item.shape->parents.size()));
    }
    if (!shape_ok.ok()) {
      fail(absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: tree shape: %s", item.sequence_id, shape_ok.message())));
      continue;
    }
    bool bad_token = false;
    for (int32_t t : item.tokens) bad_token |= t < 0 || t >= vocab;
    if (bad_token || item.start < 0) {
      fail(absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: history tokens must be in [0, %d) and start >= 0",
                          item.sequence_id, vocab)));
      continue;
    }
    if (absl::Status st = item.sampling.Validate(); !st.ok()) {
      fail(st);
      continue;
    }
    auto it = sequences_.find(item.sequence_id);
    if (it == sequences_.end()) {
      if (static_cast<int>(sequences_.size()) >= options_.max_sequences) {
        fail(absl::ResourceExhaustedError(
            absl::StrFormat("the draft holds %d sequences, its limit", options_.max_sequences)));
        continue;
      }
      Sequence seq;
      absl::StatusOr<std::unique_ptr<KvCache>> cache = NewCache();
      if (!cache.ok()) {
        fail(cache.status());
        continue;
      }
      seq.cache = std::move(*cache);
      seq.rng.Seed(item.sampling.seed ^ 0x5bd1e9955bd1e995ull);
      it = sequences_.emplace(item.sequence_id, std::move(seq)).first;
    }
    Sequence& seq = it->second;
    // Commit the previous step's accepted path, then catch up from our position.
    if (seq.cache->pending_rows() > 0) {
      absl::Status st = TreeDrafter::CommitAccepted(*seq.cache, seq.last, item.previous_accepted);
      if (!st.ok()) seq.cache->DropPending();
    }
    const int64_t have = seq.cache->committed_tokens();
    const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
    if (have < item.start || have >= end) {
      // Our cache does not line up with the history sent: ask for it from our position
      // (or, when we are ahead of it, start over).
      if (have >= end) {
        absl::StatusOr<std::unique_ptr<KvCache>> cache = NewCache();
        if (!cache.ok()) {
          fail(cache.status());
          continue;
        }
        seq.cache = std::move(*cache);
      }
      fail(absl::FailedPreconditionError(
          absl::StrFormat("sequence %d: need history from position %d (sent %d..%d)",
                          item.sequence_id, have >= end ? 0 : have, item.start, end)));
      continue;
    }
    DraftRequest r;
    r.cache = seq.cache.get();
    r.catch_up = item.tokens.subspan(static_cast<size_t>(have - item.start));
    r.shape = item.shape;
    r.sampling = &item.sampling;
    r.rng = &seq.rng;
    requests.push_back(r);
    members.push_back(i);
  }
  if (requests.empty()) return absl::OkStatus();
  std::vector<DraftResult> results;
  absl::Status st = drafter_.Draft(requests, &results);
  *passes = drafter_.last_passes();
  if (!st.ok()) {
    for (const DraftRequest& r : requests) r.cache->DropPending();
    return st;
  }
  for (size_t k = 0; k < members.size(); ++k) {
    ProposeOutput& out = (*outputs)[members[k]];
    out.status = results[k].status;
    if (!out.status.ok()) {
      out.status = absl::Status(
          out.status.code(),
          absl::StrFormat("sequence %d: %s", items[members[k]].sequence_id, out.status.message()));
      continue;
    }
    out.tree = results[k].tree;
    out.q = results[k].q;
    sequences_[items[members[k]].sequence_id].last = std::move(results[k]);
  }
  return absl::OkStatus();
}

}  // namespace specserve
