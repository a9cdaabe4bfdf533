// llama.cpp (prebuilt, through node-llama-cpp) as the oracle for a GGUF model:
//   node llama_cpp_oracle.mjs REQUEST.json
// REQUEST: {"model": path, "prompt": [ids], "generate": N, "logit_ids": [ids] | null,
//           "tokenize": [texts] | null, "context": C}
// Evaluates the prompt, then greedily generates N tokens (argmax of llama.cpp's own
// logits, fed back one at a time). Prints JSON:
//   {"tokens": [N generated ids],
//    "logits": [[logit of each logit_ids entry (all ids when null)] for the prompt's
//               last token and each generated token but the last],
//    "tokenized": [[ids] per text of "tokenize", special tokens parsed, no BOS]}
// The KV cache is kept in F32 and flash attention off so that the only differences
// from specserve are the order of float operations.
import fs from "node:fs";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";

const request = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
const model = await llama.loadModel({ modelPath: request.model });
const out = { tokens: [], logits: [], tokenized: [] };
for (const text of request.tokenize ?? []) {
  out.tokenized.push(Array.from(model.tokenize(text, true)));
}
if ((request.generate ?? 0) > 0) {
  const context = await model.createContext({
    contextSize: request.context ?? 1024,
    batchSize: 512,
    threads: 2,
    flashAttention: false,
    swaFullCache: true,
    experimentalKvCacheKeyType: "F32",
    experimentalKvCacheValueType: "F32",
  });
  const sequence = context.getSequence();
  const vocab = model.tokens.vocabularySize ?? model.fileInsights?.vocabularySize;
  const ids = request.logit_ids ?? null;
  const logitsOptions = ids ? { filter: { tokens: ids, includeMax: true } } : true;
  const next = (tokens) => sequence.controlledEvaluate(
      tokens.map((t, i) => (i === tokens.length - 1 ? [t, { generateNext: { logits: logitsOptions } }] : t)));
  let results = await next(request.prompt);
  for (let step = 0; step < request.generate; ++step) {
    const logits = results[results.length - 1].next.logits;
    let best = -1, bestValue = -Infinity;
    for (const [token, value] of logits) {
      if (value > bestValue || (value === bestValue && token < best)) {
        best = token;
        bestValue = value;
      }
    }
    const wanted = ids ?? Array.from({ length: logits.size }, (_, i) => i);
    out.logits.push(wanted.map((t) => logits.get(t)));
    out.tokens.push(best);
    if (step + 1 < request.generate) results = await next([best]);
  }
  await context.dispose();
}
await model.dispose();
process.stdout.write(JSON.stringify(out));
