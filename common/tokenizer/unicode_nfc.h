// Unicode normalisation form C (canonical composition), which Qwen2's tokenizer
// applies before splitting. ICU's Normalizer2 (Debian's libicu) does it: the
// composition tables are large and versioned with Unicode, not something to copy.
#pragma once

#include <string>
#include <string_view>

namespace specserve {

// NFC of `text` (well-formed UTF-8). Text already in NFC (nearly all) is returned
// unchanged after a quick check.
std::string ToNfc(std::string_view text);

}  // namespace specserve
