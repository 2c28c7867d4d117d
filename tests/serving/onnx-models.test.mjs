// Three real ONNX models behind the KServe v2 endpoint in its three homes, each a real server on
// 127.0.0.1: the ONNX worker entry (examples/cloudflare-worker/src/onnx.js, bundled by
// wrangler) in workerd (Miniflare), the Deno and Node examples with
// BRASA_MODELS=ocr-det,silero-vad,squeezenet-onnx. The packages are `brasa build --onnx` CPU builds, their
// weights published by the real CLI into a `brasa serve` registry with golden checks from
// onnxruntime; every answer is compared with onnxruntime (tests/reference/onnx_reference.py):
// - ocr-det (PP-OCRv4 text detection): both reference image sizes (dynamic H and W), as JSON
//   and with the binary tensor extension, sizes in flight together; an NHWC image refused;
// - silero-vad: 32 chunks, one request each, the client carrying each response's `stateN` as
//   the next request's `state` (`sr` an INT64 scalar, shape []); wrong tensors refused;
// - squeezenet-onnx (SqueezeNet 1.0): two 224x224 images in one binary request, against onnx's
//   reference evaluator;
// - an ocr-det image the graph cannot compute (1x3x30x50: H and W must be multiples of 32)
//   aborts the model's wasm instance: that request gets 500 `internal`, requests queued
//   behind it settle, the endpoint loads the model again by itself (a fresh instance,
//   weights from its cache) and answers as before; the server lives on.
// Each server is started once (this file runs in CI on two cores).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { maxDiff, serve } from '../support.mjs';
import { ONNX_MODELS, binaryRequest, makeServingRegistry, ocrDetReference, parseBinaryResponse, sileroVadReference, squeezenetReference } from './models.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from './runtimes.mjs';

const TOLERANCE = 1e-4;
/** silero-vad's state accumulates 32 chunks of float32 rounding (as in tests/node/onnx-models.test.mjs). */
const STATE_TOLERANCE = 5e-4;
const OCR = ocrDetReference();
const VAD = sileroVadReference();
const SQUEEZENET = squeezenetReference();
const OCR_OUTPUT = OCR.cases[0].outputs[0].name; // `sigmoid_0.tmp_0`

let registry;
let upstream;
let bundle;
const answers = {};
const report = {};

before(async () => {
  registry = makeServingRegistry(undefined, { models: ONNX_MODELS });
  upstream = await serve(registry.dir);
  bundle = bundleWorker({ entry: 'src/onnx.js', models: ONNX_MODELS });
});
after(() => {
  upstream?.stop();
  registry?.remove();
  bundle?.remove();
  console.log(`# onnx serving report: ${JSON.stringify({ workerBundle: bundle?.sizes, ...report })}`);
});

const START = {
  workerd: (config) => startWorkerd(bundle, upstream.url, config),
  deno: (config) => startDeno(upstream.url, config),
  node: (config) => startNode(upstream.url, config),
};

test('the ONNX worker bundle fits the free plan (3 MB gzip)', () => {
  assert.ok(bundle.sizes.gzip < 3 * 1000 * 1000, JSON.stringify(bundle.sizes));
});

// ---------------------------------------------------------------------------------------------
// The wire

const post = (url, model, body, headers = {}) =>
  fetch(`${url}v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: body instanceof Uint8Array ? body : JSON.stringify(body),
  });

const postBinary = (url, model, { body, headerLength }) =>
  post(url, model, body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) });

/** The JSON body of a 200, or a failed assertion with what came instead. */
async function ok(pending, what) {
  const response = await pending;
  const text = await response.text();
  assert.equal(response.status, 200, `${what}: ${text.slice(0, 400)}`);
  return JSON.parse(text);
}

/** A 4xx with its JSON `{ error, code }`: checks status, code and that the message names the tensor. */
async function refused(pending, what, { status = 400, code, names }) {
  const response = await pending;
  const text = await response.text();
  assert.equal(response.status, status, `${what}: ${text}`);
  const body = JSON.parse(text);
  assert.equal(body.code, code, `${what}: ${text}`);
  assert.ok(body.error.includes(`\`${names}\``), `${what}: the error does not name \`${names}\`: ${text}`);
  return body;
}

const byName = (outputs) => Object.fromEntries(outputs.map((o) => [o.name, o]));

// ---------------------------------------------------------------------------------------------
// ocr-det

const ocrName = (x) => `ocr-det ${x.dims.join('x')}`;
const ocrJson = (x, extra = {}) => ({ ...extra, inputs: [{ name: 'x', shape: x.dims, datatype: 'FP32', data: x.data }] });

/** One output tensor against onnxruntime's; returns the largest difference. */
function compareOcr(out, want, what) {
  assert.equal(out.name, want.name, what);
  assert.equal(out.datatype, 'FP32', what);
  assert.deepEqual(out.shape, want.dims, what);
  const worst = maxDiff(out.data, want.data);
  assert.ok(out.data.length === want.data.length && worst <= TOLERANCE, `${what}: |endpoint - onnxruntime| = ${worst}`);
  return worst;
}

async function checkOcrDet(url) {
  const meta = await (await fetch(`${url}v2/models/ocr-det`)).json();
  assert.equal(meta.name, 'ocr-det');
  assert.deepEqual(meta.versions, ['1.0.0']);
  assert.equal(meta.platform, 'brasa');
  // The batch and the dynamic height and width are KServe's -1.
  assert.deepEqual(meta.inputs, [{ name: 'x', datatype: 'FP32', shape: [-1, 3, -1, -1] }]);
  assert.deepEqual(meta.outputs, [{ name: OCR_OUTPUT, datatype: 'FP32', shape: [-1, 1, -1, -1] }]);
  assert.equal((await fetch(`${url}v2/models/ocr-det/versions/1.0.0/ready`)).status, 200);

  let worstJson = 0;
  let worstBinary = 0;
  const json = [];
  for (const c of OCR.cases) {
    const [x] = c.inputs;
    const [want] = c.outputs;
    const what = ocrName(x);
    // JSON both ways.
    const body = await ok(post(url, 'ocr-det', ocrJson(x, { id: what })), what);
    assert.equal(body.id, what);
    assert.equal(body.model_name, 'ocr-det');
    assert.equal(body.model_version, '1.0.0');
    assert.equal(body.outputs.length, 1);
    worstJson = Math.max(worstJson, compareOcr(body.outputs[0], want, `${what} (JSON)`));
    json.push(body.outputs[0]);

    // The binary tensor extension both ways (tritonclient's default).
    const request = binaryRequest([{ name: 'x', datatype: 'FP32', shape: x.dims, data: Float32Array.from(x.data) }], { id: `${what} binary`, parameters: { binary_data_output: true } });
    const response = await postBinary(url, 'ocr-det', request);
    assert.equal(response.status, 200, `${what} (binary): ${await response.clone().text()}`);
    assert.equal(response.headers.get('content-type'), 'application/octet-stream');
    const parsed = await parseBinaryResponse(response);
    assert.equal(parsed.header.id, `${what} binary`);
    const out = parsed.outputs[OCR_OUTPUT];
    assert.equal(out?.binary, true, `${what}: ${JSON.stringify(parsed.header)}`);
    assert.equal(parsed.header.outputs[0].parameters.binary_data_size, want.data.length * 4);
    worstBinary = Math.max(worstBinary, compareOcr({ name: OCR_OUTPUT, ...out }, want, `${what} (binary)`));
    // Same model, same input: JSON's shortest float32 text and the raw bytes are one answer.
    assert.deepEqual(body.outputs[0].data.map(Math.fround), out.data, `${what}: JSON and binary answers differ`);
  }

  // Both sizes in flight together: requests are batched only with their own image size, and
  // each answer is its own.
  const [small, large] = [...OCR.cases].sort((a, b) => a.inputs[0].data.length - b.inputs[0].data.length);
  const together = [small, large, small];
  const bodies = await Promise.all(together.map((c, i) => ok(post(url, 'ocr-det', ocrJson(c.inputs[0])), `concurrent ${i} ${ocrName(c.inputs[0])}`)));
  bodies.forEach((b, i) => compareOcr(b.outputs[0], together[i].outputs[0], `concurrent ${i} ${ocrName(together[i].inputs[0])}`));

  // An NHWC image (channels last) is refused naming `x` and the axis.
  const [, , h, w] = small.inputs[0].dims;
  const nhwc = { inputs: [{ name: 'x', shape: [1, h, w, 3], datatype: 'FP32', data: small.inputs[0].data.slice(0, h * w * 3) }] };
  const error = await refused(post(url, 'ocr-det', nhwc), 'NHWC image', { code: 'wrong_shape', names: 'x' });
  assert.match(error.error, new RegExp(`dimension 1 is ${h}, but it must be 3`), error.error);
  // Still serving.
  assert.equal((await post(url, 'ocr-det', ocrJson(small.inputs[0]))).status, 200);
  return { answers: json, worst: { json: worstJson, binary: worstBinary } };
}

// ---------------------------------------------------------------------------------------------
// silero-vad

const SR = { name: 'sr', shape: [], datatype: 'INT64', data: [VAD.sr] };

/** A chunk's JSON request with the state the client carries. */
const vadJson = (input, state, extra = {}) => ({
  ...extra,
  inputs: [
    { name: 'input', shape: input.dims, datatype: 'FP32', data: input.data },
    SR,
    { name: 'state', shape: state.dims, datatype: 'FP32', data: state.data },
  ],
});

/** The same request with the binary extension both ways (`sr` as 8 little-endian bytes). */
const vadBinary = (input, state) =>
  binaryRequest(
    [
      { name: 'input', datatype: 'FP32', shape: input.dims, data: Float32Array.from(input.data) },
      { name: 'sr', datatype: 'INT64', shape: [], data: BigInt64Array.from([BigInt(VAD.sr)]) },
      { name: 'state', datatype: 'FP32', shape: state.dims, data: Float32Array.from(state.data) },
    ],
    { parameters: { binary_data_output: true } },
  );

async function checkSileroVad(url) {
  const meta = await (await fetch(`${url}v2/models/silero-vad`)).json();
  assert.equal(meta.name, 'silero-vad');
  assert.deepEqual(meta.versions, ['1.0.0']);
  assert.deepEqual(meta.inputs, [
    { name: 'input', datatype: 'FP32', shape: [-1, -1] },
    { name: 'sr', datatype: 'INT64', shape: [] },
    { name: 'state', datatype: 'FP32', shape: [2, -1, 128] },
  ]);
  assert.deepEqual(meta.outputs, [
    { name: 'output', datatype: 'FP32', shape: [-1, 1] },
    { name: 'stateN', datatype: 'FP32', shape: [2, -1, 128] },
  ]);

  // 32 chunks, one request each, the state carried by the client: JSON and binary turn about.
  let state = VAD.state;
  let worstOutput = 0;
  let worstState = 0;
  const answers = [];
  for (const [i, chunk] of VAD.chunks.entries()) {
    const what = `chunk ${i}`;
    let outputs;
    if (i % 2 === 0) {
      const body = await ok(post(url, 'silero-vad', vadJson(chunk.input, state, { id: what })), what);
      assert.equal(body.id, what);
      assert.equal(body.model_version, '1.0.0');
      outputs = body.outputs;
    } else {
      const response = await postBinary(url, 'silero-vad', vadBinary(chunk.input, state));
      assert.equal(response.status, 200, `${what} (binary): ${await response.clone().text()}`);
      const parsed = await parseBinaryResponse(response);
      outputs = parsed.header.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape, data: parsed.outputs[o.name].data }));
      assert.ok(outputs.every((o) => parsed.outputs[o.name].binary), `${what}: ${JSON.stringify(parsed.header)}`);
    }
    assert.deepEqual(outputs.map((o) => [o.name, o.datatype, o.shape]), [
      ['output', 'FP32', chunk.output.dims],
      ['stateN', 'FP32', chunk.stateN.dims],
    ], what);
    const { output, stateN } = byName(outputs);
    worstOutput = Math.max(worstOutput, maxDiff(output.data, chunk.output.data));
    worstState = Math.max(worstState, maxDiff(stateN.data, chunk.stateN.data));
    assert.ok(worstOutput <= TOLERANCE && worstState <= STATE_TOLERANCE, `${what}: |output - onnxruntime| ${worstOutput}, |stateN - onnxruntime| ${worstState}`);
    answers.push(outputs.map((o) => ({ ...o, data: o.data.map(Math.fround) })));
    state = { dims: stateN.shape, data: stateN.data };
  }

  // Wrong tensors are refused naming them.
  const first = VAD.chunks[0];
  const wrongState = vadJson(first.input, { dims: [2, 1, 64], data: VAD.state.data.slice(0, 128) });
  const stateError = await refused(post(url, 'silero-vad', wrongState), 'state [2, 1, 64]', { code: 'wrong_shape', names: 'state' });
  assert.match(stateError.error, /dimension 2 is 64, but it must be 128/, stateError.error);
  const vector = vadJson(first.input, VAD.state);
  vector.inputs[1] = { ...SR, shape: [1] };
  await refused(post(url, 'silero-vad', vector), 'sr of shape [1]', { code: 'wrong_shape', names: 'sr' });
  const noRate = vadJson(first.input, VAD.state);
  noRate.inputs.splice(1, 1);
  await refused(post(url, 'silero-vad', noRate), 'no sr', { code: 'unknown_input', names: 'sr' });
  // Still serving, the same answer as before the refusals.
  const again = await ok(post(url, 'silero-vad', vadJson(first.input, VAD.state)), 'chunk 0 again');
  assert.deepEqual(again.outputs.map((o) => ({ ...o, data: o.data.map(Math.fround) })), answers[0]);
  return { answers, worst: { output: worstOutput, state: worstState } };
}

// ---------------------------------------------------------------------------------------------
// A forward pass that aborts the wasm instance

/** `promise`, or a failure naming `what` if it has not settled after `ms`. */
function settles(promise, what, ms = 60_000) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer after ${ms} ms (hung)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Height 30 and width 50, no multiples of 32: burn panics in the graph, the instance traps. */
const TRAP_IMAGE = { dims: [1, 3, 30, 50], data: new Array(3 * 30 * 50).fill(0.5) };
const RECOVERY_MS = 10_000;

async function checkRecovery(url) {
  const [small, large] = [...OCR.cases].sort((a, b) => a.inputs[0].data.length - b.inputs[0].data.length);
  // Requests of other image sizes queued beside the failing one (batched only with their own
  // size): each must settle (answered before the trap, or 503 not_ready after it).
  const beside = [large, small, large].map((c, i) => settles(post(url, 'ocr-det', ocrJson(c.inputs[0])), `request ${i} beside the trap`));
  const t = performance.now();
  const response = await settles(post(url, 'ocr-det', ocrJson(TRAP_IMAGE, { id: 'trap' })), 'ocr-det 1x3x30x50');
  const text = await response.text();
  assert.equal(response.status, 500, `ocr-det 1x3x30x50: ${text}`);
  const error = JSON.parse(text);
  assert.equal(error.code, 'internal', text);
  assert.match(error.error, /wasm instance of ocr-det \(cpu\) aborted while running: .*unreachable/, text);
  const trapMs = performance.now() - t;
  const besideStatus = [];
  for (const [i, pending] of beside.entries()) {
    const r = await pending;
    const body = await r.text();
    besideStatus.push(r.status);
    assert.ok([200, 503].includes(r.status), `request ${i} beside the trap: ${r.status} ${body}`);
    if (r.status === 503) assert.equal(JSON.parse(body).code, 'not_ready', body);
  }

  // Readiness says why ocr-det is not ready while it is loaded again (or it is ready already).
  const ready = await settles(fetch(`${url}v2/health/ready`), 'readiness after the trap');
  const readyText = await ready.text();
  assert.ok([200, 503].includes(ready.status), readyText);
  if (ready.status === 503) assert.match(readyText, /ocr-det: .*aborted/, readyText);

  // The same model answers again, as before: at most a few 503s while it is loaded again.
  const [x] = small.inputs;
  const statuses = [];
  const deadline = performance.now() + RECOVERY_MS;
  let body = null;
  while (performance.now() < deadline) {
    const r = await settles(post(url, 'ocr-det', ocrJson(x, { id: 'after' })), 'ocr-det after the trap');
    statuses.push(r.status);
    const text = await r.text();
    if (r.status === 200) {
      body = JSON.parse(text);
      break;
    }
    assert.equal(r.status, 503, `ocr-det after the trap: ${text}`);
    assert.equal(JSON.parse(text).code, 'not_ready', text);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  assert.ok(body, `ocr-det never answered 200 within ${RECOVERY_MS} ms after the trap: ${statuses.join(', ')}`);
  const recoveredMs = performance.now() - t;
  assert.equal(body.id, 'after');
  assert.equal(body.model_version, '1.0.0');
  compareOcr(body.outputs[0], small.outputs[0], 'ocr-det after the trap');
  // The other size too (a fresh instance, not a leftover).
  compareOcr((await ok(post(url, 'ocr-det', ocrJson(large.inputs[0])), 'ocr-det large after the trap')).outputs[0], large.outputs[0], 'large after the trap');
  assert.equal((await fetch(`${url}v2/health/ready`)).status, 200);
  assert.equal((await fetch(`${url}v2/models/ocr-det/ready`)).status, 200);

  // silero-vad (its own instance) never noticed.
  const first = VAD.chunks[0];
  const vad = await ok(post(url, 'silero-vad', vadJson(first.input, VAD.state)), 'silero-vad after the trap');
  assert.ok(maxDiff(byName(vad.outputs).output.data, first.output.data) <= TOLERANCE);

  // The server lives on; its metrics render and count the failure.
  assert.equal((await fetch(`${url}v2/health/live`)).status, 200);
  const metrics = await fetch(`${url}metrics`);
  assert.equal(metrics.status, 200);
  assert.match(await metrics.text(), /^brasa_model_ready\{[^}]*model="ocr-det"[^}]*\} 1$/m);
  return { trapMs: Math.round(trapMs), recoveredMs: Math.round(recoveredMs), besideStatus, readyStatus: ready.status, retryStatuses: statuses };
}

/** Both reference images in one binary request (2 × 588 KB of FP32), probabilities back. */
async function checkSqueezenet(url) {
  const data = Float32Array.from(SQUEEZENET.inputs.flat());
  const request = binaryRequest([{ name: 'data_0', datatype: 'FP32', shape: [2, 3, 224, 224], data }], { outputs: [{ name: 'softmaxout_1', parameters: { binary_data: true } }] });
  const response = await postBinary(url, 'squeezenet-onnx', request);
  assert.equal(response.status, 200, response.status === 200 ? '' : await response.text());
  const { outputs } = await parseBinaryResponse(response);
  const probs = outputs.softmaxout_1;
  assert.deepEqual(probs.shape, [2, 1000, 1, 1]);
  const worst = maxDiff(probs.data, SQUEEZENET.outputs.flat());
  assert.ok(worst <= 1e-5, `max |endpoint - reference| ${worst}`);
  return { answers: probs.data, worst };
}

// ---------------------------------------------------------------------------------------------

for (const [runtime, start] of Object.entries(START)) {
  describe(runtime, () => {
    let server;
    before(async () => {
      const t = performance.now();
      server = await start({ models: ONNX_MODELS });
      const up = performance.now();
      // The first request loads both models (wasm, weights from the registry, golden checks).
      const ready = await fetch(`${server.url}v2/health/ready`);
      assert.equal(ready.status, 200, await ready.text());
      report[runtime] = { cold: { startMs: Math.round(up - t), readyMs: Math.round(performance.now() - up) } };
      answers[runtime] = {};
    });
    after(() => server?.stop());

    test('ocr-det: two image sizes (dynamic H, W) as JSON and binary agree with onnxruntime; metadata -1 dims; NHWC refused', async () => {
      const t = performance.now();
      const { answers: a, worst } = await checkOcrDet(server.url);
      answers[runtime].ocrDet = a;
      report[runtime].ocrDet = { maxAbsDiff: worst, ms: Math.round(performance.now() - t) };
      console.log(`# ${runtime} ocr-det: max |endpoint - onnxruntime| JSON ${worst.json.toExponential(2)}, binary ${worst.binary.toExponential(2)}`);
    });

    test('silero-vad: 32 chunks with the state carried by the client agree with onnxruntime; INT64 scalar sr; wrong tensors refused', async () => {
      const t = performance.now();
      const { answers: a, worst } = await checkSileroVad(server.url);
      answers[runtime].sileroVad = a;
      report[runtime].sileroVad = { maxAbsDiff: worst, ms: Math.round(performance.now() - t) };
      console.log(`# ${runtime} silero-vad: max |endpoint - onnxruntime| output ${worst.output.toExponential(2)}, state ${worst.state.toExponential(2)}`);
    });

    test('squeezenet-onnx: two images in one binary request agree with the reference evaluator', async () => {
      const { answers: a, worst } = await checkSqueezenet(server.url);
      answers[runtime].squeezenet = a;
      report[runtime].squeezenet = { maxAbsDiff: worst };
      console.log(`# ${runtime} squeezenet-onnx: max |endpoint - reference| ${worst.toExponential(2)}`);
    });

    test('squeezenet-onnx: batch limits derived from the memory limit (workerd: 128 MiB per isolate); at the limit it answers, past it 400', async () => {
      const meta = await ok(fetch(`${server.url}v2/models/squeezenet-onnx`), 'metadata');
      const { max_batch: maxBatch, max_body_bytes: maxBody, max_queue_rows: maxQueue } = meta.parameters;
      assert.ok(Number.isInteger(maxBatch), `metadata states no max_batch: ${JSON.stringify(meta)}`);
      report[runtime].squeezenetMaxBatch = maxBatch;
      // Every stated limit admits a request of max_batch rows in the binary format (a
      // 224×224 image is 602,112 bytes): the body limit grows with the batch, not 8 MiB.
      assert.ok(maxBody >= maxBatch * 602_112, `max_body_bytes ${maxBody} cannot carry max_batch ${maxBatch} images`);
      assert.ok(maxQueue >= maxBatch, `max_queue_rows ${maxQueue} < max_batch ${maxBatch}`);
      const images = (n) => {
        const one = SQUEEZENET.inputs[0];
        const data = new Float32Array(n * one.length);
        for (let i = 0; i < n; i++) data.set(one, i * one.length);
        return binaryRequest([{ name: 'data_0', datatype: 'FP32', shape: [n, 3, 224, 224], data }], { outputs: [{ name: 'softmaxout_1', parameters: { binary_data: true } }] });
      };
      if (runtime !== 'workerd') {
        // No memory limit unless one is given: the configured maxBatch (32), and 32 images
        // (19 MB) get through.
        assert.equal(maxBatch, 32);
        const full = await postBinary(server.url, 'squeezenet-onnx', images(32));
        assert.equal(full.status, 200, full.status === 200 ? '' : await full.text());
        const { outputs } = await parseBinaryResponse(full);
        assert.ok(maxDiff(outputs.softmaxout_1.data.slice(-1000), SQUEEZENET.outputs[0]) <= 1e-5);
        return;
      }
      // A 224×224 image costs SqueezeNet several MiB of activations: 32 of them would not fit.
      assert.ok(maxBatch >= 1 && maxBatch < 32, `max_batch ${maxBatch}`);
      const past = await postBinary(server.url, 'squeezenet-onnx', images(maxBatch + 1));
      const text = await past.text();
      if ((maxBatch + 1) * 602_112 < maxBody) {
        assert.equal(past.status, 400, text);
        assert.equal(JSON.parse(text).code, 'batch_too_large', text);
        assert.match(text, /memory limit/);
      } else {
        // The default body limit carries max_batch images and no more: the body is refused
        // before it is read, as too large.
        assert.equal(past.status, 413, text);
        assert.equal(JSON.parse(text).code, 'body_too_large', text);
      }
      const at = await postBinary(server.url, 'squeezenet-onnx', images(maxBatch));
      assert.equal(at.status, 200, at.status === 200 ? '' : await at.text());
      const { outputs } = await parseBinaryResponse(at);
      assert.ok(maxDiff(outputs.softmaxout_1.data.slice(-1000), SQUEEZENET.outputs[0]) <= 1e-5);
      // The batch at the limit stayed within it.
      const metrics = await (await fetch(`${server.url}metrics`)).text();
      const memory = Number(/^brasa_wasm_memory_bytes\{[^}]*model="squeezenet-onnx"[^}]*\} (\S+)$/m.exec(metrics)?.[1]);
      assert.ok(memory > 0 && memory <= 128 * 1024 * 1024, `wasm memory after a batch of ${maxBatch}: ${memory}\n${metrics}`);
      report[runtime].squeezenetMemoryAtLimit = memory;
    });

    test('ocr-det 1x3x30x50 aborts the wasm instance: 500 internal, the model is loaded again and answers as onnxruntime; the server lives on', async () => {
      const result = await checkRecovery(server.url);
      report[runtime].recovery = result;
      console.log(`# ${runtime} recovery: ${JSON.stringify(result)}`);
    });
  });
}

test('the three runtimes give the same answers', () => {
  for (const runtime of ['workerd', 'deno']) {
    assert.ok(answers[runtime]?.ocrDet && answers[runtime]?.sileroVad, `${runtime} has no answers`);
    assert.deepEqual(answers[runtime].ocrDet, answers.node.ocrDet, `ocr-det: ${runtime} and node differ`);
    assert.deepEqual(answers[runtime].sileroVad, answers.node.sileroVad, `silero-vad: ${runtime} and node differ`);
    assert.deepEqual(answers[runtime].squeezenet, answers.node.squeezenet, `squeezenet-onnx: ${runtime} and node differ`);
  }
});
