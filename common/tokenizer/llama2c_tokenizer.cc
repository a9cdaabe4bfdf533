// LoadLlama2cTokenizer: llama2.c's tokenizer.bin.
#include <bit>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/tokenizer.h"

namespace specserve {
namespace {

static_assert(std::endian::native == std::endian::little,
              "tokenizer.bin is little-endian; add byte swapping for this platform");

// Reads little-endian fields from a byte buffer, refusing to go past its end.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  size_t offset() const { return offset_; }
  size_t left() const { return data_.size() - offset_; }

  template <typename T>
  bool Read(T* value) {
    if (left() < sizeof(T)) return false;
    std::memcpy(value, data_.data() + offset_, sizeof(T));
    offset_ += sizeof(T);
    return true;
  }
  bool ReadBytes(size_t n, std::string* out) {
    if (left() < n) return false;
    out->assign(data_.data() + offset_, n);
    offset_ += n;
    return true;
  }

 private:
  std::string_view data_;
  size_t offset_ = 0;
};

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat(path, ": cannot open the tokenizer file"));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat(path, ": read error"));
  return std::move(buffer).str();
}

TokenType Llama2cTokenType(int32_t id, const std::string& piece) {
  if (id == 0) return TokenType::kUnknown;
  if (id == 1 || id == 2) return TokenType::kControl;
  if (ParseBytePiece(piece) >= 0) return TokenType::kByte;
  return TokenType::kNormal;
}

// How many more whole token records follow (for the "extra bytes" message).
int64_t CountFurtherRecords(Reader reader, int32_t max_token_length) {
  int64_t count = 0;
  float score;
  int32_t length;
  while (reader.Read(&score) && reader.Read(&length) && length >= 0 && length <= max_token_length &&
         reader.left() >= static_cast<size_t>(length)) {
    std::string skip;
    reader.ReadBytes(length, &skip);
    ++count;
  }
  return count;
}

}  // namespace

absl::StatusOr<Vocabulary> LoadLlama2cTokenizer(const std::string& path, int32_t expected_vocab) {
  if (expected_vocab < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": expected vocabulary size ", expected_vocab,
                     " is too small (llama2.c vocabularies start <unk>, <s>, </s>)"));
  }
  absl::StatusOr<std::string> data = ReadWholeFile(path);
  if (!data.ok()) return data.status();
  Reader reader(*data);
  int32_t max_token_length = 0;
  if (!reader.Read(&max_token_length)) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file of ", data->size(), " bytes is too short for the max_token_length header"));
  }
  if (max_token_length <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": max_token_length is ", max_token_length, ", must be positive"));
  }

  Vocabulary vocab;
  vocab.pieces.reserve(expected_vocab);
  vocab.scores.reserve(expected_vocab);
  vocab.types.reserve(expected_vocab);
  for (int32_t i = 0; i < expected_vocab; ++i) {
    const auto error = [&](const auto&... what) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", i, ": ", what...));
    };
    if (reader.left() == 0) {
      return error("the file ends after ", i, " tokens, but the model's vocabulary has ",
                   expected_vocab);
    }
    const size_t record_offset = reader.offset();
    float score = 0;
    int32_t length = 0;
    if (!reader.Read(&score) || !reader.Read(&length)) {
      return error("truncated record header at offset ", record_offset, " (file size ",
                   data->size(), ")");
    }
    if (std::isnan(score)) return error("score is NaN");
    if (length < 0) return error("negative length ", length);
    if (length > max_token_length) {
      return error("length ", length, " exceeds max_token_length ", max_token_length);
    }
    std::string piece;
    if (!reader.ReadBytes(length, &piece)) {
      return error("piece of ", length, " bytes at offset ", reader.offset(),
                   " runs past the end of the file (file size ", data->size(), ")");
    }
    vocab.types.push_back(Llama2cTokenType(i, piece));
    vocab.pieces.push_back(std::move(piece));
    vocab.scores.push_back(score);
  }
  if (reader.left() > 0) {
    const int64_t more = CountFurtherRecords(reader, max_token_length);
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", reader.left(), " extra bytes after the ", expected_vocab,
                     " tokens of the model's vocabulary (they hold ", more,
                     " more whole token records): tokenizer of a different model?"));
  }

  vocab.model = "llama";
  vocab.unk_id = 0;
  vocab.bos_id = 1;
  vocab.eos_id = 2;
  vocab.add_bos = true;
  vocab.add_space_prefix = true;
  vocab.uses_plain_spaces = PiecesUsePlainSpaces(vocab);
  return vocab;
}

}  // namespace specserve
