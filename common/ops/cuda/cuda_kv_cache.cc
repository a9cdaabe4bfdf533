#include "common/ops/cuda/cuda_kv_cache.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/kv/kept_rows.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/kernels.h"
#include "common/util/status_macros.h"

namespace specserve::cuda {

absl::StatusOr<std::unique_ptr<CudaKvCache>> CudaKvCache::Create(const KvShape& shape,
                                                                 int64_t max_tokens,
                                                                 cudaStream_t stream) {
  if (shape.n_layers <= 0 || shape.kv_dim <= 0 || max_tokens <= 0) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "a device KV cache needs positive n_layers, kv_dim and max_tokens (got %d, %d, %d)",
        shape.n_layers, shape.kv_dim, max_tokens));
  }
  std::unique_ptr<CudaKvCache> cache(new CudaKvCache(shape, max_tokens, stream));
  const size_t bytes =
      2 * static_cast<size_t>(shape.n_layers) * max_tokens * shape.kv_dim * sizeof(float);
  RETURN_IF_ERROR(cache->buffer_.Reserve(bytes));
  return cache;
}

float* CudaKvCache::K(int layer) const {
  return buffer_.as<float>() + 2 * static_cast<int64_t>(layer) * max_tokens_ * shape_.kv_dim;
}

float* CudaKvCache::V(int layer) const { return K(layer) + max_tokens_ * shape_.kv_dim; }

absl::StatusOr<int> CudaKvCache::ReservePending(int n) {
  if (n < 0) return absl::InvalidArgumentError("negative number of rows to reserve");
  if (committed_ + pending_ + n > max_tokens_) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "the device KV cache holds %d tokens: %d committed + %d pending + %d new do not fit",
        max_tokens_, committed_, pending_, n));
  }
  const int first = static_cast<int>(pending_);
  pending_ += n;
  return first;
}

void CudaKvCache::WritePending(int layer, int first, const float* k, const float* v, int n,
                               int stride) {
  if (n == 0 || !status_.ok()) return;
  const size_t width = static_cast<size_t>(shape_.kv_dim) * sizeof(float);
  const int64_t row = committed_ + first;
  for (auto [dst, src] : {std::pair{K(layer), k}, std::pair{V(layer), v}}) {
    status_ = CudaStatus(cudaMemcpy2DAsync(dst + row * shape_.kv_dim, width, src,
                                           static_cast<size_t>(stride) * sizeof(float), width, n,
                                           cudaMemcpyDeviceToDevice, stream_),
                         "KV append");
    if (!status_.ok()) return;
  }
}

void CudaKvCache::CommittedSegments(int layer, std::vector<KvSegment>* out) const {
  out->clear();
  if (committed_ > 0) out->push_back({K(layer), V(layer), static_cast<int>(committed_)});
}

KvSegment CudaKvCache::PendingRow(int layer, int row) const {
  const int64_t offset = (committed_ + row) * shape_.kv_dim;
  return {K(layer) + offset, V(layer) + offset, 1};
}

KvSegment CudaKvCache::PendingSegment(int layer) const {
  const int64_t offset = committed_ * shape_.kv_dim;
  return {K(layer) + offset, V(layer) + offset, static_cast<int>(pending_)};
}

absl::Status CudaKvCache::Commit(std::span<const int32_t> keep) {
  RETURN_IF_ERROR(ValidateKeptRows(keep, pending_));
  const int n = static_cast<int>(keep.size());
  // Kept rows already in place (a plain step's row, a chain's accepted prefix)
  // stay; the rest move, every layer's K and V in two launches, the indices
  // passed by value. This runs for every sequence at every step: a copy of
  // the indices from pageable memory made the host wait for the device there.
  int in_place = 0;
  while (in_place < n && keep[in_place] == in_place) ++in_place;
  for (int begin = in_place; begin < n; begin += MovedRows::kMax) {
    MovedRows moved;
    moved.n = std::min(n - begin, MovedRows::kMax);
    for (int i = 0; i < moved.n; ++i) {
      moved.src[i] = keep[begin + i];
      moved.dst[i] = begin + i;
    }
    const int planes = 2 * shape_.n_layers;
    RETURN_IF_ERROR(
        scratch_.Reserve(static_cast<size_t>(moved.n) * planes * shape_.kv_dim * sizeof(float)));
    RETURN_IF_ERROR(MoveKeptRows(buffer_.as<float>(), max_tokens_ * shape_.kv_dim, planes,
                                 shape_.kv_dim, committed_, moved, scratch_.as<float>(), stream_));
  }
  committed_ += n;
  pending_ = 0;
  return absl::OkStatus();
}

void CudaKvCache::CommitAll() {
  committed_ += pending_;
  pending_ = 0;
}

void CudaKvCache::TruncatePending(int n) {
  if (n >= 0 && n < pending_) pending_ = n;
}

absl::Status CudaKvCache::SkipTokens(int64_t n) {
  return absl::UnimplementedError("a full device KV cache cannot skip tokens");
}

}  // namespace specserve::cuda
