// Attention over bf16 caches in the tiled form: the pair kernels (even
// head_dim: bf16 q and p, two products per lane, kv_layout.h) and the widening
// kernel (odd head_dim) against a double reference that rounds as they do; a
// tree node against the same token decoded plainly with its ancestors cached,
// bit for bit (pairs of keys split between the cache and the node's extra
// tiles); and every ISA level agreeing bit for bit.
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/ops/cpu/cpu_ops.h"
#include "common/ops/kv_layout.h"
#include "common/ops/ops.h"
#include "common/util/half.h"
#include "gtest/gtest.h"
#include "tests/common/ops/reference_ops.h"
#include "tests/common/ops/test_isas.h"

namespace specserve {
namespace {

using ::specserve::testing::AvailableIsas;
using ::specserve::testing::RandomFloats;

constexpr float kLog2e = 1.44269504088896341f;

// One sequence over a bf16 region: `rows` K/V rows (the cached ones, then the
// new tokens'), n_new tokens, causal or a tree over the new tokens.
struct TiledSeq {
  std::vector<float> k_rows, v_rows;  // row-major inputs, kv_dim a row
  std::vector<uint16_t> k, v;         // the region
  std::vector<float> q, out;
  std::vector<int32_t> parents, visible, extra_begin, extra;
  AttentionSequence seq;
};

void Finish(TiledSeq& s, const AttentionShape& shape, int rows, int n_new) {
  const int d = shape.head_dim, kv_dim = shape.n_kv_heads * d;
  const int64_t stride = (rows + kKvTileRows - 1) / kKvTileRows * kKvTileRows * d;
  const KvRegionLayout layout{KvType::kBF16, shape.n_kv_heads, d, stride};
  s.k.assign(static_cast<size_t>(stride) * shape.n_kv_heads, 0);
  s.v.assign(s.k.size(), 0);
  for (int r = 0; r < rows; ++r) {
    KvStoreRow(layout, s.k.data(), s.v.data(), r, s.k_rows.data() + r * kv_dim,
               s.v_rows.data() + r * kv_dim);
  }
  const int q_dim = shape.n_heads * d;
  s.out.assign(static_cast<size_t>(n_new) * q_dim, NAN);
  s.seq = AttentionSequence();
  s.seq.n_new = n_new;
  s.seq.q = s.q.data();
  s.seq.q_stride = q_dim;
  s.seq.out = s.out.data();
  s.seq.out_stride = q_dim;
  s.seq.runs = {KvRun{s.k.data(), s.v.data(), stride, 0, rows}};
  s.seq.kv_type = KvType::kBF16;
  s.seq.visible = s.visible.data();
  s.seq.extra_begin = s.parents.empty() ? nullptr : s.extra_begin.data();
  s.seq.extra = s.extra.data();
}

// `parents` empty: causal. Otherwise parents[i] < i or -1 (a child of the cache).
TiledSeq MakeSeq(const AttentionShape& shape, int cached, int n_new, std::vector<int32_t> parents,
                 uint32_t seed) {
  TiledSeq s;
  const int kv_dim = shape.n_kv_heads * shape.head_dim;
  const int rows = cached + n_new;
  s.k_rows = RandomFloats(static_cast<int64_t>(rows) * kv_dim, seed, -2.0f, 2.0f);
  s.v_rows = RandomFloats(static_cast<int64_t>(rows) * kv_dim, seed + 1);
  s.q = RandomFloats(static_cast<int64_t>(n_new) * shape.n_heads * shape.head_dim, seed + 2, -2.0f,
                     2.0f);
  s.parents = std::move(parents);
  s.extra_begin.assign(1, 0);
  for (int t = 0; t < n_new; ++t) {
    if (s.parents.empty()) {
      s.visible.push_back(cached + t + 1);
      continue;
    }
    s.visible.push_back(cached);
    std::vector<int32_t> chain;
    for (int j = t; j >= 0; j = s.parents[j]) chain.push_back(cached + j);
    s.extra.insert(s.extra.end(), chain.rbegin(), chain.rend());
    s.extra_begin.push_back(static_cast<int32_t>(s.extra.size()));
  }
  Finish(s, shape, rows, n_new);
  return s;
}

double Bf16Value(float x) { return Bf16ToFloat(FloatToBf16(x)); }

// The kernels' arithmetic in double: pair kernels round q (after the scale)
// and p to bf16; K and V are the stored bf16 values.
void CheckAgainstReference(const TiledSeq& s, const AttentionShape& shape,
                           const std::string& what) {
  const int d = shape.head_dim, kv_dim = shape.n_kv_heads * d,
            group = shape.n_heads / shape.n_kv_heads;
  const bool pairs = KvBf16Pairs(KvType::kBF16, d);
  const float qscale = shape.scale * kLog2e;
  int bad = 0;
  for (int t = 0; t < s.seq.n_new; ++t) {
    std::vector<int> keys;
    for (int j = 0; j < s.visible[t]; ++j) keys.push_back(j);
    if (!s.parents.empty()) {
      for (int e = s.extra_begin[t]; e < s.extra_begin[t + 1]; ++e) keys.push_back(s.extra[e]);
    }
    for (int h = 0; h < shape.n_heads && bad < 5; ++h) {
      const int g = h / group;
      std::vector<double> sc(keys.size());
      double mx = -INFINITY;
      for (size_t i = 0; i < keys.size(); ++i) {
        double acc = 0;
        for (int c = 0; c < d; ++c) {
          const float qs = s.q[static_cast<size_t>(t) * shape.n_heads * d + h * d + c] * qscale;
          acc += (pairs ? Bf16Value(qs) : qs) * Bf16Value(s.k_rows[keys[i] * kv_dim + g * d + c]);
        }
        sc[i] = acc;
        mx = std::max(mx, acc);
      }
      double l = 0;
      std::vector<double> o(d, 0.0);
      for (size_t i = 0; i < keys.size(); ++i) {
        const double p = std::exp2(sc[i] - mx);
        l += p;
        const double pw = pairs ? Bf16Value(static_cast<float>(p)) : p;
        for (int c = 0; c < d; ++c) o[c] += pw * Bf16Value(s.v_rows[keys[i] * kv_dim + g * d + c]);
      }
      for (int c = 0; c < d && bad < 5; ++c) {
        const float got = s.out[static_cast<size_t>(t) * shape.n_heads * d + h * d + c];
        const double want = o[c] / l;
        if (!(std::abs(got - want) <= 2e-3)) {
          ADD_FAILURE() << what << " token " << t << " head " << h << " dim " << c << ": " << got
                        << " vs " << want;
          ++bad;
        }
      }
    }
  }
}

struct ShapeCase {
  int n_heads, n_kv_heads, head_dim;
};
const ShapeCase kShapes[] = {{4, 4, 8}, {6, 2, 16}, {8, 2, 64}, {3, 3, 20},
                             {4, 2, 6}, {2, 2, 4},  {2, 1, 15}, {2, 1, 128}};

AttentionShape MakeShape(const ShapeCase& c) {
  return AttentionShape{c.n_heads, c.n_kv_heads, c.head_dim,
                        1.0f / std::sqrt(static_cast<float>(c.head_dim))};
}

std::string Name(const ShapeCase& c) {
  return std::to_string(c.n_heads) + "/" + std::to_string(c.n_kv_heads) + " d " +
         std::to_string(c.head_dim);
}

std::vector<int32_t> Chain(int n) {
  std::vector<int32_t> p(n);
  for (int i = 0; i < n; ++i) p[i] = i - 1;
  return p;
}

// A batch of causal and tree sequences, with cache lengths that split tiles
// and key pairs.
std::vector<TiledSeq> MixedBatch(const AttentionShape& shape, uint32_t seed) {
  std::vector<TiledSeq> batch;
  batch.push_back(MakeSeq(shape, 0, 1, {}, seed));
  batch.push_back(MakeSeq(shape, 37, 1, {}, seed + 10));
  batch.push_back(MakeSeq(shape, 150, 6, {}, seed + 20));
  batch.push_back(MakeSeq(shape, 33, 5, Chain(5), seed + 30));
  batch.push_back(MakeSeq(shape, 64, 7, {-1, 0, 0, 1, -1, 4, 3}, seed + 40));
  batch.push_back(MakeSeq(shape, 0, 9, {-1, 0, 1, 1, 0, 4, 5, 2, -1}, seed + 50));
  return batch;
}

std::vector<AttentionSequence> Views(std::vector<TiledSeq>& batch) {
  std::vector<AttentionSequence> seqs;
  for (TiledSeq& s : batch) seqs.push_back(s.seq);
  return seqs;
}

class AttentionBf16Test : public ::testing::TestWithParam<CpuIsa> {};

TEST_P(AttentionBf16Test, MatchesReferenceCausalAndTree) {
  for (int threads : {1, 2}) {
    auto ops = MakeCpuOpsWithIsa(threads, GetParam());
    uint32_t seed = 1;
    for (const ShapeCase& c : kShapes) {
      const AttentionShape shape = MakeShape(c);
      std::vector<TiledSeq> batch = MixedBatch(shape, seed += 100);
      ops->Attention(Views(batch), shape);
      for (size_t i = 0; i < batch.size(); ++i) {
        CheckAgainstReference(batch[i], shape,
                              ops->name() + " " + Name(c) + " seq " + std::to_string(i));
      }
    }
  }
}

// A chain node's output equals the same token's decoded plainly once its
// ancestors are in the cache, whatever the cache length (odd lengths put a
// key pair across the cache and the node's extra tiles).
TEST_P(AttentionBf16Test, TreeNodeEqualsPlainDecodeBitForBit) {
  auto ops = MakeCpuOpsWithIsa(2, GetParam());
  for (const ShapeCase& c : kShapes) {
    const AttentionShape shape = MakeShape(c);
    const int d = c.head_dim, kv_dim = c.n_kv_heads * d, q_dim = c.n_heads * d;
    for (int cached : {15, 16, 17, 30, 33}) {
      std::vector<TiledSeq> tree;
      tree.push_back(MakeSeq(shape, cached, 4, Chain(4), 7 + cached));
      ops->Attention(Views(tree), shape);
      const TiledSeq& node = tree[0];
      for (int t = 0; t < 4; ++t) {
        // The same rows, cached + t + 1 of them, token t decoded alone.
        TiledSeq plain;
        const int rows = cached + t + 1;
        plain.k_rows.assign(node.k_rows.begin(), node.k_rows.begin() + rows * kv_dim);
        plain.v_rows.assign(node.v_rows.begin(), node.v_rows.begin() + rows * kv_dim);
        plain.q.assign(node.q.begin() + t * q_dim, node.q.begin() + (t + 1) * q_dim);
        plain.visible = {rows};
        Finish(plain, shape, rows, 1);
        std::vector<TiledSeq> one;
        one.push_back(std::move(plain));
        ops->Attention(Views(one), shape);
        ASSERT_EQ(std::memcmp(one[0].out.data(), node.out.data() + t * q_dim, q_dim * 4), 0)
            << ops->name() << " " << Name(c) << " cached " << cached << " node " << t;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllIsas, AttentionBf16Test, ::testing::ValuesIn(AvailableIsas()),
                         [](const ::testing::TestParamInfo<CpuIsa>& info) {
                           return std::string(CpuIsaName(info.param));
                         });

TEST(AttentionBf16IsaTest, LevelsAgreeBitForBit) {
  const std::vector<CpuIsa> isas = AvailableIsas();
  for (const ShapeCase& c : kShapes) {
    const AttentionShape shape = MakeShape(c);
    std::vector<std::vector<float>> outputs;
    for (CpuIsa isa : isas) {
      auto ops = MakeCpuOpsWithIsa(2, isa);
      std::vector<TiledSeq> batch = MixedBatch(shape, 500);
      ops->Attention(Views(batch), shape);
      outputs.emplace_back();
      for (const TiledSeq& s : batch)
        outputs.back().insert(outputs.back().end(), s.out.begin(), s.out.end());
    }
    for (size_t i = 1; i < outputs.size(); ++i) {
      ASSERT_EQ(std::memcmp(outputs[0].data(), outputs[i].data(), outputs[0].size() * 4), 0)
          << CpuIsaName(isas[i]) << " vs " << CpuIsaName(isas[0]) << " " << Name(c);
    }
  }
}

}  // namespace
}  // namespace specserve
