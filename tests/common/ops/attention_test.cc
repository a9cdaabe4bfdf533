// Attention against a double reference: causal and tree masks, several cached
// segments, GQA, odd head sizes, split-K (long single sequences) and multi-tile
// prefill, at every available ISA level.
//
// The kernels are fed the row-major form here (the driver copies it into
// tiles); the tiled form from real caches is covered by the engine tests.
//
// Bound: |out - ref| <= 2e-5 * max|v| (outputs are convex combinations of V
// rows; the error comes from fp32 scores and the polynomial exp, ~1e-7 relative).
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/ops/cpu/cpu_ops.h"
#include "common/ops/ops.h"
#include "gtest/gtest.h"
#include "tests/common/ops/reference_ops.h"
#include "tests/common/ops/test_isas.h"

namespace specserve {
namespace {

using ::specserve::testing::AvailableIsas;
using ::specserve::testing::RandomFloats;
using ::specserve::testing::RefAttention;

struct SeqSpec {
  std::vector<int> segment_rows;
  int n_new = 1;
  bool tree = false;
  int n_pending = 0;  // rows pending from earlier passes, before the new ones in k/v
};

// Owns the buffers of one sequence.
struct SeqData {
  std::vector<std::vector<float>> seg_k, seg_v;
  std::vector<float> q, k, v, out;
  std::vector<int32_t> parents;
  AttentionSequence seq;
};

SeqData MakeSequence(const SeqSpec& spec, const AttentionShape& shape, std::mt19937& rng) {
  SeqData data;
  const int kv_dim = shape.n_kv_heads * shape.head_dim;
  const int q_dim = shape.n_heads * shape.head_dim;
  for (int rows : spec.segment_rows) {
    data.seg_k.push_back(RandomFloats(static_cast<int64_t>(rows) * kv_dim, rng()));
    data.seg_v.push_back(RandomFloats(static_cast<int64_t>(rows) * kv_dim, rng()));
  }
  for (size_t i = 0; i < spec.segment_rows.size(); ++i) {
    data.seq.cached.push_back({data.seg_k[i].data(), data.seg_v[i].data(), spec.segment_rows[i]});
  }
  // Strided new rows (q_stride, kv_stride, out_stride larger than the width).
  const int q_stride = q_dim + 3, kv_stride = kv_dim + 5, out_stride = q_dim + 7;
  data.q = RandomFloats(static_cast<int64_t>(spec.n_new) * q_stride, rng(), -2.0f, 2.0f);
  const int block = spec.n_pending + spec.n_new;
  data.k = RandomFloats(static_cast<int64_t>(block) * kv_stride, rng(), -2.0f, 2.0f);
  data.v = RandomFloats(static_cast<int64_t>(block) * kv_stride, rng());
  data.out.assign(static_cast<size_t>(spec.n_new) * out_stride, NAN);
  data.seq.n_new = spec.n_new;
  data.seq.q = data.q.data();
  data.seq.q_stride = q_stride;
  data.seq.k = data.k.data();
  data.seq.v = data.v.data();
  data.seq.kv_stride = kv_stride;
  data.seq.out = data.out.data();
  data.seq.out_stride = out_stride;
  data.seq.n_pending = spec.n_pending;
  if (spec.tree) {
    data.parents.resize(block);
    for (int i = 0; i < block; ++i) {
      data.parents[i] = static_cast<int32_t>(static_cast<int>(rng() % (i + 1)) - 1);
    }
    data.seq.parents = data.parents.data();
  }
  return data;
}

void RunAndCheck(Ops& ops, const AttentionShape& shape, const std::vector<SeqSpec>& specs,
                 uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<SeqData> data;
  data.reserve(specs.size());
  for (const SeqSpec& s : specs) data.push_back(MakeSequence(s, shape, rng));
  std::vector<AttentionSequence> seqs;
  for (const SeqData& d : data) seqs.push_back(d.seq);
  ops.Attention(seqs, shape);
  const int q_dim = shape.n_heads * shape.head_dim;
  for (size_t s = 0; s < data.size(); ++s) {
    std::vector<double> ref;
    RefAttention(data[s].seq, shape, ref);
    int bad = 0;
    for (int t = 0; t < data[s].seq.n_new && bad < 5; ++t) {
      for (int c = 0; c < q_dim && bad < 5; ++c) {
        const float got = data[s].out[static_cast<size_t>(t) * data[s].seq.out_stride + c];
        const double want = ref[static_cast<size_t>(t) * q_dim + c];
        if (!(std::abs(got - want) <= 2e-5)) {
          ADD_FAILURE() << ops.name() << " heads " << shape.n_heads << "/" << shape.n_kv_heads
                        << " d " << shape.head_dim << " seq " << s << " token " << t << " dim " << c
                        << ": " << got << " vs " << want;
          ++bad;
        }
      }
    }
  }
}

struct ShapeCase {
  int n_heads, n_kv_heads, head_dim;
};

class AttentionTest : public ::testing::TestWithParam<CpuIsa> {};

const ShapeCase kShapes[] = {{4, 4, 8},  {6, 2, 16}, {8, 2, 64}, {4, 1, 128},
                             {3, 3, 20}, {8, 8, 48}, {2, 1, 200}};

AttentionShape MakeShape(const ShapeCase& c) {
  AttentionShape shape;
  shape.n_heads = c.n_heads;
  shape.n_kv_heads = c.n_kv_heads;
  shape.head_dim = c.head_dim;
  shape.scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  return shape;
}

TEST_P(AttentionTest, MixedBatchCausalAndTree) {
  for (int threads : {1, 2, 3}) {
    auto ops = MakeCpuOpsWithIsa(threads, GetParam());
    uint32_t seed = 1;
    for (const ShapeCase& c : kShapes) {
      const std::vector<SeqSpec> specs = {
          {{}, 1, false},           // first token, no cache
          {{5}, 1, false},          // decode
          {{70, 3}, 4, false},      // two segments, causal chunk
          {{64, 1, 129}, 9, true},  // three segments, tree
          {{}, 13, true},           // tree without cache
          {{200}, 0, false},        // nothing new: untouched
          {{0, 33}, 7, false},      // empty segment
      };
      RunAndCheck(*ops, MakeShape(c), specs, seed++);
    }
  }
}

// A draft's later tree levels: new tokens after rows pending from earlier
// passes, which they see by the tree (or all of them, causal).
TEST_P(AttentionTest, NewTokensAfterPendingRows) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  uint32_t seed = 20;
  for (const ShapeCase& c : {ShapeCase{4, 4, 8}, ShapeCase{6, 2, 16}, ShapeCase{8, 2, 64}}) {
    const std::vector<SeqSpec> specs = {
        {{}, 1, true, 1},       // second level of a chain, no cache
        {{5, 40}, 4, true, 7},  // a tree's third level
        {{17}, 3, false, 5},    // causal after pending rows
        {{300}, 2, true, 12},   // long cache
        {{8}, 0, true, 3},      // nothing new: untouched
    };
    RunAndCheck(*ops, MakeShape(c), specs, seed++);
  }
}

TEST_P(AttentionTest, LongSingleSequenceSplitsKeys) {
  for (int threads : {1, 2, 4}) {
    auto ops = MakeCpuOpsWithIsa(threads, GetParam());
    for (const ShapeCase& c : {ShapeCase{4, 1, 64}, ShapeCase{2, 2, 16}, ShapeCase{8, 2, 128}}) {
      RunAndCheck(*ops, MakeShape(c), {{{1000, 700}, 1, false}}, 5);
      RunAndCheck(*ops, MakeShape(c), {{{2000}, 6, true}}, 6);
      RunAndCheck(*ops, MakeShape(c), {{{1500}, 3, false}, {{10}, 2, false}}, 7);
    }
  }
}

TEST_P(AttentionTest, LongPrefillUsesSeveralQueryTiles) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  RunAndCheck(*ops, MakeShape({8, 2, 32}), {{{}, 300, false}}, 9);
  RunAndCheck(*ops, MakeShape({4, 4, 16}), {{{100}, 270, false}, {{}, 90, true}}, 10);
}

TEST_P(AttentionTest, LargeScoresStayFinite) {
  // Large, peaked scores exercise the max subtraction and the exp underflow path.
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  AttentionShape shape = MakeShape({4, 2, 64});
  shape.scale = 3.0f;
  RunAndCheck(*ops, shape, {{{300}, 5, true}, {{}, 4, false}}, 11);
}

// kernels.h fixes every row's arithmetic, so the levels agree bit for bit
// (and a row's output does not depend on the batch it came in).
TEST(AttentionIsaTest, LevelsAgreeBitForBit) {
  const std::vector<CpuIsa> isas = AvailableIsas();
  for (const ShapeCase& c : kShapes) {
    const AttentionShape shape = MakeShape(c);
    std::vector<std::vector<float>> outputs;
    for (CpuIsa isa : isas) {
      auto ops = MakeCpuOpsWithIsa(2, isa);
      std::mt19937 rng(99);
      std::vector<SeqData> data;
      // Past 256 keys (AVX2 runs the values pass in blocks of tiles) and
      // past 16 rows of a kv head (it keeps the state of 16 rows at a time).
      for (const SeqSpec& spec : std::vector<SeqSpec>{
               {{40, 9}, 3, false}, {{70}, 11, true}, {{300, 2}, 9, true}, {{290}, 20, false}}) {
        data.push_back(MakeSequence(spec, shape, rng));
      }
      std::vector<AttentionSequence> seqs;
      for (const SeqData& d : data) seqs.push_back(d.seq);
      ops->Attention(seqs, shape);
      outputs.emplace_back();
      for (const SeqData& d : data) {
        const int q_dim = shape.n_heads * shape.head_dim;
        for (int t = 0; t < d.seq.n_new; ++t) {
          outputs.back().insert(outputs.back().end(), d.out.begin() + t * d.seq.out_stride,
                                d.out.begin() + t * d.seq.out_stride + q_dim);
        }
      }
    }
    for (size_t i = 1; i < outputs.size(); ++i) {
      ASSERT_EQ(std::memcmp(outputs[0].data(), outputs[i].data(), outputs[0].size() * 4), 0)
          << CpuIsaName(isas[i]) << " vs " << CpuIsaName(isas[0]) << " d " << c.head_dim;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AttentionTest, ::testing::ValuesIn(AvailableIsas()),
                         [](const ::testing::TestParamInfo<CpuIsa>& info) {
                           return std::string(CpuIsaName(info.param));
                         });

}  // namespace
}  // namespace specserve
