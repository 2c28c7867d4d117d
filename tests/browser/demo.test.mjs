// The demo page, the npm package and the MNIST model package (`packages/mnist/`, made by
// `brasa build`) in real headless Chromium, served by `brasa serve`: WebGPU (SwiftShader)
// with --enable-unsafe-webgpu, the CPU fallback without it.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';

import { execFileSync } from 'node:child_process';

import { CLI, TOLERANCE, chromium, demoSite, goto, maxDiff, open, reference, serve } from '../support.mjs';

const REF = reference();
let server;
let site;

before(async () => {
  site = demoSite();
  server = await serve(site.dir);
});
after(() => {
  server?.stop();
  site?.remove();
});

// The model package's wasm builds, as the page fetches them (the CPU build the loader picks:
// `cpu`, or a relaxed-SIMD or threaded one; `brasa serve` makes the page cross-origin isolated).
const cpuWasm = (build) => `/packages/mnist/${build}/model_bg.wasm`;
const isCpuWasm = (path) => /^\/packages\/mnist\/cpu[a-z-]*\/model_bg\.wasm$/.test(path);
const WEBGPU_WASM = '/packages/mnist/webgpu/model_bg.wasm';

/** Paths of the .wasm files the page has fetched so far. */
function fetchedWasm(page) {
  return page.evaluate(() => [...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm')))]);
}

/**
 * Run every reference item in the page through the demo's classifier, one at a time and as
 * one batch; and once through the raw model (`model.run` gives named tensors).
 */
async function runReference(page) {
  return page.evaluate(async (items) => {
    const { Tensor } = await import('brasa');
    const demo = window.brasaDemo;
    const singles = [];
    for (const item of items) {
      const r = await demo.run(new Float32Array(item.pixels));
      singles.push({ logits: [...r.logits], label: r.label });
    }
    const batch = new Float32Array(items.flatMap((i) => i.pixels));
    const all = await demo.run(batch);
    const raw = await demo.model.run({ pixels: new Tensor('float32', batch, [items.length, 1, 28, 28]) });
    return {
      singles,
      batched: [...all.logits],
      batch: all.batch,
      classes: all.classes,
      probabilitySums: Array.from({ length: all.batch }, (_, r) => all.probabilities.slice(r * 10, r * 10 + 10).reduce((a, b) => a + b, 0)),
      raw: { names: Object.keys(raw), dtype: raw.logits.dtype, dims: [...raw.logits.dims], data: [...raw.logits.data] },
      backend: demo.model.backend,
      classifierBackend: all.backend,
    };
  }, REF.items.map(({ pixels }) => ({ pixels })));
}

function assertMatchesNumpy(result, backend) {
  assert.equal(result.backend, backend);
  assert.equal(result.classifierBackend, backend);
  assert.equal(result.batch, REF.items.length);
  assert.equal(result.classes, 10);
  for (const sum of result.probabilitySums) assert.ok(Math.abs(sum - 1) < 1e-5, `probabilities sum to ${sum}`);
  // The raw model: one named float32 tensor, [batch, 10], the classifier's logits.
  assert.deepEqual(result.raw.names, ['logits']);
  assert.equal(result.raw.dtype, 'float32');
  assert.deepEqual(result.raw.dims, [REF.items.length, 10]);
  assert.ok(maxDiff(result.raw.data, result.batched) <= 1e-6, `${backend}: model.run and the classifier disagree`);
  REF.items.forEach((item, i) => {
    const single = maxDiff(result.singles[i].logits, item.logits);
    const batched = maxDiff(result.batched.slice(i * 10, i * 10 + 10), item.logits);
    assert.ok(single <= TOLERANCE, `${backend} ${item.name}: |single - numpy| = ${single}`);
    assert.ok(batched <= TOLERANCE, `${backend} ${item.name}: |batched - numpy| = ${batched}`);
    if (item.label !== null) assert.equal(result.singles[i].label, item.label, `${backend} misclassifies ${item.name}`);
  });
}

/** Draw a 7 with the mouse: a top bar, then a long diagonal. */
async function drawSeven(page) {
  const box = await page.getByTestId('pad').boundingBox();
  await page.mouse.move(box.x + 80, box.y + 60);
  await page.mouse.down();
  await page.mouse.move(box.x + 200, box.y + 60, { steps: 10 });
  await page.mouse.move(box.x + 120, box.y + 240, { steps: 15 });
  await page.mouse.up();
  await page.waitForFunction(() => document.body.dataset.prediction === '7', null, { timeout: 30000 });
}

/** What the model saw for the current drawing, and its logits. */
async function drawnPixels(page) {
  return page.evaluate(async () => {
    const { toMnistInput } = await import('./preprocess.js');
    const pixels = toMnistInput(document.getElementById('pad'));
    const r = await window.brasaDemo.run(pixels);
    return { pixels: [...pixels], logits: [...r.logits], label: r.label };
  });
}

const results = {};

/**
 * Source of `badInputRound()` for the demo page: bad feeds, bad weights and wrong packages
 * against `window.brasaDemo.model`, then the same good input again.
 */
const BAD_INPUT_ROUND_PAGE = `
async function badInputRound() {
  const model = window.brasaDemo.model;
  const mnist = window.brasaDemo.package;
  const { loadModel, Tensor } = await import('brasa');
  const good = new Float32Array(784).fill(0.25);
  const before = [...(await model.run(good)).logits.data];
  const nan = new Float32Array(784); nan[100] = NaN;
  const inf = new Float32Array(784); inf[5] = Infinity;
  const cases = {
    empty: () => model.run(new Float32Array(0)),
    short: () => model.run(new Float32Array(783)),
    nan: () => model.run(nan),
    infinity: () => model.run(inf),
    string: () => model.run('pixels'),
    bytes: () => model.run(new Uint8Array(784)),
    objects: () => model.run([{}, 1]),
    nothing: () => model.run(undefined),
    unknownInput: () => model.run({ image: good }),
    wrongDims: () => model.run({ pixels: new Tensor('float32', good, [1, 28, 28, 1]) }),
    wrongDtype: () => model.run({ pixels: new Tensor('int32', new Int32Array(784), [1, 1, 28, 28]) }),
    truncatedWeights: async () => {
      const w = new Uint8Array(await (await fetch('./models/mnist.bpk')).arrayBuffer());
      return model.setWeights(w.subarray(0, w.length >> 1));
    },
    garbageWeights: () => loadModel(mnist, { weights: new Uint8Array(4096).fill(7), backend: model.backend }),
    otherModel: () => loadModel('resnet', { weights: new Uint8Array(8), build: mnist }),
    noPackage: () => loadModel('mnist', { weights: new Uint8Array(8) }),
    notAPackage: () => loadModel({ format: 'brasa-model@0', name: 'mnist' }, { weights: new Uint8Array(8) }),
  };
  const errors = {};
  for (const [name, fn] of Object.entries(cases)) {
    try { await fn(); errors[name] = null; }
    catch (e) { errors[name] = { name: e.name, code: e.code, message: e.message }; }
  }
  const after = [...(await model.run(good)).logits.data];
  return { errors, before, after };
}`;

/** A fresh browser on the demo page, the model loaded, `badInputRound()` defined. */
async function openDemo({ webgpu }) {
  const browser = await chromium({ webgpu });
  const { page, errors } = await open(browser.context, server.url);
  await page.evaluate(() => window.brasaDemo.ready);
  await page.addScriptTag({ content: BAD_INPUT_ROUND_PAGE });
  return { browser, page, errors };
}

describe('with WebGPU (SwiftShader adapter)', () => {
  let browser, page, errors;
  before(async () => { ({ browser, page, errors } = await openDemo({ webgpu: true })); });
  after(() => browser?.close());

  test('the page loads the model on WebGPU and says so', async () => {
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'webgpu');
    assert.match(await page.getByTestId('backend').textContent(), /WebGPU/);
    assert.equal(await page.getByTestId('notice').isHidden(), true);
    const adapter = await page.evaluate(() => window.brasaDemo.model.adapter);
    assert.equal(adapter.isFallbackAdapter, true, 'headless Chromium exposes SwiftShader');
    // The WebGPU build of the model package, and only it, crossed the network.
    const wasm = await fetchedWasm(page);
    assert.ok(wasm.includes(WEBGPU_WASM), wasm.join('\n'));
    assert.ok(!wasm.some(isCpuWasm), wasm.join('\n'));
    assert.ok(!wasm.some((p) => p.startsWith('/brasa/')), `the npm package holds no wasm: ${wasm.join('\n')}`);
  });

  test('logits match numpy within 1e-4 on WebGPU, singly and batched', async () => {
    results.webgpu = await runReference(page);
    assertMatchesNumpy(results.webgpu, 'webgpu');
  });

  test('drawing strokes on the canvas produces a prediction and a bar chart', async () => {
    await drawSeven(page);
    assert.equal(await page.getByTestId('digit').textContent(), '7');
    assert.match(await page.getByTestId('latency').textContent(), /ms this prediction .* webgpu/);
    const widths = await page.$$eval('[data-testid=bars] .fill', (els) => els.map((e) => parseFloat(e.style.width)));
    assert.equal(widths.length, 10);
    assert.ok(Math.abs(widths.reduce((a, b) => a + b, 0) - 100) < 1, `bars sum to ${widths}`);
    results.drawnWebgpu = await drawnPixels(page);
    await page.getByTestId('clear').click();
    assert.equal(await page.getByTestId('digit').textContent(), '?');
  });

  test('switching the backend control moves the model to CPU and back', async () => {
    await page.getByTestId('backend-select').selectOption('cpu');
    await page.waitForFunction(() => document.body.dataset.backend === 'cpu' && document.body.dataset.state === 'ready');
    assert.match(await page.getByTestId('backend').textContent(), /CPU/);
    await page.getByTestId('backend-select').selectOption('webgpu');
    await page.waitForFunction(() => document.body.dataset.backend === 'webgpu' && document.body.dataset.state === 'ready');
  });

  test('bad input gives typed errors and the model keeps working', async () => {
    const outcome = await page.evaluate(async () => badInputRound());
    assertBadInputOutcome(outcome);
  });

  test('a dedicated Web Worker loads and runs the model on WebGPU', async () => {
    const item = REF.items[1];
    const result = await runInWorker(page, item.pixels);
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.backend, 'webgpu');
    assert.ok(maxDiff(result.logits, item.logits) <= TOLERANCE);
    assert.deepEqual(result.dims, [1, 10]);
    if (item.label !== null) assert.equal(result.label, item.label);
  });

  test('no uncaught errors on the page', () => {
    assert.deepEqual(errors, []);
  });
});

/** Load brasa and the MNIST package in a module worker and run one item there. */
function runInWorker(page, pixels) {
  return page.evaluate(async (pixels) => {
    const source = `
      import { loadModel, createClassifier } from '${new URL('./brasa/dist/index.js', location.href)}';
      import mnist from '${new URL('./packages/mnist/index.js', location.href)}';
      onmessage = async ({ data }) => {
        try {
          const model = await loadModel(mnist, { weights: '${new URL('./models/mnist.bpk', location.href)}' });
          const { logits } = await model.run(new Float32Array(data));
          const { label } = await createClassifier(model).run(new Float32Array(data));
          postMessage({ backend: model.backend, logits: [...logits.data], dims: [...logits.dims], label });
        } catch (e) {
          postMessage({ error: e.code + ': ' + e.message });
        }
      };`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), { type: 'module' });
    const result = await new Promise((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage(pixels);
    });
    worker.terminate();
    return result;
  }, pixels);
}

describe('with a WebGPU adapter whose device cannot be created', () => {
  let browser, page, errors;
  before(async () => {
    browser = await chromium({ webgpu: true });
    page = await browser.context.newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    // The adapter is there (so the WebGPU build is chosen) but the GPU fails to initialise.
    await page.addInitScript(() => {
      GPUAdapter.prototype.requestDevice = () => Promise.reject(new DOMException('simulated: device creation failed', 'OperationError'));
    });
    await goto(page, server.url);
    await page.evaluate(() => window.brasaDemo.ready);
  });
  after(() => browser?.close());

  test('auto falls back to CPU and reports the GPU failure', async () => {
    const model = await page.evaluate(() => ({ backend: window.brasaDemo.model.backend, reason: window.brasaDemo.model.fallbackReason }));
    assert.equal(model.backend, 'cpu');
    assert.match(model.reason, /WebGPU initialisation failed/);
    assert.match(await page.getByTestId('notice').textContent(), /WebGPU initialisation failed/);
  });

  test('backend webgpu turns the same failure into backend_unavailable', async () => {
    const error = await page.evaluate(async () => {
      const { loadModel } = await import('brasa');
      try {
        await loadModel(window.brasaDemo.package, { weights: './models/mnist.bpk', backend: 'webgpu' });
        return null;
      } catch (e) {
        return { name: e.name, code: e.code, message: e.message };
      }
    });
    assert.equal(error?.code, 'backend_unavailable');
    assert.match(error.message, /WebGPU initialisation failed/);
  });

  test('the CPU model answers correctly after the GPU failure', async () => {
    const item = REF.items[0];
    const logits = await page.evaluate(async (pixels) => [...(await window.brasaDemo.run(new Float32Array(pixels))).logits], item.pixels);
    assert.ok(maxDiff(logits, item.logits) <= TOLERANCE);
    assert.deepEqual(errors, []);
  });
});

describe('without WebGPU (no adapter)', () => {
  let browser, page, errors;
  before(async () => { ({ browser, page, errors } = await openDemo({ webgpu: false })); });
  after(() => browser?.close());

  test('auto falls back to the CPU build and tells the person and the code why', async () => {
    assert.equal(await page.evaluate(() => document.body.dataset.backend), 'cpu');
    const notice = page.getByTestId('notice');
    assert.equal(await notice.isVisible(), true);
    assert.match(await notice.textContent(), /WebGPU is unavailable.*requestAdapter\(\) returned no adapter/);
    const model = await page.evaluate(() => ({ backend: window.brasaDemo.model.backend, reason: window.brasaDemo.model.fallbackReason, build: window.brasaDemo.model.build.name }));
    assert.equal(model.backend, 'cpu');
    assert.match(model.reason, /no adapter/);
    // Only the CPU build it runs was fetched (and, beside a threaded one, the `cpu` build the
    // page runs the registry and serving logic on): the WebGPU wasm never crossed the network.
    const wasm = await fetchedWasm(page);
    const runs = cpuWasm(model.build);
    assert.deepEqual([...wasm].sort(), runs.includes('threads') ? [cpuWasm('cpu'), runs].sort() : [runs]);
  });

  test('onFallback reports the reason, and asking for webgpu is a clear error', async () => {
    const outcome = await page.evaluate(async () => {
      const { loadModel } = await import('brasa');
      const mnist = window.brasaDemo.package;
      const weights = new Uint8Array(await (await fetch('./models/mnist.bpk')).arrayBuffer());
      const events = [];
      const m = await loadModel(mnist, { weights, onFallback: (e) => events.push(e) });
      m.dispose();
      try {
        await loadModel(mnist, { weights, backend: 'webgpu' });
        return { events, error: null };
      } catch (e) {
        return { events, error: { name: e.name, code: e.code, message: e.message } };
      }
    });
    assert.equal(outcome.events.length, 1);
    assert.equal(outcome.events[0].to, 'cpu');
    assert.match(outcome.events[0].reason, /no adapter/);
    assert.equal(outcome.error?.name, 'BrasaError');
    assert.equal(outcome.error.code, 'backend_unavailable');
    assert.match(outcome.error.message, /webgpu/);
  });

  test('logits match numpy within 1e-4 on the CPU wasm build, singly and batched', async () => {
    results.cpu = await runReference(page);
    assertMatchesNumpy(results.cpu, 'cpu');
  });

  test('a dedicated Web Worker loads and runs the model on the CPU build', async () => {
    const item = REF.items[2];
    const result = await runInWorker(page, item.pixels);
    assert.equal(result.error, undefined, result.error);
    assert.equal(result.backend, 'cpu');
    assert.ok(maxDiff(result.logits, item.logits) <= TOLERANCE);
    assert.deepEqual(result.dims, [1, 10]);
    if (item.label !== null) assert.equal(result.label, item.label);
  });

  test('drawing strokes produces a prediction on CPU', async () => {
    await drawSeven(page);
    assert.match(await page.getByTestId('latency').textContent(), /cpu/);
    results.drawnCpu = await drawnPixels(page);
  });

  test('bad input gives typed errors and the model keeps working', async () => {
    const outcome = await page.evaluate(async () => badInputRound());
    assertBadInputOutcome(outcome);
  });

  test('no uncaught errors on the page', () => {
    // The fallback is announced with console.warn, never as an error.
    assert.deepEqual(errors, []);
  });
});

test('both backends give the same answers', () => {
  assert.ok(results.webgpu && results.cpu, 'both backend suites ran');
  const worst = maxDiff(results.webgpu.batched, results.cpu.batched);
  assert.ok(worst <= 2 * TOLERANCE, `|webgpu - cpu| = ${worst}`);
  assert.deepEqual(results.webgpu.singles.map((s) => s.label), results.cpu.singles.map((s) => s.label));
  // The same drawing, rasterised by the same code, gets the same answer on both.
  assert.equal(results.drawnWebgpu.label, results.drawnCpu.label);
});


function assertBadInputOutcome(outcome) {
  const expected = {
    empty: 'invalid_input', short: 'invalid_input', nan: 'invalid_input', infinity: 'invalid_input',
    string: 'invalid_input', bytes: 'invalid_input', objects: 'invalid_input', nothing: 'invalid_input',
    unknownInput: 'invalid_input', wrongDims: 'invalid_input', wrongDtype: 'invalid_input',
    truncatedWeights: 'invalid_weights', garbageWeights: 'invalid_weights', otherModel: 'unknown_model',
    noPackage: 'unknown_model', notAPackage: 'incompatible',
  };
  for (const [name, code] of Object.entries(expected)) {
    assert.equal(outcome.errors[name]?.name, 'BrasaError', `${name}: ${JSON.stringify(outcome.errors[name])}`);
    assert.equal(outcome.errors[name].code, code, `${name}: ${outcome.errors[name].message}`);
    assert.ok(outcome.errors[name].message.length > 10);
  }
  assert.deepEqual(outcome.after, outcome.before, 'the model answers the same after the bad calls');
}

test('the demo shows version and channel, switches channel, and follows an update and a rollback', async () => {
  const browser = await chromium({ webgpu: false });
  const registryCli = (command, ...args) => execFileSync(CLI, ['registry', '--registry', join(site.dir, 'registry'), command, '--model', 'mnist', ...args], { stdio: 'pipe' });
  const versionIs = (v) => page.waitForFunction((v) => document.body.dataset.version === v, v, { timeout: 30000 });
  let page;
  try {
    ({ page } = await open(browser.context, `${server.url}?backend=cpu`));
    await page.evaluate(() => window.brasaDemo.ready);
    await versionIs('1.0.0');
    assert.equal(await page.getByTestId('version').textContent(), 'v1.0.0');
    assert.equal(await page.getByTestId('channel').textContent(), 'stable');
    const logits = async () => page.evaluate(async (px) => [...(await window.brasaDemo.run(Float32Array.from(px))).logits], REF.items[0].pixels);
    assert.ok(maxDiff(await logits(), REF.items[0].logits) <= TOLERANCE);

    // Switch channel: canary runs the recalibrated 1.1.0.
    await page.getByTestId('channel-select').selectOption('canary');
    await versionIs('1.1.0');
    assert.equal(await page.getByTestId('channel').textContent(), 'canary');
    assert.ok(maxDiff(await logits(), REF.variant.logits[0]) <= 1e-3);
    await page.getByTestId('channel-select').selectOption('stable');
    await versionIs('1.0.0');

    // A promotion on the registry: the page finds it, a click switches.
    registryCli('promote', '--channel', 'stable', '--version', '1.1.0', '--reason', 'demo test');
    await page.getByTestId('check-update').click();
    const apply = page.getByTestId('apply-update');
    await apply.waitFor({ state: 'visible' });
    assert.equal(await apply.textContent(), 'Switch to v1.1.0');
    assert.match(await page.getByTestId('events').textContent(), /update available: 1\.0\.0 → 1\.1\.0/);
    await apply.click();
    await versionIs('1.1.0');
    assert.match(await page.getByTestId('events').textContent(), /switched 1\.0\.0 → 1\.1\.0/);

    // A rollback on the registry, followed automatically.
    await page.getByTestId('auto-update').check();
    registryCli('rollback', '--channel', 'stable', '--reason', 'demo test');
    await page.getByTestId('check-update').click();
    await versionIs('1.0.0');
    assert.match(await page.getByTestId('events').textContent(), /switched 1\.1\.0 → 1\.0\.0/);
    assert.ok(maxDiff(await logits(), REF.items[0].logits) <= TOLERANCE);
  } finally {
    await browser.close();
  }
});
