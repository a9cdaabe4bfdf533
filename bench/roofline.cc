#include "bench/roofline.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "common/kv/kv_cache.h"
#include "common/kv/kv_window_view.h"
#include "common/sampling/rng.h"

namespace specserve {
namespace {

using Clock = std::chrono::steady_clock;

double ProcessCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

// Times one pass by the chosen clock.
class PassTimer {
 public:
  explicit PassTimer(const RooflineOptions& o) : options_(o) {
    wall_ = Clock::now();
    cpu_ = ProcessCpuSeconds();
  }
  double Seconds() const {
    if (options_.cpu_clock) return (ProcessCpuSeconds() - cpu_) / std::max(1, options_.threads);
    return std::chrono::duration<double>(Clock::now() - wall_).count();
  }

 private:
  const RooflineOptions& options_;
  Clock::time_point wall_;
  double cpu_;
};

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// Bytes of the weights one pass reads (every matrix once; embedding rows are negligible).
double WeightBytes(const LoadedModel& m) {
  double bytes = 0;
  for (const LayerWeights& l : m.weights.layers) {
    for (const WeightTensor* w :
         {&l.attn_norm, &l.wq, &l.wk, &l.wv, &l.wo, &l.ffn_norm, &l.w_gate, &l.w_down, &l.w_up}) {
      bytes += static_cast<double>(w->bytes());
    }
  }
  return bytes + static_cast<double>(m.weights.output.bytes() + m.weights.output_norm.bytes());
}

// `n` rows of random K/V committed into `cache` without running the model:
// a pass's cost depends on how much KV there is, not on its values.
// Appends n random rows to `cache`, at most `chunk` a pass (a window cache
// takes no more pending rows than it was made for; one that is fed more than
// it holds wraps its ring, as it does in use).
void FillCache(KvCache& cache, const KvShape& shape, int n, int chunk, Rng& rng) {
  std::vector<float> rows(static_cast<size_t>(std::min(n, chunk)) * shape.kv_dim);
  for (int done = 0; done < n;) {
    const int take = std::min(n - done, chunk);
    for (float& x : rows) x = static_cast<float>(rng.Uniform() - 0.5);
    const absl::StatusOr<int> first = cache.ReservePending(take);
    if (!first.ok()) return;
    for (int l = 0; l < shape.n_layers; ++l) {
      cache.WritePending(l, *first, rows.data(), rows.data(), take, shape.kv_dim);
    }
    cache.CommitAll();
    done += take;
  }
}

// One pass kind over a batch: its sequences and what they read.
struct Pass {
  std::string kind;
  bool reduced = false;  // logits as each row's argmax (ForwardReduced)
  int rows = 0;          // new tokens per sequence
  std::vector<std::unique_ptr<KvCache>> caches;
  // A draft level's caches are windows over these (self-speculation reads the
  // target's own rows: sinks and ring in place in its cache, as DraftWorker does).
  std::vector<std::unique_ptr<KvCache>> bases;
  std::vector<std::vector<int32_t>> tokens;
  std::vector<int32_t> parents, logit_rows;
  std::vector<ForwardSequence> seqs;
  double kv_rows = 0;  // KV rows read per sequence and layer
  std::vector<double> times;
  ForwardProfile profile;
};

void Describe(Pass& pass) {
  pass.seqs.clear();
  for (size_t s = 0; s < pass.caches.size(); ++s) {
    pass.seqs.push_back(ForwardSequence{
        pass.caches[s].get(), pass.tokens[s], {}, pass.parents, {}, pass.logit_rows});
  }
}

RooflineRow Summarise(const Pass& pass, const std::string& model, int batch, int context,
                      double weight_bytes, const KvShape& shape, double bandwidth,
                      const PeakFlops& peak) {
  RooflineRow row;
  row.model = model;
  row.kind = pass.kind;
  row.batch = batch;
  row.context = context;
  row.rows_per_sequence = pass.rows;
  row.logits = pass.reduced ? "reduced" : "full";
  row.seconds = Median(pass.times);
  row.bytes = weight_bytes +
              batch * pass.kv_rows * shape.n_layers * shape.kv_dim * 2.0 * KvTypeBytes(shape.type);
  const ForwardProfile& p = pass.profile;
  row.flops = (p.matmul_flops + p.attention_flops) / std::max(1, p.passes);
  if (p.total_seconds > 0) {
    row.matmul_share = p.matmul_seconds / p.total_seconds;
    row.attention_share = p.attention_seconds / p.total_seconds;
    row.other_share = p.other_seconds / p.total_seconds;
  }
  const double t_mem = row.bytes / bandwidth;
  const double t_flop = peak.fp32 > 0 ? row.flops / peak.fp32 : 0;
  row.bound_seconds = std::max(t_mem, t_flop);
  row.bound = t_flop > t_mem ? "compute" : "memory";
  return row;
}

void Print(const RooflineRow& r) {
  std::printf(
      "%-8s %-7s %5d %7d %4d %9.3f %8.2f %8.1f %8.1f %10.0f  %-7s %5.0f%%  %3.0f/%3.0f/%3.0f "
      "%9.2f\n",
      r.kind.c_str(), r.logits.c_str(), r.batch, r.context, r.rows_per_sequence, r.seconds * 1e3,
      r.bytes / 1e6, r.bytes / r.seconds / 1e9, r.flops / r.seconds / 1e9, r.tokens_per_second(),
      r.bound.c_str(), 100 * r.bound_seconds / r.seconds, 100 * r.matmul_share,
      100 * r.attention_share, 100 * r.other_share, r.logits_bytes / 1e6);
  std::fflush(stdout);
}

}  // namespace

std::vector<RooflineRow> RunRoofline(LlamaModel& llama, const std::string& name,
                                     const RooflineOptions& options, double bandwidth,
                                     const PeakFlops& peak) {
  const ModelConfig& c = llama.config();
  const KvShape shape = llama.kv_shape();
  const double weight_bytes = WeightBytes(llama.model());
  std::printf(
      "\n%s: dim %d, %d layers, %d/%d heads of %d, ffn %d, vocab %d, weights %.1f MB, "
      "KV %s\n",
      name.c_str(), c.dim, c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size,
      weight_bytes / 1e6, std::string(KvTypeName(shape.type)).c_str());
  std::printf("%-8s %-7s %5s %7s %4s %9s %8s %8s %8s %10s  %-7s %6s  %s %s\n", "kind", "logits",
              "batch", "context", "rows", "ms", "MB", "GB/s", "GFLOP/s", "tokens/s", "bound",
              "of it", "gemm/attn/rest %", "logits MB");
  std::vector<RooflineRow> out;
  Rng rng(1);
  std::vector<float> logits;

  if (options.passes.contains("prefill")) {  // Prefill: one prompt in one pass.
    Pass pass;
    pass.kind = "prefill";
    pass.rows = std::min(options.prefill_tokens, c.context_length - 1);
    pass.tokens.emplace_back(pass.rows);
    for (int32_t& t : pass.tokens[0]) t = static_cast<int32_t>(rng.Next() % c.vocab_size);
    pass.logit_rows = {pass.rows - 1};
    pass.kv_rows = pass.rows;
    for (int r = 0; r < 3; ++r) {
      pass.caches.clear();
      pass.caches.push_back(MakeFullKvCache(shape));
      Describe(pass);
      const PassTimer timer(options);
      if (!llama.Forward(pass.seqs, &logits, r > 0 ? &pass.profile : nullptr).ok()) return out;
      if (r > 0) pass.times.push_back(timer.Seconds());
    }
    out.push_back(Summarise(pass, name, 1, pass.rows, weight_bytes, shape, bandwidth, peak));
    out.back().logits_bytes = 4.0 * c.vocab_size;
    Print(out.back());
  }
  const bool reduced_logits = options.logits == "reduced";
  LogitRows reduced;

  for (int context : options.contexts) {
    if (context + options.verify_nodes >= c.context_length) {
      std::printf("(context %d skipped: the model's context is %d)\n", context, c.context_length);
      continue;
    }
    for (int batch : options.batches) {
      std::vector<Pass> passes;
      auto add = [&](const char* kind, bool reduced, int rows) {
        if (!options.passes.contains(kind)) return;
        passes.emplace_back();
        passes.back().kind = kind;
        passes.back().reduced = reduced;
        passes.back().rows = rows;
      };
      add("decode", reduced_logits, 1);
      add("verify", reduced_logits, options.verify_nodes);
      add("draft", reduced_logits, options.draft_width);
      const int window_rows = std::min(context, options.sinks + options.window);
      for (Pass& pass : passes) {
        const bool draft = pass.kind == "draft";
        for (int b = 0; b < batch; ++b) {
          const int max_pending = std::max(64, pass.rows);
          if (draft) {
            // The self-draft's view: the sinks and the last `window` rows of
            // the target's full cache, read in place (not a compact copy: in
            // the speculative loop its level's attention took 1.5x what a
            // separate window cache's did here), and its own pending rows.
            pass.bases.push_back(MakeFullKvCache(shape, 0));
            FillCache(*pass.bases.back(), shape, context, context, rng);
            auto view = std::make_unique<KvWindowView>(shape.n_layers, options.sinks,
                                                       options.window, max_pending);
            if (!view->Bind(*pass.bases.back(), context).ok()) return out;
            pass.caches.push_back(std::move(view));
          } else {
            pass.caches.push_back(MakeFullKvCache(shape, 0));
            FillCache(*pass.caches.back(), shape, context, context, rng);
          }
          pass.tokens.emplace_back(pass.rows);
          for (int32_t& t : pass.tokens.back()) t = static_cast<int32_t>(rng.Next() % c.vocab_size);
        }
        for (int i = 0; i < pass.rows; ++i) {
          pass.logit_rows.push_back(i);
          // verify: a chain (node i's parent is i - 1); draft: one level of siblings.
          pass.parents.push_back(pass.kind == "verify" ? i - 1 : -1);
        }
        if (pass.kind == "decode") pass.parents.clear();
        // Visible rows per token: the cache plus, on average, half the new ones.
        pass.kv_rows = (draft ? window_rows : context) + pass.rows;
        Describe(pass);
      }
      for (int s = 0; s < options.steps + 1; ++s) {
        // Interleaved, so load changes hit every kind alike; every other step in
        // reverse, so no kind always runs after the one that dirtied the caches.
        for (size_t k = 0; k < passes.size(); ++k) {
          Pass& pass = passes[s % 2 == 0 ? k : passes.size() - 1 - k];
          ForwardProfile step;
          if (pass.reduced) {  // greedy rows: the argmax (a draft row: its top candidates)
            const LogitRowNeeds needs{.top_n = pass.kind == "draft" ? options.draft_width : 0};
            reduced.Reset(std::vector<LogitRowNeeds>(pass.rows * batch, needs), c.vocab_size);
          }
          const PassTimer timer(options);
          const absl::Status st = pass.reduced ? llama.ForwardReduced(pass.seqs, &reduced, &step)
                                               : llama.Forward(pass.seqs, &logits, &step);
          if (!st.ok()) return out;
          const double t = timer.Seconds();
          for (auto& cache : pass.caches) cache->DropPending();  // the context stays fixed
          if (s == 0) continue;  // the first step warms caches and scratch memory
          pass.times.push_back(t);
          pass.profile.matmul_seconds += step.matmul_seconds;
          pass.profile.attention_seconds += step.attention_seconds;
          pass.profile.other_seconds += step.other_seconds;
          pass.profile.total_seconds += step.total_seconds;
          pass.profile.matmul_flops += step.matmul_flops;
          pass.profile.attention_flops += step.attention_flops;
          pass.profile.passes += step.passes;
        }
      }
      const size_t first = out.size();
      for (const Pass& pass : passes) {
        out.push_back(Summarise(pass, name, batch, context, weight_bytes, shape, bandwidth, peak));
        const double rows = static_cast<double>(pass.rows) * batch;
        out.back().logits_bytes =
            4.0 * rows *
            (pass.reduced ? llama.LogitChunkColumns(static_cast<int>(rows)) : c.vocab_size);
        Print(out.back());
      }
      if (passes.size() >= 2 && passes[0].kind == "decode" && passes[1].kind == "verify") {
        std::printf("  verify of %d / decode step: %.2fx (%s logits)\n", options.verify_nodes,
                    out[first + 1].seconds / out[first].seconds, options.logits.c_str());
      }
    }
  }
  return out;
}

}  // namespace specserve
