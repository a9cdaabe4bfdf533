#include "services/proto_convert.h"

#include <cmath>
#include <string>

#include "absl/strings/str_format.h"

namespace specserve {

v1::WorkerSampling ToProto(const SamplingParams& params) {
  v1::WorkerSampling out;
  out.set_temperature(params.temperature);
  out.set_top_k(params.top_k);
  out.set_top_p(params.top_p);
  out.set_seed(params.seed);
  out.set_min_p(params.min_p);
  return out;
}

SamplingParams FromProto(const v1::WorkerSampling& params) {
  SamplingParams out;
  out.temperature = params.temperature();
  out.top_k = params.top_k();
  out.top_p = params.top_p() == 0.0f ? 1.0f : params.top_p();  // 0: unset
  out.seed = params.seed();
  out.min_p = params.min_p();
  return out;
}

void ToProto(const TokenTree& tree, v1::TokenTree* out) {
  out->mutable_tokens()->Assign(tree.tokens.begin(), tree.tokens.end());
  out->mutable_parents()->Assign(tree.parents.begin(), tree.parents.end());
}

absl::Status FromProto(const v1::TokenTree& tree, int max_nodes, TokenTree* out) {
  if (tree.tokens_size() != tree.parents_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree has %d tokens but %d parents", tree.tokens_size(), tree.parents_size()));
  }
  if (tree.tokens_size() > max_nodes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree has %d nodes, more than the limit of %d", tree.tokens_size(), max_nodes));
  }
  out->tokens.assign(tree.tokens().begin(), tree.tokens().end());
  out->parents.assign(tree.parents().begin(), tree.parents().end());
  return absl::OkStatus();
}

void ToProto(const TreeShape& shape, v1::TreeShape* out) {
  out->mutable_parents()->Assign(shape.parents.begin(), shape.parents.end());
  out->mutable_ranks()->Assign(shape.ranks.begin(), shape.ranks.end());
}

absl::Status FromProto(const v1::TreeShape& shape, int max_nodes, TreeShape* out) {
  if (shape.parents_size() != shape.ranks_size()) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree shape has %d parents but %d ranks", shape.parents_size(), shape.ranks_size()));
  }
  if (shape.parents_size() > max_nodes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree shape has %d nodes, more than the limit of %d", shape.parents_size(), max_nodes));
  }
  for (int i = 0; i < shape.parents_size(); ++i) {
    if (shape.parents(i) < -1 || shape.parents(i) >= i) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "tree shape node %d: parent %d must be -1 (the root) or an earlier node", i,
          shape.parents(i)));
    }
    if (shape.ranks(i) < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tree shape node %d: rank %d must be >= 0", i, shape.ranks(i)));
    }
  }
  out->parents.assign(shape.parents().begin(), shape.parents().end());
  out->ranks.assign(shape.ranks().begin(), shape.ranks().end());
  return absl::OkStatus();
}

void ToProto(const std::vector<std::vector<TokenProb>>& q,
             google::protobuf::RepeatedPtrField<v1::NodeDistribution>* out) {
  out->Clear();
  out->Reserve(static_cast<int>(q.size()));
  for (const std::vector<TokenProb>& node : q) {
    v1::NodeDistribution* d = out->Add();
    d->mutable_tokens()->Reserve(static_cast<int>(node.size()));
    d->mutable_probs()->Reserve(static_cast<int>(node.size()));
    for (const TokenProb& tp : node) {
      d->add_tokens(tp.token);
      d->add_probs(tp.prob);
    }
  }
}

absl::Status FromProto(const google::protobuf::RepeatedPtrField<v1::NodeDistribution>& q,
                       int vocab_size, std::vector<std::vector<TokenProb>>* out) {
  out->assign(q.size(), {});
  for (int n = 0; n < q.size(); ++n) {
    const v1::NodeDistribution& d = q.Get(n);
    if (d.tokens_size() != d.probs_size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("draft distribution %d has %d tokens but %d probabilities", n,
                          d.tokens_size(), d.probs_size()));
    }
    for (int i = 0; i < d.tokens_size(); ++i) {
      if (d.tokens(i) < 0 || d.tokens(i) >= vocab_size) {
        return absl::InvalidArgumentError(
            absl::StrFormat("draft distribution %d: token %d is outside the vocabulary [0, %d)",
                            n, d.tokens(i), vocab_size));
      }
      if (!std::isfinite(d.probs(i)) || d.probs(i) < 0 || d.probs(i) > 1) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "draft distribution %d: probability %g must be in [0, 1]", n, d.probs(i)));
      }
      (*out)[n].push_back({d.tokens(i), d.probs(i)});
    }
  }
  return absl::OkStatus();
}

void ToProto(const absl::Status& status, v1::ItemStatus* out) {
  out->set_code(static_cast<int>(status.code()));
  out->set_message(std::string(status.message()));
}

uint64_t VocabularyFingerprint(const std::vector<std::string>& pieces) {
  uint64_t h = 1469598103934665603ull;
  for (const std::string& piece : pieces) {
    for (unsigned char c : piece) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0;
    h *= 1099511628211ull;
  }
  return h;
}

void ToProto(const TokenLogprobs& logprobs, v1::TokenLogprobs* out) {
  out->set_logprob(logprobs.logprob);
  for (const TokenLogprob& t : logprobs.top) {
    out->add_top_tokens(t.token);
    out->add_top_logprobs(t.logprob);
  }
}

TokenLogprobs FromProto(const v1::TokenLogprobs& logprobs) {
  TokenLogprobs out;
  out.logprob = logprobs.logprob();
  const int n = std::min(logprobs.top_tokens_size(), logprobs.top_logprobs_size());
  for (int i = 0; i < n; ++i) out.top.push_back({logprobs.top_tokens(i), logprobs.top_logprobs(i)});
  return out;
}

}  // namespace specserve
