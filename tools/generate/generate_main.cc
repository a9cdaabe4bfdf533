// specserve-generate: load a model, encode a prompt (or many), decode.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_format.h"
#include "common/engine/batch_generator.h"
#include "common/engine/model_factory.h"
#include "common/model/model_loader.h"
#include "common/speculation/spec_engine.h"
#include "common/tokenizer/tokenizer.h"
#include "common/util/cli.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(std::string, model, "",
          "Model: a GGUF file, a llama2.c .bin checkpoint or a Hugging Face directory");
ABSL_FLAG(std::string, tokenizer, "",
          "llama2.c tokenizer.bin for a .bin model (default: tokenizer.bin or tok*.bin beside it)");
ABSL_FLAG(std::string, prompt, "Once upon a time", "Prompt text");
ABSL_FLAG(std::string, prompts, "", "File with one prompt per line (a batch of all of them)");
ABSL_FLAG(int, batch, 1, "Decode this many copies of --prompt at once (seeds seed, seed+1, ...)");
ABSL_FLAG(int, n, 128, "Maximum new tokens per sequence (stops earlier at EOS)");
ABSL_FLAG(float, temperature, 0.0f, "Sampling temperature; 0 = greedy");
ABSL_FLAG(int, top_k, 0, "Keep the k most likely tokens (0 = off)");
ABSL_FLAG(float, top_p, 1.0f, "Nucleus sampling mass (1 = off)");
ABSL_FLAG(uint64_t, seed, 0, "Random seed");
ABSL_FLAG(int, threads, 0, "CPU threads (0 = all cores)");
ABSL_FLAG(bool, json, false, "Print one JSON object on the last line instead of text");
ABSL_FLAG(bool, ignore_eos, false, "Keep generating after EOS");
ABSL_FLAG(std::string, draft, "self",
          "Drafter: 'self' (the target's own weights with a window KV cache holding the "
          "target's rows, MagicDec), 'self:own' (the same, but the draft computes its window's "
          "rows itself, as a separate draft service does), 'ngram' (prompt lookup: "
          "continuations found earlier in the prompt and output, no model) or a model file with "
          "the target's vocabulary (e.g. a Q8_0/Q4_0 copy)");
ABSL_FLAG(std::string, device, "cpu", "Where the models run: cpu or cuda");
ABSL_FLAG(int, tensor_parallel, 1,
          "Shard the target over this many ranks (CPU: threads; CUDA: GPUs, NCCL)");
ABSL_FLAG(std::string, kv_type, "f32",
          "KV cache element type on the CPU: f32, or bf16 (half the bytes per decode step; "
          "attention in bf16 products, q and p rounded to bf16)");
ABSL_FLAG(int, sinks, 16, "Draft window cache: attention-sink tokens kept");
ABSL_FLAG(int, window, 256, "Draft window cache: most recent tokens kept");
ABSL_FLAG(std::string, spec, "auto",
          "Speculation: off, chain:G (a chain of G drafted tokens), tree:N (a Sequoia tree of "
          "N nodes) or auto (the planner picks the tree from measured costs)");

namespace specserve {
namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "error: %s\n", message.c_str());
  return 1;
}

int Run() {
  const std::string model_path = absl::GetFlag(FLAGS_model);
  if (model_path.empty()) {
    return Fail("--model is required (a GGUF file, a llama2.c .bin or a Hugging Face directory)");
  }
  const int n = absl::GetFlag(FLAGS_n);
  if (n < 0) return Fail(absl::StrFormat("-n %d must be >= 0", n));
  const int batch = absl::GetFlag(FLAGS_batch);
  if (batch < 1 || batch > 4096)
    return Fail(absl::StrFormat("--batch %d must be in [1, 4096]", batch));
  const bool json = absl::GetFlag(FLAGS_json);

  std::vector<std::string> prompts;
  if (const std::string file = absl::GetFlag(FLAGS_prompts); !file.empty()) {
    std::ifstream in(file);
    if (!in) return Fail(absl::StrFormat("cannot open --prompts file '%s'", file));
    for (std::string line; std::getline(in, line);) {
      if (!line.empty()) prompts.push_back(line);
    }
    if (prompts.empty()) return Fail(absl::StrFormat("--prompts file '%s' has no prompts", file));
  } else {
    prompts.assign(batch, absl::GetFlag(FLAGS_prompt));
  }

  const auto load_start = std::chrono::steady_clock::now();
  LoadOptions load_options;
  load_options.tokenizer_path = absl::GetFlag(FLAGS_tokenizer);
  auto model = LoadModel(model_path, load_options);
  if (!model.ok()) return Fail(std::string(model.status().message()));
  const double load_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  const ModelConfig& config = (*model)->config;
  BackendOptions backend;
  backend.device = absl::GetFlag(FLAGS_device);
  backend.threads = absl::GetFlag(FLAGS_threads);
  backend.tensor_parallel = absl::GetFlag(FLAGS_tensor_parallel);
  backend.kv_type = absl::GetFlag(FLAGS_kv_type);
  auto target = MakeModel(**model, backend);
  if (!target.ok()) return Fail(std::string(target.status().message()));
  std::fprintf(stderr, "loaded %s (%s, dim %d, %d layers, vocab %d) in %.2f s on %s\n",
               model_path.c_str(), (*model)->format.c_str(), config.dim, config.n_layers,
               config.vocab_size, load_seconds, (*target)->description().c_str());

  Tokenizer tokenizer((*model)->vocab);
  // The draft: the target itself (self), a separate model file, or no model (ngram).
  const std::string draft_flag = absl::GetFlag(FLAGS_draft);
  std::unique_ptr<LoadedModel> draft_model;
  std::unique_ptr<Model> draft_llama;
  if (!IsSelfDraft(draft_flag) && draft_flag != "ngram") {
    auto loaded = LoadModel(draft_flag, load_options);
    if (!loaded.ok()) {
      return Fail(absl::StrFormat("--draft '%s' is not self, self:own, ngram or a model file: %s",
                                  draft_flag, loaded.status().message()));
    }
    draft_model = *std::move(loaded);
    BackendOptions draft_backend = backend;
    draft_backend.tensor_parallel = 1;
    auto made = MakeModel(*draft_model, draft_backend);
    if (!made.ok()) return Fail(absl::StrFormat("--draft: %s", made.status().message()));
    draft_llama = *std::move(made);
  }
  SpecEngineOptions spec_options;
  auto spec = ParseSpecMode(absl::GetFlag(FLAGS_spec));
  if (!spec.ok()) return Fail(absl::StrFormat("--spec: %s", spec.status().message()));
  spec_options.spec = *spec;
  spec_options.sinks = absl::GetFlag(FLAGS_sinks);
  spec_options.window = absl::GetFlag(FLAGS_window);
  spec_options.drafter = DrafterKindOf(draft_flag);
  spec_options.draft_takes_target_rows = !SelfDraftKeepsOwnRows(draft_flag);
  // One batch known up front: the decode figures are for the whole batch.
  spec_options.prefill_before_decode = true;
  auto engine = SpecEngine::Create(**target, draft_llama ? *draft_llama : **target, spec_options);
  if (!engine.ok()) return Fail(std::string(engine.status().message()));
  SpecEngine& generator = **engine;
  SamplingParams sampling;
  sampling.temperature = absl::GetFlag(FLAGS_temperature);
  sampling.top_k = absl::GetFlag(FLAGS_top_k);
  sampling.top_p = absl::GetFlag(FLAGS_top_p);
  std::vector<int> ids;
  for (size_t i = 0; i < prompts.size(); ++i) {
    GenerationRequest request;
    request.prompt = tokenizer.Encode(prompts[i], tokenizer.vocab().add_bos);
    request.max_new_tokens = n;
    request.sampling = sampling;
    request.sampling.seed = absl::GetFlag(FLAGS_seed) + i;
    request.stop_at_eos = !absl::GetFlag(FLAGS_ignore_eos);
    auto id = generator.Add(request);
    if (!id.ok()) return Fail(absl::StrFormat("prompt %d: %s", i, id.status().message()));
    ids.push_back(*id);
  }

  // With one sequence the text streams as it is generated.
  const bool stream = !json && ids.size() == 1;
  StreamingDecoder streamer(tokenizer);
  size_t printed = generator.state(ids[0]).tokens.size();
  if (stream) {
    // The prompt's tokens go through the decoder too, so its state (leading-space
    // handling, partial characters) is that of the whole sequence.
    for (size_t i = 0; i < printed; ++i) streamer.Push(generator.state(ids[0]).tokens[i]);
    std::fputs(prompts[0].c_str(), stdout);
    std::fflush(stdout);
  }
  const auto gen_start = std::chrono::steady_clock::now();
  while (generator.HasLive()) {
    if (absl::Status st = generator.Step(); !st.ok()) return Fail(std::string(st.message()));
    if (stream) {
      const std::vector<int32_t>& tokens = generator.state(ids[0]).tokens;
      for (; printed < tokens.size(); ++printed)
        std::fputs(streamer.Push(tokens[printed]).c_str(), stdout);
      std::fflush(stdout);
    }
  }
  const double total_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - gen_start).count();

  for (size_t i = 0; i < ids.size(); ++i) {
    if (generator.state(ids[i]).finish == FinishReason::kError) {
      return Fail(absl::StrFormat("sequence %d: %s", i, generator.state(ids[i]).error));
    }
  }
  int64_t prompt_tokens = 0, generated_tokens = 0;
  std::vector<std::vector<int32_t>> prompt_ids, generated_ids;
  std::vector<std::string> texts;
  for (int id : ids) {
    const SequenceState& st = generator.state(id);
    prompt_ids.emplace_back(st.tokens.begin(), st.tokens.begin() + st.prompt_tokens);
    generated_ids.emplace_back(st.tokens.begin() + st.prompt_tokens, st.tokens.end());
    prompt_tokens += st.prompt_tokens;
    generated_tokens += st.generated();
    auto text = tokenizer.Decode(st.tokens);
    texts.push_back(text.ok() ? *text : std::string());
  }
  const double decode_tps = generator.decode_seconds() > 0
                                ? generator.decoded_tokens() / generator.decode_seconds()
                                : 0.0;
  const double prefill_tps = generator.prefill_seconds() > 0
                                 ? generator.prefill_tokens() / generator.prefill_seconds()
                                 : 0.0;
  if (json) {
    nlohmann::json out;
    const bool batched = ids.size() > 1;
    out["prompt_ids"] = batched ? nlohmann::json(prompt_ids) : nlohmann::json(prompt_ids[0]);
    out["ids"] = batched ? nlohmann::json(generated_ids) : nlohmann::json(generated_ids[0]);
    out["text"] = batched ? nlohmann::json(texts) : nlohmann::json(texts[0]);
    std::vector<std::string> reasons;
    for (int id : ids) reasons.push_back(FinishReasonName(generator.state(id).finish));
    out["finish_reason"] = batched ? nlohmann::json(reasons) : nlohmann::json(reasons[0]);
    out["prompt_tokens"] = prompt_tokens;
    out["generated_tokens"] = generated_tokens;
    out["spec"] = SpecModeName(spec_options.spec);
    out["draft"] = draft_flag;
    out["device"] = (*target)->description();
    out["mean_accepted_per_step"] = generator.mean_accepted_per_step();
    out["mean_tokens_per_step"] = generator.mean_tokens_per_step();
    out["timings"] = {{"load_seconds", load_seconds},
                      {"total_seconds", total_seconds},
                      {"prefill_seconds", generator.prefill_seconds()},
                      {"decode_seconds", generator.decode_seconds()},
                      {"prefill_tokens_per_second", prefill_tps},
                      {"decode_tokens_per_second", decode_tps}};
    std::printf("%s\n", out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    return 0;
  }
  if (stream) {
    std::fputs(streamer.Finish().c_str(), stdout);
    std::fputs("\n", stdout);
  } else {
    for (size_t i = 0; i < texts.size(); ++i) std::printf("[%zu] %s\n", i, texts[i].c_str());
  }
  std::printf(
      "prompt tokens: %lld, generated tokens: %lld, decode: %.1f tokens/s, prefill: %.1f "
      "tokens/s, speculation %s: %.2f tokens per step\n",
      static_cast<long long>(prompt_tokens), static_cast<long long>(generated_tokens), decode_tps,
      prefill_tps, SpecModeName(spec_options.spec).c_str(), generator.mean_tokens_per_step());
  return 0;
}

}  // namespace
}  // namespace specserve

int main(int argc, char** argv) {
  specserve::ParseCommandLine(
      argc, argv,
      "Generates text with a Llama-family model.\n"
      "  specserve-generate --model MODEL.gguf --prompt \"Once upon a time\" -n 64\n"
      "  specserve-generate --model model.bin --tokenizer tok.bin --prompts prompts.txt --json");
  return specserve::Run();
}
