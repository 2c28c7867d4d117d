// brasa against its peers in one headless Chromium session, at 1 and at 2 threads: every CPU
// build of brasa's model package (`cpu`: simd128, 1 thread; `cpu-relaxed`: relaxed-SIMD FMA;
// `cpu-threads`, `cpu-threads-relaxed`: wasm threads in a Worker the loader manages — each
// where the package has it, reported as absent where not), onnxruntime-web (wasm) and
// TensorFlow.js (wasm backend, where it has the model) at the same thread count, and brasa
// WebGPU (SwiftShader: correctness only). Three models, the same weights everywhere: ccexam's
// MNIST CNN (ONNX and TF.js layouts exported by bench/export_peers.py), SqueezeNet 1.0
// (bench/export_squeezenet.py: the ONNX graph onnxruntime-web runs is the one brasa imported
// with burn-onnx) and PP-OCRv4 text detection (`brasa build --onnx` of the file
// onnxruntime-web runs). Both pages are cross-origin isolated (COOP/COEP), so threads work.
// Every runtime's outputs are checked against an independent reference (numpy; onnx's
// reference evaluator; onnxruntime in Python) before any time counts. Runtimes are interleaved
// in rounds so machine drift hits all alike; the first round warms each cell up long enough for
// V8 to tier up.
//
// The headline is brasa ÷ the fastest peer at the same thread count (issue 13's goal: ≤ 0.8),
// beside the same ratio on 2026-11-30 (bench/baseline-2026-11-30.json).
//
// Writes bench/results.json, bench/results.md and bench/results.svg.
// `--smoke`: a few iterations of everything, correctness checks on (CI); no files written
// under bench/ except bench/out/.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import { CACHE, ROOT, chromium, goto, maxDiff, reference, serve, weightsPath } from '../tests/support.mjs';
import { buildLabel, buildThreads, checkBuild, cpuBuilds, evaluate, machine, packageBuilds, stats, watchRequests } from './harness.mjs';
import { readWasmMemory, trackWasmMemory } from './wasm-memory.mjs';

const smoke = process.argv.includes('--smoke');
const SQUEEZENET_DIR = join(CACHE, 'models/squeezenet');
// The native baselines: examples of the model crates, built by `cargo xtask bench`, each taking
// `WEIGHTS.bpk WARMUP RUNS` and printing `{ cells: [{ batch, medianMs, p90Ms, runs }] }`.
const EXAMPLES = join(process.env.CARGO_TARGET_DIR ?? join(process.env.HOME, '.cache/brasa/target'), 'debug/examples');
const BASELINE = JSON.parse(readFileSync(join(ROOT, 'bench/baseline-2026-11-30.json'), 'utf8'));
/** The thread counts compared; each has its page (`?threads=N`). */
const THREADS = [1, 2];
const GOAL = 0.8;
const STEP_TIMEOUT_MS = smoke ? 120_000 : 900_000;
const json = (path) => JSON.parse(readFileSync(path, 'utf8'));
const started = Date.now();
/** Progress on stderr, with seconds since the start. */
const progress = (what) => console.error(`# ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s  ${what}`);

// Per model: what to run and how often (`plan`: per cell, `firstWarm` calls before the first
// round's samples, `warm` before every later round's, `runs` samples per round and runtime;
// `memoryRuns`: calls of the largest cell before wasm memory is read). Batch-32 SqueezeNet and
// batch-8 PP-OCR take about a second per call, so their cells get far fewer calls; V8 tiers up
// within the first few of them.
const MODELS = {
  mnist: {
    title: 'MNIST CNN',
    description: 'ccexam MNIST CNN (421,642 parameters, ~4.2 M multiply-adds per image)',
    tolerance: 1e-3,
    reference: () => {
      const ref = reference();
      return { cases: [{ dims: [ref.items.length, 1, 28, 28], input: ref.items.flatMap((i) => i.pixels), output: ref.items.flatMap((i) => i.logits) }], source: 'numpy (tests/reference/mnist_reference.py)' };
    },
    cells: { b1: { label: 'b1', dims: [1, 1, 28, 28] }, b32: { label: 'b32', dims: [32, 1, 28, 28] } },
    plan: smoke
      ? { rounds: 1, b1: { firstWarm: 5, warm: 2, runs: 5 }, b32: { firstWarm: 2, warm: 1, runs: 2 }, memoryRuns: 2 }
      : { rounds: 5, b1: { firstWarm: 500, warm: 50, runs: 100 }, b32: { firstWarm: 50, warm: 5, runs: 10 }, memoryRuns: 20 },
    tfjs: true,
    webgpuRuns: [2, 5],
    native: (short) => execFileSync(process.env.BRASA_MNIST_BENCH ?? join(EXAMPLES, 'mnist_latency'), [weightsPath(), ...(short ? ['5', '10'] : ['500', '500'])], { encoding: 'utf8' }),
    files: () => cpSync(weightsPath(), join(site, 'models/mnist.bpk')),
  },
  squeezenet: {
    title: 'SqueezeNet 1.0',
    description: 'SqueezeNet 1.0, the ONNX light_squeezenet graph with seeded weights (1,235,496 parameters, ~0.35 G multiply-adds per 224×224 image)',
    // Probabilities (at most ~0.2 here): a wrong kernel moves them by far more.
    tolerance: 1e-5,
    reference: () => {
      const ref = json(join(SQUEEZENET_DIR, 'squeezenet-reference.json'));
      return { cases: [{ dims: [ref.inputs.length, 3, 224, 224], input: ref.inputs.flat(), output: ref.outputs.flat() }], source: ref.source };
    },
    cells: { b1: { label: 'b1', dims: [1, 3, 224, 224] }, b32: { label: 'b32', dims: [32, 3, 224, 224] } },
    plan: smoke
      ? { rounds: 1, b1: { firstWarm: 1, warm: 0, runs: 2 }, b32: { firstWarm: 0, warm: 0, runs: 1 }, memoryRuns: 1 }
      : { rounds: 5, b1: { firstWarm: 20, warm: 3, runs: 10 }, b32: { firstWarm: 2, warm: 0, runs: 3 }, memoryRuns: 2 },
    tfjs: true,
    webgpuRuns: [0, 1],
    // `cargo xtask bench` builds the example and names it.
    native: (short) => execFileSync(process.env.BRASA_SQUEEZENET_BENCH ?? join(EXAMPLES, 'squeezenet_latency'), [join(SQUEEZENET_DIR, 'squeezenet.bpk'), ...(short ? ['1', '2'] : ['10', '30'])], { encoding: 'utf8' }),
    files: () => {
      for (const f of ['squeezenet.bpk', 'squeezenet.onnx', 'squeezenet-tfjs.json', 'squeezenet-tfjs.bin']) cpSync(join(SQUEEZENET_DIR, f), join(site, 'models/squeezenet', f));
    },
  },
  'ocr-det': {
    title: 'PP-OCRv4 text detection',
    description: 'PaddleOCR ch_PP-OCRv4_det (DBNet, from rapidocr-onnxruntime 1.4.4; `brasa build --onnx` of the file onnxruntime-web runs): N×3×H×W in, an N×1×H×W text probability map out. Timed at 320×320, batch 1 and batch 8 (the graph takes any batch; 8 keeps a call near a second on 1 thread)',
    tolerance: 1e-4,
    reference: () => {
      const ref = json(join(CACHE, 'fixtures/ocr-det-reference.json'));
      return {
        cases: ref.cases.map((c) => ({ dims: c.inputs[0].dims, input: c.inputs[0].data, output: c.outputs[0].data })),
        source: `${ref.source} (CPU, Python): ${ref.cases.map((c) => c.inputs[0].dims.join('×')).join(' and ')}`,
      };
    },
    cells: { b1: { label: 'b1 320²', dims: [1, 3, 320, 320] }, b8: { label: 'b8 320²', dims: [8, 3, 320, 320] } },
    plan: smoke
      ? { rounds: 1, b1: { firstWarm: 1, warm: 0, runs: 1 }, b8: { firstWarm: 0, warm: 0, runs: 1 }, memoryRuns: 1 }
      : { rounds: 5, b1: { firstWarm: 20, warm: 3, runs: 20 }, b8: { firstWarm: 3, warm: 1, runs: 4 }, memoryRuns: 2 },
    tfjs: false,
    // Its WebGPU build is checked by the test suites; SwiftShader takes seconds per call here.
    webgpuRuns: null,
    native: null,
    files: () => cpSync(join(CACHE, 'models/ocr-det.onnx'), join(site, 'models/ocr-det/ocr-det.onnx')),
  },
};

// ---- the site: page, brasa, the model packages, the peers' distributions, the weights ---
const site = join(CACHE, 'bench-site');
rmSync(site, { recursive: true, force: true });
const copy = (from, to) => cpSync(join(ROOT, from), join(site, to), { recursive: true });
copy('bench/page', '.');
copy('npm/dist', 'brasa/dist');
// The model packages `brasa build` wrote (their wasm builds, signature, metadata).
for (const [name, spec] of Object.entries(MODELS)) {
  cpSync(join(CACHE, 'packages', name), join(site, 'packages', name), { recursive: true });
  spec.files();
}
for (const f of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) copy(`node_modules/onnxruntime-web/dist/${f}`, `ort/${f}`);
copy('node_modules/@tensorflow/tfjs-core/dist/tf-core.min.js', 'tfjs/tf-core.min.js');
copy('node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js', 'tfjs/tf-backend-wasm.min.js');
for (const f of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm']) copy(`node_modules/@tensorflow/tfjs-backend-wasm/dist/${f}`, `tfjs/${f}`);
cpSync(join(CACHE, 'models/peers'), join(site, 'models/peers'), { recursive: true });

const version = (pkg) => json(join(ROOT, 'node_modules', pkg, 'package.json')).version;
const ORT = `onnxruntime-web ${version('onnxruntime-web')} wasm`;
const TFJS = `TF.js ${version('@tensorflow/tfjs-core')} wasm`;
const plural = (n) => `${n} thread${n > 1 ? 's' : ''}`;

/**
 * The rows of a model: brasa's CPU builds (`absent` where the package lacks one), the peers
 * at each thread count, and brasa WebGPU (untimed). `runtime` is the page's name for it.
 */
function rowsOf(model, spec) {
  const rows = {};
  for (const { build, present } of cpuBuilds(model)) {
    const threads = buildThreads(build);
    rows[`brasa-${build}`] = { runtime: `brasa:${build}`, build, brasa: true, threads, label: buildLabel(build), timed: true, absent: present ? null : `the package has no ${build} build` };
  }
  for (const t of THREADS) rows[`ort-wasm-${t}t`] = { runtime: 'ort-wasm', threads: t, label: `${ORT}, ${plural(t)}`, timed: true };
  if (spec.tfjs) for (const t of THREADS) rows[`tfjs-wasm-${t}t`] = { runtime: 'tfjs-wasm', threads: t, label: `${TFJS}, ${plural(t)}`, timed: true };
  if (spec.webgpuRuns && packageBuilds(model).webgpu) rows['brasa-webgpu'] = { runtime: 'brasa:webgpu', build: 'webgpu', brasa: true, threads: 1, label: 'brasa WebGPU (SwiftShader: correctness only)', timed: false };
  return rows;
}

const host = machine();
const results = {
  date: new Date().toISOString(),
  machine: host.description,
  cpu: host,
  smoke,
  goal: `brasa ≤ ${GOAL} × the fastest peer at the same thread count`,
  versions: { brasa: version('brasa'), 'onnxruntime-web': version('onnxruntime-web'), '@tensorflow/tfjs-core': version('@tensorflow/tfjs-core'), '@tensorflow/tfjs-backend-wasm': version('@tensorflow/tfjs-backend-wasm') },
  models: {},
};

/** A page of the bench site at `threads`, ready, with its requests remembered (`onPage`: before it navigates). */
async function openPage(context, serverUrl, threads, onPage = async () => {}) {
  const page = await context.newPage();
  await onPage(page);
  const requests = watchRequests(page);
  const pending = new Map();
  page.on('request', (r) => pending.set(r, Date.now()));
  for (const done of ['requestfinished', 'requestfailed']) page.on(done, (r) => pending.delete(r));
  await goto(page, `${serverUrl}?threads=${threads}`);
  await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
  const call = (what, fn, arg) => evaluate(page, what, fn, arg, { timeoutMs: STEP_TIMEOUT_MS, pending });
  return { page, requests, call };
}

/** Load a row's runtime in a page; for brasa, check that it runs the build asked for (see checkBuild). */
async function load(p, model, name, row) {
  const mark = p.requests.mark();
  const { ms, info } = await p.call(`loading ${model} in ${name}`, ([n, m]) => window.bench.load(n, m), [row.runtime, model]);
  if (row.brasa) info.fetched = checkBuild(model, row.build, p.requests.since(mark), info);
  if (!row.brasa && info.threads !== undefined && info.threads !== row.threads) throw new Error(`${name} runs on ${info.threads} threads, not ${row.threads}`);
  return { ms, info };
}

const server = await serve(site);
const browser = await chromium({ webgpu: true });
try {
  const pages = {};
  for (const t of THREADS) pages[t] = await openPage(browser.context, server.url, t);
  results.browser = browser.context.browser()?.version() ?? (await pages[1].page.evaluate(() => navigator.userAgent));
  results.crossOriginIsolated = await pages[2].page.evaluate(() => window.bench.crossOriginIsolated());
  results.hardwareConcurrency = await pages[2].page.evaluate(() => navigator.hardwareConcurrency);
  if (!results.crossOriginIsolated) throw new Error('the bench page is not cross-origin isolated: nothing could run on 2 threads');
  console.log(`# Chromium ${results.browser}; ${results.machine}`);

  for (const [model, spec] of Object.entries(MODELS)) {
    const PLAN = spec.plan;
    const REF = spec.reference();
    const rows = rowsOf(model, spec);
    const entry = { title: spec.title, description: spec.description, cells: spec.cells, plan: PLAN, reference: REF.source, runtimes: {} };
    results.models[model] = entry;

    // Load, then check every runtime against the reference before timing anything.
    for (const [name, row] of Object.entries(rows)) {
      entry.runtimes[name] = { label: row.label, threads: row.threads, brasa: !!row.brasa, ...(row.build ? { build: row.build } : {}) };
      if (row.absent) {
        entry.runtimes[name].absent = row.absent;
        continue;
      }
      const p = pages[row.threads];
      const { ms, info } = await load(p, model, name, row);
      let worst = 0;
      for (const c of REF.cases) {
        const outputs = await p.call(`checking ${model} in ${name}`, ([n, m, x, d]) => window.bench.run(n, m, x, d), [row.runtime, model, c.input, c.dims]);
        if (outputs.length !== c.output.length) throw new Error(`${name} gave ${outputs.length} values for ${model} [${c.dims}], the reference ${c.output.length}`);
        worst = Math.max(worst, maxDiff(outputs, c.output));
      }
      if (!(worst <= spec.tolerance)) throw new Error(`${name} disagrees with the ${model} reference: max |Δ| ${worst} > ${spec.tolerance}`);
      Object.assign(entry.runtimes[name], { loadMs: ms, info, maxAbsDiffVsReference: worst });
      console.log(`# ${model} ${name}: load ${ms.toFixed(0)} ms, max |Δ| vs reference ${worst.toExponential(2)}${row.brasa ? ` (runs ${info.build ?? '?'} on ${info.threads ?? '?'} thread(s); fetched ${info.fetched.join(', ')})` : ''}`);
    }

    // Interleaved rounds over both pages; the order rotates every round.
    const timed = Object.entries(rows).filter(([, r]) => r.timed && !r.absent);
    const samples = Object.fromEntries(timed.map(([n]) => [n, Object.fromEntries(Object.keys(spec.cells).map((c) => [c, []]))]));
    for (let round = 0; round < PLAN.rounds; round++) {
      progress(`${model}: round ${round + 1} of ${PLAN.rounds}`);
      const order = timed.map((_, i) => timed[(i + round) % timed.length]);
      for (const [name, row] of order) {
        for (const [cell, { dims }] of Object.entries(spec.cells)) {
          const plan = PLAN[cell];
          const warm = round === 0 ? plan.firstWarm : plan.warm;
          const got = await pages[row.threads].call(`timing ${model} ${cell} in ${name}`, ([n, m, d, w, k]) => window.bench.time(n, m, d, w, k), [row.runtime, model, dims, warm, plan.runs]);
          samples[name][cell].push(...got);
        }
      }
    }
    for (const [name] of timed) for (const cell of Object.keys(spec.cells)) entry.runtimes[name][cell] = stats(samples[name][cell]);
    if (rows['brasa-webgpu']) {
      // SwiftShader: a few runs, for completeness only.
      const [w, k] = spec.webgpuRuns;
      entry.runtimes['brasa-webgpu'].b1 = stats(await pages[1].call(`timing ${model} on WebGPU`, ([m, d, ww, kk]) => window.bench.time('brasa:webgpu', m, d, ww, kk), [model, spec.cells.b1.dims, w, k]));
    }

    // Cold (empty cache) and warm (reload) navigation → first prediction, bytes and peak wasm
    // memory, each runtime alone in a fresh profile. (A smoke run does it for the first model.)
    if (smoke && model !== Object.keys(MODELS)[0]) continue;
    const largest = Object.values(spec.cells).at(-1).dims;
    for (const [name, row] of timed) {
      progress(`${model}: ${name} alone in a fresh profile`);
      const fresh = await chromium({ webgpu: false });
      try {
        const fetched = new Set();
        const p = await openPage(fresh.context, server.url, row.threads, async (page) => {
          page.on('response', (res) => { if (res.status() === 200 && res.url().startsWith(server.url)) fetched.add(new URL(res.url()).pathname); });
          await trackWasmMemory(fresh.context, page);
        });
        const mark = p.requests.mark();
        const cold = await p.call(`first ${model} prediction in ${name}`, ([n, m, d]) => window.bench.firstPrediction(n, m, d), [row.runtime, model, spec.cells.b1.dims]);
        if (row.brasa) checkBuild(model, row.build, p.requests.since(mark));
        const files = [...fetched].map((f) => join(site, decodeURIComponent(f === '/' ? '/index.html' : f)));
        const bytes = { raw: 0, gzip: 0, files: {} };
        for (const f of files) {
          const raw = statSync(f).size;
          const gzip = gzipSync(readFileSync(f), { level: 9 }).length;
          bytes.raw += raw;
          bytes.gzip += gzip;
          bytes.files[relative(site, f)] = { raw, gzip };
        }
        await p.call(`${model} ${largest[0]}-batch runs in ${name}`, ([n, m, d, k]) => window.bench.time(n, m, d, 0, k), [row.runtime, model, largest, PLAN.memoryRuns]);
        // A threaded build's Worker may still be settling its pool when first asked (it then
        // does not answer in time, as a blocked Worker would not): ask up to three times.
        const inWorker = (m) => m.realms.slice(1).some((r) => r.memories?.length);
        let memory = await readWasmMemory(p.page);
        for (let tries = 1; row.brasa && buildThreads(row.build) > 1 && !inWorker(memory) && tries < 3; tries++) {
          await new Promise((resolve) => setTimeout(resolve, 1_000));
          memory = await readWasmMemory(p.page);
        }
        // Every runtime here computes in wasm, a threaded build in its Worker: none found means the hooks missed it.
        if (!(memory.bytes > 0)) throw new Error(`${name}: no wasm memory found on its page or in its workers`);
        if (row.brasa && buildThreads(row.build) > 1 && !inWorker(memory)) {
          throw new Error(`${name}: no wasm memory found in the Worker it computes in (${JSON.stringify(memory.realms.map((r) => [r.url, r.error ?? r.memories?.length]))})`);
        }
        await p.page.reload();
        await p.page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
        const warm = await p.call(`warm ${model} prediction in ${name}`, ([n, m, d]) => window.bench.firstPrediction(n, m, d), [row.runtime, model, spec.cells.b1.dims]);
        Object.assign(entry.runtimes[name], { coldStartMs: cold, warmStartMs: warm, download: bytes, wasmMemoryBytes: memory.bytes, wasmMemoryRealms: memory.realms });
      } finally {
        await fresh.close();
      }
    }
  }
  for (const p of Object.values(pages)) await p.page.close();
} finally {
  await browser.close();
  server.stop();
}

// The same models natively (burn-flex; every dependency at opt-level 3).
for (const [model, spec] of Object.entries(MODELS)) {
  if (!spec.native) continue;
  const native = JSON.parse(spec.native(smoke));
  results.models[model].native = Object.fromEntries(native.cells.map((c) => [`b${c.batch}`, { median: c.medianMs, p90: c.p90Ms, n: c.runs }]));
}

// ---- the headline: brasa ÷ the fastest peer at the same thread count ------------------------
/**
 * Per model, cell and thread count T: the fastest brasa build that runs on at most T threads
 * (on a 2-thread page a single-threaded build is still what brasa can offer) against the
 * fastest peer on exactly T threads; the p90 ratio is of the same two rows' p90s.
 */
function headline(runtimes, cell, threads) {
  const measured = Object.entries(runtimes).filter(([, r]) => r[cell] && !r.absent);
  const best = (list) => list.reduce((a, b) => (!a || b[1][cell].median < a[1][cell].median ? b : a), null);
  const brasa = best(measured.filter(([n, r]) => r.brasa && n !== 'brasa-webgpu' && r.threads <= threads));
  const peer = best(measured.filter(([, r]) => !r.brasa && r.threads === threads));
  if (!brasa || !peer) return null;
  return {
    brasa: brasa[0],
    peer: peer[0],
    brasaMs: brasa[1][cell],
    peerMs: peer[1][cell],
    ratio: brasa[1][cell].median / peer[1][cell].median,
    ratioP90: brasa[1][cell].p90 / peer[1][cell].p90,
  };
}
for (const [model, entry] of Object.entries(results.models)) {
  entry.headline = {};
  for (const cell of Object.keys(entry.cells)) {
    for (const t of THREADS) {
      const now = headline(entry.runtimes, cell, t);
      const base = BASELINE.models[model]?.runtimes;
      const before = base ? headline(Object.fromEntries(Object.entries(base).map(([n, r]) => [n, { ...r, brasa: n.startsWith('brasa'), threads: n.startsWith('brasa') ? 1 : Number(n.match(/(\d)t$/)[1]) }])), cell, t) : null;
      entry.headline[`${cell}-${t}t`] = { cell, threads: t, ...now, before: before && { ratio: before.ratio, ratioP90: before.ratioP90, peer: before.peer } };
    }
  }
}

// ---- output ---------------------------------------------------------------------------
const out = join(ROOT, 'bench/out');
mkdirSync(out, { recursive: true });
const ms = (v) => (v === undefined ? '—' : v < 10 ? v.toFixed(3) : v.toFixed(1));
const mib = (b) => (b / 1048576).toFixed(2);
const short = (name, model) => (name.startsWith('brasa-') ? name.slice('brasa-'.length) : results.models[model].runtimes[name]?.label.replace(/ \d+\.\d+\.\d+ wasm,/, ',') ?? name);
const lines = [
  `Headless Chromium ${results.browser}; CPU: ${results.machine}; ${results.date.slice(0, 10)}; pages cross-origin isolated, hardwareConcurrency ${results.hardwareConcurrency}${smoke ? ' — SMOKE RUN: too few iterations to mean anything' : ''}`,
  '',
  `### brasa ÷ the fastest peer at the same thread count (goal ≤ ${GOAL})`,
  '',
  'brasa: its fastest CPU build that runs on at most that many threads; peers: onnxruntime-web and TF.js (where it has the model) on exactly that many. Median ratio (p90 ratio). 2026-11-30: the same ratio in the run of that day (brasa had one build, `cpu`; TF.js was not run on 2 threads), on the machine named in bench/baseline-2026-11-30.json.',
  '',
  '| model | batch | threads | brasa build | brasa median (p90) ms | fastest peer | peer median (p90) ms | brasa ÷ peer | 2026-11-30 | goal met |',
  '|---|---|---|---|---|---|---|---|---|---|',
];
for (const [model, entry] of Object.entries(results.models)) {
  for (const h of Object.values(entry.headline)) {
    if (!h.ratio) continue;
    const before = h.before ? `${h.before.ratio.toFixed(2)} (${h.before.ratioP90.toFixed(2)})` : '—';
    lines.push(`| ${entry.title} | ${entry.cells[h.cell].label} | ${h.threads} | ${short(h.brasa, model)} | ${ms(h.brasaMs.median)} (${ms(h.brasaMs.p90)}) | ${short(h.peer, model)} | ${ms(h.peerMs.median)} (${ms(h.peerMs.p90)}) | **${h.ratio.toFixed(2)}** (${h.ratioP90.toFixed(2)}) | ${before} | ${h.ratio <= GOAL ? 'yes' : 'no'} |`);
  }
}
// Peak wasm memory: every runtime that ran, per model, after its largest batch.
const memoryNames = [...new Set(Object.values(results.models).flatMap((e) => Object.entries(e.runtimes).filter(([, r]) => r.wasmMemoryBytes !== undefined).map(([n]) => n)))];
if (memoryNames.length) {
  lines.push(
    '',
    '### Peak wasm memory, MiB (after the largest batch)',
    '',
    `| model | batch | ${memoryNames.map((n) => short(n, Object.keys(results.models).find((m) => results.models[m].runtimes[n]))).join(' | ')} | 2026-11-30 brasa cpu / onnxruntime-web 1 thread |`,
    `|---|---|${memoryNames.map(() => '---|').join('')}---|`,
  );
  for (const [model, entry] of Object.entries(results.models)) {
    const base = BASELINE.models[model]?.runtimes;
    const before = base?.['brasa-cpu']?.wasmMemoryBytes ? `${mib(base['brasa-cpu'].wasmMemoryBytes)} / ${mib(base['ort-wasm-1t'].wasmMemoryBytes)}` : '—';
    const cells = memoryNames.map((n) => (entry.runtimes[n]?.wasmMemoryBytes !== undefined ? mib(entry.runtimes[n].wasmMemoryBytes) : entry.runtimes[n]?.absent ? 'absent' : '—'));
    if (cells.every((c) => c === '—' || c === 'absent')) continue;
    lines.push(`| ${entry.title} | ${Object.values(entry.cells).at(-1).label} | ${cells.join(' | ')} | ${before} |`);
  }
}
for (const [model, entry] of Object.entries(results.models)) {
  const cells = Object.entries(entry.cells);
  const fastestPeer = (cell, t) => entry.headline[`${cell}-${t}t`]?.peerMs?.median;
  lines.push(
    '',
    `### ${entry.title}`,
    '',
    entry.description,
    '',
    `| runtime | ${cells.map(([, c]) => `${c.label} median (p90) ms | ÷ fastest peer`).join(' | ')} | first prediction cold / warm ms | download raw / gzip MiB | wasm memory MiB | max Δ vs reference |`,
    `|---|${cells.map(() => '---|---|').join('')}---|---|---|---|`,
  );
  for (const [name, r] of Object.entries(entry.runtimes)) {
    if (r.absent) {
      lines.push(`| ${r.label} | ${cells.map(() => 'absent | —').join(' | ')} | — | — | — | ${r.absent} |`);
      continue;
    }
    if (name === 'brasa-webgpu') continue;
    const timing = cells.map(([cell]) => {
      const s = r[cell];
      if (!s) return '— | —';
      const peer = fastestPeer(cell, r.threads);
      return `${ms(s.median)} (${ms(s.p90)}) | ${peer ? (s.median / peer).toFixed(2) : '—'}`;
    });
    lines.push(`| ${r.label} | ${timing.join(' | ')} | ${r.coldStartMs?.toFixed(0) ?? '—'} / ${r.warmStartMs?.toFixed(0) ?? '—'} | ${r.download ? `${mib(r.download.raw)} / ${mib(r.download.gzip)}` : '—'} | ${r.wasmMemoryBytes !== undefined ? mib(r.wasmMemoryBytes) : '—'} | ${r.maxAbsDiffVsReference.toExponential(1)} |`);
  }
  lines.push('');
  const cpu = entry.runtimes['brasa-cpu'];
  if (entry.native && cpu?.b1) {
    lines.push(`brasa natively (burn-flex, x86-64 baseline SIMD): b1 ${ms(entry.native.b1.median)} ms, b32 ${ms(entry.native.b32.median)} ms; wasm (cpu build) ÷ native: b1 ${(cpu.b1.median / entry.native.b1.median).toFixed(2)}, b32 ${(cpu.b32.median / entry.native.b32.median).toFixed(2)}.`);
  }
  const gpu = entry.runtimes['brasa-webgpu'];
  if (gpu?.b1) lines.push(`brasa WebGPU on SwiftShader (a CPU emulation; correctness only): b1 ${ms(gpu.b1.median)} ms, max Δ vs reference ${gpu.maxAbsDiffVsReference.toExponential(1)}.`);
  lines.push(`Reference: ${entry.reference}.`);
}
lines.push(
  '',
  '÷ fastest peer: the row\'s median ÷ the fastest peer\'s median at the row\'s thread count (< 1: faster than every peer there). 2-thread rows ran on a page of their own (`?threads=2`), in rounds interleaved with the 1-thread page. Download: JS + wasm + weights a cold page fetched for that runtime alone. Wasm memory: every wasm memory of a page that ran only that runtime, the workers it started included (each memory counted once, in the realm that made it: bench/wasm-memory.mjs), after its largest-batch runs; wasm memory never shrinks, so it is the peak.',
);
const elsewhere = BASELINE.elsewhere?.map((e) => `${e.date}, ${e.machine} (${e.source}): ${e.ratios}.`);
if (elsewhere?.length) lines.push(`Before, on other machines: ${elsewhere.join(' ')}`);
const table = lines.join('\n');
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2));
writeFileSync(join(out, 'results.md'), `${table}\n`);
writeFileSync(join(out, 'results.svg'), chart(results.models));
if (!smoke) {
  for (const f of ['results.json', 'results.md', 'results.svg']) cpSync(join(out, f), join(ROOT, 'bench', f));
}
console.log(`\n${table}\n`);

/** Horizontal bars of median latency per runtime: one panel per model and cell, each scaled to its max. */
function chart(models) {
  const width = 760;
  const barH = 18;
  const colours = {
    'brasa-cpu': '#f06d1a', 'brasa-cpu-relaxed': '#f59a54', 'brasa-cpu-threads': '#b8460c', 'brasa-cpu-threads-relaxed': '#d9732e',
    'ort-wasm-1t': '#4a78c2', 'ort-wasm-2t': '#7fa6e0', 'tfjs-wasm-1t': '#e0a23a', 'tfjs-wasm-2t': '#efc77e',
  };
  const panels = Object.values(models).flatMap((m) => Object.entries(m.cells).map(([cell, c]) => ({ m, cell, c, rows: Object.entries(m.runtimes).filter(([n, r]) => r[cell] && !r.absent && n !== 'brasa-webgpu') })));
  const panelH = (rows) => rows.length * (barH + 5) + 34;
  const height = 40 + panels.reduce((sum, p) => sum + panelH(p.rows), 0);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="#fff"/>`;
  svg += `<text x="10" y="18" font-size="14" font-weight="bold">Headless Chromium, median ms per call (lower is better)</text>`;
  let top = 30;
  for (const { m, cell, c, rows } of panels) {
    const max = Math.max(...rows.map(([, r]) => r[cell].median));
    svg += `<text x="10" y="${top + 16}" font-weight="bold">${escape(m.title)}, ${escape(c.label)}</text>`;
    rows.forEach(([name, r], i) => {
      const y = top + 24 + i * (barH + 5);
      const w = Math.max(2, (r[cell].median / max) * (width - 380));
      svg += `<text x="10" y="${y + 13}">${escape(r.label)}</text>`;
      svg += `<rect x="300" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${colours[name] ?? '#888'}"/>`;
      svg += `<text x="${(306 + w).toFixed(1)}" y="${y + 13}">${ms(r[cell].median)} ms</text>`;
    });
    top += panelH(rows);
  }
  return `${svg}</svg>\n`;
}

function escape(s) {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
}
