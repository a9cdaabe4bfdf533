#include "bench/step_log.h"

#include "absl/strings/str_format.h"

namespace specserve {

std::string StepLogHeader() {
  return "model,draft,context,batch,mode,run,step,step_batch,mean_context,nodes,depth,exploring,"
         "speculated_sequences,predicted_tokens,gained_tokens,tokens_per_sequence,draft_ms,"
         "verify_ms,step_ms,draft_passes";
}

void WriteStepLogRow(std::ostream& out, const StepLogRun& run, int index, const StepStats& step,
                     double step_seconds) {
  std::string passes;
  for (const PassTime& pass : step.draft_passes) {
    passes += absl::StrFormat("%s%d:%.4f", passes.empty() ? "" : " ", pass.tokens_per_sequence,
                              1e3 * pass.seconds);
  }
  const double gained =
      step.speculated_sequences > 0
          ? static_cast<double>(step.speculated_generated_tokens) / step.speculated_sequences
          : 0.0;
  out << absl::StrFormat(
      "%s,%s,%d,%d,%s,%d,%d,%d,%.1f,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%s\n", run.model,
      run.draft, run.context, run.batch, run.mode, run.run, index, step.batch, step.mean_context,
      step.tree_nodes, step.tree_depth, step.exploring ? 1 : 0, step.speculated_sequences,
      step.speculated_sequences > 0 ? step.predicted_tokens : 0.0, gained,
      step.batch > 0 ? static_cast<double>(step.generated_tokens) / step.batch : 0.0,
      1e3 * step.draft_seconds, 1e3 * step.verify_seconds, 1e3 * step_seconds, passes);
}

}  // namespace specserve
