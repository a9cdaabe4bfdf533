#include <cmath>
#include <random>
#include <vector>

#include "common/model/gguf_reader.h"
#include "common/model/gguf_writer.h"
#include "common/model/quantize.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::specserve::testing::TempPath;

std::vector<GgufKeyValue> AllTypesMetadata() {
  std::vector<GgufKeyValue> kv = {
      {"t.u8", GgufValue::Uint8(250)},
      {"t.i8", GgufValue::Int8(-120)},
      {"t.u16", GgufValue::Uint16(65000)},
      {"t.i16", GgufValue::Int16(-32000)},
      {"t.u32", GgufValue::Uint32(4000000000u)},
      {"t.i32", GgufValue::Int32(-2000000000)},
      {"t.f32", GgufValue::Float32(3.25f)},
      {"t.bool", GgufValue::Bool(true)},
      {"t.string", GgufValue::String("héllo ▁world")},
      {"t.empty_string", GgufValue::String("")},
      {"t.u64", GgufValue::Uint64(18000000000000000000ull)},
      {"t.i64", GgufValue::Int64(-9000000000000000000ll)},
      {"t.f64", GgufValue::Float64(-1.0 / 3.0)},
      {"t.strings", GgufValue::StringArray({"a", "", "<0x0A>", "▁the"})},
      {"t.floats", GgufValue::Float32Array({1.5f, -2.0f})},
      {"t.ints", GgufValue::Int32Array({1, -2, 3})},
      {"t.empty_array", GgufValue::Array(GgufType::kUint8, {})},
      {"t.nested", GgufValue::Array(GgufType::kArray,
                                    {GgufValue::Array(GgufType::kUint16, {GgufValue::Uint16(7)}),
                                     GgufValue::StringArray({"x", "y"})})},
      {"t.bools",
       GgufValue::Array(GgufType::kBool, {GgufValue::Bool(false), GgufValue::Bool(true)})},
  };
  return kv;
}

TEST(GgufRoundTripTest, MetadataOfEveryTypeSurvives) {
  const std::string path = TempPath("meta.gguf");
  GgufWriter writer(path);
  const std::vector<GgufKeyValue> kv = AllTypesMetadata();
  for (const GgufKeyValue& e : kv) writer.AddMetadata(e.key, e.value);
  ASSERT_TRUE(writer.Begin().ok());
  ASSERT_TRUE(writer.Finish().ok());

  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->version(), 3u);
  ASSERT_EQ((*file)->metadata().size(), kv.size());
  for (size_t i = 0; i < kv.size(); ++i) {
    EXPECT_EQ((*file)->metadata()[i].key, kv[i].key);
    EXPECT_TRUE((*file)->metadata()[i].value == kv[i].value) << kv[i].key;
  }
  EXPECT_EQ((*file)->FindValue("t.i32")->AsInt(), -2000000000);
  EXPECT_EQ((*file)->FindValue("t.u64")->AsInt(), std::nullopt);  // > INT64_MAX
  EXPECT_EQ(*(*file)->FindValue("t.string")->AsString(), "héllo ▁world");
  EXPECT_EQ((*file)->FindValue("t.f32")->AsDouble(), 3.25);
  EXPECT_EQ((*file)->FindValue("missing"), nullptr);
  EXPECT_TRUE((*file)->tensors().empty());
}

TEST(GgufRoundTripTest, TensorsOfEveryTypeSurvive) {
  const std::string path = TempPath("tensors.gguf");
  constexpr int kRows = 3, kCols = 64;
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 0.3f);
  std::vector<float> values(kRows * kCols);
  for (float& v : values) v = dist(rng);

  const std::vector<TensorType> types = {TensorType::kF32, TensorType::kF16, TensorType::kBF16,
                                         TensorType::kQ8_0, TensorType::kQ4_0};
  GgufWriter writer(path);
  writer.AddMetadata("general.architecture", GgufValue::String("test"));
  for (TensorType t : types) {
    writer.AddTensor(std::string("w.") + std::string(TensorTypeName(t)), t, {kCols, kRows});
  }
  writer.AddTensor("odd", TensorType::kF32, {3});  // 12 bytes: the next one needs padding
  writer.AddTensor("cube", TensorType::kF16, {2, 2, 2, 2});
  ASSERT_TRUE(writer.Begin().ok());
  for (TensorType t : types) {
    std::vector<uint8_t> bytes(TensorBytes(t, values.size()));
    // Stream row by row to exercise chunked writes.
    for (int r = 0; r < kRows; ++r) {
      ASSERT_TRUE(
          QuantizeRow(t, values.data() + r * kCols, kCols, bytes.data() + r * TensorBytes(t, kCols))
              .ok());
    }
    for (int r = 0; r < kRows; ++r) {
      ASSERT_TRUE(
          writer.WriteTensorData(bytes.data() + r * TensorBytes(t, kCols), TensorBytes(t, kCols))
              .ok());
    }
  }
  const float odd[3] = {1, 2, 3};
  ASSERT_TRUE(writer.WriteTensorData(odd, sizeof(odd)).ok());
  const std::vector<uint16_t> cube(16, 0x3c00);  // fp16 1.0
  EXPECT_FALSE(writer.Finish().ok());            // "cube" not written yet
  ASSERT_TRUE(writer.WriteTensorData(cube.data(), 32).ok());
  EXPECT_FALSE(writer.WriteTensorData(cube.data(), 2).ok());  // beyond the last tensor
  ASSERT_TRUE(writer.Finish().ok());

  absl::StatusOr<std::unique_ptr<GgufFile>> file = GgufFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->file_size(), writer.total_bytes());
  EXPECT_EQ((*file)->data_offset() % 32, 0u);
  for (TensorType t : types) {
    const GgufTensorInfo* info =
        (*file)->FindTensor(std::string("w.") + std::string(TensorTypeName(t)));
    ASSERT_NE(info, nullptr);
    EXPECT_EQ(info->type, t);
    EXPECT_EQ(info->shape, (std::vector<int64_t>{kCols, kRows}));
    EXPECT_EQ(info->offset % 32, 0u);
    std::vector<float> back(values.size());
    DequantizeRow(t, (*file)->TensorData(*info), values.size(), back.data());
    for (size_t i = 0; i < values.size(); ++i) {
      const float x = values[i];
      float bound = 0.0f;  // F32: bit-exact
      if (t == TensorType::kF16) bound = std::fabs(x) / 2048.0f;
      if (t == TensorType::kBF16) bound = std::fabs(x) / 256.0f;
      if (t == TensorType::kQ8_0) bound = 0.3f * 4.5f / 127.0f;  // amax/254 + fp16, amax < 4.5 sd
      if (t == TensorType::kQ4_0) bound = 0.3f * 4.5f / 8.0f * 1.01f;  // |d| + fp16 rounding
      if (t == TensorType::kF32) {
        EXPECT_EQ(back[i], x);
      } else {
        EXPECT_LE(std::fabs(back[i] - x), bound) << TensorTypeName(t) << " element " << i;
      }
    }
  }
  const GgufTensorInfo* odd_info = (*file)->FindTensor("odd");
  ASSERT_NE(odd_info, nullptr);
  EXPECT_EQ(std::memcmp((*file)->TensorData(*odd_info), odd, sizeof(odd)), 0);
  const GgufTensorInfo* cube_info = (*file)->FindTensor("cube");
  ASSERT_NE(cube_info, nullptr);
  EXPECT_EQ(cube_info->elements, 16);
  EXPECT_EQ(cube_info->offset % 32, 0u);
}

TEST(GgufWriterTest, RefusesBadDeclarations) {
  {
    GgufWriter w(TempPath("dup.gguf"));
    w.AddMetadata("a", GgufValue::Uint8(1));
    w.AddMetadata("a", GgufValue::Uint8(2));
    const absl::Status s = w.Begin();
    EXPECT_NE(s.message().find("key 'a': duplicate key"), absl::string_view::npos) << s;
  }
  {
    GgufWriter w(TempPath("rows.gguf"));
    w.AddTensor("t", TensorType::kQ4_0, {40, 2});
    const absl::Status s = w.Begin();
    EXPECT_NE(s.message().find("tensor 't': row length 40 is not a multiple"),
              absl::string_view::npos)
        << s;
  }
  {
    GgufWriter w(TempPath("mixed.gguf"));
    w.AddMetadata("m", GgufValue::Array(GgufType::kInt32, {GgufValue::Uint8(1)}));
    const absl::Status s = w.Begin();
    EXPECT_NE(s.message().find("array of int32 holds a uint8"), absl::string_view::npos) << s;
  }
}

}  // namespace
}  // namespace specserve
