// Full per-sequence KV cache in fixed-size blocks: growing allocates a new
// block and never moves earlier rows, so a long generation costs no copying.
#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/kv/kv_cache.h"

namespace specserve {
namespace {

class FullKvCache final : public KvCache {
 public:
  FullKvCache(const KvShape& shape, int64_t max_tokens, int block_rows)
      : shape_(shape), max_tokens_(max_tokens), block_rows_(block_rows), layers_(shape.n_layers) {}

  int64_t committed_tokens() const override { return committed_; }
  int64_t stored_rows() const override { return committed_; }
  int64_t pending_rows() const override { return pending_; }

  absl::StatusOr<int> ReservePending(int n) override {
    if (n < 0) return absl::InvalidArgumentError(absl::StrFormat("cannot append %d rows", n));
    const int64_t needed = committed_ + pending_ + n;
    if (max_tokens_ > 0 && needed > max_tokens_) {
      return absl::OutOfRangeError(absl::StrFormat(
          "sequence would hold %d tokens, more than the KV cache limit of %d", needed,
          max_tokens_));
    }
    const int64_t blocks_needed = (needed + block_rows_ - 1) / block_rows_;
    const size_t block_floats = static_cast<size_t>(block_rows_) * shape_.kv_dim;
    for (Layer& layer : layers_) {
      while (static_cast<int64_t>(layer.k.size()) < blocks_needed) {
        layer.k.emplace_back(new float[block_floats]);
        layer.v.emplace_back(new float[block_floats]);
      }
    }
    const int first = pending_;
    pending_ += n;
    return first;
  }

  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override {
    for (int i = 0; i < n && first + i < pending_; ++i) {
      std::memcpy(RowK(layer, committed_ + first + i), k + static_cast<size_t>(i) * stride,
                  sizeof(float) * shape_.kv_dim);
      std::memcpy(RowV(layer, committed_ + first + i), v + static_cast<size_t>(i) * stride,
                  sizeof(float) * shape_.kv_dim);
    }
  }

  KvSegment PendingRow(int layer, int row) const override {
    auto* self = const_cast<FullKvCache*>(this);
    return KvSegment{self->RowK(layer, committed_ + row), self->RowV(layer, committed_ + row), 1};
  }

  void CommittedSegments(int layer, std::vector<KvSegment>* out) const override {
    out->clear();
    const Layer& l = layers_[layer];
    for (int64_t start = 0, b = 0; start < committed_; start += block_rows_, ++b) {
      const int rows = static_cast<int>(std::min<int64_t>(block_rows_, committed_ - start));
      out->push_back(KvSegment{l.k[b].get(), l.v[b].get(), rows});
    }
  }

  absl::Status Commit(std::span<const int32_t> keep) override {
    for (size_t j = 0; j < keep.size(); ++j) {
      if (keep[j] < 0 || keep[j] >= pending_ || (j > 0 && keep[j] <= keep[j - 1])) {
        pending_ = 0;
        return absl::InvalidArgumentError(absl::StrFormat(
            "kept row %d is not an ascending index below the %d pending rows", keep[j], pending_));
      }
    }
    // keep is ascending, so each destination row is at or before its source row.
    for (int layer = 0; layer < shape_.n_layers; ++layer) {
      for (size_t j = 0; j < keep.size(); ++j) {
        if (keep[j] == static_cast<int32_t>(j)) continue;
        std::memcpy(RowK(layer, committed_ + j), RowK(layer, committed_ + keep[j]),
                    sizeof(float) * shape_.kv_dim);
        std::memcpy(RowV(layer, committed_ + j), RowV(layer, committed_ + keep[j]),
                    sizeof(float) * shape_.kv_dim);
      }
    }
    committed_ += static_cast<int64_t>(keep.size());
    pending_ = 0;
    return absl::OkStatus();
  }

  void CommitAll() override {
    committed_ += pending_;
    pending_ = 0;
  }
  void TruncatePending(int n) override { pending_ = std::clamp(n, 0, pending_); }
  absl::Status SkipTokens(int64_t n) override {
    return absl::FailedPreconditionError(
        absl::StrFormat("a full KV cache cannot skip %d tokens: it keeps every token", n));
  }

  int64_t memory_bytes() const override {
    if (layers_.empty()) return 0;
    return static_cast<int64_t>(layers_[0].k.size()) * block_rows_ * shape_.kv_dim * 2 *
           sizeof(float) * shape_.n_layers;
  }

 private:
  struct Layer {
    std::vector<std::unique_ptr<float[]>> k, v;
  };
  float* RowK(int layer, int64_t row) {
    return layers_[layer].k[row / block_rows_].get() + (row % block_rows_) * shape_.kv_dim;
  }
  float* RowV(int layer, int64_t row) {
    return layers_[layer].v[row / block_rows_].get() + (row % block_rows_) * shape_.kv_dim;
  }

  KvShape shape_;
  int64_t max_tokens_;
  int block_rows_;
  std::vector<Layer> layers_;
  int64_t committed_ = 0;
  int pending_ = 0;
};

}  // namespace

std::unique_ptr<KvCache> MakeFullKvCache(const KvShape& shape, int64_t max_tokens,
                                         int block_rows) {
  return std::make_unique<FullKvCache>(shape, max_tokens, std::max(1, block_rows));
}

}  // namespace specserve
