// The runtimes a browser offers, each a real one in headless Chromium on 127.0.0.1 (issue 12,
// kind 5): a page, a module Web Worker and a module service worker run tests/runtime-suite.js
// with relative URLs, and the service worker serves the KServe endpoint (`createHandler`) to
// its page. Only the CPU build's wasm is fetched (no WebGPU adapter without the flag).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT, TOLERANCE, checkRuntimeSuite, chromium, demoSite, expectedLogits, goto, maxDiff, reference, serve, weightsPath, writeTestPage } from '../support.mjs';

const REF = reference();
let server;
let site;
let browser;

// Where the files sit: the page at /rt/page.html, the worker at /rt/worker.js (started from
// a page at the root), the service worker at the root (its scope must cover /v2/). The weights
// are only at /rt/mnist.bpk: a relative `mnist.bpk` resolved against anything but /rt/ fails.
const SERVICE_WORKER = `
import { createHandler, loadModel, MemoryCache } from './brasa/dist/index.js';
import mnist from './packages/mnist/index.js';
import { runtimeSuite } from './rt/suite.js';

// Relative to this script, as everything in a worker.
const handler = createHandler({ models: [mnist], registry: 'registry/', load: { cache: new MemoryCache() } });

self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (url.pathname.startsWith('/v2/')) {
    event.respondWith(handler.fetch(event.request));
  } else if (url.pathname === '/rt-suite') {
    event.respondWith((async () => {
      const pixels = JSON.parse(url.searchParams.get('pixels'));
      try {
        const out = await runtimeSuite({ brasa: { loadModel, MemoryCache }, pkg: mnist, weights: 'rt/mnist.bpk', registry: 'registry/', missing: 'rt/no-such.bpk', pixels });
        return Response.json(out);
      } catch (e) {
        return Response.json({ failed: String(e?.code) + ': ' + String(e?.message ?? e) }, { status: 500 });
      }
    })());
  }
});
`;

const WORKER = `
import * as brasa from '../brasa/dist/index.js';
import mnist from '../packages/mnist/index.js';
import { runtimeSuite } from './suite.js';

onmessage = async ({ data }) => {
  try {
    postMessage(await runtimeSuite({ brasa, pkg: mnist, weights: 'mnist.bpk', registry: '../registry/', missing: 'no-such.bpk', pixels: data }));
  } catch (e) {
    postMessage({ failed: String(e?.code) + ': ' + String(e?.message ?? e) });
  }
};
`;

before(async () => {
  site = demoSite();
  const rt = join(site.dir, 'rt');
  mkdirSync(rt, { recursive: true });
  copyFileSync(join(ROOT, 'tests/runtime-suite.js'), join(rt, 'suite.js'));
  copyFileSync(weightsPath(), join(rt, 'mnist.bpk'));
  writeFileSync(join(rt, 'worker.js'), WORKER);
  writeFileSync(join(site.dir, 'runtime-sw.js'), SERVICE_WORKER);
  writeFileSync(
    join(rt, 'page.html'),
    `<!doctype html>
<meta charset="utf-8">
<title>runtime suite: page</title>
<link rel="icon" href="data:,">
<script type="module">
  window.suite = async (pixels) => {
    const brasa = await import('../brasa/dist/index.js');
    const mnist = (await import('../packages/mnist/index.js')).default;
    const { runtimeSuite } = await import('./suite.js');
    return runtimeSuite({ brasa, pkg: mnist, weights: 'mnist.bpk', registry: '../registry/', missing: 'no-such.bpk', pixels });
  };
  document.body.dataset.ready = '1';
</script>
<body></body>
`,
  );
  writeTestPage(site.dir, 'runtimes.html', 'runtime suite: workers');
  server = await serve(site.dir);
  browser = await chromium({ webgpu: false });
});
after(async () => {
  await browser?.close();
  server?.stop();
  site?.remove();
});

/** Paths of the .wasm files `page` (or its workers, as `performance` sees them) fetched. */
function fetchedWasm(page) {
  return page.evaluate(() => [...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm')))]);
}

describe('the same suite in each browser runtime', () => {
  const { input } = expectedLogits();

  test('a page: relative URLs resolve against the page', async () => {
    const page = await browser.context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await goto(page, `${server.url}rt/page.html`);
    await page.waitForFunction(() => document.body.dataset.ready === '1');
    const out = await page.evaluate((pixels) => window.suite(pixels), input);
    checkRuntimeSuite(assert, out, { missingUrl: new RegExp(`${server.url}rt/no-such\\.bpk`) });
    // The package imports the glue modules, but only the wasm of the CPU build the page runs
    // was fetched (the page is cross-origin isolated: the threaded one where it can).
    // The build it runs; beside a threaded one, the `cpu` build the page runs the registry and
    // serving logic on (the threaded glue is never imported on a page).
    const runs = `/packages/mnist/${out.build}/model_bg.wasm`;
    const fetched = [...(await fetchedWasm(page))].sort();
    assert.deepEqual(fetched, out.build.includes('threads') ? ['/packages/mnist/cpu/model_bg.wasm', runs].sort() : [runs]);
    assert.deepEqual(errors, []);
    await page.close();
  });

  test("a module Web Worker: relative URLs resolve against the worker's script, not the page", async () => {
    const page = await browser.context.newPage();
    await goto(page, `${server.url}runtimes.html`);
    await page.waitForFunction(() => document.body.dataset.ready === '1');
    const out = await page.evaluate(async (pixels) => {
      const worker = new Worker('./rt/worker.js', { type: 'module' });
      const result = await new Promise((resolve, reject) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => reject(new Error(e.message));
        worker.postMessage(pixels);
      });
      worker.terminate();
      return result;
    }, input);
    assert.equal(out.failed, undefined, out.failed);
    checkRuntimeSuite(assert, out, { missingUrl: new RegExp(`${server.url}rt/no-such\\.bpk`) });
    await page.close();
  });

  describe('a module service worker', () => {
    let page;
    const errors = [];
    before(async () => {
      page = await browser.context.newPage();
      page.on('pageerror', (e) => errors.push(String(e)));
      await goto(page, `${server.url}runtimes.html`);
      await page.waitForFunction(() => document.body.dataset.ready === '1');
      await page.evaluate(async () => {
        await navigator.serviceWorker.register('/runtime-sw.js', { type: 'module', scope: '/' });
        await navigator.serviceWorker.ready;
        // clients.claim() in its activate handler makes it control this page.
        if (!navigator.serviceWorker.controller) {
          await new Promise((resolve) => navigator.serviceWorker.addEventListener('controllerchange', resolve, { once: true }));
        }
      });
    });
    after(() => page?.close());

    test('createHandler answers /v2/models/mnist/infer through it, like numpy', async () => {
      const items = REF.items.slice(0, 4);
      const res = await page.evaluate(async (pixels) => {
        const response = await fetch('/v2/models/mnist/infer', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ id: 'sw', inputs: [{ name: 'pixels', shape: [pixels.length / 784, 1, 28, 28], datatype: 'FP32', data: pixels }] }),
        });
        return { status: response.status, body: await response.json(), viaWorker: Boolean(navigator.serviceWorker.controller) };
      }, items.flatMap((i) => i.pixels));
      assert.equal(res.viaWorker, true);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(res.body.id, 'sw');
      const [logits] = res.body.outputs;
      assert.equal(logits.name, 'logits');
      assert.deepEqual(logits.shape, [items.length, 10]);
      items.forEach((item, i) => assert.ok(maxDiff(logits.data.slice(i * 10, i * 10 + 10), item.logits) <= TOLERANCE, item.name));
    });

    test('a bad request gets its 400 and code, and the endpoint keeps answering', async () => {
      const res = await page.evaluate(async (pixels) => {
        const infer = (inputs) => fetch('/v2/models/mnist/infer', { method: 'POST', body: JSON.stringify({ inputs }) }).then(async (r) => ({ status: r.status, body: await r.json() }));
        const bad = await infer([{ name: 'pixels', shape: [1, 28, 28, 1], datatype: 'FP32', data: pixels }]);
        const good = await infer([{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: pixels }]);
        const ready = (await fetch('/v2/health/ready')).status;
        return { bad, good, ready };
      }, REF.items[0].pixels);
      assert.equal(res.bad.status, 400);
      assert.equal(res.bad.body.code, 'wrong_shape');
      assert.match(res.bad.body.error, /pixels/);
      assert.equal(res.good.status, 200);
      assert.ok(maxDiff(res.good.body.outputs[0].data, REF.items[0].logits) <= TOLERANCE);
      assert.equal(res.ready, 200);
    });

    test("the suite runs in it: relative URLs resolve against the worker's script", async () => {
      const res = await page.evaluate(async (pixels) => {
        const r = await fetch(`/rt-suite?pixels=${encodeURIComponent(JSON.stringify(pixels))}`);
        return { status: r.status, body: await r.json() };
      }, input);
      assert.equal(res.body.failed, undefined, res.body.failed);
      checkRuntimeSuite(assert, res.body, { missingUrl: new RegExp(`${server.url}rt/no-such\\.bpk`) });
    });

    test('no uncaught errors on its page', () => {
      assert.deepEqual(errors, []);
    });
  });
});
