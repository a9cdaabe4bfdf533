#include "common/spec/spec_engine.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/spec/verifier.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double WeightBytes(const LoadedModel& m) {
  double bytes = m.weights.output.bytes();
  for (const LayerWeights& l : m.weights.layers) {
    for (const WeightTensor* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) {
      bytes += w->bytes();
    }
  }
  return bytes;
}

double FlopsPerToken(const LoadedModel& m) {
  double params = static_cast<double>(m.weights.output.elements());
  for (const LayerWeights& l : m.weights.layers) {
    for (const WeightTensor* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) {
      params += w->elements();
    }
  }
  return 2.0 * params;
}

}  // namespace

absl::Status CheckSameVocabulary(const LoadedModel& target, const LoadedModel& draft) {
  const Vocabulary& a = target.vocab;
  const Vocabulary& b = draft.vocab;
  if (a.size() != b.size() || target.config.vocab_size != draft.config.vocab_size) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "the draft's vocabulary has %d tokens, the target's %d: a draft must share the "
        "target's tokenizer",
        draft.config.vocab_size, target.config.vocab_size));
  }
  for (int i = 0; i < a.size(); ++i) {
    if (a.pieces[i] != b.pieces[i]) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "the draft's vocabulary differs from the target's at token %d ('%s' vs '%s')", i,
          b.pieces[i], a.pieces[i]));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SpecEngine>> SpecEngine::Create(LlamaModel& target,
                                                               LlamaModel& draft,
                                                               SpecEngineOptions options) {
  if (&draft != &target) RETURN_IF_ERROR(CheckSameVocabulary(target.model(), draft.model()));
  if (options.sinks < 0 || options.window < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "draft window: sinks %d must be >= 0 and window %d >= 1", options.sinks, options.window));
  }
  const SpecConfig& s = options.spec;
  if (s.max_nodes < 1 || s.max_nodes > 256 || s.max_depth < 1 || s.max_depth > 64) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree limits: max nodes %d must be in [1, 256], max depth %d in [1, 64]", s.max_nodes,
        s.max_depth));
  }
  return std::unique_ptr<SpecEngine>(new SpecEngine(target, draft, options));
}

SpecEngine::SpecEngine(LlamaModel& target, LlamaModel& draft, SpecEngineOptions options)
    : target_(target),
      draft_(draft),
      options_(options),
      drafter_(draft, options.window, options.max_candidates) {
  max_context_ = options.max_context > 0 ? options.max_context : target.config().context_length;
  if (max_context_ <= 0) max_context_ = 2048;
  CostPrior prior;
  prior.bandwidth_bytes_per_second =
      options.bandwidth_bytes_per_second > 0 ? options.bandwidth_bytes_per_second : 10e9;
  prior.flops_per_second = options.flops_per_second > 0 ? options.flops_per_second : 50e9;
  prior.target_weight_bytes = WeightBytes(target.model());
  prior.draft_weight_bytes = WeightBytes(draft.model());
  prior.target_kv_bytes_per_token = 2.0 * sizeof(float) * target.config().n_layers * target.config().kv_dim();
  prior.draft_kv_bytes_per_token = 2.0 * sizeof(float) * draft.config().n_layers * draft.config().kv_dim();
  prior.target_flops_per_token = FlopsPerToken(target.model());
  prior.draft_flops_per_token = FlopsPerToken(draft.model());
  prior.draft_window_tokens = options.sinks + options.window;
  planner_ = std::make_unique<Planner>(options.spec, prior);
}

absl::StatusOr<int> SpecEngine::Add(const GenerationRequest& request) {
  if (request.prompt.empty()) return absl::InvalidArgumentError("the prompt has no tokens");
  const int vocab = target_.config().vocab_size;
  for (size_t i = 0; i < request.prompt.size(); ++i) {
    if (request.prompt[i] < 0 || request.prompt[i] >= vocab) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "prompt token %d: id %d is outside the vocabulary [0, %d)", i, request.prompt[i], vocab));
    }
  }
  if (static_cast<int>(request.prompt.size()) >= max_context_) {
    return absl::OutOfRangeError(absl::StrFormat(
        "the prompt has %d tokens; the context holds at most %d (prompt + generated)",
        request.prompt.size(), max_context_));
  }
  if (request.max_new_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("max_new_tokens %d must be >= 0", request.max_new_tokens));
  }
  RETURN_IF_ERROR(request.sampling.Validate());
  auto seq = std::make_unique<Sequence>();
  seq->request = request;
  seq->state.tokens = request.prompt;
  seq->state.prompt_tokens = static_cast<int>(request.prompt.size());
  // Room for the verify pass: the pending token and a full tree beyond the context.
  seq->target_cache =
      MakeFullKvCache(target_.kv_shape(), max_context_ + options_.spec.max_nodes + 2);
  seq->draft_cache = MakeWindowKvCache(draft_.kv_shape(), options_.sinks, options_.window,
                                       options_.window + options_.spec.max_nodes + 8);
  seq->rng.Seed(request.sampling.seed);
  if (request.max_new_tokens == 0) seq->state.finish = FinishReason::kLength;
  const int id = next_id_++;
  sequences_[id] = std::move(seq);
  return id;
}

bool SpecEngine::HasLive() const { return live_count() > 0; }

int SpecEngine::live_count() const {
  int n = 0;
  for (const auto& [id, seq] : sequences_) n += seq->state.finished() ? 0 : 1;
  return n;
}

void SpecEngine::Cancel(int id) {
  auto it = sequences_.find(id);
  if (it != sequences_.end() && !it->second->state.finished()) {
    it->second->state.finish = FinishReason::kCancelled;
  }
}

void SpecEngine::Append(Sequence& seq, std::span<const int32_t> tokens) {
  SequenceState& st = seq.state;
  for (int32_t token : tokens) {
    st.tokens.push_back(token);
    if (seq.request.stop_at_eos && token == target_.model().vocab.eos_id) {
      st.finish = FinishReason::kEos;
    } else if (st.generated() >= seq.request.max_new_tokens) {
      st.finish = FinishReason::kLength;
    } else if (static_cast<int>(st.tokens.size()) >= max_context_) {
      st.finish = FinishReason::kContext;
    }
    if (st.finished()) return;  // tokens past the stop are dropped, as plain decoding would
  }
}

absl::Status SpecEngine::Step() {
  last_ = StepStats{};
  const int vocab = target_.config().vocab_size;

  // Who prefills (the target has not seen all but the last token) and who decodes.
  std::vector<Sequence*> prefilling, decoding;
  for (auto& [id, seq] : sequences_) {
    if (seq->state.finished()) continue;
    const int64_t uncached =
        static_cast<int64_t>(seq->state.tokens.size()) - seq->target_cache->committed_tokens();
    (uncached > 1 ? prefilling : decoding).push_back(seq.get());
  }
  if (prefilling.empty() && decoding.empty()) return absl::OkStatus();

  // The plan for this step's decoding sequences; sequences too close to their
  // context limit for the tree decode plainly.
  double mean_context = 0;
  for (Sequence* seq : decoding) mean_context += static_cast<double>(seq->state.tokens.size());
  if (!decoding.empty()) mean_context /= decoding.size();
  const StepClass step_class = ClassOf(static_cast<int>(decoding.size()), mean_context);
  Plan plan;
  if (!decoding.empty()) plan = planner_->Choose(static_cast<int>(decoding.size()), mean_context);
  std::vector<bool> speculate(decoding.size(), false);
  std::vector<DraftRequest> draft_requests;
  std::vector<size_t> drafted;
  for (size_t i = 0; i < decoding.size() && plan.nodes > 0; ++i) {
    Sequence* seq = decoding[i];
    if (static_cast<int>(seq->state.tokens.size()) + plan.nodes + 1 > max_context_) continue;
    speculate[i] = true;
    DraftRequest r;
    r.cache = seq->draft_cache.get();
    r.catch_up = std::span<const int32_t>(seq->state.tokens)
                     .subspan(static_cast<size_t>(seq->draft_cache->committed_tokens()));
    r.shape = &plan.shape;
    r.sampling = &seq->request.sampling;
    r.rng = &seq->rng;
    draft_requests.push_back(r);
    drafted.push_back(i);
  }

  // 1. Draft.
  std::vector<DraftResult> drafts;
  if (!draft_requests.empty()) {
    const auto start = Clock::now();
    RETURN_IF_ERROR(drafter_.Draft(draft_requests, &drafts));
    last_.draft_seconds = SecondsSince(start);
    for (const TreeDrafter::PassTime& pass : drafter_.last_passes()) {
      planner_->RecordDraftPass(step_class, pass.tokens_per_sequence, pass.seconds);
    }
  }
  std::vector<const DraftResult*> draft_of(decoding.size(), nullptr);
  for (size_t k = 0; k < drafted.size(); ++k) draft_of[drafted[k]] = &drafts[k];

  // 2. One target pass: prefill chunks, and for each decoding sequence its
  // uncached history (usually the one pending token) followed by its tree.
  std::vector<ForwardSequence> batch;
  std::vector<std::vector<int32_t>> tokens(decoding.size()), parents(decoding.size()),
      positions(decoding.size()), rows(decoding.size());
  for (size_t i = 0; i < decoding.size(); ++i) {
    Sequence* seq = decoding[i];
    const int64_t committed = seq->target_cache->committed_tokens();
    tokens[i].assign(seq->state.tokens.begin() + committed, seq->state.tokens.end());
    const int c = static_cast<int>(tokens[i].size());  // >= 1; the last is the tree's root
    ForwardSequence fs;
    fs.cache = seq->target_cache.get();
    if (const DraftResult* d = draft_of[i]; d != nullptr && d->tree.size() > 0) {
      const std::vector<int32_t> depth = TreeDepths(d->tree.parents);
      for (int j = 0; j < c; ++j) {
        parents[i].push_back(j - 1);
        positions[i].push_back(static_cast<int32_t>(committed + j));
      }
      for (int n = 0; n < d->tree.size(); ++n) {
        tokens[i].push_back(d->tree.tokens[n]);
        parents[i].push_back(d->tree.parents[n] < 0 ? c - 1 : c + d->tree.parents[n]);
        positions[i].push_back(static_cast<int32_t>(committed + c - 1 + depth[n]));
      }
      fs.parents = parents[i];
      fs.positions = positions[i];
    }
    for (int r = c - 1; r < static_cast<int>(tokens[i].size()); ++r) rows[i].push_back(r);
    fs.tokens = tokens[i];
    fs.logit_rows = rows[i];
    batch.push_back(fs);
  }
  int budget = options_.max_tokens_per_step;
  std::vector<Sequence*> prefilled;
  for (Sequence* seq : prefilling) {
    const int64_t committed = seq->target_cache->committed_tokens();
    const int64_t want = static_cast<int64_t>(seq->state.tokens.size()) - 1 - committed;
    const int n = static_cast<int>(std::min<int64_t>(want, budget));
    if (n <= 0) break;
    budget -= n;
    ForwardSequence fs;
    fs.cache = seq->target_cache.get();
    fs.tokens = std::span<const int32_t>(seq->state.tokens).subspan(committed, n);
    batch.push_back(fs);
    prefilled.push_back(seq);
    last_.prefill_tokens += n;
  }
  const auto verify_start = Clock::now();
  RETURN_IF_ERROR(target_.Forward(batch, &logits_));
  last_.verify_seconds = SecondsSince(verify_start);
  for (Sequence* seq : prefilled) seq->target_cache->CommitAll();
  // The draft's sinks are fed while the target prefills (the rest of a long prompt
  // reaches the draft as a catch-up that keeps only the last W tokens).
  std::vector<ForwardSequence> sink_batch;
  for (Sequence* seq : prefilled) {
    const int64_t have = seq->draft_cache->committed_tokens();
    const int64_t sinks_end =
        std::min<int64_t>(options_.sinks, static_cast<int64_t>(seq->state.tokens.size()) - 1);
    if (have < sinks_end) {
      ForwardSequence fs;
      fs.cache = seq->draft_cache.get();
      fs.tokens = std::span<const int32_t>(seq->state.tokens).subspan(have, sinks_end - have);
      sink_batch.push_back(fs);
    }
  }
  if (!sink_batch.empty()) {
    std::vector<float> unused;
    RETURN_IF_ERROR(draft_.Forward(sink_batch, &unused));
    for (const ForwardSequence& fs : sink_batch) fs.cache->CommitAll();
  }
  if (prefilled.empty() && !decoding.empty()) {
    const int per_sequence = static_cast<int>(tokens.empty() ? 1 : tokens[0].size());
    planner_->RecordVerifyPass(step_class, per_sequence, last_.verify_seconds);
  }

  // 3. Verify, commit the accepted paths on both sides, extend the histories.
  last_.batch = static_cast<int>(decoding.size());
  last_.tree_nodes = plan.nodes;
  last_.tree_depth = plan.depth;
  last_.speculated = !drafted.empty();
  last_.exploring = plan.exploring;
  last_.hits_by_rank.assign(planner_->acceptance().k(), 0);
  last_.visits_by_rank.assign(planner_->acceptance().k(), 0);
  size_t logit_row = 0;
  for (size_t i = 0; i < decoding.size(); ++i) {
    Sequence* seq = decoding[i];
    const int c = static_cast<int>(tokens[i].size()) - (draft_of[i] ? draft_of[i]->tree.size() : 0);
    static const TokenTree kEmpty;
    const TokenTree& tree = draft_of[i] ? draft_of[i]->tree : kEmpty;
    VerifyInput in;
    in.tree = &tree;
    in.logits = std::span<const float>(logits_.data() + logit_row * vocab,
                                       static_cast<size_t>(tree.size() + 1) * vocab);
    in.vocab_size = vocab;
    in.sampling = &seq->request.sampling;
    in.draft = draft_of[i] ? &draft_of[i]->q : nullptr;
    in.rng = &seq->rng;
    in.acceptance_scale = options_.verifier_acceptance_scale;
    const VerifyResult result = VerifyTree(in);
    logit_row += tree.size() + 1;

    std::vector<int32_t> keep;
    for (int j = 0; j < c; ++j) keep.push_back(j);
    for (int32_t node : result.accepted) keep.push_back(c + node);
    RETURN_IF_ERROR(seq->target_cache->Commit(keep));
    if (draft_of[i]) {
      RETURN_IF_ERROR(
          TreeDrafter::CommitAccepted(*seq->draft_cache, *draft_of[i], result.accepted));
      planner_->RecordAcceptance(result);
      for (size_t v = 0; v < result.visited_children.size(); ++v) {
        for (int r = 0; r < std::min<int>(result.visited_children[v], last_.visits_by_rank.size());
             ++r) {
          ++last_.visits_by_rank[r];
        }
        const int rank = result.accepted_rank[v];
        if (rank >= 0 && rank < static_cast<int>(last_.hits_by_rank.size())) {
          ++last_.hits_by_rank[rank];
        }
      }
    }
    std::vector<int32_t> appended;
    for (int32_t node : result.accepted) appended.push_back(tree.tokens[node]);
    appended.push_back(result.extra_token);
    const size_t before = seq->state.tokens.size();
    Append(*seq, appended);
    const int64_t gained = static_cast<int64_t>(seq->state.tokens.size() - before);
    last_.accepted_tokens += static_cast<int64_t>(result.accepted.size());
    accepted_total_ += static_cast<int64_t>(result.accepted.size());
    last_.generated_tokens += gained;
    decoded_tokens_ += gained;
    ++sequence_steps_;
  }
  if (!decoding.empty()) {
    decode_seconds_ += last_.draft_seconds + last_.verify_seconds;
  } else {
    prefill_seconds_ += last_.verify_seconds;
  }
  prefill_total_ += last_.prefill_tokens;
  return absl::OkStatus();
}

}  // namespace specserve
