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

namespace {

// Commits the fed prefix of `path` (nodes of `last`, in path order; the leaves
// were never fed) in `cache` and appends those tokens to `held`; returns how
// many. A refused commit commits nothing (CommitAccepted checks the nodes first).
absl::StatusOr<size_t> CommitFedPath(KvCache& cache, const DraftResult& last,
                                     std::span<const int32_t> path, PrefixHashes& held) {
  const int64_t before = cache.committed_tokens();
  RETURN_IF_ERROR(TreeDrafter::CommitAccepted(cache, last, path));
  const size_t fed = static_cast<size_t>(cache.committed_tokens() - before);
  for (size_t j = 0; j < fed; ++j) held.Append(last.tree.tokens[path[j]]);
  return fed;
}

}  // namespace

absl::Status DraftWorker::StartOver(Sequence& seq) {
  seq.ahead.reset();
  seq.view = nullptr;
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
  if (seq.view != nullptr) {
    // It drafted over the target's rows, which no longer hold its history:
    // from here on it keeps rows of its own, fed from the start.
    RETURN_IF_ERROR(StartOver(seq));
  }
  if (seq.ahead != nullptr) {  // not taken (TakeAhead): the guess was wrong
    seq.ahead.reset();
    seq.cache->EndTentative(false);
  }
  // Commit the previous step's accepted path (the nodes that were fed: a prefix of
  // it), then catch up from our position.
  if (seq.cache->pending_rows() > 0 &&
      !CommitFedPath(*seq.cache, seq.last, item.previous_accepted, seq.held).ok()) {
    seq.cache->DropPending();
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

DraftWorker::Sequence* DraftWorker::TargetViewFor(const ProposeItem& item) {
  const int64_t end = item.start + static_cast<int64_t>(item.tokens.size()) - 1;
  const uint64_t hash =
      PrefixHash(item.tokens.subspan(0, static_cast<size_t>(end - item.start)), item.prefix_hash);
  const KvCache* rows =
      options_.target_rows->CommittedRows(item.router, item.sequence_id, end, hash);
  if (rows == nullptr) return nullptr;
  absl::StatusOr<Sequence*> found = sequences_.FindOrMake(
      {item.router, item.sequence_id}, std::chrono::steady_clock::now(), options_.max_sequences,
      options_.idle_seconds, "the draft", [] { return absl::StatusOr<Sequence>(Sequence{}); });
  if (!found.ok()) return nullptr;
  Sequence& seq = **found;
  if (seq.view == nullptr) {
    // The tree's rows and the root's: nothing else is ever pending.
    auto view = std::make_unique<KvWindowView>(draft_.config().n_layers, options_.sinks,
                                               options_.window, options_.max_tree_nodes + 2);
    seq.view = view.get();
    seq.cache = std::move(view);
    seq.ahead.reset();
    seq.held.Clear();
    seq.last = DraftResult{};
  }
  if (!seq.view->Bind(*rows, end).ok()) {
    (void)StartOver(seq);
    return nullptr;
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
  std::vector<size_t> ahead;
  for (size_t i = 0; i < items.size(); ++i) {
    const ProposeItem& item = items[i];
    ProposeOutput& out = (*outputs)[i];
    if (out.status = ValidateItem(item); !out.status.ok()) continue;
    if (item.ahead) {
      ahead.push_back(i);
      continue;
    }
    if (Sequence* known =
            sequences_.Find({item.router, item.sequence_id}, std::chrono::steady_clock::now())) {
      if (const DraftResult* drafted = TakeAhead(*known, item)) {
        out.tree = drafted->tree;
        out.q = drafted->q;
        out.from_ahead = true;
        continue;
      }
    }
    Sequence* viewed = options_.target_rows != nullptr ? TargetViewFor(item) : nullptr;
    absl::StatusOr<Sequence*> seq = viewed != nullptr ? viewed : SequenceFor(item);
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
    // Over the target's rows, the draft's row of the root stays pending.
    r.root_pending = viewed != nullptr;
    r.shape = item.shape;
    r.sampling = &item.sampling;
    r.rng = &rngs.back();
    requests.push_back(r);
    members.push_back(i);
    seqs.push_back(*seq);
  }
  if (requests.empty()) {
    DraftAhead(items, ahead, outputs, passes);
    return absl::OkStatus();
  }

  // 2. One drafted tree per sequence, one forward per tree level.
  std::vector<DraftResult> results;
  absl::Status st = drafter_.Draft(requests, &results);
  *passes = drafter_.last_passes();
  if (!st.ok()) {
    for (size_t k = 0; k < members.size(); ++k) {
      requests[k].cache->DropPending();
      // The catch-up may be half taken in: the hashes no longer say what is held.
      if (seqs[k]->view != nullptr) {
        seqs[k]->view->Unbind();
      } else if (seqs[k]->held.size() != seqs[k]->cache->committed_tokens()) {
        (void)StartOver(*seqs[k]);
      }
    }
    return st;
  }

  // 3. Per item: record the catch-up taken in, answer the tree.
  for (size_t k = 0; k < members.size(); ++k) {
    const ProposeItem& item = items[members[k]];
    ProposeOutput& out = (*outputs)[members[k]];
    Sequence& seq = *seqs[k];
    const int64_t taken = seq.cache->committed_tokens() - seq.held.size();
    if (seq.view != nullptr) {
      // Its window was the target's: nothing of its own to record.
    } else if (taken == static_cast<int64_t>(requests[k].catch_up.size())) {
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
  // The target's rows are read only during this call.
  for (Sequence* seq : seqs) {
    if (seq->view != nullptr) seq->view->Unbind();
  }
  DraftAhead(items, ahead, outputs, passes);
  return absl::OkStatus();
}

namespace {

bool SameSampling(const SamplingParams& a, const SamplingParams& b) {
  return a.temperature == b.temperature && a.top_k == b.top_k && a.top_p == b.top_p &&
         a.min_p == b.min_p && a.seed == b.seed;
}

// True when `held` covers exactly the item's history (through its last token).
bool HoldsExactly(const PrefixHashes& held, const ProposeItem& item) {
  const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
  return held.size() == end && held.at(item.start) == item.prefix_hash &&
         held.at(end) == PrefixHash(item.tokens, item.prefix_hash);
}

// The tree's most likely path: from the root, each node's first child.
std::vector<int32_t> FirstChildPath(const TokenTree& tree) {
  std::vector<int32_t> path;
  int32_t at = -1;
  for (int32_t n = 0; n < tree.size(); ++n) {
    if (tree.parents[n] == at) {
      path.push_back(n);
      at = n;
    }
  }
  return path;
}

}  // namespace

const DraftResult* DraftWorker::TakeAhead(Sequence& seq, const ProposeItem& item) {
  if (seq.ahead == nullptr || !HoldsExactly(seq.ahead->held, item) || item.shape == nullptr ||
      item.shape->parents != seq.ahead->shape.parents ||
      item.shape->ranks != seq.ahead->shape.ranks ||
      !SameSampling(item.sampling, seq.ahead->sampling)) {
    return nullptr;  // SequenceFor rolls the cache back
  }
  seq.cache->EndTentative(true);
  seq.held = std::move(seq.ahead->held);
  seq.last = std::move(seq.ahead->last);
  seq.ahead.reset();
  return &seq.last;
}

void DraftWorker::DraftAhead(std::span<const ProposeItem> items, std::span<const size_t> which,
                             std::vector<ProposeOutput>* outputs, std::vector<PassTime>* passes) {
  // Per item: the guessed path and what of it the draft never fed.
  struct Guess {
    size_t item;
    Sequence* seq;
    std::vector<int32_t> path;
    Sequence::Ahead ahead;
    std::vector<int32_t> feed;  // the path's tokens never fed (its leaf at least), then the guess
  };
  std::vector<Guess> guesses;
  auto fail = [&](Guess& g, absl::Status status) {
    g.seq->cache->EndTentative(false);
    (*outputs)[g.item].status = std::move(status);
    g.seq = nullptr;
  };
  // Commits the guessed path tentatively; `feed` gets the path's unfed tail.
  auto commit_path = [](Guess& g) -> absl::Status {
    Sequence& seq = *g.seq;
    RETURN_IF_ERROR(seq.cache->BeginTentative());
    g.ahead.held = seq.held;
    ASSIGN_OR_RETURN(const size_t fed, CommitFedPath(*seq.cache, seq.last, g.path, g.ahead.held));
    g.feed.clear();
    for (size_t j = fed; j < g.path.size(); ++j) g.feed.push_back(seq.last.tree.tokens[g.path[j]]);
    return absl::OkStatus();
  };
  for (size_t i : which) {
    const ProposeItem& item = items[i];
    ProposeOutput& out = (*outputs)[i];
    Sequence* seq =
        sequences_.Find({item.router, item.sequence_id}, std::chrono::steady_clock::now());
    std::vector<int32_t> path =
        seq != nullptr ? FirstChildPath(seq->last.tree) : std::vector<int32_t>{};
    if (seq == nullptr || seq->ahead != nullptr || path.empty() || !HoldsExactly(seq->held, item)) {
      out.status = absl::FailedPreconditionError(absl::StrFormat(
          "sequence %d: nothing to draft ahead from (drafting ahead follows a proposal from "
          "exactly this history)",
          item.sequence_id));
      continue;
    }
    Guess& g = guesses.emplace_back();
    g.item = i;
    g.seq = seq;
    g.path = std::move(path);
    g.ahead.shape = *item.shape;
    g.ahead.sampling = item.sampling;
    if (absl::Status st = commit_path(g); !st.ok()) fail(g, st);
  }
  // Round 0 guesses the token after the path (a chain of one from the path's
  // unfed tail), then puts the cache back. Round 1 commits the path again and
  // feeds its tail and the guess in one pass, exactly as the proposal after a
  // right guess would (the window a token attends to depends on how its
  // catch-up is split into passes), and drafts the tree from there.
  const TreeShape one = ChainShape(1);
  for (int round = 0; round < 2; ++round) {
    std::vector<DraftRequest> requests;
    std::vector<Guess*> members;
    std::vector<Rng> rngs;
    rngs.reserve(guesses.size());
    for (Guess& g : guesses) {
      if (g.seq == nullptr) continue;
      const ProposeItem& item = items[g.item];
      // Keyed as a proposal rooted at the last token fed would be.
      const int64_t root = g.ahead.held.size() + static_cast<int64_t>(g.feed.size()) - 1;
      rngs.push_back(Rng::ForStep(item.sampling.seed, root, kDraftDraws));
      DraftRequest& r = requests.emplace_back();
      r.cache = g.seq->cache.get();
      r.catch_up = g.feed;
      r.shape = round == 0 ? &one : &g.ahead.shape;
      r.sampling = &item.sampling;
      r.rng = &rngs.back();
      members.push_back(&g);
    }
    if (requests.empty()) return;
    std::vector<DraftResult> results;
    const absl::Status st = drafter_.Draft(requests, &results);
    passes->insert(passes->end(), drafter_.last_passes().begin(), drafter_.last_passes().end());
    for (size_t k = 0; k < members.size(); ++k) {
      Guess& g = *members[k];
      const absl::Status& status = st.ok() ? results[k].status : st;
      const int64_t fed = g.seq->cache->committed_tokens() - g.ahead.held.size();
      if (!status.ok() || fed != static_cast<int64_t>(g.feed.size()) ||
          (round == 0 && results[k].tree.size() == 0)) {
        fail(g,
             status.ok() ? absl::InternalError("the draft could not guess past the path") : status);
        continue;
      }
      if (round == 0) {
        const int32_t guess = results[k].tree.tokens[0];
        g.seq->cache->EndTentative(false);
        if (absl::Status again = commit_path(g); !again.ok()) {
          fail(g, again);
          continue;
        }
        g.feed.push_back(guess);
        continue;
      }
      g.ahead.held.Append(g.feed);
      ProposeOutput& out = (*outputs)[g.item];
      out.tree = results[k].tree;
      out.q = results[k].q;
      g.ahead.last = std::move(results[k]);
      g.seq->ahead = std::make_unique<Sequence::Ahead>(std::move(g.ahead));
    }
  }
}

}  // namespace specserve
