#include "common/speculation/spec_engine.h"

#include <algorithm>
#include <chrono>
#include <future>

#include "absl/strings/str_format.h"
#include "common/engine/pass_cost.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;
double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

TargetRows* SharedTargetRows(TargetWorker& target, const Model* draft,
                             const SpecEngineOptions& options) {
  if (draft == nullptr || !options.draft_takes_target_rows || options.pipeline_groups != 1) {
    return nullptr;
  }
  return target.RowsFor(*draft);
}

ModelFacts FactsOf(const LoadedModel& target, const LoadedModel* draft, int sinks, int window) {
  ModelFacts f;
  f.vocab_size = target.config.vocab_size;
  f.stop_ids = StopTokenIds(target);
  f.context_length = target.config.context_length;
  // One token with no context: weight traffic and projection arithmetic only.
  const PassShape one_token{1, 0, 1, 1};
  f.prior.target_weight_bytes = WeightBytes(target);
  if (draft != nullptr) f.prior.draft_weight_bytes = WeightBytes(*draft);
  f.prior.target_flops_per_token = EstimatePass(target, one_token).flops;
  if (draft != nullptr) f.prior.draft_flops_per_token = EstimatePass(*draft, one_token).flops;
  f.prior.target_attention_flops = 4.0 * target.config.n_layers * target.config.q_dim();
  if (draft != nullptr) {
    f.prior.draft_attention_flops = 4.0 * draft->config.n_layers * draft->config.q_dim();
  }
  f.prior.target_kv_bytes_per_token = KvBytesPerToken(target.config);
  if (draft != nullptr) f.prior.draft_kv_bytes_per_token = KvBytesPerToken(draft->config);
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

absl::StatusOr<std::unique_ptr<SpecEngine>> SpecEngine::Create(Model& target, Model& draft,
                                                               SpecEngineOptions options) {
  const bool ngram = options.drafter == DrafterKind::kNgram;
  if (!ngram && &draft != &target) {
    RETURN_IF_ERROR(CheckSameVocabulary(target.loaded(), draft.loaded()));
  }
  DrafterOptions d;
  d.kind = options.drafter;
  d.sinks = options.sinks;
  d.window = options.window;
  d.max_candidates = options.max_candidates;
  d.max_tree_nodes = std::max(options.spec.max_nodes, options.spec.tree_nodes) + 4;
  TargetWorkerOptions t;
  t.max_context = options.max_context;
  t.max_tree_nodes = d.max_tree_nodes;
  t.acceptance_scale = options.verifier_acceptance_scale;
  auto target_worker = std::make_unique<TargetWorker>(target, t);
  d.target_rows = SharedTargetRows(*target_worker, ngram ? nullptr : &draft, options);
  ASSIGN_OR_RETURN(std::unique_ptr<Drafter> draft_worker,
                   MakeDrafter(d, &draft, target.config().vocab_size));
  ModelFacts facts =
      FactsOf(target.loaded(), ngram ? nullptr : &draft.loaded(), options.sinks, options.window);
  // Self-speculation in one process: the draft's passes run the target's
  // weights through the same engine.
  facts.prior.draft_runs_like_target = !ngram && &draft == &target;
  facts.draft_takes_target_rows = d.target_rows != nullptr;
  ASSIGN_OR_RETURN(std::unique_ptr<SpecEngine> engine,
                   Create(draft_worker.get(), *target_worker, std::move(facts), options));
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
  if (s.max_nodes < 1 || s.max_nodes > kMaxTreeNodes || s.max_depth < 1 ||
      s.max_depth > kMaxTreeDepth) {
    return absl::InvalidArgumentError(
        absl::StrFormat("tree limits: max nodes %d must be in [1, %d], max depth %d in [1, %d]",
                        s.max_nodes, kMaxTreeNodes, s.max_depth, kMaxTreeDepth));
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
  // Pipelined: into the smaller micro-batch.
  int members[2] = {0, 0};
  for (const auto& [other_id, other] : sequences_) {
    if (!other->state.finished()) ++members[other->group];
  }
  seq->group = members[1] < members[0] ? 1 : 0;
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
    if (AppendGeneratedToken(seq.request, token, facts_.stop_ids, max_context_, &seq.state)) return;
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
  // Prefill and decode run as separate steps, so every decode step's time is
  // decode alone (what the planner and the reports measure). While both have
  // work they alternate: prefill chunks cannot starve running decodes.
  const bool prefill = !prefilling.empty() && (decoding.empty() || !last_step_prefilled_ ||
                                               options_.prefill_before_decode);
  last_step_prefilled_ = prefill;
  if (prefill) {
    last_decode_end_.reset();
    return PrefillStep(prefilling);
  }
  if (decoding.empty()) return absl::OkStatus();
  const auto start = Clock::now();
  RETURN_IF_ERROR(DecodeStep(decoding));
  RecordOverhead(start);
  return absl::OkStatus();
}

void SpecEngine::RecordOverhead(Clock::time_point step_start) {
  // Time outside the draft and verify passes: this step's own bookkeeping plus,
  // between two decode steps, whatever the caller did (streaming, scheduling).
  const auto end = Clock::now();
  const double passes = last_passes_seconds_;
  double outside = std::chrono::duration<double>(end - step_start).count() - passes;
  if (last_decode_end_) {
    outside += std::chrono::duration<double>(step_start - *last_decode_end_).count();
  }
  last_decode_end_ = end;
  // A long gap is the caller idling or pausing, not the serving path's cost.
  if (outside <= 10 * passes) {
    planner_->RecordStepOverhead(
        ClassOf(last_.batch, last_.mean_context), last_.speculated || last_.draft_seconds > 0,
        outside, last_.batch > 0 ? static_cast<double>(last_.generated_tokens) / last_.batch : 1.0);
  }
}

absl::Status SpecEngine::PrefillStep(std::span<const std::pair<int, Sequence*>> prefilling) {
  // The target: chunks of the prompts (all but each history's last token, which
  // the first decode step feeds as the root of its tree), within the step budget.
  std::vector<VerifyItem> items;
  std::vector<std::pair<int, Sequence*>> prefilled;
  int budget = options_.max_tokens_per_step;
  for (auto [id, seq] : prefilling) {
    const int64_t want = static_cast<int64_t>(seq->state.tokens.size()) - 1 - seq->target_from;
    const int n = static_cast<int>(std::min<int64_t>(want, budget));
    if (n <= 0) break;
    budget -= n;
    VerifyItem& item = items.emplace_back();
    item.sequence_id = id;
    item.kind = VerifyKind::kPrefill;
    item.start = seq->target_from;
    item.tokens = std::span<const int32_t>(seq->state.tokens).subspan(seq->target_from, n);
    item.prefix_hash = HashBefore(*seq, item.start);
    item.sampling = seq->request.sampling;
    prefilled.emplace_back(id, seq);
    last_.prefill_tokens += n;
  }
  std::vector<VerifyOutput> verified;
  const auto start = Clock::now();
  RETURN_IF_ERROR(target_.Verify(items, &verified));
  double attended = 0, kv_rows = 0;
  for (const VerifyItem& item : items) {
    const double n = static_cast<double>(item.tokens.size());
    attended += n * (static_cast<double>(item.start) + 0.5 * (n + 1));
    kv_rows += static_cast<double>(item.start) + n;
  }
  planner_->RecordPrefillPass(last_.prefill_tokens, attended, kv_rows, SecondsSince(start));
  for (size_t k = 0; k < prefilled.size(); ++k) {
    const VerifyOutput& out = verified[k];
    Sequence* seq = prefilled[k].second;
    if (out.status.ok()) {
      seq->target_from = out.cached_tokens;
    } else if (absl::IsFailedPrecondition(out.status)) {
      seq->target_from = 0;
    }
  }
  // The draft: sequences whose prompt is now in the target catch up too (their
  // sinks and last window), so the draft's prefill is counted as prefill.
  CatchUpDraft(prefilled);
  last_.verify_seconds = SecondsSince(start);
  prefill_seconds_ += last_.verify_seconds;
  prefill_total_ += last_.prefill_tokens;
  return absl::OkStatus();
}

uint64_t SpecEngine::HashBefore(Sequence& seq, int64_t n) {
  seq.history_hashes.Cover(seq.state.tokens);
  return seq.history_hashes.at(n);
}

ProposeItem SpecEngine::ItemFor(int id, Sequence& seq, int64_t start, int64_t end,
                                const TreeShape* shape) {
  ProposeItem item;
  item.sequence_id = id;
  item.start = start;
  item.tokens = std::span<const int32_t>(seq.state.tokens).subspan(start, end - start);
  item.prefix_hash = HashBefore(seq, start);
  item.shape = shape;
  item.sampling = seq.request.sampling;
  return item;
}

void SpecEngine::CatchUpDraft(std::span<const std::pair<int, Sequence*>> sequences) {
  if (draft_ == nullptr || planner_->config().mode == SpecMode::kOff ||
      facts_.draft_takes_target_rows) {
    return;  // (a draft that takes the target's rows has nothing to catch up)
  }
  // Auto mode decoding plainly would not use the draft soon: let it catch up
  // when a probe or a tree needs it.
  if (!planner_->last_choice_speculates()) return;
  static const TreeShape kNoTree;
  std::vector<ProposeItem> proposals;
  std::vector<Sequence*> members;
  for (auto [id, seq] : sequences) {
    // All but the last token, which the first decode step feeds as its tree's root.
    const int64_t end = static_cast<int64_t>(seq->state.tokens.size()) - 1;
    if (seq->target_from != end || seq->draft_from >= end) continue;
    proposals.push_back(ItemFor(id, *seq, seq->draft_from, end, &kNoTree));
    members.push_back(seq);
  }
  if (proposals.empty()) return;
  std::vector<ProposeOutput> outputs;
  std::vector<PassTime> passes;
  if (!draft_->Propose(proposals, &outputs, &passes).ok()) return;  // it catches up later
  for (size_t k = 0; k < members.size(); ++k) {
    if (outputs[k].status.ok()) {
      members[k]->draft_from = static_cast<int64_t>(members[k]->state.tokens.size()) - 1;
    }
    members[k]->previous_accepted.clear();
  }
}

std::unique_ptr<SpecEngine::ProposalBatch> SpecEngine::BuildProposals(
    std::span<const std::pair<int, Sequence*>> members, const Plan& plan, StepClass step_class) {
  auto batch = std::make_unique<ProposalBatch>();
  batch->plan = plan;
  batch->step_class = step_class;
  batch->members.assign(members.begin(), members.end());
  for (size_t i = 0; i < members.size() && plan.nodes > 0 && draft_ != nullptr; ++i) {
    if (plan.probe_sequences > 0 && static_cast<int>(batch->items.size()) >= plan.probe_sequences) {
      break;  // a probe: the rest decode plainly
    }
    auto [id, seq] = members[i];
    // Sequences too close to their context limit for the tree decode plainly,
    // and so do those with one token left to generate: the verify pass's own
    // token is all they can keep.
    if (static_cast<int>(seq->state.tokens.size()) + plan.nodes + 1 > max_context_) continue;
    if (Remaining(*seq) <= 1) continue;
    // The batch is never moved: the pointer to its plan's shape holds.
    ProposeItem& item = batch->items.emplace_back(
        ItemFor(id, *seq, seq->draft_from, static_cast<int64_t>(seq->state.tokens.size()),
                &batch->plan.shape));
    item.previous_accepted = seq->previous_accepted;
    batch->proposed.push_back(i);
  }
  return batch;
}

std::unique_ptr<SpecEngine::ProposalBatch> SpecEngine::BuildAheadProposals(
    std::span<const std::pair<int, Sequence*>> members) {
  auto batch = std::make_unique<ProposalBatch>();
  batch->members.assign(members.begin(), members.end());
  for (size_t i = 0; i < members.size(); ++i) {
    auto [id, seq] = members[i];
    if (!seq->has_proposal || seq->proposal.tree.size() == 0) continue;
    // Just the root of the tree under verification: the draft checks that it
    // drafted that tree from exactly this history. The next tree: this one's shape.
    const int64_t end = static_cast<int64_t>(seq->state.tokens.size());
    ProposeItem& item =
        batch->items.emplace_back(ItemFor(id, *seq, end - 1, end, &seq->proposal_plan.shape));
    item.ahead = true;
    batch->proposed.push_back(i);
  }
  return batch;
}

void SpecEngine::RunProposals(ProposalBatch& batch) {
  if (batch.items.empty()) return;
  const auto start = Clock::now();
  batch.status = draft_->Propose(batch.items, &batch.outputs, &batch.passes);
  batch.seconds = SecondsSince(start);
}

std::vector<const ProposeOutput*> SpecEngine::FinishProposals(ProposalBatch& batch) {
  std::vector<const ProposeOutput*> draft_of(batch.members.size(), nullptr);
  if (!batch.items.empty()) {
    last_.draft_seconds = batch.seconds;
    if (!batch.status.ok()) {
      last_.draft_failed = true;  // decode plainly this step; the draft catches up later
    } else {
      // A probe's passes ran for its few sequences: they are timed in that class.
      const StepClass pass_class =
          batch.plan.probe_sequences > 0
              ? ClassOf(static_cast<int>(batch.items.size()), last_.mean_context)
              : batch.step_class;
      for (const PassTime& pass : batch.passes) {
        planner_->RecordDraftPass(pass_class, pass.tokens_per_sequence, pass.seconds);
      }
      if (!batch.plan.exploring && !batch.passes.empty() &&
          batch.passes[0].tokens_per_sequence <= 2) {
        // The call beyond a one-token first level and its later passes, in
        // steady speculation (a wider first level is a catch-up after plain
        // steps, priced apart: Planner::CatchUpCost).
        double extra = batch.seconds -
                       planner_->DraftPassCost(pass_class, static_cast<int>(batch.items.size()), 1);
        for (size_t i = 1; i < batch.passes.size(); ++i) extra -= batch.passes[i].seconds;
        planner_->RecordDraftStepExtra(pass_class, extra);
      }
      last_.draft_passes = batch.passes;
      for (size_t k = 0; k < batch.proposed.size(); ++k) {
        Sequence* seq = batch.members[batch.proposed[k]].second;
        const ProposeOutput& out = batch.outputs[k];
        last_.ahead_used += out.status.ok() && out.from_ahead ? 1 : 0;
        if (out.status.ok()) {
          draft_of[batch.proposed[k]] = &out;
          // Taking the target's rows, the draft keeps none of its own for the root.
          seq->draft_from = static_cast<int64_t>(seq->state.tokens.size()) -
                            (facts_.draft_takes_target_rows ? 1 : 0);
        } else if (absl::IsFailedPrecondition(out.status)) {
          // The draft lost its state (restart) or is elsewhere: resend from the start.
          seq->draft_from = 0;
        }
      }
    }
  }
  // Sequences not drafted this step: their draft pending rows get dropped next time.
  for (auto& [id, seq] : batch.members) seq->previous_accepted.clear();
  return draft_of;
}

std::vector<const ProposeOutput*> SpecEngine::ProposeTrees(
    std::span<const std::pair<int, Sequence*>> decoding, const Plan& plan, StepClass step_class,
    std::unique_ptr<ProposalBatch>* batch) {
  *batch = BuildProposals(decoding, plan, step_class);
  RunProposals(**batch);
  return FinishProposals(**batch);
}

std::vector<VerifyItem> SpecEngine::VerifyItems(std::span<const std::pair<int, Sequence*>> members,
                                                std::span<const ProposeOutput* const> trees,
                                                int* tokens) {
  std::vector<VerifyItem> items;
  *tokens = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    auto [id, seq] = members[i];
    VerifyItem& item = items.emplace_back();
    item.sequence_id = id;
    item.kind = VerifyKind::kVerify;
    item.start = seq->target_from;
    item.tokens = std::span<const int32_t>(seq->state.tokens).subspan(seq->target_from);
    item.prefix_hash = HashBefore(*seq, item.start);
    item.tree = trees[i] ? &trees[i]->tree : nullptr;
    item.q = trees[i] ? &trees[i]->q : nullptr;
    item.sampling = seq->request.sampling;
    item.top_logprobs = seq->request.logprobs;
    *tokens += 1 + (trees[i] ? trees[i]->tree.size() : 0);
  }
  return items;
}

void SpecEngine::ApplyVerified(int id, Sequence& seq, const ProposeOutput* draft,
                               const VerifyOutput& out) {
  if (!out.status.ok()) {
    if (absl::IsFailedPrecondition(out.status)) {
      seq.target_from = 0;  // the target restarted: re-prefill from the history
      return;
    }
    // This sequence alone fails; the rest of the batch goes on.
    seq.state.finish = FinishReason::kError;
    seq.state.error = std::string(out.status.message());
    last_.finished.push_back(id);
    target_.Release(id);
    if (draft_ != nullptr) draft_->Release(id);
    return;
  }
  seq.target_from = out.cached_tokens;
  const VerifyResult& result = out.result;
  if (draft != nullptr) {
    last_.speculated = true;
    seq.previous_accepted = result.accepted;
    // A drafter that found nothing for the planned tree (the n-gram drafter without
    // a match) missed at the root: counted as a rejected first candidate, so the
    // planner does not expect from it what a tree it never gets would give.
    VerifyResult missed;
    if (draft->tree.size() == 0) {
      missed.visited_children = {1};
      missed.accepted_rank = {-1};
    }
    const VerifyResult& counted = draft->tree.size() == 0 ? missed : result;
    planner_->RecordAcceptance(counted);
    for (size_t v = 0; v < counted.visited_children.size(); ++v) {
      const int visits = std::min<int>(counted.visited_children[v], last_.visits_by_rank.size());
      for (int r = 0; r < visits; ++r) ++last_.visits_by_rank[r];
      const int rank = counted.accepted_rank[v];
      if (rank >= 0 && rank < static_cast<int>(last_.hits_by_rank.size())) {
        ++last_.hits_by_rank[rank];
      }
    }
  }
  std::vector<int32_t> appended;
  for (int32_t node : result.accepted) appended.push_back(draft->tree.tokens[node]);
  appended.push_back(result.extra_token);
  const size_t before = seq.state.tokens.size();
  Append(seq, appended);
  const int64_t gained = static_cast<int64_t>(seq.state.tokens.size() - before);
  if (seq.request.logprobs >= 0) {
    for (int64_t k = 0; k < gained && k < static_cast<int64_t>(out.logprobs.size()); ++k) {
      seq.state.logprobs.push_back(out.logprobs[k]);
    }
  }
  last_.accepted_tokens += static_cast<int64_t>(result.accepted.size());
  accepted_total_ += static_cast<int64_t>(result.accepted.size());
  last_.generated_tokens += gained;
  if (draft != nullptr) {
    ++last_.speculated_sequences;
    last_.speculated_generated_tokens += gained;
  }
  decoded_tokens_ += gained;
  ++sequence_steps_;
  if (seq.state.finished()) last_.finished.push_back(id);
}

absl::Status SpecEngine::DecodeStep(std::span<const std::pair<int, Sequence*>> decoding) {
  if (options_.pipeline_groups > 1 && draft_ != nullptr &&
      planner_->config().mode != SpecMode::kOff) {
    return PipelinedDecodeStep(decoding);
  }
  // 1. The plan for this step's class (batch size x mean context).
  const double mean_context = MeanContext(decoding);
  planner_->SetDraftLag(MeanDraftLag(decoding));
  return RunDecodeStep(decoding,
                       planner_->Choose(static_cast<int>(decoding.size()), mean_context, 0, false,
                                        MeanRemaining(decoding)),
                       mean_context);
}

int64_t SpecEngine::Remaining(const Sequence& seq) const {
  const int64_t by_length = seq.request.max_new_tokens - seq.state.generated();
  const int64_t by_context = max_context_ - static_cast<int64_t>(seq.state.tokens.size());
  return std::max<int64_t>(std::min(by_length, by_context), 0);
}

double SpecEngine::MeanRemaining(std::span<const std::pair<int, Sequence*>> members) const {
  double total = 0;
  for (const auto& [id, seq] : members) total += static_cast<double>(Remaining(*seq));
  return members.empty() ? 0.0 : total / static_cast<double>(members.size());
}

double SpecEngine::MeanDraftLag(std::span<const std::pair<int, Sequence*>> members) const {
  if (facts_.draft_takes_target_rows) return 0;  // it reads the target's rows, feeds nothing
  double total = 0;
  for (const auto& [id, seq] : members) {
    const int64_t behind = static_cast<int64_t>(seq->state.tokens.size()) - seq->draft_from;
    total += static_cast<double>(std::max<int64_t>(behind, 1));
  }
  return members.empty() ? -1.0 : total / static_cast<double>(members.size());
}

double SpecEngine::MeanContext(std::span<const std::pair<int, Sequence*>> members) {
  double total = 0;
  for (const auto& [id, seq] : members) total += static_cast<double>(seq->state.tokens.size());
  return members.empty() ? 0.0 : total / static_cast<double>(members.size());
}

void SpecEngine::BeginApply(int batch, const Plan* plan) {
  last_.batch = batch;
  if (plan != nullptr) {
    last_.tree_nodes = plan->nodes;
    last_.tree_depth = plan->depth;
    last_.exploring = plan->exploring;
    last_.predicted_tokens = plan->expected_tokens;
  }
  last_.hits_by_rank.assign(planner_->acceptance().k(), 0);
  last_.visits_by_rank.assign(planner_->acceptance().k(), 0);
}

absl::Status SpecEngine::RunDecodeStep(std::span<const std::pair<int, Sequence*>> decoding,
                                       const Plan& plan, double mean_context) {
  last_.mean_context = mean_context;
  const StepClass step_class = ClassOf(static_cast<int>(decoding.size()), mean_context);

  // 2. Propose: one draft call for every sequence that speculates this step.
  std::unique_ptr<ProposalBatch> proposals;
  const std::vector<const ProposeOutput*> draft_of =
      ProposeTrees(decoding, plan, step_class, &proposals);

  // 3. Verify: one target call for every decoding sequence (empty trees: plain).
  int tokens = 0;
  const std::vector<VerifyItem> items = VerifyItems(decoding, draft_of, &tokens);
  std::vector<VerifyOutput> verified;
  const auto verify_start = Clock::now();
  RETURN_IF_ERROR(target_.Verify(items, &verified));
  last_.verify_seconds = SecondsSince(verify_start);
  const int n = static_cast<int>(decoding.size());
  last_.verify_tokens_per_sequence = (tokens + n - 1) / n;
  // A probe's pass mixed widths (a few sequences with trees, the rest plain):
  // no width of the table describes it. Nor does the first decode step of
  // sequences just prefilled: it runs slow (their KV crosses into new blocks
  // at a block-sized prompt, caches are cold: 0.17 ms where plain steps take
  // 0.075 at stories260K batch 1 x 1024, 13.8 against 7.3 ms at 64 x 1024),
  // and as plain's only cost it made auto speculate a whole run at 0.75-0.79x
  // plain (batch 1 x 1024, where a draft pass costs half a plain step).
  int first_steps = 0;
  for (const auto& [id, seq] : decoding) first_steps += seq->state.generated() == 0 ? 1 : 0;
  if ((plan.probe_sequences == 0 || plan.probe_sequences >= n) && 2 * first_steps <= n) {
    planner_->RecordVerifyPass(step_class, last_.verify_tokens_per_sequence, last_.verify_seconds,
                               mean_context);
  }

  // 4. Extend the histories with what each verification accepted.
  BeginApply(n, &plan);
  for (size_t i = 0; i < decoding.size(); ++i) {
    ApplyVerified(decoding[i].first, *decoding[i].second, draft_of[i], verified[i]);
  }
  last_passes_seconds_ = last_.draft_seconds + last_.verify_seconds;
  decode_seconds_ += last_passes_seconds_;
  return absl::OkStatus();
}

absl::Status SpecEngine::PipelinedDecodeStep(std::span<const std::pair<int, Sequence*>> decoding) {
  const auto step_start = Clock::now();
  // Two groups, or one (PipelineGrouping: whichever decoded faster here).
  const StepClass whole_class = ClassOf(static_cast<int>(decoding.size()), MeanContext(decoding));
  const bool split =
      decoding.size() > 1 && (!options_.adapt_groups || grouping_.Split(whole_class));
  if (!split) {
    for (const auto& entry : decoding) entry.second->group = turn_;
  }
  std::vector<std::pair<int, Sequence*>> groups[2];
  for (const auto& entry : decoding) groups[entry.second->group].push_back(entry);
  // Sequences finish unevenly: keep the groups within one of each other by moving
  // sequences that hold no tree (a tree must be verified in the group it was
  // drafted for; a sequence without one may join either).
  for (int big = groups[0].size() > groups[1].size() ? 0 : 1;
       split && groups[big].size() > groups[big ^ 1].size() + 1;) {
    auto it = std::find_if(groups[big].begin(), groups[big].end(),
                           [](const auto& entry) { return !entry.second->has_proposal; });
    if (it == groups[big].end()) break;
    it->second->group = big ^ 1;
    groups[big ^ 1].push_back(*it);
    groups[big].erase(it);
  }
  if (groups[turn_].empty()) turn_ ^= 1;
  const std::vector<std::pair<int, Sequence*>>& verifying = groups[turn_];
  const std::vector<std::pair<int, Sequence*>>& other = groups[turn_ ^ 1];
  // Keeps each drafted tree with its sequence until the sequence's verify turn.
  auto keep = [](ProposalBatch& batch, const std::vector<const ProposeOutput*>& trees) {
    for (size_t i = 0; i < batch.members.size(); ++i) {
      if (trees[i] == nullptr) continue;
      Sequence* seq = batch.members[i].second;
      seq->proposal = *trees[i];
      seq->has_proposal = true;
      seq->proposal_plan = batch.plan;
    }
  };
  last_.mean_context = MeanContext(verifying);
  double draft_seconds = 0;

  // Sequences of the verifying group without a tree (new, or their draft
  // failed): with nothing to overlap with (the other group is empty) they draft
  // first, as in an unpipelined step; otherwise they decode plainly this once.
  if (other.empty()) {
    std::vector<std::pair<int, Sequence*>> bare;
    for (const auto& entry : verifying) {
      if (!entry.second->has_proposal) bare.push_back(entry);
    }
    if (!bare.empty()) {
      const double context = MeanContext(bare);
      const int n = static_cast<int>(bare.size());
      planner_->SetDraftLag(MeanDraftLag(bare));
      std::unique_ptr<ProposalBatch> batch;
      const auto trees = ProposeTrees(
          bare, planner_->Choose(n, context, 0, options_.draft_ahead, MeanRemaining(bare)),
          ClassOf(n, context), &batch);
      keep(*batch, trees);
      draft_seconds += batch->seconds;
    }
  }
  // A lone group: while the target verifies its trees, the draft drafts the
  // trees that would follow them (SpecEngineOptions::draft_ahead).
  std::unique_ptr<ProposalBatch> guesses;
  if (other.empty() && options_.draft_ahead) guesses = BuildAheadProposals(verifying);
  // The other group drafts its next trees while this one is verified.
  std::vector<std::pair<int, Sequence*>> drafting_next;
  for (const auto& entry : other) {
    if (!entry.second->has_proposal) drafting_next.push_back(entry);
  }
  std::unique_ptr<ProposalBatch> batch;
  if (!drafting_next.empty()) {
    const double context = MeanContext(drafting_next);
    const int n = static_cast<int>(drafting_next.size());
    planner_->SetDraftLag(MeanDraftLag(drafting_next));
    const Plan plan = planner_->Choose(n, context, static_cast<int>(decoding.size()), false,
                                       MeanRemaining(drafting_next));
    bool trees_pending = false;
    for (const auto& [id, seq] : decoding) trees_pending = trees_pending || seq->has_proposal;
    if (plan.nodes == 0 && !trees_pending) {
      // Plain decoding: one step for the whole batch, not half of it per step.
      return RunDecodeStep(decoding, plan, MeanContext(decoding));
    }
    batch = BuildProposals(drafting_next, plan, ClassOf(n, context));
  }
  std::vector<const ProposeOutput*> trees;
  for (const auto& [id, seq] : verifying)
    trees.push_back(seq->has_proposal ? &seq->proposal : nullptr);
  int tokens = 0;
  const std::vector<VerifyItem> items = VerifyItems(verifying, trees, &tokens);
  std::vector<VerifyOutput> verified;
  const auto start = Clock::now();
  std::future<void> drafting;
  ProposalBatch* running = batch != nullptr && !batch->items.empty() ? batch.get() : nullptr;
  ProposalBatch* guessing = guesses != nullptr && !guesses->items.empty() ? guesses.get() : nullptr;
  if (running != nullptr || guessing != nullptr) {
    // The draft calls alone run on the other thread (RunProposals touches
    // nothing else of the engine); everything else stays on this one.
    drafting = std::async(std::launch::async, [this, running, guessing] {
      if (running != nullptr) RunProposals(*running);
      if (guessing != nullptr) RunProposals(*guessing);
    });
  }
  const absl::Status verify_status = target_.Verify(items, &verified);
  last_.verify_seconds = SecondsSince(start);
  if (drafting.valid()) drafting.wait();
  const double overlapped = SecondsSince(start);
  if (batch != nullptr) {
    keep(*batch, FinishProposals(*batch));
    draft_seconds += batch->seconds;
  }
  // Draft time, overlapped or not (the stage's busy time); the wall below
  // counts only what ran before the verify.
  last_.draft_seconds = draft_seconds;
  if (guessing != nullptr) {
    last_.draft_seconds += guessing->seconds;
    if (guessing->status.ok()) {
      for (const ProposeOutput& out : guessing->outputs) last_.ahead_drafted += out.status.ok();
    }
  }
  RETURN_IF_ERROR(verify_status);

  const int n = static_cast<int>(verifying.size());
  const StepClass verify_class = ClassOf(n, last_.mean_context);
  last_.verify_tokens_per_sequence = (tokens + n - 1) / n;
  // Booked only when every sequence verified the same tree width (a probe or a
  // newcomer decoding plainly beside trees makes a pass no width describes), and
  // not for a group decoding plainly beside a probe: plain widths are timed on
  // whole-batch steps, and these half-batch ones, run while the probe's catch-up
  // drafts, read 2x slow here and priced every tree out.
  bool one_width = trees[0] != nullptr;
  for (size_t i = 1; i < trees.size() && one_width; ++i) {
    one_width = (trees[i] ? trees[i]->tree.size() : 0) == trees[0]->tree.size();
  }
  if (one_width) {
    planner_->RecordVerifyPass(verify_class, last_.verify_tokens_per_sequence, last_.verify_seconds,
                               last_.mean_context);
  }
  // The step's plan stats: those the group's trees were drafted under.
  const Plan* drafted_under = nullptr;
  for (const auto& [id, seq] : verifying) {
    if (seq->has_proposal) {
      drafted_under = &seq->proposal_plan;
      break;
    }
  }
  BeginApply(n, drafted_under);
  for (size_t i = 0; i < verifying.size(); ++i) {
    Sequence& seq = *verifying[i].second;
    ApplyVerified(verifying[i].first, seq, trees[i], verified[i]);
    // The tree is spent. If the history did not grow (the target lost its
    // cache), the draft is asked again from the root.
    seq.has_proposal = false;
    seq.draft_from =
        std::min<int64_t>(seq.draft_from, static_cast<int64_t>(seq.state.tokens.size()) - 1);
  }
  turn_ ^= 1;
  last_passes_seconds_ = overlapped + (other.empty() ? draft_seconds : 0.0);
  decode_seconds_ += last_passes_seconds_;
  if (decoding.size() > 1 && options_.adapt_groups) {
    last_.grouping_measured = grouping_.measuring(whole_class);
    grouping_.Record(whole_class, split, last_.speculated, last_.generated_tokens,
                     SecondsSince(step_start));
  }
  last_.pipeline_groups = other.empty() ? 1 : 2;
  return absl::OkStatus();
}

}  // namespace specserve
