#include "common/model/model_loader.h"

#include <cstring>
#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/model/align_weights.h"
#include "common/model/gguf_model_loader.h"
#include "common/model/gguf_reader.h"
#include "common/model/hf_model_loader.h"
#include "common/model/llama2c_loader.h"
#include "common/util/cpu_features.h"
#include "common/util/mapped_file.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

// Formats we recognise only to refuse them with a useful message.
absl::Status RefuseOtherFormats(const MappedFile& file) {
  const uint8_t* d = file.data();
  const uint64_t n = file.size();
  if (n >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(file.path(),
                     ": looks like a zip archive (a PyTorch checkpoint?), which is not "
                     "supported: convert it to GGUF"));
  }
  if (n >= 4) {
    uint32_t magic;
    std::memcpy(&magic, d, 4);
    // ggml's pre-GGUF magics: "ggml", "ggmf", "ggjt", "ggla", "ggsn".
    for (uint32_t old : {0x67676d6cu, 0x67676d66u, 0x67676a74u, 0x67676c61u, 0x6767736eu}) {
      if (magic == old) {
        return absl::InvalidArgumentError(
            absl::StrCat(file.path(),
                         ": header: an old GGML/GGJT file (before GGUF), which is not "
                         "supported: re-convert it to GGUF"));
      }
    }
  }
  if (n >= 9 && d[8] == '{') {
    uint64_t header_len;
    std::memcpy(&header_len, d, 8);
    if (header_len + 8 <= n) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(),
                       ": looks like a safetensors file; load its Hugging Face directory (with "
                       "config.json and tokenizer.json) instead"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadAnyFormat(const std::string& path,
                                                           const LoadOptions& options) {
  namespace fs = std::filesystem;
  if (path.empty()) return absl::InvalidArgumentError("no model path given");
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  if (fs::is_directory(status)) {
    if (fs::exists(fs::path(path) / "config.json", ec)) return LoadHfModel(path);
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": is a directory without config.json: neither a model file nor a "
                     "Hugging Face model directory"));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> mapped, MappedFile::Open(path));
  std::shared_ptr<const MappedFile> file(std::move(mapped));
  if (file->size() == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": file is empty"));
  if (file->size() < 4) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": file has ", file->size(), " bytes, too small to be a model"));
  }
  uint32_t magic;
  std::memcpy(&magic, file->data(), 4);
  if (magic == kGgufMagic) {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> gguf, GgufFile::Parse(file));
    return LoadGgufModel(std::move(gguf));
  }
  RETURN_IF_ERROR(RefuseOtherFormats(*file));
  return LoadLlama2cModel(std::move(file), options.tokenizer_path);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path,
                                                       const LoadOptions& options) {
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> model, LoadAnyFormat(path, options));
  // The AVX2 and AVX-512 kernels read a packed copy of every fp32 matrix (the
  // model's Ops::PackMatrix, aligned by construction), so an aligned copy here
  // would only be a third one in memory; the scalar level reads the weights in
  // place.
  if (SelectedCpuIsa() == CpuIsa::kScalar) AlignFp32Matrices(model.get());
  return model;
}

}  // namespace specserve
