#include "common/model/llama2c_loader.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/model/llama_layout.h"
#include "common/model/storage.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/status_macros.h"

namespace specserve {
namespace {

constexpr uint64_t kLegacyHeaderBytes = 7 * 4;
constexpr uint64_t kVersion1HeaderBytes = 256;

struct Header {
  int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  bool shared_classifier = true;
  int version = 0;  // 0: legacy
};

std::string Describe(const Header& h) {
  return absl::StrCat("dim=", h.dim, " hidden_dim=", h.hidden_dim, " n_layers=", h.n_layers,
                      " n_heads=", h.n_heads, " n_kv_heads=", h.n_kv_heads,
                      " vocab_size=", h.vocab_size, " seq_len=", h.seq_len);
}

absl::StatusOr<Header> ReadHeader(const MappedFile& file) {
  const std::string& path = file.path();
  auto read_i32 = [&](uint64_t offset) {
    int32_t v;
    std::memcpy(&v, file.data() + offset, 4);
    return v;
  };
  if (file.size() < kLegacyHeaderBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header: file has ", file.size(),
                     " bytes, too small for a llama2.c checkpoint header (28 bytes)"));
  }
  Header h;
  uint64_t params = 0;
  if (static_cast<uint32_t>(read_i32(0)) == kLlama2cMagic) {
    if (file.size() < kVersion1HeaderBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": header: file has ", file.size(),
                       " bytes, too small for a llama2.c version 1 header (256 bytes)"));
    }
    h.version = read_i32(4);
    if (h.version != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": header: llama2.c export version ", h.version,
                       " is not supported (only the legacy export and version 1, fp32)"));
    }
    params = 8;
  }
  int32_t* fields[] = {&h.dim,        &h.hidden_dim, &h.n_layers, &h.n_heads,
                       &h.n_kv_heads, &h.vocab_size, &h.seq_len};
  for (int i = 0; i < 7; ++i) *fields[i] = read_i32(params + 4 * i);
  if (h.version == 1) {
    const uint8_t shared = file.data()[params + 28];
    if (shared > 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": header: shared_classifier byte is ",
                                                     int{shared}, " (must be 0 or 1)"));
    }
    h.shared_classifier = shared == 1;
    if (h.vocab_size < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": header: vocab_size (", h.vocab_size, ") must be positive"));
    }
  } else if (h.vocab_size < 0 && h.vocab_size != std::numeric_limits<int32_t>::min()) {
    h.vocab_size = -h.vocab_size;
    h.shared_classifier = false;
  }
  return h;
}

absl::StatusOr<ModelConfig> ConfigFromHeader(const std::string& path, const Header& h) {
  ModelConfig c;
  c.architecture = "llama";
  c.name = std::filesystem::path(path).stem().string();
  c.dim = h.dim;
  c.ffn_dim = h.hidden_dim;
  c.n_layers = h.n_layers;
  c.n_heads = h.n_heads;
  c.n_kv_heads = h.n_kv_heads;
  c.vocab_size = h.vocab_size;
  c.context_length = h.seq_len;
  c.rope_theta = 10000.0f;
  c.rms_eps = 1e-5f;
  c.rope_style = RopeStyle::kInterleaved;
  c.tied_embeddings = h.shared_classifier;
  const std::string where = absl::StrCat(path, ": header (", Describe(h), "): ");
  if (c.n_heads > 0 && c.dim > 0 && c.dim % c.n_heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(where, "n_heads (", c.n_heads,
                                                   ") must divide dim (", c.dim,
                                                   ") (is this a llama2.c checkpoint?)"));
  }
  c.head_dim = c.n_heads > 0 ? c.dim / c.n_heads : 0;
  c.rope_dim = c.head_dim;
  if (absl::Status s = c.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, s.message(), " (is this a llama2.c checkpoint?)"));
  }
  if (c.head_dim % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "head size ", c.head_dim, " must be even for rotary embedding"));
  }
  return c;
}

// Where each tensor lives in the file, in floats from the start of the weights.
struct Placement {
  uint64_t header_bytes = 0;
  uint64_t total_floats = 0;
  uint64_t Take(uint64_t floats) {
    const uint64_t at = total_floats;
    total_floats += floats;
    return at;
  }
};

absl::StatusOr<std::string> FindTokenizer(const std::string& model_path, int vocab_size,
                                          const std::string& requested,
                                          absl::StatusOr<Vocabulary>* vocab) {
  if (!requested.empty()) {
    *vocab = LoadLlama2cTokenizer(requested, vocab_size);
    return requested;
  }
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(model_path).parent_path();
  std::vector<std::string> candidates;
  auto add = [&](const fs::path& p) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec) && p != fs::path(model_path) &&
        std::find(candidates.begin(), candidates.end(), p.string()) == candidates.end()) {
      candidates.push_back(p.string());
    }
  };
  const fs::path base = dir.empty() ? fs::path(".") : dir;
  add(base / absl::StrCat("tok", vocab_size, ".bin"));
  add(base / "tokenizer.bin");
  std::error_code ec;
  std::vector<std::string> others;
  for (const fs::directory_entry& e : fs::directory_iterator(base, ec)) {
    const std::string name = e.path().filename().string();
    if (absl::StartsWith(name, "tok") && absl::EndsWith(name, ".bin")) {
      others.push_back(e.path().string());
    }
  }
  std::sort(others.begin(), others.end());
  for (const std::string& o : others) add(o);
  if (candidates.empty()) {
    return absl::NotFoundError(absl::StrCat("no tokenizer for llama2.c model ", model_path,
                                            " (looked for tokenizer.bin and tok*.bin beside it)"
                                            ": pass --tokenizer"));
  }
  std::vector<std::string> failures;
  for (const std::string& candidate : candidates) {
    *vocab = LoadLlama2cTokenizer(candidate, vocab_size);
    if (vocab->ok()) return candidate;
    failures.push_back(std::string(vocab->status().message()));
  }
  return absl::NotFoundError(absl::StrCat("no tokenizer for llama2.c model ", model_path, " with ",
                                          vocab_size, " tokens: pass --tokenizer (",
                                          absl::StrJoin(failures, "; "), ")"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<LoadedModel>> LoadLlama2cModel(
    std::shared_ptr<const MappedFile> file, const std::string& tokenizer_path) {
  const std::string& path = file->path();
  ASSIGN_OR_RETURN(const Header h, ReadHeader(*file));
  ASSIGN_OR_RETURN(const ModelConfig c, ConfigFromHeader(path, h));

  // Validate() bounds every dimension, so these products fit in 64 bits.
  const uint64_t dim = c.dim, ffn = c.ffn_dim, L = c.n_layers, vocab = c.vocab_size;
  const uint64_t q_dim = c.q_dim(), kv_dim = c.kv_dim();
  const uint64_t head_half = static_cast<uint64_t>(c.head_dim) / 2;

  auto model = std::make_unique<LoadedModel>();
  model->path = path;
  model->format = "llama2c";
  model->config = c;
  model->file_bytes = file->size();
  std::vector<LlamaTensorSlot> slots = LlamaTensorSlots(c, &model->weights);
  auto slot_named = [&](const std::string& name) -> LlamaTensorSlot& {
    for (LlamaTensorSlot& s : slots) {
      if (s.name == name) return s;
    }
    return slots.front();  // unreachable: every name below is in the layout
  };

  // Float offsets of each group of tensors.
  Placement p;
  p.header_bytes = h.version == 1 ? kVersion1HeaderBytes : kLegacyHeaderBytes;
  uint64_t embd = 0, att_norm = 0, wq = 0, wk = 0, wv = 0, wo = 0, ffn_norm = 0, w1 = 0, w2 = 0,
           w3 = 0, final_norm = 0, wcls = 0;
  if (h.version == 0) {
    embd = p.Take(vocab * dim);
    att_norm = p.Take(L * dim);
    wq = p.Take(L * dim * q_dim);
    wk = p.Take(L * kv_dim * dim);
    wv = p.Take(L * kv_dim * dim);
    wo = p.Take(L * q_dim * dim);
    ffn_norm = p.Take(L * dim);
    w1 = p.Take(L * ffn * dim);
    w2 = p.Take(L * dim * ffn);
    w3 = p.Take(L * ffn * dim);
    final_norm = p.Take(dim);
    p.Take(2 * static_cast<uint64_t>(c.context_length) * head_half);  // freq_cis_real, _imag
  } else {
    att_norm = p.Take(L * dim);
    ffn_norm = p.Take(L * dim);
    final_norm = p.Take(dim);
    embd = p.Take(vocab * dim);
    wq = p.Take(L * dim * q_dim);
    wk = p.Take(L * kv_dim * dim);
    wv = p.Take(L * kv_dim * dim);
    wo = p.Take(L * q_dim * dim);
    w1 = p.Take(L * ffn * dim);
    w2 = p.Take(L * dim * ffn);
    w3 = p.Take(L * ffn * dim);
  }
  if (!c.tied_embeddings) wcls = p.Take(vocab * dim);
  const uint64_t expected = p.header_bytes + 4 * p.total_floats;
  if (file->size() != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": file size: the header (", Describe(h), c.tied_embeddings ? "" : ", untied",
        ") implies ", expected, " bytes but the file has ", file->size(),
        " bytes: truncated, corrupt, or not a llama2.c checkpoint"));
  }

  const float* base = reinterpret_cast<const float*>(file->data() + p.header_bytes);
  auto place = [&](const std::string& name, uint64_t float_offset) {
    LlamaTensorSlot& s = slot_named(name);
    WeightTensor* w = s.slot;
    w->name = s.name;
    w->type = TensorType::kF32;
    w->rows = s.rows();
    w->cols = s.cols();
    w->data = base + float_offset;
    model->tensors.push_back(
        TensorDescription{s.name, TensorType::kF32, s.shape, p.header_bytes + 4 * float_offset});
  };
  place("token_embd.weight", embd);
  place("output_norm.weight", final_norm);
  if (!c.tied_embeddings) place("output.weight", wcls);
  for (uint64_t l = 0; l < L; ++l) {
    const std::string b = absl::StrCat("blk.", l, ".");
    place(b + "attn_norm.weight", att_norm + l * dim);
    place(b + "attn_q.weight", wq + l * dim * q_dim);
    place(b + "attn_k.weight", wk + l * kv_dim * dim);
    place(b + "attn_v.weight", wv + l * kv_dim * dim);
    place(b + "attn_output.weight", wo + l * q_dim * dim);
    place(b + "ffn_norm.weight", ffn_norm + l * dim);
    place(b + "ffn_gate.weight", w1 + l * ffn * dim);
    place(b + "ffn_down.weight", w2 + l * dim * ffn);
    place(b + "ffn_up.weight", w3 + l * ffn * dim);
  }
  if (c.tied_embeddings) model->weights.output = model->weights.token_embedding;

  absl::StatusOr<Vocabulary> vocab_or = absl::UnknownError("not loaded");
  RETURN_IF_ERROR(FindTokenizer(path, c.vocab_size, tokenizer_path, &vocab_or).status());
  if (!vocab_or.ok()) return vocab_or.status();
  model->vocab = *std::move(vocab_or);
  if (model->vocab.size() != c.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tokenizer has ", model->vocab.size(),
                                                   " tokens but the model has ", c.vocab_size));
  }
  model->storage.push_back(std::make_shared<MappedStorage>(std::move(file)));
  return model;
}

}  // namespace specserve
