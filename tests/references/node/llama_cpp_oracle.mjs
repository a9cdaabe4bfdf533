// llama.cpp (prebuilt, through node-llama-cpp) as the oracle for GGUF models:
//   node llama_cpp_oracle.mjs REQUESTS.json
// REQUESTS: one request or an array of them (one reply each, in an array):
//   {"model": path, "prompt": [ids], "generate": N, "logit_ids": [ids] | null,
//    "tokenize": [texts] | null, "context": C}
// Evaluates the prompt, then greedily generates N tokens (llama.cpp's own sampler at
// temperature 0, i.e. its argmax, fed back one at a time). Prints JSON:
//   {"tokens": [N generated ids],
//    "logits": [[logit of each logit_ids entry (all ids when null)] for the prompt's
//               last token and each generated token but the last],
//    "tokenized": [[ids] per text of "tokenize", special tokens parsed, no BOS]}
// The KV cache is kept in F32 and flash attention off so that the only differences
// from specserve are the order of float operations.
import fs from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });

async function run(request) {
const model = await llama.loadModel({ modelPath: request.model });
const out = { tokens: [], logits: [], tokenized: [] };
for (const text of request.tokenize ?? []) {
  out.tokenized.push(Array.from(model.tokenize(text, true)));
}
if ((request.generate ?? 0) > 0) {
  const context = await model.createContext({
    contextSize: request.context ?? 1024,
    batchSize: 512,
    threads: 1,  // llama.cpp's spinning thread pool is slow on a busy 2-core machine
    flashAttention: false,
    swaFullCache: true,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const sequence = context.getSequence();
  const ids = request.logit_ids ?? null;
  const logitsOptions = ids ? { filter: { tokens: ids } } : true;
  const next = (tokens) => sequence.controlledEvaluate(
      tokens.map((t, i) => (i === tokens.length - 1
          ? [t, { generateNext: { token: true, options: { temperature: 0 }, logits: logitsOptions } }]
          : t)));
  let results = await next(request.prompt);
  for (let step = 0; step < request.generate; ++step) {
    const { logits, token: best } = results[results.length - 1].next;  // greedy: argmax
    const wanted = ids ?? Array.from({ length: logits.size }, (_, i) => i);
    out.logits.push(wanted.map((t) => logits.get(t)));
    out.tokens.push(best);
    if (step + 1 < request.generate) results = await next([best]);
  }
  await context.dispose();
}
await model.dispose();
return out;
}

const replies = [];
for (const request of Array.isArray(input) ? input : [input]) replies.push(await run(request));
process.stdout.write(JSON.stringify(Array.isArray(input) ? replies : replies[0]));
