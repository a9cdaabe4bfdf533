// One HTTP request's generations (n per prompt, each submitted to the scheduler) and
// what has come back so far, and the loop that waits for them: chunks are handed on as
// they arrive, and a client that hangs up cancels every generation of its request
// (which frees their KV at once).
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "router/http/http_server.h"
#include "router/http/openai_request.h"
#include "router/request_handle.h"

namespace specserve {

// One HTTP request's generations (n per prompt) and what has come back so far.
struct OpenAiGeneration {
  // One choice (one scheduled generation).
  struct Choice {
    int index = 0;
    int prompt_index = 0;
    std::shared_ptr<RequestHandle> handle;
    std::string echo;  // completions with echo: the prompt text
    std::string text;
    std::vector<int32_t> tokens;
    std::vector<TokenLogprobs> logprobs;
    std::vector<size_t> text_offsets;  // where each token's text starts in `text`
    bool done = false;
    absl::Status status;
    GenerationStats stats;
  };

  OpenAiRequest request;
  bool chat = false;
  std::string endpoint;  // metrics label
  std::string id;
  int64_t created = 0;
  std::string spec_name;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  std::vector<Choice> choices;
  std::vector<int> prompt_tokens;  // per prompt
  bool saw_text = false;
  std::chrono::steady_clock::time_point last_text{};
  bool finished = false;  // metrics recorded

  void CancelAll(const std::string& why) {
    for (Choice& c : choices) {
      if (!c.done && c.handle) c.handle->Cancel(absl::CancelledError(why));
    }
  }
};

// Appends a chunk to a choice's text, tokens, log-probabilities and text offsets.
void Accumulate(OpenAiGeneration::Choice& c, const GenerationChunk& chunk);

// Waits for every choice's chunks, handing each to on_chunk(choice, chunk) and then
// calling on_done(choice); either returns false when the client can no longer be
// written to. Returns false (every generation cancelled) when the client is gone.
template <typename OnChunk, typename OnDone>
bool PumpGeneration(OpenAiGeneration& g, OnChunk on_chunk, OnDone on_done) {
  using Clock = std::chrono::steady_clock;
  auto last_check = Clock::now();
  const auto wait = std::chrono::milliseconds(g.choices.size() == 1 ? 50 : 5);
  while (true) {
    bool progress = false, all_done = true;
    for (OpenAiGeneration::Choice& c : g.choices) {
      if (c.done) continue;
      GenerationChunk chunk;
      while (c.handle->Next(&chunk, std::chrono::milliseconds(0))) {
        progress = true;
        if (!on_chunk(c, chunk)) {
          g.CancelAll("the client stopped reading");
          return false;
        }
      }
      if (c.handle->done()) {
        c.done = true;
        c.status = c.handle->status();
        c.stats = c.handle->stats();
        progress = true;
        if (!on_done(c)) {
          g.CancelAll("the client stopped reading");
          return false;
        }
        continue;
      }
      all_done = false;
    }
    if (all_done) return true;
    // Writes fail soon after a client hangs up; a check of the socket covers the time
    // without writes (queued, prefilling), without a system call per token.
    if (Clock::now() - last_check >= std::chrono::milliseconds(50)) {
      if (HttpServer::ClientGone()) {
        g.CancelAll("the client closed the connection");
        return false;
      }
      last_check = Clock::now();
    }
    if (progress) continue;
    for (OpenAiGeneration::Choice& c : g.choices) {
      if (c.done) continue;
      GenerationChunk chunk;
      if (c.handle->Next(&chunk, wait) && !on_chunk(c, chunk)) {
        g.CancelAll("the client stopped reading");
        return false;
      }
      break;
    }
  }
}

}  // namespace specserve
