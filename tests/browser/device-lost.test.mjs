// A lost GPU device (issue 12, kind 3), in real headless Chromium on SwiftShader's WebGPU
// adapter: the page captures every GPUDevice wgpu creates (by wrapping
// `GPUAdapter.prototype.requestDevice` before anything runs) and destroys it, as a driver
// reset or the GPU process restarting would lose it. Answers are checked against numpy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, TOLERANCE, chromium, demoSite, expectedLogits, goto, maxDiff, reference, serve, writeTestPage } from '../support.mjs';

const REF = reference();
const TWO_HEADS = JSON.parse(readFileSync(join(CACHE, 'fixtures/two-heads-reference.json'), 'utf8'));
let server;
let site;
let browser;
let page;
const errors = [];
/** The page's console warnings, in order. */
const warnings = [];

before(async () => {
  site = demoSite();
  writeTestPage(site.dir, 'device-lost.html', 'lost GPU device', `
  window.mnist = (await import('./packages/mnist/index.js')).default;
  window.weights = new Uint8Array(await (await fetch('./models/mnist.bpk')).arrayBuffer());
  /** The next \`lost\` event of \`model\` in \`state\`. */
  window.lostEvent = (model, state) => new Promise((resolve) => {
    model.addEventListener('lost', (e) => { if (e.detail.state === state) resolve(e.detail); });
  });
  window.logits = async (model, pixels) => [...(await model.run(new Float32Array(pixels))).logits.data];
`);
  server = await serve(site.dir);
  browser = await chromium({ webgpu: true });
  page = await browser.context.newPage();
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'warning') warnings.push(m.text()); });
  // Before brasa loads: every device wgpu requests, in order.
  await page.addInitScript(() => {
    window.gpuDevices = [];
    // Set to make every later device request fail (a GPU that is gone for good).
    window.refuseDevices = false;
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      if (window.refuseDevices) throw new DOMException('simulated: no device', 'OperationError');
      const device = await requestDevice.apply(this, args);
      window.gpuDevices.push(device);
      return device;
    };
  });
  await goto(page, `${server.url}device-lost.html`);
  await page.waitForFunction(() => document.body.dataset.ready === '1');
});
after(async () => {
  await browser?.close();
  server?.stop();
  site?.remove();
});

describe('a lost WebGPU device', () => {
  test('its models fail naming the loss, and the next load (webgpu or auto) gets a new device', async () => {
    const item = REF.items[0];
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const first = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu' });
      const before = await window.logits(first, pixels);
      const devicesBefore = window.gpuDevices.length;
      const lost = window.lostEvent(first, 'lost');
      window.gpuDevices.at(-1).destroy();
      const event = await lost;
      let error = null;
      try {
        await first.run(new Float32Array(pixels));
      } catch (e) {
        error = { name: e.name, code: e.code, message: e.message };
      }
      const again = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu' });
      const auto = await loadModel(window.mnist, { weights: window.weights });
      const result = {
        before,
        devicesBefore,
        event,
        error,
        backendAfterLoss: first.backend,
        again: { backend: again.backend, logits: await window.logits(again, pixels) },
        auto: { backend: auto.backend, fallbackReason: auto.fallbackReason, logits: await window.logits(auto, pixels) },
        devicesAfter: window.gpuDevices.length,
      };
      // The lost model still refuses, naming the loss; disposing of it is fine.
      try {
        await first.run(new Float32Array(pixels));
        result.stillRefuses = false;
      } catch (e) {
        result.stillRefuses = e.code === 'execution';
      }
      first.dispose();
      again.dispose();
      auto.dispose();
      return result;
    }, item.pixels);
    assert.ok(maxDiff(out.before, item.logits) <= TOLERANCE);
    assert.equal(out.devicesBefore, 1, 'one device for the first load');
    assert.deepEqual(
      { ...out.event, reason: undefined },
      { type: 'lost', state: 'lost', recovery: 'fail', backend: null, error: null, reason: undefined },
    );
    assert.match(out.event.reason, /destroyed/i);
    assert.equal(out.error?.name, 'BrasaError');
    assert.equal(out.error.code, 'execution');
    assert.match(out.error.message, /WebGPU device mnist ran on was lost \(Destroyed.*load the model again/);
    assert.equal(out.stillRefuses, true);
    // Before the fix both loads "succeeded" on the dead device and every run failed.
    assert.equal(out.again.backend, 'webgpu');
    assert.ok(maxDiff(out.again.logits, item.logits) <= TOLERANCE, `new load: ${out.again.logits}`);
    assert.equal(out.auto.backend, 'webgpu');
    assert.equal(out.auto.fallbackReason, null);
    assert.ok(maxDiff(out.auto.logits, item.logits) <= TOLERANCE, `auto: ${out.auto.logits}`);
    assert.equal(out.devicesAfter, 2, 'one new device, shared by the loads after the loss');
  });

  test("deviceLost: 'cpu' moves to the CPU build: runs in flight and after get answers, none fails", async () => {
    const items = REF.items.slice(0, 6);
    const out = await page.evaluate(async (inputs) => {
      const { loadModel } = window.brasa;
      const fallbacks = [];
      const model = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'cpu', onFallback: (f) => fallbacks.push(f) });
      const first = await window.logits(model, inputs[0]);
      const lost = window.lostEvent(model, 'lost');
      const recovered = window.lostEvent(model, 'recovered');
      // Runs already started on the GPU, the loss, then runs while it switches.
      const inFlight = inputs.slice(1, 3).map((px) => window.logits(model, px));
      window.gpuDevices.at(-1).destroy();
      const during = inputs.slice(3).map((px) => window.logits(model, px));
      const settled = await Promise.allSettled([...inFlight, ...during]);
      return {
        first,
        settled: settled.map((s) => (s.status === 'fulfilled' ? { logits: s.value } : { error: `${s.reason.code}: ${s.reason.message}` })),
        lost: await lost,
        recovered: await recovered,
        backend: model.backend,
        fallbackReason: model.fallbackReason,
        info: model.info.backend,
        fallbacks,
        metrics: model.metricsText().includes('brasa_inferences_total'),
      };
    }, items.map((i) => i.pixels));
    assert.ok(maxDiff(out.first, items[0].logits) <= TOLERANCE);
    out.settled.forEach((s, i) => {
      assert.equal(s.error, undefined, `run ${i + 1} failed: ${s.error}`);
      assert.ok(maxDiff(s.logits, items[i + 1].logits) <= TOLERANCE, `run ${i + 1}: ${s.logits}`);
    });
    assert.equal(out.lost.recovery, 'cpu');
    assert.deepEqual({ state: out.recovered.state, backend: out.recovered.backend, error: out.recovered.error }, { state: 'recovered', backend: 'cpu', error: null });
    assert.equal(out.backend, 'cpu');
    assert.equal(out.info, 'cpu');
    assert.match(out.fallbackReason, /WebGPU device was lost \(Destroyed/);
    assert.equal(out.fallbacks.length, 1);
    assert.deepEqual({ ...out.fallbacks[0], reason: undefined }, { from: 'webgpu', to: 'cpu', reason: undefined });
    assert.equal(out.metrics, true, 'metrics survive the switch');
  });

  test("deviceLost: 'reload' moves to a new WebGPU device", async () => {
    const item = REF.items[1];
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const model = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'reload' });
      const devices = window.gpuDevices.length;
      const recovered = window.lostEvent(model, 'recovered');
      window.gpuDevices.at(-1).destroy();
      const logits = await window.logits(model, pixels);
      return { logits, recovered: await recovered, backend: model.backend, newDevices: window.gpuDevices.length - devices };
    }, item.pixels);
    assert.ok(maxDiff(out.logits, item.logits) <= TOLERANCE);
    assert.equal(out.recovered.backend, 'webgpu');
    assert.equal(out.backend, 'webgpu');
    assert.equal(out.newDevices, 1);
  });

  test("a registry-backed model recovers on the CPU from its cached weights", async () => {
    const { input, v100 } = expectedLogits();
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const model = await loadModel('mnist@stable', { registry: './registry/', build: window.mnist, backend: 'webgpu', deviceLost: 'cpu' });
      const recovered = window.lostEvent(model, 'recovered');
      window.gpuDevices.at(-1).destroy();
      await recovered;
      return { version: model.version, backend: model.backend, logits: await window.logits(model, pixels) };
    }, input);
    assert.equal(out.version, '1.0.0');
    assert.equal(out.backend, 'cpu');
    assert.ok(maxDiff(out.logits, v100) <= TOLERANCE);
  });

  test("without a new device, 'reload' on webgpu stays lost saying why, and on auto moves to the CPU", async () => {
    const item = REF.items[2];
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const strict = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'reload' });
      const auto = await loadModel(window.mnist, { weights: window.weights, deviceLost: 'reload' });
      const failed = window.lostEvent(strict, 'failed');
      const recovered = window.lostEvent(auto, 'recovered');
      window.refuseDevices = true;
      window.gpuDevices.at(-1).destroy();
      const result = { failed: await failed, recovered: await recovered, auto: { backend: auto.backend, fallbackReason: auto.fallbackReason, logits: await window.logits(auto, pixels) } };
      try {
        await strict.run(new Float32Array(pixels));
      } catch (e) {
        result.error = { code: e.code, message: e.message };
      }
      window.refuseDevices = false;
      const later = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu' });
      result.later = { backend: later.backend, logits: await window.logits(later, pixels) };
      return result;
    }, item.pixels);
    // One sentence naming the cause each (before: prefixes repeated, wgpu's `JsValue(…\nundefined)`).
    const cause = 'requestDevice\\(\\) failed: OperationError: simulated: no device';
    assert.equal(out.failed.backend, null);
    assert.match(out.failed.error, new RegExp(`^a new WebGPU device could not be had: ${cause}$`));
    assert.equal(out.error?.code, 'execution');
    assert.match(out.error.message, new RegExp(`^the WebGPU device mnist ran on was lost \\(Destroyed[^)]*\\) and it could not recover: a new WebGPU device could not be had: ${cause}; load the model again`));
    assert.equal(out.recovered.backend, 'cpu');
    assert.equal(out.auto.backend, 'cpu');
    assert.match(out.auto.fallbackReason, new RegExp(`^the WebGPU device was lost \\(Destroyed[^)]*\\) and a new one could not be had: ${cause}$`));
    assert.ok(maxDiff(out.auto.logits, item.logits) <= TOLERANCE);
    // Once the GPU is back, a load gets a device again.
    assert.equal(out.later.backend, 'webgpu');
    assert.ok(maxDiff(out.later.logits, item.logits) <= TOLERANCE);
  });

  test("'reload' recovers again when its new device is lost too: runs already retried once are retried again", { timeout: 60_000 }, async () => {
    const items = REF.items.slice(0, 4);
    const out = await page.evaluate(async (inputs) => {
      const { loadModel } = window.brasa;
      const model = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'reload' });
      await window.logits(model, inputs[0]);
      const devices = window.gpuDevices.length;
      const states = [];
      let again = false;
      // The moment the model is on its new device, that one is lost as well: the runs waiting
      // for the first recovery are retried there and fail a second time.
      model.addEventListener('lost', (e) => {
        states.push(e.detail.state);
        if (e.detail.state === 'recovered' && !again) {
          again = true;
          window.gpuDevices.at(-1).destroy();
        }
      });
      const runs = inputs.map((px) => window.logits(model, px));
      window.gpuDevices.at(-1).destroy();
      const settled = await Promise.allSettled(runs);
      const result = {
        settled: settled.map((s) => (s.status === 'fulfilled' ? { logits: s.value } : { error: `${s.reason.code}: ${s.reason.message}` })),
        states,
        newDevices: window.gpuDevices.length - devices,
        backend: model.backend,
        after: await window.logits(model, inputs[0]),
      };
      model.dispose();
      return result;
    }, items.map((i) => i.pixels));
    // Before the fix the retried runs failed with "…was lost…; load the model again".
    out.settled.forEach((s, i) => {
      assert.equal(s.error, undefined, `run ${i} failed: ${s.error}`);
      assert.ok(maxDiff(s.logits, items[i].logits) <= TOLERANCE, `run ${i}: ${s.logits}`);
    });
    assert.deepEqual(out.states, ['lost', 'recovered', 'lost', 'recovered']);
    assert.equal(out.newDevices, 2, 'one new device per loss');
    assert.equal(out.backend, 'webgpu');
    assert.ok(maxDiff(out.after, items[0].logits) <= TOLERANCE);
  });

  test('a run lost more than 3 times gives up with an execution error; the model recovers and runs', { timeout: 60_000 }, async () => {
    const item = REF.items[3];
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const model = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'reload' });
      let losses = 1;
      // Every new device is lost at once, 4 losses in all.
      model.addEventListener('lost', (e) => {
        if (e.detail.state === 'recovered' && losses < 4) {
          losses += 1;
          window.gpuDevices.at(-1).destroy();
        }
      });
      const run = model.run(new Float32Array(pixels)).then(
        () => null,
        (e) => ({ name: e.name, code: e.code, message: e.message }),
      );
      window.gpuDevices.at(-1).destroy();
      const error = await run;
      const result = { error, losses, backend: model.backend, after: await window.logits(model, pixels) };
      model.dispose();
      return result;
    }, item.pixels);
    assert.equal(out.losses, 4);
    assert.equal(out.error?.name, 'BrasaError', 'the run fails');
    assert.equal(out.error.code, 'execution');
    assert.match(out.error.message, /^the WebGPU device mnist ran on was lost 4 times during this run \(last: Destroyed[^)]*\); it recovered: run it again$/);
    assert.equal(out.backend, 'webgpu');
    assert.ok(maxDiff(out.after, item.logits) <= TOLERANCE);
  });

  test('models on one lost device share one new device, and no device is left alive beside it', { timeout: 60_000 }, async () => {
    const item = REF.items[4];
    const out = await page.evaluate(async (pixels) => {
      const { loadModel } = window.brasa;
      const models = [];
      for (let i = 0; i < 4; i++) models.push(await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu', deviceLost: 'reload' }));
      const first = window.gpuDevices.length - 1;
      const recovered = models.map((m) => Promise.race([window.lostEvent(m, 'recovered'), window.lostEvent(m, 'failed')]));
      window.gpuDevices[first].destroy();
      const events = await Promise.all(recovered);
      if (events.some((e) => e.state !== 'recovered')) return { events };
      const later = await loadModel(window.mnist, { weights: window.weights, backend: 'webgpu' });
      models.push(later);
      const logits = [];
      for (const m of models) logits.push(await window.logits(m, pixels));
      const alive = (d) => Promise.race([d.lost.then(() => 'lost'), new Promise((r) => setTimeout(() => r('alive'), 200))]);
      const states = await Promise.all(window.gpuDevices.slice(first).map(alive));
      for (const m of models) m.dispose();
      return { states, logits };
    }, item.pixels);
    assert.equal(out.events, undefined, 'every model recovers');
    // Before the fix: 4 recoveries made 4 devices, one used, three left alive and unwatched.
    assert.deepEqual(out.states, ['lost', 'alive']);
    out.logits.forEach((l, i) => assert.ok(maxDiff(l, item.logits) <= TOLERANCE, `model ${i}: ${l}`));
  });

  test('when no device can be had, the reason is one sentence naming the cause', { timeout: 60_000 }, async () => {
    const out = await page.evaluate(async () => {
      const { loadModel } = window.brasa;
      const twoHeads = (await import('./packages/two-heads/index.js')).default;
      const weights = new Uint8Array(await (await fetch('./fixtures/two-heads.bpk')).arrayBuffer());
      // The first device of this build's instance is refused.
      window.refuseDevices = true;
      const result = {};
      try {
        await loadModel(twoHeads, { weights, backend: 'webgpu' });
      } catch (e) {
        result.error = { code: e.code, message: e.message };
      }
      const auto = await loadModel(twoHeads, { weights });
      result.auto = { backend: auto.backend, reason: auto.fallbackReason };
      window.refuseDevices = false;
      auto.dispose();
      return result;
    });
    const cause = 'requestDevice() failed: OperationError: simulated: no device';
    // Before the fix: "backend 'webgpu' is unavailable: WebGPU initialisation failed: backend
    // `webgpu` is unavailable: could not initialise the GPU: … JsValue(OperationError: …\nundefined)".
    assert.deepEqual(out.error, { code: 'backend_unavailable', message: `backend 'webgpu' is unavailable: WebGPU initialisation failed: ${cause}` });
    assert.deepEqual(out.auto, { backend: 'cpu', reason: `WebGPU initialisation failed: ${cause}` });
    assert.ok(warnings.includes(`brasa: running two-heads on CPU: WebGPU initialisation failed: ${cause}`), `console warnings: ${JSON.stringify(warnings)}`);
  });

  test('concurrent first loads of a build share one device', { timeout: 60_000 }, async () => {
    const [ref] = TWO_HEADS.cases;
    const out = await page.evaluate(async (ref) => {
      const { loadModel } = window.brasa;
      const twoHeads = (await import('./packages/two-heads/index.js')).default;
      const weights = new Uint8Array(await (await fetch('./fixtures/two-heads.bpk')).arrayBuffer());
      const first = window.gpuDevices.length;
      const models = await Promise.all([0, 1, 2].map(() => loadModel(twoHeads, { weights, backend: 'webgpu' })));
      const feeds = {
        features: { dtype: 'float32', dims: ref.features.dims, data: new Float32Array(ref.features.data) },
        token_ids: { dtype: 'int64', dims: ref.token_ids.dims, data: BigInt64Array.from(ref.token_ids.data.map(BigInt)) },
      };
      const pooled = [];
      for (const m of models) pooled.push([...(await m.run(feeds)).pooled.data]);
      const alive = (d) => Promise.race([d.lost.then(() => 'lost'), new Promise((r) => setTimeout(() => r('alive'), 200))]);
      const states = await Promise.all(window.gpuDevices.slice(first).map(alive));
      for (const m of models) m.dispose();
      return { states, pooled };
    }, ref);
    assert.deepEqual(out.states, ['alive'], 'one device for the three loads');
    out.pooled.forEach((p) => assert.ok(maxDiff(p, ref.pooled.data) <= 1e-5, `pooled: ${p}`));
  });

  test('an unknown deviceLost value is refused', async () => {
    const error = await page.evaluate(async () => {
      try {
        await window.brasa.loadModel(window.mnist, { weights: window.weights, deviceLost: 'retry' });
        return null;
      } catch (e) {
        return { code: e.code, message: e.message };
      }
    });
    assert.equal(error?.code, 'backend_unavailable');
    assert.match(error.message, /deviceLost `retry`.*'fail', 'cpu' or 'reload'/);
  });

  test('no uncaught errors on the page', () => {
    assert.deepEqual(errors, []);
  });
});
