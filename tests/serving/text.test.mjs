// Text in, embeddings out over KServe v2, in the endpoint's three homes, each a real server on
// 127.0.0.1: the text worker entry (examples/cloudflare-worker/src/text.js, bundled by
// wrangler) in workerd (Miniflare), the Deno and Node examples with BRASA_MODELS=minilm and
// BRASA_TOKENIZERS. all-MiniLM-L6-v2's package (`brasa build models/minilm`, CPU build) is
// published by the real CLI with its golden check; its tokenizer.json is fetched from the
// same `brasa serve`. Every embedding is compared with the float64 numpy forward pass of the
// safetensors (tests/reference/minilm_reference.py; ids from Python `tokenizers`), cosine
// ≥ 0.9999, the 2,389-byte sentence truncated at 256 tokens included:
// - metadata (`text` BYTES [-1], `embeddings` FP32 [-1, 384], the byte limit) and Triton's
//   configuration (TYPE_STRING);
// - every reference sentence in one JSON request, and in one binary request (BYTES: each
//   string's 4-byte little-endian length, then its UTF-8) with the output in binary;
// - one request per sentence, all at once: batched together (batch sizes > 1 in /metrics),
//   each answer its own sentence's;
// - refusals, each a 400 `{ error }` naming `text`: numbers for strings, invalid UTF-8, a
//   length prefix past the end, too many texts, a text over the byte limit; then it still answers.
// Each server is started once (this file runs in CI on two cores).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, serve } from '../support.mjs';
import { batchSizes } from './checks.mjs';
import { makeServingRegistry, parseBinaryResponse } from './models.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from './runtimes.mjs';

const MIN_COSINE = 0.9999;
const MAX_BATCH = 24;
/** A small byte limit, so that the refusal is cheap to provoke (the default is 16384). */
const MAX_TEXT_BYTES = 4096;
const REF = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));
const SENTENCES = REF.sentences;

let registry;
let upstream;
let bundle;
const report = {};

before(async () => {
  registry = makeServingRegistry(undefined, { models: ['minilm'] });
  // Served beside the registry: the runtimes fetch it as they fetch weights.
  copyFileSync(join(CACHE, 'models/minilm/tokenizer.json'), join(registry.dir, 'minilm-tokenizer.json'));
  upstream = await serve(registry.dir);
  bundle = bundleWorker({ entry: 'src/text.js', models: ['minilm'] });
});
after(() => {
  upstream?.stop();
  registry?.remove();
  bundle?.remove();
  console.log(`# text serving report: ${JSON.stringify({ workerBundle: bundle?.sizes, ...report })}`);
});

const config = () => {
  const tokenizer = `${upstream.url}minilm-tokenizer.json`;
  // The worker plans its batches in 1 GiB: MiniLM's f32 weights alone are 86 MiB of a real
  // Worker's 128 MB (see src/text.js).
  const env = { BRASA_TOKENIZERS: `minilm=${tokenizer}`, BRASA_TOKENIZER: tokenizer, BRASA_MAX_TEXT_BYTES: String(MAX_TEXT_BYTES), BRASA_MEMORY_LIMIT: String(1 << 30) };
  return { models: ['minilm'], maxBatch: MAX_BATCH, maxQueueRows: 256, env };
};
const START = {
  workerd: () => startWorkerd(bundle, upstream.url, config()),
  deno: () => startDeno(upstream.url, config()),
  node: () => startNode(upstream.url, config()),
};

// ---------------------------------------------------------------------------------------------
// The wire

const post = (url, body, headers = {}) =>
  fetch(`${url}v2/models/minilm/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body instanceof Uint8Array || typeof body === 'string' ? body : JSON.stringify(body),
  });

const textRequest = (texts, extra = {}) => ({ ...extra, inputs: [{ name: 'text', shape: [texts.length], datatype: 'BYTES', data: texts }] });

/** KServe's binary BYTES layout: each element's length (u32, little endian), then its bytes. */
function bytesLayout(elements) {
  const parts = elements.map((e) => (typeof e === 'string' ? new TextEncoder().encode(e) : e));
  const out = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  const view = new DataView(out.buffer);
  let at = 0;
  for (const p of parts) {
    view.setUint32(at, p.length, true);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** A binary-extension request whose `text` is `blob`, of `rows` rows. */
function binaryTextRequest(blob, rows, extra = {}) {
  const header = new TextEncoder().encode(JSON.stringify({ ...extra, inputs: [{ name: 'text', shape: [rows], datatype: 'BYTES', parameters: { binary_data_size: blob.length } }] }));
  const body = new Uint8Array(header.length + blob.length);
  body.set(header);
  body.set(blob, header.length);
  return { body, headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(header.length) } };
}

async function ok(pending, what) {
  const response = await pending;
  const text = await response.text();
  assert.equal(response.status, 200, `${what}: ${text.slice(0, 400)}`);
  return JSON.parse(text);
}

async function refused(pending, what, code) {
  const response = await pending;
  const text = await response.text();
  assert.equal(response.status, 400, `${what}: ${text.slice(0, 400)}`);
  const body = JSON.parse(text);
  assert.equal(body.code, code, `${what}: ${text}`);
  assert.ok(body.error.includes('`text`') || code === 'batch_too_large', `${what}: the error does not name \`text\`: ${text}`);
  return body.error;
}

/** Cosine of `got` (a row of the response) with numpy's embedding of sentence `k`. */
function cosine(got, k) {
  const want = REF.embeddings[k];
  let dot = 0;
  let a = 0;
  let b = 0;
  for (let i = 0; i < want.length; i++) {
    dot += got[i] * want[i];
    a += got[i] * got[i];
    b += want[i] * want[i];
  }
  return dot / Math.sqrt(a * b);
}

/** Every row of an `embeddings` output against numpy; returns the lowest cosine. */
function compare(output, indices, what) {
  assert.equal(output.name, 'embeddings', what);
  assert.equal(output.datatype, 'FP32', what);
  assert.deepEqual(output.shape, [indices.length, 384], what);
  let lowest = 1;
  indices.forEach((k, row) => {
    const c = cosine(output.data.slice(row * 384, (row + 1) * 384), k);
    assert.ok(c >= MIN_COSINE, `${what}: sentence ${k} (${JSON.stringify(SENTENCES[k].slice(0, 40))}): cosine ${c}`);
    lowest = Math.min(lowest, c);
  });
  return lowest;
}

// ---------------------------------------------------------------------------------------------

for (const [runtime, start] of Object.entries(START)) {
  describe(runtime, () => {
    let server;
    const seen = {};
    before(async () => {
      server = await start();
    });
    after(() => server?.stop());

    test('metadata and configuration: text is BYTES (TYPE_STRING), embeddings FP32 [-1, 384]', async () => {
      const ready = await fetch(`${server.url}v2/health/ready`);
      assert.equal(ready.status, 200, await ready.text());
      const meta = await ok(fetch(`${server.url}v2/models/minilm`), 'metadata');
      assert.deepEqual(meta.inputs, [{ name: 'text', datatype: 'BYTES', shape: [-1] }]);
      assert.deepEqual(meta.outputs, [{ name: 'embeddings', datatype: 'FP32', shape: [-1, 384] }]);
      assert.equal(meta.parameters.max_batch, MAX_BATCH);
      assert.deepEqual(meta.parameters.max_bytes, { text: MAX_TEXT_BYTES });
      const configuration = await ok(fetch(`${server.url}v2/models/minilm/config`), 'config');
      assert.equal(configuration.max_batch_size, MAX_BATCH);
      assert.deepEqual(configuration.input.map((t) => [t.name, t.data_type]), [['text', 'TYPE_STRING']]);
      assert.deepEqual(configuration.output.map((t) => [t.name, t.data_type, t.dims]), [['embeddings', 'TYPE_FP32', [384]]]);
    });

    test('every reference sentence in one request, JSON and binary BYTES: cosine ≥ 0.9999 to numpy', async () => {
      const all = SENTENCES.map((_, k) => k);
      const json = await ok(post(server.url, textRequest(SENTENCES, { id: 'json' })), 'JSON');
      assert.equal(json.id, 'json');
      seen.json = compare(json.outputs[0], all, 'JSON request');

      const { body, headers } = binaryTextRequest(bytesLayout(SENTENCES), SENTENCES.length, { parameters: { binary_data_output: true } });
      const response = await post(server.url, body, headers);
      assert.equal(response.status, 200, response.status === 200 ? '' : await response.clone().text());
      const { outputs } = await parseBinaryResponse(response);
      assert.equal(outputs.embeddings.binary, true);
      seen.binary = compare({ name: 'embeddings', ...outputs.embeddings }, all, 'binary request');
    });

    test('one request per sentence, all at once: batched together, each its own answer', async () => {
      const before = batchSizes(await (await fetch(`${server.url}metrics`)).text(), 'minilm');
      const order = [...SENTENCES.keys(), ...SENTENCES.keys()];
      const answers = await Promise.all(order.map((k) => ok(post(server.url, textRequest([SENTENCES[k]])), `sentence ${k}`)));
      answers.forEach((a, i) => compare(a.outputs[0], [order[i]], `concurrent request ${i}`));
      const after = batchSizes(await (await fetch(`${server.url}metrics`)).text(), 'minilm');
      assert.ok(after.largerThanOne > before.largerThanOne, `no batch of more than one text: ${JSON.stringify({ before, after })}`);
      seen.meanBatch = +((after.sum - before.sum) / (after.count - before.count)).toFixed(1);
      report[runtime] = seen;
    });

    test('bad text is a 400 naming `text`, and the endpoint answers on', async () => {
      const errors = {};
      errors.number = await refused(post(server.url, textRequest(['a', 3])), 'a number for a string', 'wrong_datatype');
      errors.fp32 = await refused(post(server.url, { inputs: [{ name: 'text', shape: [1], datatype: 'FP32', data: [1] }] }), 'FP32 for BYTES', 'wrong_datatype');
      const utf8 = binaryTextRequest(bytesLayout(['fine', new Uint8Array([0x66, 0xff, 0xfe])]), 2);
      errors.utf8 = await refused(post(server.url, utf8.body, utf8.headers), 'invalid UTF-8', 'wrong_datatype');
      assert.match(errors.utf8, /element 1 is not valid UTF-8/);
      const blob = bytesLayout(['fine', 'cut short']).slice(0, -3);
      const past = binaryTextRequest(blob, 2);
      errors.past = await refused(post(server.url, past.body, past.headers), 'a length prefix past the end', 'malformed_request');
      assert.match(errors.past, /element 1 says it is 9 bytes long, but only 6/);
      errors.many = await refused(post(server.url, textRequest(Array.from({ length: MAX_BATCH + 1 }, () => 'x'))), 'too many texts', 'batch_too_large');
      const long = 'é'.repeat(MAX_TEXT_BYTES / 2) + 'x';
      errors.long = await refused(post(server.url, textRequest(['short', long])), 'a text over the byte limit', 'out_of_range');
      assert.match(errors.long, new RegExp(`element 1 is ${MAX_TEXT_BYTES + 1} bytes of UTF-8; the limit is ${MAX_TEXT_BYTES}`));
      errors.count = await refused(post(server.url, { inputs: [{ name: 'text', shape: [2], datatype: 'BYTES', data: ['a'] }] }), 'fewer texts than the shape says', 'wrong_element_count');
      // Still up, and right.
      const after = await ok(post(server.url, textRequest([SENTENCES[0], long.slice(0, -1)])), 'after the refusals');
      assert.deepEqual(after.outputs[0].shape, [2, 384], 'a text at the byte limit is taken');
      assert.ok(cosine(after.outputs[0].data.slice(0, 384), 0) >= MIN_COSINE, 'after the refusals');
      report[runtime] = { ...report[runtime], errors };
    });
  });
}
