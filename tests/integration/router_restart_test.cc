// A router killed (kill -9) and restarted while the draft and target keep running
// (issue 12, item 1): every later output equals target-alone greedy (the new
// router's sequence ids collide with the old one's, so a worker that continued a
// cache by id and length alone would answer with the killed request's story), and
// the caches the dead routers left behind expire, so worker memory stays bounded.
#include <vector>

#include "tests/integration/harness.h"

namespace specserve::testing {
namespace {

constexpr int kTokens = 400;

TEST(RouterRestartTest, KilledAndRestartedRoutersNeverContinueAnotherRequestsCache) {
  // Short idle expiry so that the dead routers' caches go within the test.
  auto target = StartService("specserve-target",
                             {"--model=" + SharedRandomModel(), "--threads=1", "--idle-seconds=1"});
  auto draft = StartService("specserve-draft", {"--model=" + SharedRandomModel(), "--threads=1",
                                                "--window=32", "--sinks=4", "--idle-seconds=1"});
  ASSERT_TRUE(target && draft);
  const std::vector<std::string> router_flags = {"--model=" + SharedRandomModel(),
                                                 "--target=" + target->address(),
                                                 "--draft=" + draft->address(), "--spec=tree:8"};
  // Short prompts for the requests that get killed, longer ones after them: the
  // dead request's cache (id 0) is shorter than the new history (id 0 again).
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 4; ++i) prompts.push_back(Prompt(300 + i, 60 + 7 * i));
  const auto reference = ReferenceGreedy(SharedRandomModel(), prompts, kTokens);
  ASSERT_EQ(reference.size(), prompts.size());

  int64_t rss_first = -1;
  constexpr int kRounds = 4;
  for (int round = 0; round < kRounds; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    {
      // A router killed while its first request (sequence 0) streams.
      auto router = StartService("specserve-router", router_flags);
      ASSERT_NE(router, nullptr);
      auto stub = v1::Generation::NewStub(Connect(router->address()));
      StreamResult cut = Stream(*stub, TokenRequest(Prompt(400 + round, 8), kTokens),
                                [&] { router->Kill(SIGKILL); });
      EXPECT_FALSE(cut.status.ok());
    }
    {
      // Its successor's first request is sequence 0 too; then a second one, and a
      // kill -9 between requests.
      auto router = StartService("specserve-router", router_flags);
      ASSERT_NE(router, nullptr);
      auto stub = v1::Generation::NewStub(Connect(router->address()));
      for (int k = 0; k < 2; ++k) {
        const int p = (round + k) % prompts.size();
        StreamResult r = Stream(*stub, TokenRequest(prompts[p], kTokens));
        ASSERT_TRUE(r.status.ok()) << r.status.error_message();
        EXPECT_EQ(r.tokens, reference[p]) << "request " << k;
        EXPECT_GT(r.stats.speculated_steps(), 0);
      }
      router->Kill(SIGKILL);
    }
    if (round == 0) rss_first = ResidentBytes(target->pid()) + ResidentBytes(draft->pid());
  }
  // A last router: still exact.
  auto router = StartService("specserve-router", router_flags);
  ASSERT_NE(router, nullptr);
  auto stub = v1::Generation::NewStub(Connect(router->address()));
  StreamResult last = Stream(*stub, TokenRequest(prompts[1], kTokens));
  ASSERT_TRUE(last.status.ok()) << last.status.error_message();
  EXPECT_EQ(last.tokens, reference[1]);

  // The dead routers' caches expire (--idle-seconds=1): both workers hold nothing.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int held = -1;
  while (std::chrono::steady_clock::now() < until) {
    held = WorkerSequences(target->address(), false) + WorkerSequences(draft->address(), true);
    if (held == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(held, 0) << "caches of dead routers are still held";
  const int64_t rss_last = ResidentBytes(target->pid()) + ResidentBytes(draft->pid());
  std::printf(
      "[ restart  ] worker RSS after the first round %.1f MiB, after %d rounds (%d "
      "routers killed) %.1f MiB\n",
      rss_first / 1048576.0, kRounds, 2 * kRounds, rss_last / 1048576.0);
  EXPECT_LT(rss_last, rss_first + (16 << 20)) << "worker memory grows with router restarts";
}

}  // namespace
}  // namespace specserve::testing
