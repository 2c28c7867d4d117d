// A lost GPU device (issue 12, kind 3), in real headless Chromium on SwiftShader's WebGPU
// adapter: the page captures every GPUDevice wgpu creates (by wrapping
// `GPUAdapter.prototype.requestDevice` before anything runs) and destroys it, as a driver
// reset or the GPU process restarting would lose it. Answers are checked against numpy.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { TOLERANCE, chromium, demoSite, expectedLogits, goto, maxDiff, reference, serve, writeTestPage } from '../support.mjs';

const REF = reference();
let server;
let site;
let browser;
let page;
const errors = [];

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
  // Before brasa loads: every device wgpu requests, in order.
  await page.addInitScript(() => {
    window.gpuDevices = [];
    // Set to make every later device request fail (a GPU that is gone for good).
    window.refuseDevices = false;
    const requestDevice = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...args) {
      if (window.refuseDevices) throw new DOMException('simulated: no device after the loss', 'OperationError');
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
    assert.equal(out.failed.backend, null);
    assert.match(out.failed.error, /GPU device was lost and a new one could not be had.*simulated: no device/);
    assert.equal(out.error?.code, 'execution');
    assert.match(out.error.message, /was lost \(Destroyed.*could not recover/);
    assert.equal(out.recovered.backend, 'cpu');
    assert.equal(out.auto.backend, 'cpu');
    assert.match(out.auto.fallbackReason, /WebGPU device was lost \(Destroyed.*a new one could not be used/);
    assert.ok(maxDiff(out.auto.logits, item.logits) <= TOLERANCE);
    // Once the GPU is back, a load gets a device again.
    assert.equal(out.later.backend, 'webgpu');
    assert.ok(maxDiff(out.later.logits, item.logits) <= TOLERANCE);
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
