// The channel between an RPC handler and the scheduler for one generation: the
// scheduler pushes chunks (text + tokens) and finally a status with the request's
// stats; the handler waits for them and may ask for cancellation at any time.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/engine/batch_generator.h"
#include "common/engine/generation.h"
#include "router/notify_thread.h"
#include "router/stream_pacing.h"

namespace specserve {

struct GenerationChunk {
  std::string text;
  std::vector<int32_t> tokens;
  // `text` split where the tokens made it final: pieces[i] came with tokens[i] (it may
  // be empty: text held back as a possible stop sequence or half a UTF-8 character
  // comes with a later token); text flushed at the end joins the last piece, or is
  // the only piece of a chunk without tokens. Streaming APIs send one event per piece.
  std::vector<std::string> pieces;
  // Per token, when the request asked for log-probabilities.
  std::vector<TokenLogprobs> logprobs;
};

struct GenerationStats {
  int prompt_tokens = 0;
  int generated_tokens = 0;
  int accepted_tokens = 0;
  int steps = 0;
  int speculated_steps = 0;
  double time_to_first_token_seconds = 0;
  double total_seconds = 0;
  FinishReason reason = FinishReason::kNone;
  std::string stop;
  uint64_t seed = 0;  // sampled requests: the seed drawn with (0: greedy)
};

class RequestHandle : public std::enable_shared_from_this<RequestHandle> {
 public:
  // `stream_interval`: after handing out a chunk, Next waits this long for more
  // before handing out the next (0: every chunk as soon as it comes). A stream
  // then sends at most one message per interval, with every token decoded in it:
  // waking a handler and writing a message per decoding step cost more CPU
  // than the step itself on a busy host (64 streams on 2 cores: 2.1 of a 2.7 ms
  // step). The first chunk never waits, and a full message (16 tokens) or the
  // end ends the wait early.
  //
  // `notify` (may be null): the thread the listener runs on (SetListener);
  // null: the scheduler's own thread, inside Push and Finish. A handle with a
  // `notify` thread must be owned by a shared_ptr, and `notify` must outlive
  // its Push and Finish calls.
  explicit RequestHandle(std::chrono::microseconds stream_interval = {},
                         NotifyThread* notify = nullptr)
      : stream_pacing_(std::make_shared<StreamPacing>(stream_interval, 0)), notify_(notify) {}
  // The same with the interval `pacing` gives at each message (it changes as
  // streams come and go: StreamPacing).
  RequestHandle(std::shared_ptr<const StreamPacing> pacing, NotifyThread* notify)
      : stream_pacing_(std::move(pacing)), notify_(notify) {}

  // Scheduler side.
  void Push(GenerationChunk chunk);
  void Finish(absl::Status status, GenerationStats stats);
  bool cancel_requested() const { return cancel_.load(); }
  absl::Status cancel_reason() const;

  // Handler side. Waits up to `timeout` for a chunk or the end: returns true with
  // a chunk, or false when there is none now (check done()). Chunks pushed
  // since the last call come as one (tokens, pieces and log-probabilities
  // concatenated, up to 16 tokens) as long as each is one piece per token.
  // With a stream interval, the call first waits out what is left of it (the
  // timeout bounds that wait too).
  bool Next(GenerationChunk* chunk, std::chrono::milliseconds timeout);

  // Handler side, for callers that must not block (the callback API's stream
  // reactor). kChunk: `chunk` holds what Next would hand out now; kPaced:
  // chunks wait for the stream interval to pass (a later Push or Finish tells
  // the listener; so a paced chunk goes out at the first step's end after its
  // interval); kNone: nothing queued yet; kDone: the generation ended and
  // every chunk was taken.
  enum class Take { kChunk, kPaced, kNone, kDone };
  Take TryNext(GenerationChunk* chunk);
  // Called after every Push and at Finish, so that a non-blocking consumer
  // learns when to call TryNext: on the `notify` thread (once for any number
  // of pushes made before it runs, and not for a push whose chunks wait out
  // the stream interval, for which TryNext would say kPaced), else inside
  // Push and Finish.
  // SetListener(nullptr) returns only once no call to the old listener is
  // running, and none runs after.
  void SetListener(std::function<void()> listener);

  bool done() const;
  // After done(): the final status and stats.
  absl::Status status() const;
  GenerationStats stats() const;
  // Asks the scheduler to stop this generation and free its KV (CANCELLED or
  // DEADLINE_EXCEEDED as the reason).
  void Cancel(absl::Status reason);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationChunk> chunks_;
  size_t queued_tokens_ = 0;  // tokens of chunks_
  // What Next is waiting for, so that Push wakes it only when it matters.
  bool waiting_for_chunk_ = false, pacing_ = false;
  const std::shared_ptr<const StreamPacing> stream_pacing_;  // the stream interval
  std::chrono::steady_clock::time_point last_taken_;  // when Next last handed out a chunk
  bool done_ = false;
  absl::Status status_;
  GenerationStats stats_;
  std::atomic<bool> cancel_{false};
  absl::Status cancel_reason_;
  // Held while the listener runs (never with mu_): clearing it waits for a call in flight.
  std::mutex listener_mu_;
  std::function<void()> listener_;
  NotifyThread* const notify_;
  std::atomic<bool> has_listener_{false};
  std::atomic<bool> notify_posted_{false};  // a listener call is queued on notify_

  void CallListener();

  // Hands out the front chunk, merged with those queued behind it (mu_ held).
  void TakeLocked(GenerationChunk* chunk);
  // Whether queued chunks wait for the stream interval (TryNext's kPaced): the
  // first chunk goes at once, then one per interval, sooner for a full
  // message or the end.
  bool PacedLocked(std::chrono::steady_clock::time_point now) const;
  // Tells the listener; with a notify thread, only when `takeable` (TryNext
  // would hand something out) or at the end.
  void Notify(bool takeable);
};

}  // namespace specserve
