#include "services/proto_convert.h"

#include <cmath>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
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
    return absl::InvalidArgumentError(absl::StrFormat("tree has %d tokens but %d parents",
                                                      tree.tokens_size(), tree.parents_size()));
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
    return absl::InvalidArgumentError(absl::StrFormat("tree shape has %d parents but %d ranks",
                                                      shape.parents_size(), shape.ranks_size()));
  }
  if (shape.parents_size() > max_nodes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "tree shape has %d nodes, more than the limit of %d", shape.parents_size(), max_nodes));
  }
  for (int i = 0; i < shape.parents_size(); ++i) {
    if (shape.parents(i) < -1 || shape.parents(i) >= i) {
      return absl::InvalidArgumentError(
          absl::StrFormat("tree shape node %d: parent %d must be -1 (the root) or an earlier node",
                          i, shape.parents(i)));
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
            absl::StrFormat("draft distribution %d: token %d is outside the vocabulary [0, %d)", n,
                            d.tokens(i), vocab_size));
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

absl::Status FromProto(const v1::ItemStatus& status) {
  int code = status.code();
  if (code == 0) return absl::OkStatus();
  if (code < 0 || code > 16) code = static_cast<int>(absl::StatusCode::kUnknown);
  return absl::Status(static_cast<absl::StatusCode>(code), status.message());
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

CostPrior PriorFrom(const v1::WorkerInfo& target, const v1::WorkerInfo& draft) {
  CostPrior p;
  p.target_weight_bytes = target.weight_bytes();
  p.target_flops_per_token = target.flops_per_token();
  p.target_kv_bytes_per_token = target.kv_bytes_per_token();
  p.draft_weight_bytes = draft.weight_bytes();
  p.draft_flops_per_token = draft.flops_per_token();
  p.draft_kv_bytes_per_token = draft.kv_bytes_per_token();
  p.draft_window_tokens = draft.window_tokens();
  return p;
}

// ---------------------------------------------------------------------------
// Worker side.

namespace {

// An item's error, naming it and its sequence; the code is kept.
absl::Status ItemError(int i, int64_t sequence_id, const absl::Status& s) {
  return absl::Status(s.code(),
                      absl::StrFormat("item %d (sequence %d): %s", i, sequence_id, s.message()));
}

// Checks shared by both requests: the batch size, one item per sequence, the
// history's length. `what` names the call ("Propose").
template <typename Item>
absl::Status CheckItems(const google::protobuf::RepeatedPtrField<Item>& items,
                        const WorkerLimits& limits, const char* what) {
  if (items.size() > limits.max_batch) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("%d items in one %s; this worker takes at most %d (--max-batch)",
                        items.size(), what, limits.max_batch));
  }
  std::set<int64_t> ids;
  for (int i = 0; i < items.size(); ++i) {
    const Item& in = items.Get(i);
    if (!ids.insert(in.sequence_id()).second) {
      return ItemError(i, in.sequence_id(),
                       absl::InvalidArgumentError(
                           absl::StrFormat("the sequence appears twice in one %s", what)));
    }
    if (in.tokens_size() > limits.max_history) {
      return ItemError(i, in.sequence_id(),
                       absl::OutOfRangeError(absl::StrFormat(
                           "%d history tokens, more than the limit of %d (--max-context)",
                           in.tokens_size(), limits.max_history)));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FromProto(const v1::ProposeRequest& request, const WorkerLimits& limits,
                       ProposeBatch* out) {
  if (absl::Status st = CheckItems(request.items(), limits, "Propose"); !st.ok()) return st;
  const int n = request.items_size();
  out->shapes.assign(n, {});
  out->items.assign(n, {});
  for (int i = 0; i < n; ++i) {
    const v1::ProposeItem& in = request.items(i);
    if (absl::Status s = FromProto(in.shape(), limits.max_tree_nodes, &out->shapes[i]); !s.ok()) {
      return ItemError(i, in.sequence_id(), s);
    }
    ProposeItem& item = out->items[i];
    item.router = request.router_instance();
    item.sequence_id = in.sequence_id();
    item.start = in.start();
    item.tokens = std::span<const int32_t>(in.tokens().data(), in.tokens_size());
    item.prefix_hash = in.prefix_hash();
    item.previous_accepted =
        std::span<const int32_t>(in.previous_accepted().data(), in.previous_accepted_size());
    item.shape = &out->shapes[i];
    item.sampling = FromProto(in.sampling());
    item.ahead = in.ahead();
  }
  return absl::OkStatus();
}

void ToProto(std::span<const ProposeOutput> outputs, std::span<const PassTime> passes,
             v1::ProposeResponse* out) {
  for (const ProposeOutput& o : outputs) {
    v1::ProposeResult* r = out->add_results();
    ToProto(o.status, r->mutable_status());
    if (!o.status.ok()) continue;
    ToProto(o.tree, r->mutable_tree());
    ToProto(o.q, r->mutable_q());
    r->set_from_ahead(o.from_ahead);
  }
  for (const PassTime& p : passes) {
    v1::DraftPass* pass = out->add_passes();
    pass->set_tokens_per_sequence(p.tokens_per_sequence);
    pass->set_seconds(p.seconds);
  }
}

absl::Status FromProto(const v1::VerifyRequest& request, const WorkerLimits& limits,
                       VerifyBatch* out) {
  if (absl::Status st = CheckItems(request.items(), limits, "Verify"); !st.ok()) return st;
  const int n = request.items_size();
  out->trees.assign(n, {});
  out->qs.assign(n, {});
  out->items.assign(n, {});
  for (int i = 0; i < n; ++i) {
    const v1::VerifyItem& in = request.items(i);
    if (in.kind() != v1::VERIFY_KIND_VERIFY && in.kind() != v1::VERIFY_KIND_PREFILL) {
      return ItemError(i, in.sequence_id(),
                       absl::InvalidArgumentError(
                           absl::StrFormat("unknown kind %d", static_cast<int>(in.kind()))));
    }
    if (absl::Status s = FromProto(in.tree(), limits.max_tree_nodes, &out->trees[i]); !s.ok()) {
      return ItemError(i, in.sequence_id(), s);
    }
    if (absl::Status s = FromProto(in.q(), limits.vocab_size, &out->qs[i]); !s.ok()) {
      return ItemError(i, in.sequence_id(), s);
    }
    VerifyItem& item = out->items[i];
    item.router = request.router_instance();
    item.sequence_id = in.sequence_id();
    item.kind = in.kind() == v1::VERIFY_KIND_PREFILL ? VerifyKind::kPrefill : VerifyKind::kVerify;
    item.start = in.start();
    item.tokens = std::span<const int32_t>(in.tokens().data(), in.tokens_size());
    item.prefix_hash = in.prefix_hash();
    item.tree = &out->trees[i];
    item.q = in.q_size() > 0 ? &out->qs[i] : nullptr;
    item.sampling = FromProto(in.sampling());
    item.top_logprobs = std::min(in.logprobs(), kMaxTopLogprobs + 1) - 1;
  }
  return absl::OkStatus();
}

void ToProto(std::span<const VerifyOutput> outputs, v1::VerifyResponse* out) {
  for (const VerifyOutput& o : outputs) {
    v1::VerifyResult* r = out->add_results();
    ToProto(o.status, r->mutable_status());
    r->set_cached_tokens(o.cached_tokens);
    if (!o.status.ok()) continue;
    r->mutable_accepted()->Assign(o.result.accepted.begin(), o.result.accepted.end());
    r->set_extra_token(o.result.extra_token);
    r->mutable_visited_children()->Assign(o.result.visited_children.begin(),
                                          o.result.visited_children.end());
    r->mutable_accepted_rank()->Assign(o.result.accepted_rank.begin(),
                                       o.result.accepted_rank.end());
    for (const TokenLogprobs& lp : o.logprobs) ToProto(lp, r->add_logprobs());
  }
}

// ---------------------------------------------------------------------------
// Router side.

void ToProto(std::span<const ProposeItem> items, uint64_t router_instance,
             v1::ProposeRequest* out) {
  out->set_router_instance(router_instance);
  out->mutable_items()->Reserve(static_cast<int>(items.size()));
  for (const ProposeItem& item : items) {
    v1::ProposeItem* p = out->add_items();
    p->set_sequence_id(item.sequence_id);
    p->set_start(item.start);
    p->mutable_tokens()->Assign(item.tokens.begin(), item.tokens.end());
    p->set_prefix_hash(item.prefix_hash);
    p->mutable_previous_accepted()->Assign(item.previous_accepted.begin(),
                                           item.previous_accepted.end());
    if (item.shape != nullptr) ToProto(*item.shape, p->mutable_shape());
    *p->mutable_sampling() = ToProto(item.sampling);
    p->set_ahead(item.ahead);
  }
}

absl::Status FromProto(const v1::ProposeResponse& response, std::span<const ProposeItem> items,
                       int vocab_size, std::vector<ProposeOutput>* outputs,
                       std::vector<PassTime>* passes) {
  outputs->clear();
  passes->clear();
  if (response.results_size() != static_cast<int>(items.size())) {
    return absl::InternalError(absl::StrCat("the draft answered ", response.results_size(),
                                            " results for ", items.size(), " items"));
  }
  outputs->resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::ProposeResult& r = response.results(static_cast<int>(i));
    ProposeOutput& out = (*outputs)[i];
    out.status = FromProto(r.status());
    if (!out.status.ok()) continue;
    out.from_ahead = r.from_ahead();
    out.tree.tokens.assign(r.tree().tokens().begin(), r.tree().tokens().end());
    out.tree.parents.assign(r.tree().parents().begin(), r.tree().parents().end());
    const int limit = items[i].shape != nullptr ? items[i].shape->speculated() : 0;
    if (absl::Status bad = ValidateTree(out.tree, {limit, 64, vocab_size}); !bad.ok()) {
      out.status = absl::InternalError(
          absl::StrCat("the draft returned a bad tree: ", std::string(bad.message())));
      continue;
    }
    out.q.assign(r.q_size(), {});
    for (int n = 0; n < r.q_size(); ++n) {
      const v1::NodeDistribution& d = r.q(n);
      const int k = std::min(d.tokens_size(), d.probs_size());
      for (int j = 0; j < k; ++j) out.q[n].push_back({d.tokens(j), d.probs(j)});
    }
    if (!items[i].sampling.greedy() && out.tree.size() > 0 &&
        out.q.size() != static_cast<size_t>(out.tree.size()) + 1) {
      out.status = absl::InternalError("the draft returned no distribution for a sampled tree");
    }
  }
  for (const v1::DraftPass& p : response.passes()) {
    passes->push_back({p.tokens_per_sequence(), p.seconds()});
  }
  return absl::OkStatus();
}

void ToProto(std::span<const VerifyItem> items, uint64_t router_instance, v1::VerifyRequest* out) {
  out->set_router_instance(router_instance);
  out->mutable_items()->Reserve(static_cast<int>(items.size()));
  for (const VerifyItem& item : items) {
    v1::VerifyItem* v = out->add_items();
    v->set_sequence_id(item.sequence_id);
    v->set_kind(item.kind == VerifyKind::kPrefill ? v1::VERIFY_KIND_PREFILL
                                                  : v1::VERIFY_KIND_VERIFY);
    v->set_start(item.start);
    v->mutable_tokens()->Assign(item.tokens.begin(), item.tokens.end());
    v->set_prefix_hash(item.prefix_hash);
    if (item.tree != nullptr) ToProto(*item.tree, v->mutable_tree());
    if (item.q != nullptr && item.tree != nullptr && item.tree->size() > 0) {
      ToProto(*item.q, v->mutable_q());
    }
    *v->mutable_sampling() = ToProto(item.sampling);
    v->set_logprobs(item.top_logprobs + 1);
  }
}

absl::Status FromProto(const v1::VerifyResponse& response, std::span<const VerifyItem> items,
                       int vocab_size, std::vector<VerifyOutput>* outputs) {
  outputs->clear();
  if (response.results_size() != static_cast<int>(items.size())) {
    return absl::InternalError(absl::StrCat("the target answered ", response.results_size(),
                                            " results for ", items.size(), " items"));
  }
  outputs->resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    const v1::VerifyResult& r = response.results(static_cast<int>(i));
    VerifyOutput& out = (*outputs)[i];
    out.status = FromProto(r.status());
    out.cached_tokens = r.cached_tokens();
    if (!out.status.ok()) continue;
    // The engine indexes the tree with these: a bad answer fails the call.
    const int nodes = items[i].tree != nullptr ? items[i].tree->size() : 0;
    for (int32_t node : r.accepted()) {
      if (node < 0 || node >= nodes) {
        return absl::InternalError(
            absl::StrCat("the target accepted node ", node, " of a tree of ", nodes, " nodes"));
      }
    }
    if (items[i].kind == VerifyKind::kVerify &&
        (r.extra_token() < 0 || (vocab_size > 0 && r.extra_token() >= vocab_size))) {
      return absl::InternalError(
          absl::StrCat("the target returned token ", r.extra_token(), " outside the vocabulary"));
    }
    out.result.accepted.assign(r.accepted().begin(), r.accepted().end());
    out.result.extra_token = r.extra_token();
    out.result.visited_children.assign(r.visited_children().begin(), r.visited_children().end());
    out.result.accepted_rank.assign(r.accepted_rank().begin(), r.accepted_rank().end());
    for (const v1::TokenLogprobs& lp : r.logprobs()) out.logprobs.push_back(FromProto(lp));
  }
  return absl::OkStatus();
}

}  // namespace specserve
