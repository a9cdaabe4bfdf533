#include "common/ops/cuda/cuda_window_kv_cache.h"

#include <algorithm>
#include <climits>

#include "absl/strings/str_format.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/util/status_macros.h"

namespace specserve::cuda {

absl::StatusOr<std::unique_ptr<CudaWindowKvCache>> CudaWindowKvCache::Create(const KvShape& shape,
                                                                             int sinks, int window,
                                                                             int max_pending,
                                                                             cudaStream_t stream) {
  if (shape.n_layers <= 0 || shape.kv_dim <= 0) {
    return absl::InvalidArgumentError(
        absl::StrFormat("a device window KV cache needs positive n_layers and kv_dim (got %d, %d)",
                        shape.n_layers, shape.kv_dim));
  }
  RETURN_IF_ERROR(ValidateWindowCacheShape(sinks, window, max_pending));
  std::unique_ptr<CudaWindowKvCache> cache(
      new CudaWindowKvCache(shape, sinks, window, max_pending, stream));
  cache->plane_rows_ = static_cast<int64_t>(sinks) + window + max_pending;
  const size_t bytes =
      2 * static_cast<size_t>(shape.n_layers) * cache->plane_rows_ * shape.kv_dim * sizeof(float);
  RETURN_IF_ERROR(cache->buffer_.Reserve(bytes));
  return cache;
}

float* CudaWindowKvCache::PlaneRow(int64_t plane, int64_t slot) const {
  return buffer_.as<float>() + (plane * plane_rows_ + slot) * shape_.kv_dim;
}

float* CudaWindowKvCache::Row(int layer, bool value, int64_t slot) const {
  return PlaneRow(2 * static_cast<int64_t>(layer) + (value ? 1 : 0), slot);
}

void CudaWindowKvCache::WritePending(int layer, int first, const float* k, const float* v, int n,
                                     int stride) {
  n = std::min(n, slots_.pending_rows() - first);
  if (n <= 0 || !status_.ok()) return;
  const size_t width = static_cast<size_t>(shape_.kv_dim) * sizeof(float);
  const int64_t slot = slots_.slots() + first;
  for (auto [dst, src] :
       {std::pair{Row(layer, false, slot), k}, std::pair{Row(layer, true, slot), v}}) {
    status_ =
        CudaStatus(cudaMemcpy2DAsync(dst, width, src, static_cast<size_t>(stride) * sizeof(float),
                                     width, n, cudaMemcpyDeviceToDevice, stream_),
                   "window KV append");
    if (!status_.ok()) return;
  }
}

void CudaWindowKvCache::CommittedSegments(int layer, std::vector<KvSegment>* out) const {
  out->clear();
  for (const SlotRun& run : slots_.StoredRuns()) {
    out->push_back(
        {Row(layer, false, run.first_slot), Row(layer, true, run.first_slot), run.n_rows});
  }
}

KvSegment CudaWindowKvCache::PendingRow(int layer, int row) const {
  const int64_t slot = slots_.slots() + row;
  return {Row(layer, false, slot), Row(layer, true, slot), 1};
}

KvSegment CudaWindowKvCache::PendingSegment(int layer) const {
  return {Row(layer, false, slots_.slots()), Row(layer, true, slots_.slots()),
          slots_.pending_rows()};
}

bool CudaWindowKvCache::ReadRow(int layer, int64_t row, float* k, float* v) const {
  if (layer < 0 || layer >= shape_.n_layers || row < 0 ||
      row >= stored_rows() + slots_.pending_rows()) {
    return false;
  }
  const int64_t slot =
      row < stored_rows() ? slots_.StoredRowSlot(row) : slots_.slots() + (row - stored_rows());
  const size_t bytes = static_cast<size_t>(shape_.kv_dim) * sizeof(float);
  for (auto [dst, value] : {std::pair{k, false}, std::pair{v, true}}) {
    if (dst != nullptr && cudaMemcpyAsync(dst, Row(layer, value, slot), bytes,
                                          cudaMemcpyDeviceToHost, stream_) != cudaSuccess) {
      return false;
    }
  }
  return cudaStreamSynchronize(stream_) == cudaSuccess;
}

absl::Status CudaWindowKvCache::Apply() {
  // Planes are plane_rows_ rows apart, so a run of rows is one 2-D copy over
  // every plane (K and V of every layer); one copy per plane where a plane is
  // wider than a 2-D copy's pitch may be.
  const size_t row_bytes = static_cast<size_t>(shape_.kv_dim) * sizeof(float);
  const size_t pitch = row_bytes * plane_rows_;
  const int64_t planes = 2 * static_cast<int64_t>(shape_.n_layers);
  const int64_t per_copy = pitch <= static_cast<size_t>(INT_MAX) ? planes : 1;
  for (const PendingCopy& copy : copies_) {
    const int64_t from = slots_.slots() + copy.pending_row;
    const size_t width = row_bytes * copy.n_rows;
    for (int64_t p = 0; p < planes; p += per_copy) {
      float* dst = PlaneRow(p, copy.slot);
      const float* src = PlaneRow(p, from);
      RETURN_IF_ERROR(CudaStatus(
          per_copy == 1
              ? cudaMemcpyAsync(dst, src, width, cudaMemcpyDeviceToDevice, stream_)
              : cudaMemcpy2DAsync(dst, pitch, src, pitch, width, static_cast<size_t>(per_copy),
                                  cudaMemcpyDeviceToDevice, stream_),
          "window KV commit"));
    }
  }
  return absl::OkStatus();
}

absl::Status CudaWindowKvCache::Commit(std::span<const int32_t> keep) {
  RETURN_IF_ERROR(status_);
  RETURN_IF_ERROR(slots_.Commit(keep, &copies_));
  status_ = Apply();
  return status_;
}

void CudaWindowKvCache::CommitAll() {
  slots_.CommitAll(&copies_);
  if (status_.ok()) status_ = Apply();
}

}  // namespace specserve::cuda
