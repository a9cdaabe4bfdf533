// The attention driver of the CPU backend: cuts a batch into work items
// (sequence x kv head x a few tokens: every query head of the kv head's group
// for those tokens), gathers each item's tiles and each tree token's extra
// rows, and runs the ISA's AttentionRowsFn on the pool.
//
// An item streams its kv head's keys and values once for all its rows (GQA
// group heads and tokens: a verify pass of a chain or a tree reads each KV
// row once per sequence, as a plain step does). Items never split a row's
// keys, and the kernel's arithmetic for a row depends only on that row's
// query and visible keys (kernels.h), so results are independent of the
// batch, the thread count and a token's place in a tree.
//
// Sequences in the row-major form (AttentionSequence::runs empty: tests,
// callers without a tiled cache) are first copied into a tiled scratch
// region, with the causal or tree mask turned into visible / extra lists.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/ops/attention_batch.h"
#include "common/ops/cpu/kernels.h"
#include "common/util/aligned_vector.h"
#include "common/util/thread_pool.h"

namespace specserve::cpu {

class AttentionRunner {
 public:
  // Safe to call from several threads at once.
  static void Run(const KernelTable& kernels, ThreadPool& pool,
                  std::span<const AttentionSequence> sequences, const AttentionShape& shape);
  // The prefetch spans Run gives the item before one whose kv head reads
  // `rows` rows of K and V tiles from `k` and `v` (benchmarks: the kernel fed
  // as Run feeds it).
  static void PrefetchSpansFor(const void* k, const void* v, int rows, int head_dim, KvType type,
                               std::vector<PrefetchSpan>& spans);

 private:
  struct Item {
    int seq = 0;
    int kv_head = 0;
    int tok_begin = 0;  // tokens [tok_begin, tok_end) of the sequence's new tokens
    int tok_end = 0;
  };
  // A row-major sequence copied into the tiled form.
  struct Converted {
    std::vector<float> k, v;
    std::vector<int32_t> visible, extra_begin, extra;
    AttentionSequence seq;
  };
  struct Scratch {
    AlignedVector<float> q, s, extra_kv;
    std::vector<AttentionTile> tiles, extra_tiles, token_tiles;
    std::vector<int64_t> run_start;
    std::vector<int32_t> visible, extra_offset;
    std::vector<float*> out;
    std::vector<PrefetchSpan> next;  // the next item's K and V (ItemSpans)
    // The kernel's problem, every field set by each item (a fresh one was
    // zeroed with a rep stos per item: a seventh of RunItem's own time on a
    // draft level's short items).
    AttentionRowsProblem problem;
  };

  // One Run's items and converted sequences. Kept per calling thread, so that
  // several threads (Ops::RunShards) may call Run at once.
  struct CallState {
    std::vector<const AttentionSequence*> tiled;
    std::vector<Converted> converted;
    std::vector<Item> items;
  };

  static const AttentionSequence& Tiled(const AttentionSequence& seq, const AttentionShape& shape,
                                        Converted& c);
  static void RunItem(const Item& item, const AttentionSequence& seq, const AttentionShape& shape,
                      const KernelTable& kernels, Scratch& sc);
  // Appends to `spans` the first K and V bytes `item` reads (kAheadBytes in
  // all, in alternating pieces of K and V).
  static void ItemSpans(const Item& item, const AttentionSequence& seq, const AttentionShape& shape,
                        std::vector<PrefetchSpan>& spans);
};

}  // namespace specserve::cpu
