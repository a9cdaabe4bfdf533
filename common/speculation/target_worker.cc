#include "common/speculation/target_worker.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {

TargetWorker::TargetWorker(Model& target, TargetWorkerOptions options)
    : target_(target), options_(options) {
  max_context_ = options.max_context > 0 ? options.max_context : target.config().context_length;
  if (max_context_ <= 0) max_context_ = 2048;
}

int TargetWorker::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.size();
}

int64_t TargetWorker::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.memory_bytes();
}

void TargetWorker::Release(uint64_t router, int64_t sequence_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.Erase({router, sequence_id});
}

size_t TargetWorker::logit_floats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return logit_rows_.full_capacity();
}

int TargetWorker::ExpireIdle() {
  std::lock_guard<std::mutex> lock(mu_);
  return sequences_.ExpireIdle(options_.idle_seconds);
}

TargetRows* TargetWorker::RowsFor(const Model& draft) {
  // A sliding-window model's cache keeps only its window: rows are not positions.
  if (&draft != &target_ || target_.config().sliding_window > 0) return nullptr;
  // Whether this model's caches keep the CPU's tiled rows: a one-row probe.
  absl::StatusOr<std::unique_ptr<KvCache>> probe = target_.MakeFullCache(1);
  KvTiles tiles;
  return probe.ok() && (*probe)->Tiles(0, &tiles) ? this : nullptr;
}

const KvCache* TargetWorker::CommittedRows(uint64_t router, int64_t sequence_id, int64_t length,
                                           uint64_t hash) {
  std::lock_guard<std::mutex> lock(mu_);
  const Sequence* seq = sequences_.Find({router, sequence_id}, std::chrono::steady_clock::now());
  if (seq == nullptr || length < 0 || seq->held.size() < length || seq->held.at(length) != hash ||
      seq->cache->stored_rows() != seq->cache->committed_tokens()) {
    return nullptr;
  }
  return seq->cache.get();
}

namespace {

const TokenTree& TreeOf(const VerifyItem& item) {
  static const TokenTree kEmpty;
  return item.tree ? *item.tree : kEmpty;
}

}  // namespace

absl::StatusOr<std::unique_ptr<KvCache>> TargetWorker::NewCache() {
  // Room for the context plus a whole tree pending on top of it.
  return target_.MakeFullCache(max_context_ + options_.max_tree_nodes + 2);
}

absl::Status TargetWorker::ValidateItem(const VerifyItem& item) const {
  const int vocab = target_.config().vocab_size;
  const TokenTree& tree = TreeOf(item);
  if (item.kind == VerifyKind::kVerify) {
    const TreeLimits limits{options_.max_tree_nodes, options_.max_depth, vocab};
    if (absl::Status st = ValidateTree(tree, limits); !st.ok()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: %s", item.sequence_id, st.message()));
    }
    if (!item.sampling.greedy() && tree.size() > 0 &&
        (item.q == nullptr || item.q->size() != static_cast<size_t>(tree.size()) + 1)) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: sampled verification needs the draft distribution of every node",
          item.sequence_id));
    }
  }
  RETURN_IF_ERROR(item.sampling.Validate());
  for (int32_t t : item.tokens) {
    if (t < 0 || t >= vocab) {
      return absl::InvalidArgumentError(
          absl::StrFormat("sequence %d: history token %d is outside the vocabulary [0, %d)",
                          item.sequence_id, t, vocab));
    }
  }
  if (item.start < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("sequence %d: start %d must be >= 0", item.sequence_id, item.start));
  }
  return absl::OkStatus();
}

absl::Status TargetWorker::StartOver(Sequence& seq) {
  ASSIGN_OR_RETURN(seq.cache, NewCache());
  seq.held.Clear();
  return absl::OkStatus();
}

absl::StatusOr<TargetWorker::Sequence*> TargetWorker::SequenceFor(const VerifyItem& item,
                                                                  VerifyOutput* out) {
  ASSIGN_OR_RETURN(
      Sequence * found,
      sequences_.FindOrMake({item.router, item.sequence_id}, std::chrono::steady_clock::now(),
                            options_.max_sequences, options_.idle_seconds, "the target",
                            [&]() -> absl::StatusOr<Sequence> {
                              Sequence seq;
                              ASSIGN_OR_RETURN(seq.cache, NewCache());
                              return seq;
                            }));
  Sequence& seq = *found;
  const int64_t have = seq.cache->committed_tokens();
  const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
  // The history must reach past what we hold (a verify needs at least its root).
  if (have > end || (item.kind == VerifyKind::kVerify && have >= end)) {
    // We hold tokens the router never saw (a verification whose answer was lost):
    // start over from the router's history.
    RETURN_IF_ERROR(StartOver(seq));
    return absl::FailedPreconditionError(absl::StrFormat(
        "sequence %d: the cache ran ahead of the history (%d > %d); need history from 0",
        item.sequence_id, have, end));
  }
  if (have < item.start) {
    out->cached_tokens = have;
    return absl::FailedPreconditionError(
        absl::StrFormat("sequence %d: need history from position %d (sent %d..%d)",
                        item.sequence_id, have, item.start, end));
  }
  // start <= have <= end: what we hold must be the history's prefix, token for token.
  const bool same = seq.held.size() == have && seq.held.at(item.start) == item.prefix_hash &&
                    seq.held.at(have) ==
                        PrefixHash(item.tokens.subspan(0, static_cast<size_t>(have - item.start)),
                                   item.prefix_hash);
  if (!same) {
    RETURN_IF_ERROR(StartOver(seq));
    return absl::FailedPreconditionError(absl::StrFormat(
        "sequence %d: the cache holds another history than the one sent (prefix hash); need "
        "history from 0",
        item.sequence_id));
  }
  if (end + TreeOf(item).size() > max_context_ + options_.max_tree_nodes + 1) {
    return absl::OutOfRangeError(absl::StrFormat("sequence %d: %d tokens exceed the context of %d",
                                                 item.sequence_id, end, max_context_));
  }
  return &seq;
}

void TargetWorker::BuildPass(const VerifyItem& item, Sequence& seq, PassRows* rows) const {
  const int64_t have = seq.cache->committed_tokens();
  rows->tokens.assign(item.tokens.begin() + (have - item.start), item.tokens.end());
  const int c = static_cast<int>(rows->tokens.size());
  rows->uncached = c;
  if (item.kind != VerifyKind::kVerify) return;
  // The uncached history (a chain ending at the root), then the tree under the root.
  const TokenTree& tree = TreeOf(item);
  if (tree.size() > 0) {
    const std::vector<int32_t> depth = TreeDepths(tree.parents);
    for (int j = 0; j < c; ++j) {
      rows->parents.push_back(j - 1);
      rows->positions.push_back(static_cast<int32_t>(have + j));
    }
    for (int n = 0; n < tree.size(); ++n) {
      rows->tokens.push_back(tree.tokens[n]);
      rows->parents.push_back(tree.parents[n] < 0 ? c - 1 : c + tree.parents[n]);
      rows->positions.push_back(static_cast<int32_t>(have + c - 1 + depth[n]));
    }
  }
  // Logits at the root and every node.
  for (int r = c - 1; r < static_cast<int>(rows->tokens.size()); ++r) rows->logit_rows.push_back(r);
}

LogitRowNeeds TargetWorker::RowNeeds(const VerifyItem& item) {
  LogitRowNeeds needs;
  if (!item.sampling.greedy()) {
    needs.full = true;
  } else if (item.top_logprobs >= 0) {
    needs.top_n = std::min(item.top_logprobs, kMaxTopLogprobs);
    needs.logsumexp = true;
  }
  return needs;
}

absl::Status TargetWorker::AcceptPath(const VerifyItem& item, Sequence& seq, int uncached,
                                      int first_row, VerifyOutput* out) {
  VerifyInput in;
  in.tree = &TreeOf(item);
  in.rows = &logit_rows_;
  in.first_row = first_row;
  in.sampling = &item.sampling;
  in.draft = item.q;
  // Draws keyed by the root's position: a step verified again (after a restart)
  // draws the same numbers.
  const int64_t root = item.start + static_cast<int64_t>(item.tokens.size()) - 1;
  Rng rng = Rng::ForStep(item.sampling.seed, root, kTargetDraws);
  in.rng = &rng;
  in.acceptance_scale = options_.acceptance_scale;
  out->result = VerifyTree(in);
  if (item.top_logprobs >= 0) {
    // Row 0 (the root) predicts the first appended token, row 1 + node the next one.
    // A greedy token is its row's argmax, which the row always keeps.
    int row = 0;
    auto add = [&](int32_t token) {
      out->logprobs.push_back(logit_rows_.Logprobs(first_row + row, token,
                                                   std::min(item.top_logprobs, kMaxTopLogprobs)));
    };
    for (int32_t node : out->result.accepted) {
      add(in.tree->tokens[node]);
      row = node + 1;
    }
    add(out->result.extra_token);
  }
  // Keep the uncached history and the accepted path; drop the other nodes.
  std::vector<int32_t> keep;
  for (int j = 0; j < uncached; ++j) keep.push_back(j);
  for (int32_t node : out->result.accepted) keep.push_back(uncached + node);
  RETURN_IF_ERROR(seq.cache->Commit(keep));
  seq.held.Append(item.tokens.subspan(item.tokens.size() - uncached));
  for (int32_t node : out->result.accepted) seq.held.Append(in.tree->tokens[node]);
  return absl::OkStatus();
}

absl::Status TargetWorker::Verify(std::span<const VerifyItem> items,
                                  std::vector<VerifyOutput>* outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  outputs->assign(items.size(), VerifyOutput{});

  // 1. Per item: validate, find its cache, lay out its rows. Failures stay per item.
  std::vector<PassRows> rows(items.size());
  std::vector<Sequence*> seqs(items.size(), nullptr);
  std::vector<ForwardSequence> batch;
  std::vector<size_t> members;
  needs_.clear();
  for (size_t i = 0; i < items.size(); ++i) {
    VerifyOutput& out = (*outputs)[i];
    if (out.status = ValidateItem(items[i]); !out.status.ok()) continue;
    absl::StatusOr<Sequence*> seq = SequenceFor(items[i], &out);
    if (!seq.ok()) {
      out.status = seq.status();
      continue;
    }
    seqs[i] = *seq;
    BuildPass(items[i], **seq, &rows[i]);
    if (rows[i].tokens.empty()) {  // a prefill that adds nothing
      out.cached_tokens = (*seq)->cache->committed_tokens();
      continue;
    }
    ForwardSequence fs;
    fs.cache = (*seq)->cache.get();
    fs.tokens = rows[i].tokens;
    fs.parents = rows[i].parents;
    fs.positions = rows[i].positions;
    fs.logit_rows = rows[i].logit_rows;
    batch.push_back(fs);
    members.push_back(i);
    needs_.insert(needs_.end(), rows[i].logit_rows.size(), RowNeeds(items[i]));
  }
  if (batch.empty()) return absl::OkStatus();

  // 2. One forward for the whole batch, keeping of each logit row what its item needs.
  logit_rows_.Reset(needs_, target_.config().vocab_size);
  if (absl::Status st = target_.ForwardReduced(batch, &logit_rows_); !st.ok()) {
    for (const ForwardSequence& fs : batch) fs.cache->DropPending();
    return st;
  }

  // 3. Per item: keep a prefill's rows, or verify the tree and keep its accepted path.
  int logit_row = 0;
  for (size_t i : members) {
    VerifyOutput& out = (*outputs)[i];
    Sequence& seq = *seqs[i];
    if (items[i].kind == VerifyKind::kPrefill) {
      seq.cache->CommitAll();
      seq.held.Append(rows[i].tokens);
    } else {
      out.status = AcceptPath(items[i], seq, rows[i].uncached, logit_row, &out);
      logit_row += static_cast<int>(rows[i].logit_rows.size());
    }
    // A commit that failed half-way leaves hashes and cache apart: start over.
    if (seq.held.size() != seq.cache->committed_tokens()) {
      if (absl::Status st = StartOver(seq); !st.ok()) out.status = st;
    }
    out.cached_tokens = seq.cache->committed_tokens();
  }
  return absl::OkStatus();
}

}  // namespace specserve
