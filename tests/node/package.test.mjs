// The `brasa` npm package under Node 20: the exports map picks the Node entry, which runs the
// CPU wasm build and reads weights from files, file: URLs, bytes or HTTP (`brasa serve`).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { BrasaError, BrasaModel, loadModel } from 'brasa';
import { BAD_INPUT_ROUND, CACHE, TOLERANCE, maxDiff, reference, serve, weightsPath } from '../support.mjs';

const REF = reference();
const WEIGHTS = readFileSync(weightsPath());
let server;

before(async () => { server = await serve(dirname(weightsPath())); });
after(() => server?.stop());

test('the exports map resolves brasa to its Node entry', () => {
  assert.match(import.meta.resolve('brasa'), /\/npm\/dist\/node\.js$/);
});

test('auto runs on CPU under Node and says why; webgpu is a clear error', async () => {
  const fallbacks = [];
  const model = await loadModel('mnist', { weights: WEIGHTS, onFallback: (e) => fallbacks.push(e) });
  assert.ok(model instanceof BrasaModel);
  assert.equal(model.backend, 'cpu');
  assert.match(model.fallbackReason, /navigator\.gpu is undefined/);
  assert.equal(fallbacks.length, 1);
  model.dispose();
  await assert.rejects(loadModel('mnist', { weights: WEIGHTS, backend: 'webgpu' }), (e) => e instanceof BrasaError && e.code === 'backend_unavailable');
  const cpu = await loadModel('mnist', { weights: WEIGHTS, backend: 'cpu' });
  assert.equal(cpu.fallbackReason, null);
  cpu.dispose();
});

test('logits match numpy within 1e-4, singly, batched and concurrently', async () => {
  const model = await loadModel('mnist', { weights: weightsPath(), backend: 'cpu' });
  const batch = await model.run(new Float32Array(REF.items.flatMap((i) => i.pixels)));
  assert.equal(batch.batch, REF.items.length);
  const concurrent = await Promise.all(REF.items.map((i) => model.run(i.pixels)));
  REF.items.forEach((item, i) => {
    assert.ok(maxDiff(batch.logits.subarray(i * 10, i * 10 + 10), item.logits) <= TOLERANCE, item.name);
    assert.ok(maxDiff(concurrent[i].logits, item.logits) <= TOLERANCE, item.name);
    const p = concurrent[i].probabilities;
    assert.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    if (item.label !== null) assert.equal(concurrent[i].label, item.label, item.name);
  });
  model.dispose();
});

test('weights load from a path, a file: URL, bytes and HTTP', async () => {
  const sources = [weightsPath(), pathToFileURL(weightsPath()), WEIGHTS.buffer.slice(WEIGHTS.byteOffset, WEIGHTS.byteOffset + WEIGHTS.byteLength), `${server.url}mnist.bpk`];
  const pixels = REF.items[0].pixels;
  for (const weights of sources) {
    const model = await loadModel('mnist', { weights, backend: 'cpu' });
    assert.ok(maxDiff((await model.run(pixels)).logits, REF.items[0].logits) <= TOLERANCE, String(weights));
    model.dispose();
  }
});

test('missing weights and network failures are network errors', async () => {
  const network = (e) => e instanceof BrasaError && e.code === 'network';
  await assert.rejects(loadModel('mnist', { weights: join(CACHE, 'no-such.bpk') }), network);
  await assert.rejects(loadModel('mnist', { weights: `${server.url}no-such.bpk` }), (e) => network(e) && /404/.test(e.message));
  // A port nothing listens on: the connection is refused.
  const closed = await serve(dirname(weightsPath()));
  closed.stop();
  await new Promise((r) => setTimeout(r, 200));
  await assert.rejects(loadModel('mnist', { weights: `${closed.url}mnist.bpk` }), network);
});

test('bad input and bad weights give typed errors and the model keeps working', async () => {
  const model = await loadModel('mnist', { weights: WEIGHTS, backend: 'cpu' });
  globalThis.brasaUnderTest = model;
  globalThis.brasaWeights = new Uint8Array(WEIGHTS);
  const badInputRound = new Function(`${BAD_INPUT_ROUND}; return badInputRound;`)();
  const outcome = await badInputRound();
  for (const [name, error] of Object.entries(outcome.errors)) {
    assert.equal(error?.name, 'BrasaError', `${name} did not fail with a BrasaError`);
  }
  assert.equal(outcome.errors.nan.code, 'invalid_input');
  assert.match(outcome.errors.nan.message, /index 100 .* NaN/);
  assert.equal(outcome.errors.truncatedWeights.code, 'invalid_weights');
  assert.equal(outcome.errors.otherModel.code, 'unknown_model');
  assert.deepEqual(outcome.after, outcome.before);
  model.dispose();
  delete globalThis.brasaUnderTest;
});

test('setWeights swaps weights atomically; dispose ends the model', async () => {
  const model = await loadModel('mnist', { weights: WEIGHTS, backend: 'cpu' });
  const pixels = REF.items[1].pixels;
  const before = await model.run(pixels);
  await assert.rejects(model.setWeights(new Uint8Array(16)), (e) => e.code === 'invalid_weights');
  await model.setWeights(new Uint8Array(WEIGHTS));
  assert.deepEqual((await model.run(pixels)).logits, before.logits);
  const inflight = model.run(pixels);
  model.dispose();
  assert.deepEqual((await inflight).logits, before.logits, 'a run started before dispose completes');
  assert.equal(model.disposed, true);
  await assert.rejects(model.run(pixels), (e) => e.code === 'disposed');
});

test('squeezenet (imported from ONNX) matches onnx reference evaluator; mnist weights are refused for it', async () => {
  const dir = join(CACHE, 'models/squeezenet');
  const ref = JSON.parse(readFileSync(join(dir, 'squeezenet-reference.json'), 'utf8'));
  const model = await loadModel('squeezenet', { weights: join(dir, 'squeezenet.bpk'), backend: 'cpu' });
  assert.deepEqual(model.info.input.shape, [3, 224, 224]);
  assert.equal(model.info.outputKind, 'probabilities');
  const out = await model.run(Float32Array.from(ref.inputs.flat()));
  assert.equal(out.batch, 2);
  assert.equal(out.classes, 1000);
  ref.outputs.forEach((expected, i) => {
    assert.ok(maxDiff(out.logits.slice(i * 1000, (i + 1) * 1000), expected) < 1e-5);
    // The graph ends in a softmax: not taken a second time.
    assert.ok(maxDiff(out.probabilities.slice(i * 1000, (i + 1) * 1000), expected) < 1e-5);
    assert.equal(out.labels[i], ref.top1[i]);
  });
  await assert.rejects(model.run(new Float32Array(784)), (e) => e instanceof BrasaError && e.code === 'invalid_input');
  model.dispose();
  await assert.rejects(loadModel('squeezenet', { weights: WEIGHTS, backend: 'cpu' }), (e) => e instanceof BrasaError);
});
