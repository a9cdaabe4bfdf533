// Bad input gets a clear status and the services keep serving: the public API
// (prompt, ids, UTF-8, max tokens, sampling, speculation mode, stop sequences) and
// malformed internal RPCs (bad parents, cycles, oversize trees, unknown sequences).
#include "tests/integration/harness.h"

namespace specserve::testing {
namespace {

class ValidationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { split_ = Split::Start(SharedRandomModel()).release(); }
  static void TearDownTestSuite() {
    delete split_;
    split_ = nullptr;
  }
  void SetUp() override { ASSERT_NE(split_, nullptr); }

  grpc::Status Generate(const v1::GenerateRequest& request) {
    auto stub = v1::Generation::NewStub(Connect(split_->router->address()));
    grpc::ClientContext context;
    SetTimeout(&context, 30);
    v1::GenerateResponse response;
    return stub->Generate(&context, request, &response);
  }
  void ExpectCode(const v1::GenerateRequest& request, grpc::StatusCode code,
                  const std::string& mentions) {
    grpc::Status st = Generate(request);
    EXPECT_EQ(st.error_code(), code) << st.error_message();
    EXPECT_NE(st.error_message().find(mentions), std::string::npos)
        << "'" << st.error_message() << "' does not mention '" << mentions << "'";
  }
  // The router still answers correctly.
  void ExpectStillServing() {
    auto stub = v1::Generation::NewStub(Connect(split_->router->address()));
    const std::vector<int32_t> prompt = Prompt(21, 9);
    StreamResult r = Stream(*stub, TokenRequest(prompt, 30));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.tokens, ReferenceGreedy(SharedRandomModel(), {prompt}, 30).at(0));
  }
  static Split* split_;
};
Split* ValidationTest::split_ = nullptr;

TEST_F(ValidationTest, BadPublicRequestsGetClearStatuses) {
  using grpc::StatusCode;
  v1::GenerateRequest none;
  ExpectCode(none, StatusCode::INVALID_ARGUMENT, "no prompt");
  v1::GenerateRequest empty;
  empty.set_text("");
  ExpectCode(empty, StatusCode::INVALID_ARGUMENT, "empty");
  ExpectCode(TokenRequest({}, 5), StatusCode::INVALID_ARGUMENT, "no token ids");
  ExpectCode(TokenRequest({5, 320}, 5), StatusCode::INVALID_ARGUMENT, "320");
  ExpectCode(TokenRequest({-1}, 5), StatusCode::INVALID_ARGUMENT, "[0, 320)");
  ExpectCode(TokenRequest(std::vector<int32_t>(2048, 7), 5), StatusCode::OUT_OF_RANGE, "2048");
  v1::GenerateRequest huge_text;
  huge_text.set_text(std::string(2 << 20, 'a'));
  ExpectCode(huge_text, StatusCode::OUT_OF_RANGE, "bytes");
  ExpectCode(TokenRequest({5}, -1), StatusCode::INVALID_ARGUMENT, "max_new_tokens -1");
  ExpectCode(TokenRequest({5}, 1 << 30), StatusCode::OUT_OF_RANGE, "4096");

  v1::GenerateRequest r = TokenRequest({5, 6}, 5);
  r.mutable_sampling()->set_temperature(-0.5f);
  ExpectCode(r, StatusCode::INVALID_ARGUMENT, "temperature");
  r.mutable_sampling()->set_temperature(std::nanf(""));
  ExpectCode(r, StatusCode::INVALID_ARGUMENT, "temperature");
  r.mutable_sampling()->set_temperature(0.7f);
  r.mutable_sampling()->set_top_p(1.5f);
  ExpectCode(r, StatusCode::INVALID_ARGUMENT, "top_p");
  r.mutable_sampling()->set_top_p(-0.1f);
  ExpectCode(r, StatusCode::INVALID_ARGUMENT, "top_p");
  r.mutable_sampling()->set_top_p(0.9f);
  r.mutable_sampling()->set_top_k(-2);
  ExpectCode(r, StatusCode::INVALID_ARGUMENT, "top_k");

  ExpectCode(TokenRequest({5}, 5, "fast"), StatusCode::INVALID_ARGUMENT, "'fast'");
  // The range named is the router's (64 drafted tokens), not the parser's.
  ExpectCode(TokenRequest({5}, 5, "tree:0"), StatusCode::INVALID_ARGUMENT, "tree:0");
  ExpectCode(TokenRequest({5}, 5, "tree:0"), StatusCode::INVALID_ARGUMENT, "[1, 64]");
  ExpectCode(TokenRequest({5}, 5, "tree:65"), StatusCode::OUT_OF_RANGE, "[1, 64]");
  ExpectCode(TokenRequest({5}, 5, "chain:200"), StatusCode::OUT_OF_RANGE, "chain:200");
  ExpectCode(TokenRequest({5}, 5, "chain:200"), StatusCode::OUT_OF_RANGE, "[1, 64]");
  // A prompt that cannot fit the context is refused before it is tokenised: the
  // message names the bytes per token, not the token count.
  v1::GenerateRequest mebibyte;
  mebibyte.set_text(std::string(1 << 20, 'a'));
  ExpectCode(mebibyte, StatusCode::OUT_OF_RANGE, "bytes per token");

  v1::GenerateRequest stops = TokenRequest({5}, 5);
  stops.add_stop("");
  ExpectCode(stops, StatusCode::INVALID_ARGUMENT, "stop sequence 0");
  stops.clear_stop();
  for (int i = 0; i < 17; ++i) stops.add_stop("x");
  ExpectCode(stops, StatusCode::INVALID_ARGUMENT, "17 stop sequences");
  ExpectStillServing();
}

TEST_F(ValidationTest, InvalidUtf8IsRefused) {
  auto stub = v1::Generation::NewStub(Connect(split_->router->address()));
  v1::GenerateRequest request;
  request.set_text(std::string("ab\xff\xfe", 4));
  grpc::Status st = Generate(request);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("byte 2: 0xff"), std::string::npos) << st.error_message();
  v1::GenerateRequest stop = TokenRequest({5}, 5);
  stop.add_stop("\xc3");
  EXPECT_EQ(Generate(stop).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::ClientContext context;
  v1::DetokenizeRequest detokenize;
  detokenize.add_ids(999);
  v1::DetokenizeResponse out;
  EXPECT_EQ(stub->Detokenize(&context, detokenize, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // At most the context length of ids (2048), as the proto documents.
  v1::DetokenizeRequest many;
  for (int i = 0; i < 2049; ++i) many.add_ids(5);
  grpc::ClientContext too_many;
  grpc::Status st_many = stub->Detokenize(&too_many, many, &out);
  EXPECT_EQ(st_many.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_NE(st_many.error_message().find("2048"), std::string::npos) << st_many.error_message();
  many.mutable_ids()->RemoveLast();
  grpc::ClientContext just_enough;
  EXPECT_TRUE(stub->Detokenize(&just_enough, many, &out).ok());
  ExpectStillServing();
}

TEST_F(ValidationTest, StopSequencesEndGenerationBeforeTheMatch) {
  auto stub = v1::Generation::NewStub(Connect(split_->router->address()));
  const std::vector<int32_t> prompt = Prompt(22, 7);
  StreamResult full = Stream(*stub, TokenRequest(prompt, 60));
  ASSERT_TRUE(full.status.ok());
  ASSERT_GT(full.text.size(), 20u);
  // A piece of the middle of the text as the stop sequence.
  const std::string stop = full.text.substr(full.text.size() / 2, 3);
  const size_t first = full.text.find(stop);
  v1::GenerateRequest request = TokenRequest(prompt, 60);
  request.add_stop("never-appears-here");
  request.add_stop(stop);
  StreamResult r = Stream(*stub, request);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  EXPECT_EQ(r.text, full.text.substr(0, first));
  EXPECT_EQ(r.stats.finish_reason(), v1::FINISH_REASON_STOP);
  EXPECT_EQ(r.stats.stop(), stop);
  EXPECT_LT(r.tokens.size(), full.tokens.size());
  EXPECT_EQ(r.tokens,
            std::vector<int32_t>(full.tokens.begin(), full.tokens.begin() + r.tokens.size()));
}

TEST_F(ValidationTest, MalformedVerifyCallsAreRefused) {
  auto target = v1::Target::NewStub(Connect(split_->target->address()));
  auto call = [&](const v1::VerifyRequest& request, v1::VerifyResponse* response) {
    grpc::ClientContext context;
    SetTimeout(&context, 10);
    return target->Verify(&context, request, response);
  };
  auto item = [](v1::VerifyRequest* request, int64_t id, std::vector<int32_t> parents) {
    v1::VerifyItem* it = request->add_items();
    it->set_sequence_id(id);
    for (int32_t t : {1, 5, 9}) it->add_tokens(t);
    for (size_t i = 0; i < parents.size(); ++i) {
      it->mutable_tree()->add_tokens(10 + static_cast<int32_t>(i));
      it->mutable_tree()->add_parents(parents[i]);
    }
    return it;
  };
  const int64_t base = 1'000'000;
  {  // bad parent index, a cycle (parent after the node), a good one: per-item statuses
    v1::VerifyRequest request;
    item(&request, base + 1, {-1, 7});
    item(&request, base + 2, {1, 0});
    item(&request, base + 3, {-1, 0});
    v1::VerifyResponse response;
    ASSERT_TRUE(call(request, &response).ok());
    ASSERT_EQ(response.results_size(), 3);
    EXPECT_EQ(response.results(0).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(response.results(0).status().message().find("parent 7"), std::string::npos);
    EXPECT_EQ(response.results(1).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(response.results(2).status().code(), 0) << response.results(2).status().message();
  }
  {  // an unknown sequence sent from the middle of its history
    v1::VerifyRequest request;
    item(&request, base + 4, {})->set_start(50);
    v1::VerifyResponse response;
    ASSERT_TRUE(call(request, &response).ok());
    EXPECT_EQ(response.results(0).status().code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_NE(response.results(0).status().message().find("need history from position 0"),
              std::string::npos);
  }
  {  // tokens outside the vocabulary
    v1::VerifyRequest request;
    item(&request, base + 5, {})->add_tokens(5000);
    v1::VerifyResponse response;
    ASSERT_TRUE(call(request, &response).ok());
    EXPECT_EQ(response.results(0).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // oversize tree, mismatched arrays, duplicate ids, bad draft distribution: the call fails
    v1::VerifyRequest oversize;
    item(&oversize, base + 6, std::vector<int32_t>(300, -1));
    v1::VerifyRequest mismatched;
    item(&mismatched, base + 7, {-1})->mutable_tree()->add_tokens(3);
    v1::VerifyRequest duplicate;
    item(&duplicate, base + 8, {});
    item(&duplicate, base + 8, {});
    v1::VerifyRequest bad_q;
    v1::NodeDistribution* q = item(&bad_q, base + 9, {-1})->add_q();
    q->add_tokens(-4);
    q->add_probs(0.5f);
    for (const v1::VerifyRequest* r : {&oversize, &mismatched, &duplicate, &bad_q}) {
      v1::VerifyResponse response;
      grpc::Status st = call(*r, &response);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    }
  }
  v1::ReleaseRequest release;
  for (int64_t i = 1; i <= 9; ++i) release.add_sequence_ids(base + i);
  grpc::ClientContext context;
  v1::ReleaseResponse released;
  ASSERT_TRUE(target->Release(&context, release, &released).ok());
  ExpectStillServing();
}

TEST_F(ValidationTest, MalformedProposeCallsAreRefused) {
  auto draft = v1::Draft::NewStub(Connect(split_->draft->address()));
  auto call = [&](const v1::ProposeRequest& request, v1::ProposeResponse* response) {
    grpc::ClientContext context;
    SetTimeout(&context, 10);
    return draft->Propose(&context, request, response);
  };
  auto item = [](v1::ProposeRequest* request, int64_t id, std::vector<int32_t> parents) {
    v1::ProposeItem* it = request->add_items();
    it->set_sequence_id(id);
    for (int32_t t : {1, 5, 9}) it->add_tokens(t);
    for (int32_t p : parents) {
      it->mutable_shape()->add_parents(p);
      it->mutable_shape()->add_ranks(0);
    }
    return it;
  };
  const int64_t base = 2'000'000;
  for (std::vector<int32_t> parents :
       {std::vector<int32_t>{-1, 1}, std::vector<int32_t>{-2}, std::vector<int32_t>(300, -1)}) {
    v1::ProposeRequest request;
    item(&request, base, parents);
    v1::ProposeResponse response;
    EXPECT_EQ(call(request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    v1::ProposeRequest request;
    item(&request, base, {-1})->mutable_shape()->add_ranks(1);
    v1::ProposeResponse response;
    EXPECT_EQ(call(request, &response).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // per item: no history; unknown sequence from the middle; a good one
    v1::ProposeRequest request;
    item(&request, base + 1, {-1})->clear_tokens();
    item(&request, base + 2, {-1})->set_start(40);
    item(&request, base + 3, {-1, 0});
    v1::ProposeResponse response;
    ASSERT_TRUE(call(request, &response).ok());
    ASSERT_EQ(response.results_size(), 3);
    EXPECT_EQ(response.results(0).status().code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_EQ(response.results(1).status().code(), grpc::StatusCode::FAILED_PRECONDITION);
    EXPECT_EQ(response.results(2).status().code(), 0) << response.results(2).status().message();
    EXPECT_EQ(response.results(2).tree().tokens_size(), 2);
  }
  v1::ReleaseRequest release;
  for (int64_t i = 0; i <= 3; ++i) release.add_sequence_ids(base + i);
  grpc::ClientContext context;
  v1::ReleaseResponse released;
  ASSERT_TRUE(draft->Release(&context, release, &released).ok());
  ExpectStillServing();
}

}  // namespace
}  // namespace specserve::testing
