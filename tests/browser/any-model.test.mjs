// brasa runs any model, not only MNIST: the `two-heads` model package (two inputs of two
// dtypes, float32 `features` [batch, seq 1..64, 4] and int64 `token_ids` [batch, 3] in
// [0, 15]; two outputs, float32 `pooled` [batch, 6] and int64 `class_id` [batch]) in headless
// Chromium, on its CPU build and on its WebGPU build (SwiftShader), and in a Web Worker on
// CPU. Every case of the reference (`fixtures/two-heads-reference.json`) must match; a token
// id out of range is an `invalid_input` that leaves the model working.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, chromium, demoSite, maxDiff, open, serve, writeTestPage } from '../support.mjs';

const REF = JSON.parse(readFileSync(join(CACHE, 'fixtures/two-heads-reference.json'), 'utf8'));
const TOLERANCE = { cpu: 1e-5, webgpu: 1e-4 };
const PAGE = 'any-model.html';

let server;
let site;

before(async () => {
  // The demo site holds brasa (`brasa/dist/`), the package (`packages/two-heads/`) and its
  // weights (`fixtures/two-heads.bpk`); a blank page next to them imports both.
  site = demoSite();
  writeTestPage(site.dir, PAGE, 'brasa: any model', `
  window.twoHeads = (await import('./packages/two-heads/index.js')).default;
`);
  server = await serve(site.dir);
});
after(() => {
  server?.stop();
  site?.remove();
});

/**
 * Source of `twoHeadsRound(brasa, pkg, weightsUrl, backend, cases)`, for a page and a worker:
 * load the package, run every case, then a token id of 16, then the first case again.
 * int64 values travel back as numbers (they are small), so the result can be posted.
 */
const ROUND = `
async function twoHeadsRound({ loadModel, Tensor }, pkg, weights, backend, cases) {
  const model = await loadModel(pkg, { weights, backend });
  const feeds = (c, ids = BigInt64Array.from(c.token_ids.data, (v) => BigInt(v))) => ({
    features: new Tensor('float32', Float32Array.from(c.features.data), c.features.dims),
    token_ids: new Tensor('int64', ids, c.token_ids.dims),
  });
  const plain = (fetches) => ({
    names: Object.keys(fetches).sort(),
    pooled: { dtype: fetches.pooled.dtype, dims: [...fetches.pooled.dims], data: Array.from(fetches.pooled.data) },
    class_id: { dtype: fetches.class_id.dtype, dims: [...fetches.class_id.dims], data: Array.from(fetches.class_id.data, Number) },
  });
  const results = [];
  for (const c of cases) results.push(plain(await model.run(feeds(c))));
  const bad = BigInt64Array.from(cases[0].token_ids.data, (v) => BigInt(v));
  bad[bad.length - 1] = 16n;
  let invalid = null;
  try {
    await model.run(feeds(cases[0], bad));
  } catch (e) {
    invalid = { name: e.name, code: e.code, message: e.message };
  }
  const again = plain(await model.run(feeds(cases[0])));
  const summary = {
    backend: model.backend,
    inputs: model.signature.inputs.map((s) => [s.name, s.dtype]),
    outputs: model.signature.outputs.map((s) => [s.name, s.dtype]),
    results,
    invalid,
    again,
  };
  model.dispose();
  return summary;
}`;

/** A fresh browser on the blank page, brasa and the package imported, the round defined. */
async function openPage({ webgpu }) {
  const browser = await chromium({ webgpu });
  const { page, errors } = await open(browser.context, server.url + PAGE);
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
  await page.addScriptTag({ content: ROUND });
  return { browser, page, errors };
}

function runInPage(page, backend) {
  return page.evaluate(
    ({ backend, cases }) => twoHeadsRound(window.brasa, window.twoHeads, new URL('./fixtures/two-heads.bpk', location.href).href, backend, cases),
    { backend, cases: REF.cases },
  );
}

/** The same round in a dedicated module worker, on the CPU build. */
function runInWorker(page) {
  return page.evaluate(async ({ round, cases }) => {
    const abs = (path) => new URL(path, location.href).href;
    const source = `
      import * as brasa from '${abs('./brasa/dist/index.js')}';
      import pkg from '${abs('./packages/two-heads/index.js')}';
      ${round}
      onmessage = async ({ data }) => {
        try {
          postMessage(await twoHeadsRound(brasa, pkg, '${abs('./fixtures/two-heads.bpk')}', 'cpu', data));
        } catch (e) {
          postMessage({ error: e.code + ': ' + e.message });
        }
      };`;
    const worker = new Worker(URL.createObjectURL(new Blob([source], { type: 'text/javascript' })), { type: 'module' });
    const result = await new Promise((resolve, reject) => {
      worker.onmessage = (e) => resolve(e.data);
      worker.onerror = (e) => reject(new Error(e.message));
      worker.postMessage(cases);
    });
    worker.terminate();
    return result;
  }, { round: ROUND, cases: REF.cases });
}

/** Paths of the .wasm files the page has fetched so far. */
function fetchedWasm(page) {
  return page.evaluate(() => [...new Set(performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname).filter((p) => p.endsWith('.wasm')))]);
}

function assertMatchesReference(result, backend) {
  assert.equal(result.error, undefined, result.error);
  assert.equal(result.backend, backend);
  assert.deepEqual(result.inputs, [['features', 'float32'], ['token_ids', 'int64']]);
  assert.deepEqual(result.outputs, [['pooled', 'float32'], ['class_id', 'int64']]);
  assert.ok(REF.cases.length > 0, 'the reference has cases');
  assert.equal(result.results.length, REF.cases.length);
  const tolerance = TOLERANCE[backend];
  REF.cases.forEach((expected, i) => {
    const got = result.results[i];
    const where = `${backend}, case ${i} (features [${expected.features.dims}])`;
    assert.deepEqual(got.names, ['class_id', 'pooled'], where);
    assert.equal(got.pooled.dtype, 'float32', where);
    assert.deepEqual(got.pooled.dims, expected.pooled.dims, where);
    const worst = maxDiff(got.pooled.data, expected.pooled.data);
    assert.ok(got.pooled.data.length === expected.pooled.data.length && worst <= tolerance, `${where}: |pooled - reference| = ${worst} > ${tolerance}`);
    assert.equal(got.class_id.dtype, 'int64', where);
    assert.deepEqual(got.class_id.dims, expected.class_id.dims, where);
    assert.deepEqual(got.class_id.data, expected.class_id.data.map(Number), where);
  });
  // Token id 16 is out of [0, 15]: a typed error naming the tensor, and the model still works.
  assert.equal(result.invalid?.name, 'BrasaError', JSON.stringify(result.invalid));
  assert.equal(result.invalid.code, 'invalid_input', result.invalid.message);
  assert.match(result.invalid.message, /token_ids/);
  assert.deepEqual(result.again.class_id, result.results[0].class_id);
  assert.ok(maxDiff(result.again.pooled.data, result.results[0].pooled.data) <= tolerance, 'the model answers the same after the rejected call');
}

const results = {};

describe('two-heads on the CPU build (no WebGPU)', () => {
  let browser, page, errors;
  before(async () => { ({ browser, page, errors } = await openPage({ webgpu: false })); });
  after(() => browser?.close());

  test('every reference case matches (pooled within 1e-5, class_id exactly); token id 16 is invalid_input', async () => {
    results.cpu = await runInPage(page, 'cpu');
    assertMatchesReference(results.cpu, 'cpu');
  });

  test('only the package\'s CPU build was fetched', async () => {
    assert.deepEqual(await fetchedWasm(page), ['/packages/two-heads/cpu/model_bg.wasm']);
  });

  test('a dedicated Web Worker loads the package and runs every case on CPU', async () => {
    const result = await runInWorker(page);
    assertMatchesReference(result, 'cpu');
  });

  test('no uncaught errors on the page', () => {
    assert.deepEqual(errors, []);
  });
});

describe('two-heads on the WebGPU build (SwiftShader adapter)', () => {
  let browser, page, errors;
  before(async () => { ({ browser, page, errors } = await openPage({ webgpu: true })); });
  after(() => browser?.close());

  test('every reference case matches (pooled within 1e-4, class_id exactly); token id 16 is invalid_input', async () => {
    results.webgpu = await runInPage(page, 'webgpu');
    assertMatchesReference(results.webgpu, 'webgpu');
  });

  test('only the package\'s WebGPU build was fetched', async () => {
    assert.deepEqual(await fetchedWasm(page), ['/packages/two-heads/webgpu/model_bg.wasm']);
  });

  test('no uncaught errors on the page', () => {
    assert.deepEqual(errors, []);
  });
});

test('both builds give the same class ids', () => {
  assert.ok(results.cpu && results.webgpu, 'both backend suites ran');
  assert.deepEqual(results.webgpu.results.map((r) => r.class_id), results.cpu.results.map((r) => r.class_id));
});
