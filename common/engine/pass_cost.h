// What one forward pass must move and compute, from the model's shape alone: the
// bytes it reads (weights once per pass, each sequence's KV rows once) and the
// floating-point operations it does (projections and attention). The one owner
// of this arithmetic: the planner's prior, the benchmarks' roofline view and
// their predicted speedups all use it.
#pragma once

#include <cstdint>

#include "common/model/loaded_model.h"

namespace specserve {

struct PassShape {
  int batch = 1;        // sequences in the pass
  double attended = 0;  // KV rows each sequence's queries attend to (mean)
  int new_tokens = 1;   // new rows per sequence (a tree's nodes + its root)
  int logit_rows = 1;   // rows per sequence that go through the output projection
};

struct PassCost {
  double bytes = 0;  // read from memory
  double flops = 0;  // multiply-adds count 2

  // The roofline's bound: the pass is limited by the slower of the two.
  double RooflineSeconds(double bytes_per_second, double flops_per_second) const;
  PassCost& operator+=(const PassCost& o) {
    bytes += o.bytes;
    flops += o.flops;
    return *this;
  }
};

// Bytes of one cached token's K and V over all layers, at `kv_element_bytes` per value.
double KvBytesPerToken(const ModelConfig& config, int kv_element_bytes = 4);
// Bytes of the matrices a pass reads (layer projections and the output projection).
double WeightBytes(const LoadedModel& model);
// Elements of the same matrices (a row's multiply-adds through all of them).
double WeightElements(const LoadedModel& model);

PassCost EstimatePass(const LoadedModel& model, const PassShape& shape, int kv_element_bytes = 4);

}  // namespace specserve
