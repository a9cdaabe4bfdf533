// libFuzzer target: Propose requests with arbitrary items through the real Draft
// service and worker (see worker_rpc_fuzz.h).
#include "common/speculation/draft_worker.h"
#include "draft_service/draft_service.h"
#include "fuzz/worker_rpc_fuzz.h"

using namespace specserve;
using namespace specserve::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static DraftWorker* worker = [] {
    DraftWorkerOptions o;
    o.sinks = 2;
    o.window = 8;
    o.max_tree_nodes = 24;
    o.max_sequences = 16;
    return new DraftWorker(TinyLlama(), o);
  }();
  static DraftService* service =
      new DraftService(*worker, MakeWorkerInfo(TinyModel(), 128, 24, 6), FuzzLimits(), nullptr);
  FuzzedDataProvider in(data, size);
  const int calls = in.ConsumeIntegralInRange<int>(1, 4);
  for (int c = 0; c < calls && in.remaining_bytes() > 0; ++c) {
    v1::ProposeRequest request;
    request.set_router_instance(in.ConsumeIntegralInRange<uint64_t>(0, 2));
    const int items = in.ConsumeIntegralInRange<int>(0, 8);
    for (int i = 0; i < items; ++i) {
      v1::ProposeItem* item = request.add_items();
      item->set_sequence_id(SmallOrAny(in, 3));
      int64_t start = 0;
      uint64_t hash = 0;
      FillHistory(in, &start, &hash, item->mutable_tokens());
      item->set_start(start);
      item->set_prefix_hash(hash);
      const int accepted = in.ConsumeIntegralInRange<int>(0, 4);
      for (int a = 0; a < accepted; ++a) {
        item->add_previous_accepted(in.ConsumeIntegralInRange<int32_t>(-2, 30));
      }
      const int nodes = in.ConsumeIntegralInRange<int>(0, 30);
      for (int n = 0; n < nodes; ++n) {
        item->mutable_shape()->add_parents(Parent(in, n));
        if (in.ConsumeIntegralInRange<int>(0, 15) != 0) {  // ranks sometimes missing
          item->mutable_shape()->add_ranks(in.ConsumeIntegralInRange<int32_t>(-1, 8));
        }
      }
      FillSampling(in, item->mutable_sampling());
    }
    v1::ProposeResponse response;
    const grpc::Status st = service->Propose(nullptr, &request, &response);
    CheckStatus(st.error_code(), st.error_message(), "Propose");
    if (!st.ok()) continue;
    if (response.results_size() != request.items_size()) std::abort();
    for (const v1::ProposeResult& r : response.results()) {
      CheckStatus(r.status().code(), r.status().message(), "Propose item");
    }
  }
  // Each input starts from nothing.
  for (uint64_t router = 0; router <= 2; ++router) {
    for (int64_t id = 0; id <= 3; ++id) worker->Release(router, id);
  }
  return 0;
}
