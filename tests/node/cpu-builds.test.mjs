// The CPU builds of issue 13 under Node: the threaded build runs in a worker_threads Worker
// (with a Web Worker's scope shimmed for the glue and wasm-bindgen-rayon's pool), relaxed SIMD
// where V8 validates it (not Node 20's), and `threads`/`simd` refused up front when they make
// no sense. Results against the numpy reference.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';

import { loadModel } from '../../npm/dist/node.js';
import { CACHE, expectedLogits, loadPackage, makeRegistry, maxDiff, packageDir, reference, variantWeightsPath, weightsPath } from '../support.mjs';

const REF = reference();
const TOLERANCE = 2e-4;
// Relaxed SIMD ships in V8 11.4 (Chrome 114); Node 20 has V8 11.3, Node 22 V8 12.4.
const RELAXED = Number(process.versions.node.split('.')[0]) >= 22;
const weights = readFileSync(weightsPath());

let mnist;
before(async () => {
  mnist = await loadPackage('mnist');
  assert.ok(mnist.builds['cpu-threads'], 'the mnist package carries the threaded build (cargo xtask build)');
});

const batch = () => ({ pixels: { dtype: 'float32', dims: [REF.items.length, 1, 28, 28], data: Float32Array.from(REF.items.flatMap((i) => i.pixels)) } });
const expected = () => REF.items.flatMap((i) => i.logits);

async function refused(options, code, pattern) {
  await assert.rejects(loadModel(mnist, { weights, ...options }), (e) => {
    assert.equal(e.code, code, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('options', () => {
  test('threads and simd of the wrong kind are invalid_spec naming the option', async () => {
    for (const threads of [0, -1, 1.5, 65, 'two', true, null]) await refused({ threads }, 'invalid_spec', /invalid option `threads`: must be 'auto', false or a whole number from 1 to 64/);
    for (const simd of ['fast', true, 128]) await refused({ simd }, 'invalid_spec', /invalid option `simd`: must be 'auto', 'relaxed' or 'simd128'/);
    await refused({ wasm: { 'cpu-fast': weights } }, 'invalid_spec', /not `cpu-fast`/);
  });

  test(`simd: 'relaxed' ${RELAXED ? 'runs the relaxed-SIMD build' : "is backend_unavailable on Node 20 (V8 validates no relaxed SIMD)"}`, async () => {
    if (!RELAXED) return refused({ simd: 'relaxed' }, 'backend_unavailable', /simd: 'relaxed' cannot run here: the engine does not validate relaxed SIMD/);
    const model = await loadModel(mnist, { weights, simd: 'relaxed', threads: 1 });
    assert.equal(model.build.name, 'cpu-relaxed');
    model.dispose();
  });
});

describe('builds', () => {
  test("'auto' runs the threaded build in a worker_threads Worker with min(cores, 4) threads", async () => {
    const model = await loadModel(mnist, { weights });
    try {
      const cores = availableParallelism();
      if (cores < 2) {
        assert.equal(model.build.threads, 1);
        assert.match(model.build.reason, /single-threaded/);
        return;
      }
      assert.equal(model.build.name, RELAXED ? 'cpu-threads-relaxed' : 'cpu-threads');
      assert.equal(model.build.threads, Math.min(cores, 4));
      if (!RELAXED) assert.equal(model.build.reason, 'simd128: the engine does not validate relaxed SIMD');
      const { logits } = await model.run(batch());
      assert.ok(maxDiff(logits.data, expected()) <= TOLERANCE);
    } finally {
      model.dispose();
    }
  });

  for (const threads of [1, 2]) {
    test(`threads: ${threads}, simd128: ${threads === 1 ? 'cpu' : 'cpu-threads'} matches numpy`, async () => {
      const model = await loadModel(mnist, { weights, threads, simd: 'simd128' });
      try {
        assert.deepEqual([model.build.name, model.build.threads, model.build.relaxedSimd], [threads === 1 ? 'cpu' : 'cpu-threads', threads, false]);
        const { logits } = await model.run(batch());
        assert.ok(maxDiff(logits.data, expected()) <= TOLERANCE);
        assert.ok(model.memoryBytes > 0);
      } finally {
        model.dispose();
      }
    });
  }

  test('the threaded model keeps error codes, stays usable, and swaps weights in its Worker', async () => {
    const model = await loadModel(mnist, { weights, threads: 2 });
    const { input, v100, v110 } = expectedLogits();
    const logits = async () => (await model.run(Float32Array.from(input))).logits.data;
    try {
      assert.ok(maxDiff(await logits(), v100) <= TOLERANCE);
      await assert.rejects(model.run({ pixels: { dtype: 'float32', dims: [1, 1, 28, 27], data: new Float32Array(756) } }), (e) => e.name === 'BrasaError' && e.code === 'invalid_input' && /pixels/.test(e.message));
      await assert.rejects(model.setWeights(new Uint8Array([1, 2, 3])), (e) => e.code === 'invalid_weights');
      assert.ok(maxDiff(await logits(), v100) <= TOLERANCE);
      await model.setWeights(readFileSync(variantWeightsPath()));
      assert.ok(maxDiff(await logits(), v110) <= TOLERANCE);
      // Two models, two Workers: disposing one leaves the other running.
      const other = await loadModel(mnist, { weights, threads: 2 });
      model.dispose();
      assert.ok(maxDiff((await other.run(Float32Array.from(input))).logits.data, v100) <= TOLERANCE);
      other.dispose();
    } finally {
      model.dispose();
    }
    await assert.rejects(model.run(Float32Array.from(input)), (e) => e.code === 'disposed');
  });

  test('a process (with flags Workers refuse) whose threaded model was never disposed still exits when its work ends', async () => {
    const code = `
      import { loadModel } from ${JSON.stringify(new URL('../../npm/dist/node.js', import.meta.url).href)};
      import { loadPackage, weightsPath } from ${JSON.stringify(new URL('../support.mjs', import.meta.url).href)};
      import { readFileSync } from 'node:fs';
      const model = await loadModel(await loadPackage('mnist'), { weights: readFileSync(weightsPath()), threads: 2 });
      await model.run(new Float32Array(784));
      console.log(model.build.name, model.build.threads);`;
    // Flags a Worker refuses (`--input-type`, the per-process `--expose-gc`) stay with the process.
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    const exited = await Promise.race([new Promise((resolve) => child.on('exit', resolve)), new Promise((resolve) => setTimeout(() => resolve('still running'), 20_000))]);
    if (exited === 'still running') child.kill();
    assert.equal(exited, 0, `the process did not exit: ${out}`);
    assert.match(out, /^cpu-threads(-relaxed)? 2$/m);
  });

  // PP-OCRv4 det takes heights and widths that are multiples of 32: given [1, 3, 30, 50], burn
  // panics inside the graph. A threaded build runs the forward pass on a thread of its pool, so
  // the trap happens there, while the model's Worker is blocked waiting for it: the pool's
  // Worker reports it (brasa's pool helper, on a BroadcastChannel) and the run rejects.
  test('a trap on a thread of the pool rejects the run `internal`; the model stays dead, a new load works', async () => {
    const ocr = await loadPackage('ocr-det');
    assert.ok(ocr.builds['cpu-threads'], 'the ocr-det package carries the threaded build');
    const ref = JSON.parse(readFileSync(join(CACHE, 'fixtures', 'ocr-det-reference.json'), 'utf8'));
    const valid = ref.cases.find((c) => c.inputs[0].dims.join('x') === '1x3x64x96');
    const feeds = () => ({ x: { dtype: 'float32', dims: valid.inputs[0].dims, data: Float32Array.from(valid.inputs[0].data) } });
    const check = (out, what) => assert.ok(maxDiff(out[valid.outputs[0].name].data, valid.outputs[0].data) <= 1e-4, what);
    const trap = { x: { dtype: 'float32', dims: [1, 3, 30, 50], data: new Float32Array(3 * 30 * 50).fill(0.5) } };
    const load = () => loadModel(ocr, { weights: join(packageDir('ocr-det'), 'weights.bpk'), threads: 2, simd: 'simd128' });
    const dead = /the wasm instance of ocr-det \(cpu-threads\) aborted while running: .*a thread of the pool aborted: .*unreachable.*; load the model again/;
    const settles = (promise, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: not settled after 60 s (hung)`)), 60_000).unref())]);
    const model = await load();
    try {
      assert.equal(model.build.name, 'cpu-threads');
      check(await model.run(feeds()), 'before the trap');
      await assert.rejects(settles(model.run(trap), 'the trap'), (e) => {
        assert.equal(e.code, 'internal', e.message);
        assert.match(e.message, dead);
        // The panic's own words travel with it (Node prints nothing of a blocked pool's output).
        assert.match(e.message, /unreachable \(panicked at .*incompatible shapes/);
        return true;
      });
      await assert.rejects(settles(model.run(feeds()), 'after the trap'), (e) => e.code === 'internal' && dead.test(e.message));
      const fresh = await settles(load(), 'loadModel after the trap');
      try {
        check(await settles(fresh.run(feeds()), 'fresh model'), 'a fresh load after the trap');
      } finally {
        fresh.dispose();
      }
    } finally {
      model.dispose();
    }
  });

  test('a wrong or broken threaded wasm given is wasm_load, and leaves nothing behind for later loads', async () => {
    const cpuBytes = readFileSync(join(packageDir('mnist'), 'cpu/model_bg.wasm'));
    // The single-threaded build's module where the threaded one is expected: it compiles, but
    // the Worker cannot instantiate it (its memory is not shared).
    for (const [wasm, pattern] of [
      [cpuBytes, /could not start mnist \(cpu-threads\) with 2 threads/],
      [new Uint8Array(8), /could not load the cpu-threads build of mnist: .*magic/i],
    ]) {
      await assert.rejects(loadModel(mnist, { weights, threads: 2, simd: 'simd128', wasm: { 'cpu-threads': wasm } }), (e) => {
        assert.equal(e.name, 'BrasaError', e.stack);
        assert.equal(e.code, 'wasm_load', e.message);
        assert.match(e.message, pattern);
        return true;
      });
      const model = await loadModel(mnist, { weights, threads: 2, simd: 'simd128' });
      assert.equal(model.build.name, 'cpu-threads');
      assert.ok(maxDiff((await model.run(batch())).logits.data, expected()) <= TOLERANCE);
      model.dispose();
    }
  });

  test('detached weights are invalid_weights, at load and in setWeights', async () => {
    // A buffer, or a view made before its buffer was transferred away.
    const detached = (view = false) => {
      const bytes = new Uint8Array(weights).buffer;
      const given = view ? new Uint8Array(bytes, 8) : bytes;
      structuredClone(bytes, { transfer: [bytes] });
      return given;
    };
    for (const given of [detached(), detached(true)]) {
      await assert.rejects(loadModel(mnist, { weights: given, threads: 2 }), (e) => e.code === 'invalid_weights' && /detached/.test(e.message));
    }
    const model = await loadModel(mnist, { weights, threads: 2 });
    try {
      await assert.rejects(model.setWeights(detached()), (e) => e.code === 'invalid_weights' && /detached/.test(e.message));
      assert.ok(maxDiff((await model.run(batch())).logits.data, expected()) <= TOLERANCE);
      assert.throws(() => {
        model.build.threads = 99;
      }, TypeError);
    } finally {
      model.dispose();
    }
  });

  test("'auto' falls back to one thread where no Worker may start (Node's permission model), saying why", async () => {
    const code = `
      import { loadModel } from ${JSON.stringify(new URL('../../npm/dist/node.js', import.meta.url).href)};
      import { loadPackage, weightsPath } from ${JSON.stringify(new URL('../support.mjs', import.meta.url).href)};
      import { readFileSync } from 'node:fs';
      const pkg = await loadPackage('mnist');
      const model = await loadModel(pkg, { weights: readFileSync(weightsPath()) });
      const { logits } = await model.run(new Float32Array(784));
      const two = await loadModel(pkg, { weights: readFileSync(weightsPath()), threads: 2 }).then(() => null, (e) => e.code + ': ' + e.message);
      console.log(JSON.stringify({ build: model.build, logits: logits.data.length, two }));`;
    const child = spawn(process.execPath, ['--experimental-permission', '--allow-fs-read=*', '--no-warnings', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    const exited = await Promise.race([new Promise((resolve) => child.on('exit', resolve)), new Promise((resolve) => setTimeout(() => resolve('still running'), 30_000))]);
    if (exited === 'still running') child.kill();
    assert.equal(exited, 0, out);
    const got = JSON.parse(out.trim().split('\n').at(-1));
    assert.equal(got.build.name, 'cpu');
    assert.equal(got.build.threads, 1);
    assert.match(got.build.reason, /single-threaded: the threaded build could not start \(could not start a Worker for mnist \(cpu-threads\)/);
    assert.equal(got.logits, 10);
    assert.match(got.two, /^wasm_load: could not start a Worker for mnist \(cpu-threads\)/);
  });

  test('wasm modules given pick the CPU build among them (a Worker bundle)', async () => {
    const model = await loadModel(mnist, { weights, wasm: { cpu: readFileSync(join(packageDir('mnist'), 'cpu/model_bg.wasm')) } });
    assert.deepEqual([model.build.name, model.build.threads, model.build.reason], ['cpu', 1, null]);
    model.dispose();
  });
});

describe('from a registry', () => {
  let registry;
  before(() => {
    registry = makeRegistry();
  });
  after(() => registry?.remove());

  test('a registry version on the threaded build passes its golden check in the Worker and updates there', async () => {
    const model = await loadModel('mnist@stable', { registry: registry.dir, build: mnist, threads: 2, cacheBudget: 0 });
    try {
      assert.equal(model.build.name, RELAXED ? 'cpu-threads-relaxed' : 'cpu-threads');
      assert.equal(model.version, '1.0.0');
      const { input, v100 } = expectedLogits();
      assert.ok(maxDiff((await model.run(Float32Array.from(input))).logits.data, v100) <= TOLERANCE);
      assert.match(model.metricsText(), /brasa_requests_total/);
    } finally {
      model.dispose();
    }
  });
});
