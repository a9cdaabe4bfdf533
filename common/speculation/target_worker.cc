#include "common/speculation/target_worker.h"

#include "absl/strings/str_format.h"

namespace specserve {

TargetWorker::TargetWorker(LlamaModel& target, TargetWorkerOptions options)
    : target_(target), options_(options) {
  max_context_ = options.max_context > 0 ? options.max_context : target.config().context_length;
  if (max_context_ <= 0) max_context_ = 2048;
}

int TargetWorker::sequences() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(sequences_.size());
}

int64_t TargetWorker::kv_bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t bytes = 0;
  for (const auto& [id, seq] : sequences_) bytes += seq.cache->memory_bytes();
  return bytes;
}

void TargetWorker::Release(int64_t sequence_id) {
  std::lock_guard<std::mutex> lock(mu_);
  sequences_.erase(sequence_id);
}

absl::Status TargetWorker::Verify(std::span<const VerifyItem> items,
                                  std::vector<VerifyOutput>* outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  outputs->assign(items.size(), VerifyOutput{});
  const int vocab = target_.config().vocab_size;
  const TreeLimits limits{options_.max_tree_nodes, options_.max_depth, vocab};

  std::vector<ForwardSequence> batch;
  std::vector<size_t> members;
  std::vector<std::vector<int32_t>> tokens(items.size()), parents(items.size()),
      positions(items.size()), rows(items.size());
  std::vector<int> uncached(items.size(), 0);
  for (size_t i = 0; i < items.size(); ++i) {
    const VerifyItem& item = items[i];
    VerifyOutput& out = (*outputs)[i];
    static const TokenTree kEmpty;
    const TokenTree& tree = item.tree ? *item.tree : kEmpty;
    if (item.kind == VerifyKind::kVerify) {
      if (absl::Status st = ValidateTree(tree, limits); !st.ok()) {
        out.status = absl::InvalidArgumentError(
            absl::StrFormat("sequence %d: %s", item.sequence_id, st.message()));
        continue;
      }
      if (!item.sampling.greedy() && tree.size() > 0 &&
          (item.q == nullptr || item.q->size() != static_cast<size_t>(tree.size()) + 1)) {
        out.status = absl::InvalidArgumentError(absl::StrFormat(
            "sequence %d: sampled verification needs the draft distribution of every node",
            item.sequence_id));
        continue;
      }
    }
    if (absl::Status st = item.sampling.Validate(); !st.ok()) {
      out.status = st;
      continue;
    }
    bool bad_token = false;
    for (int32_t t : item.tokens) bad_token |= t < 0 || t >= vocab;
    if (bad_token || item.start < 0) {
      out.status = absl::InvalidArgumentError(absl::StrFormat(
          "sequence %d: history tokens must be in [0, %d) and start >= 0", item.sequence_id,
          vocab));
      continue;
    }
    auto it = sequences_.find(item.sequence_id);
    if (it == sequences_.end()) {
      if (static_cast<int>(sequences_.size()) >= options_.max_sequences) {
        out.status = absl::ResourceExhaustedError(absl::StrFormat(
            "the target holds %d sequences, its limit", options_.max_sequences));
        continue;
      }
      Sequence seq;
      seq.cache = MakeFullKvCache(target_.kv_shape(), max_context_ + options_.max_tree_nodes + 2);
      seq.rng.Seed(item.sampling.seed);
      it = sequences_.emplace(item.sequence_id, std::move(seq)).first;
    }
    Sequence& seq = it->second;
    const int64_t have = seq.cache->committed_tokens();
    const int64_t end = item.start + static_cast<int64_t>(item.tokens.size());
    const bool verify = item.kind == VerifyKind::kVerify;
    // The history must reach past what we hold (a verify needs at least its root).
    if (have > end || (verify && have >= end)) {
      // We hold tokens the router never saw (a verification whose answer was lost):
      // start over from the router's history.
      seq.cache = MakeFullKvCache(target_.kv_shape(), max_context_ + options_.max_tree_nodes + 2);
      out.status = absl::FailedPreconditionError(absl::StrFormat(
          "sequence %d: the cache ran ahead of the history (%d > %d); need history from 0",
          item.sequence_id, have, end));
      continue;
    }
    if (have < item.start) {
      out.status = absl::FailedPreconditionError(absl::StrFormat(
          "sequence %d: need history from position %d (sent %d..%d)", item.sequence_id, have,
          item.start, end));
      out.cached_tokens = have;
      continue;
    }
    if (end + tree.size() > max_context_ + options_.max_tree_nodes + 1) {
      out.status = absl::OutOfRangeError(absl::StrFormat(
          "sequence %d: %d tokens exceed the context of %d", item.sequence_id, end, max_context_));
      continue;
    }
    tokens[i].assign(item.tokens.begin() + (have - item.start), item.tokens.end());
    const int c = static_cast<int>(tokens[i].size());
    uncached[i] = c;
    ForwardSequence fs;
    fs.cache = seq.cache.get();
    if (verify) {
      if (tree.size() > 0) {
        const std::vector<int32_t> depth = TreeDepths(tree.parents);
        for (int j = 0; j < c; ++j) {
          parents[i].push_back(j - 1);
          positions[i].push_back(static_cast<int32_t>(have + j));
        }
        for (int n = 0; n < tree.size(); ++n) {
          tokens[i].push_back(tree.tokens[n]);
          parents[i].push_back(tree.parents[n] < 0 ? c - 1 : c + tree.parents[n]);
          positions[i].push_back(static_cast<int32_t>(have + c - 1 + depth[n]));
        }
        fs.parents = parents[i];
        fs.positions = positions[i];
      }
      for (int r = c - 1; r < static_cast<int>(tokens[i].size()); ++r) rows[i].push_back(r);
      fs.logit_rows = rows[i];
    }
    fs.tokens = tokens[i];
    if (fs.tokens.empty()) {  // a prefill that adds nothing
      out.cached_tokens = have;
      continue;
    }
    batch.push_back(fs);
    members.push_back(i);
  }
  if (batch.empty()) return absl::OkStatus();
  if (absl::Status st = target_.Forward(batch, &logits_); !st.ok()) {
    for (const ForwardSequence& fs : batch) fs.cache->DropPending();
    return st;
  }

  size_t logit_row = 0;
  for (size_t b = 0; b < members.size(); ++b) {
    const size_t i = members[b];
    const VerifyItem& item = items[i];
    VerifyOutput& out = (*outputs)[i];
    Sequence& seq = sequences_[item.sequence_id];
    if (item.kind == VerifyKind::kPrefill) {
      seq.cache->CommitAll();
      out.cached_tokens = seq.cache->committed_tokens();
      continue;
    }
    static const TokenTree kEmpty;
    const TokenTree& tree = item.tree ? *item.tree : kEmpty;
    VerifyInput in;
    in.tree = &tree;
    in.logits = std::span<const float>(logits_.data() + logit_row * vocab,
                                       static_cast<size_t>(tree.size() + 1) * vocab);
    in.vocab_size = vocab;
    in.sampling = &item.sampling;
    in.draft = item.q;
    in.rng = &seq.rng;
    in.acceptance_scale = options_.acceptance_scale;
    out.result = VerifyTree(in);
    if (item.top_logprobs >= 0) {
      // Row 0 (the root) predicts the first appended token, row 1 + node the next one.
      int row = 0;
      auto add = [&](int32_t token) {
        out.logprobs.push_back(ComputeLogprobs(
            in.logits.subspan(static_cast<size_t>(row) * vocab, vocab), token,
            std::min(item.top_logprobs, kMaxTopLogprobs)));
      };
      for (int32_t node : out.result.accepted) {
        add(tree.tokens[node]);
        row = node + 1;
      }
      add(out.result.extra_token);
    }
    logit_row += tree.size() + 1;
    std::vector<int32_t> keep;
    for (int j = 0; j < uncached[i]; ++j) keep.push_back(j);
    for (int32_t node : out.result.accepted) keep.push_back(uncached[i] + node);
    out.status = seq.cache->Commit(keep);
    out.cached_tokens = seq.cache->committed_tokens();
  }
  return absl::OkStatus();
}

}  // namespace specserve
