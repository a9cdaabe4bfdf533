#!/usr/bin/env node
// Drives the specserve public API (specserve.v1.Generation) from
// proto/specserve/v1/generation.proto alone, with @grpc/grpc-js and
// @grpc/proto-loader: no generated code and nothing of the C++ tree.
//
//   node client_test.js HOST:PORT [--prompt-ids=ID,ID,...] [--expect=ID,ID,...]
//                                 [--max-new-tokens=N] [--speculation=MODE]
//
// Checks ModelInfo, Tokenize, Detokenize, Generate and GenerateStream: streamed
// greedy tokens equal the unary result (in several speculation modes), and bad
// input gets INVALID_ARGUMENT with a message. With --prompt-ids and --expect, the
// greedy continuation of that prompt must be exactly the expected ids (a
// reference computed by the caller). Prints one line per check and exits 0 when
// every check passes, 1 otherwise.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const PROTO_ROOT = path.resolve(__dirname, '..', '..', '..', 'proto');
const PROTO_FILE = 'specserve/v1/generation.proto';
const DEADLINE_SECONDS = 60;

function parseArgs(argv) {
  const options = {
    address: '',
    promptIds: null,
    expect: null,
    maxNewTokens: 24,
    speculation: '',
  };
  const ids = (text) => text.split(',').filter((s) => s !== '').map(Number);
  for (const arg of argv) {
    const [name, value] = arg.split(/=(.*)/s, 2);
    if (name === '--prompt-ids') {
      options.promptIds = ids(value);
    } else if (name === '--expect') {
      options.expect = ids(value);
    } else if (name === '--max-new-tokens') {
      options.maxNewTokens = Number(value);
    } else if (name === '--speculation') {
      options.speculation = value;
    } else if (!arg.startsWith('--') && options.address === '') {
      options.address = arg;
    } else {
      throw new Error(`unknown argument '${arg}'`);
    }
  }
  if (options.address === '') throw new Error('usage: client_test.js HOST:PORT [options]');
  if ((options.promptIds === null) !== (options.expect === null)) {
    throw new Error('--prompt-ids and --expect go together');
  }
  if (options.expect !== null) options.maxNewTokens = options.expect.length;
  return options;
}

function loadGenerationService() {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    includeDirs: [PROTO_ROOT],
    keepCase: true,  // field names as written in the .proto
    longs: String,
    enums: String,   // FinishReason as its name
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).specserve.v1.Generation;
}

function deadline() {
  return new Date(Date.now() + DEADLINE_SECONDS * 1000);
}

// A unary call as a promise.
function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, {deadline: deadline()}, (error, response) => {
      if (error) reject(error);
      else resolve(response);
    });
  });
}

// A GenerateStream call collected: tokens, text, message count and final stats.
function stream(client, request) {
  return new Promise((resolve, reject) => {
    const result = {tokens: [], text: '', messages: 0, final: null};
    const call = client.GenerateStream(request, {deadline: deadline()});
    call.on('data', (message) => {
      result.messages += 1;
      result.tokens.push(...message.tokens);
      result.text += message.text;
      if (message.final) result.final = message.final;
    });
    call.on('error', reject);
    call.on('end', () => resolve(result));
  });
}

function sameIds(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

class Checks {
  constructor() {
    this.failed = 0;
    this.passed = 0;
  }
  check(ok, what, detail = '') {
    if (ok) {
      this.passed += 1;
      console.log(`ok    ${what}`);
    } else {
      this.failed += 1;
      console.log(`FAIL  ${what}${detail ? ': ' + detail : ''}`);
    }
    return ok;
  }
}

function tokenRequest(ids, maxNewTokens, speculation) {
  return {
    tokens: {ids},
    max_new_tokens: maxNewTokens,
    ignore_eos: true,
    speculation,
  };
}

// Unary and streamed greedy generation of `request` agree token for token.
async function checkStreamEqualsUnary(client, checks, request, label) {
  const unaryResponse = await unary(client, 'Generate', request);
  const streamed = await stream(client, request);
  const n = request.max_new_tokens;
  checks.check(unaryResponse.tokens.length === n && unaryResponse.stats.generated_tokens === n,
      `${label}: Generate returns ${n} tokens`,
      `${unaryResponse.tokens.length} tokens, stats ${unaryResponse.stats.generated_tokens}`);
  checks.check(unaryResponse.stats.finish_reason === 'FINISH_REASON_LENGTH',
      `${label}: finish reason LENGTH`, unaryResponse.stats.finish_reason);
  checks.check(sameIds(streamed.tokens, unaryResponse.tokens),
      `${label}: streamed tokens equal the unary result`,
      `stream [${streamed.tokens}] vs unary [${unaryResponse.tokens}]`);
  checks.check(streamed.text === unaryResponse.text,
      `${label}: streamed text equals the unary text`,
      `${JSON.stringify(streamed.text)} vs ${JSON.stringify(unaryResponse.text)}`);
  checks.check(streamed.final !== null && streamed.final.generated_tokens === n,
      `${label}: the last stream message carries the stats`);
  checks.check(streamed.messages > 2, `${label}: tokens arrive over several messages`,
      `${streamed.messages} messages`);
  return unaryResponse;
}

// `call` fails with INVALID_ARGUMENT and a message mentioning `mentions`.
async function checkInvalid(checks, what, call, mentions) {
  try {
    await call();
    checks.check(false, `${what}: INVALID_ARGUMENT`, 'the call succeeded');
  } catch (error) {
    const code = grpc.status[error.code] || String(error.code);
    const message = error.details || '';
    checks.check(error.code === grpc.status.INVALID_ARGUMENT && message.includes(mentions),
        `${what}: INVALID_ARGUMENT "${message}"`,
        `got ${code} "${message}", expected a message mentioning '${mentions}'`);
  }
}

async function run(options) {
  const Generation = loadGenerationService();
  const client = new Generation(options.address, grpc.credentials.createInsecure());
  const checks = new Checks();

  const info = await unary(client, 'ModelInfo', {});
  checks.check(info.vocab_size > 0 && info.max_context > 0 && info.max_new_tokens_limit > 0,
      `ModelInfo: vocab ${info.vocab_size}, context ${info.max_context}, ` +
      `deployment ${info.deployment}, speculation ${info.speculation}`);

  // Text round trip. Prompt text is `bytes` in the proto: Buffers here.
  const text = 'Once upon a time';
  const tokenized = await unary(client, 'Tokenize', {text: Buffer.from(text), add_bos: true});
  const ids = tokenized.ids;
  checks.check(ids.length > 1 && ids.every((id) => id >= 0 && id < info.vocab_size),
      `Tokenize: ${ids.length} ids in [0, ${info.vocab_size})`, `[${ids}]`);
  checks.check(tokenized.pieces.length === ids.length && Buffer.isBuffer(tokenized.pieces[0]),
      'Tokenize: one piece (bytes) per id');
  checks.check(info.bos_id < 0 || ids[0] === info.bos_id, 'Tokenize: add_bos puts BOS first');
  const withoutBos = info.bos_id >= 0 && ids[0] === info.bos_id ? ids.slice(1) : ids;
  const detokenized = await unary(client, 'Detokenize', {ids: withoutBos});
  checks.check(detokenized.text.trim() === text, 'Detokenize inverts Tokenize',
      JSON.stringify(detokenized.text));

  // Greedy generation: unary == streamed, for a text prompt and for token ids, in
  // several speculation modes (lossless: every mode gives the same tokens).
  const n = options.maxNewTokens;
  const fromText = await checkStreamEqualsUnary(client, checks,
      {text: Buffer.from(text), max_new_tokens: n, ignore_eos: true,
        speculation: options.speculation},
      'text prompt');
  const fromIds = await checkStreamEqualsUnary(client, checks,
      tokenRequest(ids, n, options.speculation), 'token prompt');
  checks.check(sameIds(fromText.tokens, fromIds.tokens),
      'a text prompt and its token ids give the same tokens');
  for (const mode of ['off', 'chain:4', 'auto']) {
    const r = await unary(client, 'Generate', tokenRequest(ids, n, mode));
    checks.check(sameIds(r.tokens, fromIds.tokens), `speculation '${mode}' gives the same tokens`,
        `[${r.tokens}] vs [${fromIds.tokens}]`);
  }
  if (options.expect !== null) {
    const r = await checkStreamEqualsUnary(client, checks,
        tokenRequest(options.promptIds, n, options.speculation), 'given prompt');
    checks.check(sameIds(r.tokens, options.expect),
        'given prompt: greedy tokens equal the expected reference',
        `[${r.tokens}] vs [${options.expect}]`);
  }

  // Seeded sampling is reproducible.
  const sampled = {...tokenRequest(ids, n, 'off'),
    sampling: {temperature: 0.9, top_p: 0.95, top_k: 0, seed: '1234'}};
  const a = await unary(client, 'Generate', sampled);
  const b = await stream(client, sampled);
  checks.check(sameIds(a.tokens, b.tokens), 'seeded sampling: the same tokens twice');

  // Bad input: INVALID_ARGUMENT with a message naming the problem, on both calls.
  const vocab = info.vocab_size;
  await checkInvalid(checks, 'empty text prompt',
      () => unary(client, 'Generate', {text: Buffer.alloc(0)}), 'empty');
  await checkInvalid(checks, 'invalid UTF-8 prompt',
      () => unary(client, 'Generate', {text: Buffer.from([0x61, 0x62, 0xff, 0xfe])}), '0xff');
  await checkInvalid(checks, 'token id outside the vocabulary',
      () => unary(client, 'Generate', tokenRequest([1, vocab], 4, '')), String(vocab));
  await checkInvalid(checks, 'negative max_new_tokens',
      () => unary(client, 'Generate', tokenRequest(ids, -1, '')), 'max_new_tokens');
  await checkInvalid(checks, 'temperature < 0',
      () => unary(client, 'Generate',
          {...tokenRequest(ids, 4, ''), sampling: {temperature: -0.5}}), 'temperature');
  await checkInvalid(checks, 'top_p > 1 (stream)',
      () => stream(client, {...tokenRequest(ids, 4, ''), sampling: {temperature: 0.5, top_p: 1.5}}),
      'top_p');
  await checkInvalid(checks, 'unknown speculation mode (stream)',
      () => stream(client, tokenRequest(ids, 4, 'fast')), "'fast'");
  await checkInvalid(checks, 'Detokenize of an id outside the vocabulary',
      () => unary(client, 'Detokenize', {ids: [vocab + 5]}), String(vocab + 5));

  // Still serving after the refusals.
  const again = await stream(client, tokenRequest(ids, n, options.speculation));
  checks.check(sameIds(again.tokens, fromIds.tokens), 'still serving the same tokens afterwards');

  client.close();
  console.log(`${checks.passed} checks passed, ${checks.failed} failed`);
  return checks.failed === 0;
}

let options;
try {
  options = parseArgs(process.argv.slice(2));
} catch (error) {
  console.error(error.message);
  process.exit(2);
}
run(options).then(
    (ok) => process.exit(ok ? 0 : 1),
    (error) => {
      console.log(`FAIL  unexpected error: ${error.code !== undefined ?
        grpc.status[error.code] + ' ' : ''}${error.details || error.stack}`);
      process.exit(1);
    });
