#include "common/ops/cuda/cuda_ops.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/ops/cuda/gemm.h"
#include "common/util/status_macros.h"

namespace specserve::cuda {
namespace {

const char* DeviceTypeName(DeviceType type) {
  switch (type) {
    case DeviceType::kF16:
      return "f16";
    case DeviceType::kBF16:
      return "bf16";
    default:
      return "f32";
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<CudaOps>> CudaOps::Create(const CudaOpsOptions& options) {
  RETURN_IF_ERROR(CudaDeviceAvailable());
  std::unique_ptr<CudaOps> ops(new CudaOps(options));
  RETURN_IF_ERROR(ops->MakeCurrent());
  RETURN_IF_ERROR(CudaStatus(
      cudaDeviceGetAttribute(&ops->sm_count_, cudaDevAttrMultiProcessorCount, options.device),
      "cudaDeviceGetAttribute"));
  RETURN_IF_ERROR(CudaStatus(cudaStreamCreateWithFlags(&ops->stream_, cudaStreamNonBlocking),
                             "cudaStreamCreate"));
  RETURN_IF_ERROR(CublasStatus(cublasCreate(&ops->cublas_), "cublasCreate"));
  RETURN_IF_ERROR(CublasStatus(cublasSetStream(ops->cublas_, ops->stream_), "cublasSetStream"));
  return ops;
}

CudaOps::~CudaOps() {
  if (MakeCurrent().ok()) {
    if (stream_ != nullptr) cudaStreamSynchronize(stream_);
    weights_.clear();
    if (cublas_ != nullptr) cublasDestroy(cublas_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }
}

std::string CudaOps::name() const {
  return absl::StrFormat("cuda:%d(%s)", options_.device, DeviceTypeName(options_.weight_type));
}

absl::Status CudaOps::MakeCurrent() const {
  return CudaStatus(cudaSetDevice(options_.device), "cudaSetDevice");
}

absl::Status CudaOps::Synchronize() {
  Check(CudaStatus(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
  return status_;
}

bool CudaOps::Check(absl::Status s) {
  if (!status_.ok()) return false;
  status_ = std::move(s);
  return status_.ok();
}

int64_t CudaOps::MatMulLeadingDim(const WeightTensor& w) const {
  return options_.weight_type == DeviceType::kF32 ? w.cols : GemmLeadingDim(w.cols);
}

absl::StatusOr<const CudaOps::DeviceWeight*> CudaOps::Weight(const WeightTensor& w, DeviceType type,
                                                             int64_t ld) {
  const auto key = std::make_tuple(w.data, w.rows, w.cols, static_cast<int>(type), ld);
  if (auto it = weights_.find(key); it != weights_.end()) return &it->second;
  DeviceWeight weight;
  weight.type = type;
  // Rows padded to whole 16-row tiles and columns to ld, zero-filled (gemm.h).
  const size_t element = DeviceTypeBytes(type);
  const size_t bytes = static_cast<size_t>(GemmWeightRows(w.rows) * ld) * element;
  RETURN_IF_ERROR(weight.buffer.Reserve(std::max<size_t>(bytes, 1)));
  RETURN_IF_ERROR(
      CudaStatus(cudaMemsetAsync(weight.buffer.data(), 0, bytes, stream_), "clear weight"));
  RETURN_IF_ERROR(staging_.Reserve(static_cast<size_t>(w.bytes())));
  RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(staging_.data(), w.data, w.bytes(), cudaMemcpyHostToDevice, stream_),
      "upload weight"));
  if (ld == w.cols) {
    RETURN_IF_ERROR(ConvertWeights(w.type, staging_.data(), w.rows, w.cols, type,
                                   weight.buffer.data(), stream_));
  } else {
    RETURN_IF_ERROR(convert_scratch_.Reserve(static_cast<size_t>(w.elements()) * element));
    RETURN_IF_ERROR(ConvertWeights(w.type, staging_.data(), w.rows, w.cols, type,
                                   convert_scratch_.data(), stream_));
    RETURN_IF_ERROR(
        CudaStatus(cudaMemcpy2DAsync(weight.buffer.data(), ld * element, convert_scratch_.data(),
                                     w.cols * element, w.cols * element, w.rows,
                                     cudaMemcpyDeviceToDevice, stream_),
                   "pad weight"));
  }
  weight_bytes_ += static_cast<int64_t>(bytes);
  auto [it, inserted] = weights_.emplace(key, std::move(weight));
  return &it->second;
}

absl::Status CudaOps::UploadModel(const LoadedModel& model) {
  RETURN_IF_ERROR(MakeCurrent());
  const LlamaWeights& w = model.weights;
  const DeviceType type = options_.weight_type;
  RETURN_IF_ERROR(Weight(w.token_embedding, type, w.token_embedding.cols).status());
  RETURN_IF_ERROR(Weight(w.output_norm, DeviceType::kF32, w.output_norm.cols).status());
  RETURN_IF_ERROR(Weight(w.output, type, MatMulLeadingDim(w.output)).status());
  for (const LayerWeights& l : w.layers) {
    RETURN_IF_ERROR(Weight(l.attn_norm, DeviceType::kF32, l.attn_norm.cols).status());
    RETURN_IF_ERROR(Weight(l.ffn_norm, DeviceType::kF32, l.ffn_norm.cols).status());
    for (const WeightTensor* m : l.matrices()) {
      RETURN_IF_ERROR(Weight(*m, type, MatMulLeadingDim(*m)).status());
    }
  }
  return Synchronize();
}

absl::Status CudaOps::Upload(DeviceBuffer* buffer, const void* data, size_t bytes) {
  RETURN_IF_ERROR(buffer->Reserve(std::max<size_t>(bytes, 16)));
  return host_staging_.CopyToDevice(buffer->data(), data, bytes, stream_);
}

absl::StatusOr<const int32_t*> CudaOps::UploadInts(std::span<const int32_t> values,
                                                   DeviceBuffer* buffer) {
  RETURN_IF_ERROR(Upload(buffer, values.data(), values.size_bytes()));
  return buffer->as<const int32_t>();
}

void CudaOps::EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens, float* out) {
  if (!status_.ok()) return;
  absl::StatusOr<const DeviceWeight*> w = Weight(table, options_.weight_type, table.cols);
  if (!Check(w.status())) return;
  absl::StatusOr<const int32_t*> ids = UploadInts(tokens, &tokens_);
  if (!Check(ids.status())) return;
  Check(cuda::EmbedRows((*w)->buffer.data(), (*w)->type, table.cols, *ids,
                        static_cast<int>(tokens.size()), out, stream_));
}

void CudaOps::RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows, float* y) {
  if (!status_.ok()) return;
  absl::StatusOr<const DeviceWeight*> w = Weight(weight, DeviceType::kF32, weight.cols);
  if (!Check(w.status())) return;
  Check(cuda::RmsNorm(x, (*w)->buffer.as<const float>(), eps, n_rows, static_cast<int>(weight.cols),
                      y, stream_));
}

void CudaOps::MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) {
  const WeightTensor* ws[] = {&w};
  float* ys[] = {y};
  MatMuls(ws, x, n_rows, ys);
}

void CudaOps::MatMuls(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                      std::span<float* const> ys) {
  if (!status_.ok() || n_rows == 0) return;
  if (options_.weight_type == DeviceType::kF32) {
    for (size_t i = 0; i < ws.size() && status_.ok(); ++i)
      CublasMatMulF32(*ws[i], x, n_rows, ys[i]);
    return;
  }
  // Weights of one width (the Q/K/V or gate/up projections) share one
  // conversion of x.
  for (size_t first = 0; first < ws.size() && status_.ok();) {
    size_t end = first + 1;
    while (end < ws.size() && ws[end]->cols == ws[first]->cols) ++end;
    GemmSameWidth(ws.subspan(first, end - first), x, n_rows, ys.subspan(first, end - first));
    first = end;
  }
}

void CudaOps::GemmSameWidth(std::span<const WeightTensor* const> ws, const float* x, int n_rows,
                            std::span<float* const> ys) {
  // The production path: x rounded to the weight type once, then one
  // batch-invariant tensor-core GEMM per weight (gemm.h).
  const DeviceType type = options_.weight_type;
  const int64_t cols = ws[0]->cols, ld = MatMulLeadingDim(*ws[0]);
  const size_t bytes = static_cast<size_t>(GemmActivationRows(n_rows) * ld) * DeviceTypeBytes(type);
  if (!Check(activations_.Reserve(bytes))) return;
  if (!Check(ConvertActivationsForGemm(x, n_rows, cols, ld, type, activations_.data(), stream_))) {
    return;
  }
  for (size_t i = 0; i < ws.size(); ++i) {
    const WeightTensor& w = *ws[i];
    if (w.rows == 0) continue;
    absl::StatusOr<const DeviceWeight*> dw = Weight(w, type, ld);
    if (!Check(dw.status())) return;
    if (!Check(BatchInvariantGemm((*dw)->buffer.data(), activations_.data(), type, w.rows, cols,
                                  n_rows, ys[i], stream_))) {
      return;
    }
  }
}

void CudaOps::CublasMatMulF32(const WeightTensor& w, const float* x, int n_rows, float* y) {
  if (w.rows == 0) return;
  absl::StatusOr<const DeviceWeight*> dw = Weight(w, DeviceType::kF32, MatMulLeadingDim(w));
  if (!Check(dw.status())) return;
  // fp32 weights (a test precision): cuBLAS, whose kernel choice depends on the
  // row count, so not batch-invariant.
  // Row-major y[n x out] = x[n x in] . W^T is, column-major, y^T = W^T(cm) . x^T(cm):
  // m = out, n = n_rows, k = in; A = W (in x out column-major, transposed).
  const int m = static_cast<int>(w.rows), n = n_rows, k = static_cast<int>(w.cols);
  const float alpha = 1.0f, beta = 0.0f;
  Check(CublasStatus(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha,
                                  (*dw)->buffer.data(), CUDA_R_32F, k, x, CUDA_R_32F, k, &beta, y,
                                  CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                     "cublasGemmEx"));
}

void CudaOps::Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
                   std::span<const int32_t> positions, const RopeFrequencies& freqs,
                   RopeStyle style) {
  if (!status_.ok()) return;
  // q and k of every layer turn by the same positions and frequencies: upload
  // them when they change, not twice a layer.
  const std::span<const int32_t> rows = positions.first(n_rows);
  if (!std::equal(rows.begin(), rows.end(), uploaded_positions_.begin(),
                  uploaded_positions_.end())) {
    if (!Check(Upload(&positions_, rows.data(), rows.size_bytes()))) return;
    uploaded_positions_.assign(rows.begin(), rows.end());
  }
  if (freqs.inv_freq != uploaded_freqs_) {
    if (!Check(
            Upload(&rope_freqs_, freqs.inv_freq.data(), freqs.inv_freq.size() * sizeof(float)))) {
      return;
    }
    uploaded_freqs_ = freqs.inv_freq;
  }
  const int32_t* pos = positions_.as<const int32_t>();
  Check(cuda::Rope(x, n_rows, stride, n_heads, head_dim, static_cast<int>(freqs.inv_freq.size()),
                   pos, rope_freqs_.as<const float>(), freqs.mscale, style == RopeStyle::kHalf,
                   stream_));
}

void CudaOps::SwiGlu(const float* gate, const float* up, int64_t n, float* out) {
  if (!status_.ok()) return;
  Check(cuda::SwiGlu(gate, up, n, out, stream_));
}

void CudaOps::Add(float* x, const float* y, int64_t n) {
  if (!status_.ok()) return;
  Check(cuda::Add(x, y, n, stream_));
}

void CudaOps::Attention(std::span<const AttentionSequence> sequences, const AttentionShape& shape) {
  if (!status_.ok()) return;
  Check(AttentionImpl(sequences, shape));
}

absl::Status CudaOps::AttentionImpl(std::span<const AttentionSequence> sequences,
                                    const AttentionShape& shape) {
  host_segments_.clear();
  host_sequences_.clear();
  host_items_.clear();
  host_visible_.clear();
  int max_keys = 1;
  for (const AttentionSequence& a : sequences) {
    DeviceAttentionSequence d{};
    d.segment_begin = static_cast<int>(host_segments_.size());
    for (const KvSegment& s : a.cached) {
      if (s.n_rows > 0) host_segments_.push_back({s.k, s.v, s.n_rows});
      d.cached_rows += s.n_rows;
    }
    d.segment_count = static_cast<int>(host_segments_.size()) - d.segment_begin;
    d.n_pending = a.n_pending;
    d.n_new = a.n_new;
    d.q = a.q;
    d.q_stride = a.q_stride;
    d.k = a.k;
    d.v = a.v;
    d.kv_stride = a.kv_stride;
    d.out = a.out;
    d.out_stride = a.out_stride;
    const int index = static_cast<int>(host_sequences_.size());
    for (int t = 0; t < a.n_new; ++t) {
      DeviceAttentionItem item{index, t, -1, 0};
      const int self = a.n_pending + t;
      if (a.parents != nullptr) {
        // The node's ancestors and itself, ascending (parents precede children).
        item.visible_begin = static_cast<int>(host_visible_.size());
        for (int row = self; row >= 0; row = a.parents[row]) {
          if (row >= self + 1 || ++item.visible_count > self + 1) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "attention: block row %d's parents do not lead back to the cache", self));
          }
          host_visible_.push_back(row);
        }
        std::reverse(host_visible_.begin() + item.visible_begin, host_visible_.end());
      } else {
        item.visible_count = self + 1;
      }
      max_keys = std::max(max_keys, d.cached_rows + item.visible_count);
      host_items_.push_back(item);
    }
    host_sequences_.push_back(d);
  }
  if (host_items_.empty()) return absl::OkStatus();
  const int splits = (max_keys + kAttentionSplitRows - 1) / kAttentionSplitRows;
  // Rows that read the same KV head share a block: a sequence's new tokens x
  // the query heads of one KV head, up to kAttentionGroupRows at a time.
  host_groups_.clear();
  const int per_kv = shape.n_heads / shape.n_kv_heads;
  for (int s = 0, first = 0; s < static_cast<int>(sequences.size()); ++s) {
    const int n_new = sequences[s].n_new;
    for (int kv = 0; kv < shape.n_kv_heads; ++kv) {
      if (per_kv <= kAttentionGroupRows) {
        const int items = kAttentionGroupRows / per_kv;
        for (int i = 0; i < n_new; i += items) {
          host_groups_.push_back(DeviceAttentionGroup{.sequence = s,
                                                      .first_item = first + i,
                                                      .n_items = std::min(items, n_new - i),
                                                      .first_head = kv * per_kv,
                                                      .n_heads = per_kv});
        }
      } else {
        for (int i = 0; i < n_new; ++i) {
          for (int h = 0; h < per_kv; h += kAttentionGroupRows) {
            host_groups_.push_back(
                DeviceAttentionGroup{.sequence = s,
                                     .first_item = first + i,
                                     .n_items = 1,
                                     .first_head = kv * per_kv + h,
                                     .n_heads = std::min(kAttentionGroupRows, per_kv - h)});
          }
        }
      }
    }
    first += n_new;
  }

  // The descriptor arrays go up in one staged copy.
  auto aligned = [](size_t bytes) { return (bytes + 15) / 16 * 16; };
  const size_t segment_bytes = aligned(host_segments_.size() * sizeof(DeviceKvSegment));
  const size_t sequence_bytes = aligned(host_sequences_.size() * sizeof(DeviceAttentionSequence));
  const size_t item_bytes = aligned(host_items_.size() * sizeof(DeviceAttentionItem));
  const size_t visible_bytes = aligned(host_visible_.size() * sizeof(int32_t));
  const size_t group_bytes = aligned(host_groups_.size() * sizeof(DeviceAttentionGroup));
  const size_t total = segment_bytes + sequence_bytes + item_bytes + visible_bytes + group_bytes;
  host_args_.resize(total);
  char* h = host_args_.data();
  std::memcpy(h, host_segments_.data(), host_segments_.size() * sizeof(DeviceKvSegment));
  std::memcpy(h + segment_bytes, host_sequences_.data(),
              host_sequences_.size() * sizeof(DeviceAttentionSequence));
  std::memcpy(h + segment_bytes + sequence_bytes, host_items_.data(),
              host_items_.size() * sizeof(DeviceAttentionItem));
  std::memcpy(h + segment_bytes + sequence_bytes + item_bytes, host_visible_.data(),
              host_visible_.size() * sizeof(int32_t));
  std::memcpy(h + segment_bytes + sequence_bytes + item_bytes + visible_bytes, host_groups_.data(),
              host_groups_.size() * sizeof(DeviceAttentionGroup));
  RETURN_IF_ERROR(Upload(&attention_args_, host_args_.data(), total));
  const char* dev = attention_args_.as<const char>();
  const int n_items = static_cast<int>(host_items_.size());
  RETURN_IF_ERROR(partial_.Reserve(
      static_cast<size_t>(AttentionPartialFloats(n_items, shape.n_heads, splits, shape.head_dim)) *
      sizeof(float)));

  DeviceAttentionArgs args{};
  args.segments = reinterpret_cast<const DeviceKvSegment*>(dev);
  args.sequences = reinterpret_cast<const DeviceAttentionSequence*>(dev + segment_bytes);
  args.items = reinterpret_cast<const DeviceAttentionItem*>(dev + segment_bytes + sequence_bytes);
  args.visible =
      reinterpret_cast<const int32_t*>(dev + segment_bytes + sequence_bytes + item_bytes);
  args.groups = reinterpret_cast<const DeviceAttentionGroup*>(dev + segment_bytes + sequence_bytes +
                                                              item_bytes + visible_bytes);
  args.n_items = n_items;
  args.n_groups = static_cast<int>(host_groups_.size());
  args.max_group_rows = 1;
  for (const DeviceAttentionGroup& g : host_groups_) {
    args.max_group_rows = std::max(args.max_group_rows, g.n_items * g.n_heads);
  }
  args.n_heads = shape.n_heads;
  args.n_kv_heads = shape.n_kv_heads;
  args.head_dim = shape.head_dim;
  args.kv_dim = shape.n_kv_heads * shape.head_dim;
  args.scale = shape.scale;
  args.splits = splits;
  args.partial = partial_.as<float>();
  return LaunchAttention(args, stream_);
}

}  // namespace specserve::cuda
