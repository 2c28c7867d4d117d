// A forward pass that aborts the wasm instance, under Node, with a real model: PP-OCRv4's text
// detector (`brasa build --onnx`) takes images whose height and width are multiples of 32;
// given x of dims [1, 3, 30, 50], burn panics inside the graph and, built with
// panic = "abort", the instance traps (`WebAssembly.RuntimeError: unreachable`). Its state is
// undefined from then on, so brasa never calls into it again:
// - the failing run rejects with `internal` naming the trap (it does not hang, and the
//   process lives on);
// - that model, and a second model of the package loaded before (same instance), reject
//   every later call with `internal` ("load the model again") without calling into wasm,
//   their metrics included (no raw "stale object" error);
// - a new loadModel of the package runs on a fresh instance and gives the same answer as
//   before, which is onnxruntime's (tests/reference/onnx_reference.py);
// - a model of another package (silero-vad, its own instance) is not affected;
// - the KServe handler, in process, serving ocr-det alone (so its own metrics live in the
//   instance that aborts): 500 `internal`, readiness says why, the model is loaded again from
//   the registry's cache and answers as before, and the metrics render from a live instance.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { BrasaError, MemoryCache, createHandler, loadModel } from '../../npm/dist/node.js';
import { makeServingRegistry } from '../serving/models.mjs';
import { CACHE, serve } from '../support.mjs';

const TOLERANCE = 1e-4;
/** Longest a run may take to settle (the failing one included) before the test calls it a hang. */
const SETTLE_MS = 60_000;
/** A run refused without calling into wasm takes no time. */
const QUICK_MS = 1_000;

const unhandled = [];
const onUnhandled = (reason) => unhandled.push(reason);
process.on('unhandledRejection', onUnhandled);
after(() => process.off('unhandledRejection', onUnhandled));

async function pkgOf(name) {
  return (await import(pathToFileURL(join(CACHE, 'packages', name, 'index.js')).href)).default;
}

// The single-threaded build: these tests are about the models that share one wasm instance
// (a threaded model has an instance, and a Worker, of its own: tests/node/cpu-builds.test.mjs).
function load(pkg) {
  return loadModel(pkg, { weights: join(CACHE, 'packages', pkg.name, 'weights.bpk'), backend: 'cpu', threads: false });
}

function reference(name) {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures', `${name}-reference.json`), 'utf8'));
}

/** `promise`, or a failure naming `what` if it has not settled after `ms`. */
function settles(promise, what, ms = SETTLE_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not settled after ${ms} ms (hung)`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The promise rejects with a BrasaError of `code` whose message matches `pattern`; returns the error. */
async function rejectsWith(promise, what, code, pattern) {
  let error = null;
  try {
    await settles(promise, what);
  } catch (err) {
    error = err;
  }
  assert.ok(error, `${what}: resolved`);
  assert.ok(error instanceof BrasaError, `${what}: ${error?.stack ?? error}`);
  assert.equal(error.code, code, `${what}: ${error.message}`);
  assert.match(error.message, pattern, what);
  assert.doesNotMatch(error.message, /stale object/i, `${what}: a raw wasm-bindgen error`);
  return error;
}

/** Synchronous `call` throws a BrasaError of `code` whose message matches `pattern`. */
function throwsWith(call, what, code, pattern) {
  assert.throws(call, (err) => {
    assert.ok(err instanceof BrasaError, `${what}: ${err?.stack ?? err}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    assert.match(err.message, pattern, what);
    return true;
  }, what);
}

const OCR = reference('ocr-det');
const VALID = OCR.cases.find((c) => c.inputs[0].dims.join('x') === '1x3x64x96');
const valid = () => ({ x: { dtype: 'float32', dims: VALID.inputs[0].dims, data: Float32Array.from(VALID.inputs[0].data) } });
/** Height 30 and width 50: no multiples of 32, which the graph cannot compute. */
const TRAP = { x: { dtype: 'float32', dims: [1, 3, 30, 50], data: new Float32Array(3 * 30 * 50).fill(0.5) } };
const DEAD = /the wasm instance of ocr-det \(cpu\) aborted while running: .*unreachable.*; load the model again/;

function checkAnswer(out, what) {
  const want = VALID.outputs[0];
  const got = out[want.name];
  assert.deepEqual(got.dims, want.dims, what);
  let worst = 0;
  for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i] - want.data[i]));
  assert.ok(got.data.length === want.data.length && worst <= TOLERANCE, `${what}: |brasa - onnxruntime| = ${worst}`);
  return got;
}

test('a run that aborts the wasm instance rejects `internal`; the models of that instance stay dead; a new load works', async () => {
  assert.ok(VALID, 'the ocr-det reference has no 1x3x64x96 case');
  const pkg = await pkgOf('ocr-det');
  const model = await load(pkg);
  const sibling = await load(pkg); // the same package and backend: the same wasm instance
  const other = await load(await pkgOf('silero-vad')); // another package: its own instance

  const before = checkAnswer(await settles(model.run(valid()), 'valid image'), 'before the trap');
  checkAnswer(await settles(sibling.run(valid()), 'valid image (sibling)'), 'sibling before the trap');

  // The trap: rejects (not hangs), `internal`, naming the trap.
  const trap = await rejectsWith(model.run(TRAP), 'x [1, 3, 30, 50]', 'internal', DEAD);
  assert.ok(trap.cause instanceof WebAssembly.RuntimeError, `the cause is the trap: ${trap.cause}`);
  console.log(`# the failing run: ${trap.message}`);

  // Every model of the dead instance refuses at once, without calling into it.
  for (const [m, what] of [
    [model, 'the same model'],
    [sibling, 'a model of the same package loaded before the trap'],
  ]) {
    const t = performance.now();
    await rejectsWith(m.run(valid()), `${what}: a valid image`, 'internal', DEAD);
    const ms = performance.now() - t;
    assert.ok(ms < QUICK_MS, `${what}: took ${ms.toFixed(0)} ms to refuse`);
    await rejectsWith(m.run(TRAP), `${what}: the trap again`, 'internal', DEAD);
    await rejectsWith(m.setWeights(readFileSync(join(CACHE, 'packages/ocr-det/weights.bpk'))), `${what}: setWeights`, 'internal', DEAD);
    throwsWith(() => m.metrics(), `${what}: metrics()`, 'internal', DEAD);
    throwsWith(() => m.metricsText(), `${what}: metricsText()`, 'internal', DEAD);
    assert.equal(m.disposed, false);
    assert.deepEqual(m.info.signature, pkg.signature, `${what}: info still answers (it is JS)`);
  }

  // A new load of the package: a fresh instance, the same answer as before.
  const t = performance.now();
  const fresh = await settles(load(pkg), 'loadModel after the trap');
  console.log(`# loadModel after the trap: ${(performance.now() - t).toFixed(0)} ms`);
  const again = checkAnswer(await settles(fresh.run(valid()), 'valid image (fresh model)'), 'after the trap');
  assert.deepEqual(again.data, before.data, 'the fresh instance gives the answer of before, bit for bit');
  assert.match(fresh.metricsText(), /brasa_requests_total\{[^}]*outcome="ok"[^}]*\} 1$/m);
  // Refused feeds are ordinary errors: the fresh instance lives on.
  await rejectsWith(fresh.run({ x: { dtype: 'float32', dims: [1, 4, 64, 96], data: new Float32Array(4 * 64 * 96) } }), 'four channels', 'invalid_input', /`x`/);
  checkAnswer(await settles(fresh.run(valid()), 'valid image after a refused one'), 'after an invalid_input');

  // The old models stay dead after the reset (their objects belong to the old instance), and
  // dispose without touching the new one.
  await rejectsWith(sibling.run(valid()), 'the sibling after the reset', 'internal', DEAD);
  throwsWith(() => sibling.metrics(), 'the sibling after the reset: metrics()', 'internal', DEAD);
  model.dispose();
  sibling.dispose();
  await rejectsWith(model.run(valid()), 'the disposed model', 'disposed', /disposed/);
  checkAnswer(await settles(fresh.run(valid()), 'valid image after the old models were disposed'), 'after dispose of the dead models');

  // Another package's model never noticed.
  const vad = reference('silero-vad');
  const [chunk] = vad.chunks;
  const out = await settles(
    other.run({
      input: { dtype: 'float32', dims: chunk.input.dims, data: Float32Array.from(chunk.input.data) },
      sr: { dtype: 'int64', dims: [], data: BigInt64Array.from([BigInt(vad.sr)]) },
      state: { dtype: 'float32', dims: vad.state.dims, data: Float32Array.from(vad.state.data) },
    }),
    'silero-vad',
  );
  assert.ok(Math.abs(out.output.data[0] - chunk.output.data[0]) <= TOLERANCE, `silero-vad: ${out.output.data[0]} vs ${chunk.output.data[0]}`);

  // A second trap, on the fresh instance: the same story once more.
  await rejectsWith(fresh.run(TRAP), 'the trap on the fresh instance', 'internal', DEAD);
  await rejectsWith(fresh.run(valid()), 'the fresh model after its trap', 'internal', DEAD);
  const third = await settles(load(pkg), 'loadModel after the second trap');
  assert.deepEqual(checkAnswer(await settles(third.run(valid()), 'third instance'), 'third instance').data, before.data);

  fresh.dispose();
  third.dispose();
  other.dispose();
  assert.deepEqual(unhandled.map(String), [], 'unhandled rejections');
});

test('the KServe handler drops the aborted model, loads it again and keeps its metrics in a live instance', async () => {
  const pkg = await pkgOf('ocr-det');
  const registry = makeServingRegistry(undefined, { models: ['ocr-det'] });
  const upstream = await serve(registry.dir);
  // ocr-det alone: the handler's metrics live in ocr-det's instance, the one that aborts.
  const handler = createHandler({ models: [pkg], registry: upstream.url, load: { cache: new MemoryCache() }, updateInterval: 0 });
  const call = (path, body) =>
    settles(
      handler.fetch(new Request(new URL(path, 'http://brasa.test/'), body === undefined ? undefined : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })),
      `${path}`,
    );
  const image = (x, id) => ({ id, inputs: [{ name: 'x', shape: x.dims, datatype: 'FP32', data: Array.from(x.data) }] });
  const answer = async (response, what) => {
    const text = await response.text();
    assert.equal(response.status, 200, `${what}: ${text.slice(0, 300)}`);
    const body = JSON.parse(text);
    return checkAnswer({ [body.outputs[0].name]: { dims: body.outputs[0].shape, data: Float32Array.from(body.outputs[0].data) } }, what);
  };
  try {
    await settles(handler.start(), 'handler.start()');
    const before = await answer(await call('v2/models/ocr-det/infer', image(VALID.inputs[0], 'before')), 'before the trap');
    assert.match(handler.metrics(), /^brasa_requests_total\{[^}]*model="ocr-det"[^}]*outcome="ok"[^}]*\} 1$/m);

    // Requests queued behind the failing one (another image size: not in its batch) settle:
    // 503 not_ready, as the model they were queued for is gone.
    const pending = call('v2/models/ocr-det/infer', image(TRAP.x, 'trap'));
    const behind = [call('v2/models/ocr-det/infer', image(VALID.inputs[0], 'behind 0')), call('v2/models/ocr-det/infer', image(VALID.inputs[0], 'behind 1'))];
    const failing = await pending;
    const text = await failing.text();
    assert.equal(failing.status, 500, text);
    assert.equal(JSON.parse(text).code, 'internal', text);
    assert.match(JSON.parse(text).error, DEAD, text);
    const behindStatus = [];
    for (const r of await Promise.all(behind)) {
      const body = await r.text();
      behindStatus.push(r.status);
      assert.ok(r.status === 200 || (r.status === 503 && JSON.parse(body).code === 'not_ready' && r.headers.get('retry-after') === '1'), `behind: ${r.status} ${body}`);
    }

    // The metrics never throw a stale-object error, the handler's own included.
    assert.equal(typeof handler.metrics(), 'string');
    const ready = await call('v2/health/ready');
    const readyText = await ready.text();
    assert.ok([200, 503].includes(ready.status), readyText);
    if (ready.status === 503) assert.match(readyText, /ocr-det: loading again: the wasm instance of ocr-det \(cpu\) aborted/, readyText);
    console.log(`# handler: queued behind the trap ${behindStatus.join(', ')}, readiness right after it ${ready.status}`);

    // The next request waits for the reload and is answered as before.
    const after = await answer(await call('v2/models/ocr-det/infer', image(VALID.inputs[0], 'after')), 'after the trap');
    assert.deepEqual(after.data, before.data, 'the same answer as before the trap');
    assert.equal((await call('v2/health/ready')).status, 200);
    const metrics = handler.metrics();
    assert.match(metrics, /^brasa_model_ready\{[^}]*model="ocr-det"[^}]*\} 1$/m, metrics);
    assert.match(metrics, /^brasa_requests_total\{[^}]*model="ocr-det"[^}]*outcome="ok"[^}]*\} \d+$/m, metrics);
    const rendered = await call('metrics');
    assert.equal(rendered.status, 200);
    assert.doesNotMatch(await rendered.text(), /stale/i);
  } finally {
    handler.close();
    upstream.stop();
    registry.remove();
  }
  assert.deepEqual(unhandled.map(String), [], 'unhandled rejections');
});
