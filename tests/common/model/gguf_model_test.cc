// GGUF llama models: random files load with the right config and shapes, and
// files that are valid GGUF but not a usable llama model are refused by name.
#include <cmath>
#include <cstring>
#include <functional>
#include <set>

#include "common/model/gguf_reader.h"
#include "common/model/gguf_vocabulary.h"
#include "common/model/gguf_writer.h"
#include "common/model/model_loader.h"
#include "common/model/quantize.h"
#include "common/model/random_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::specserve::testing::TempPath;
using ::specserve::testing::TinyConfig;
using ::testing::HasSubstr;

void ExpectSameValues(const WeightTensor& a, const WeightTensor& b) {
  ASSERT_EQ(a.type, b.type) << a.name;
  ASSERT_EQ(a.rows, b.rows) << a.name;
  ASSERT_EQ(a.cols, b.cols) << a.name;
  EXPECT_EQ(std::memcmp(a.data, b.data, a.bytes()), 0) << a.name;
}

void ExpectSameWeights(const LoadedModel& a, const LoadedModel& b) {
  ExpectSameValues(a.weights.token_embedding, b.weights.token_embedding);
  ExpectSameValues(a.weights.output_norm, b.weights.output_norm);
  ExpectSameValues(a.weights.output, b.weights.output);
  ASSERT_EQ(a.weights.layers.size(), b.weights.layers.size());
  for (size_t l = 0; l < a.weights.layers.size(); ++l) {
    const LayerWeights& x = a.weights.layers[l];
    const LayerWeights& y = b.weights.layers[l];
    for (auto m : {&LayerWeights::attn_norm, &LayerWeights::wq, &LayerWeights::wk,
                   &LayerWeights::wv, &LayerWeights::wo, &LayerWeights::ffn_norm,
                   &LayerWeights::w_gate, &LayerWeights::w_down, &LayerWeights::w_up}) {
      ExpectSameValues(x.*m, y.*m);
    }
  }
}

class RandomGgufTest : public ::testing::TestWithParam<TensorType> {};

TEST_P(RandomGgufTest, WriteThenLoadMatchesInMemoryModel) {
  const TensorType type = GetParam();
  const ModelConfig config = TinyConfig();
  const std::string path = specserve::testing::WriteTinyRandomGguf("random.gguf", type, 7, config);
  ASSERT_FALSE(path.empty());
  absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  const LoadedModel& m = **loaded;
  EXPECT_EQ(m.format, "gguf");
  EXPECT_EQ(m.config.dim, 64);
  EXPECT_EQ(m.config.n_layers, 2);
  EXPECT_EQ(m.config.n_heads, 4);
  EXPECT_EQ(m.config.n_kv_heads, 2);
  EXPECT_EQ(m.config.head_dim, 16);
  EXPECT_EQ(m.config.rope_dim, 16);
  EXPECT_EQ(m.config.ffn_dim, 96);
  EXPECT_EQ(m.config.vocab_size, 320);
  EXPECT_EQ(m.config.context_length, 256);
  EXPECT_EQ(m.config.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(m.config.tied_embeddings);
  EXPECT_EQ(m.config.name, "tiny-random");
  EXPECT_EQ(m.weights.output.data, m.weights.token_embedding.data);
  EXPECT_EQ(m.vocab.size(), 320);
  EXPECT_EQ(m.vocab.pieces[3], "<0x00>");
  EXPECT_EQ(m.vocab.types[1], TokenType::kControl);
  EXPECT_EQ(m.vocab.bos_id, 1);
  EXPECT_EQ(m.vocab.eos_id, 2);
  EXPECT_EQ(m.weights.layers[1].wk.rows, 32);
  EXPECT_EQ(m.weights.layers[1].wk.cols, 64);
  EXPECT_EQ(m.weights.layers[0].attn_norm.type, TensorType::kF32);
  // ffn_down rows have 96 elements: a multiple of 32, so it keeps the requested type.
  EXPECT_EQ(m.weights.layers[0].w_down.type, type);
  EXPECT_EQ(m.tensors.size(), 2u + 9 * 2);

  std::unique_ptr<LoadedModel> in_memory = specserve::testing::TinyRandomModel(type, 7, config);
  ASSERT_NE(in_memory, nullptr);
  ExpectSameWeights(m, *in_memory);
  std::unique_ptr<LoadedModel> other_seed = specserve::testing::TinyRandomModel(type, 8, config);
  EXPECT_NE(std::memcmp(other_seed->weights.layers[0].wq.data, m.weights.layers[0].wq.data,
                        m.weights.layers[0].wq.bytes()),
            0);
}

INSTANTIATE_TEST_SUITE_P(AllTypes, RandomGgufTest,
                         ::testing::Values(TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                           TensorType::kQ8_0, TensorType::kQ4_0),
                         [](const auto& info) { return std::string(TensorTypeName(info.param)); });

TEST(RandomModelTest, ValuesLookLikeWeights) {
  std::unique_ptr<LoadedModel> m = specserve::testing::TinyRandomModel();
  ASSERT_NE(m, nullptr);
  const WeightTensor& w = m->weights.layers[0].w_gate;  // 96 x 64
  const float* v = static_cast<const float*>(w.data);
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < w.elements(); ++i) {
    sum += v[i];
    sq += v[i] * v[i];
  }
  const double mean = sum / w.elements();
  const double sd = std::sqrt(sq / w.elements() - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.01);
  EXPECT_NEAR(sd, 1.0 / 8.0, 0.01);  // 1 / sqrt(64)
  const float* norm = static_cast<const float*>(m->weights.output_norm.data);
  EXPECT_EQ(norm[0], 1.0f);
  EXPECT_EQ(norm[63], 1.0f);
}

TEST(RandomModelTest, UntiedAndFallbackTypes) {
  ModelConfig c = TinyConfig();
  c.tied_embeddings = false;
  c.ffn_dim = 72;  // not a multiple of 32: ffn_down falls back to F16 for Q8_0
  std::unique_ptr<LoadedModel> m = specserve::testing::TinyRandomModel(TensorType::kQ8_0, 1, c);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(m->config.tied_embeddings);
  EXPECT_NE(m->weights.output.data, m->weights.token_embedding.data);
  EXPECT_EQ(m->weights.output.name, "output.weight");
  EXPECT_EQ(m->weights.layers[0].w_down.type, TensorType::kF16);
  EXPECT_EQ(m->weights.layers[0].w_gate.type, TensorType::kQ8_0);

  const std::string path = TempPath("untied.gguf");
  double last = 0;
  int calls = 0;
  ASSERT_TRUE(
      WriteRandomGguf(path, c, TensorType::kQ8_0, MakeSyntheticVocabulary(320), 1, [&](double f) {
        EXPECT_GE(f, last);
        last = f;
        ++calls;
      }).ok());
  EXPECT_EQ(last, 1.0);
  EXPECT_GT(calls, 2);
  absl::StatusOr<std::unique_ptr<LoadedModel>> loaded = LoadModel(path);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_FALSE((*loaded)->config.tied_embeddings);
  ExpectSameWeights(**loaded, *m);
}

TEST(RandomModelTest, RefusesBadConfigs) {
  ModelConfig c = TinyConfig();
  c.n_heads = 7;
  c.head_dim = 0;
  c.rope_dim = 0;
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = BuildRandomModel(c, TensorType::kF32, 1);
  ASSERT_FALSE(m.ok());
  EXPECT_THAT(std::string(m.status().message()), HasSubstr("n_heads (7) must divide dim (64)"));
  c = TinyConfig();
  const absl::Status s =
      WriteRandomGguf(TempPath("x.gguf"), c, TensorType::kF32, MakeSyntheticVocabulary(300), 1);
  EXPECT_THAT(std::string(s.message()), HasSubstr("vocab_size (320) differs"));
}

TEST(SyntheticVocabularyTest, Layout) {
  const Vocabulary v = MakeSyntheticVocabulary(1000);
  ASSERT_EQ(v.size(), 1000);
  EXPECT_EQ(v.pieces[0], "<unk>");
  EXPECT_EQ(v.types[0], TokenType::kUnknown);
  EXPECT_EQ(v.pieces[2], "</s>");
  EXPECT_EQ(v.pieces[3 + 0x41], "<0x41>");
  EXPECT_EQ(v.types[258], TokenType::kByte);
  EXPECT_EQ(v.pieces[259], "\xe2\x96\x81");
  std::set<std::string> unique(v.pieces.begin(), v.pieces.end());
  EXPECT_EQ(unique.size(), v.pieces.size());
  EXPECT_EQ(v.scores.size(), 1000u);
  EXPECT_EQ(MakeSyntheticVocabulary(10).size(), 10);
}

// Files that are valid GGUF but not a llama model specserve can run.
class BrokenGgufModelTest : public ::testing::Test {
 protected:
  // Writes TinyConfig's model with `edit` applied to the metadata and tensor list.
  std::string Write(const std::function<void(std::vector<GgufKeyValue>&,
                                             std::vector<std::pair<std::string, int>>&)>& edit,
                    std::vector<int64_t> q_shape = {64, 64},
                    TensorType norm_type = TensorType::kF32) {
    const std::string path = TempPath("model.gguf");
    std::unique_ptr<LoadedModel> m = specserve::testing::TinyRandomModel();
    std::vector<GgufKeyValue> kv = {
        {"general.architecture", GgufValue::String("llama")},
        {"llama.context_length", GgufValue::Uint32(256)},
        {"llama.embedding_length", GgufValue::Uint32(64)},
        {"llama.block_count", GgufValue::Uint32(2)},
        {"llama.feed_forward_length", GgufValue::Uint32(96)},
        {"llama.attention.head_count", GgufValue::Uint32(4)},
        {"llama.attention.head_count_kv", GgufValue::Uint32(2)},
        {"llama.attention.layer_norm_rms_epsilon", GgufValue::Float32(1e-5f)},
    };
    std::vector<std::pair<std::string, int>> tensors;  // name, index into m->tensors
    for (size_t i = 0; i < m->tensors.size(); ++i) tensors.push_back({m->tensors[i].name, i});
    edit(kv, tensors);
    GgufWriter w(path);
    for (GgufKeyValue& e : kv) w.AddMetadata(e.key, e.value);
    AddGgufVocabularyIfAbsent(kv, m->vocab, w);
    std::vector<std::vector<uint8_t>> data;
    for (const auto& [name, index] : tensors) {
      const TensorDescription& d = m->tensors[index];
      std::vector<int64_t> shape = d.shape;
      if (name == "blk.0.attn_q.weight") shape = q_shape;
      TensorType type = d.type;
      int64_t elements = 1;
      for (int64_t s : shape) elements *= s;
      std::vector<float> values(elements, 0.5f);
      if (shape.size() == 1) type = norm_type;
      std::vector<uint8_t> bytes(TensorBytes(type, elements));
      EXPECT_TRUE(QuantizeRow(type, values.data(), elements, bytes.data()).ok());
      w.AddTensor(name, type, shape);
      data.push_back(std::move(bytes));
    }
    EXPECT_TRUE(w.Begin().ok());
    for (const auto& bytes : data) EXPECT_TRUE(w.WriteTensorData(bytes.data(), bytes.size()).ok());
    EXPECT_TRUE(w.Finish().ok());
    return path;
  }

  static void AddGgufVocabularyIfAbsent(const std::vector<GgufKeyValue>& kv, const Vocabulary& v,
                                        GgufWriter& w) {
    for (const GgufKeyValue& e : kv) {
      if (e.key.rfind("tokenizer.", 0) == 0) return;  // the test brings its own
    }
    EXPECT_TRUE(AddGgufVocabulary(v, w).ok());
  }

  static std::string LoadError(const std::string& path) {
    absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
    if (m.ok()) return "";
    EXPECT_THAT(std::string(m.status().message()), HasSubstr(path + ": "));
    return std::string(m.status().message());
  }

  static void SetKey(std::vector<GgufKeyValue>& kv, const std::string& key, GgufValue value) {
    for (GgufKeyValue& e : kv) {
      if (e.key == key) {
        e.value = std::move(value);
        return;
      }
    }
    kv.push_back({key, std::move(value)});
  }
  static void RemoveKey(std::vector<GgufKeyValue>& kv, const std::string& key) {
    std::erase_if(kv, [&](const GgufKeyValue& e) { return e.key == key; });
  }
};

TEST_F(BrokenGgufModelTest, BaselineLoads) {
  const std::string path = Write([](auto&, auto&) {});
  EXPECT_EQ(LoadError(path), "");
}

TEST_F(BrokenGgufModelTest, WrongArchitecture) {
  const std::string path = Write(
      [](auto& kv, auto&) { SetKey(kv, "general.architecture", GgufValue::String("gemma")); });
  EXPECT_THAT(LoadError(path), HasSubstr("key 'general.architecture': architecture 'gemma' is "
                                         "not supported (only 'llama' and 'qwen2')"));
}

TEST_F(BrokenGgufModelTest, MissingOrBadKeys) {
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) { RemoveKey(kv, "llama.block_count"); })),
              HasSubstr("key 'llama.block_count': missing"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                SetKey(kv, "llama.embedding_length", GgufValue::String("64"));
              })),
              HasSubstr("key 'llama.embedding_length': must be an integer, not string"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                SetKey(kv, "llama.attention.head_count", GgufValue::Uint32(7));
              })),
              HasSubstr("n_heads (7) must divide dim (64)"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                SetKey(kv, "llama.attention.head_count_kv", GgufValue::Uint32(3));
              })),
              HasSubstr("n_kv_heads (3) must divide n_heads (4)"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                SetKey(kv, "llama.rope.dimension_count", GgufValue::Uint32(32));
              })),
              HasSubstr("rope_dim (32) must not exceed head_dim (16)"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                SetKey(kv, "llama.rope.freq_base", GgufValue::Float32(-1.0f));
              })),
              HasSubstr("key 'llama.rope.freq_base': value -1 must be a positive number"));
}

TEST_F(BrokenGgufModelTest, TensorProblems) {
  EXPECT_THAT(LoadError(Write([](auto&, auto& t) {
                std::erase_if(t, [](const auto& p) { return p.first == "blk.1.ffn_up.weight"; });
              })),
              HasSubstr("tensor 'blk.1.ffn_up.weight': missing"));
  EXPECT_THAT(LoadError(Write([](auto&, auto&) {}, {64, 48})),
              HasSubstr("tensor 'blk.0.attn_q.weight': shape is [64, 48] but the config needs "
                        "[64, 64]"));
}

TEST_F(BrokenGgufModelTest, Tokenizer) {
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("bert")});
              })),
              HasSubstr("key 'tokenizer.ggml.model': tokenizer model 'bert' is not supported"));
  std::vector<std::string> pieces;
  for (int i = 0; i < 320; ++i) pieces.push_back(absl::StrCat("t", i));
  EXPECT_THAT(LoadError(Write([&](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("gpt2")});
                kv.push_back({"tokenizer.ggml.tokens", GgufValue::StringArray(pieces)});
              })),
              HasSubstr("key 'tokenizer.ggml.merges': missing"));
  EXPECT_THAT(LoadError(Write([&](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("gpt2")});
                kv.push_back({"tokenizer.ggml.pre", GgufValue::String("deepseek-llm")});
                kv.push_back({"tokenizer.ggml.tokens", GgufValue::StringArray(pieces)});
              })),
              HasSubstr("pre-tokenizer 'deepseek-llm' is not supported"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("llama")});
              })),
              HasSubstr("key 'tokenizer.ggml.tokens': missing"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("llama")});
                kv.push_back({"tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b"})});
                kv.push_back({"llama.vocab_size", GgufValue::Uint32(320)});
              })),
              HasSubstr("the vocabulary has 2 tokens but the model has vocab_size"));
  EXPECT_THAT(LoadError(Write([](auto& kv, auto&) {
                kv.push_back({"tokenizer.ggml.model", GgufValue::String("llama")});
                kv.push_back({"tokenizer.ggml.tokens", GgufValue::StringArray({"a", "b"})});
                kv.push_back({"tokenizer.ggml.bos_token_id", GgufValue::Uint32(5)});
              })),
              HasSubstr("key 'tokenizer.ggml.bos_token_id': token id 5 is outside"));
}

TEST_F(BrokenGgufModelTest, HalfNormsAreConvertedToF32) {
  const std::string path = Write([](auto&, auto&) {}, {64, 64}, TensorType::kF16);
  absl::StatusOr<std::unique_ptr<LoadedModel>> m = LoadModel(path);
  ASSERT_TRUE(m.ok()) << m.status();
  const WeightTensor& norm = (*m)->weights.layers[1].ffn_norm;
  EXPECT_EQ(norm.type, TensorType::kF32);
  EXPECT_EQ(static_cast<const float*>(norm.data)[5], 0.5f);
}

}  // namespace
}  // namespace specserve
