#include "common/model/llama_layout.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace specserve {

std::vector<LlamaTensorSlot> LlamaTensorSlots(const ModelConfig& c, LlamaWeights* w) {
  w->layers.resize(c.n_layers);
  const int64_t dim = c.dim;
  const int64_t vocab = c.vocab_size;
  std::vector<LlamaTensorSlot> slots;
  slots.reserve(3 + 12 * static_cast<size_t>(c.n_layers));
  slots.push_back({"token_embd.weight", {dim, vocab}, false, false, &w->token_embedding});
  slots.push_back({"output_norm.weight", {dim}, true, false, &w->output_norm});
  if (!c.tied_embeddings)
    slots.push_back({"output.weight", {dim, vocab}, false, false, &w->output});
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w->layers[l];
    const std::string p = absl::StrCat("blk.", l, ".");
    slots.push_back({p + "attn_norm.weight", {dim}, true, false, &L.attn_norm});
    slots.push_back({p + "attn_q.weight", {dim, c.q_dim()}, false, false, &L.wq});
    if (c.attention_bias) slots.push_back({p + "attn_q.bias", {c.q_dim()}, true, true, &L.bq});
    slots.push_back({p + "attn_k.weight", {dim, c.kv_dim()}, false, false, &L.wk});
    if (c.attention_bias) slots.push_back({p + "attn_k.bias", {c.kv_dim()}, true, true, &L.bk});
    slots.push_back({p + "attn_v.weight", {dim, c.kv_dim()}, false, false, &L.wv});
    if (c.attention_bias) slots.push_back({p + "attn_v.bias", {c.kv_dim()}, true, true, &L.bv});
    slots.push_back({p + "attn_output.weight", {c.q_dim(), dim}, false, false, &L.wo});
    slots.push_back({p + "ffn_norm.weight", {dim}, true, false, &L.ffn_norm});
    slots.push_back({p + "ffn_gate.weight", {dim, c.ffn_dim}, false, false, &L.w_gate});
    slots.push_back({p + "ffn_down.weight", {c.ffn_dim, dim}, false, false, &L.w_down});
    slots.push_back({p + "ffn_up.weight", {dim, c.ffn_dim}, false, false, &L.w_up});
  }
  return slots;
}

std::string GgufArchitecture(const ModelConfig& config) {
  return config.architecture == "qwen2" ? "qwen2" : "llama";
}

RopeStyle GgufRopeStyle(const std::string& architecture) {
  return architecture == "qwen2" ? RopeStyle::kHalf : RopeStyle::kInterleaved;
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

}  // namespace specserve
