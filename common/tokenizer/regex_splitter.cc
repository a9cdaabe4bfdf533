#include "common/tokenizer/regex_splitter.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "absl/strings/str_cat.h"

namespace specserve {
namespace {

pcre2_code* Code(void* code) { return static_cast<pcre2_code*>(code); }

// PCRE2 match data per thread: a tokenizer is shared by threads, and a match-data
// block per call would cost an allocation per piece of text.
pcre2_match_data* ThreadMatchData() {
  struct Holder {
    pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
    ~Holder() { pcre2_match_data_free(data); }
  };
  thread_local Holder holder;
  return holder.data;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const RegexSplitter>> RegexSplitter::Compile(
    const std::string& pattern) {
  int error = 0;
  PCRE2_SIZE offset = 0;
  // UCP: \s, \d, \w and case folding by Unicode properties, as Oniguruma (Hugging
  // Face `tokenizers`) and JavaScript's /u regexes use them. NO_UTF_CHECK: callers
  // pass well-formed UTF-8 (the tokenizer replaces invalid bytes first).
  pcre2_code* code =
      pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                    PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error, &offset, nullptr);
  if (code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InvalidArgumentError(absl::StrCat("regular expression '", pattern, "': at offset ",
                                                   offset, ": ",
                                                   reinterpret_cast<const char*>(message)));
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter on failure
  std::shared_ptr<RegexSplitter> splitter(new RegexSplitter());
  splitter->pattern_ = pattern;
  splitter->code_ = code;
  return std::shared_ptr<const RegexSplitter>(std::move(splitter));
}

RegexSplitter::~RegexSplitter() { pcre2_code_free(Code(code_)); }

void RegexSplitter::Split(std::string_view text, std::vector<std::string_view>* pieces) const {
  pcre2_match_data* match = ThreadMatchData();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t start = 0;  // where the next unmatched piece begins
  size_t from = 0;   // where to search next
  while (from <= text.size()) {
    const int rc =
        pcre2_match(Code(code_), subject, text.size(), from, PCRE2_NO_UTF_CHECK, match, nullptr);
    if (rc < 0) break;  // no match (or a matching error, e.g. a limit: rest is one piece)
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    const size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // an empty match splits nothing: step over one character
      from = begin + 1;
      while (from < text.size() && (static_cast<uint8_t>(text[from]) & 0xC0) == 0x80) ++from;
      continue;
    }
    if (begin > start) pieces->push_back(text.substr(start, begin - start));
    pieces->push_back(text.substr(begin, end - begin));
    start = from = end;
  }
  if (start < text.size()) pieces->push_back(text.substr(start));
}

}  // namespace specserve
