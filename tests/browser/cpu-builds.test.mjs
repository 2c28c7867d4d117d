// The CPU builds of issue 13 in headless Chromium: simd128 and relaxed SIMD, single-threaded
// and threaded (wasm threads in a Worker brasa starts, its rayon pool in Workers of its own), on
// MNIST and SqueezeNet (ONNX), against the numpy and onnx references. The page is served twice:
// by `brasa serve` (COOP/COEP: cross-origin isolated) and by a plain static server (not
// isolated: no threads). Relaxed SIMD's fused multiply-add rounds once where simd128 rounds
// twice, so every build is held to the references' tolerance, never to another build.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { extname, join, normalize } from 'node:path';

import { CACHE, chromium, demoSite, expectedLogits, maxDiff, open, reference, serve, variantWeightsPath, writeTestPage } from '../support.mjs';

const PAGE = 'cpu-builds.html';
const MNIST = reference();
const SQUEEZENET = JSON.parse(readFileSync(join(CACHE, 'models/squeezenet/squeezenet-reference.json'), 'utf8'));
// numpy computes in float64; the builds in float32 (MNIST's logits reach ±270).
const TOLERANCE = { mnist: 2e-4, 'squeezenet-onnx': 1e-5 };

/** The forced builds: options and the build they must give on an isolated page. */
const FORCED = [
  { options: { simd: 'simd128', threads: 1 }, build: 'cpu', threads: 1 },
  { options: { simd: 'relaxed', threads: 1 }, build: 'cpu-relaxed', threads: 1 },
  { options: { simd: 'simd128', threads: 2 }, build: 'cpu-threads', threads: 2 },
  { options: { simd: 'relaxed', threads: 2 }, build: 'cpu-threads-relaxed', threads: 2 },
];

const MIME = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm' };

/** A static server sending `headers` with every file; by default none for cross-origin
 * isolation: what most hosts send. */
function plainServer(dir, headers = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, '');
    try {
      const body = await readFile(join(dir, path));
      res.writeHead(200, { ...headers, 'content-type': MIME[extname(path)] ?? 'application/octet-stream' });
      res.end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${server.address().port}/`, stop: () => server.close() })));
}

let site;
let isolated;
let plain;
let noBlobWorkers;
let browser;

before(async () => {
  site = demoSite();
  writeTestPage(site.dir, PAGE, 'brasa: CPU builds', `
  const WEIGHTS = { mnist: './models/mnist.bpk', 'two-heads': './fixtures/two-heads.bpk' };
  const weightsOf = (name) => new URL(WEIGHTS[name] ?? './packages/' + name + '/weights.bpk', location.href).href;
  const failure = (e) => ({ code: e?.code ?? null, name: e?.name ?? null, message: String(e?.message ?? e) });
  // Load \`name\` with \`options\`, run each feed, dispose; outputs as plain arrays.
  window.check = async (name, options, feeds) => {
    const pkg = (await import('./packages/' + name + '/index.js')).default;
    let model;
    try {
      model = await window.brasa.loadModel(pkg, { weights: weightsOf(name), backend: 'cpu', ...options });
    } catch (e) {
      return { failed: failure(e) };
    }
    try {
      const outs = [];
      for (const f of feeds) {
        const fetches = await model.run({ [f.name]: new window.brasa.Tensor('float32', Float32Array.from(f.data), f.dims) });
        outs.push(Array.from(Object.values(fetches)[0].data));
      }
      return { build: model.build, backend: model.backend, outs, memory: model.memoryBytes };
    } finally {
      model.dispose();
    }
  };
  window.cores = () => navigator.hardwareConcurrency;
  window.isolated = () => crossOriginIsolated;
`);
  isolated = await serve(site.dir);
  plain = await plainServer(site.dir);
  // Cross-origin isolated, with a CSP that lets Workers start from the origin's own scripts
  // only: the model's Worker starts, its pool's Workers (from blob: URLs) cannot.
  noBlobWorkers = await plainServer(site.dir, {
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-embedder-policy': 'require-corp',
    'content-security-policy': "worker-src 'self'",
  });
  browser = await chromium({ webgpu: false });
});
after(async () => {
  await browser?.close();
  isolated?.stop();
  plain?.stop();
  noBlobWorkers?.stop();
  site?.remove();
});

const mnistFeeds = () => [{ name: 'pixels', dims: [MNIST.items.length, 1, 28, 28], data: MNIST.items.flatMap((item) => item.pixels) }];
const mnistExpected = () => [MNIST.items.flatMap((item) => item.logits)];
const squeezenetFeeds = () => SQUEEZENET.inputs.map((data) => ({ name: 'data_0', dims: [1, 3, 224, 224], data }));
const CASES = [
  { model: 'mnist', feeds: mnistFeeds, expected: mnistExpected },
  { model: 'squeezenet-onnx', feeds: squeezenetFeeds, expected: () => SQUEEZENET.outputs },
];

function assertMatches(model, got, expected, label, t) {
  assert.equal(got.outs.length, expected.length, label);
  got.outs.forEach((out, i) => {
    assert.equal(out.length, expected[i].length, `${label}: output ${i} length`);
    const diff = maxDiff(out, expected[i]);
    t?.diagnostic(`${model} ${label} output ${i}: max |Δ| ${diff.toExponential(2)}`);
    assert.ok(diff <= TOLERANCE[model], `${label}: output ${i} off the reference by ${diff} (tolerance ${TOLERANCE[model]})`);
  });
}

describe('a cross-origin isolated page', () => {
  let page;
  let errors;
  before(async () => {
    ({ page, errors } = await open(browser.context, isolated.url + PAGE));
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    assert.equal(await page.evaluate(() => window.isolated()), true, 'brasa serve sends COOP/COEP');
  });
  after(() => page?.close());

  for (const { model, feeds, expected } of CASES) {
    for (const forced of FORCED) {
      test(`${model}: ${forced.build} (${JSON.stringify(forced.options)}) matches the reference`, async (t) => {
        const got = await page.evaluate(([m, o, f]) => window.check(m, o, f), [model, forced.options, feeds()]);
        assert.equal(got.failed, undefined, JSON.stringify(got.failed));
        assert.equal(got.backend, 'cpu');
        assert.equal(got.build.name, forced.build);
        // From the build's own rayon: the pool really has that many threads.
        assert.equal(got.build.threads, forced.threads);
        assert.equal(got.build.relaxedSimd, forced.build.endsWith('-relaxed'));
        assert.ok(got.memory > 0, 'memoryBytes reports the Worker instance');
        assertMatches(model, got, expected(), forced.build, t);
      });
    }
  }

  test("'auto' picks the threaded relaxed-SIMD build with min(hardwareConcurrency, 4) threads", async () => {
    const cores = await page.evaluate(() => window.cores());
    const got = await page.evaluate(([f]) => window.check('mnist', {}, f), [mnistFeeds()]);
    assert.equal(got.failed, undefined, JSON.stringify(got.failed));
    if (cores > 1) {
      assert.deepEqual([got.build.name, got.build.threads, got.build.reason], ['cpu-threads-relaxed', Math.min(cores, 4), null]);
    } else {
      assert.equal(got.build.name, 'cpu-relaxed');
      assert.match(got.build.reason, /1 logical core here/);
    }
    assertMatches('mnist', got, mnistExpected(), 'auto');
  });

  test('the threaded build runs in a Worker that dispose ends; errors keep their code and the model stays usable', async () => {
    const started = page.waitForEvent('worker', { predicate: (w) => w.url().endsWith('/thread-worker.js') });
    await page.evaluate(async (weights) => {
      const pkg = (await import('./packages/mnist/index.js')).default;
      window.threaded = await window.brasa.loadModel(pkg, { weights: new URL('./models/mnist.bpk', location.href).href, backend: 'cpu', threads: 2 });
      window.recalibrated = new Uint8Array(weights);
    }, [...readFileSync(variantWeightsPath())]);
    const worker = await started;
    const { input, v100, v110 } = expectedLogits();
    const outcome = await page.evaluate(async (pixels) => {
      const model = window.threaded;
      const logits = async () => Array.from((await model.run(new Float32Array(pixels))).logits.data);
      const caught = async (f) => {
        try {
          await f();
          return null;
        } catch (e) {
          return { code: e.code, name: e.name, message: e.message };
        }
      };
      const before = await logits();
      const badInput = await caught(() => model.run({ pixels: { dtype: 'float32', dims: [1, 1, 28, 27], data: new Float32Array(756) } }));
      const badWeights = await caught(() => model.setWeights(new Uint8Array([1, 2, 3])));
      const still = await logits();
      await model.setWeights(window.recalibrated);
      const swapped = await logits();
      return { before, badInput, badWeights, still, swapped, build: model.build };
    }, input);
    assert.equal(outcome.build.name, 'cpu-threads-relaxed');
    assert.ok(maxDiff(outcome.before, v100) <= TOLERANCE.mnist);
    assert.equal(outcome.badInput?.code, 'invalid_input');
    assert.equal(outcome.badInput.name, 'BrasaError');
    assert.match(outcome.badInput.message, /pixels/);
    assert.equal(outcome.badWeights?.code, 'invalid_weights');
    assert.ok(maxDiff(outcome.still, v100) <= TOLERANCE.mnist, 'bad calls leave the model as it was');
    assert.ok(maxDiff(outcome.swapped, v110) <= TOLERANCE.mnist, 'setWeights reached the Worker');
    const closed = worker.waitForEvent('close');
    const afterDispose = await page.evaluate(async () => {
      window.threaded.dispose();
      try {
        await window.threaded.run(new Float32Array(784));
        return null;
      } catch (e) {
        return e.code;
      }
    });
    assert.equal(afterDispose, 'disposed');
    await closed;
  });

  test("threads: 2 and simd: 'relaxed' on a package without those builds are errors naming why", async () => {
    const got = await page.evaluate(() =>
      Promise.all([
        window.check('two-heads', { threads: 2 }, []),
        window.check('two-heads', { simd: 'relaxed' }, []),
      ]),
    );
    assert.equal(got[0].failed?.code, 'backend_unavailable');
    assert.match(got[0].failed.message, /threads: 2 cannot run here: the model package two-heads has no threaded build/);
    assert.equal(got[1].failed?.code, 'backend_unavailable');
    assert.match(got[1].failed.message, /simd: 'relaxed' cannot run here: the model package two-heads has no relaxed-SIMD build/);
  });

  // PP-OCRv4 det takes heights and widths that are multiples of 32: given [1, 3, 30, 50], burn
  // panics inside the graph, on a thread of the pool (the threaded build runs the forward pass
  // there) while the model's Worker is blocked waiting. The pool's own Worker reports it.
  test('a trap on a thread of the pool rejects the run `internal`; the model stays dead, a new load works', async () => {
    const ref = JSON.parse(readFileSync(join(CACHE, 'fixtures', 'ocr-det-reference.json'), 'utf8'));
    const valid = ref.cases.find((c) => c.inputs[0].dims.join('x') === '1x3x64x96');
    const outcome = await page.evaluate(async ([dims, data]) => {
      const pkg = (await import('./packages/ocr-det/index.js')).default;
      const load = () => window.brasa.loadModel(pkg, { weights: new URL('./packages/ocr-det/weights.bpk', location.href).href, backend: 'cpu', threads: 2 });
      const x = (d, values) => ({ x: new window.brasa.Tensor('float32', values, d) });
      const caught = async (f) => {
        // A run that never settles is the failure this guards against: give up after 60 s.
        const hung = new Promise((resolve) => setTimeout(() => resolve({ code: 'hung' }), 60_000));
        return Promise.race([f().then(() => null, (e) => ({ code: e.code, message: e.message })), hung]);
      };
      const model = await load();
      const before = Array.from(Object.values(await model.run(x(dims, Float32Array.from(data))))[0].data);
      const trap = await caught(() => model.run(x([1, 3, 30, 50], new Float32Array(4500).fill(0.5))));
      const after = await caught(() => model.run(x(dims, Float32Array.from(data))));
      model.dispose();
      const fresh = await load();
      const again = Array.from(Object.values(await fresh.run(x(dims, Float32Array.from(data))))[0].data);
      fresh.dispose();
      return { build: model.build.name, before, trap, after, again };
    }, [valid.inputs[0].dims, valid.inputs[0].data]);
    assert.equal(outcome.build, 'cpu-threads-relaxed');
    const want = valid.outputs[0].data;
    assert.ok(maxDiff(outcome.before, want) <= 1e-4, 'before the trap');
    const dead = /the wasm instance of ocr-det \(cpu-threads-relaxed\) aborted while running: .*a thread of the pool aborted: .*unreachable.*; load the model again/;
    assert.equal(outcome.trap?.code, 'internal', JSON.stringify(outcome.trap));
    assert.match(outcome.trap.message, dead);
    assert.equal(outcome.after?.code, 'internal', JSON.stringify(outcome.after));
    assert.match(outcome.after.message, dead);
    assert.ok(maxDiff(outcome.again, want) <= 1e-4, 'a fresh load after the trap');
  });

  test("no page errors but the trap's own panic message", () => {
    assert.deepEqual(errors.filter((e) => !/^panicked at [^\n]*burn-tensor[\s\S]*incompatible shapes/.test(e)), []);
  });
});

describe('a page that is not cross-origin isolated', () => {
  let page;
  before(async () => {
    ({ page } = await open(browser.context, plain.url + PAGE));
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    assert.equal(await page.evaluate(() => window.isolated()), false);
  });
  after(() => page?.close());

  test("'auto' falls back to the single-threaded relaxed-SIMD build and says why", async () => {
    const got = await page.evaluate(([f]) => window.check('mnist', {}, f), [mnistFeeds()]);
    assert.equal(got.failed, undefined, JSON.stringify(got.failed));
    assert.equal(got.build.name, 'cpu-relaxed');
    assert.equal(got.build.threads, 1);
    assert.match(got.build.reason, /^single-threaded: the page is not cross-origin isolated/);
    assertMatches('mnist', got, mnistExpected(), 'not isolated');
  });

  test('threads: 2 is backend_unavailable naming the headers it needs', async () => {
    const got = await page.evaluate(() => window.check('mnist', { threads: 2 }, []));
    assert.equal(got.failed?.code, 'backend_unavailable');
    assert.match(got.failed.message, /threads: 2 cannot run here: the page is not cross-origin isolated .*Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp/);
  });
});

describe('an isolated page whose CSP allows no blob: Workers', () => {
  let page;
  before(async () => {
    ({ page } = await open(browser.context, noBlobWorkers.url + PAGE));
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    assert.equal(await page.evaluate(() => window.isolated()), true);
  });
  after(() => page?.close());

  test("threads: 2 fails loadModel with wasm_load naming the pool and the CSP (it does not wait for ever); 'auto' and threads: 1 run single-threaded", async () => {
    const got = await page.evaluate(() => Promise.race([window.check('mnist', { threads: 2 }, []), new Promise((resolve) => setTimeout(() => resolve({ failed: { code: 'hung' } }), 60_000))]));
    assert.equal(got.failed?.code, 'wasm_load', JSON.stringify(got));
    assert.match(got.failed.message, /could not start mnist \(cpu-threads-relaxed\) with 2 threads: a thread of the pool could not start.*worker-src must allow blob:/);
    const auto = await page.evaluate(([f]) => window.check('mnist', {}, f), [mnistFeeds()]);
    assert.equal(auto.failed, undefined, JSON.stringify(auto.failed));
    assert.deepEqual([auto.build.name, auto.build.threads], ['cpu-relaxed', 1]);
    assert.match(auto.build.reason, /^single-threaded: the threaded build could not start \(could not start mnist \(cpu-threads-relaxed\) with \d+ threads: a thread of the pool could not start/);
    assertMatches('mnist', auto, mnistExpected(), "'auto' under the CSP");
    const single = await page.evaluate(([f]) => window.check('mnist', { threads: 1 }, f), [mnistFeeds()]);
    assert.equal(single.failed, undefined, JSON.stringify(single.failed));
    assertMatches('mnist', single, mnistExpected(), 'threads: 1 under the CSP');
  });
});
