// The speculative step engine (the router's core): token histories, continuous
// batching, the planner, and one step = one Propose to the draft (token trees for
// the whole batch, with the previous step's accepted paths) + one Verify to the
// target (prefill chunks and every tree in one forward). Plain decoding is the
// same step with empty trees. The workers sit behind DraftBackend/TargetBackend:
// in-process here, gRPC clients in the split deployment.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine/batch_generator.h"
#include "common/engine/model.h"
#include "common/speculation/backends.h"
#include "common/speculation/draft_worker.h"
#include "common/speculation/drafter_factory.h"
#include "common/speculation/grouping.h"
#include "common/speculation/planner.h"
#include "common/speculation/prefix_hash.h"
#include "common/speculation/target_worker.h"

namespace specserve {

struct SpecEngineOptions {
  SpecConfig spec;
  DrafterKind drafter = DrafterKind::kModel;  // in-process Create: model (MagicDec) or ngram
  int sinks = 16;                 // draft window cache: attention-sink tokens kept forever
  int window = 256;               // draft window cache: most recent tokens kept
  int max_context = 0;            // tokens per sequence; 0: the target's context length
  int max_tokens_per_step = 512;  // bound on prefill tokens per step
  // Serving alternates prefill chunks with decode steps so new prompts cannot
  // starve running streams. A benchmark of one batch wants every prompt in the
  // cache before the first decode step, so each decode step runs at the batch
  // size it is reported under (alternating, the first sequences decode a large
  // part of their tokens at batch 1 while the rest prefill).
  bool prefill_before_decode = false;
  // 2: two micro-batches in flight. The running sequences form two groups; each
  // decode step verifies one group while the draft proposes for the other, so
  // the step costs the larger of the two stage times, not their sum. The two
  // backends are then called from two threads at once: for the router's gRPC
  // clients (draft and target in their own processes), not for in-process
  // workers that share one model's thread pool. 1: one group, draft then verify.
  int pipeline_groups = 1;
  // Pipelined only: when one group holds every running sequence (too few to
  // split, or the other group finished), the draft drafts that group's next
  // trees ahead while the target verifies its trees (ProposeItem::ahead); where
  // the target then accepts the most likely path and the draft's guess of the
  // next token, the next proposal costs no draft pass. It pays where the draft
  // would otherwise idle during verification (the split deployment); a draft
  // sharing the target's cores would compete with it.
  bool draft_ahead = false;
  // Pipelined only: measure whether two groups or one decode faster and use
  // that (PipelineGrouping); false: always two groups when there are two sequences.
  bool adapt_groups = true;
  int max_candidates = 32;  // size of the draft distribution kept for sampling
  // In-process self-speculation (Create(Model&, Model&) with the same model,
  // one pipeline group, CPU caches): the draft's window is the target's own
  // rows, read in place (MagicDec; target_rows.h), rather than rows it
  // computes itself. false: the draft computes them, as a separate draft
  // service must.
  bool draft_takes_target_rows = true;
  // Memory read bandwidth and arithmetic rate of this machine for the planner's
  // prior (before any step is measured); 0: typical CPU figures.
  double bandwidth_bytes_per_second = 0;
  double flops_per_second = 0;
  // Tests only: see VerifyInput::acceptance_scale.
  double verifier_acceptance_scale = 1.0;
};

struct StepStats {
  int batch = 0;  // sequences decoded this step (prefill-only ones excluded)
  int prefill_tokens = 0;
  int tree_nodes = 0;           // speculated nodes per sequence as planned
  double predicted_tokens = 0;  // tokens per sequence the plan expects (accepted + extra)
  int tree_depth = 0;
  bool speculated = false;
  bool exploring = false;
  bool draft_failed = false;     // the draft did not answer: this step decoded plainly
  int64_t accepted_tokens = 0;   // tree tokens accepted, all sequences
  int64_t generated_tokens = 0;  // tokens appended, all sequences (accepted + extra)
  // The sequences that verified a drafted tree this step (all of them, or a
  // probe's few), and the tokens they appended: what predicted_tokens, a
  // figure per speculating sequence, is measured against.
  int speculated_sequences = 0;
  int64_t speculated_generated_tokens = 0;
  double draft_seconds = 0;
  double verify_seconds = 0;
  // The passes this decode step ran, for cost models: the draft's (new tokens per
  // sequence each) and the target's verify width (root + tree nodes per sequence).
  std::vector<PassTime> draft_passes;
  int ahead_drafted = 0;           // trees the draft drafted ahead this step (draft_ahead)
  int ahead_used = 0;              // proposals this step answered by a tree drafted ahead
  int pipeline_groups = 0;         // pipelined: the groups the running sequences formed (1 or 2)
  bool grouping_measured = false;  // pipelined: a step PipelineGrouping timed (else it chose)
  int verify_tokens_per_sequence =
      0;  // the target's pass (a prefill step: target + draft catch-up)
  double mean_context = 0;
  std::vector<int64_t> hits_by_rank, visits_by_rank;  // this step's acceptance by position
  std::vector<int> finished;                          // ids of sequences that finished this step
};

// What the engine needs to know of the models behind the backends.
struct ModelFacts {
  int vocab_size = 0;
  std::vector<int32_t> stop_ids;  // tokens that end a generation (EOS, end of turn)
  int context_length = 0;
  CostPrior prior;  // weights, KV bytes per token, flops (bandwidth/flops filled from options)
  // The draft takes the target's rows of committed tokens (target_rows.h):
  // it never lags behind the history, so a switch from plain decoding costs
  // no catch-up, and it holds history up to (not including) each tree's root.
  bool draft_takes_target_rows = false;
};
// `draft` null: a drafter without a model (ngram), whose passes cost next to nothing.
ModelFacts FactsOf(const LoadedModel& target, const LoadedModel* draft, int sinks, int window);
// The target's rows for an in-process draft (DrafterOptions::target_rows), or
// null: `draft` null (ngram), options.draft_takes_target_rows false, two
// pipeline groups (the target would verify while the draft reads), or a draft
// the target does not share with (TargetWorker::RowsFor).
TargetRows* SharedTargetRows(TargetWorker& target, const Model* draft,
                             const SpecEngineOptions& options);

class SpecEngine {
 public:
  // In-process: `draft` may be the same object as `target` (self-speculation,
  // the default MagicDec setting). Fails if the two vocabularies differ.
  static absl::StatusOr<std::unique_ptr<SpecEngine>> Create(Model& target, Model& draft,
                                                            SpecEngineOptions options);
  // Over any backends (gRPC clients in the router). `draft` may be null: no speculation.
  static absl::StatusOr<std::unique_ptr<SpecEngine>> Create(DraftBackend* draft,
                                                            TargetBackend& target, ModelFacts facts,
                                                            SpecEngineOptions options);

  absl::StatusOr<int> Add(const GenerationRequest& request);
  absl::Status Step();
  bool HasLive() const;
  int live_count() const;
  const SequenceState& state(int id) const { return sequences_.at(id)->state; }
  bool Contains(int id) const { return sequences_.count(id) > 0; }
  // Frees the sequence's caches on both workers.
  void Remove(int id);
  void Cancel(int id);
  // A restarted target lost every cache: re-prefill all live sequences from history.
  void ForgetTargetState();

  const StepStats& last_step() const { return last_; }
  Planner& planner() { return *planner_; }
  const SpecEngineOptions& options() const { return options_; }
  int max_context() const { return max_context_; }
  // Mean tokens a sequence gained per decoding step, since construction.
  double mean_tokens_per_step() const {
    return sequence_steps_ ? static_cast<double>(decoded_tokens_) / sequence_steps_ : 0.0;
  }
  // Mean tree tokens accepted per sequence per decoding step (the extra token excluded).
  double mean_accepted_per_step() const {
    return sequence_steps_ ? static_cast<double>(accepted_total_) / sequence_steps_ : 0.0;
  }
  int64_t decoded_tokens() const { return decoded_tokens_; }
  double decode_seconds() const { return decode_seconds_; }
  int64_t prefill_tokens() const { return prefill_total_; }
  double prefill_seconds() const { return prefill_seconds_; }

 private:
  struct Sequence {
    GenerationRequest request;
    SequenceState state;
    int group = 0;              // pipelined: the micro-batch it belongs to
    bool has_proposal = false;  // pipelined: `proposal` was drafted for this history
    ProposeOutput proposal;
    Plan proposal_plan;                      // the plan it was drafted under (for the step's stats)
    int64_t target_from = 0;                 // the target holds history[0, target_from)
    int64_t draft_from = 0;                  // the draft holds at least history[0, draft_from)
    std::vector<int32_t> previous_accepted;  // last step's accepted nodes, for the draft
    PrefixHashes history_hashes;             // of state.tokens' prefixes (HashBefore)
  };
  // PrefixHash of the sequence's first n history tokens (items carry it so that a
  // worker reuses a cache only when it holds that prefix).
  static uint64_t HashBefore(Sequence& seq, int64_t n);
  // A proposal for sequence `id` carrying history [start, end) (its last token
  // the tree's root), with the request's sampling.
  static ProposeItem ItemFor(int id, Sequence& seq, int64_t start, int64_t end,
                             const TreeShape* shape);

  SpecEngine(DraftBackend* draft, TargetBackend& target, ModelFacts facts,
             SpecEngineOptions options);
  void Append(Sequence& seq, std::span<const int32_t> tokens);

  // The phases of Step: a prefill step (target chunks, then the draft's catch-up
  // for prompts completed) or a decode step (plan, propose, verify, apply).
  absl::Status PrefillStep(std::span<const std::pair<int, Sequence*>> prefilling);
  void CatchUpDraft(std::span<const std::pair<int, Sequence*>> sequences);
  absl::Status DecodeStep(std::span<const std::pair<int, Sequence*>> decoding);
  // One unpipelined decode step under `plan`: propose, verify, apply.
  absl::Status RunDecodeStep(std::span<const std::pair<int, Sequence*>> decoding, const Plan& plan,
                             double mean_context);
  // One draft call in three phases, so that a pipelined step can run the call
  // on another thread: Build (items and prefix hashes, on the engine's thread),
  // Run (the call alone: touches nothing else of the engine), Finish (planner
  // records, draft positions, the tree of each sequence, null where none).
  struct ProposalBatch {
    Plan plan;
    StepClass step_class;
    std::vector<std::pair<int, Sequence*>> members;  // the sequences the batch was built from
    std::vector<ProposeItem> items;
    std::vector<size_t> proposed;  // index into members of each item
    std::vector<ProposeOutput> outputs;
    std::vector<PassTime> passes;
    absl::Status status;
    double seconds = 0;
  };
  std::unique_ptr<ProposalBatch> BuildProposals(std::span<const std::pair<int, Sequence*>> members,
                                                const Plan& plan, StepClass step_class);
  void RunProposals(ProposalBatch& batch);
  std::vector<const ProposeOutput*> FinishProposals(ProposalBatch& batch);
  // Drafting ahead for `members` (SpecEngineOptions::draft_ahead): an item per
  // sequence holding a tree, for the tree after it; the answers are not used.
  std::unique_ptr<ProposalBatch> BuildAheadProposals(
      std::span<const std::pair<int, Sequence*>> members);
  // The drafted tree of each decoding sequence (null: plain this step).
  std::vector<const ProposeOutput*> ProposeTrees(
      std::span<const std::pair<int, Sequence*>> decoding, const Plan& plan, StepClass step_class,
      std::unique_ptr<ProposalBatch>* batch);
  static double MeanContext(std::span<const std::pair<int, Sequence*>> members);
  // Tokens the members' drafts must feed before drafting (history since each
  // last drafted, at least 1): what a switch to speculation catches up.
  double MeanDraftLag(std::span<const std::pair<int, Sequence*>> members) const;
  // Tokens a sequence may still generate (max_new_tokens or the context left).
  int64_t Remaining(const Sequence& seq) const;
  // The same on average over the members.
  double MeanRemaining(std::span<const std::pair<int, Sequence*>> members) const;
  // Before applying a step's verify results: its batch, the plan it ran (null:
  // plain), and the per-rank acceptance counters reset.
  void BeginApply(int batch, const Plan* plan);
  // Two micro-batches in flight (SpecEngineOptions::pipeline_groups).
  absl::Status PipelinedDecodeStep(std::span<const std::pair<int, Sequence*>> decoding);
  // The verify items of `members`, each with its tree (null: plain).
  std::vector<VerifyItem> VerifyItems(std::span<const std::pair<int, Sequence*>> members,
                                      std::span<const ProposeOutput* const> trees, int* tokens);
  void ApplyVerified(int id, Sequence& seq, const ProposeOutput* draft, const VerifyOutput& out);
  void RecordOverhead(std::chrono::steady_clock::time_point step_start);

  std::unique_ptr<Drafter> owned_draft_;
  std::unique_ptr<TargetWorker> owned_target_;
  DraftBackend* draft_;
  TargetBackend& target_;
  ModelFacts facts_;
  SpecEngineOptions options_;
  int max_context_;
  std::unique_ptr<Planner> planner_;
  std::map<int, std::unique_ptr<Sequence>> sequences_;
  int next_id_ = 0;
  int turn_ = 0;                    // pipelined: the group that verifies next
  PipelineGrouping grouping_;       // pipelined: two groups or one
  double last_passes_seconds_ = 0;  // the decode step's pass time (overlapped: the wall)
  bool last_step_prefilled_ = false;
  std::optional<std::chrono::steady_clock::time_point> last_decode_end_;
  StepStats last_;
  int64_t decoded_tokens_ = 0, sequence_steps_ = 0, accepted_total_ = 0, prefill_total_ = 0;
  double decode_seconds_ = 0, prefill_seconds_ = 0;
};

// Checks that a draft can propose tokens for a target: same vocabulary, piece by piece.
absl::Status CheckSameVocabulary(const LoadedModel& target, const LoadedModel& draft);

}  // namespace specserve
