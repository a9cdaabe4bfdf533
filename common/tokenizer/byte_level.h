// GPT-2's byte-level alphabet (used by GPT-2, Llama 3 and Qwen2 vocabularies): every
// byte is spelled by one printable character, so that any byte string is a string of
// vocabulary symbols. Printable Latin-1 bytes (! to ~, ¡ to ¬, ® to ÿ) stand for
// themselves; the other 68 bytes take U+0100 onwards in byte order (space is 'Ġ').
#pragma once

#include <string>
#include <string_view>

namespace specserve {

// Appends the byte-level spelling of `bytes` to `out`.
void AppendByteLevel(std::string_view bytes, std::string* out);

// Appends the bytes that `piece` spells. Returns false, appending nothing, when some
// character of `piece` is not in the alphabet (the piece is then plain text, as for
// added tokens such as "<|eot_id|>" that Hugging Face decodes as they are).
bool AppendBytesOfByteLevel(std::string_view piece, std::string* out);

}  // namespace specserve
