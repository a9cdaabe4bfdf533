// The attention driver: cuts a batch into work items (sequence x query-token
// tile x key-row chunk), runs them on the pool with the ISA's primitives, and
// merges split chunks.
//
// Loop structure: an item streams its K/V rows once, in blocks of whole rows
// (all kv heads: contiguous memory, so the hardware prefetcher keeps up; a
// per-head walk would touch a few cache lines per 4 KB row and stall on every
// row). Within a block, for each kv head, every query head of the group and
// every new token of the tile (m = tokens x group query rows) goes through an
// online (flash style) softmax step: scores for the block, running max / sum
// update, P x V accumulate. So a decode step reads each sequence's KV once,
// whatever the group size or tree size. When there are fewer items than the
// pool can keep busy (batch 1 with a long context), the key rows are split
// into chunks whose partial (output, max, sum) triples are merged at the end
// (split-K).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/ops/attention_batch.h"
#include "common/ops/cpu/kernels.h"
#include "common/util/thread_pool.h"

namespace specserve::cpu {

class AttentionRunner {
 public:
  void Run(const KernelTable& kernels, ThreadPool& pool,
           std::span<const AttentionSequence> sequences, const AttentionShape& shape);

 private:
  struct Item {
    int seq = 0;
    int tok_begin = 0;  // query tokens [tok_begin, tok_end) of the sequence's new tokens
    int tok_end = 0;
    int64_t row_begin = 0;  // key rows of the item: cached rows first, then new rows
    int64_t row_end = 0;
    int64_t partial = -1;  // index of the item's partial result, -1: writes the output
  };
  struct Scratch {
    std::vector<float> q, o, s, row_max, row_sum;
  };

  void RunItem(const Item& item, Scratch& scratch, std::span<const AttentionSequence> sequences,
               const AttentionShape& shape, const KernelTable& kernels);
  void Merge(std::span<const AttentionSequence> sequences, const AttentionShape& shape);

  std::vector<Item> items_;
  std::vector<Scratch> scratch_;             // one per pool thread
  std::vector<std::vector<uint8_t>> masks_;  // per sequence: tree visibility n_new x n_new
  std::vector<int64_t> cached_rows_;         // per sequence
  // Split-K partials: for partial p, m rows of (o[d], max, sum).
  std::vector<float> partial_o_, partial_max_, partial_sum_;
  std::vector<int64_t> partial_offset_;  // first query row of each partial in the buffers
  std::vector<std::pair<int64_t, int>> split_groups_;  // (first item, chunk count)
};

}  // namespace specserve::cpu
