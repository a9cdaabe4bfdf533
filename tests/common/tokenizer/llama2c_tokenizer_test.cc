// LoadLlama2cTokenizer on hand-written files: good ones and many malformed ones.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/random_model.h"

namespace specserve {
namespace {

using ::testing::HasSubstr;

struct Record {
  float score;
  int32_t length;  // may disagree with piece.size() to make bad files
  std::string piece;
};

template <typename T>
void Put(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

std::string Serialize(int32_t max_token_length, const std::vector<Record>& records) {
  std::string out;
  Put(&out, max_token_length);
  for (const Record& r : records) {
    Put(&out, r.score);
    Put(&out, r.length);
    out += r.piece;
  }
  return out;
}

Record Piece(const std::string& piece, float score = 0) {
  return {score, static_cast<int32_t>(piece.size()), piece};
}

std::vector<Record> GoodRecords() {
  return {Piece("<unk>"), Piece("\n<s>\n"), Piece("\n</s>\n"), Piece("<0x0A>"), Piece(" ", -1),
          Piece("a", -2), Piece("b", -3),   Piece(" a", -4),   Piece("ab", -5)};
}

class Llama2cTokenizerTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    // Unique per process and call (ctest runs this binary's tests in parallel);
    // removed when the process exits.
    const std::string path = testing::TempPath(
        std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()) + "_" + name +
        ".bin");
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }

  // Loads `bytes` and expects a refusal whose message names the file and contains `what`.
  void ExpectRefused(const std::string& bytes, int32_t expected_vocab, const std::string& what) {
    const std::string path = Write("bad", bytes);
    absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, expected_vocab);
    ASSERT_FALSE(vocab.ok()) << "accepted a bad file; expected: " << what;
    EXPECT_THAT(vocab.status().message(), HasSubstr(path));
    EXPECT_THAT(vocab.status().message(), HasSubstr(what));
  }
};

TEST_F(Llama2cTokenizerTest, LoadsAGoodFile) {
  const std::string path = Write("good", Serialize(6, GoodRecords()));
  absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, 9);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->size(), 9);
  EXPECT_EQ(vocab->pieces[7], " a");
  EXPECT_EQ(vocab->scores[8], -5);
  EXPECT_EQ(vocab->types[0], TokenType::kUnknown);
  EXPECT_EQ(vocab->types[1], TokenType::kControl);
  EXPECT_EQ(vocab->types[2], TokenType::kControl);
  EXPECT_EQ(vocab->types[3], TokenType::kByte);
  EXPECT_EQ(vocab->types[4], TokenType::kNormal);
  EXPECT_EQ(vocab->unk_id, 0);
  EXPECT_EQ(vocab->bos_id, 1);
  EXPECT_EQ(vocab->eos_id, 2);
  EXPECT_TRUE(vocab->add_bos);
  EXPECT_TRUE(vocab->add_space_prefix);
  EXPECT_TRUE(vocab->uses_plain_spaces);
  EXPECT_TRUE(ValidateVocabulary(*vocab).ok());

  const Tokenizer tokenizer(*vocab);
  EXPECT_EQ(tokenizer.Encode("ab a\n", true), (std::vector<int32_t>{1, 7, 6, 7, 3}));
  EXPECT_EQ(*tokenizer.Decode({1, 7, 6, 7, 3}), "ab a\n");
}

TEST_F(Llama2cTokenizerTest, SpaceMarkerPiecesMeanNoPlainSpaces) {
  std::vector<Record> records = GoodRecords();
  records[7] = Piece(
      "\xE2\x96\x81"
      "a",
      -4);
  absl::StatusOr<Vocabulary> vocab =
      LoadLlama2cTokenizer(Write("marker", Serialize(6, records)), 9);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_FALSE(vocab->uses_plain_spaces);
}

TEST_F(Llama2cTokenizerTest, RefusesEveryTruncation) {
  const std::string good = Serialize(6, GoodRecords());
  for (size_t size = 0; size < good.size(); ++size) {
    SCOPED_TRACE(size);
    ExpectRefused(good.substr(0, size), 9, size < 4 ? "max_token_length" : "token ");
  }
}

TEST_F(Llama2cTokenizerTest, RefusesBadLengths) {
  std::vector<Record> records = GoodRecords();
  records[5].length = -1;
  ExpectRefused(Serialize(6, records), 9, "token 5: negative length -1");

  records = GoodRecords();
  records[6] = Piece("abcdefg");
  ExpectRefused(Serialize(6, records), 9, "token 6: length 7 exceeds max_token_length 6");

  records = GoodRecords();
  records[8].length = 1000;  // within max_token_length, beyond the file
  ExpectRefused(Serialize(2000, records), 9, "token 8: piece of 1000 bytes");

  ExpectRefused(Serialize(0, GoodRecords()), 9, "max_token_length is 0");
  ExpectRefused(Serialize(-7, GoodRecords()), 9, "max_token_length is -7");
}

TEST_F(Llama2cTokenizerTest, RefusesNanScores) {
  std::vector<Record> records = GoodRecords();
  records[4].score = std::numeric_limits<float>::quiet_NaN();
  ExpectRefused(Serialize(6, records), 9, "token 4: score is NaN");
}

TEST_F(Llama2cTokenizerTest, RefusesFewerTokensThanTheModelHas) {
  ExpectRefused(Serialize(6, GoodRecords()), 10, "token 9: the file ends after 9 tokens");
}

TEST_F(Llama2cTokenizerTest, RefusesMoreTokensThanTheModelHas) {
  ExpectRefused(Serialize(6, GoodRecords()), 7, "extra bytes after the 7 tokens");
  ExpectRefused(Serialize(6, GoodRecords()), 7, "2 more whole token records");
  ExpectRefused(Serialize(6, GoodRecords()) + "x", 9, "1 extra bytes");
}

TEST_F(Llama2cTokenizerTest, RefusesTinyVocabularies) {
  ExpectRefused(Serialize(6, GoodRecords()), 2, "too small");
}

TEST_F(Llama2cTokenizerTest, MissingFile) {
  const std::string path = ::testing::TempDir() + "/specserve_no_such_tokenizer.bin";
  absl::StatusOr<Vocabulary> vocab = LoadLlama2cTokenizer(path, 9);
  ASSERT_FALSE(vocab.ok());
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(vocab.status().message(), HasSubstr(path));
}

}  // namespace
}  // namespace specserve
