#include "tools/model/vocab_source.h"

#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/gguf_reader.h"
#include "common/model/model_loader.h"
#include "common/tokenizer/hf_tokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/mapped_file.h"
#include "common/util/status_macros.h"

namespace specserve::model_tool {

absl::StatusOr<int> CountLlama2cTokens(const std::string& path) {
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  const uint8_t* d = file->data();
  const uint64_t n = file->size();
  auto not_tokenizer = [&](std::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a llama2.c tokenizer.bin (", std::string(why), ")"));
  };
  if (n < 4) return not_tokenizer("too short");
  int32_t max_len;
  std::memcpy(&max_len, d, 4);
  if (max_len <= 0 || max_len > 4096) return not_tokenizer("bad max_token_length");
  uint64_t pos = 4;
  int count = 0;
  while (pos < n) {
    if (n - pos < 8) return not_tokenizer("truncated record");
    int32_t len;
    std::memcpy(&len, d + pos + 4, 4);
    if (len < 0 || len > max_len || static_cast<uint64_t>(len) > n - pos - 8) {
      return not_tokenizer("bad record length");
    }
    pos += 8 + static_cast<uint64_t>(len);
    if (++count > (1 << 24)) return not_tokenizer("too many records");
  }
  return count;
}

absl::StatusOr<Vocabulary> LoadVocabularyFrom(const std::string& path,
                                              const std::string& tokenizer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::path(path).filename() == "tokenizer.json" && fs::is_regular_file(path, ec)) {
    return LoadHfTokenizer(fs::path(path).parent_path().string());
  }
  if (fs::is_directory(path, ec) && !fs::exists(fs::path(path) / "config.json", ec)) {
    return LoadHfTokenizer(path);  // a tokenizer directory without a model
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  uint32_t magic = 0;
  if (file->size() >= 4) std::memcpy(&magic, file->data(), 4);
  file.reset();
  if (magic != kGgufMagic) {
    if (absl::StatusOr<int> count = CountLlama2cTokens(path); count.ok() && *count >= 3) {
      return LoadLlama2cTokenizer(path, *count);
    }
  }
  LoadOptions options;
  options.tokenizer_path = tokenizer;
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> model, LoadModel(path, options));
  return std::move(model->vocab);
}

}  // namespace specserve::model_tool
