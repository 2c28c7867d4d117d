// What every brasa endpoint must do, checked over HTTP from this process: the same checks
// for the Node, Deno and workerd examples.
import assert from 'node:assert/strict';

import { TOLERANCE, maxDiff } from '../support.mjs';

export const infer = (url, body, init = {}) =>
  fetch(`${url}v2/models/mnist/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body), ...init });

export const request = (pixels, extra = {}) => ({ inputs: [{ name: 'pixels', shape: [pixels.length / 784, 784], datatype: 'FP32', data: pixels }], ...extra });

/** Health, metadata, numpy agreement (one batch and one request per item), a tritonclient request. */
export async function checkBasics(url, ref) {
  assert.equal((await fetch(`${url}v2/health/live`)).status, 200);
  const ready = await fetch(`${url}v2/health/ready`);
  assert.equal(ready.status, 200, await ready.text());
  const meta = await (await fetch(`${url}v2/models/mnist`)).json();
  assert.equal(meta.name, 'mnist');
  assert.deepEqual(meta.versions, ['1.0.0']);
  assert.deepEqual(meta.inputs[0], { name: 'pixels', datatype: 'FP32', shape: [-1, 1, 28, 28] });
  assert.equal((await fetch(`${url}v2/models/mnist/versions/1.0.0`)).status, 200);

  const batch = await infer(url, request(ref.items.flatMap((i) => i.pixels), { id: 'batch-1' }));
  assert.equal(batch.status, 200);
  const body = await batch.json();
  assert.equal(body.id, 'batch-1');
  assert.equal(body.model_version, '1.0.0');
  const logits = body.outputs.find((o) => o.name === 'logits');
  assert.deepEqual(logits.shape, [ref.items.length, 10]);
  ref.items.forEach((item, i) => {
    const diff = maxDiff(logits.data.slice(i * 10, i * 10 + 10), item.logits);
    assert.ok(diff <= TOLERANCE, `${item.name}: |endpoint - numpy| = ${diff}`);
  });
  const labels = body.outputs.find((o) => o.name === 'label').data;
  ref.items.forEach((item, i) => { if (item.label !== null) assert.equal(labels[i], item.label, item.name); });

  // Concurrent single requests: each answer is exactly its own row.
  const singles = await Promise.all(ref.items.map((item) => infer(url, request(item.pixels)).then((r) => r.json())));
  singles.forEach((s, i) => assert.ok(maxDiff(s.outputs[0].data, ref.items[i].logits) <= TOLERANCE, ref.items[i].name));

  // The exact JSON tritonclient.http sends (InferInput.set_data_from_numpy(binary_data=False),
  // InferRequestedOutput(binary_data=False)), including its parameters.
  const triton = `{"id":"42","inputs":[{"name":"pixels","shape":[1,1,28,28],"datatype":"FP32","parameters":{"binary_data_size":null},"data":${JSON.stringify(ref.items[1].pixels)}}],"outputs":[{"name":"probabilities","parameters":{"binary_data":false}},{"name":"label","parameters":{"binary_data":false}}],"parameters":{"sequence_id":0,"priority":0}}`;
  const answer = await infer(url, triton.replace('"binary_data_size":null', '"binary_data_size":0'));
  assert.equal(answer.status, 200);
  const t = await answer.json();
  assert.equal(t.id, '42');
  assert.deepEqual(t.outputs.map((o) => o.name), ['probabilities', 'label']);
  assert.equal(t.outputs[1].data[0], ref.items[1].label);
  return logits.data;
}

/** Every bad request gets its 4xx with a JSON error naming the problem. */
export async function checkBadRequests(url) {
  const px = new Array(784).fill(0.5);
  const cases = [
    ['malformed JSON', infer(url, '{"inputs": ['), 400, 'malformed_request'],
    ['not an infer request', infer(url, '[1,2,3]'), 400, 'malformed_request'],
    ['unknown input', infer(url, { inputs: [{ name: 'image', shape: [1, 784], datatype: 'FP32', data: px }] }), 400, 'unknown_input'],
    ['no inputs', infer(url, { inputs: [] }), 400, 'unknown_input'],
    ['wrong shape', infer(url, { inputs: [{ name: 'pixels', shape: [1, 783], datatype: 'FP32', data: px.slice(1) }] }), 400, 'wrong_shape'],
    ['wrong datatype', infer(url, { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'INT8', data: px }] }), 400, 'wrong_datatype'],
    ['wrong element count', infer(url, { inputs: [{ name: 'pixels', shape: [2, 784], datatype: 'FP32', data: px }] }), 400, 'wrong_element_count'],
    ['non-finite value', infer(url, `{"inputs":[{"name":"pixels","shape":[1,784],"datatype":"FP32","data":[1e39${',0'.repeat(783)}]}]}`), 400, 'non_finite'],
    ['string value', infer(url, { inputs: [{ name: 'pixels', shape: [1, 784], datatype: 'FP32', data: ['NaN', ...px.slice(1)] }] }), 400, 'non_finite'],
    ['batch too large', infer(url, { inputs: [{ name: 'pixels', shape: [2000, 784], datatype: 'FP32', data: [] }] }), 400, 'batch_too_large'],
    ['unknown output', infer(url, request(px, { outputs: [{ name: 'boxes' }] })), 400, 'unknown_output'],
    ['oversized body', infer(url, 'x'.repeat(9 * 1024 * 1024)), 413, 'body_too_large'],
    ['unknown model', fetch(`${url}v2/models/resnet/infer`, { method: 'POST', body: '{}' }), 404, 'unknown_model'],
    ['unknown version', fetch(`${url}v2/models/mnist/versions/9.9.9/infer`, { method: 'POST', body: JSON.stringify(request(px)) }), 404, 'unknown_version'],
    ['wrong method', fetch(`${url}v2/models/mnist/infer`), 405, 'method_not_allowed'],
  ];
  for (const [what, pending, status, code] of cases) {
    const response = await pending;
    const text = await response.text();
    assert.equal(response.status, status, `${what}: ${text}`);
    const body = JSON.parse(text);
    assert.equal(body.code, code, `${what}: ${text}`);
    assert.ok(typeof body.error === 'string' && body.error.length > 10, `${what}: ${text}`);
  }
  // Still serving.
  assert.equal((await infer(url, request(px))).status, 200);
}

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

/** Sum and count of the batch-size histogram in a Prometheus text exposition. */
export function batchSizes(metricsText) {
  const sum = Number(/^brasa_batch_size_sum\{[^}]*\} (\S+)$/m.exec(metricsText)?.[1] ?? 0);
  const count = Number(/^brasa_batch_size_count\{[^}]*\} (\S+)$/m.exec(metricsText)?.[1] ?? 0);
  const one = Number(/^brasa_batch_size_bucket\{[^}]*le="1"\} (\S+)$/m.exec(metricsText)?.[1] ?? 0);
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
