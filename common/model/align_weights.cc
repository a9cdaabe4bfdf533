#include "common/model/align_weights.h"

#include <sys/mman.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include "common/model/page_out.h"
#include "common/model/storage.h"

namespace specserve {
namespace {

constexpr uintptr_t kAlignment = OwnedBuffer::kAlignment;

bool NeedsMove(const WeightTensor& w) {
  return w.type == TensorType::kF32 && w.data != nullptr &&
         reinterpret_cast<uintptr_t>(w.data) % kAlignment != 0 && w.row_bytes() % kAlignment == 0;
}

}  // namespace

int64_t AlignFp32Matrices(LoadedModel* model) {
  LlamaWeights& w = model->weights;
  std::vector<WeightTensor*> moving;
  for (LayerWeights& lw : w.layers) {
    for (WeightTensor* m : lw.matrices()) {
      if (NeedsMove(*m)) moving.push_back(m);
    }
  }
  // A tied output head stays the same memory as the embedding table.
  const bool tied = w.output.data == w.token_embedding.data;
  if (NeedsMove(w.output)) moving.push_back(&w.output);
  int64_t bytes = 0;
  for (const WeightTensor* m : moving) bytes += m->bytes();
  if (bytes == 0) return 0;
  std::shared_ptr<OwnedBuffer> buffer;
  try {
    buffer = std::make_shared<OwnedBuffer>(static_cast<size_t>(bytes));
  } catch (const std::bad_alloc&) {
    return 0;  // no memory for the copy: the kernels copy panels instead
  }
  int64_t at = 0;
  for (WeightTensor* m : moving) {
    std::memcpy(buffer->data() + at, m->data, static_cast<size_t>(m->bytes()));
    // The file's pages of this tensor are not read again: let the kernel drop
    // them first when memory runs short (whole pages inside the tensor only).
    // Only file maps get here: owned buffers are already 64-byte aligned.
    AdviseWholePages(m->data, m->bytes(), MADV_COLD);
    m->data = buffer->data() + at;
    at += m->bytes();
  }
  if (tied) w.token_embedding.data = w.output.data;
  model->storage.push_back(std::move(buffer));
  return bytes;
}

}  // namespace specserve
