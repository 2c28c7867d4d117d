// What every brasa endpoint must do, checked over HTTP from this process: the same checks
// for the Node, Deno and workerd examples. Two models are served: mnist (one FP32 input, one
// output) and two-heads (FP32 + INT64 inputs with a variable `seq`, FP32 + INT64 outputs).
// The serving layer knows no task: outputs are the model's tensors, compared with numpy.
import assert from 'node:assert/strict';

import { TOLERANCE, maxDiff } from '../support.mjs';
import { binaryRequest, fromHalfBits, parseBinaryResponse, toHalfBits } from './models.mjs';

const post = (url, model, body, headers = {}) =>
  fetch(`${url}v2/models/${model}/infer`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body),
  });

export const infer = (url, body, init = {}) =>
  fetch(`${url}v2/models/mnist/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });

/** An mnist request: `pixels` holds whole 28×28 images (784 values each), NCHW. */
export const request = (pixels, extra = {}) => ({ inputs: [{ name: 'pixels', shape: [pixels.length / 784, 1, 28, 28], datatype: 'FP32', data: pixels }], ...extra });

/** A binary-extension request (tritonclient's): `{ body, headerLength }` → fetch. */
const postBinary = (url, model, { body, headerLength }) =>
  post(url, model, body, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength) });

/** Status and JSON error code of a refused request; asserts the message is useful. */
async function refusal(pending, what) {
  const response = await pending;
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    assert.fail(`${what}: not JSON (${response.status}): ${text.slice(0, 200)}`);
  }
  assert.ok(typeof body.error === 'string' && body.error.length > 10, `${what}: ${text}`);
  return { status: response.status, code: body.code, error: body.error, text };
}

/** Health, metadata, numpy agreement (one batch and one request per item), tritonclient's requests. */
export async function checkBasics(url, ref) {
  assert.equal((await fetch(`${url}v2/health/live`)).status, 200);
  const ready = await fetch(`${url}v2/health/ready`);
  assert.equal(ready.status, 200, await ready.text());
  const meta = await (await fetch(`${url}v2/models/mnist`)).json();
  assert.equal(meta.name, 'mnist');
  assert.deepEqual(meta.versions, ['1.0.0']);
  assert.deepEqual(meta.inputs, [{ name: 'pixels', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
  assert.deepEqual(meta.outputs, [{ name: 'logits', datatype: 'FP32', shape: [-1, 10] }]);
  assert.equal((await fetch(`${url}v2/models/mnist/versions/1.0.0`)).status, 200);
  assert.equal((await fetch(`${url}v2/models/mnist/ready`)).status, 200);

  const batch = await infer(url, request(ref.items.flatMap((i) => i.pixels), { id: 'batch-1' }));
  assert.equal(batch.status, 200);
  assert.equal(batch.headers.get('inference-header-content-length'), null, 'an all-JSON response has no Inference-Header-Content-Length');
  const body = await batch.json();
  assert.equal(body.id, 'batch-1');
  assert.equal(body.model_name, 'mnist');
  assert.equal(body.model_version, '1.0.0');
  // The model's outputs, nothing added: no task-specific `probabilities` or `label`.
  assert.deepEqual(body.outputs.map((o) => o.name), ['logits']);
  const logits = body.outputs[0];
  assert.equal(logits.datatype, 'FP32');
  assert.deepEqual(logits.shape, [ref.items.length, 10]);
  ref.items.forEach((item, i) => {
    const diff = maxDiff(logits.data.slice(i * 10, i * 10 + 10), item.logits);
    assert.ok(diff <= TOLERANCE, `${item.name}: |endpoint - numpy| = ${diff}`);
  });

  // Concurrent single requests: each answer is exactly its own row.
  const singles = await Promise.all(ref.items.map((item) => infer(url, request(item.pixels)).then((r) => r.json())));
  singles.forEach((s, i) => assert.ok(maxDiff(s.outputs[0].data, ref.items[i].logits) <= TOLERANCE, ref.items[i].name));

  // The exact JSON tritonclient.http sends (InferInput.set_data_from_numpy(binary_data=False),
  // InferRequestedOutput(binary_data=False)), including its parameters.
  const triton = `{"id":"42","inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":null},"data":${JSON.stringify(ref.items[1].pixels)}}],"outputs":[{"name":"logits","parameters":{"binary_data":false}}],"parameters":{"sequence_id":0,"priority":0}}`;
  const answer = await infer(url, triton);
  assert.equal(answer.status, 200, await answer.clone().text());
  const t = await answer.json();
  assert.equal(t.id, '42');
  assert.deepEqual(t.outputs.map((o) => o.name), ['logits']);
  assert.ok(maxDiff(t.outputs[0].data, ref.items[1].logits) <= TOLERANCE);

  // tritonclient's default: binary inputs (set_data_from_numpy(x)) and binary outputs
  // (binary_data_output), the JSON header's length in Inference-Header-Content-Length.
  const pixels = Float32Array.from(ref.items.slice(0, 3).flatMap((i) => i.pixels));
  const binary = await postBinary(url, 'mnist', binaryRequest([{ name: 'pixels', datatype: 'FP32', shape: [3, 1, 28, 28], data: pixels }], { id: 'bin', parameters: { binary_data_output: true } }));
  assert.equal(binary.status, 200, await binary.clone().text());
  assert.equal(binary.headers.get('content-type'), 'application/octet-stream');
  const parsed = await parseBinaryResponse(binary);
  assert.equal(parsed.header.id, 'bin');
  assert.equal(parsed.outputs.logits.binary, true);
  assert.equal(parsed.header.outputs[0].parameters.binary_data_size, 3 * 10 * 4);
  assert.deepEqual(parsed.outputs.logits.shape, [3, 10]);
  for (let i = 0; i < 3; i++) {
    const diff = maxDiff(parsed.outputs.logits.data.slice(i * 10, i * 10 + 10), ref.items[i].logits);
    assert.ok(diff <= TOLERANCE, `${ref.items[i].name} (binary): |endpoint - numpy| = ${diff}`);
  }
  return logits.data;
}

/** Every bad request gets its 4xx with a JSON error naming the problem. */
export async function checkBadRequests(url, { maxBatch = 32, maxQueueRows = 512 } = {}) {
  const px = new Array(784).fill(0.5);
  const rows = (n) => ({ inputs: [{ name: 'pixels', shape: [n, 1, 28, 28], datatype: 'FP32', data: new Array(n * 784).fill(0.5) }] });
  const cases = [
    ['malformed JSON', infer(url, '{"inputs": ['), 400, 'malformed_request'],
    ['not an infer request', infer(url, '[1,2,3]'), 400, 'malformed_request'],
    ['unknown input', infer(url, { inputs: [{ name: 'image', shape: [1, 1, 28, 28], datatype: 'FP32', data: px }] }), 400, 'unknown_input'],
    ['no inputs', infer(url, { inputs: [] }), 400, 'unknown_input'],
    ['flat rows [N, 784]', infer(url, { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: px }] }), 400, 'wrong_shape', /`pixels`.*rank/],
    ['NHWC [N, 28, 28, 1]', infer(url, { inputs: [{ name: 'pixels', shape: [1, 28, 28, 1], datatype: 'FP32', data: px }] }), 400, 'wrong_shape', /`pixels`.*dimension 1 is 28, but it must be 1/],
    ['wrong shape', infer(url, { inputs: [{ name: 'pixels', shape: [1, 1, 28, 27], datatype: 'FP32', data: px.slice(28) }] }), 400, 'wrong_shape', /dimension 3 is 27/],
    ['wrong datatype', infer(url, { inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'INT8', data: px }] }), 400, 'wrong_datatype'],
    ['wrong element count', infer(url, { inputs: [{ name: 'pixels', shape: [2, 1, 28, 28], datatype: 'FP32', data: px }] }), 400, 'wrong_element_count'],
    ['non-finite value', infer(url, `{"inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","data":[1e39${',0'.repeat(783)}]}]}`), 400, 'non_finite'],
    ['string value', infer(url, { inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: ['NaN', ...px.slice(1)] }] }), 400, 'non_finite'],
    // More rows than one run takes can never be admitted: 400, not 503 (retrying cannot help).
    ['batch over maxBatch', infer(url, rows(maxBatch + 1)), 400, 'batch_too_large'],
    ['batch over the queue', infer(url, rows(Math.max(maxBatch, maxQueueRows) + 1)), 400, 'batch_too_large'],
    ['unknown output', infer(url, request(px, { outputs: [{ name: 'boxes' }] })), 400, 'unknown_output'],
    ['a removed output', infer(url, request(px, { outputs: [{ name: 'probabilities' }] })), 400, 'unknown_output', /`logits`/],
    ['binary header longer than the body', infer(url, JSON.stringify(request(px)), { headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': '999999' } }), 400, 'malformed_request'],
    ['bad Inference-Header-Content-Length', infer(url, JSON.stringify(request(px)), { headers: { 'inference-header-content-length': 'ten' } }), 400, 'malformed_request'],
    ['oversized body', infer(url, 'x'.repeat(9 * 1024 * 1024)), 413, 'body_too_large'],
    ['unknown model', fetch(`${url}v2/models/resnet/infer`, { method: 'POST', body: '{}' }), 404, 'unknown_model'],
    ['unknown version', fetch(`${url}v2/models/mnist/versions/9.9.9/infer`, { method: 'POST', body: JSON.stringify(request(px)) }), 404, 'unknown_version'],
    ['wrong method', fetch(`${url}v2/models/mnist/infer`), 405, 'method_not_allowed'],
  ];
  for (const [what, pending, status, code, message] of cases) {
    const r = await refusal(pending, what);
    assert.equal(r.status, status, `${what}: ${r.text}`);
    assert.equal(r.code, code, `${what}: ${r.text}`);
    if (message) assert.match(r.error, message, what);
  }
  // Still serving.
  assert.equal((await infer(url, request(px))).status, 200);
}

/**
 * Triton's model configuration and statistics extensions (what tritonclient's
 * `get_model_config` and `get_inference_statistics` ask for): mnist's configuration, and its
 * statistics moving with one answered request of 2 rows and one refused request. Durations
 * are only checked to be whole nanoseconds: workerd's clock moves in whole milliseconds and
 * only between I/O (Cloudflare's timing-attack mitigation), so short phases read 0 there.
 */
export async function checkTritonExtensions(url, { maxBatch = 32 } = {}) {
  const config = await (await fetch(`${url}v2/models/mnist/config`)).json();
  assert.equal(config.name, 'mnist');
  assert.equal(config.max_batch_size, maxBatch, JSON.stringify(config));
  assert.deepEqual(config.input, [{ name: 'pixels', data_type: 'TYPE_FP32', dims: [1, 28, 28] }]);
  assert.deepEqual(config.output, [{ name: 'logits', data_type: 'TYPE_FP32', dims: [10] }]);
  assert.equal(config.dynamic_batching.max_queue_delay_microseconds, 2000);
  const twoHeads = await (await fetch(`${url}v2/models/two-heads/versions/1.0.0/config`)).json();
  assert.deepEqual(twoHeads.input.map((t) => [t.name, t.data_type, t.dims]), [['features', 'TYPE_FP32', [-1, 4]], ['token_ids', 'TYPE_INT64', [3]]]);
  for (const path of ['v2/models/mnist/versions/9.9.9/config', 'v2/models/mnist/versions/9.9.9/stats', 'v2/models/resnet/stats']) {
    const r = await refusal(fetch(`${url}${path}`), path);
    assert.equal(r.status, 404, `${path}: ${r.text}`);
  }
  const stats = async () => (await (await fetch(`${url}v2/models/mnist/versions/1.0.0/stats`)).json()).model_stats;
  const [before] = await stats();
  assert.equal((await infer(url, request(new Array(2 * 784).fill(0.25)))).status, 200);
  assert.equal((await infer(url, '{"inputs": [')).status, 400);
  const [after] = await stats();
  assert.deepEqual([after.name, after.version], ['mnist', '1.0.0']);
  assert.equal(after.inference_count - before.inference_count, 2);
  assert.equal(after.inference_stats.success.count - before.inference_stats.success.count, 1);
  assert.equal(after.inference_stats.fail.count - before.inference_stats.fail.count, 1);
  assert.equal(after.execution_count - before.execution_count, 1);
  for (const d of [...Object.values(after.inference_stats), ...after.batch_stats.flatMap((b) => [b.compute_input, b.compute_infer, b.compute_output])]) {
    assert.ok(Number.isSafeInteger(d.ns) && d.ns >= 0 && Number.isSafeInteger(d.count), JSON.stringify(after));
  }
  assert.ok(after.last_inference >= before.last_inference && after.last_inference > 0, JSON.stringify(after));
  const all = (await (await fetch(`${url}v2/models/stats`)).json()).model_stats;
  assert.deepEqual(all.map((m) => [m.name, m.version]).sort(), [['mnist', '1.0.0'], ['two-heads', '1.0.0']]);
}

// ---------------------------------------------------------------------------------------------
// two-heads

/** The JSON request of a reference case (or of rows of it). */
export function twoHeadsRequest({ features, token_ids }, extra = {}) {
  return {
    inputs: [
      { name: 'features', shape: features.dims, datatype: 'FP32', data: features.data },
      { name: 'token_ids', shape: token_ids.dims, datatype: 'INT64', data: token_ids.data },
    ],
    ...extra,
  };
}

/** Row `i` of a reference case, as a case of one row. */
function rowOf(c, i) {
  const [, seq, width] = c.features.dims;
  const per = (t, n) => ({ dims: [1, ...t.dims.slice(1)], data: t.data.slice(i * n, (i + 1) * n) });
  return { features: per(c.features, seq * width), token_ids: per(c.token_ids, 3), pooled: per(c.pooled, 6), class_id: { dims: [1], data: [c.class_id.data[i]] } };
}

function assertCase(outputs, c, what) {
  const pooled = outputs.pooled;
  const classId = outputs.class_id;
  assert.equal(pooled.datatype, 'FP32', what);
  assert.deepEqual(pooled.shape, c.pooled.dims, what);
  const diff = maxDiff(pooled.data, c.pooled.data);
  assert.ok(diff <= TOLERANCE, `${what}: |pooled - numpy| = ${diff}`);
  assert.equal(classId.datatype, 'INT64', what);
  assert.deepEqual(classId.shape, c.class_id.dims, what);
  assert.deepEqual(classId.data.map(Number), c.class_id.data, `${what}: class_id`);
}

const byName = (body) => Object.fromEntries(body.outputs.map((o) => [o.name, o]));
const caseName = (c) => `case batch ${c.features.dims[0]}, seq ${c.features.dims[1]}`;

/**
 * two-heads over HTTP: metadata (-1 dims, limits), JSON and binary tensors both ways, output
 * selection, FP16, refusals, and concurrent requests of different sequence lengths. Returns
 * the JSON answers (for comparing runtimes).
 */
export async function checkTwoHeads(url, ref, { maxBatch = 32, maxQueueRows = 512 } = {}) {
  // Metadata: the variable dims as -1, the bounds of `seq`, this server's limits.
  const metaResponse = await fetch(`${url}v2/models/two-heads`);
  assert.equal(metaResponse.status, 200);
  const meta = await metaResponse.json();
  assert.equal(meta.name, 'two-heads');
  assert.deepEqual(meta.versions, ['1.0.0']);
  assert.equal(meta.platform, 'brasa');
  assert.deepEqual(meta.inputs, [
    { name: 'features', datatype: 'FP32', shape: [-1, -1, 4] },
    { name: 'token_ids', datatype: 'INT64', shape: [-1, 3] },
  ]);
  assert.deepEqual(meta.outputs, [
    { name: 'pooled', datatype: 'FP32', shape: [-1, 6] },
    { name: 'class_id', datatype: 'INT64', shape: [-1] },
  ]);
  assert.equal(meta.parameters.max_batch, maxBatch, JSON.stringify(meta.parameters));
  assert.ok(Number.isInteger(meta.parameters.max_elements) && meta.parameters.max_elements > 0, JSON.stringify(meta.parameters));
  assert.deepEqual(meta.parameters.dims, { seq: { min: 1, max: 64 } });
  assert.equal((await fetch(`${url}v2/models/two-heads/versions/1.0.0/ready`)).status, 200);

  // JSON, every reference case (seq 1 and 64, batch 1 to 8): both outputs, in signature order.
  const answers = [];
  for (const c of ref.cases) {
    const response = await post(url, 'two-heads', twoHeadsRequest(c, { id: caseName(c) }));
    const text = await response.text();
    assert.equal(response.status, 200, `${caseName(c)}: ${text}`);
    const body = JSON.parse(text);
    assert.equal(body.id, caseName(c));
    assert.equal(body.model_name, 'two-heads');
    assert.equal(body.model_version, '1.0.0');
    assert.deepEqual(body.outputs.map((o) => o.name), ['pooled', 'class_id']);
    assertCase(byName(body), c, caseName(c));
    answers.push(body.outputs);
  }
  const c = ref.cases.find((k) => k.features.dims[0] > 1 && k.features.dims[1] > 1) ?? ref.cases[0];
  const batch = c.features.dims[0];

  // Nested JSON arrays are the same tensor as flat ones.
  const nested = twoHeadsRequest(c);
  nested.inputs[1].data = Array.from({ length: batch }, (_, i) => c.token_ids.data.slice(i * 3, i * 3 + 3));
  const nestedAnswer = await post(url, 'two-heads', nested);
  assert.equal(nestedAnswer.status, 200, await nestedAnswer.clone().text());
  assertCase(byName(await nestedAnswer.json()), c, 'nested token_ids');

  // `outputs` selects: only class_id.
  const only = await post(url, 'two-heads', twoHeadsRequest(c, { outputs: [{ name: 'class_id' }] }));
  assert.equal(only.status, 200, await only.clone().text());
  const onlyBody = await only.json();
  assert.deepEqual(onlyBody.outputs.map((o) => o.name), ['class_id']);
  assert.deepEqual(onlyBody.outputs[0], { name: 'class_id', datatype: 'INT64', shape: [batch], data: c.class_id.data });
  // ... and orders: class_id first, then pooled.
  const ordered = await (await post(url, 'two-heads', twoHeadsRequest(c, { outputs: [{ name: 'class_id' }, { name: 'pooled' }] }))).json();
  assert.deepEqual(ordered.outputs.map((o) => o.name), ['class_id', 'pooled']);

  // The binary tensor extension both ways, as tritonclient does it: FP32 and INT64 raw
  // little-endian bytes after the JSON header; every output back in binary.
  const features = Float32Array.from(c.features.data);
  const tokens = BigInt64Array.from(c.token_ids.data, BigInt);
  const binInputs = [
    { name: 'features', datatype: 'FP32', shape: c.features.dims, data: features },
    { name: 'token_ids', datatype: 'INT64', shape: c.token_ids.dims, data: tokens },
  ];
  const bin = await postBinary(url, 'two-heads', binaryRequest(binInputs, { id: 'bin', parameters: { binary_data_output: true } }));
  assert.equal(bin.status, 200, await bin.clone().text());
  assert.equal(bin.headers.get('content-type'), 'application/octet-stream');
  const parsed = await parseBinaryResponse(bin);
  assert.equal(parsed.header.id, 'bin');
  assert.deepEqual(parsed.header.outputs.map((o) => [o.name, o.parameters?.binary_data_size, 'data' in o]), [
    ['pooled', batch * 6 * 4, false],
    ['class_id', batch * 8, false],
  ]);
  assertCase(parsed.outputs, c, 'binary in, binary out');
  // The binary answer is bit for bit the JSON one.
  const json = byName((await (await post(url, 'two-heads', twoHeadsRequest(c))).json()));
  assert.deepEqual(parsed.outputs.pooled.data, json.pooled.data.map(Math.fround));
  assert.deepEqual(parsed.outputs.class_id.data, json.class_id.data);

  // Mixed: binary features, JSON token ids; pooled in binary, class_id in JSON.
  const mixed = await postBinary(
    url,
    'two-heads',
    binaryRequest([binInputs[0], { name: 'token_ids', datatype: 'INT64', shape: c.token_ids.dims, json: c.token_ids.data }], {
      outputs: [{ name: 'pooled', parameters: { binary_data: true } }, { name: 'class_id', parameters: { binary_data: false } }],
    }),
  );
  assert.equal(mixed.status, 200, await mixed.clone().text());
  const mixedParsed = await parseBinaryResponse(mixed);
  assert.equal(mixedParsed.outputs.pooled.binary, true);
  assert.equal(mixedParsed.outputs.class_id.binary, false);
  assertCase(mixedParsed.outputs, c, 'mixed binary and JSON');
  // Binary inputs, JSON outputs: a plain JSON answer.
  const jsonOut = await postBinary(url, 'two-heads', binaryRequest(binInputs));
  assert.equal(jsonOut.status, 200);
  assert.equal(jsonOut.headers.get('inference-header-content-length'), null);
  assertCase(byName(await jsonOut.json()), c, 'binary in, JSON out');

  // FP16 `features` (binary bits, and JSON numbers) are widened to the FP32 the model takes:
  // the same answer as FP32 of the same (half-rounded) values, and close to numpy's.
  const halfBits = Uint16Array.from(c.features.data, toHalfBits);
  const rounded = Array.from(halfBits, fromHalfBits);
  const viaFp32 = byName(await (await post(url, 'two-heads', twoHeadsRequest({ ...c, features: { dims: c.features.dims, data: rounded } }))).json());
  const halfBinary = await postBinary(url, 'two-heads', binaryRequest([{ name: 'features', datatype: 'FP16', shape: c.features.dims, data: halfBits }, binInputs[1]]));
  const halfJson = await post(url, 'two-heads', {
    inputs: [{ name: 'features', datatype: 'FP16', shape: c.features.dims, data: rounded }, twoHeadsRequest(c).inputs[1]],
  });
  for (const [what, response] of [['FP16 binary', halfBinary], ['FP16 JSON', halfJson]]) {
    const text = await response.text();
    assert.equal(response.status, 200, `${what}: ${text}`);
    const out = byName(JSON.parse(text));
    assert.ok(maxDiff(out.pooled.data, viaFp32.pooled.data) <= 1e-6, what);
    assert.deepEqual(out.class_id.data, viaFp32.class_id.data, what);
    assert.ok(maxDiff(out.pooled.data, c.pooled.data) <= 1e-2, `${what}: far from numpy`);
  }

  // Refusals, each naming the tensor (and axis).
  const ok = twoHeadsRequest(c);
  const withInput = (i, change) => ({ inputs: ok.inputs.map((t, k) => (k === i ? { ...t, ...change } : t)) });
  const seqs = (n) => ({ name: 'features', shape: [1, n, 4], datatype: 'FP32', data: new Array(n * 4).fill(0.5) });
  const tok = (ids, n = 1) => ({ name: 'token_ids', shape: [n, 3], datatype: 'INT64', data: ids });
  const rows = (n) => ({ inputs: [{ name: 'features', shape: [n, 2, 4], datatype: 'FP32', data: new Array(n * 8).fill(0.25) }, tok(new Array(n * 3).fill(1), n)] });
  const cases = [
    ['features as INT64', withInput(0, { datatype: 'INT64', data: c.features.data.map(Math.round) }), 'wrong_datatype', /`features`/],
    ['token_ids as FP32', withInput(1, { datatype: 'FP32' }), 'wrong_datatype', /`token_ids`.*INT64/],
    ['token_ids not integers', withInput(1, { data: c.token_ids.data.map((v) => v + 0.5) }), 'wrong_datatype', /`token_ids`/],
    ['unknown datatype', withInput(0, { datatype: 'FP8' }), 'wrong_datatype', /`features`/],
    ['seq over its bound', { inputs: [seqs(65), tok([1, 2, 3])] }, 'wrong_shape', /`features`.*dimension 1 is 65.*`seq` must be at most 64/],
    ['seq of 0', { inputs: [{ ...seqs(0), data: [] }, tok([1, 2, 3])] }, 'wrong_shape', /`features`.*dimension 1 is 0/],
    ['features width', { inputs: [{ name: 'features', shape: [1, 2, 3], datatype: 'FP32', data: new Array(6).fill(0) }, tok([1, 2, 3])] }, 'wrong_shape', /`features`.*dimension 2 is 3, but it must be 4/],
    ['features rank', { inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: new Array(8).fill(0) }, tok([1, 2, 3])] }, 'wrong_shape', /`features`.*rank/],
    ['token count', { inputs: [seqs(2), { name: 'token_ids', shape: [1, 4], datatype: 'INT64', data: [1, 2, 3, 4] }] }, 'wrong_shape', /`token_ids`.*dimension 1 is 4, but it must be 3/],
    ['batches disagree', { inputs: [seqs(2), tok([1, 2, 3, 4, 5, 6], 2)] }, 'wrong_shape', /`(features|token_ids)`.*dimension 0 is [12], but the batch is [12]/],
    ['negative dim', withInput(0, { shape: [batch, -1, 4] }), 'wrong_shape', /`features`/],
    ['token id 16', { inputs: [seqs(2), tok([1, 16, 3])] }, 'out_of_range', /`token_ids`.*16.*range/],
    ['token id -1', { inputs: [seqs(2), tok([-1, 2, 3])] }, 'out_of_range', /`token_ids`/],
    ['token id beyond int64', `{"inputs":[{"name":"features","shape":[1,1,4],"datatype":"FP32","data":[0,0,0,0]},{"name":"token_ids","shape":[1,3],"datatype":"INT64","data":[1,2,99999999999999999999]}]}`, 'out_of_range', /`token_ids`/],
    ['missing token_ids', { inputs: [seqs(2)] }, 'unknown_input', /`token_ids`/],
    ['NaN feature', `{"inputs":[{"name":"features","shape":[1,1,4],"datatype":"FP32","data":[0,1e39,0,0]},{"name":"token_ids","shape":[1,3],"datatype":"INT64","data":[1,2,3]}]}`, 'non_finite', /`features`/],
    ['unknown output', { ...ok, outputs: [{ name: 'logits' }] }, 'unknown_output', /`pooled`, `class_id`/],
    ['batch over maxBatch', rows(maxBatch + 1), 'batch_too_large'],
    ['batch over the queue', rows(Math.max(maxBatch, maxQueueRows) + 1), 'batch_too_large'],
  ];
  for (const [what, body, code, message] of cases) {
    const r = await refusal(post(url, 'two-heads', body), what);
    assert.equal(r.status, 400, `${what}: ${r.text}`);
    assert.equal(r.code, code, `${what}: ${r.text}`);
    if (message) assert.match(r.error, message, `${what}: ${r.error}`);
  }
  // A binary INT64 blob whose size is not whole elements.
  const torn = binaryRequest([binInputs[0], { ...binInputs[1], data: new Uint8Array(tokens.byteLength - 3) }]);
  const tornRefusal = await refusal(postBinary(url, 'two-heads', torn), 'torn INT64 blob');
  assert.deepEqual([tornRefusal.status, tornRefusal.code], [400, 'malformed_request'], tornRefusal.text);

  // Concurrent single-row requests of every sequence length, all at once (the batcher only
  // joins requests whose `seq` agree): each answer is its own row's.
  const singles = ref.cases.flatMap((k) => Array.from({ length: k.features.dims[0] }, (_, i) => rowOf(k, i)));
  // Twice over: 48 rows, within the queue (the test servers allow 64), so none may be refused.
  const burst = [...singles, ...singles];
  assert.ok(burst.length <= maxQueueRows, 'the burst must fit the queue');
  const metricsBefore = await (await fetch(`${url}metrics`)).text();
  const responses = await Promise.all(burst.map((row) => post(url, 'two-heads', twoHeadsRequest(row)).then(async (r) => ({ status: r.status, body: await r.json() }))));
  responses.forEach(({ status, body }, i) => {
    const what = `concurrent request ${i} (seq ${burst[i].features.dims[1]})`;
    assert.equal(status, 200, `${what}: ${JSON.stringify(body)}`);
    assertCase(byName(body), burst[i], what);
  });
  // And whole cases of different lengths concurrently, mixed with single rows.
  const mixedBurst = [...ref.cases, ...singles];
  const mixedAnswers = await Promise.all(mixedBurst.map((k) => post(url, 'two-heads', twoHeadsRequest(k)).then((r) => r.json())));
  mixedAnswers.forEach((body, i) => assertCase(byName(body), mixedBurst[i], `mixed burst ${i}`));
  const inferred = (text) => Number(/^brasa_inferences_total\{[^}]*model="two-heads"[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
  const metricsAfter = await (await fetch(`${url}metrics`)).text();
  const rowsSent = burst.length + mixedBurst.reduce((n, k) => n + k.features.dims[0], 0);
  assert.equal(inferred(metricsAfter) - inferred(metricsBefore), rowsSent, metricsAfter);
  assert.match(metricsAfter, /^brasa_requests_total\{backend="cpu",model="two-heads",outcome="ok",version="1.0.0"\} \d+/m);

  // A result that overflows (finite inputs, no declared range) is refused, 400 naming the
  // output, and only for its own request: good requests batched with it get their answers.
  // (The model averages over `seq`: its sum of 3.4e38s overflows once `seq` is 2 or more.)
  const seq = Math.max(...singles.map((k) => k.features.dims[1]));
  const overflowing = { inputs: [{ name: 'features', shape: [1, seq, 4], datatype: 'FP32', data: new Array(seq * 4).fill(3.4e38) }, tok([1, 2, 3])] };
  const alone = await refusal(post(url, 'two-heads', overflowing), 'overflowing result');
  assert.deepEqual([alone.status, alone.code], [400, 'invalid_input'], alone.text);
  assert.match(alone.error, /output `pooled`.*not finite/);
  const neighbours = singles.filter((k) => k.features.dims[1] === seq);
  const together = [...neighbours, ...neighbours];
  const [bad, ...good] = await Promise.all(
    [overflowing, ...together.map((k) => twoHeadsRequest(k))].map((body) => post(url, 'two-heads', body).then(async (r) => ({ status: r.status, body: await r.json() }))),
  );
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  good.forEach(({ status, body }, i) => {
    assert.equal(status, 200, `request batched with an overflowing one: ${JSON.stringify(body)}`);
    assertCase(byName(body), together[i], `neighbour ${i}`);
  });
  // Still serving mnist beside it.
  assert.equal((await post(url, 'mnist', request(new Array(784).fill(0.5)))).status, 200);
  return answers;
}

// ---------------------------------------------------------------------------------------------
// Load

/**
 * `requests` single-row requests from `concurrency` clients; every answer checked against
 * numpy. Resolves to throughput and latency percentiles.
 */
export async function loadTest(url, ref, { concurrency, requests }) {
  const latencies = [];
  const statuses = {};
  let next = 0;
  const bodies = ref.items.map((item) => JSON.stringify(request(item.pixels, { outputs: [{ name: 'logits' }] })));
  const started = performance.now();
  async function client() {
    for (let i = next++; i < requests; i = next++) {
      const k = i % ref.items.length;
      const t = performance.now();
      const response = await infer(url, bodies[k]);
      const body = await response.json();
      latencies.push(performance.now() - t);
      statuses[response.status] = (statuses[response.status] ?? 0) + 1;
      if (response.status === 200) {
        const diff = maxDiff(body.outputs[0].data, ref.items[k].logits);
        assert.ok(diff <= TOLERANCE, `request ${i} (${ref.items[k].name}) under load: diff ${diff}`);
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return { requests, concurrency, rps: requests / seconds, p50: at(0.5), p99: at(0.99), statuses };
}

/** Sum and count of one model's batch-size histogram in a Prometheus text exposition. */
export function batchSizes(metricsText, model = 'mnist') {
  const value = (suffix, extra = '') => {
    const re = new RegExp(`^brasa_batch_size_${suffix}\\{([^}]*)\\} (\\S+)$`, 'gm');
    for (const m of metricsText.matchAll(re)) if (m[1].includes(`model="${model}"`) && m[1].includes(extra)) return Number(m[2]);
    return 0;
  };
  const sum = value('sum');
  const count = value('count');
  const one = value('bucket', 'le="1"');
  return { sum, count, mean: count ? sum / count : 0, largerThanOne: count - one };
}

/** A burst of 16-row requests past the queue bound gets 503s with Retry-After; the server keeps answering. */
export async function checkOverload(url, ref, burst) {
  const rows = 16;
  const body = JSON.stringify(request(Array.from({ length: rows }, () => ref.items[0].pixels).flat(), { outputs: [{ name: 'logits' }] }));
  const responses = await Promise.all(Array.from({ length: burst }, () => infer(url, body).then(async (r) => ({ status: r.status, retry: r.headers.get('retry-after'), body: await r.json() }))));
  const refused = responses.filter((r) => r.status === 503);
  const ok = responses.filter((r) => r.status === 200);
  assert.ok(refused.length > 0, `no 503 in a burst of ${burst}`);
  assert.ok(ok.length > 0, 'nothing answered in the burst');
  assert.equal(ok.length + refused.length, burst, `unexpected statuses: ${[...new Set(responses.map((r) => r.status))]}`);
  for (const r of refused) {
    assert.equal(r.body.code, 'overloaded');
    assert.ok(Number(r.retry) >= 1, `Retry-After ${r.retry}`);
  }
  for (const r of ok) {
    assert.equal(r.body.outputs[0].data.length, rows * 10);
    for (let i = 0; i < rows; i++) assert.ok(maxDiff(r.body.outputs[0].data.slice(i * 10, i * 10 + 10), ref.items[0].logits) <= TOLERANCE);
  }
  const after = await infer(url, body);
  assert.equal(after.status, 200, 'the server stopped answering after the overload');
  return { burst, refused: refused.length, ok: ok.length };
}

// ---------------------------------------------------------------------------------------------
// Versions side by side

/**
 * mnist served under a pinned list of 1.0.0 and 1.1.0 (`BRASA_VERSIONS=mnist=1.0.0+1.1.0`):
 * metadata lists both, each version answers concurrent requests with numpy's logits of its own
 * weights (`v100`, `v110` for `input`), a request without a version reaches the newest, an
 * unknown version is 404, Triton's configuration states the policy, and the metrics and
 * statistics are labelled by each version.
 */
export async function checkVersions(url, { input, v100, v110 }) {
  const expected = { '1.0.0': v100, '1.1.0': v110 };
  const meta = await (await fetch(`${url}v2/models/mnist`)).json();
  assert.deepEqual(meta.versions, ['1.0.0', '1.1.0']);
  for (const v of Object.keys(expected)) assert.equal((await fetch(`${url}v2/models/mnist/versions/${v}/ready`)).status, 200, v);
  const at = (v) => fetch(`${url}v2/models/mnist${v ? `/versions/${v}` : ''}/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(request(input)) });
  const order = Array.from({ length: 24 }, (_, i) => (i % 2 ? '1.1.0' : '1.0.0'));
  const answers = await Promise.all(order.map((v) => at(v).then(async (r) => ({ status: r.status, body: await r.json() }))));
  answers.forEach(({ status, body }, i) => {
    const v = order[i];
    assert.equal(status, 200, `${v}: ${JSON.stringify(body)}`);
    assert.equal(body.model_version, v);
    assert.ok(maxDiff(body.outputs[0].data, expected[v]) <= TOLERANCE, `request ${i} to ${v}: |endpoint - numpy| = ${maxDiff(body.outputs[0].data, expected[v])}`);
  });
  const newest = await (await at(null)).json();
  assert.equal(newest.model_version, '1.1.0');
  assert.ok(maxDiff(newest.outputs[0].data, v110) <= TOLERANCE);
  const unknown = await refusal(at('9.9.9'), 'unknown version');
  assert.deepEqual([unknown.status, unknown.code], [404, 'unknown_version'], unknown.text);
  const config = await (await fetch(`${url}v2/models/mnist/versions/1.0.0/config`)).json();
  assert.deepEqual(config.version_policy, { specific: { versions: ['1.0.0', '1.1.0'] } });
  const metrics = await (await fetch(`${url}metrics`)).text();
  for (const v of Object.keys(expected)) {
    for (const family of ['brasa_requests_total', 'brasa_inferences_total', 'brasa_model_ready', 'brasa_compute_seconds_count']) {
      assert.match(metrics, new RegExp(`^${family}\\{[^}]*model="mnist"[^}]*version="${v.replace(/\./g, '\\.')}"[^}]*\\} [1-9]`, 'm'), `${family} ${v}:\n${metrics}`);
    }
  }
  const stats = (await (await fetch(`${url}v2/models/mnist/stats`)).json()).model_stats;
  assert.deepEqual(stats.map((s) => [s.version, s.inference_count]), [['1.0.0', 12], ['1.1.0', 13]]);
}
