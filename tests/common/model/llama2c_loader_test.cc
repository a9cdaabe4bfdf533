// llama2.c checkpoints: legacy and version-1 exports load with the weights in the
// right places; wrong sizes, bad headers and missing tokenizers are refused.
#include "common/model/llama2c_loader.h"

#include <filesystem>
#include <vector>

#include "common/model/model_loader.h"
#include "common/model/synthetic_vocabulary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/common/model/test_files.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::specserve::testing::ByteWriter;
using ::specserve::testing::TempPath;
using ::specserve::testing::WriteBytes;
using ::testing::HasSubstr;

struct Dims {
  int32_t dim = 16, hidden = 24, layers = 2, heads = 4, kv_heads = 2, vocab = 300, seq = 32;
};

// Tensor i of the file holds the value i + 0.5 everywhere, so placement is checkable.
std::vector<uint8_t> Llama2cBytes(const Dims& d, bool shared, int version) {
  ByteWriter w;
  const int64_t head = d.dim / d.heads, kv_dim = d.kv_heads * head;
  if (version == 1) {
    w.Put<uint32_t>(kLlama2cMagic).Put<int32_t>(1);
    for (int32_t v : {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, d.vocab, d.seq}) w.Put(v);
    w.Put<uint8_t>(shared ? 1 : 0);
    w.Zeros(256 - w.size());
  } else {
    for (int32_t v :
         {d.dim, d.hidden, d.layers, d.heads, d.kv_heads, shared ? d.vocab : -d.vocab, d.seq}) {
      w.Put(v);
    }
  }
  int tensor = 0;
  auto put = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) w.Put<float>(tensor + 0.5f);
    ++tensor;
  };
  const int64_t L = d.layers;
  if (version == 1) {
    put(L * d.dim), put(L * d.dim), put(d.dim), put(int64_t{d.vocab} * d.dim);
    put(L * d.dim * d.dim), put(L * kv_dim * d.dim), put(L * kv_dim * d.dim);
    put(L * d.dim * d.dim), put(L * d.hidden * d.dim), put(L * d.dim * d.hidden);
    put(L * d.hidden * d.dim);
  } else {
    put(int64_t{d.vocab} * d.dim), put(L * d.dim), put(L * d.dim * d.dim);
    put(L * kv_dim * d.dim), put(L * kv_dim * d.dim), put(L * d.dim * d.dim), put(L * d.dim);
    put(L * d.hidden * d.dim), put(L * d.dim * d.hidden), put(L * d.hidden * d.dim), put(d.dim);
    put(int64_t{d.seq} * head);  // freq_cis_real + freq_cis_imag: seq * head/2 each
  }
  if (!shared) put(int64_t{d.vocab} * d.dim);
  return w.bytes();
}

// llama2.c tokenizer.bin for a vocabulary (spaces as ' ').
void WriteTokenizer(const std::string& path, int vocab_size) {
  const Vocabulary v = MakeSyntheticVocabulary(vocab_size);
  ByteWriter w;
  w.Put<int32_t>(16);
  for (int i = 0; i < v.size(); ++i) {
    std::string piece = v.pieces[i];
    if (piece.rfind("\xe2\x96\x81", 0) == 0) piece.replace(0, 3, " ");
    w.Put<float>(v.scores[i]).Put<int32_t>(piece.size()).Raw(piece);
  }
  WriteBytes(path, w.bytes());
}

// A fresh directory holding model.bin (and tokenizer.bin unless told otherwise).
std::string MakeModelDir(const std::vector<uint8_t>& bytes, bool with_tokenizer = true,
                         int tokenizer_vocab = 300) {
  const std::string dir = TempPath("llama2c");
  std::filesystem::create_directories(dir);
  WriteBytes(dir + "/model.bin", bytes);
  if (with_tokenizer) WriteTokenizer(dir + "/tokenizer.bin", tokenizer_vocab);
  return dir + "/model.bin";
}

float At(const WeightTensor& w, int64_t i) { return static_cast<const float*>(w.data)[i]; }

TEST(Llama2cLoaderTest, LegacyExportPlacesEveryTensor) {
  for (bool shared : {true, false}) {
    const std::string path = MakeModelDir(Llama2cBytes(Dims{}, shared, 0));
    absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
    ASSERT_TRUE(m.ok()) << m.status();
    const ModelConfig& c = (*m)->config;
    EXPECT_EQ((*m)->format, "llama2c");
    EXPECT_EQ(c.dim, 16);
    EXPECT_EQ(c.ffn_dim, 24);
    EXPECT_EQ(c.n_layers, 2);
    EXPECT_EQ(c.n_heads, 4);
    EXPECT_EQ(c.n_kv_heads, 2);
    EXPECT_EQ(c.head_dim, 4);
    EXPECT_EQ(c.rope_dim, 4);
    EXPECT_EQ(c.vocab_size, 300);
    EXPECT_EQ(c.context_length, 32);
    EXPECT_EQ(c.rope_theta, 10000.0f);
    EXPECT_EQ(c.rms_eps, 1e-5f);
    EXPECT_EQ(c.tied_embeddings, shared);
    const LlamaWeights& w = (*m)->weights;
    EXPECT_EQ(At(w.token_embedding, 0), 0.5f);
    EXPECT_EQ(At(w.layers[1].attn_norm, 15), 1.5f);
    EXPECT_EQ(At(w.layers[1].wq, 0), 2.5f);
    EXPECT_EQ(w.layers[1].wk.rows, 8);
    EXPECT_EQ(At(w.layers[1].wk, 0), 3.5f);
    EXPECT_EQ(At(w.layers[0].wv, 127), 4.5f);
    EXPECT_EQ(At(w.layers[1].wo, 255), 5.5f);
    EXPECT_EQ(At(w.layers[0].ffn_norm, 0), 6.5f);
    EXPECT_EQ(At(w.layers[1].w_gate, 0), 7.5f);
    EXPECT_EQ(w.layers[1].w_down.cols, 24);
    EXPECT_EQ(At(w.layers[1].w_down, 0), 8.5f);
    EXPECT_EQ(At(w.layers[1].w_up, 383), 9.5f);
    EXPECT_EQ(At(w.output_norm, 15), 10.5f);
    EXPECT_EQ(At(w.output, 0), shared ? 0.5f : 12.5f);
    EXPECT_EQ((*m)->vocab.size(), 300);
    EXPECT_EQ((*m)->tensors.size(), shared ? 20u : 21u);
  }
}

TEST(Llama2cLoaderTest, Version1ExportPlacesEveryTensor) {
  for (bool shared : {true, false}) {
    const std::string path = MakeModelDir(Llama2cBytes(Dims{}, shared, 1));
    absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
    ASSERT_TRUE(m.ok()) << m.status();
    const LlamaWeights& w = (*m)->weights;
    EXPECT_EQ((*m)->config.tied_embeddings, shared);
    EXPECT_EQ(At(w.layers[1].attn_norm, 0), 0.5f);
    EXPECT_EQ(At(w.layers[1].ffn_norm, 0), 1.5f);
    EXPECT_EQ(At(w.output_norm, 0), 2.5f);
    EXPECT_EQ(At(w.token_embedding, 0), 3.5f);
    EXPECT_EQ(At(w.layers[0].wq, 0), 4.5f);
    EXPECT_EQ(At(w.layers[1].w_up, 0), 10.5f);
    EXPECT_EQ(At(w.output, 0), shared ? 3.5f : 11.5f);
  }
}

std::string LoadError(const std::string& path, const LoadOptions& options = {}) {
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path, options);
  if (m.ok()) return "";
  return std::string(m.status().message());
}

TEST(Llama2cLoaderTest, WrongSizeIsRefusedWithBothSizes) {
  std::vector<uint8_t> bytes = Llama2cBytes(Dims{}, true, 0);
  const size_t full = bytes.size();
  for (size_t cut : {size_t{4}, size_t{100}, full / 2, full - 4}) {
    const std::string path = MakeModelDir(std::vector<uint8_t>(bytes.begin(), bytes.begin() + cut));
    const std::string error = LoadError(path);
    EXPECT_THAT(error, HasSubstr(path + ": ")) << cut;
    if (cut >= 28) {
      EXPECT_THAT(error, HasSubstr(absl::StrCat("implies ", full, " bytes but the file has ", cut,
                                                " bytes")));
    } else {
      EXPECT_THAT(error, HasSubstr("too small"));
    }
  }
  bytes.push_back(0);
  EXPECT_THAT(LoadError(MakeModelDir(bytes)), HasSubstr("but the file has"));
}

TEST(Llama2cLoaderTest, BadHeadersAreRefused) {
  auto error_for = [](Dims d) { return LoadError(MakeModelDir(Llama2cBytes(d, true, 0))); };
  Dims d;
  d.heads = 3;
  EXPECT_THAT(error_for(d), HasSubstr("n_heads (3) must divide dim (16)"));
  d = Dims{};
  d.kv_heads = 3;
  EXPECT_THAT(error_for(d), HasSubstr("n_kv_heads (3) must divide n_heads (4)"));
  d = Dims{};
  d.layers = -2;
  EXPECT_THAT(error_for(d), HasSubstr("n_layers (-2) must be positive"));
  d = Dims{};
  d.seq = 0;
  EXPECT_THAT(error_for(d), HasSubstr("context_length (0) must be positive"));

  // A header claiming a huge model is refused without touching memory.
  ByteWriter w;
  for (int32_t v : {1 << 16, 1 << 20, 4000, 512, 512, 1 << 20, 1 << 20}) w.Put(v);
  EXPECT_THAT(LoadError(MakeModelDir(w.bytes())), HasSubstr("but the file has 28 bytes"));
  ByteWriter huge;
  for (int32_t v : {0x7fffffff, 1, 1, 1, 1, 1, 1}) huge.Put(v);
  EXPECT_THAT(LoadError(MakeModelDir(huge.bytes())), HasSubstr("dim (2147483647) is implausibly"));

  ByteWriter v2;
  v2.Put<uint32_t>(kLlama2cMagic).Put<int32_t>(2).Zeros(248);
  EXPECT_THAT(LoadError(MakeModelDir(v2.bytes())),
              HasSubstr("llama2.c export version 2 is not supported"));
}

TEST(Llama2cLoaderTest, TokenizerDiscovery) {
  const std::vector<uint8_t> bytes = Llama2cBytes(Dims{}, true, 0);
  const std::string no_tok = MakeModelDir(bytes, false);
  EXPECT_THAT(LoadError(no_tok), HasSubstr("no tokenizer for llama2.c model " + no_tok));
  EXPECT_THAT(LoadError(no_tok), HasSubstr("pass --tokenizer"));

  // tokenizer.bin of another vocabulary, tok300.bin of the right one: tok300 wins.
  const std::string path = MakeModelDir(bytes, true, 400);
  EXPECT_THAT(LoadError(path), HasSubstr("no tokenizer for llama2.c model"));
  const std::string dir = std::filesystem::path(path).parent_path().string();
  WriteTokenizer(dir + "/tok300.bin", 300);
  EXPECT_EQ(LoadError(path), "");

  // An explicit tokenizer is used as given.
  LoadOptions options;
  options.tokenizer_path = dir + "/tokenizer.bin";
  EXPECT_THAT(LoadError(path, options), HasSubstr("tokenizer.bin"));
  options.tokenizer_path = dir + "/tok300.bin";
  EXPECT_EQ(LoadError(path, options), "");
}

TEST(ModelLoaderTest, RefusesWhatIsNotAModelFile) {
  EXPECT_THAT(LoadError("/nonexistent/model.gguf"), HasSubstr("/nonexistent/model.gguf: no such"));
  const std::string dir = TempPath("dir");
  std::filesystem::create_directories(dir);
  EXPECT_THAT(LoadError(dir), HasSubstr("is a directory"));
  WriteBytes(dir + "/config.json", {'{', '}'});
  // With config.json it is a Hugging Face directory, here with an empty config.
  EXPECT_THAT(LoadError(dir), HasSubstr(dir + "/config.json: key 'architectures': missing"));
  const std::string empty = TempPath("empty.bin");
  WriteBytes(empty, {});
  EXPECT_THAT(LoadError(empty), HasSubstr(empty + ": file is empty"));
  const std::string tiny = TempPath("tiny.bin");
  WriteBytes(tiny, {1, 2});
  EXPECT_THAT(LoadError(tiny), HasSubstr("too small"));
  const std::string zip = TempPath("model.pt");
  WriteBytes(zip, {'P', 'K', 3, 4, 0, 0, 0, 0});
  EXPECT_THAT(LoadError(zip), HasSubstr("zip archive"));
  const std::string ggjt = TempPath("old.bin");
  WriteBytes(ggjt, {'t', 'j', 'g', 'g', 1, 0, 0, 0});
  EXPECT_THAT(LoadError(ggjt), HasSubstr("old GGML/GGJT"));
}

}  // namespace
}  // namespace specserve
