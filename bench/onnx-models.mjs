// brasa's CPU builds against onnxruntime-web on the same ONNX files, in one headless Chromium
// session: the models brasa builds straight from ONNX (`brasa build --onnx`): PP-OCRv4 text
// detection, silero-vad and SqueezeNet 1.0. onnxruntime-web runs the very file brasa imported
// (wasm, 1 thread; and 2 threads), brasa every CPU build its package has (`cpu`,
// `cpu-relaxed` on the 1-thread page; `cpu-threads`, `cpu-threads-relaxed` on the 2-thread
// one; those it lacks are reported as absent), both pages cross-origin isolated. Every runtime
// is first checked against onnxruntime on CPU (Python; for SqueezeNet, onnx's reference
// evaluator); then batch-1 calls are timed in interleaved rounds (the order rotating; the
// first round warms each cell up long enough for V8 to tier up), each runtime with the same
// input. (bench/compare.mjs times PP-OCR's detector at 320×320 in batches too, against the
// fastest peer; here it is against onnxruntime-web alone, at batch 1, as on 2026-11-30.)
//
// Writes bench/out/onnx-results.{json,md}; without `--smoke` also bench/onnx-results.{json,md}.
// `--smoke`: a few iterations of everything, correctness checks on (CI).
import { cpSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CACHE, ROOT, chromium, maxDiff, open, serve } from '../tests/support.mjs';
import { buildLabel, buildThreads, checkBuild, cpuBuilds, evaluate as evaluateWithin, machine, stats, watchRequests } from './harness.mjs';

const smoke = process.argv.includes('--smoke');
const json = (path) => JSON.parse(readFileSync(path, 'utf8'));
const f32 = (dims, data) => ({ dtype: 'float32', dims, data });

// How often each timed cell runs: `firstWarm` calls before the first round's samples, `warm`
// before every later round's, `runs` samples per round and runtime.
const PLAN = smoke
  ? { rounds: 1, small: { firstWarm: 3, warm: 0, runs: 3 }, large: { firstWarm: 1, warm: 0, runs: 1 } }
  : { rounds: 5, small: { firstWarm: 300, warm: 30, runs: 100 }, large: { firstWarm: 20, warm: 3, runs: 20 } };

/**
 * Per model: its ONNX file, the reference check (`steps`: the feeds of consecutive calls;
 * `carry`: output → the input it feeds on the next call; `expected`: per call, the outputs
 * onnxruntime gave) and the timed cells (batch 1; `random` inputs are seeded, so every
 * runtime and page gets the same values).
 */
const MODELS = {
  'ocr-det': {
    title: 'PP-OCRv4 text detection',
    description: 'PaddleOCR ch_PP-OCRv4_det (DBNet; from rapidocr-onnxruntime 1.4.4): an image of any size, 1×3×H×W, in; a 1×1×H×W text probability map out',
    onnx: join(CACHE, 'models/ocr-det.onnx'),
    tolerance: {},
    check() {
      const ref = json(join(CACHE, 'fixtures/ocr-det-reference.json'));
      return {
        source: `${ref.source} (CPU, Python): ${ref.cases.map((c) => c.inputs[0].dims.join('×')).join(' and ')}`,
        steps: ref.cases.map((c) => Object.fromEntries(c.inputs.map((i) => [i.name, { dtype: i.dtype, dims: i.dims, data: i.data }]))),
        expected: ref.cases.map((c) => c.outputs),
        carry: {},
      };
    },
    cells: {
      '1×3×64×96': { plan: 'small', feeds: { x: { dtype: 'float32', dims: [1, 3, 64, 96], random: { seed: 1, lo: -1, hi: 1 } } } },
      '1×3×320×320': { plan: 'large', feeds: { x: { dtype: 'float32', dims: [1, 3, 320, 320], random: { seed: 2, lo: -1, hi: 1 } } } },
    },
  },
  'silero-vad': {
    title: 'silero-vad',
    description: 'silero-vad voice activity detector (silero_vad_op18_ifless.onnx from silero-vad 6.2.3): 512 samples at 16 kHz and the recurrent state in; a speech probability and the next state out',
    onnx: join(CACHE, 'models/silero-vad.onnx'),
    tolerance: { stateN: 5e-4 },
    check() {
      const ref = json(join(CACHE, 'fixtures/silero-vad-reference.json'));
      const sr = { dtype: 'int64', dims: [], data: [ref.sr] };
      return {
        source: `${ref.source} (CPU, Python): ${ref.chunks.length} chunks, the state carried`,
        steps: ref.chunks.map((c, i) => ({ input: f32(c.input.dims, c.input.data), sr, ...(i === 0 ? { state: f32(ref.state.dims, ref.state.data) } : {}) })),
        expected: ref.chunks.map((c) => [{ name: 'output', ...c.output }, { name: 'stateN', ...c.stateN }]),
        carry: { stateN: 'state' },
      };
    },
    cells: {
      '512 samples + state': {
        plan: 'small',
        feeds: {
          input: { dtype: 'float32', dims: [1, 512], random: { seed: 3, lo: -0.5, hi: 0.5 } },
          sr: { dtype: 'int64', dims: [], data: [16000] },
          state: f32([2, 1, 128], new Array(256).fill(0)),
        },
        carry: { stateN: 'state' },
      },
    },
  },
  'squeezenet-onnx': {
    title: 'SqueezeNet 1.0',
    description: 'SqueezeNet 1.0, the ONNX light_squeezenet graph with seeded weights (bench/export_squeezenet.py)',
    onnx: join(CACHE, 'models/squeezenet/squeezenet.onnx'),
    tolerance: {},
    check() {
      const ref = json(join(CACHE, 'models/squeezenet/squeezenet-reference.json'));
      const n = ref.inputs.length;
      return {
        source: `${ref.source}: ${n} images in one call`,
        steps: [{ data_0: f32([n, 3, 224, 224], ref.inputs.flat()) }],
        expected: [[{ name: 'softmaxout_1', dims: [n, 1000, 1, 1], data: ref.outputs.flat() }]],
        carry: {},
      };
    },
    cells: {
      '1×3×224×224': { plan: 'large', feeds: { data_0: { dtype: 'float32', dims: [1, 3, 224, 224], random: { seed: 4, lo: 0, hi: 1 } } } },
    },
  },
};
const TOLERANCE = 1e-4;

// ---- the site: the page, brasa, the model packages, the ONNX files, onnxruntime-web --------
const site = join(CACHE, 'bench-onnx-site');
rmSync(site, { recursive: true, force: true });
const copy = (from, to) => cpSync(join(ROOT, from), join(site, to), { recursive: true });
copy('bench/page', '.');
copy('npm/dist', 'brasa/dist');
for (const [name, spec] of Object.entries(MODELS)) {
  // `brasa build --onnx` wrote the package with the weights its import made (`weights.bpk`).
  const pkg = join(CACHE, 'packages', name);
  for (const f of ['index.js', 'model.json', 'cpu/model.js', 'cpu/model_bg.wasm', 'weights.bpk']) statSync(join(pkg, f));
  cpSync(pkg, join(site, 'packages', name), { recursive: true });
  cpSync(spec.onnx, join(site, 'onnx', `${name}.onnx`));
}
for (const f of ['ort.wasm.min.mjs', 'ort-wasm-simd-threaded.mjs', 'ort-wasm-simd-threaded.wasm']) copy(`node_modules/onnxruntime-web/dist/${f}`, `ort/${f}`);

const version = (pkg) => json(join(ROOT, 'node_modules', pkg, 'package.json')).version;
/** The thread counts compared; each has its page (`?threads=N`). */
const THREADS = [1, 2];

/** A model's rows: brasa's CPU builds (`absent` where the package lacks one), then onnxruntime-web per thread count. */
function rowsOf(model) {
  const rows = {};
  for (const { build, present } of cpuBuilds(model)) {
    rows[`brasa-${build}`] = { runtime: `brasa:${build}`, build, brasa: true, threads: buildThreads(build), label: buildLabel(build), absent: present ? null : `the package has no ${build} build` };
  }
  for (const t of THREADS) rows[`ort-wasm-${t}t`] = { runtime: 'ort-wasm', threads: t, label: `onnxruntime-web ${version('onnxruntime-web')} wasm, ${t} thread${t > 1 ? 's' : ''}` };
  return rows;
}

/** `page.evaluate`, failing after a while instead of hanging the run (CI) with the step named. */
const STEP_TIMEOUT_MS = smoke ? 60_000 : 600_000;
const evaluate = (page, what, fn, arg) => evaluateWithin(page, what, fn, arg, { timeoutMs: STEP_TIMEOUT_MS, pending: pending.get(page) });

const mib = (bytes) => bytes / 1048576;
const host = machine();
const results = {
  date: new Date().toISOString(),
  machine: host.description,
  cpu: host,
  smoke,
  plan: PLAN,
  versions: { brasa: version('brasa'), 'onnxruntime-web': version('onnxruntime-web') },
  models: {},
};
const failures = [];
let complete = false;

const server = await serve(site);
const browser = await chromium({ webgpu: false });
const pageErrors = [];
// Per page, the requests still waiting for their response (named when a step times out).
const pending = new Map();
try {
  const pages = {};
  const requests = {};
  for (const t of THREADS) {
    const { page, errors } = await open(browser.context, `${server.url}index.html?threads=${t}`);
    const waiting = new Map();
    page.on('request', (r) => waiting.set(r, Date.now()));
    for (const done of ['requestfinished', 'requestfailed']) page.on(done, (r) => waiting.delete(r));
    pending.set(page, waiting);
    requests[t] = watchRequests(page);
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached' });
    pages[t] = page;
    pageErrors.push(errors);
  }
  results.browser = browser.context.browser()?.version() ?? (await pages[1].evaluate(() => navigator.userAgent));
  results.crossOriginIsolated = await pages[2].evaluate(() => globalThis.crossOriginIsolated);
  if (!results.crossOriginIsolated) throw new Error('the page is not cross-origin isolated: nothing would run on 2 threads');

  // Start every runtime on each page (untimed in any model's load): brasa's JS,
  // onnxruntime-web's wasm and threads.
  const initMs = {};
  for (const t of THREADS) {
    initMs[`brasa-${t}t`] = await evaluate(pages[t], `starting brasa on the ${t}-thread page`, (n) => window.onnxBench.init(n), 'brasa:cpu');
    initMs[`ort-wasm-${t}t`] = await evaluate(pages[t], `starting onnxruntime-web on ${t} threads`, (n) => window.onnxBench.init(n), 'ort-wasm');
  }
  results.initMs = initMs;
  console.log(`# ${results.browser}; ${results.machine}; started ${Object.entries(initMs).map(([n, t]) => `${n} in ${t.toFixed(0)} ms`).join(', ')}`);

  // Load, then check every runtime against the reference before timing anything.
  for (const [model, spec] of Object.entries(MODELS)) {
    const ref = spec.check();
    const rows = rowsOf(model);
    const entry = {
      title: spec.title,
      description: spec.description,
      reference: ref.source,
      files: {
        onnxMiB: mib(statSync(spec.onnx).size),
        brasaWeightsMiB: mib(statSync(join(CACHE, 'packages', model, 'weights.bpk')).size),
        brasaWasmMiB: mib(statSync(join(CACHE, 'packages', model, 'cpu/model_bg.wasm')).size),
      },
      runtimes: {},
    };
    results.models[model] = entry;
    for (const [name, r] of Object.entries(rows)) {
      entry.runtimes[name] = { label: r.label, threads: r.threads, brasa: !!r.brasa };
      if (r.absent) {
        entry.runtimes[name].absent = r.absent;
        continue;
      }
      const page = pages[r.threads];
      const mark = requests[r.threads].mark();
      const { ms: loadMs, info } = await evaluate(page, `loading ${model} in ${name}`, ([n, m]) => window.onnxBench.load(n, m), [r.runtime, model]);
      if (r.brasa) info.fetched = checkBuild(model, r.build, requests[r.threads].since(mark), info);
      const got = await evaluate(page, `checking ${model} in ${name}`, ([n, m, steps, carry]) => window.onnxBench.check(n, m, steps, carry), [r.runtime, model, ref.steps, ref.carry]);
      const worst = {};
      ref.expected.forEach((outputs, i) => {
        for (const want of outputs) {
          const have = got[i][want.name];
          if (!have) throw new Error(`${name} gave no output \`${want.name}\` for ${model}`);
          if (have.dims.join() !== want.dims.join()) failures.push(`${name} on ${model}, call ${i}: \`${want.name}\` has dims [${have.dims}], onnxruntime [${want.dims}]`);
          worst[want.name] = Math.max(worst[want.name] ?? 0, maxDiff(have.data, want.data));
        }
      });
      for (const [output, d] of Object.entries(worst)) {
        const tolerance = spec.tolerance[output] ?? TOLERANCE;
        if (!(d <= tolerance)) failures.push(`${name} disagrees with the ${model} reference: \`${output}\` max |Δ| ${d} > ${tolerance}`);
      }
      Object.assign(entry.runtimes[name], { initMs: initMs[r.brasa ? `brasa-${r.threads}t` : name], loadMs, info, maxAbsDiffVsReference: worst });
      console.log(`# ${model} ${name}: load ${loadMs.toFixed(0)} ms, max |Δ| vs reference ${Object.entries(worst).map(([o, d]) => `${o} ${d.toExponential(2)}`).join(', ')}`);
    }
  }
  if (failures.length) throw new Error(`outputs disagree with the references:\n  ${failures.join('\n  ')}`);

  // Interleaved rounds over both pages; the order rotates every round.
  for (const [model, spec] of Object.entries(MODELS)) {
    const rows = rowsOf(model);
    const names = Object.keys(rows).filter((n) => !rows[n].absent);
    const samples = Object.fromEntries(names.map((n) => [n, Object.fromEntries(Object.keys(spec.cells).map((c) => [c, []]))]));
    for (let round = 0; round < PLAN.rounds; round++) {
      const order = names.map((_, i) => names[(i + round) % names.length]);
      for (const name of order) {
        const r = rows[name];
        for (const [cell, c] of Object.entries(spec.cells)) {
          const plan = PLAN[c.plan];
          const warm = round === 0 ? plan.firstWarm : plan.warm;
          const args = [r.runtime, model, c.feeds, c.carry ?? {}, warm, plan.runs];
          const got = await evaluate(pages[r.threads], `timing ${model} ${cell} in ${name}`, ([n, m, feeds, carry, w, k]) => window.onnxBench.time(n, m, feeds, carry, w, k), args);
          samples[name][cell].push(...got);
        }
      }
    }
    for (const name of names) results.models[model].runtimes[name].batch1 = Object.fromEntries(Object.entries(samples[name]).map(([cell, s]) => [cell, stats(s)]));
  }
  for (const page of Object.values(pages)) await page.close();
  complete = true;
} finally {
  await browser.close();
  server.stop();
  write();
}
const errors = pageErrors.flat();
if (errors.length) console.error(`# errors on the pages:\n${errors.map((e) => `#   ${e}`).join('\n')}`);

// ---- output ---------------------------------------------------------------------------
function write() {
  const out = join(ROOT, 'bench/out');
  mkdirSync(out, { recursive: true });
  const ms = (v) => (v === undefined ? '—' : v < 10 ? v.toFixed(3) : v.toFixed(1));
  const lines = [
    `Headless Chromium ${results.browser ?? '?'}; CPU: ${results.machine}; ${results.date.slice(0, 10)}${smoke ? ' — SMOKE RUN: too few iterations to mean anything' : ''}${complete ? '' : failures.length ? ' — FAILED: outputs disagree with the references, nothing timed' : ' — INCOMPLETE: the run failed'}`,
  ];
  for (const [model, entry] of Object.entries(results.models)) {
    const cells = Object.keys(MODELS[model].cells);
    const f = entry.files;
    lines.push(
      '',
      `### ${entry.title} (\`${model}\`)`,
      '',
      `${entry.description}. ONNX file ${f.onnxMiB.toFixed(2)} MiB; brasa: weights.bpk ${f.brasaWeightsMiB.toFixed(2)} MiB + CPU wasm (\`cpu\`) ${f.brasaWasmMiB.toFixed(2)} MiB. Reference: ${entry.reference}.`,
      '',
      `| runtime | ${cells.map((c) => `b1 ${c} median (p90) ms | ÷ onnxruntime-web`).join(' | ')} | load ms | max Δ vs reference |`,
      `|---|${cells.map(() => '---|---|').join('')}---|---|`,
      ...Object.entries(entry.runtimes).map(([name, r]) => {
        if (r.absent) return `| ${r.label} | ${cells.map(() => 'absent | —').join(' | ')} | — | ${r.absent} |`;
        // brasa ÷ onnxruntime-web on the same number of threads.
        const peer = entry.runtimes[`ort-wasm-${r.threads}t`];
        const timing = cells.map((c) => {
          const s = r.batch1?.[c];
          if (!s) return '— | —';
          const ratio = r.brasa && peer?.batch1 ? (s.median / peer.batch1[c].median).toFixed(2) : '—';
          return `${ms(s.median)} (${ms(s.p90)}) | ${ratio}`;
        });
        const deltas = Object.entries(r.maxAbsDiffVsReference ?? {}).map(([o, d]) => (Object.keys(r.maxAbsDiffVsReference).length > 1 ? `${o} ${d.toExponential(1)}` : d.toExponential(1)));
        return `| ${r.label} | ${timing.join(' | ')} | ${r.loadMs?.toFixed(0) ?? '—'} | ${deltas.join(', ') || '—'} |`;
      }),
    );
  }
  const init = results.initMs;
  lines.push(
    '',
    '÷ onnxruntime-web: a brasa row\'s median ÷ onnxruntime-web\'s on as many threads (< 1: brasa is faster). b1: one call of batch 1 (inputs in, outputs read back), seeded random inputs, the same in every runtime; silero-vad carries its state from call to call. 2-thread rows ran on a page of their own (`?threads=2`), in rounds interleaved with the 1-thread page.',
    `Load: from fetching the model's file (brasa: its weights.bpk; onnxruntime-web: the .onnx; both past the HTTP cache) to a model ready to run; brasa's includes compiling the model's own wasm build (and, for a threaded build, starting its Worker and pool). Each runtime was started on its page before, untimed${init ? ` (${Object.entries(init).map(([n, t]) => `${n} ${t.toFixed(0)} ms`).join(', ')}: brasa's JS; onnxruntime-web's wasm runtime and its threads)` : ''}.`,
  );
  if (failures.length) lines.push('', ...failures.map((f) => `- ${f}`));
  const table = lines.join('\n');
  writeFileSync(join(out, 'onnx-results.json'), JSON.stringify({ ...results, complete, failures }, null, 2));
  writeFileSync(join(out, 'onnx-results.md'), `${table}\n`);
  if (!smoke && complete) {
    for (const f of ['onnx-results.json', 'onnx-results.md']) cpSync(join(out, f), join(ROOT, 'bench', f));
  }
  console.log(`\n${table}\n`);
}
