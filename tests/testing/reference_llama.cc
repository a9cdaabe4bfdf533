#include "tests/testing/reference_llama.h"

#include <cmath>

#include "common/model/quantize.h"

namespace specserve::testing {
namespace {

using Matrix = std::vector<std::vector<double>>;

Matrix Dequantize(const WeightTensor& w) {
  Matrix out(w.rows, std::vector<double>(w.cols));
  std::vector<float> row(w.cols);
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantizeRow(w.type, w.row(r), w.cols, row.data());
    for (int64_t c = 0; c < w.cols; ++c) out[r][c] = row[c];
  }
  return out;
}

std::vector<double> MatVec(const Matrix& w, const std::vector<double>& x) {
  std::vector<double> y(w.size(), 0.0);
  for (size_t r = 0; r < w.size(); ++r) {
    for (size_t c = 0; c < x.size(); ++c) y[r] += w[r][c] * x[c];
  }
  return y;
}

std::vector<double> RmsNorm(const std::vector<double>& x, const Matrix& weight, double eps) {
  double ss = 0.0;
  for (double v : x) ss += v * v;
  const double scale = 1.0 / std::sqrt(ss / x.size() + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * weight[0][i];
  return y;
}

// Frequencies as the model computes them when the config scales them (the scaling
// itself is checked against llama.cpp); plain theta^(-2i/d) in double otherwise.
void Rope(std::vector<double>& x, int n_heads, const ModelConfig& c, int pos) {
  const RopeFrequencies scaled = ComputeRopeFrequencies(c);
  const bool plain = c.rope_scaling.is_identity();
  for (int h = 0; h < n_heads; ++h) {
    double* head = x.data() + h * c.head_dim;
    for (int i = 0; i < c.rope_dim / 2; ++i) {
      const double freq = plain ? std::pow(static_cast<double>(c.rope_theta), -2.0 * i / c.rope_dim)
                                : scaled.inv_freq[i];
      const double angle = pos * freq;
      const int a = c.rope_style == RopeStyle::kInterleaved ? 2 * i : i;
      const int b = c.rope_style == RopeStyle::kInterleaved ? 2 * i + 1 : i + c.rope_dim / 2;
      const double x0 = head[a], x1 = head[b];
      head[a] = (x0 * std::cos(angle) - x1 * std::sin(angle)) * scaled.mscale;
      head[b] = (x0 * std::sin(angle) + x1 * std::cos(angle)) * scaled.mscale;
    }
  }
}

void AddBias(const WeightTensor& bias, std::vector<double>& x) {
  if (bias.data == nullptr) return;
  const Matrix b = Dequantize(bias);
  for (size_t i = 0; i < x.size(); ++i) x[i] += b[0][i];
}

}  // namespace

std::vector<std::vector<double>> ReferenceLogits(const LoadedModel& model,
                                                 const std::vector<int32_t>& tokens,
                                                 const std::vector<int32_t>& positions,
                                                 const Visibility& visible) {
  const ModelConfig& c = model.config;
  const LlamaWeights& w = model.weights;
  const int n = static_cast<int>(tokens.size());
  const Matrix embedding = Dequantize(w.token_embedding);
  Matrix x(n);
  for (int t = 0; t < n; ++t) x[t] = embedding[tokens[t]];

  for (const LayerWeights& layer : w.layers) {
    const Matrix attn_norm = Dequantize(layer.attn_norm), wq = Dequantize(layer.wq),
                 wk = Dequantize(layer.wk), wv = Dequantize(layer.wv), wo = Dequantize(layer.wo),
                 ffn_norm = Dequantize(layer.ffn_norm), w_gate = Dequantize(layer.w_gate),
                 w_up = Dequantize(layer.w_up), w_down = Dequantize(layer.w_down);
    Matrix q(n), k(n), v(n);
    for (int t = 0; t < n; ++t) {
      const std::vector<double> xn = RmsNorm(x[t], attn_norm, c.rms_eps);
      q[t] = MatVec(wq, xn);
      k[t] = MatVec(wk, xn);
      v[t] = MatVec(wv, xn);
      AddBias(layer.bq, q[t]);
      AddBias(layer.bk, k[t]);
      AddBias(layer.bv, v[t]);
      const int pos = positions.empty() ? t : positions[t];
      Rope(q[t], c.n_heads, c, pos);
      Rope(k[t], c.n_kv_heads, c, pos);
    }
    const int group = c.n_heads / c.n_kv_heads;
    for (int t = 0; t < n; ++t) {
      std::vector<double> out(c.q_dim(), 0.0);
      for (int h = 0; h < c.n_heads; ++h) {
        const int kvh = h / group;
        std::vector<double> scores;
        std::vector<int> keys;
        for (int j = 0; j <= t; ++j) {
          if (visible && !visible(t, j)) continue;
          const int pos_t = positions.empty() ? t : positions[t];
          const int pos_j = positions.empty() ? j : positions[j];
          if (c.sliding_window > 0 && pos_t - pos_j >= c.sliding_window) continue;
          double dot = 0.0;
          for (int d = 0; d < c.head_dim; ++d) {
            dot += q[t][h * c.head_dim + d] * k[j][kvh * c.head_dim + d];
          }
          scores.push_back(dot / std::sqrt(static_cast<double>(c.head_dim)));
          keys.push_back(j);
        }
        double max_score = -1e300, sum = 0.0;
        for (double s : scores) max_score = std::max(max_score, s);
        for (double& s : scores) sum += (s = std::exp(s - max_score));
        for (size_t i = 0; i < keys.size(); ++i) {
          for (int d = 0; d < c.head_dim; ++d) {
            out[h * c.head_dim + d] += scores[i] / sum * v[keys[i]][kvh * c.head_dim + d];
          }
        }
      }
      const std::vector<double> o = MatVec(wo, out);
      for (int d = 0; d < c.dim; ++d) x[t][d] += o[d];
      const std::vector<double> xn = RmsNorm(x[t], ffn_norm, c.rms_eps);
      std::vector<double> gate = MatVec(w_gate, xn);
      const std::vector<double> up = MatVec(w_up, xn);
      for (size_t i = 0; i < gate.size(); ++i)
        gate[i] = gate[i] / (1.0 + std::exp(-gate[i])) * up[i];
      const std::vector<double> down = MatVec(w_down, gate);
      for (int d = 0; d < c.dim; ++d) x[t][d] += down[d];
    }
  }
  const Matrix output_norm = Dequantize(w.output_norm), output = Dequantize(w.output);
  std::vector<std::vector<double>> logits(n);
  for (int t = 0; t < n; ++t) logits[t] = MatVec(output, RmsNorm(x[t], output_norm, c.rms_eps));
  return logits;
}

}  // namespace specserve::testing
