// Loads llama.c checkpoints: the legacy export (7 int32 header, fp32 weights,
// the freq_cis tables) and the "version 1" export (magic "ak42", 256-byte header).
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/loaded_model.h"
#include "common/util/mapped_file.h"

namespace specserve {

inline constexpr uint32_t kLlama2cMagic = 0x616b3432;  // "ak42"

// `tokenizer_path` may be empty: then tok<vocab>.bin, tokenizer.bin, and any
// other tok*.bin beside the model are tried in that order.
absl::StatusOr<std::unique_ptr<LoadedModel>> LoadLlama2cModel(
    std::shared_ptr<const MappedFile> file, const std::string& tokenizer_path);

}  // namespace specserve
