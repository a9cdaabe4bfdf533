#include "router/text_assembler.h"

#include <algorithm>

namespace specserve {

TextAssembler::TextAssembler(const Tokenizer& tokenizer, std::vector<std::string> stops)
    : decoder_(tokenizer, /*at_sequence_start=*/false), stops_(std::move(stops)) {
  for (const std::string& s : stops_) holdback_ = std::max(holdback_, s.size() - 1);
}

bool TextAssembler::FindStop(size_t searched_before) {
  // Only matches that end in the new text: start the search far enough back.
  size_t best = std::string::npos;
  std::string best_stop;
  for (const std::string& s : stops_) {
    const size_t from = searched_before >= s.size() - 1 ? searched_before - (s.size() - 1) : 0;
    const size_t at = text_.find(s, from);
    if (at != std::string::npos && at < best) {
      best = at;
      best_stop = s;
    }
  }
  if (best == std::string::npos) return false;
  text_.resize(best);
  matched_ = best_stop;
  taken_ = std::min(taken_, text_.size());
  return true;
}

bool TextAssembler::Push(int32_t token) {
  if (stopped() || finished_) return stopped();
  const size_t before = text_.size();
  text_ += decoder_.Push(token);
  return text_.size() > before && FindStop(before);
}

void TextAssembler::Finish() {
  if (stopped() || finished_) return;
  const size_t before = text_.size();
  text_ += decoder_.Finish();
  if (text_.size() > before) FindStop(before);
  finished_ = true;
}

std::string TextAssembler::TakeReady() {
  size_t end = text_.size();
  if (!finished_ && !stopped()) {
    end = end > holdback_ ? end - holdback_ : 0;
    // Never split a UTF-8 character: back up to the start of one.
    while (end > taken_ && end < text_.size() &&
           (static_cast<unsigned char>(text_[end]) & 0xC0) == 0x80) {
      --end;
    }
  }
  if (end <= taken_) return "";
  std::string out = text_.substr(taken_, end - taken_);
  taken_ = end;
  return out;
}

}  // namespace specserve
