#include "common/engine/pass_cost.h"

#include <algorithm>

namespace specserve {

double PassCost::RooflineSeconds(double bytes_per_second, double flops_per_second) const {
  return std::max(bytes / bytes_per_second, flops / flops_per_second);
}

double KvBytesPerToken(const ModelConfig& config, int kv_element_bytes) {
  return 2.0 * kv_element_bytes * config.n_layers * config.kv_dim();
}

double WeightBytes(const LoadedModel& model) {
  double bytes = static_cast<double>(model.weights.output.bytes());
  for (const LayerWeights& l : model.weights.layers) {
    for (const WeightTensor* w : l.matrices()) bytes += static_cast<double>(w->bytes());
  }
  return bytes;
}

double WeightElements(const LoadedModel& model) {
  double elements = static_cast<double>(model.weights.output.elements());
  for (const LayerWeights& l : model.weights.layers) {
    for (const WeightTensor* w : l.matrices()) elements += static_cast<double>(w->elements());
  }
  return elements;
}

PassCost EstimatePass(const LoadedModel& model, const PassShape& shape, int kv_element_bytes) {
  const ModelConfig& c = model.config;
  const double layer_params =
      WeightElements(model) - static_cast<double>(model.weights.output.elements());
  const double rows = static_cast<double>(shape.batch) * shape.new_tokens;
  const double logit_rows = static_cast<double>(shape.batch) * shape.logit_rows;
  PassCost cost;
  // Weights are read once per pass; each sequence reads its KV rows once for all
  // of its query rows, plus writes its new rows.
  cost.bytes = WeightBytes(model) + shape.batch * (shape.attended + shape.new_tokens) *
                                        KvBytesPerToken(c, kv_element_bytes);
  // Projections: 2 flops per weight per row; the output projection only for logit rows.
  cost.flops = 2.0 * layer_params * rows +
               2.0 * static_cast<double>(model.weights.output.elements()) * logit_rows;
  // Attention: q·k and p·v, 2 flops each per head dimension per attended row.
  cost.flops += 4.0 * c.n_layers * c.q_dim() * rows * (shape.attended + 0.5 * shape.new_tokens);
  return cost;
}

}  // namespace specserve
