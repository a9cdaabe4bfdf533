#include "router/http/openai_generation.h"

namespace specserve {

void Accumulate(OpenAiGeneration::Choice& c, const GenerationChunk& chunk) {
  for (size_t i = 0; i < chunk.tokens.size(); ++i) {
    c.text_offsets.push_back(c.echo.size() + c.text.size());
    c.tokens.push_back(chunk.tokens[i]);
    if (i < chunk.logprobs.size()) c.logprobs.push_back(chunk.logprobs[i]);
    if (i < chunk.pieces.size()) c.text += chunk.pieces[i];
  }
  for (size_t i = chunk.tokens.size(); i < chunk.pieces.size(); ++i) c.text += chunk.pieces[i];
}

}  // namespace specserve
