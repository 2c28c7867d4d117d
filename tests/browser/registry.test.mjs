// The registry fetcher in headless Chromium: every scenario with Cache Storage, a real second
// page load (no weight download, manifest 304), and cold/warm time to first prediction. The
// page imports brasa (`/brasa/dist/`) and the MNIST model package (`/packages/mnist/`) from
// the fault proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { useFaultProxy } from '../fault-proxy.mjs';
import { SCENARIO_NAMES } from '../registry/scenarios.js';
import { chromium, expectedLogits, open } from '../support.mjs';

const under = useFaultProxy();

async function runInPage(page, options, only = null) {
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
  return page.evaluate(
    async ({ registry, control, expected, options, only }) => {
      const { runScenarios } = await import('/tests/registry/scenarios.js');
      const brasa = window.brasa;
      const { default: mnist } = await import('/packages/mnist/index.js');
      return runScenarios({ brasa, mnist, registry, control, expected, options, newCache: (name) => new brasa.CacheStorageCache(`test-${name}`) }, only);
    },
    { registry: under.proxy.registry, control: under.proxy.control, expected: expectedLogits(), options, only },
  );
}

test('registry scenarios in Chromium (Cache Storage, CPU)', async () => {
  const browser = await chromium({ webgpu: false });
  try {
    const { page, errors } = await open(browser.context, under.proxy.url);
    const result = await runInPage(page, { backend: 'cpu' });
    assert.deepEqual(result.failed, [], result.failed.map((f) => `${f.name}: ${f.error}`).join('\n\n'));
    assert.deepEqual(result.passed, SCENARIO_NAMES);
    // Failed requests are what the scenarios inject; nothing else may reach the console.
    const unexpected = errors.filter((e) => !/Failed to load resource|net::ERR_|injected/.test(e));
    assert.deepEqual(unexpected, []);
  } finally {
    await browser.close();
  }
});

test('registry scenarios on WebGPU: golden checks run on the GPU backend', async () => {
  const browser = await chromium({ webgpu: true });
  try {
    const { page } = await open(browser.context, under.proxy.url);
    const only = [SCENARIO_NAMES[0], SCENARIO_NAMES.find((n) => n.includes('golden'))];
    const result = await runInPage(page, { backend: 'webgpu' }, only);
    assert.deepEqual(result.failed, [], result.failed.map((f) => `${f.name}: ${f.error}`).join('\n\n'));
    assert.deepEqual(result.passed, only);
  } finally {
    await browser.close();
  }
});

test('a second page load downloads no weights and revalidates the manifest with a 304', async () => {
  const browser = await chromium({ webgpu: false });
  const control = (path) => fetch(under.proxy.control + path, { method: path === 'log' ? 'GET' : 'POST' }).then((r) => r.json());
  // Time from navigation start to the first prediction, with the page's default cache.
  const firstPrediction = (page) =>
    page.evaluate(async ({ registry, input }) => {
      const { default: mnist } = await import('/packages/mnist/index.js');
      const model = await window.brasa.loadModel('mnist@stable', { registry, build: mnist, backend: 'cpu' });
      const { label } = await window.brasa.createClassifier(model).run(Float32Array.from(input));
      const ms = performance.now();
      const check = await model.updateCheck;
      return { ms, label, version: model.version, check };
    }, { registry: under.proxy.registry, input: expectedLogits().input });
  try {
    await control('reset');
    const { page } = await open(browser.context, under.proxy.url);
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    const cold = await firstPrediction(page);
    assert.equal(cold.version, '1.0.0');
    assert.equal(cold.label, 7);
    let log = await control('log');
    assert.equal(log.filter((e) => e.path.includes('/files/')).length, 1);

    await control('reset');
    await page.reload();
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    const warm = await firstPrediction(page);
    assert.equal(warm.version, '1.0.0');
    assert.equal(warm.check.status, 304, JSON.stringify(warm.check));
    log = await control('log');
    assert.deepEqual(log.filter((e) => e.path.includes('/files/')), [], 'the second load downloaded weights');
    const manifests = log.filter((e) => e.path.endsWith('manifest.json') && e.method === 'GET');
    assert.equal(manifests.length, 1);
    assert.equal(manifests[0].status, 304);
    console.log(`# time to first prediction (Chromium, CPU, registry on 127.0.0.1): cold ${cold.ms.toFixed(0)} ms, warm ${warm.ms.toFixed(0)} ms`);
  } finally {
    await browser.close();
  }
});
