#!/usr/bin/env node
// Drives specserve's OpenAI-compatible HTTP API with the official `openai` npm client
// (6.x): lists models, creates completions and chat completions (streamed and not)
// with stop strings and seeds, aborts a stream midway and checks through /metrics that
// the server freed the request, and checks the errors the client raises.
//
//   node openai_client_test.js --base-url=http://127.0.0.1:PORT/v1 \
//       --metrics-url=http://127.0.0.1:MPORT/metrics --model=NAME [--expect-greedy=TEXT]
'use strict';

const OpenAI = require('openai');

function parseArgs() {
  const args = {};
  for (const a of process.argv.slice(2)) {
    const m = /^--([^=]+)=(.*)$/s.exec(a);
    if (m) args[m[1]] = m[2];
  }
  for (const key of ['base-url', 'metrics-url', 'model']) {
    if (!args[key]) throw new Error(`--${key} is required`);
  }
  return args;
}

let passed = 0;
let failed = 0;
async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${e && e.stack ? e.stack : e}`);
  }
}
function assert(cond, message) {
  if (!cond) throw new Error(message);
}
function assertEqual(a, b, message) {
  if (a !== b) throw new Error(`${message}: ${JSON.stringify(a)} !== ${JSON.stringify(b)}`);
}

async function metric(url, series) {
  const text = await (await fetch(url)).text();
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return -1;
}

// Polls until `series` reads `value`. A scrape that fails is retried like one
// that reads another value (one failed once under CI load with "fetch failed",
// cause unknown); a scrape that never succeeds still fails the check, with
// the cause.
async function waitForMetric(url, series, value, seconds) {
  const until = Date.now() + seconds * 1000;
  let failure = null;
  while (Date.now() < until) {
    try {
      if ((await metric(url, series)) === value) return true;
      failure = null;
    } catch (e) {
      failure = e;
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  if (failure) throw new Error(`scraping ${url}: ${failure} (${failure.cause})`);
  return false;
}

async function main() {
  const args = parseArgs();
  const client = new OpenAI({ baseURL: args['base-url'], apiKey: 'not-needed', maxRetries: 0, timeout: 120000 });
  const model = args.model;
  const prompt = 'Once upon a time';
  const messages = [
    { role: 'system', content: 'You tell short stories.' },
    { role: 'user', content: 'Tell me about a cat.' },
  ];

  await check('models.list lists the served model', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m.id);
    assert(models.includes(model), `models: ${models}`);
  });

  let greedy = '';
  await check('completions.create, greedy', async () => {
    const r = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0 });
    greedy = r.choices[0].text;
    assertEqual(r.object, 'text_completion', 'object');
    assert(greedy.length > 0, 'empty text');
    assertEqual(r.usage.completion_tokens, 32, 'completion_tokens');
    if (args['expect-greedy'] !== undefined) assertEqual(greedy, args['expect-greedy'], 'greedy text (gRPC)');
  });

  await check('completions.create, streamed, equals the non-streamed text', async () => {
    const stream = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0, stream: true });
    let text = '';
    let events = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0].text;
      events++;
    }
    assertEqual(text, greedy, 'streamed text');
    assert(events >= 16, `only ${events} events for 32 tokens`);
  });

  await check('completions with stop strings end before them', async () => {
    const r = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0, stop: [greedy.slice(10, 16)] });
    assertEqual(r.choices[0].text, greedy.slice(0, 10), 'text before the stop');
    assertEqual(r.choices[0].finish_reason, 'stop', 'finish_reason');
    const stream = await client.completions.create({ model, prompt, max_tokens: 32, temperature: 0, stream: true, stop: greedy.slice(10, 16) });
    let text = '';
    let finish = null;
    for await (const chunk of stream) {
      text += chunk.choices[0].text;
      finish = chunk.choices[0].finish_reason || finish;
    }
    assertEqual(text, greedy.slice(0, 10), 'streamed text before the stop');
    assertEqual(finish, 'stop', 'streamed finish_reason');
  });

  await check('seeded sampling repeats; another seed differs', async () => {
    const req = { model, prompt, max_tokens: 24, temperature: 1.0, seed: 42, speculation: 'off' };
    const a = await client.completions.create(req);
    const b = await client.completions.create(req);
    assertEqual(a.choices[0].text, b.choices[0].text, 'same seed');
    const c = await client.completions.create({ ...req, seed: 43 });
    assert(c.choices[0].text !== a.choices[0].text, 'seeds 42 and 43 gave the same text');
  });

  let chat = '';
  await check('chat.completions.create, greedy', async () => {
    const r = await client.chat.completions.create({ model, messages, max_tokens: 24, temperature: 0, seed: 7 });
    assertEqual(r.object, 'chat.completion', 'object');
    assertEqual(r.choices[0].message.role, 'assistant', 'role');
    chat = r.choices[0].message.content;
    assert(chat.length > 0, 'empty content');
    assert(r.usage.prompt_tokens > 10, 'prompt_tokens');
  });

  await check('chat.completions.create, streamed with usage', async () => {
    const stream = await client.chat.completions.create({
      model, messages, max_tokens: 24, temperature: 0, stream: true, stream_options: { include_usage: true },
    });
    let text = '';
    let usage = null;
    for await (const chunk of stream) {
      if (chunk.choices.length > 0 && chunk.choices[0].delta.content) text += chunk.choices[0].delta.content;
      if (chunk.usage) usage = chunk.usage;
    }
    assertEqual(text, chat, 'streamed chat text');
    assert(usage && usage.completion_tokens === 24, `usage ${JSON.stringify(usage)}`);
  });

  await check('chat with a seed and sampling repeats', async () => {
    const req = { model, messages, max_tokens: 16, temperature: 0.8, seed: 5, speculation: 'chain:3' };
    const a = await client.chat.completions.create(req);
    const b = await client.chat.completions.create(req);
    assertEqual(a.choices[0].message.content, b.choices[0].message.content, 'same seed');
  });

  await check('aborting a stream midway frees the request', async () => {
    const live = 'specserve_live_sequences';
    const kv = 'specserve_kv_sequences{worker="target"}';
    assert(await waitForMetric(args['metrics-url'], live, 0, 5), 'requests still live before the test');
    const stream = await client.chat.completions.create({
      model, messages, max_tokens: 3000, temperature: 0, stream: true, ignore_eos: true,
    });
    let chunks = 0;
    for await (const chunk of stream) {
      if (++chunks === 5) {
        stream.controller.abort();
        break;
      }
    }
    assertEqual(chunks, 5, 'chunks before the abort');
    assert(await waitForMetric(args['metrics-url'], live, 0, 3), 'the aborted request is still running');
    assert(await waitForMetric(args['metrics-url'], kv, 0, 3), 'the target still holds its KV');
  });

  await check('errors: unknown model 404, bad parameter 400', async () => {
    try {
      await client.completions.create({ model: 'no-such-model', prompt, max_tokens: 4 });
      throw new Error('no error');
    } catch (e) {
      assert(e instanceof OpenAI.NotFoundError, `expected NotFoundError, got ${e}`);
      assertEqual(e.status, 404, 'status');
    }
    try {
      await client.completions.create({ model, prompt, max_tokens: 4, temperature: 9 });
      throw new Error('no error');
    } catch (e) {
      assert(e instanceof OpenAI.BadRequestError, `expected BadRequestError, got ${e}`);
      assertEqual(e.param, 'temperature', 'param');
    }
  });

  console.log(`openai client: ${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log(`FAIL: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
