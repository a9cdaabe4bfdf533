// libFuzzer target: Verify requests with arbitrary items (prefill and verify
// kinds, trees, draft distributions) through the real Target service and worker
// (see worker_rpc_fuzz.h).
#include "fuzz/worker_rpc_fuzz.h"
#include "target_service/target_service.h"

using namespace specserve;
using namespace specserve::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static TargetWorker* worker = [] {
    TargetWorkerOptions o;
    o.max_context = 128;
    o.max_tree_nodes = 24;
    o.max_sequences = 16;
    return new TargetWorker(TinyLlama(), o);
  }();
  static TargetService* service =
      new TargetService(*worker, MakeWorkerInfo(TinyModel(), 128, 24, 6), FuzzLimits(), nullptr);
  FuzzedDataProvider in(data, size);
  const int calls = in.ConsumeIntegralInRange<int>(1, 4);
  for (int c = 0; c < calls && in.remaining_bytes() > 0; ++c) {
    v1::VerifyRequest request;
    request.set_router_instance(in.ConsumeIntegralInRange<uint64_t>(0, 2));
    const int items = in.ConsumeIntegralInRange<int>(0, 8);
    for (int i = 0; i < items; ++i) {
      v1::VerifyItem* item = request.add_items();
      item->set_sequence_id(SmallOrAny(in, 3));
      item->set_kind(static_cast<v1::VerifyKind>(in.ConsumeIntegralInRange<int>(0, 2)));
      int64_t start = 0;
      uint64_t hash = 0;
      FillHistory(in, &start, &hash, item->mutable_tokens());
      item->set_start(start);
      item->set_prefix_hash(hash);
      const int nodes = in.ConsumeIntegralInRange<int>(0, 30);
      for (int n = 0; n < nodes; ++n) {
        item->mutable_tree()->add_tokens(TokenValue(in));
        if (in.ConsumeIntegralInRange<int>(0, 15) != 0) {  // parents sometimes missing
          item->mutable_tree()->add_parents(Parent(in, n));
        }
      }
      if (in.ConsumeBool()) {  // draft distributions, one per node and the root (mostly)
        const int rows = in.ConsumeBool() ? nodes + 1 : in.ConsumeIntegralInRange<int>(0, 32);
        for (int r = 0; r < rows; ++r) {
          v1::NodeDistribution* q = item->add_q();
          const int k = in.ConsumeIntegralInRange<int>(0, 6);
          for (int j = 0; j < k; ++j) {
            q->add_tokens(TokenValue(in));
            if (in.ConsumeIntegralInRange<int>(0, 15) != 0) {
              q->add_probs(in.ConsumeBool() ? in.ConsumeFloatingPointInRange<float>(0, 1)
                                            : in.ConsumeFloatingPoint<float>());
            }
          }
        }
      }
      FillSampling(in, item->mutable_sampling());
    }
    v1::VerifyResponse response;
    const grpc::Status st = service->Verify(nullptr, &request, &response);
    CheckStatus(st.error_code(), st.error_message(), "Verify");
    if (!st.ok()) continue;
    if (response.results_size() != request.items_size()) std::abort();
    for (const v1::VerifyResult& r : response.results()) {
      CheckStatus(r.status().code(), r.status().message(), "Verify item");
      if (r.status().code() == 0 &&
          (r.extra_token() < -1 || r.extra_token() >= kVocab)) {  // -1: a prefill
        std::abort();
      }
    }
  }
  for (uint64_t router = 0; router <= 2; ++router) {
    for (int64_t id = 0; id <= 3; ++id) worker->Release(router, id);
  }
  return 0;
}
