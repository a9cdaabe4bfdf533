#include "common/kv/window_slots.h"

#include <algorithm>
#include <string>
#include <vector>

#include "common/kv/kv_cache.h"
#include "common/sampling/rng.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

// Slot memory driven by WindowSlots' copies: what a cache following it holds.
// Rows are token ids; pending rows are written as they are reserved.
struct SlotMemory {
  explicit SlotMemory(const WindowSlots& s) : slots(s.slots(), -1), pending(s.max_pending(), -1) {}
  void Apply(const std::vector<PendingCopy>& copies) {
    for (const PendingCopy& c : copies) {
      for (int i = 0; i < c.n_rows; ++i) slots.at(c.slot + i) = pending.at(c.pending_row + i);
    }
  }
  // The stored rows in attention order, read through StoredRuns and StoredRowSlot.
  std::vector<int> Stored(const WindowSlots& s) const {
    std::vector<int> by_runs, by_row;
    for (const SlotRun& run : s.StoredRuns()) {
      for (int i = 0; i < run.n_rows; ++i) by_runs.push_back(slots.at(run.first_slot + i));
    }
    for (int64_t r = 0; r < s.stored_rows(); ++r) by_row.push_back(slots.at(s.StoredRowSlot(r)));
    EXPECT_EQ(by_runs, by_row);
    return by_runs;
  }
  std::vector<int> slots, pending;
};

// What a window cache must hold: the sinks, then the last W committed tokens
// after the last gap, oldest first.
std::vector<int> ExpectedStored(int64_t committed, int64_t gap_end, int sinks, int window) {
  std::vector<int> out;
  for (int64_t t = 0; t < std::min<int64_t>(committed, sinks); ++t) out.push_back(t);
  const int64_t from = std::max<int64_t>({sinks, committed - window, gap_end});
  for (int64_t t = from; t < committed; ++t) out.push_back(t);
  return out;
}

TEST(WindowSlotsTest, CommitAllCopiesRunsIntoSinksThenRing) {
  WindowSlots s(2, 8, 16);
  ASSERT_EQ(*s.ReservePending(5), 0);
  std::vector<PendingCopy> copies;
  s.CommitAll(&copies);
  ASSERT_EQ(copies.size(), 2u);  // never one run across the sinks/ring boundary
  EXPECT_EQ((std::vector<int>{copies[0].pending_row, copies[0].slot, copies[0].n_rows}),
            (std::vector<int>{0, 0, 2}));
  EXPECT_EQ((std::vector<int>{copies[1].pending_row, copies[1].slot, copies[1].n_rows}),
            (std::vector<int>{2, 2, 3}));
  EXPECT_EQ(s.committed_tokens(), 5);
  EXPECT_EQ(s.stored_rows(), 5);
  EXPECT_EQ(s.pending_rows(), 0);
}

TEST(WindowSlotsTest, ACommitLongerThanTheWindowCopiesOnlyTheRowsItKeeps) {
  WindowSlots s(1, 3, 16);
  ASSERT_TRUE(s.ReservePending(10).ok());
  std::vector<PendingCopy> copies;
  s.CommitAll(&copies);
  // Token 0 to the sink, tokens 7, 8, 9 to ring slots 1 + (6, 7, 8) % 3 = 1, 2, 3.
  ASSERT_EQ(copies.size(), 2u);
  EXPECT_EQ((std::vector<int>{copies[0].pending_row, copies[0].slot, copies[0].n_rows}),
            (std::vector<int>{0, 0, 1}));
  EXPECT_EQ((std::vector<int>{copies[1].pending_row, copies[1].slot, copies[1].n_rows}),
            (std::vector<int>{7, 1, 3}));
  EXPECT_EQ(s.committed_tokens(), 10);
  EXPECT_EQ(s.stored_rows(), 4);
}

TEST(WindowSlotsTest, RingRowsWrapIntoTwoRunsOldestFirst) {
  WindowSlots s(1, 4, 16);
  SlotMemory m(s);
  std::vector<PendingCopy> copies;
  for (int t = 0; t < 7; ++t) {  // tokens 0..6: sink 0, ring 3..6 in slots 3, 4, 1, 2
    m.pending[*s.ReservePending(1)] = t;
    s.CommitAll(&copies);
    m.Apply(copies);
  }
  const auto runs = s.StoredRuns();
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[1].first_slot, 3);
  EXPECT_EQ(runs[1].n_rows, 2);
  EXPECT_EQ(runs[2].first_slot, 1);
  EXPECT_EQ(runs[2].n_rows, 2);
  EXPECT_EQ(m.Stored(s), (std::vector<int>{0, 3, 4, 5, 6}));
}

TEST(WindowSlotsTest, CommitKeepsTheChosenRowsInOrder) {
  WindowSlots s(2, 3, 8);
  SlotMemory m(s);
  std::vector<PendingCopy> copies;
  for (int t = 0; t < 4; ++t) m.pending[t] = t;
  ASSERT_TRUE(s.ReservePending(4).ok());
  s.CommitAll(&copies);
  m.Apply(copies);
  const std::vector<int> tree = {50, 4, 51, 5, 52};  // the accepted path is rows 1 and 3
  for (int i = 0; i < 5; ++i) m.pending[i] = tree[i];
  ASSERT_TRUE(s.ReservePending(5).ok());
  const std::vector<int32_t> keep = {1, 3};
  ASSERT_TRUE(s.Commit(keep, &copies).ok());
  m.Apply(copies);
  EXPECT_EQ(s.committed_tokens(), 6);
  EXPECT_EQ(m.Stored(s), (std::vector<int>{0, 1, 3, 4, 5}));  // 2 slid out
}

TEST(WindowSlotsTest, ErrorsNameTheLimit) {
  WindowSlots s(2, 4, 4);
  absl::Status st = s.ReservePending(5).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("at most 4"), std::string::npos) << st.message();
  EXPECT_FALSE(s.ReservePending(-1).ok());
  ASSERT_TRUE(s.ReservePending(3).ok());

  st = s.SkipTokens(1);  // rows pending
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("3 rows pending"), std::string::npos) << st.message();

  // A bad keep list commits nothing and drops the pending rows.
  std::vector<PendingCopy> copies = {{0, 0, 1}};
  const std::vector<int32_t> bad = {1, 1};
  st = s.Commit(bad, &copies);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(copies.empty());
  EXPECT_EQ(s.pending_rows(), 0);
  EXPECT_EQ(s.committed_tokens(), 0);

  st = s.SkipTokens(5);  // before the sinks are stored
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("2 sink tokens"), std::string::npos) << st.message();
  EXPECT_TRUE(s.SkipTokens(0).ok());
}

TEST(WindowSlotsTest, TruncatePendingClamps) {
  WindowSlots s(0, 4, 8);
  ASSERT_TRUE(s.ReservePending(5).ok());
  s.TruncatePending(7);
  EXPECT_EQ(s.pending_rows(), 5);
  s.TruncatePending(2);
  EXPECT_EQ(s.pending_rows(), 2);
  s.TruncatePending(-1);
  EXPECT_EQ(s.pending_rows(), 0);
}

// Random sequences of every operation: the slots hold exactly the sinks and
// the last W tokens after the last gap, and the CPU window cache (driven the
// same way) reads back the same rows in the same order.
TEST(WindowSlotsTest, RandomOperationsMatchTheRulesAndTheCpuWindowCache) {
  constexpr KvShape kShape{1, 2};
  for (int sinks : {0, 1, 3}) {
    for (int window : {0, 1, 4, 7}) {
      constexpr int kMaxPending = 12;
      WindowSlots s(sinks, window, kMaxPending);
      SlotMemory m(s);
      auto cpu = MakeWindowKvCache(kShape, sinks, window, kMaxPending);
      Rng rng(static_cast<uint64_t>(100 * sinks + window));
      std::vector<PendingCopy> copies;
      int64_t gap_end = 0;
      for (int step = 0; step < 300; ++step) {
        const std::string where = "sinks " + std::to_string(sinks) + " window " +
                                  std::to_string(window) + " step " + std::to_string(step);
        const int op = static_cast<int>(rng.Next() % 6);
        if (op <= 1) {  // reserve and write rows (token ids from 1000 up: not yet committed)
          const int n = static_cast<int>(rng.Next() % 5);
          absl::StatusOr<int> first = s.ReservePending(n);
          absl::StatusOr<int> cpu_first = cpu->ReservePending(n);
          ASSERT_EQ(first.ok(), cpu_first.ok()) << where;
          if (!first.ok()) continue;
          ASSERT_EQ(*first, *cpu_first) << where;
          for (int i = 0; i < n; ++i) {
            const float row[2] = {static_cast<float>(1000 + step * 8 + i), 0.0f};
            m.pending[*first + i] = static_cast<int>(row[0]);
            cpu->WritePending(0, *first + i, row, row, 1, 2);
          }
          continue;
        }
        // Pending row ids are placeholders until committed: renumber them as the
        // tokens (positions) they become, so stored rows can be checked by position.
        std::vector<int32_t> keep;
        if (op == 2) {
          for (int r = 0; r < s.pending_rows(); ++r) {
            if (rng.Next() % 2) keep.push_back(r);
          }
        } else if (op == 3) {
          for (int r = 0; r < s.pending_rows(); ++r) keep.push_back(r);
        }
        if (op == 2 || op == 3) {
          const int64_t base = s.committed_tokens();
          std::vector<float> row(2);
          for (size_t j = 0; j < keep.size(); ++j) {
            m.pending[keep[j]] = static_cast<int>(base + j);
            row[0] = row[1] = static_cast<float>(base + j);
            cpu->WritePending(0, keep[j], row.data(), row.data(), 1, 2);
          }
          if (op == 2) {
            ASSERT_TRUE(s.Commit(keep, &copies).ok()) << where;
            ASSERT_TRUE(cpu->Commit(keep).ok()) << where;
          } else {
            s.CommitAll(&copies);
            cpu->CommitAll();
          }
          m.Apply(copies);
        } else if (op == 4) {
          const int n = static_cast<int>(rng.Next() % 4);
          s.TruncatePending(n);
          cpu->TruncatePending(n);
        } else {
          const int64_t n = static_cast<int64_t>(rng.Next() % 20);
          const absl::Status st = s.SkipTokens(n);
          ASSERT_EQ(st.ok(), cpu->SkipTokens(n).ok()) << where;
          if (st.ok() && n > 0) gap_end = s.committed_tokens();
        }
        ASSERT_EQ(s.committed_tokens(), cpu->committed_tokens()) << where;
        ASSERT_EQ(s.stored_rows(), cpu->stored_rows()) << where;
        ASSERT_EQ(s.pending_rows(), cpu->pending_rows()) << where;
        const std::vector<int> stored = m.Stored(s);
        ASSERT_EQ(stored, ExpectedStored(s.committed_tokens(), gap_end, sinks, window)) << where;
        for (int64_t r = 0; r < cpu->stored_rows(); ++r) {
          float k[2], v[2];
          ASSERT_TRUE(cpu->ReadRow(0, r, k, v));
          ASSERT_EQ(k[0], static_cast<float>(stored[r])) << where << " row " << r;
        }
      }
    }
  }
}

}  // namespace
}  // namespace specserve
