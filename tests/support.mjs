// Shared helpers of the JS test suites: the model packages `brasa build` made (MNIST,
// SqueezeNet, the two-heads fixture), the real `brasa serve` on 127.0.0.1, Debian's Chromium
// through playwright-core, and the independent references (numpy, onnx).
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const ROOT = resolve(fileURLToPath(import.meta.url), '../..');
export const CACHE = process.env.BRASA_CACHE_DIR ?? join(ROOT, '.cache');
export const CLI = process.env.BRASA_CLI ?? join(process.env.HOME, '.cache/brasa/target/debug/brasa');
export const TOLERANCE = 1e-4;

/** The folder of a model package `brasa build` wrote for the tests (`mnist`, `squeezenet`, `two-heads`). */
export function packageDir(name) {
  return join(CACHE, 'packages', name);
}

/** A model package: the default export of its `index.js` (what `loadModel` takes). */
export async function loadPackage(name) {
  return (await import(pathToFileURL(join(packageDir(name), 'index.js')).href)).default;
}

/** A file `cargo xtask setup` put under `.cache/fixtures` (references, goldens, fixture weights). */
export function fixturePath(name) {
  return join(CACHE, 'fixtures', name);
}

/** The golden check (`{ inputs, outputs, tolerance, source }`) published with an MNIST version. */
export function goldenPath(version) {
  return fixturePath(`mnist-golden-${version}.json`);
}

export function reference() {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures/mnist-reference.json'), 'utf8'));
}

export function weightsPath() {
  return join(CACHE, 'models/mnist.bpk');
}

/** The recalibrated weights (version 1.1.0 of the test registry). */
export function variantWeightsPath() {
  return join(CACHE, 'models/mnist-recalibrated.bpk');
}

/** Deno from npm (`deno` devDependency; its platform package holds the binary). */
export const DENO = process.env.DENO ?? join(ROOT, 'node_modules/@deno/linux-x64-glibc/deno');

/**
 * `brasa registry --registry DIR publish` of one MNIST version, with its golden check (from
 * the independent reference) and the package it is for.
 */
export function publishArgs(version, weights, { channel, notes = '', code = false } = {}) {
  const args = ['publish', '--model', 'mnist', '--version', version, '--weights', weights, '--golden', goldenPath(version), '--build', packageDir('mnist'), '--notes', notes];
  if (channel) args.push('--channel', channel);
  if (code) args.push('--code');
  return args;
}

/**
 * A registry written by the real CLI in a temporary folder: 1.0.0 (ccexam's weights) on
 * `stable`, 1.1.0 (recalibrated) on `canary`, each with its golden check (`code`: 1.0.0 with
 * the package's builds, `publish --code`). Resolves to { dir, remove }.
 */
export function makeRegistry(dir = mkdtempSync(join(tmpdir(), 'brasa-registry-')), { code = false } = {}) {
  const cli = (args) => execFileSync(CLI, ['registry', '--registry', dir, ...args], { stdio: 'pipe' });
  cli(publishArgs('1.0.0', weightsPath(), { channel: 'stable', notes: 'ccexam MNISTNet', code }));
  cli(publishArgs('1.1.0', variantWeightsPath(), { channel: 'canary', notes: 'recalibrated output layer' }));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }) };
}

/**
 * A private copy of the demo site (`cargo xtask demo --no-serve` assembles it) with a fresh
 * registry, so tests never see channel moves someone made in `.cache/site/registry`
 * (`minilm`: with MiniLM's published folder too). Resolves to { dir, remove }.
 */
export function demoSite({ minilm = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'brasa-site-'));
  cpSync(join(CACHE, 'site'), dir, { recursive: true, filter: (src) => !src.startsWith(join(CACHE, 'site', 'registry')) });
  makeRegistry(join(dir, 'registry'));
  // MiniLM's registry folder as `cargo xtask build` published it (86 MiB: only when asked).
  if (minilm) cpSync(join(CACHE, 'site', 'registry', 'minilm'), join(dir, 'registry', 'minilm'), { recursive: true });
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/**
 * Write `file` into a demo site: a blank page that imports brasa as `window.brasa`, runs
 * `script` (module code; top-level await allowed), then sets `body[data-ready="1"]`.
 */
export function writeTestPage(dir, file, title, script = '') {
  writeFileSync(
    join(dir, file),
    `<!doctype html>
<meta charset="utf-8">
<title>${title}</title>
<link rel="icon" href="data:,">
<script type="importmap">{ "imports": { "brasa": "./brasa/dist/index.js", "@huggingface/tokenizers": "./vendor/@huggingface/tokenizers/tokenizers.min.mjs" } }</script>
<script type="module">
  window.brasa = await import('brasa');
${script}
  document.body.dataset.ready = '1';
</script>
<body></body>
`,
  );
}

/**
 * One reference input with the numpy logits of both registry versions, and the blank image
 * with its 1.0.0 logits (`blank`: small logits, so a tight absolute tolerance separates
 * backends: Chromium's SwiftShader WebGPU is 9.2e-8 off numpy there, the CPU build 4.0e-8).
 */
export function expectedLogits() {
  const ref = reference();
  const blank = ref.items.find((item) => item.name === 'blank');
  return { input: ref.items[0].pixels, v100: ref.items[0].logits, v110: ref.variant.logits[0], blank: { input: blank.pixels, logits: blank.logits } };
}

/** Start `brasa serve` (on a free port unless given one); resolves to { url, stop }. */
export function serve(dir, port = 0) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(CLI, ['serve', '--dir', dir, '--host', '127.0.0.1', '--port', String(port)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => { child.kill(); reject(new Error(`brasa serve did not start: ${out}`)); }, 15000);
    child.stdout.on('data', (chunk) => {
      out += chunk;
      const match = out.match(/on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (match) {
        clearTimeout(timer);
        resolvePromise({ url: match[1], stop: () => child.kill() });
      }
    });
    child.stderr.on('data', (chunk) => { out += chunk; });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`brasa serve exited with ${code}: ${out}`)); });
  });
}

/** A fresh headless Chromium profile; `webgpu` adds the flag that exposes SwiftShader's adapter. */
export async function chromium({ webgpu }) {
  const { chromium: pw } = await import('playwright-core');
  const profile = mkdtempSync(join(tmpdir(), 'brasa-chromium-'));
  const args = [
    '--no-sandbox', '--no-first-run', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--disable-quic', '--disable-gpu-sandbox',
  ];
  if (webgpu) args.push('--enable-unsafe-webgpu', '--use-angle=swiftshader', '--enable-features=Vulkan');
  const context = await pw.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args,
    viewport: { width: 1100, height: 720 },
  });
  const close = async () => { await context.close(); rmSync(profile, { recursive: true, force: true }); };
  return { context, close };
}

/** Open `url` and collect console errors and page errors, for assertions. */
export async function open(context, url) {
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(`${m.text()} (${m.location().url})`); });
  await goto(page, url);
  return { page, errors };
}

/**
 * `page.goto`. It used to retry a first navigation that never committed: tiny_http, which
 * `brasa serve` ran on, could leave a new connection unanswered (a lost wake-up in its thread
 * pool while its other threads sat on idle keep-alive connections; the idle keep-alive test in
 * tests/node/serve.test.mjs reproduces it). `brasa serve` now runs on hyper, so a navigation
 * that times out is a real failure.
 */
export function goto(page, url) {
  return page.goto(url);
}

/** Largest |a - b| over two equally long arrays. */
export function maxDiff(a, b) {
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]));
  return worst;
}

/**
 * Source of `badInputRound()`, evaluated inside a page or a runtime where
 * `globalThis.brasaUnderTest` (or `window.brasaDemo.model`) holds a loaded MNIST model,
 * `globalThis.brasaPackage` (or `window.brasaDemo.package`) its model package, and
 * `import('brasa')` works. Resolves to `{ errors: { case: { name, code, message } | null },
 * before, after }`, `before`/`after` the logits of one good input around the bad calls.
 */
export const BAD_INPUT_ROUND = `
async function badInputRound() {
  const model = globalThis.brasaUnderTest ?? window.brasaDemo.model;
  const pkg = globalThis.brasaPackage ?? window.brasaDemo.package;
  const { loadModel } = await import('brasa');
  const good = new Float32Array(784).fill(0.25);
  const logits = async () => [...(await model.run(good)).logits.data];
  const before = await logits();
  const nan = new Float32Array(784); nan[100] = NaN;
  const inf = new Float32Array(784); inf[5] = Infinity;
  const onePixelHuge = new Float32Array(784); onePixelHuge[300] = 1.2e37;
  const detached = new Float32Array(784); structuredClone(detached.buffer, { transfer: [detached.buffer] });
  const cases = {
    empty: () => model.run(new Float32Array(0)),
    short: () => model.run(new Float32Array(783)),
    nan: () => model.run(nan),
    infinity: () => model.run(inf),
    huge: () => model.run(new Float32Array(784).fill(3e38)),
    onePixelHuge: () => model.run(onePixelHuge),
    detached: () => model.run(detached),
    dataView: () => model.run(new DataView(new ArrayBuffer(784 * 4))),
    string: () => model.run('pixels'),
    bytes: () => model.run(new Uint8Array(784)),
    objects: () => model.run([{}, 1]),
    nothing: () => model.run(undefined),
    unknownInput: () => model.run({ image: good }),
    wrongDims: () => model.run({ pixels: { dtype: 'float32', dims: [1, 28, 28], data: good } }),
    wrongDtype: () => model.run({ pixels: { dtype: 'int32', dims: [1, 1, 28, 28], data: new Int32Array(784) } }),
    truncatedWeights: async () => {
      const w = globalThis.brasaWeights ?? new Uint8Array(await (await fetch('./models/mnist.bpk')).arrayBuffer());
      return model.setWeights(w.subarray(0, w.length >> 1));
    },
    garbageWeights: () => loadModel(pkg, { weights: new Uint8Array(4096).fill(7), backend: model.backend }),
    otherModel: () => loadModel('resnet', { weights: new Uint8Array(8) }),
    otherSpec: () => loadModel('resnet@stable', { registry: 'http://127.0.0.1:9/', build: pkg }),
  };
  const errors = {};
  for (const [name, fn] of Object.entries(cases)) {
    try { await fn(); errors[name] = null; }
    catch (e) { errors[name] = { name: e.name, code: e.code, message: e.message }; }
  }
  const after = await logits();
  return { errors, before, after };
}`;

/**
 * What `badInputRound()` must give on any platform: a BrasaError for every case, with the
 * codes below, and the model answering as before. `assert` is node:assert/strict.
 */
export function checkBadInputRound(assert, outcome) {
  for (const [name, error] of Object.entries(outcome.errors)) {
    assert.equal(error?.name, 'BrasaError', `${name} did not fail with a BrasaError: ${JSON.stringify(error)}`);
  }
  const codes = Object.fromEntries(Object.entries(outcome.errors).map(([name, e]) => [name, e.code]));
  const invalidInput = ['empty', 'short', 'nan', 'infinity', 'huge', 'onePixelHuge', 'detached', 'dataView', 'string', 'bytes', 'objects', 'nothing', 'unknownInput', 'wrongDims', 'wrongDtype'];
  for (const name of invalidInput) assert.equal(codes[name], 'invalid_input', `${name}: ${outcome.errors[name].message}`);
  assert.match(outcome.errors.nan.message, /`pixels`.*element 100 is NaN/);
  assert.match(outcome.errors.infinity.message, /`pixels`.*element 5 is inf/i);
  // Finite but far outside what the model declares (its result would be NaN): refused first.
  assert.match(outcome.errors.huge.message, /`pixels`.*element 0 is 3\d*e?\d*.*outside the declared range \[0, 1\]/);
  assert.match(outcome.errors.onePixelHuge.message, /`pixels`.*element 300 .*outside the declared range/);
  assert.match(outcome.errors.detached.message, /`pixels`.*detached/);
  assert.match(outcome.errors.dataView.message, /DataView carries no dtype/);
  assert.match(outcome.errors.bytes.message, /`pixels`.*uint8.*float32/);
  assert.match(outcome.errors.unknownInput.message, /`image`/);
  assert.equal(codes.truncatedWeights, 'invalid_weights');
  assert.equal(codes.otherModel, 'unknown_model');
  assert.equal(codes.otherSpec, 'unknown_model');
  assert.deepEqual(outcome.after, outcome.before);
}

/**
 * Check what tests/runtime-suite.js's `runtimeSuite` gave in some runtime: numpy's logits for
 * `expectedLogits().input` (1.0.0 from the registry), a bad input refused with `invalid_input`
 * naming the tensor and the model answering the same after it, and the missing file's error
 * naming the URL it resolved to (`missingUrl`, a RegExp).
 */
export function checkRuntimeSuite(assert, out, { backend = 'cpu', missingUrl }) {
  const { v100 } = expectedLogits();
  // `backend` may list what the machine decides (Deno has WebGPU where Vulkan has a device).
  assert.ok([backend].flat().includes(out.backend), `ran on ${out.backend}, expected ${backend}`);
  assert.ok(maxDiff(out.logits, v100) <= TOLERANCE, `logits ${out.logits}`);
  assert.equal(out.badInput?.name, 'BrasaError', JSON.stringify(out.badInput));
  assert.equal(out.badInput.code, 'invalid_input');
  assert.match(out.badInput.message, /`pixels`/);
  assert.deepEqual(out.after, out.logits, 'the model answers the same after the bad input');
  assert.equal(out.registry.version, '1.0.0');
  assert.ok(maxDiff(out.registry.logits, v100) <= TOLERANCE, `registry logits ${out.registry.logits}`);
  assert.equal(out.missing?.code, 'network', JSON.stringify(out.missing));
  assert.match(out.missing.message, missingUrl);
}
