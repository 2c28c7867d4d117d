// The KServe endpoint's limits are consistent: whatever the configuration, the limits its
// metadata states all admit a request of `max_batch` rows, and each that lowers `max_batch`
// says so. In process (handler.fetch), SqueezeNet (`brasa build --onnx`, 3×224×224 float32
// images: 150,528 values, 602,112 bytes a row) and MNIST, weights from a real registry.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { MemoryCache, createHandler } from '../../npm/dist/node.js';
import { makeServingRegistry, squeezenetReference } from '../serving/models.mjs';
import { CACHE, serve } from '../support.mjs';

const IMAGE = { elements: 3 * 224 * 224, bytes: 3 * 224 * 224 * 4 };
let registry;
let upstream;
let squeezenet;
let mnist;

before(async () => {
  registry = makeServingRegistry(undefined, { models: ['mnist', 'squeezenet-onnx'] });
  upstream = await serve(registry.dir);
  const pkg = async (name) => (await import(pathToFileURL(join(CACHE, 'packages', name, 'index.js')).href)).default;
  squeezenet = await pkg('squeezenet-onnx');
  mnist = await pkg('mnist');
});

after(async () => {
  await upstream?.stop();
  registry?.remove();
});

/** A handler serving `served`, its warnings, and GET/POST helpers; closed by `done()`. */
async function endpoint(served, options = {}) {
  const warnings = [];
  const warn = console.warn;
  console.warn = (...args) => warnings.push(args.join(' '));
  const handler = createHandler({ models: [served], registry: upstream.url, load: { cache: new MemoryCache() }, updateInterval: 0, ...options });
  try {
    await handler.start();
  } finally {
    console.warn = warn;
  }
  const base = 'http://endpoint.test';
  const name = served.model.name;
  return {
    warnings,
    meta: async () => (await handler.fetch(new Request(`${base}/v2/models/${name}`))).json(),
    infer: (body, headers = {}) => handler.fetch(new Request(`${base}/v2/models/${name}/infer`, { method: 'POST', body, headers })),
    done: () => handler.close(),
  };
}

/** A binary-extension request of `rows` rows of `input` (`row` values each, float32). */
function binary(input, rows, row, data = new Float32Array(rows * row.size)) {
  const head = new TextEncoder().encode(JSON.stringify({ inputs: [{ name: input, datatype: 'FP32', shape: [rows, ...row.dims], parameters: { binary_data_size: rows * row.size * 4 } }] }));
  const body = new Uint8Array(head.length + rows * row.size * 4);
  body.set(head);
  body.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), head.length);
  return { body, headers: { 'inference-header-content-length': String(head.length) } };
}

test('maxBatch 1000: lowered to what the model takes and memory holds; every stated limit admits max_batch rows', async () => {
  const e = await endpoint({ model: squeezenet, maxBatch: 1000 });
  try {
    const { max_batch: rows, max_elements: elements, max_body_bytes: body, max_queue_rows: queue } = (await e.meta()).parameters;
    assert.ok(rows < 1000, `max_batch ${rows}`);
    assert.ok(rows * IMAGE.elements <= elements, `max_batch ${rows} × ${IMAGE.elements} > max_elements ${elements}`);
    assert.ok(body >= rows * IMAGE.bytes, `max_body_bytes ${body} < max_batch ${rows} images`);
    assert.ok(queue >= rows, `max_queue_rows ${queue} < max_batch ${rows}`);
    // What one more row would need: more than the address space or the element limit.
    assert.ok((rows + 1) * IMAGE.elements > elements || rows < 1000, 'max_batch not lowered by any limit');
  } finally {
    e.done();
  }
});

test('a body limit smaller than maxBatch rows lowers max_batch to what it carries: at it 200, past it refused', async () => {
  const row = { dims: [1, 28, 28], size: 784 };
  const e = await endpoint({ model: mnist }, { maxBodyBytes: 10_000 });
  try {
    const params = (await e.meta()).parameters;
    assert.equal(params.max_body_bytes, 10_000);
    assert.equal(params.max_batch, Math.floor(10_000 / (784 * 4)), JSON.stringify(params));
    const at = binary('pixels', params.max_batch, row);
    assert.equal((await e.infer(at.body, at.headers)).status, 200);
    const past = binary('pixels', params.max_batch + 1, row);
    const refused = await e.infer(past.body, past.headers);
    assert.equal(refused.status, 413, await refused.clone().text());
  } finally {
    e.done();
  }
});

test('a memory limit the model cannot meet at batch 1 is said, not served silently', async () => {
  const e = await endpoint({ model: squeezenet }, { memoryLimitBytes: 20_000_000 });
  try {
    assert.equal((await e.meta()).parameters.max_batch, 1);
    assert.ok(e.warnings.some((w) => /squeezenet-onnx.*(above the|cannot take even one row)/.test(w)), e.warnings.join('\n'));
    // One image still runs (the limit is advice to brasa, not to the platform).
    const ref = squeezenetReference();
    const one = binary('data_0', 1, { dims: [3, 224, 224], size: IMAGE.elements }, Float32Array.from(ref.inputs[0]));
    const answer = await e.infer(one.body, one.headers);
    assert.equal(answer.status, 200, await answer.clone().text());
  } finally {
    e.done();
  }
});

test('paths that are not valid percent-encoding are 400, not 500; GET routes answer HEAD and say so in Allow', async () => {
  const handler = createHandler({ models: [mnist], registry: upstream.url, load: { cache: new MemoryCache() }, updateInterval: 0 });
  try {
    for (const path of ['/v2/models/mn%ZZist/infer', '/v2/models/%E0%A4%A', '/v2/models/mnist/versions/%FF/infer']) {
      const r = await handler.fetch(new Request(`http://endpoint.test${path}`, { method: 'POST', body: '{}' }));
      assert.equal(r.status, 400, `${path}: ${await r.clone().text()}`);
      assert.equal((await r.json()).code, 'malformed_request');
    }
    assert.equal((await handler.fetch(new Request('http://endpoint.test/v2', { method: 'HEAD' }))).status, 200);
    const options = await handler.fetch(new Request('http://endpoint.test/v2', { method: 'OPTIONS' }));
    assert.equal(options.status, 405);
    assert.equal(options.headers.get('allow'), 'GET, HEAD');
    // Header lengths are decimal digits only.
    for (const bad of ['0x6b', '107.0', '1e2', '+107', '-5', 'abc', '']) {
      const r = await handler.fetch(new Request('http://endpoint.test/v2/models/mnist/infer', { method: 'POST', body: '{}', headers: { 'inference-header-content-length': bad } }));
      assert.equal(r.status, 400, `Inference-Header-Content-Length ${JSON.stringify(bad)}`);
      assert.equal((await r.json()).code, 'malformed_request');
    }
    // An error never echoes a huge request back.
    const name = 'x'.repeat(1_000_000);
    const r = await handler.fetch(new Request('http://endpoint.test/v2/models/mnist/infer', { method: 'POST', body: JSON.stringify({ inputs: [{ name, shape: [1], datatype: 'FP32', data: [0] }] }) }));
    assert.equal(r.status, 400);
    assert.ok((await r.text()).length < 4096);
  } finally {
    handler.close();
  }
});
