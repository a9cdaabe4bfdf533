#include "common/ops/cuda/cuda_ops.h"

#include <algorithm>

#include "absl/strings/str_format.h"
#include "common/ops/cuda/cuda_status.h"
#include "common/util/status_macros.h"

namespace specserve::cuda {
namespace {

cudaDataType_t CudaDataType(DeviceType type) {
  switch (type) {
    case DeviceType::kF16:
      return CUDA_R_16F;
    case DeviceType::kBF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

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

absl::StatusOr<const CudaOps::DeviceWeight*> CudaOps::Weight(const WeightTensor& w,
                                                             DeviceType type) {
  const auto key = std::make_tuple(w.data, w.rows, w.cols, static_cast<int>(type));
  if (auto it = weights_.find(key); it != weights_.end()) return &it->second;
  DeviceWeight weight;
  weight.type = type;
  const size_t bytes = static_cast<size_t>(w.elements()) * DeviceTypeBytes(type);
  RETURN_IF_ERROR(weight.buffer.Reserve(std::max<size_t>(bytes, 1)));
  RETURN_IF_ERROR(staging_.Reserve(static_cast<size_t>(w.bytes())));
  RETURN_IF_ERROR(CudaStatus(
      cudaMemcpyAsync(staging_.data(), w.data, w.bytes(), cudaMemcpyHostToDevice, stream_),
      "upload weight"));
  RETURN_IF_ERROR(
      ConvertWeights(w.type, staging_.data(), w.rows, w.cols, type, weight.buffer.data(), stream_));
  weight_bytes_ += static_cast<int64_t>(bytes);
  auto [it, inserted] = weights_.emplace(key, std::move(weight));
  return &it->second;
}

absl::Status CudaOps::UploadModel(const LoadedModel& model) {
  RETURN_IF_ERROR(MakeCurrent());
  const LlamaWeights& w = model.weights;
  RETURN_IF_ERROR(Weight(w.token_embedding, options_.weight_type).status());
  RETURN_IF_ERROR(Weight(w.output_norm, DeviceType::kF32).status());
  RETURN_IF_ERROR(Weight(w.output, options_.weight_type).status());
  for (const LayerWeights& l : w.layers) {
    RETURN_IF_ERROR(Weight(l.attn_norm, DeviceType::kF32).status());
    RETURN_IF_ERROR(Weight(l.ffn_norm, DeviceType::kF32).status());
    for (const WeightTensor* m : l.matrices()) {
      RETURN_IF_ERROR(Weight(*m, options_.weight_type).status());
    }
  }
  return Synchronize();
}

absl::StatusOr<const int32_t*> CudaOps::UploadInts(std::span<const int32_t> values,
                                                   DeviceBuffer* buffer) {
  RETURN_IF_ERROR(buffer->Reserve(std::max<size_t>(values.size_bytes(), 4)));
  RETURN_IF_ERROR(CudaStatus(cudaMemcpyAsync(buffer->data(), values.data(), values.size_bytes(),
                                             cudaMemcpyHostToDevice, stream_),
                             "upload ints"));
  return buffer->as<const int32_t>();
}

void CudaOps::EmbedRows(const WeightTensor& table, std::span<const int32_t> tokens, float* out) {
  if (!status_.ok()) return;
  absl::StatusOr<const DeviceWeight*> w = Weight(table, options_.weight_type);
  if (!Check(w.status())) return;
  absl::StatusOr<const int32_t*> ids = UploadInts(tokens, &tokens_);
  if (!Check(ids.status())) return;
  Check(cuda::EmbedRows((*w)->buffer.data(), (*w)->type, table.cols, *ids,
                        static_cast<int>(tokens.size()), out, stream_));
}

void CudaOps::RmsNorm(const float* x, const WeightTensor& weight, float eps, int n_rows, float* y) {
  if (!status_.ok()) return;
  absl::StatusOr<const DeviceWeight*> w = Weight(weight, DeviceType::kF32);
  if (!Check(w.status())) return;
  Check(cuda::RmsNorm(x, (*w)->buffer.as<const float>(), eps, n_rows, static_cast<int>(weight.cols),
                      y, stream_));
}

void CudaOps::MatMul(const WeightTensor& w, const float* x, int n_rows, float* y) {
  if (!status_.ok() || n_rows == 0 || w.rows == 0) return;
  absl::StatusOr<const DeviceWeight*> dw = Weight(w, options_.weight_type);
  if (!Check(dw.status())) return;
  // Row-major y[n x out] = x[n x in] . W^T is, column-major, y^T = W^T(cm) . x^T(cm):
  // m = out, n = n_rows, k = in; A = W (in x out column-major, transposed).
  const int m = static_cast<int>(w.rows), n = n_rows, k = static_cast<int>(w.cols);
  const float alpha = 1.0f, beta = 0.0f;
  const DeviceType type = (*dw)->type;
  const void* b = x;
  if (type != DeviceType::kF32) {
    const int64_t elements = static_cast<int64_t>(n) * k;
    if (!Check(activations_.Reserve(static_cast<size_t>(elements) * DeviceTypeBytes(type)))) {
      return;
    }
    if (!Check(ConvertActivations(x, elements, type, activations_.data(), stream_))) return;
    b = activations_.data();
  }
  Check(CublasStatus(
      cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, &alpha, (*dw)->buffer.data(),
                   CudaDataType(type), k, b, CudaDataType(type), k, &beta, y, CUDA_R_32F, m,
                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
      "cublasGemmEx"));
}

void CudaOps::Rope(float* x, int n_rows, int stride, int n_heads, int head_dim,
                   std::span<const int32_t> positions, const RopeFrequencies& freqs,
                   RopeStyle style) {
  if (!status_.ok()) return;
  absl::StatusOr<const int32_t*> pos = UploadInts(positions.first(n_rows), &positions_);
  if (!Check(pos.status())) return;
  const size_t bytes = freqs.inv_freq.size() * sizeof(float);
  if (!Check(rope_freqs_.Reserve(std::max<size_t>(bytes, 4)))) return;
  if (!Check(CudaStatus(cudaMemcpyAsync(rope_freqs_.data(), freqs.inv_freq.data(), bytes,
                                        cudaMemcpyHostToDevice, stream_),
                        "upload rope frequencies"))) {
    return;
  }
  Check(cuda::Rope(x, n_rows, stride, n_heads, head_dim, static_cast<int>(freqs.inv_freq.size()),
                   *pos, rope_freqs_.as<const float>(), freqs.mscale, style == RopeStyle::kHalf,
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
  host_parents_.clear();
  int max_rows = 1;
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
    d.parents_offset = -1;
    if (a.parents != nullptr) {
      d.parents_offset = static_cast<int>(host_parents_.size());
      host_parents_.insert(host_parents_.end(), a.parents, a.parents + a.n_pending + a.n_new);
    }
    const int index = static_cast<int>(host_sequences_.size());
    for (int t = 0; t < a.n_new; ++t) host_items_.push_back({index, t});
    max_rows = std::max(max_rows, d.cached_rows + a.n_pending + a.n_new);
    host_sequences_.push_back(d);
  }
  if (host_items_.empty()) return absl::OkStatus();

  // Enough blocks to fill the device twice over: long caches with few tokens
  // (decode) are split across blocks, each split at least 32 rows.
  const int units = static_cast<int>(host_items_.size()) * shape.n_heads;
  const int wanted = std::clamp((2 * sm_count_ + units - 1) / units, 1, 64);
  const int rows_per_split = std::max(32, (max_rows + wanted - 1) / wanted);
  const int splits = (max_rows + rows_per_split - 1) / rows_per_split;

  auto upload = [this](DeviceBuffer* buffer, const void* data, size_t bytes) -> absl::Status {
    RETURN_IF_ERROR(buffer->Reserve(std::max<size_t>(bytes, 16)));
    if (bytes == 0) return absl::OkStatus();
    return CudaStatus(cudaMemcpyAsync(buffer->data(), data, bytes, cudaMemcpyHostToDevice, stream_),
                      "upload attention descriptors");
  };
  RETURN_IF_ERROR(
      upload(&segments_, host_segments_.data(), host_segments_.size() * sizeof(DeviceKvSegment)));
  RETURN_IF_ERROR(upload(&sequences_, host_sequences_.data(),
                         host_sequences_.size() * sizeof(DeviceAttentionSequence)));
  RETURN_IF_ERROR(
      upload(&items_, host_items_.data(), host_items_.size() * sizeof(DeviceAttentionItem)));
  RETURN_IF_ERROR(upload(&parents_, host_parents_.data(), host_parents_.size() * sizeof(int32_t)));
  const int n_items = static_cast<int>(host_items_.size());
  RETURN_IF_ERROR(partial_.Reserve(
      static_cast<size_t>(AttentionPartialFloats(n_items, shape.n_heads, splits, shape.head_dim)) *
      sizeof(float)));

  DeviceAttentionArgs args{};
  args.segments = segments_.as<const DeviceKvSegment>();
  args.sequences = sequences_.as<const DeviceAttentionSequence>();
  args.items = items_.as<const DeviceAttentionItem>();
  args.parents = parents_.as<const int32_t>();
  args.n_items = n_items;
  args.n_heads = shape.n_heads;
  args.n_kv_heads = shape.n_kv_heads;
  args.head_dim = shape.head_dim;
  args.kv_dim = shape.n_kv_heads * shape.head_dim;
  args.scale = shape.scale;
  args.splits = splits;
  args.rows_per_split = rows_per_split;
  args.partial = partial_.as<float>();
  return LaunchAttention(args, stream_);
}

}  // namespace specserve::cuda
