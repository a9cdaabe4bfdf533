// The AVX2 fp32 MatMul for short rows (cols <= kMatMulLanesMaxCols): outputs
// in lanes. The dot-product tiles of matmul_avx2.cc end every output with a
// horizontal sum of its 8 lanes (5 shuffles and adds, and a scalar store);
// at 64-128 columns that is about as much work as the output's FMAs, and
// those tiles reached 23-47% of the FMA peak on stories260K's shapes. Here
// each output is one lane: a panel of 24 weight rows is transposed
// (cols x 24 floats: each column's 24 outputs together), and a 4 x 3 tile (4 x
// rows, 3 groups: 12 accumulators) takes, per column k, 3 panel vectors and 4
// broadcast x values for 12 FMAs, then stores its results as they are (a
// panel's last 8-16 outputs take 8 x 1 or 6 x 2 tiles).
//
// Every y[r][o] is fma(w[o][k], x[r][k], acc) for k = 0, 1, ..., cols - 1 in
// order, from 0, in one lane whatever the tile, the row count or the output
// range, so GEMV and GEMM calls agree bit for bit (batch invariance). A
// model's matrices are packed once (PackLanesAvx2, through Ops::PackMatrix);
// any other weight is packed a panel at a time per call, the cost shared by
// all the x rows.
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

#include "common/ops/cpu/lanes_row_tiles.inc"

constexpr int kGroup = 8;                 // outputs per vector
constexpr int kGroups = 3;                // vectors of outputs per tile and panel
constexpr int kPanel = kGroup * kGroups;  // weight rows per panel
static_assert(kPanel == kMatMulLanesPanelRowsAvx2);

// Transposes r[0..7] (rows) into columns: r[j][i] <- r[i][j].
inline void Transpose8x8(__m256 (&r)[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// Weight rows [0, n) at w (n <= 8, rows `cols` floats apart) into group
// `out` of a panel: out[k * 24 + i] = w[i][k], 0 for i >= n.
void PackGroup(const float* w, int64_t cols, int n, float* out) {
  int64_t k = 0;
  if (n == kGroup) {
    for (; k + 8 <= cols; k += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(w + i * cols + k);
      Transpose8x8(r);
      for (int j = 0; j < 8; ++j) _mm256_storeu_ps(out + (k + j) * kPanel, r[j]);
    }
  }
  for (; k < cols; ++k) {
    for (int i = 0; i < kGroup; ++i) out[k * kPanel + i] = i < n ? w[i * cols + k] : 0.0f;
  }
}

// Lanes [begin, end) of 8 (either may fall outside 0..8).
inline __m256i LaneRange(int begin, int end) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_set1_epi32(begin), lane),
                             _mm256_cmpgt_epi32(_mm256_set1_epi32(end), lane));
}

// The outputs of one panel a tile computes: G groups of 8 from `w` (column k
// of group g at w[k * 24 + g * 8]), stored to y's outputs [lo, hi) of them
// (0 <= lo < 8, hi <= 8 * G), y pointing at the first group's first output.
struct PanelSlice {
  const float* w;
  int64_t y_column;  // the output index of the first group's first lane
  int lo, hi;
};

// Columns per block: a panel block of 24 x 256 floats (24 KB) stays in L1
// while every x row passes over it.
constexpr int64_t kBlockCols = 256;

// Whether the tile stores group g whole (else masked to [lo, hi)).
inline bool WholeGroup(const PanelSlice& ps, int g) {
  return ps.lo <= g * kGroup && ps.hi >= (g + 1) * kGroup;
}

// y[r][o] for R x rows and a panel slice of G groups, over columns [k0, k0 +
// kn) (x and y at the tile's first row). After the first block the
// accumulators start from y: an fp32 value stored and loaded back is the same
// value, so each output is one FMA chain over all its columns in order,
// blocked or not.
template <int R, int G>
void LanesTile(const PanelSlice& ps, const float* x, int64_t ldx, int64_t k0, int64_t kn, float* y,
               int64_t ldy) {
  __m256 acc[R][G];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int g = 0; g < G; ++g) {
      const float* at = y + r * ldy + ps.y_column + g * kGroup;
      acc[r][g] = k0 == 0 ? _mm256_setzero_ps()
                  : WholeGroup(ps, g)
                      ? _mm256_loadu_ps(at)
                      : _mm256_maskload_ps(at, LaneRange(ps.lo - g * kGroup, ps.hi - g * kGroup));
    }
  }
  const float* w = ps.w + k0 * kPanel;
  const float* xk = x + k0;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kn; ++k) {
    __m256 wv[G];
#pragma GCC unroll 3
    for (int g = 0; g < G; ++g) wv[g] = _mm256_loadu_ps(w + k * kPanel + g * kGroup);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 xb = _mm256_broadcast_ss(xk + r * ldx + k);
#pragma GCC unroll 3
      for (int g = 0; g < G; ++g) acc[r][g] = _mm256_fmadd_ps(wv[g], xb, acc[r][g]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 3
    for (int g = 0; g < G; ++g) {
      float* out = y + r * ldy + ps.y_column + g * kGroup;
      if (WholeGroup(ps, g)) {
        _mm256_storeu_ps(out, acc[r][g]);
      } else {
        _mm256_maskstore_ps(out, LaneRange(ps.lo - g * kGroup, ps.hi - g * kGroup), acc[r][g]);
      }
    }
  }
}

// Every x row over a panel slice of G groups, a column block at a time:
// R-row tiles (R x G = 8-12 accumulators, enough independent FMA chains to
// cover the FMA latency), then 4-row tiles and the last 1-3 rows.
//
// While a block's tiles compute, they fetch the next block's weights (the
// next 24 KB of the packed panels: this panel's next columns, or the next
// panel's first ones) into L2, a share before each tile. Weights streamed
// from memory otherwise arrived during a block's first tile alone, a burst
// the other tiles then waited behind: the 125M model's batch-64 decode ran
// its GEMM at 60% of the FMA peak against 74-80% with the same matrices in
// L3 (fetching now: 91-96 -> 84-94 ms a step; two blocks ahead was no
// better). With fewer than 4 tiles a block (a few rows, a memory-bound pass)
// the hardware prefetcher keeps up with the one sequential stream alone.
template <int G, int R>
void PanelRows(const MatMulProblem& p, const PanelSlice& ps) {
  const int64_t cols = p.cols;
  const int64_t ldy = p.out_rows;
  const int64_t n_tiles = RowTileCount<R>(p.n_rows);
  for (int64_t k0 = 0; k0 < cols; k0 += kBlockCols) {
    const int64_t kn = cols - k0 < kBlockCols ? cols - k0 : kBlockCols;
    const char* next = reinterpret_cast<const char*>(ps.w + (k0 + kn) * kPanel);
    // The next block: this panel's next columns, or the next panel's first
    // block. Only its own lines: with short rows (64 columns: a 6 KB panel)
    // a fixed 24 KB reached four panels ahead, every line was fetched four
    // times, and the prefetches were 30% of a stories260K draft pass's GEMM.
    const int64_t next_cols = k0 + kn < cols ? cols - k0 - kn : cols;
    const int64_t block_lines = (next_cols < kBlockCols ? next_cols : kBlockCols) * kPanel * 4 / 64;
    const int64_t lines_per_tile = n_tiles >= 4 ? (block_lines + n_tiles - 1) / n_tiles : 0;
    int64_t line = 0;
    auto tile = [&](auto rows, int64_t r) {
      for (const int64_t end = line + lines_per_tile; line < end && line < block_lines; ++line) {
        _mm_prefetch(next + line * 64, _MM_HINT_T1);
      }
      LanesTile<decltype(rows)::value, G>(ps, p.x + r * cols, cols, k0, kn, p.y + r * ldy, ldy);
    };
    ForEachRowTile<R>(p.n_rows, tile);
  }
}

// Outputs [first + lo, first + hi) of the panel at w (whose output 0 is
// `first`): only the groups they touch, narrower tiles for fewer groups.
void PanelOutputs(const MatMulProblem& p, const float* w, int64_t first, int lo, int hi) {
  const int g0 = lo / kGroup;
  const PanelSlice ps{w + g0 * kGroup, first + g0 * kGroup, lo - g0 * kGroup, hi - g0 * kGroup};
  const int groups = (hi + kGroup - 1) / kGroup - g0;
  if (groups == 3) {
    PanelRows<3, 4>(p, ps);
  } else if (groups == 2) {
    PanelRows<2, 6>(p, ps);
  } else {
    PanelRows<1, 8>(p, ps);
  }
}

// Weight rows [0, n) (n <= 24) at w into one panel.
void PackPanel(const float* w, int64_t cols, int n, float* panel) {
  for (int g = 0; g * kGroup < n; ++g) {
    const int rows = n - g * kGroup;
    PackGroup(w + g * kGroup * cols, cols, rows > kGroup ? kGroup : rows, panel + g * kGroup);
  }
}

}  // namespace

void PackLanesAvx2(const float* w, int64_t rows, int64_t cols, float* panels) {
  for (int64_t o = 0; o < rows; o += kPanel) {
    float* panel = panels + o * cols;
    const int n = static_cast<int>(rows - o < kPanel ? rows - o : kPanel);
    if (n < kPanel) {  // the rows past the end (a whole panel's are all written)
      for (int64_t i = 0; i < kPanel * cols; ++i) panel[i] = 0.0f;
    }
    PackPanel(w + o * cols, cols, n, panel);
  }
}

void MatMulLanesRangeAvx2(const MatMulProblem& p, int64_t o_begin, int64_t o_end, float* scratch) {
  if (p.lanes != nullptr) {
    // Packed once (PackLanesAvx2): output o is row o + lanes_lead of the
    // panels, which start at multiples of 24 rows.
    const int64_t lead = p.lanes_lead;
    for (int64_t row = (o_begin + lead) / kPanel * kPanel; row < o_end + lead; row += kPanel) {
      const int64_t first = row - lead;  // the output of the panel's row 0
      const int lo = static_cast<int>(o_begin > first ? o_begin - first : 0);
      const int hi = static_cast<int>(o_end - first < kPanel ? o_end - first : kPanel);
      PanelOutputs(p, p.lanes + row * p.cols, first, lo, hi);
    }
    return;
  }
  // Packed per call, panels from o_begin on.
  const float* w = reinterpret_cast<const float*>(p.w);
  for (int64_t o = o_begin; o < o_end; o += kPanel) {
    const int n = static_cast<int>(o_end - o < kPanel ? o_end - o : kPanel);
    PackPanel(w + o * p.cols, p.cols, n, scratch);
    PanelOutputs(p, scratch, o, 0, n);
  }
}

}  // namespace specserve::cpu
