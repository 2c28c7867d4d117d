// brasa against its peers in one headless Chromium session: brasa CPU (burn-flex, simd128),
// brasa WebGPU (SwiftShader: correctness only), onnxruntime-web (wasm, 1 thread; and 2
// threads on a cross-origin-isolated page) and TensorFlow.js (wasm backend), running two
// models with the same weights everywhere: ccexam's MNIST CNN (ONNX and TF.js layouts
// exported by bench/export_peers.py) and SqueezeNet 1.0 (bench/export_squeezenet.py: the
// ONNX graph onnxruntime-web runs is the one brasa imported with burn-onnx). Every runtime's
// outputs are checked against an independent reference (numpy; onnx's reference evaluator)
// before any time counts. Runtimes are interleaved in rounds so machine drift hits all
// alike; the first round warms each cell up long enough for V8 to tier up.
//
// Writes bench/results.json, bench/results.md and bench/results.svg.
// `--smoke`: a few iterations of everything, correctness checks on (CI); no files written
// under bench/ except bench/out/.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import { CACHE, ROOT, chromium, goto, maxDiff, reference, serve, weightsPath } from '../tests/support.mjs';

const smoke = process.argv.includes('--smoke');
const SQUEEZENET_DIR = join(CACHE, 'models/squeezenet');
// The native baselines: examples of the model crates, built by `cargo xtask bench`, each taking
// `WEIGHTS.bpk WARMUP RUNS` and printing `{ cells: [{ batch, medianMs, p90Ms, runs }] }`.
const EXAMPLES = join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache/brasa/target'), 'debug/examples');

// Per model: what to run and how often. Batch-32 SqueezeNet takes about a second per call, so
// its cells get far fewer calls; V8 tiers up within the first few of them.
const MODELS = {
  mnist: {
    title: 'MNIST CNN',
    description: 'ccexam MNIST CNN (421,642 parameters, ~4.2 M multiply-adds per image)',
    itemLen: 784,
    tolerance: 1e-3,
    reference: () => {
      const ref = reference();
      return { inputs: ref.items.map((i) => i.pixels), outputs: ref.items.map((i) => i.logits), source: 'numpy (tests/reference/mnist_reference.py)' };
    },
    plan: smoke
      ? { rounds: 1, b1: { firstWarm: 5, warm: 2, runs: 5 }, b32: { firstWarm: 2, warm: 1, runs: 2 }, memoryRuns: 2 }
      : { rounds: 5, b1: { firstWarm: 500, warm: 50, runs: 100 }, b32: { firstWarm: 50, warm: 5, runs: 10 }, memoryRuns: 20 },
    native: (short) => execFileSync(process.env.BRASA_MNIST_BENCH ?? join(EXAMPLES, 'mnist_latency'), [weightsPath(), ...(short ? ['5', '10'] : ['500', '500'])], { encoding: 'utf8' }),
  },
  squeezenet: {
    title: 'SqueezeNet 1.0',
    description: 'SqueezeNet 1.0, the ONNX light_squeezenet graph with seeded weights (1,235,496 parameters, ~0.35 G multiply-adds per 224×224 image)',
    itemLen: 3 * 224 * 224,
    // Probabilities (at most ~0.2 here): a wrong kernel moves them by far more.
    tolerance: 1e-5,
    reference: () => {
      const ref = JSON.parse(readFileSync(join(SQUEEZENET_DIR, 'squeezenet-reference.json'), 'utf8'));
      return { inputs: ref.inputs, outputs: ref.outputs, source: ref.source };
    },
    plan: smoke
      ? { rounds: 1, b1: { firstWarm: 1, warm: 0, runs: 2 }, b32: { firstWarm: 0, warm: 0, runs: 1 }, memoryRuns: 1 }
      : { rounds: 5, b1: { firstWarm: 20, warm: 3, runs: 10 }, b32: { firstWarm: 2, warm: 0, runs: 3 }, memoryRuns: 2 },
    // `cargo xtask bench` builds the example and names it.
    native: (short) => execFileSync(process.env.BRASA_SQUEEZENET_BENCH ?? join(EXAMPLES, 'squeezenet_latency'), [join(SQUEEZENET_DIR, 'squeezenet.bpk'), ...(short ? ['1', '2'] : ['10', '30'])], { encoding: 'utf8' }),
  },
};

// ---- the site: page, brasa, the model packages, the peers' distributions, the weights ---
const site = join(CACHE, 'bench-site');
rmSync(site, { recursive: true, force: true });
const copy = (from, to) => cpSync(join(ROOT, from), join(site, to), { recursive: true });
copy('bench/page', '.');
copy('npm/dist', 'brasa/dist');
// The model packages `brasa build` wrote (their wasm builds, signature, metadata).
for (const name of Object.keys(MODELS)) cpSync(join(CACHE, 'packages', name), join(site, 'packages', name), { recursive: true });
for (const f of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) copy(`node_modules/onnxruntime-web/dist/${f}`, `ort/${f}`);
copy('node_modules/@tensorflow/tfjs-core/dist/tf-core.min.js', 'tfjs/tf-core.min.js');
copy('node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js', 'tfjs/tf-backend-wasm.min.js');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) copy(`node_modules/@tensorflow/tfjs-backend-wasm/dist/${f}`, `tfjs/${f}`);
cpSync(weightsPath(), join(site, 'models/mnist.bpk'));
cpSync(join(CACHE, 'models/peers'), join(site, 'models/peers'), { recursive: true });
for (const f of ['squeezenet.bpk', 'squeezenet.onnx', 'squeezenet-tfjs.json', 'squeezenet-tfjs.bin']) cpSync(join(SQUEEZENET_DIR, f), join(site, 'models/squeezenet', f));

const version = (pkg) => JSON.parse(readFileSync(join(ROOT, 'node_modules', pkg, 'package.json'), 'utf8')).version;
const RUNTIMES = {
  'brasa-cpu': { page: 'main', label: 'brasa CPU (flex, simd128)', timed: true },
  'ort-wasm-1t': { page: 'main', runtime: 'ort-wasm', label: `onnxruntime-web ${version('onnxruntime-web')} wasm, 1 thread`, timed: true },
  'ort-wasm-2t': { page: 'threads', runtime: 'ort-wasm', label: `onnxruntime-web ${version('onnxruntime-web')} wasm, 2 threads`, timed: true },
  'tfjs-wasm': { page: 'main', label: `TF.js ${version('@tensorflow/tfjs-core')} wasm`, timed: true },
  'brasa-webgpu': { page: 'main', label: 'brasa WebGPU (SwiftShader: correctness only)', timed: false },
};

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p90: at(0.9), n: s.length };
}

const server = await serve(site);
const browser = await chromium({ webgpu: true });
const results = {
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpus()[0].model}`,
  smoke,
  versions: { brasa: version('brasa'), 'onnxruntime-web': version('onnxruntime-web'), '@tensorflow/tfjs-core': version('@tensorflow/tfjs-core'), '@tensorflow/tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm') },
  models: {},
};
try {
  const pages = {};
  for (const [key, query] of [['main', '?ortThreads=1'], ['threads', '?ortThreads=2']]) {
    const page = await browser.context.newPage();
    await goto(page, server.url + query);
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    pages[key] = page;
  }
  results.browser = browser.context.browser()?.version() ?? (await pages.main.evaluate(() => navigator.userAgent));
  results.crossOriginIsolated = await pages.main.evaluate(() => window.bench.crossOriginIsolated());

  for (const [model, spec] of Object.entries(MODELS)) {
    const PLAN = spec.plan;
    const REF = spec.reference();
    const classes = REF.outputs[0].length;
    const entry = { title: spec.title, description: spec.description, plan: PLAN, reference: REF.source, runtimes: {} };
    results.models[model] = entry;

    // Load, then check every runtime against the reference before timing anything.
    const batch = REF.inputs.flat();
    for (const [name, r] of Object.entries(RUNTIMES)) {
      const page = pages[r.page];
      const runtime = r.runtime ?? name;
      const loadMs = await page.evaluate(([n, m]) => window.bench.load(n, m), [runtime, model]);
      const outputs = await page.evaluate(([n, m, x]) => window.bench.run(n, m, x), [runtime, model, batch]);
      let worst = 0;
      REF.outputs.forEach((expected, i) => { worst = Math.max(worst, maxDiff(outputs.slice(i * classes, (i + 1) * classes), expected)); });
      if (!(worst <= spec.tolerance)) throw new Error(`${name} disagrees with the ${model} reference: max |Δ| ${worst}`);
      entry.runtimes[name] = { label: r.label, loadMs, maxAbsDiffVsReference: worst };
    }

    // Interleaved rounds; the order rotates every round.
    const timed = Object.entries(RUNTIMES).filter(([, r]) => r.timed);
    const samples = Object.fromEntries(timed.map(([n]) => [n, { b1: [], b32: [] }]));
    for (let round = 0; round < PLAN.rounds; round++) {
      const order = timed.map((_, i) => timed[(i + round) % timed.length]);
      for (const [name, r] of order) {
        for (const [cell, size] of [['b1', 1], ['b32', 32]]) {
          const plan = PLAN[cell];
          const warm = round === 0 ? plan.firstWarm : plan.warm;
          const got = await pages[r.page].evaluate(([n, m, b, w, k]) => window.bench.time(n, m, b, w, k), [r.runtime ?? name, model, size, warm, plan.runs]);
          samples[name][cell].push(...got);
        }
      }
    }
    for (const [name] of timed) {
      entry.runtimes[name].batch1 = stats(samples[name].b1);
      entry.runtimes[name].batch32 = stats(samples[name].b32);
    }
    // SwiftShader: a few runs, for completeness only.
    const gpuRuns = model === 'mnist' ? [2, 5] : [0, 1];
    entry.runtimes['brasa-webgpu'].batch1 = stats(await pages.main.evaluate(([m, w, k]) => window.bench.time('brasa-webgpu', m, 1, w, k), [model, ...gpuRuns]));

    // Cold (empty cache) and warm (reload) navigation → first prediction, bytes and memory,
    // each runtime alone in a fresh profile.
    for (const [name, r] of timed) {
      const fresh = await chromium({ webgpu: false });
      try {
        const page = await fresh.context.newPage();
        const fetched = new Set();
        page.on('response', (res) => { if (res.status() === 200 && res.url().startsWith(server.url)) fetched.add(new URL(res.url()).pathname); });
        const query = r.page === 'threads' ? '?ortThreads=2' : '?ortThreads=1';
        const runtime = r.runtime ?? name;
        await goto(page, server.url + query);
        await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
        const cold = await page.evaluate(([n, m]) => window.bench.firstPrediction(n, m), [runtime, model]);
        const files = [...fetched].map((p) => join(site, decodeURIComponent(p === '/' ? '/index.html' : p)));
        const bytes = { raw: 0, gzip: 0, files: {} };
        for (const f of files) {
          const raw = statSync(f).size;
          const gzip = gzipSync(readFileSync(f), { level: 9 }).length;
          bytes.raw += raw;
          bytes.gzip += gzip;
          bytes.files[relative(site, f)] = { raw, gzip };
        }
        await page.evaluate(([n, m, k]) => window.bench.time(n, m, 32, 0, k), [runtime, model, PLAN.memoryRuns]);
        const memory = await page.evaluate(() => window.bench.memory());
        await page.reload();
        await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
        const warm = await page.evaluate(([n, m]) => window.bench.firstPrediction(n, m), [runtime, model]);
        Object.assign(entry.runtimes[name], { coldStartMs: cold, warmStartMs: warm, download: bytes, wasmMemoryBytes: memory });
      } finally {
        await fresh.close();
      }
    }
  }
  for (const page of Object.values(pages)) await page.close();
} finally {
  await browser.close();
  server.stop();
}

// The same models natively (burn-flex; every dependency at opt-level 3).
for (const [model, spec] of Object.entries(MODELS)) {
  const native = JSON.parse(spec.native(smoke));
  results.models[model].native = Object.fromEntries(native.cells.map((c) => [`batch${c.batch}`, { median: c.medianMs, p90: c.p90Ms, n: c.runs }]));
}

// ---- output ---------------------------------------------------------------------------
const out = join(ROOT, 'bench/out');
mkdirSync(out, { recursive: true });
const ms = (v) => (v === undefined ? '—' : v < 10 ? v.toFixed(3) : v.toFixed(1));
const mib = (b) => (b / 1048576).toFixed(2);
const lines = [
  `Headless Chromium ${results.browser}, ${results.machine}, ${results.date.slice(0, 10)}${smoke ? ' — SMOKE RUN: too few iterations to mean anything' : ''}`,
];
for (const [model, entry] of Object.entries(results.models)) {
  const rows = Object.entries(entry.runtimes).filter(([, r]) => r.batch32);
  const brasa = entry.runtimes['brasa-cpu'];
  const native = entry.native;
  lines.push(
    '',
    `### ${entry.title}`,
    '',
    entry.description,
    '',
    '| runtime | b1 median (p90) ms | b32 median (p90) ms | brasa ÷ it, b1 | brasa ÷ it, b32 | first prediction cold / warm ms | download raw / gzip MiB | wasm memory MiB | max Δ vs reference |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows.map(([name, r]) => `| ${r.label} | ${ms(r.batch1.median)} (${ms(r.batch1.p90)}) | ${ms(r.batch32.median)} (${ms(r.batch32.p90)}) | ${name === 'brasa-cpu' ? '1' : (brasa.batch1.median / r.batch1.median).toFixed(2)} | ${name === 'brasa-cpu' ? '1' : (brasa.batch32.median / r.batch32.median).toFixed(2)} | ${r.coldStartMs?.toFixed(0) ?? '—'} / ${r.warmStartMs?.toFixed(0) ?? '—'} | ${r.download ? `${mib(r.download.raw)} / ${mib(r.download.gzip)}` : '—'} | ${r.wasmMemoryBytes ? mib(r.wasmMemoryBytes) : '—'} | ${r.maxAbsDiffVsReference.toExponential(1)} |`),
    '',
    `brasa natively (burn-flex, x86-64 baseline SIMD): b1 ${ms(native.batch1.median)} ms, b32 ${ms(native.batch32.median)} ms; wasm ÷ native: b1 ${(brasa.batch1.median / native.batch1.median).toFixed(2)}, b32 ${(brasa.batch32.median / native.batch32.median).toFixed(2)}.`,
    `brasa WebGPU on SwiftShader (a CPU emulation; correctness only): b1 ${ms(entry.runtimes['brasa-webgpu'].batch1.median)} ms, max Δ vs reference ${entry.runtimes['brasa-webgpu'].maxAbsDiffVsReference.toExponential(1)}. Reference: ${entry.reference}.`,
  );
}
lines.push('', 'brasa ÷ it < 1: brasa is faster. Download: JS + wasm + weights a cold page fetched for that runtime alone. Wasm memory: every wasm memory of a page that ran only that runtime, after its batch-32 runs.');
const table = lines.join('\n');
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
writeFileSync(join(out, 'results.md'), `${table}\n`);
writeFileSync(join(out, 'results.svg'), chart(results.models));
if (!smoke) {
  for (const f of ['results.json', 'results.md', 'results.svg']) cpSync(join(out, f), join(ROOT, 'bench', f));
}
console.log(`\n${table}\n`);

/** Horizontal bars of median latency per runtime: one panel per model and batch size, each scaled to its max. */
function chart(models) {
  const width = 760;
  const barH = 20;
  const colours = { 'brasa-cpu': '#f06d1a', 'ort-wasm-1t': '#4a78c2', 'ort-wasm-2t': '#7fa6e0', 'tfjs-wasm': '#e0a23a' };
  const panels = Object.values(models).flatMap((m) => ['batch1', 'batch32'].map((cell) => ({ m, cell, rows: Object.entries(m.runtimes).filter(([, r]) => r.batch32) })));
  const panelH = (rows) => rows.length * (barH + 6) + 36;
  const height = 40 + panels.reduce((sum, p) => sum + panelH(p.rows), 0);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/>`;
  svg += `<text x="10" y="18" font-size="14" font-weight="bold">Headless Chromium, median ms per call (lower is better)</text>`;
  let top = 30;
  for (const { m, cell, rows } of panels) {
    const max = Math.max(...rows.map(([, r]) => r[cell].median));
    svg += `<text x="10" y="${top + 16}" font-weight="bold">${escape(m.title)}, ${cell === 'batch1' ? 'batch 1' : 'batch 32'}</text>`;
    rows.forEach(([name, r], i) => {
      const y = top + 26 + i * (barH + 6);
      const w = Math.max(2, (r[cell].median / max) * (width - 340));
      svg += `<text x="10" y="${y + 14}">${escape(r.label)}</text>`;
      svg += `<rect x="260" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colours[name] ?? '#888'}"/>`;
      svg += `<text x="${(266 + w).toFixed(1)}" y="${y + 14}">${ms(r[cell].median)} ms</text>`;
    });
    top += panelH(rows);
  }
  return `${svg}</svg>\n`;
}

function escape(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
