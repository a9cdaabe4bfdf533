#include "common/speculation/spec_engine.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Bytes and multiply-adds of the matrices a pass reads (norms are negligible).
void MatrixTotals(const LoadedModel& m, double* bytes, double* params) {
  *bytes = static_cast<double>(m.weights.output.bytes());
  *params = static_cast<double>(m.weights.output.elements());
  for (const LayerWeights& l : m.weights.layers) {
    for (const WeightTensor* w : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_down, &l.w_up}) {
      *bytes += static_cast<double>(w->bytes());
      *params += static_cast<double>(w->elements());
    }
  }
}

}  // namespace

ModelFacts FactsOf(const LoadedModel& target, const LoadedModel& draft, int sinks, int window) {
  ModelFacts f;
  f.vocab_size = target.config.vocab_size;
  f.eos_id = target.vocab.eos_id;
  f.context_length = target.config.context_length;
  double params = 0;
  MatrixTotals(target, &f.prior.target_weight_bytes, &params);
  f.prior.target_flops_per_token = 2 * params;
  MatrixTotals(draft, &f.prior.draft_weight_bytes, &params);
  f.prior.draft_flops_per_token = 2 * params;
  f.prior.target_kv_bytes_per_token =
      2.0 * sizeof(float) * target.config.n_layers * target.config.kv_dim();
  f.prior.draft_kv_bytes_per_token =
      2.0 * sizeof(float) * draft.config.n_layers * draft.config.kv_dim();
  f.prior.draft_window_tokens = sinks + window;
  return f;
}

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
  DraftWorkerOptions d;
  d.sinks = options.sinks;
  d.window = options.window;
  d.max_candidates = options.max_candidates;
  d.max_tree_nodes = std::max(options.spec.max_nodes, options.spec.tree_nodes) + 4;
  TargetWorkerOptions t;
  t.max_context = options.max_context;
  t.max_tree_nodes = d.max_tree_nodes;
  t.acceptance_scale = options.verifier_acceptance_scale;
  auto draft_worker = std::make_unique<DraftWorker>(draft, d);
  auto target_worker = std::make_unique<TargetWorker>(target, t);
  ASSIGN_OR_RETURN(std::unique_ptr<SpecEngine> engine,
                   Create(draft_worker.get(), *target_worker,
                          FactsOf(target.model(), draft.model(), options.sinks, options.window),
                          options));
  engine->owned_draft_ = std::move(draft_worker);
  engine->owned_target_ = std::move(target_worker);
  return engine;
}

absl::StatusOr<std::unique_ptr<SpecEngine>> SpecEngine::Create(DraftBackend* draft,
                                                               TargetBackend& target,
                                                               ModelFacts facts,
                                                               SpecEngineOptions options) {
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
  if (facts.vocab_size <= 0) return absl::InvalidArgumentError("the model has no vocabulary");
  return std::unique_ptr<SpecEngine>(new SpecEngine(draft, target, facts, options));
}

SpecEngine::SpecEngine(DraftBackend* draft, TargetBackend& target, ModelFacts facts,
                       SpecEngineOptions options)
    : draft_(draft), target_(target), facts_(facts), options_(options) {
  max_context_ = options.max_context > 0 ? options.max_context : facts.context_length;
  if (max_context_ <= 0) max_context_ = 2048;
  CostPrior prior = facts.prior;
  prior.bandwidth_bytes_per_second =
      options.bandwidth_bytes_per_second > 0 ? options.bandwidth_bytes_per_second : 10e9;
  prior.flops_per_second = options.flops_per_second > 0 ? options.flops_per_second : 50e9;
  SpecConfig spec = options.spec;
  if (draft_ == nullptr) spec.mode = SpecMode::kOff;
  planner_ = std::make_unique<Planner>(spec, prior);
}

absl::StatusOr<int> SpecEngine::Add(const GenerationRequest& request) {
  RETURN_IF_ERROR(ValidateGenerationRequest(request, facts_.vocab_size, max_context_));
  auto seq = std::make_unique<Sequence>();
  seq->request = request;
  seq->state.tokens = request.prompt;
  seq->state.prompt_tokens = static_cast<int>(request.prompt.size());
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

void SpecEngine::Remove(int id) {
  if (sequences_.erase(id) == 0) return;
  target_.Release(id);
  if (draft_ != nullptr) draft_->Release(id);
}

void SpecEngine::Cancel(int id) {
  auto it = sequences_.find(id);
  if (it != sequences_.end() && !it->second->state.finished()) {
    it->second->state.finish = FinishReason::kCancelled;
    target_.Release(id);
    if (draft_ != nullptr) draft_->Release(id);
  }
}

void SpecEngine::ForgetTargetState() {
  for (auto& [id, seq] : sequences_) seq->target_from = 0;
}

void SpecEngine::Append(Sequence& seq, std::span<const int32_t> tokens) {
  for (int32_t token : tokens) {
    // Tokens past the stop are dropped, as plain decoding would never produce them.
    if (AppendGeneratedToken(seq.request, token, facts_.eos_id, max_context_, &seq.state)) return;
  }
}

absl::Status SpecEngine::Step() {
  last_ = StepStats{};
  // Who prefills (the target lacks more than the last token) and who decodes.
  std::vector<std::pair<int, Sequence*>> prefilling, decoding;
  for (auto& [id, seq] : sequences_) {
    if (seq->state.finished()) continue;
    const int64_t uncached = static_cast<int64_t>(seq->state.tokens.size()) - seq->target_from;
    (uncached > 1 ? prefilling : decoding).emplace_back(id, seq.get());
  }
  if (prefilling.empty() && decoding.empty()) return absl::OkStatus();

  // The plan; sequences too close to their context limit for the tree decode plainly.
  double mean_context = 0;
  for (auto& [id, seq] : decoding) mean_context += static_cast<double>(seq->state.tokens.size());
  if (!decoding.empty()) mean_context /= decoding.size();
  last_.mean_context = mean_context;
  const StepClass step_class = ClassOf(static_cast<int>(decoding.size()), mean_context);
  Plan plan;
  if (!decoding.empty()) plan = planner_->Choose(static_cast<int>(decoding.size()), mean_context);

  // 1. Propose: one call for every sequence that speculates this step.
  std::vector<ProposeItem> proposals;
  std::vector<size_t> proposed;  // index into decoding
  for (size_t i = 0; i < decoding.size() && plan.nodes > 0 && draft_ != nullptr; ++i) {
    auto [id, seq] = decoding[i];
    if (static_cast<int>(seq->state.tokens.size()) + plan.nodes + 1 > max_context_) continue;
    ProposeItem item;
    item.sequence_id = id;
    item.start = seq->draft_from;
    item.tokens = std::span<const int32_t>(seq->state.tokens).subspan(seq->draft_from);
    item.previous_accepted = seq->previous_accepted;
    item.shape = &plan.shape;
    item.sampling = seq->request.sampling;
    proposals.push_back(item);
    proposed.push_back(i);
  }
  std::vector<ProposeOutput> drafts;
  std::vector<const ProposeOutput*> draft_of(decoding.size(), nullptr);
  if (!proposals.empty()) {
    const auto start = Clock::now();
    std::vector<PassTime> passes;
    absl::Status st = draft_->Propose(proposals, &drafts, &passes);
    last_.draft_seconds = SecondsSince(start);
    if (!st.ok()) {
      last_.draft_failed = true;  // decode plainly this step; the draft catches up later
      for (size_t k = 0; k < proposed.size(); ++k) {
        decoding[proposed[k]].second->previous_accepted.clear();
      }
    } else {
      for (const PassTime& pass : passes) {
        planner_->RecordDraftPass(step_class, pass.tokens_per_sequence, pass.seconds);
      }
      for (size_t k = 0; k < proposed.size(); ++k) {
        Sequence* seq = decoding[proposed[k]].second;
        const ProposeOutput& out = drafts[k];
        seq->previous_accepted.clear();
        if (out.status.ok()) {
          draft_of[proposed[k]] = &out;
          seq->draft_from = static_cast<int64_t>(seq->state.tokens.size());
        } else if (absl::IsFailedPrecondition(out.status)) {
          // The draft lost its state (restart) or is elsewhere: resend from the start.
          seq->draft_from = 0;
        }
      }
    }
  }
  // Sequences not drafted this step: their draft pending rows get dropped next time.
  for (size_t i = 0; i < decoding.size(); ++i) {
    if (draft_of[i] == nullptr) decoding[i].second->previous_accepted.clear();
  }

  // 2. Verify: one target call with every decoding sequence and prefill chunks.
  std::vector<VerifyItem> items;
  for (size_t i = 0; i < decoding.size(); ++i) {
    auto [id, seq] = decoding[i];
    VerifyItem item;
    item.sequence_id = id;
    item.kind = VerifyKind::kVerify;
    item.start = seq->target_from;
    item.tokens = std::span<const int32_t>(seq->state.tokens).subspan(seq->target_from);
    item.tree = draft_of[i] ? &draft_of[i]->tree : nullptr;
    item.q = draft_of[i] ? &draft_of[i]->q : nullptr;
    item.sampling = seq->request.sampling;
    item.top_logprobs = seq->request.logprobs;
    items.push_back(item);
  }
  int budget = options_.max_tokens_per_step;
  std::vector<Sequence*> prefilled;
  for (auto [id, seq] : prefilling) {
    const int64_t want = static_cast<int64_t>(seq->state.tokens.size()) - 1 - seq->target_from;
    const int n = static_cast<int>(std::min<int64_t>(want, budget));
    if (n <= 0) break;
    budget -= n;
    VerifyItem item;
    item.sequence_id = id;
    item.kind = VerifyKind::kPrefill;
    item.start = seq->target_from;
    item.tokens = std::span<const int32_t>(seq->state.tokens).subspan(seq->target_from, n);
    item.sampling = seq->request.sampling;
    items.push_back(item);
    prefilled.push_back(seq);
    last_.prefill_tokens += n;
  }
  std::vector<VerifyOutput> verified;
  const auto verify_start = Clock::now();
  RETURN_IF_ERROR(target_.Verify(items, &verified));
  last_.verify_seconds = SecondsSince(verify_start);
  if (prefilled.empty() && !decoding.empty()) {
    int tokens = 0;
    for (size_t i = 0; i < decoding.size(); ++i) {
      tokens += 1 + (draft_of[i] ? draft_of[i]->tree.size() : 0);
    }
    planner_->RecordVerifyPass(step_class, (tokens + static_cast<int>(decoding.size()) - 1) /
                                               static_cast<int>(decoding.size()),
                               last_.verify_seconds);
  }
  for (size_t k = 0; k < prefilled.size(); ++k) {
    const VerifyOutput& out = verified[decoding.size() + k];
    prefilled[k]->target_from = out.status.ok() ? out.cached_tokens
                                : absl::IsFailedPrecondition(out.status) ? 0
                                                                         : prefilled[k]->target_from;
  }

  // 3. Extend the histories with what each verification accepted.
  last_.batch = static_cast<int>(decoding.size());
  last_.tree_nodes = plan.nodes;
  last_.tree_depth = plan.depth;
  last_.exploring = plan.exploring;
  last_.hits_by_rank.assign(planner_->acceptance().k(), 0);
  last_.visits_by_rank.assign(planner_->acceptance().k(), 0);
  for (size_t i = 0; i < decoding.size(); ++i) {
    auto [id, seq] = decoding[i];
    const VerifyOutput& out = verified[i];
    if (!out.status.ok()) {
      if (absl::IsFailedPrecondition(out.status)) {
        seq->target_from = 0;  // the target restarted: re-prefill from the history
        seq->previous_accepted.clear();
        continue;
      }
      // This sequence alone fails; the rest of the batch goes on.
      seq->state.finish = FinishReason::kError;
      seq->state.error = std::string(out.status.message());
      last_.finished.push_back(id);
      target_.Release(id);
      if (draft_ != nullptr) draft_->Release(id);
      continue;
    }
    seq->target_from = out.cached_tokens;
    const VerifyResult& result = out.result;
    if (draft_of[i]) {
      last_.speculated = true;
      seq->previous_accepted = result.accepted;
      planner_->RecordAcceptance(result);
      for (size_t v = 0; v < result.visited_children.size(); ++v) {
        const int visits = std::min<int>(result.visited_children[v], last_.visits_by_rank.size());
        for (int r = 0; r < visits; ++r) ++last_.visits_by_rank[r];
        const int rank = result.accepted_rank[v];
        if (rank >= 0 && rank < static_cast<int>(last_.hits_by_rank.size())) {
          ++last_.hits_by_rank[rank];
        }
      }
    }
    std::vector<int32_t> appended;
    for (int32_t node : result.accepted) appended.push_back(draft_of[i]->tree.tokens[node]);
    appended.push_back(result.extra_token);
    const size_t before = seq->state.tokens.size();
    Append(*seq, appended);
    const int64_t gained = static_cast<int64_t>(seq->state.tokens.size() - before);
    if (seq->request.logprobs >= 0) {
      for (int64_t k = 0; k < gained && k < static_cast<int64_t>(out.logprobs.size()); ++k) {
        seq->state.logprobs.push_back(out.logprobs[k]);
      }
    }
    last_.accepted_tokens += static_cast<int64_t>(result.accepted.size());
    accepted_total_ += static_cast<int64_t>(result.accepted.size());
    last_.generated_tokens += gained;
    decoded_tokens_ += gained;
    ++sequence_steps_;
    if (seq->state.finished()) last_.finished.push_back(id);
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
