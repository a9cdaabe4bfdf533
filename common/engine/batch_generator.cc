#include "common/engine/batch_generator.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_format.h"
#include "common/util/status_macros.h"

namespace specserve {

BatchGenerator::BatchGenerator(Model& model, BatchGeneratorOptions options)
    : model_(model), options_(options), stop_ids_(StopTokenIds(model.loaded())) {
  max_context_ = options.max_context > 0 ? options.max_context : model.config().context_length;
  if (max_context_ <= 0) max_context_ = 2048;
  options_.max_tokens_per_step = std::max(1, options_.max_tokens_per_step);
}

absl::StatusOr<int> BatchGenerator::Add(const GenerationRequest& request) {
  RETURN_IF_ERROR(ValidateGenerationRequest(request, model_.config().vocab_size, max_context_));
  auto seq = std::make_unique<Sequence>();
  seq->request = request;
  seq->state.tokens = request.prompt;
  seq->state.prompt_tokens = static_cast<int>(request.prompt.size());
  ASSIGN_OR_RETURN(seq->cache, model_.MakeFullCache(max_context_));
  seq->rng.Seed(request.sampling.seed);
  if (request.max_new_tokens == 0) seq->state.finish = FinishReason::kLength;
  const int id = next_id_++;
  sequences_[id] = std::move(seq);
  return id;
}

bool BatchGenerator::HasLive() const { return live_count() > 0; }

int BatchGenerator::live_count() const {
  int n = 0;
  for (const auto& [id, seq] : sequences_) n += seq->state.finished() ? 0 : 1;
  return n;
}

absl::Status BatchGenerator::Step() {
  // Every live sequence gets its uncached history, within the per-step token budget.
  // Decoding sequences (one token each) go first so a long prefill cannot starve them.
  std::vector<Sequence*> live;
  for (auto& [id, seq] : sequences_) {
    if (!seq->state.finished()) live.push_back(seq.get());
  }
  std::stable_sort(live.begin(), live.end(), [](const Sequence* a, const Sequence* b) {
    const auto backlog = [](const Sequence* s) {
      return static_cast<int64_t>(s->state.tokens.size()) - s->cache->committed_tokens();
    };
    return backlog(a) < backlog(b);
  });
  std::vector<ForwardSequence> batch;
  std::vector<Sequence*> members;
  std::vector<int32_t> last_rows;
  last_rows.reserve(live.size());
  int budget = options_.max_tokens_per_step;
  bool any_prefill = false;
  for (Sequence* seq : live) {
    const int64_t cached = seq->cache->committed_tokens();
    const int64_t backlog = static_cast<int64_t>(seq->state.tokens.size()) - cached;
    const int n = static_cast<int>(std::min<int64_t>(backlog, budget));
    if (n <= 0) break;
    budget -= n;
    ForwardSequence fs;
    fs.cache = seq->cache.get();
    fs.tokens = std::span<const int32_t>(seq->state.tokens).subspan(cached, n);
    if (n == backlog) {
      last_rows.push_back(n - 1);
      fs.logit_rows = std::span<const int32_t>(&last_rows.back(), 1);
    }
    any_prefill |= n > 1;
    batch.push_back(fs);
    members.push_back(seq);
  }
  if (batch.empty()) return absl::OkStatus();

  // Greedy rows keep their argmax only; sampled rows their whole row.
  needs_.clear();
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch[i].logit_rows.empty()) {
      needs_.push_back(LogitRowNeeds{.full = !members[i]->request.sampling.greedy()});
    }
  }
  logit_rows_.Reset(needs_, model_.config().vocab_size);
  const auto start = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(model_.ForwardReduced(batch, &logit_rows_));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  int logit_row = 0;
  int64_t fed = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    Sequence* seq = members[i];
    seq->cache->CommitAll();
    fed += static_cast<int64_t>(batch[i].tokens.size());
    if (batch[i].logit_rows.empty()) continue;
    const int row = logit_row++;
    const int32_t token = seq->request.sampling.greedy()
                              ? logit_rows_.argmax(row)
                              : SampleToken(logit_rows_.full(row), seq->request.sampling, seq->rng);
    AppendGeneratedToken(seq->request, token, stop_ids_, max_context_, &seq->state);
  }
  if (any_prefill) {
    prefill_tokens_ += fed;
    prefill_seconds_ += seconds;
  } else {
    decode_tokens_ += fed;
    decode_seconds_ += seconds;
  }
  return absl::OkStatus();
}

}  // namespace specserve
