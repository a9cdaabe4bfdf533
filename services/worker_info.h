// The static part of a worker's Info answer: the model's identity, vocabulary
// fingerprint and the figures the router's planner prior needs. A draft adds its
// window (sinks, window, window_tokens).
#pragma once

#include "common/model/loaded_model.h"
#include "specserve/v1/worker.pb.h"

namespace specserve {

v1::WorkerInfo MakeWorkerInfo(const LoadedModel& model, int max_context, int max_tree_nodes,
                              int max_batch);

}  // namespace specserve
