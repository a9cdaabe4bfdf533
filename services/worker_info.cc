#include "services/worker_info.h"

#include "common/speculation/spec_engine.h"
#include "services/proto_convert.h"

namespace specserve {

v1::WorkerInfo MakeWorkerInfo(const LoadedModel& model, int max_context, int max_tree_nodes,
                              int max_batch) {
  const ModelFacts facts = FactsOf(model, &model, 0, 0);
  v1::WorkerInfo info;
  info.set_model(model.path);
  info.set_vocab_size(model.config.vocab_size);
  info.set_vocab_fingerprint(VocabularyFingerprint(model.vocab.pieces));
  info.set_bos_id(model.vocab.bos_id);
  info.set_eos_id(model.vocab.eos_id);
  info.set_context_length(model.config.context_length);
  info.set_max_context(max_context);
  info.set_max_tree_nodes(max_tree_nodes);
  info.set_max_batch(max_batch);
  info.set_weight_bytes(facts.prior.target_weight_bytes);
  info.set_flops_per_token(facts.prior.target_flops_per_token);
  info.set_kv_bytes_per_token(facts.prior.target_kv_bytes_per_token);
  return info;
}

}  // namespace specserve
