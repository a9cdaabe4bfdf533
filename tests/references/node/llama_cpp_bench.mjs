// llama.cpp's CPU speed on a GGUF, through the same prebuilt library the oracle
// uses (node-llama-cpp), for ratios against specserve-bench in one sitting (there
// is no llama-bench binary in the npm package):
//   node llama_cpp_bench.mjs prefill MODEL.gguf TOKENS THREADS
//     one sequence evaluates TOKENS prompt tokens (batch 512), 5 times: median tok/s
//     (compare: specserve-bench --model MODEL --prefill_tokens TOKENS --threads THREADS)
//   node llama_cpp_bench.mjs batched MODEL.gguf SEQUENCES PROMPT NEW THREADS
//     SEQUENCES sequences prefill PROMPT tokens each, then all feed NEW tokens one at
//     a time concurrently (node-llama-cpp batches them into one llama_decode per
//     step): aggregate decode tok/s, like llama-batched-bench's S_TG
//     (compare: specserve-bench --batches SEQUENCES --contexts PROMPT).
// KV cache F32, flash attention off, as specserve runs. The JavaScript layer adds a
// little per call; at these batch sizes the decode calls dominate.
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const [mode, modelPath, ...rest] = process.argv.slice(2);
const n = rest.map(Number);
if (!["prefill", "batched"].includes(mode) || !modelPath || n.some(Number.isNaN)) {
  console.error("usage: node llama_cpp_bench.mjs prefill MODEL TOKENS THREADS\n" +
                "       node llama_cpp_bench.mjs batched MODEL SEQUENCES PROMPT NEW THREADS");
  process.exit(2);
}
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath });
const common = { batchSize: 512, flashAttention: false, ignoreMemorySafetyChecks: true,
                 experimentalKvCacheKeyType: "F32", experimentalKvCacheValueType: "F32" };
const ids = (count, salt) => Array.from({ length: count }, (_, i) => 1 + (i * 31 + salt * 17) % 500);

if (mode === "prefill") {
  const [tokens, threads] = n;
  const context = await model.createContext({ ...common, contextSize: tokens + 64, threads });
  const sequence = context.getSequence();
  const times = [];
  for (let r = 0; r < 5; ++r) {
    await sequence.clearHistory();
    const t0 = performance.now();
    await sequence.evaluateWithoutGeneratingNewTokens(ids(tokens, 0));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  console.log(`llama.cpp prefill: ${tokens} tokens, ${threads} threads: ` +
              `${(tokens / times[2] * 1000).toFixed(0)} tok/s (median of 5)`);
  await context.dispose();
} else {
  const [sequences, prompt, generate, threads] = n;
  const context = await model.createContext({ ...common, contextSize: prompt + generate + 64,
                                               sequences, threads });
  const all = Array.from({ length: sequences }, () => context.getSequence());
  await Promise.all(all.map((s, i) => s.evaluateWithoutGeneratingNewTokens(ids(prompt, i))));
  const t0 = performance.now();
  await Promise.all(all.map(async (s, i) => {
    for (let k = 0; k < generate; ++k) await s.evaluateWithoutGeneratingNewTokens(ids(1, i + k));
  }));
  const seconds = (performance.now() - t0) / 1000;
  console.log(`llama.cpp batched decode: ${sequences} sequences x ${generate} tokens after ` +
              `${prompt}-token prompts, ${threads} threads: ` +
              `${(sequences * generate / seconds).toFixed(0)} tok/s aggregate`);
  await context.dispose();
}
await model.dispose();
