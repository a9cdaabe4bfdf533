// RequestHandle: the channel between the scheduler and an RPC handler.
#include "router/request_handle.h"

#include <chrono>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace specserve {
namespace {

GenerationChunk PerTokenChunk(std::vector<int32_t> tokens, std::vector<std::string> pieces) {
  GenerationChunk c;
  c.tokens = std::move(tokens);
  c.pieces = std::move(pieces);
  c.text = absl::StrJoin(c.pieces, "");
  return c;
}

TEST(RequestHandleTest, ABacklogOfStepsComesOutAsOneChunkInOrder) {
  RequestHandle h;
  h.Push(PerTokenChunk({5}, {"a"}));
  h.Push(PerTokenChunk({6, 7}, {"b", ""}));  // a step that accepted two tokens
  h.Push(PerTokenChunk({8}, {"cd"}));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_EQ(c.pieces, (std::vector<std::string>{"a", "b", "", "cd"}));
  EXPECT_EQ(c.text, "abcd");
  EXPECT_FALSE(h.Next(&c, std::chrono::milliseconds(0)));
}

TEST(RequestHandleTest, ALongBacklogStillStreamsInSeveralChunks) {
  RequestHandle h;
  for (int32_t t = 0; t < 40; ++t) h.Push(PerTokenChunk({t}, {"p"}));
  std::vector<int32_t> all;
  int chunks = 0;
  GenerationChunk c;
  while (h.Next(&c, std::chrono::milliseconds(0))) {
    EXPECT_LE(c.tokens.size(), 16u);
    all.insert(all.end(), c.tokens.begin(), c.tokens.end());
    ++chunks;
  }
  EXPECT_EQ(chunks, 3);  // 16 + 16 + 8
  ASSERT_EQ(all.size(), 40u);
  for (int32_t t = 0; t < 40; ++t) EXPECT_EQ(all[t], t);
}

TEST(RequestHandleTest, LogprobsStayOnePerTokenAndAFinalFlushStaysApart) {
  RequestHandle h;
  GenerationChunk a = PerTokenChunk({1}, {"x"});
  a.logprobs.resize(1);
  a.logprobs[0].logprob = -0.5f;
  GenerationChunk b = PerTokenChunk({2}, {"y"});
  b.logprobs.resize(1);
  b.logprobs[0].logprob = -1.5f;
  GenerationChunk flush;  // held-back text released at the end: no token
  flush.pieces = {"z"};
  flush.text = absl::StrJoin(flush.pieces, "");
  h.Push(std::move(a));
  h.Push(std::move(b));
  h.Push(std::move(flush));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{1, 2}));
  ASSERT_EQ(c.logprobs.size(), 2u);
  EXPECT_EQ(c.logprobs[0].logprob, -0.5f);
  EXPECT_EQ(c.logprobs[1].logprob, -1.5f);
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_TRUE(c.tokens.empty());
  EXPECT_EQ(c.pieces, (std::vector<std::string>{"z"}));
}

TEST(RequestHandleTest, ChunksWithAndWithoutLogprobsAreNotMixed) {
  RequestHandle h;
  GenerationChunk a = PerTokenChunk({1}, {"x"});
  a.logprobs.resize(1);
  h.Push(std::move(a));
  h.Push(PerTokenChunk({2}, {"y"}));
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens.size(), 1u);
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_EQ(c.tokens, (std::vector<int32_t>{2}));
}

TEST(RequestHandleTest, DoneOnlyOnceEveryChunkIsTaken) {
  RequestHandle h;
  h.Push(PerTokenChunk({3}, {"q"}));
  h.Finish(absl::OkStatus(), GenerationStats{});
  EXPECT_FALSE(h.done());
  GenerationChunk c;
  ASSERT_TRUE(h.Next(&c, std::chrono::milliseconds(0)));
  EXPECT_TRUE(h.done());
  EXPECT_FALSE(h.Next(&c, std::chrono::milliseconds(0)));
}

}  // namespace
}  // namespace specserve
