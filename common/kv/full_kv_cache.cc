// Full per-sequence KV cache in fixed-size blocks: growing allocates a new
// block and never moves earlier rows, so a long generation costs no copying.
// Each block holds, per layer, the tiles (kv_layout.h) of block_rows rows for
// every kv head: kv head h's K is block_rows * head_dim contiguous elements.
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/kv/kept_rows.h"
#include "common/kv/kv_block_pool.h"
#include "common/kv/kv_cache.h"
#include "common/ops/kv_layout.h"

namespace specserve {
namespace {

class FullKvCache final : public KvCache {
 public:
  FullKvCache(const KvShape& shape, int64_t max_tokens, int block_rows)
      : shape_(shape), max_tokens_(max_tokens), block_rows_(block_rows), layers_(shape.n_layers) {
    region_.type = shape.type;
    region_.n_kv_heads = shape.heads();
    region_.head_dim = shape.head_dim();
    region_.head_stride = static_cast<int64_t>(block_rows_) * region_.head_dim;
  }

  int64_t committed_tokens() const override { return committed_; }
  int64_t stored_rows() const override { return committed_; }
  int64_t pending_rows() const override { return pending_; }

  absl::StatusOr<int> ReservePending(int n) override {
    if (n < 0) return absl::InvalidArgumentError(absl::StrFormat("cannot append %d rows", n));
    const int64_t needed = committed_ + pending_ + n;
    if (max_tokens_ > 0 && needed > max_tokens_) {
      return absl::OutOfRangeError(
          absl::StrFormat("sequence would hold %d tokens, more than the KV cache limit of %d",
                          needed, max_tokens_));
    }
    const int64_t blocks_needed = (needed + block_rows_ - 1) / block_rows_;
    const size_t bytes = BlockElements() * KvTypeBytes(shape_.type);
    KvBlockPool& pool = KvBlockPool::Shared();
    for (Layer& layer : layers_) {
      while (static_cast<int64_t>(layer.k.size()) < blocks_needed) {
        layer.k.push_back(pool.GetUnzeroed(bytes));
        layer.v.push_back(pool.GetUnzeroed(bytes));
      }
    }
    ZeroTilesBelow(needed);
    const int first = pending_;
    pending_ += n;
    return first;
  }

  void WritePending(int layer, int first, const float* k, const float* v, int n,
                    int stride) override {
    for (int i = 0; i < n && first + i < pending_; ++i) {
      const int64_t row = committed_ + first + i;
      KvStoreRow(region_, K(layer, row), V(layer, row), row % block_rows_,
                 k + static_cast<size_t>(i) * stride, v + static_cast<size_t>(i) * stride);
    }
  }

  bool Tiles(int layer, KvTiles* out) const override {
    out->type = shape_.type;
    out->n_kv_heads = region_.n_kv_heads;
    out->head_dim = region_.head_dim;
    out->committed.clear();
    out->pending.clear();
    AppendRuns(layer, 0, committed_, &out->committed);
    AppendRuns(layer, committed_, committed_ + pending_, &out->pending);
    return true;
  }

  bool ReadRow(int layer, int64_t row, float* k, float* v) const override {
    if (row < 0 || row >= committed_ + pending_) return false;
    KvLoadRow(region_, K(layer, row), V(layer, row), row % block_rows_, k, v);
    return true;
  }

  absl::Status Commit(std::span<const int32_t> keep) override {
    if (absl::Status st = ValidateKeptRows(keep, pending_); !st.ok()) {
      pending_ = 0;
      return st;
    }
    // keep is ascending, so each destination row is at or before its source row.
    for (int layer = 0; layer < shape_.n_layers; ++layer) {
      for (size_t j = 0; j < keep.size(); ++j) {
        if (keep[j] == static_cast<int32_t>(j)) continue;
        const int64_t from = committed_ + keep[j], to = committed_ + static_cast<int64_t>(j);
        KvCopyRow(region_, K(layer, from), V(layer, from), from % block_rows_, region_,
                  K(layer, to), V(layer, to), to % block_rows_);
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
    return static_cast<int64_t>(layers_[0].k.size()) * BlockElements() * 2 *
           KvTypeBytes(shape_.type) * shape_.n_layers;
  }

 private:
  struct Layer {
    std::vector<KvBlock> k, v;
  };
  int64_t BlockElements() const { return region_.head_stride * region_.n_kv_heads; }
  // Zeroes the tiles (every layer, K and V, every kv head) from zeroed_rows_
  // up to the one holding row `rows` - 1. Attention reads whole tiles and
  // multiplies their masked lanes by zero, so the lanes past the last row
  // must hold numbers, never a recycled block's garbage; tiles past the
  // reserved rows are never read, and are zeroed only when reached.
  void ZeroTilesBelow(int64_t rows) {
    const size_t tile_bytes =
        static_cast<size_t>(kKvTileRows) * region_.head_dim * KvTypeBytes(shape_.type);
    for (; zeroed_rows_ < rows; zeroed_rows_ += kKvTileRows) {
      const int64_t at = zeroed_rows_ % block_rows_ * region_.head_dim;  // the tile's element
      for (int layer = 0; layer < shape_.n_layers; ++layer) {
        for (uint8_t* block : {K(layer, zeroed_rows_), V(layer, zeroed_rows_)}) {
          for (int h = 0; h < region_.n_kv_heads; ++h) {
            std::memset(block + (h * region_.head_stride + at) * KvTypeBytes(shape_.type), 0,
                        tile_bytes);
          }
        }
      }
    }
  }
  // The block holding `row`.
  uint8_t* K(int layer, int64_t row) const { return layers_[layer].k[row / block_rows_].get(); }
  uint8_t* V(int layer, int64_t row) const { return layers_[layer].v[row / block_rows_].get(); }
  // Rows [begin, end) as one run per block.
  void AppendRuns(int layer, int64_t begin, int64_t end, std::vector<KvRun>* out) const {
    for (int64_t r = begin; r < end;) {
      const int64_t block_end = (r / block_rows_ + 1) * block_rows_;
      const int64_t e = std::min(end, block_end);
      out->push_back(KvRun{K(layer, r), V(layer, r), region_.head_stride,
                           static_cast<int>(r % block_rows_), static_cast<int>(e - r)});
      r = e;
    }
  }

  KvShape shape_;
  int64_t max_tokens_;
  int block_rows_;
  KvRegionLayout region_;
  std::vector<Layer> layers_;
  int64_t committed_ = 0;
  int pending_ = 0;
  int64_t zeroed_rows_ = 0;  // a multiple of kKvTileRows (ZeroTilesBelow)
};

}  // namespace

std::unique_ptr<KvCache> MakeFullKvCache(const KvShape& shape, int64_t max_tokens, int block_rows) {
  if (block_rows <= 0) {
    const int64_t head_bytes = static_cast<int64_t>(shape.head_dim()) * KvTypeBytes(shape.type);
    int64_t rows = std::clamp<int64_t>(32768 / std::max<int64_t>(head_bytes, 1), 256, 2048);
    if (max_tokens > 0) rows = std::min(rows, max_tokens);
    block_rows = static_cast<int>(rows);
  }
  const int rows = (std::max(1, block_rows) + kKvTileRows - 1) / kKvTileRows * kKvTileRows;
  return std::make_unique<FullKvCache>(shape, max_tokens, rows);
}

}  // namespace specserve
