// The registry fetcher in headless Chromium: every scenario with Cache Storage, a real second
// page load (no weight download, manifest 304), and cold/warm time to first prediction; a
// download cut short on one page load and the reloaded page loading it; a registry on another
// origin (`brasa serve`'s CORS, and a static host that answers no preflight). The page imports
// brasa (`/brasa/dist/`) and the MNIST model package (`/packages/mnist/`) from the fault proxy.
import { test } from 'node:test';
import assert from 'node:assert/strict';

import { startFaultProxy, useFaultProxy } from '../fault-proxy.mjs';
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

test('registry scenarios on WebGPU: golden checks run on the GPU backend, a failure there refuses it there only', async () => {
  const browser = await chromium({ webgpu: true });
  try {
    const { page } = await open(browser.context, under.proxy.url);
    const only = [SCENARIO_NAMES[0], ...SCENARIO_NAMES.filter((n) => n.includes('golden'))];
    assert.equal(only.length, 3);
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

/** Load `mnist@stable` (CPU, the page's default cache) from `registry` in `page`; the digit's label, the version, the load's update check. */
function loadInPage(page, registry) {
  return page.evaluate(async ({ registry, input }) => {
    const { default: mnist } = await import('/packages/mnist/index.js');
    try {
      const model = await window.brasa.loadModel('mnist@stable', { registry, build: mnist, backend: 'cpu' });
      const { label } = await window.brasa.createClassifier(model).run(Float32Array.from(input));
      return { label, version: model.version, check: await model.updateCheck };
    } catch (err) {
      return { code: err.code, message: err.message };
    }
  }, { registry, input: expectedLogits().input });
}

test('a download cut short on both tries fails that page load only: the reloaded page downloads it and runs', async () => {
  const browser = await chromium({ webgpu: false });
  const control = (path, body) => fetch(under.proxy.control + path, { method: path === 'log' ? 'GET' : 'POST', body: body && JSON.stringify(body) }).then((r) => r.json());
  try {
    await control('reset');
    await control('fault', { path: '/files/', truncate: 100_000, times: 2 });
    const { page } = await open(browser.context, under.proxy.url);
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    const failed = await loadInPage(page, under.proxy.registry);
    assert.equal(failed.code, 'network', JSON.stringify(failed));
    await page.reload();
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    const loaded = await loadInPage(page, under.proxy.registry);
    assert.deepEqual([loaded.version, loaded.label], ['1.0.0', 7], JSON.stringify(loaded));
    const gets = (await control('log')).filter((e) => e.path.includes('/files/'));
    assert.equal(gets.length, 3, JSON.stringify(gets));
  } finally {
    await control('reset');
    await browser.close();
  }
});

// The page on one origin, the registry on another (a second proxy, on another port, in front
// of its own `brasa serve` of the same registry). The fetcher sends no header that needs a
// preflight there: the browser's HTTP cache revalidates the manifest (`cache: 'no-cache'`).
test('a registry on another origin: no preflight, the warm load revalidates the manifest (304), also on a static host without preflight support', async () => {
  const other = await startFaultProxy(under.registry.dir);
  const control = (path, body) => fetch(other.control + path, { method: path === 'log' ? 'GET' : 'POST', body: body && JSON.stringify(body) }).then((r) => r.json());
  try {
    for (const host of ['brasa serve', 'static host without preflight support']) {
      const browser = await chromium({ webgpu: false });
      try {
        await control('reset');
        if (host !== 'brasa serve') await control('fault', { path: 'registry/', noPreflight: true });
        const { page } = await open(browser.context, under.proxy.url);
        await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
        assert.notEqual(new URL(other.registry).origin, new URL(under.proxy.url).origin);
        const cold = await loadInPage(page, other.registry);
        assert.deepEqual([cold.version, cold.label], ['1.0.0', 7], `${host}: ${JSON.stringify(cold)}`);
        let log = await control('log');
        assert.deepEqual(log.filter((e) => e.method === 'OPTIONS'), [], `${host}: preflights`);
        assert.ok(log.every((e) => e.origin === new URL(under.proxy.url).origin), `${host}: ${JSON.stringify(log)}`);
        assert.equal(log.filter((e) => e.path.includes('/files/')).length, 1, `${host}: ${JSON.stringify(log)}`);

        const before = log.length;
        await page.reload();
        await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
        const warm = await loadInPage(page, other.registry);
        assert.deepEqual([warm.version, warm.label, warm.check.outcome], ['1.0.0', 7, 'current'], `${host}: ${JSON.stringify(warm)}`);
        log = (await control('log')).slice(before);
        assert.deepEqual(log.filter((e) => e.method === 'OPTIONS'), [], `${host}: preflights`);
        assert.deepEqual(log.filter((e) => e.path.includes('/files/')), [], `${host}: the warm load downloaded weights`);
        const manifests = log.filter((e) => e.path.endsWith('manifest.json'));
        assert.equal(manifests.length, 1, `${host}: ${JSON.stringify(manifests)}`);
        assert.equal(manifests[0].status, 304, `${host}: ${JSON.stringify(manifests)}`);
        assert.match(manifests[0].ifNoneMatch ?? '', /^"sha256-/, host);
      } finally {
        await browser.close();
      }
    }
  } finally {
    await other.stop();
  }
});
