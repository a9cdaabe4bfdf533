// The GGUF reader refuses every kind of broken file with a message naming the
// file, the key or tensor, and the problem.
#include "common/model/gguf_reader.h"

#include <cstdint>
#include <string>
#include <vector>

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

struct TensorSpec {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;
  uint64_t offset = 0;
};

struct KvSpec {
  std::string key;
  std::vector<uint8_t> typed_value;  // type id then payload
};

std::vector<uint8_t> TypedU32(uint32_t type, uint32_t v) {
  ByteWriter w;
  w.Put<uint32_t>(type).Put<uint32_t>(v);
  return w.bytes();
}

std::vector<uint8_t> TypedString(const std::string& s) {
  ByteWriter w;
  w.Put<uint32_t>(8).Str(s);
  return w.bytes();
}

struct GgufSpec {
  uint32_t magic = kGgufMagic;
  uint32_t version = 3;
  std::optional<uint64_t> tensor_count;
  std::optional<uint64_t> kv_count;
  std::vector<KvSpec> kvs = {{"general.architecture", TypedString("test")}};
  // "a": F32 [8, 2] = 64 bytes at 0; "b": F32 [8] = 32 bytes at 64.
  std::vector<TensorSpec> tensors = {{"a", {8, 2}, 0, 0}, {"b", {8}, 0, 64}};
  uint64_t alignment = 32;
  uint64_t data_bytes = 96;
};

std::vector<uint8_t> Build(const GgufSpec& s) {
  ByteWriter w;
  w.Put<uint32_t>(s.magic).Put<uint32_t>(s.version);
  w.Put<uint64_t>(s.tensor_count.value_or(s.tensors.size()));
  w.Put<uint64_t>(s.kv_count.value_or(s.kvs.size()));
  for (const KvSpec& kv : s.kvs) {
    w.Str(kv.key);
    w.bytes().insert(w.bytes().end(), kv.typed_value.begin(), kv.typed_value.end());
  }
  for (const TensorSpec& t : s.tensors) {
    w.Str(t.name).Put<uint32_t>(t.ne.size());
    for (uint64_t ne : t.ne) w.Put<uint64_t>(ne);
    w.Put<uint32_t>(t.type).Put<uint64_t>(t.offset);
  }
  w.PadTo(s.alignment);
  w.Zeros(s.data_bytes);
  return w.bytes();
}

// Writes the spec to a file and parses it; returns the error message ("" if it loads).
std::string ParseError(const std::vector<uint8_t>& bytes, std::string* path_out = nullptr) {
  const std::string path = TempPath("broken.gguf");
  WriteBytes(path, bytes);
  if (path_out) *path_out = path;
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  if (f.ok()) return "";
  EXPECT_THAT(std::string(f.status().message()), HasSubstr(path + ": "));
  return std::string(f.status().message());
}

TEST(GgufReaderTest, ValidBaseFileParses) {
  const std::string path = TempPath("valid.gguf");
  WriteBytes(path, Build(GgufSpec{}));
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->FindTensor("a")->bytes, 64u);
  EXPECT_EQ((*f)->FindTensor("b")->offset, 64u);
  EXPECT_EQ((*f)->alignment(), 32u);
}

TEST(GgufReaderTest, EveryTruncationIsRefused) {
  const std::vector<uint8_t> full = Build(GgufSpec{});
  for (size_t n = 0; n < full.size(); ++n) {
    const std::vector<uint8_t> cut(full.begin(), full.begin() + n);
    const std::string error = ParseError(cut);
    EXPECT_FALSE(error.empty()) << "truncated to " << n << " bytes was accepted";
    if (n >= 24 && n < full.size() - 96 - 32) {  // inside the header or infos
      EXPECT_THAT(error, ::testing::ContainsRegex("truncated|impossible|runs past")) << n;
    }
  }
  EXPECT_THAT(ParseError(std::vector<uint8_t>(full.begin(), full.end() - 1)),
              HasSubstr("tensor 'b': data [64, +32) lies outside the data section"));
}

TEST(GgufReaderTest, HeaderProblems) {
  GgufSpec s;
  s.magic = 0x12345678;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("header: bad magic"));
  s = GgufSpec{};
  s.version = 1;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("GGUF version 1 is not supported"));
  s.version = 4;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("unsupported GGUF version 4"));
  s.version = 0x03000000;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("big-endian"));
  s = GgufSpec{};
  s.version = 2;
  EXPECT_EQ(ParseError(Build(s)), "");
  s = GgufSpec{};
  s.tensor_count = uint64_t{1} << 60;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor count 1152921504606846976 is impossible"));
  s = GgufSpec{};
  s.kv_count = ~uint64_t{0};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("metadata count"));
  s = GgufSpec{};
  s.kv_count = 2;  // the second entry is read from the tensor infos
  EXPECT_FALSE(ParseError(Build(s)).empty());
}

TEST(GgufReaderTest, MetadataProblems) {
  GgufSpec s;
  s.kvs.push_back({"general.architecture", TypedString("again")});
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'general.architecture': duplicate key"));

  s = GgufSpec{};
  s.kvs.push_back({"x", TypedU32(13, 0)});
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'x': unknown value type 13"));

  s = GgufSpec{};
  {
    ByteWriter w;
    w.Put<uint32_t>(8).Put<uint64_t>(uint64_t{1} << 62);  // huge string length
    s.kvs.push_back({"huge", w.bytes()});
  }
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'huge': string length 4611686018427387904"));

  s = GgufSpec{};
  {
    ByteWriter w;
    w.Put<uint32_t>(9).Put<uint32_t>(6).Put<uint64_t>(uint64_t{1} << 61);  // float32 array
    s.kvs.push_back({"arr", w.bytes()});
  }
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'arr': array of 2305843009213693952 float32"));

  s = GgufSpec{};
  {
    ByteWriter w;  // arrays nested 20 deep
    for (int i = 0; i < 20; ++i) w.Put<uint32_t>(9).Put<uint64_t>(1);
    w.Put<uint32_t>(0).Put<uint64_t>(0);
    std::vector<uint8_t> bytes = w.bytes();
    bytes.insert(bytes.begin(), {9, 0, 0, 0});  // the value's own type: array
    s.kvs.push_back({"deep", bytes});
  }
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'deep': arrays nested deeper than"));

  s = GgufSpec{};
  {
    ByteWriter w;
    w.Put<uint32_t>(7).Put<uint8_t>(2);
    s.kvs.push_back({"flag", w.bytes()});
  }
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'flag': bool value 2"));

  s = GgufSpec{};
  s.kvs.push_back({"general.alignment", TypedU32(4, 48)});
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("key 'general.alignment': alignment 48 is not a"));
  s.kvs.back() = {"general.alignment", TypedString("32")};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("general.alignment': must be an integer"));
  s.kvs.back() = {"general.alignment", TypedU32(4, 64)};
  s.alignment = 64;
  s.tensors[1].offset = 64;
  EXPECT_EQ(ParseError(Build(s)), "");
  s.tensors[1].offset = 32;  // 32 is no longer aligned
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("not a multiple of the alignment 64"));
}

TEST(GgufReaderTest, TensorProblems) {
  GgufSpec s;
  s.tensors[1].offset = 65;
  EXPECT_THAT(ParseError(Build(s)),
              HasSubstr("tensor 'b': data offset 65 is not a multiple of the alignment 32"));
  s.tensors[1].offset = 1024;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': data [1024, +32) lies outside"));
  s.tensors[1].offset = ~uint64_t{0} - 31;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': data ["));
  s.tensors[1].offset = 32;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': data at offset 32 overlaps tensor 'a'"));

  s = GgufSpec{};
  s.tensors[1].type = 12;
  EXPECT_THAT(ParseError(Build(s)),
              HasSubstr("tensor 'b': has type Q4_K (ggml type 12), which specserve does not "
                        "support (supported: F32, F16, BF16, Q8_0, Q4_0)"));
  s.tensors[1].type = 200;
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("has type unknown (ggml type 200)"));
  s.tensors[1].type = 8;  // Q8_0 with a row of 8
  EXPECT_THAT(ParseError(Build(s)),
              HasSubstr("tensor 'b': row length 8 is not a multiple of the Q8_0 block size 32"));

  s = GgufSpec{};
  s.tensors[1].ne = {1, 1, 1, 1, 8};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': n_dims is 5"));
  s.tensors[1].ne = {};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': n_dims is 0"));
  s.tensors[1].ne = {8, 0};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': dimension 1 has invalid size 0"));
  s.tensors[1].ne = {uint64_t{1} << 40, uint64_t{1} << 40};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': element count overflows"));
  s.tensors[1].ne = {uint64_t{1} << 62, 1};
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'b': byte size overflows"));

  s = GgufSpec{};
  s.tensors[1].name = "a";
  EXPECT_THAT(ParseError(Build(s)), HasSubstr("tensor 'a': duplicate tensor name"));
}

TEST(GgufReaderTest, MissingAndOddFiles) {
  absl::StatusOr<std::unique_ptr<GgufFile>> f = GgufFile::Open("/nonexistent/x.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("/nonexistent/x.gguf: no such file"));
  f = GgufFile::Open(::testing::TempDir());
  ASSERT_FALSE(f.ok());
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("is a directory"));
  EXPECT_THAT(ParseError({}), HasSubstr("header: file is truncated"));
}

}  // namespace
}  // namespace specserve
