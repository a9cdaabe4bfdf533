// The AVX-512 fp32 MatMul with outputs in lanes, for packed weights and for
// rows of at most kMatMulLanesMaxCols columns (compiled with -mavx512f...).
//
// The dot-product tiles of matmul_avx512.cc end every output with a
// horizontal sum of 16 lanes; at the small models' 64-384 columns that is a
// large share of the work: one thread ran stories260K's and
// TinyStories-656K's shapes at 73-104 GFLOP/s (Ice Lake, ~175 peak a core),
// this kernel at 128-137 (0.55-0.80x the time), and 768-2048 columns at
// 0.71-0.95x the time. Here, as in the AVX2 kernel (matmul_lanes_avx2.cc),
// each output is one lane: a panel of 32 weight rows is stored column by column (column k's
// 32 outputs together, two vectors of 16), and an R x 2 tile (R x rows, 2R
// accumulators) takes, per column k, the panel's 2 vectors and R broadcast x
// values for 2R FMAs, then stores its results as they are (masked where the
// tile's outputs end inside a vector). A memory-bound pass (a few x rows)
// reads 3-4 panels side by side instead, one memory stream each (Streams).
//
// Every y[r][o] is fma(w[o][k], x[r][k], acc) for k = 0, 1, ..., cols - 1 in
// order, from 0, in one lane whatever the tile, the row count or the output
// range, so GEMV and GEMM calls agree bit for bit (batch invariance). A
// model's matrices are packed once (PackLanesAvx512, through
// Ops::PackMatrix); any other weight of at most kMatMulLanesMaxCols columns
// is packed a panel at a time per call, the cost shared by all the x rows.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
#pragma GCC diagnostic ignored "-Wuninitialized"  // GCC bug 105593, as matmul_avx512.cc
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "common/ops/cpu/kernels.h"

namespace specserve::cpu {
namespace {

#include "common/ops/cpu/lanes_row_tiles.inc"

constexpr int kGroup = 16;                // outputs per vector
constexpr int kGroups = 2;                // vectors of outputs per panel
constexpr int kPanel = kGroup * kGroups;  // weight rows per panel
static_assert(kPanel == kMatMulLanesPanelRowsAvx512);

// Columns per block: a panel block of 32 x 2048 floats (256 KB) stays in L2
// while every x row passes over it. (Tiles read it from L2 at 16 bytes a
// cycle; blocks of 128-512 columns, in L1, ran 1.05-1.12x / 1.0x / 0.9x the
// time of the dot-product tiles at 768 columns x 512 rows against 0.82-0.89x
// here: each block reloads and stores every tile's accumulators.)
constexpr int64_t kBlockCols = 2048;

// The software prefetch distance of a memory-bound pass along its weights.
constexpr int64_t kStreamAhead = 1536;

// The 8 x 8 block of floats at src (rows `ld` floats apart), transposed into
// dst (rows kPanel floats apart): dst[j * kPanel + i] = src[i * ld + j].
inline void Transpose8(const float* src, int64_t ld, float* dst) {
  __m256 r[8];
  for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
  // Pairs of rows interleaved, then pairs of pairs, then the 128-bit halves.
  __m256 a[8], b[8];
  for (int i = 0; i < 8; i += 2) {
    a[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    a[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 8; i += 4) {
    b[i] = _mm256_shuffle_ps(a[i], a[i + 2], 0x44);
    b[i + 1] = _mm256_shuffle_ps(a[i], a[i + 2], 0xEE);
    b[i + 2] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0x44);
    b[i + 3] = _mm256_shuffle_ps(a[i + 1], a[i + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    _mm256_storeu_ps(dst + j * kPanel, _mm256_permute2f128_ps(b[j], b[j + 4], 0x20));
    _mm256_storeu_ps(dst + (j + 4) * kPanel, _mm256_permute2f128_ps(b[j], b[j + 4], 0x31));
  }
}

// Weight rows [0, n) at w (n <= 32, rows `cols` floats apart) into one panel:
// panel[k * 32 + i] = w[i][k], 0 for i >= n.
void PackPanel(const float* w, int64_t cols, int n, float* panel) {
  int64_t k = 0;
  if (n == kPanel) {
    for (; k + 8 <= cols; k += 8) {
      for (int i = 0; i < kPanel; i += 8)
        Transpose8(w + i * cols + k, cols, panel + k * kPanel + i);
    }
  }
  for (; k < cols; ++k) {
    for (int i = 0; i < kPanel; ++i) panel[k * kPanel + i] = i < n ? w[i * cols + k] : 0.0f;
  }
}

// Lanes [begin, end) of 16 (either may fall outside 0..16).
inline __mmask16 LaneMask(int begin, int end) {
  begin = begin < 0 ? 0 : begin;
  end = end > kGroup ? kGroup : end;
  if (end <= begin) return 0;
  return static_cast<__mmask16>(((1u << (end - begin)) - 1) << begin);
}

// The outputs a tile computes: G groups of 16 from `w`, stored to y's
// outputs [lo, hi) of them, y_column being the output of the first group's
// first lane. Column k of group g is at w[k * 32 + g * 16] within a panel;
// groups 2 and up (a memory-bound pass takes up to four panels at once) are
// the following panels', `panel_floats` apart.
struct PanelSlice {
  const float* w;
  int64_t panel_floats;
  int64_t y_column;
  int lo, hi;
};

inline const float* GroupColumns(const PanelSlice& ps, int g) {
  return ps.w + (g / kGroups) * ps.panel_floats + (g % kGroups) * kGroup;
}

// y[r][o] for R x rows and a panel slice of G groups, over columns [k0, k0 +
// kn) (x and y at the tile's first row). After the first block the
// accumulators start from y: an fp32 value stored and loaded back is the same
// value, so each output is one FMA chain over all its columns in order,
// blocked or not.
//
// kStream: the pass reads each weight once (a few rows: a memory-bound GEMV),
// and the tile prefetches its own stream kStreamAhead bytes ahead. Else the
// tile fetches `pf_lines` (<= kn) lines from `pf` into L2, one a column.
template <int R, int G, bool kStream>
void LanesTile(const PanelSlice& ps, const float* x, int64_t ldx, int64_t k0, int64_t kn, float* y,
               int64_t ldy, const char* pf, int64_t pf_lines) {
  __mmask16 mask[G];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) mask[g] = LaneMask(ps.lo - g * kGroup, ps.hi - g * kGroup);
  __m512 acc[R][G];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[r][g] = k0 == 0 ? _mm512_setzero_ps()
                          : _mm512_maskz_loadu_ps(mask[g], y + r * ldy + ps.y_column + g * kGroup);
    }
  }
  const float* w[G];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) w[g] = GroupColumns(ps, g) + k0 * kPanel;
  const float* xk = x + k0;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kn; ++k) {
    if (!kStream && k < pf_lines) _mm_prefetch(pf + k * 64, _MM_HINT_T1);
    __m512 wv[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      if constexpr (kStream) {
        _mm_prefetch(reinterpret_cast<const char*>(w[g] + k * kPanel) + kStreamAhead, _MM_HINT_T0);
      }
      wv[g] = _mm512_loadu_ps(w[g] + k * kPanel);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 xb = _mm512_set1_ps(xk[r * ldx + k]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) acc[r][g] = _mm512_fmadd_ps(wv[g], xb, acc[r][g]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      _mm512_mask_storeu_ps(y + r * ldy + ps.y_column + g * kGroup, mask[g], acc[r][g]);
    }
  }
}

// Every x row over a panel slice of G groups, a column block at a time: R-row
// tiles (2R or R accumulators: enough independent FMA chains to cover the FMA
// latency on two ports), then 4-row tiles and the last 1-3 rows.
//
// While a block's tiles compute they fetch the next block's weights into L2,
// each tile its share, one line per column (weights streamed from memory
// otherwise arrive during a block's first tile, a burst the others wait
// behind; the AVX2 kernel's burst of a share before each tile made the 125M
// model's batch-64 GEMM 1.15x slower here); with fewer than 4 tiles a block
// each tile prefetches its own streams ahead (kStream).
template <int G, int R>
void PanelRows(const MatMulProblem& p, const PanelSlice& ps) {
  const int64_t cols = p.cols;
  const int64_t ldy = p.out_rows;
  const int64_t n_tiles = RowTileCount<R>(p.n_rows);
  // Blocks of the same bytes whatever the panels side by side.
  constexpr int64_t kCols = G <= kGroups ? kBlockCols : kBlockCols * kGroups / G;
  for (int64_t k0 = 0; k0 < cols; k0 += kCols) {
    const int64_t kn = cols - k0 < kCols ? cols - k0 : kCols;
    // The next block: this panel's next columns, or the next panel's first.
    const char* next = reinterpret_cast<const char*>(GroupColumns(ps, 0) + (k0 + kn) * kPanel);
    const int64_t next_cols = k0 + kn < cols ? cols - k0 - kn : cols;
    const int64_t block_lines = (next_cols < kCols ? next_cols : kCols) * kPanel * 4 / 64;
    const int64_t lines_per_tile = n_tiles >= 4 ? (block_lines + n_tiles - 1) / n_tiles : 0;
    int64_t line = 0;
    auto tile = [&](auto rows, int64_t r) {
      constexpr int kRows = decltype(rows)::value;
      if (n_tiles < 4) {
        LanesTile<kRows, G, true>(ps, p.x + r * cols, cols, k0, kn, p.y + r * ldy, ldy, nullptr, 0);
        return;
      }
      // This tile's share: line never passes block_lines.
      const int64_t lines =
          block_lines - line < lines_per_tile ? block_lines - line : lines_per_tile;
      LanesTile<kRows, G, false>(ps, p.x + r * cols, cols, k0, kn, p.y + r * ldy, ldy,
                                 next + line * 64, lines);
      line += lines;
    };
    ForEachRowTile<R>(p.n_rows, tile);
  }
}

// Outputs [first + lo, first + hi) of the panel at w (whose output 0 is
// `first`): only the groups they touch, taller tiles for a single group.
void PanelOutputs(const MatMulProblem& p, const float* w, int64_t first, int lo, int hi) {
  const int g0 = lo / kGroup;
  const PanelSlice ps{w + g0 * kGroup, 0, first + g0 * kGroup, lo - g0 * kGroup, hi - g0 * kGroup};
  if ((hi + kGroup - 1) / kGroup - g0 == 2) {
    PanelRows<2, 8>(p, ps);
  } else {
    PanelRows<1, 16>(p, ps);
  }
}

// Whether a pass streams its weights from memory: a few x rows (a GEMV).
// With one panel (one memory stream) per thread a GEMV reached 0.80-0.93x
// the bandwidth of the dot-product tiles, which read four weight rows at a
// time (BM_MatMul 4096 x 4096 streamed, 1-4 rows), with software prefetch or
// without; with 3-4 panels side by side 0.93-1.02x. From 5 rows on, single
// panels of 8-row tiles, which fetch the next block into L2 while they
// compute, are as fast or faster even over matrices far past the L2: 4096
// columns x 320 MB at 8-16 rows the same, at 24-32 rows 0.75-0.85x the time
// (4-row tiles over 3 panels re-read each block from L2 once per 4 rows);
// the random 125M model's decode at 8-32 x 128 (768-column matrices) took
// 0.88-0.96x the time a step (medians of 5, interleaved; AMD EPYC, 2 threads).
inline bool Streams(const MatMulProblem& p) { return p.n_rows <= 4; }

// Panels side by side in a streamed pass: 4 for 1-2 x rows (2-row tiles of 8
// vectors), 3 for more (4-row tiles of 6: 24 accumulators).
inline int StreamPanels(int64_t n_rows) { return n_rows <= 2 ? 4 : 3; }

// Outputs [first, first + hi) of the `panels` (1-4) panels from w on, in a
// streamed pass.
void StreamOutputs(const MatMulProblem& p, const float* w, int64_t first, int panels, int hi) {
  const PanelSlice ps{w, kPanel * p.cols, first, 0, hi};
  if (p.n_rows > 2) {
    switch (panels) {
      case 3:
        return PanelRows<6, 4>(p, ps);
      case 2:
        return PanelRows<4, 4>(p, ps);
      default:
        return PanelRows<2, 4>(p, ps);
    }
  }
  switch (panels) {
    case 4:
      return PanelRows<8, 2>(p, ps);
    case 3:
      return PanelRows<6, 2>(p, ps);
    case 2:
      return PanelRows<4, 2>(p, ps);
    default:
      return PanelRows<2, 2>(p, ps);
  }
}

}  // namespace

void PackLanesAvx512(const float* w, int64_t rows, int64_t cols, float* panels) {
  for (int64_t o = 0; o < rows; o += kPanel) {
    const int n = static_cast<int>(rows - o < kPanel ? rows - o : kPanel);
    PackPanel(w + o * cols, cols, n, panels + o * cols);
  }
}

void MatMulLanesRangeAvx512(const MatMulProblem& p, int64_t o_begin, int64_t o_end,
                            float* scratch) {
  if (p.lanes != nullptr) {
    // Packed once (PackLanesAvx512): output o is row o + lanes_lead of the
    // panels, which start at multiples of 32 rows.
    const int64_t lead = p.lanes_lead;
    for (int64_t row = (o_begin + lead) / kPanel * kPanel; row < o_end + lead; row += kPanel) {
      const int64_t first = row - lead;  // the output of the panel's row 0
      const int lo = static_cast<int>(o_begin > first ? o_begin - first : 0);
      if (lo == 0 && Streams(p)) {
        const int64_t left = o_end - first;  // outputs from the panel's row 0 on
        const int most = StreamPanels(p.n_rows);
        const int panels = static_cast<int>(
            (left + kPanel - 1) / kPanel < most ? (left + kPanel - 1) / kPanel : most);
        StreamOutputs(p, p.lanes + row * p.cols, first, panels,
                      static_cast<int>(left < panels * kPanel ? left : panels * kPanel));
        row += (panels - 1) * kPanel;
        continue;
      }
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
