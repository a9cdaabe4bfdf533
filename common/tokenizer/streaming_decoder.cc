#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"

namespace specserve {

std::string StreamingDecoder::Push(int32_t id) {
  if (!tokenizer_.AppendDecoded(id, &at_start_, &pending_)) return "";
  std::string ready;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const Utf8Char c = ScanUtf8Char(std::string_view(pending_).substr(pos));
    if (c.kind == Utf8Char::Kind::kIncomplete) break;
    if (c.kind == Utf8Char::Kind::kComplete) {
      ready.append(pending_, pos, c.length);
    } else {
      ready.append(kUtf8Replacement);
    }
    pos += c.length;
  }
  pending_.erase(0, pos);
  return ready;
}

std::string StreamingDecoder::Finish() {
  if (pending_.empty()) return "";
  // Only an incomplete character can be held back: it will never be completed now.
  pending_.clear();
  return std::string(kUtf8Replacement);
}

}  // namespace specserve
