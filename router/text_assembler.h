// Turns a request's generated tokens into the text sent to the client: streaming
// detokenisation (never half a UTF-8 character), stop sequences (generation ends
// when the text contains one; the text ends just before it), and holding back the
// tail that could still turn out to be the start of a stop sequence.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"

namespace specserve {

class TextAssembler {
 public:
  TextAssembler(const Tokenizer& tokenizer, std::vector<std::string> stops);

  // Adds one generated token. Returns true when a stop sequence is now complete
  // (later tokens must not be pushed).
  bool Push(int32_t token);
  // Generation ended without a stop: flush the decoder (a stop may still complete).
  void Finish();
  // Text that is final and not yet taken.
  std::string TakeReady();

  bool stopped() const { return !matched_.empty(); }
  const std::string& matched_stop() const { return matched_; }

 private:
  bool FindStop(size_t searched_before);

  StreamingDecoder decoder_;
  std::vector<std::string> stops_;
  size_t holdback_ = 0;  // longest stop - 1
  std::string text_;     // all text so far (cut at a stop)
  size_t taken_ = 0;
  bool finished_ = false;
  std::string matched_;
};

}  // namespace specserve
