// The real test models load, and the GGUF and llama2.c copies of stories260K
// hold the same configuration and the same weights.
#include "tests/testing/shared_models.h"

#include <cstring>

#include "common/model/model_loader.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

void ExpectSameTensor(const WeightTensor& a, const WeightTensor& b, const std::string& what) {
  ASSERT_EQ(a.type, TensorType::kF32) << what;
  ASSERT_EQ(b.type, TensorType::kF32) << what;
  ASSERT_EQ(a.rows, b.rows) << what;
  ASSERT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes()), 0) << what << " differs";
}

TEST(SharedModelsTest, Stories260KGgufAndBinAgree) {
  SPECSERVE_REQUIRE_SHARED_MODEL(gguf_path, "stories260K.gguf");
  SPECSERVE_REQUIRE_SHARED_MODEL(bin_path, "stories260K.bin");
  SPECSERVE_REQUIRE_SHARED_MODEL(tok_path, "tok512.bin");
  absl::StatusOr<std::unique_ptr<LoadedModel>> gguf = LoadModel(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  LoadOptions options;
  options.tokenizer_path = tok_path;
  absl::StatusOr<std::unique_ptr<LoadedModel>> bin = LoadModel(bin_path, options);
  ASSERT_TRUE(bin.ok()) << bin.status();
  // Without --tokenizer, tok512.bin is found beside the model (tokenizer.bin there
  // is the 32000-token vocabulary).
  absl::StatusOr<std::unique_ptr<LoadedModel>> found = LoadModel(bin_path);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ((*found)->vocab.size(), 512);

  const ModelConfig& g = (*gguf)->config;
  const ModelConfig& b = (*bin)->config;
  EXPECT_EQ(g.dim, 64);
  EXPECT_EQ(g.n_layers, 5);
  EXPECT_EQ(g.n_heads, 8);
  EXPECT_EQ(g.n_kv_heads, 4);
  EXPECT_EQ(g.ffn_dim, 172);
  EXPECT_EQ(g.vocab_size, 512);
  EXPECT_TRUE(g.tied_embeddings);
  for (const ModelConfig* c : {&g, &b}) {
    EXPECT_EQ(c->head_dim, 8);
    EXPECT_EQ(c->rope_dim, 8);
    EXPECT_EQ(c->rope_style, RopeStyle::kInterleaved);
    EXPECT_EQ(c->rope_theta, 10000.0f);
    EXPECT_EQ(c->rms_eps, 1e-5f);
  }
  EXPECT_EQ(b.dim, g.dim);
  EXPECT_EQ(b.n_layers, g.n_layers);
  EXPECT_EQ(b.n_heads, g.n_heads);
  EXPECT_EQ(b.n_kv_heads, g.n_kv_heads);
  EXPECT_EQ(b.ffn_dim, g.ffn_dim);
  EXPECT_EQ(b.vocab_size, g.vocab_size);
  EXPECT_EQ(b.tied_embeddings, g.tied_embeddings);
  EXPECT_EQ(b.context_length, 512);
  EXPECT_EQ(g.context_length, 2048);  // what the GGUF metadata says

  const LlamaWeights& gw = (*gguf)->weights;
  const LlamaWeights& bw = (*bin)->weights;
  ExpectSameTensor(gw.token_embedding, bw.token_embedding, "token_embd");
  ExpectSameTensor(gw.output_norm, bw.output_norm, "output_norm");
  ExpectSameTensor(gw.output, bw.output, "output");
  for (int l = 0; l < g.n_layers; ++l) {
    const LayerWeights& x = gw.layers[l];
    const LayerWeights& y = bw.layers[l];
    const std::string p = "layer " + std::to_string(l) + " ";
    ExpectSameTensor(x.attn_norm, y.attn_norm, p + "attn_norm");
    ExpectSameTensor(x.wq, y.wq, p + "wq");
    ExpectSameTensor(x.wk, y.wk, p + "wk");
    ExpectSameTensor(x.wv, y.wv, p + "wv");
    ExpectSameTensor(x.wo, y.wo, p + "wo");
    ExpectSameTensor(x.ffn_norm, y.ffn_norm, p + "ffn_norm");
    ExpectSameTensor(x.w_gate, y.w_gate, p + "w_gate");
    ExpectSameTensor(x.w_down, y.w_down, p + "w_down");
    ExpectSameTensor(x.w_up, y.w_up, p + "w_up");
  }
  // Same vocabulary: the GGUF writes spaces as U+2581, tok512.bin as ' '.
  const Vocabulary& gv = (*gguf)->vocab;
  const Vocabulary& bv = (*bin)->vocab;
  ASSERT_EQ(gv.size(), bv.size());
  EXPECT_EQ(gv.bos_id, 1);
  EXPECT_EQ(gv.eos_id, 2);
  EXPECT_EQ(gv.pieces[1], "<s>");
  for (int i = 3; i < gv.size(); ++i) EXPECT_EQ(gv.scores[i], bv.scores[i]) << i;
}

TEST(SharedModelsTest, BabyLlamaLoads) {
  SPECSERVE_REQUIRE_SHARED_MODEL(path, "babyllama-tok105/model5000.bin");
  SPECSERVE_REQUIRE_SHARED_MODEL(tok, "babyllama-tok105/tok105.bin");
  LoadOptions options;
  options.tokenizer_path = tok;
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path, options);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = (*m)->config;
  EXPECT_EQ(c.dim, 128);
  EXPECT_EQ(c.n_layers, 5);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.ffn_dim, 352);
  EXPECT_EQ(c.vocab_size, 105);
  EXPECT_EQ(c.context_length, 256);
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ((*m)->vocab.size(), 105);
  EXPECT_TRUE(LoadModel(path).ok());  // tok105.bin found beside it
}

TEST(SharedModelsTest, TinyStories656K) {
  SPECSERVE_REQUIRE_SHARED_MODEL(dir, "TinyStories-656K");
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(dir);
  ASSERT_TRUE(m.ok()) << m.status();
  const ModelConfig& c = (*m)->config;
  EXPECT_EQ((*m)->format, "hf");
  EXPECT_EQ(c.dim, 128);
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.n_heads, 8);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.ffn_dim, 384);
  EXPECT_EQ(c.vocab_size, 2048);
  EXPECT_EQ(c.context_length, 512);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_EQ(c.rope_style, RopeStyle::kHalf);
  // Stored once, as lm_head.weight: the embedding views the same data.
  EXPECT_TRUE(c.tied_embeddings);
  EXPECT_EQ((*m)->weights.output.data, (*m)->weights.token_embedding.data);
  EXPECT_EQ((*m)->vocab.size(), 2048);
}

}  // namespace
}  // namespace specserve
