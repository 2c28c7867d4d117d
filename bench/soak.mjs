// Soak: does brasa stay correct and its memory bounded over a long run?
//
// 1. Runtime (Node, CPU build): 100,000 `model.run` calls of the MNIST model loaded from a
//    registry the real CLI wrote (1.0.0 on `stable`, 1.1.0 on `canary`), served by the real
//    `brasa serve`, with batch sizes 1..32 (seeded), channel moves (`brasa registry promote` /
//    `rollback`, then `model.update()`), `setWeights` (good, and truncated), update checks and
//    bad inputs (each must reject with its typed code). Every output is checked for shape and
//    finiteness and against numpy's logits of the weights in place. Every 1% of the run, after
//    a forced GC: wasm linear memory (`model.memoryBytes`), JS heap, RSS.
// 2. Endpoint: the Node example (examples/node/server.mjs, serving mnist from the same kind of
//    registry) under steady load from 16 keep-alive clients for 10 minutes, single-row and
//    batched requests, every answer checked against numpy for the version it names, the
//    `stable` channel moved every minute (the endpoint checks the registry every minute by
//    itself and switches); the server's VmRSS and /metrics sampled every 30 s.
//
// Correctness failures (a wrong answer, an untyped error, a failed request) fail the run;
// memory is judged and reported (bench/soak-results.md), not asserted.
//
//   node bench/soak.mjs [--smoke] [--only runtime|endpoint] [--iterations N] [--minutes M] [--seed S]
//                       [--package DIR] [--note TEXT]
// `cargo xtask bench` runs it (full: ~30 min on 2 cores; `--smoke`: 200 runs and 10 s
// of load, writing to bench/out/ only, so the harness cannot rot).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, getPriority, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';

// The heap is only comparable after a full GC: run again with --expose-gc when missing.
if (typeof globalThis.gc !== 'function') {
  const child = spawn(process.execPath, ['--expose-gc', ...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await main();
}

async function main() {
  const { values } = parseArgs({
    options: {
      smoke: { type: 'boolean', default: false },
      only: { type: 'string' },
      iterations: { type: 'string' },
      minutes: { type: 'string' },
      seed: { type: 'string', default: '12' },
      note: { type: 'string' },
      package: { type: 'string' }, // an MNIST package folder; default the one `cargo xtask build` made
    },
  });
  const smoke = values.smoke;
  const plan = {
    seed: Number(values.seed),
    runtime: { iterations: Number(values.iterations ?? (smoke ? 200 : 100_000)) },
    endpoint: {
      durationMs: Number(values.minutes ?? (smoke ? 1 / 6 : 10)) * 60_000,
      clients: 16,
      bucketMs: smoke ? 5_000 : 60_000, // latency per bucket
      sampleMs: smoke ? 2_500 : 30_000, // VmRSS and /metrics
      moveMs: smoke ? 5_000 : 60_000, // channel moves
    },
  };
  const run = { runtime: values.only !== 'endpoint', endpoint: values.only !== 'runtime' };
  const support = await import('../tests/support.mjs');
  // A private copy of the MNIST package, so a rebuild of .cache/packages during a long run
  // cannot change what is measured.
  const packages = mkdtempSync(join(tmpdir(), 'brasa-soak-packages-'));
  cpSync(values.package ?? support.packageDir('mnist'), join(packages, 'mnist'), { recursive: true });
  const cpuBuild = JSON.parse(readFileSync(join(packages, 'mnist/model.json'), 'utf8')).builds.cpu;
  const results = { date: new Date().toISOString(), smoke, note: values.note ?? null, machine: machine(), plan, package: { cpuWasmBytes: cpuBuild.size, sha256: cpuBuild.sha256 } };
  try {
    if (run.runtime) results.runtime = await runtimeSoak(support, packages, plan.runtime, plan.seed);
    if (run.endpoint) results.endpoint = await endpointSoak(support, packages, plan.endpoint, plan.seed);
  } finally {
    rmSync(packages, { recursive: true, force: true });
  }
  results.machine.loadavgEnd = loadavg().map((x) => Number(x.toFixed(2)));
  const markdown = report(results);
  console.log(`\n${markdown}`);
  const out = smoke || values.only || values.iterations || values.minutes ? join(support.ROOT, 'bench/out/soak') : join(support.ROOT, 'bench/soak-results');
  mkdirSync(join(support.ROOT, 'bench/out'), { recursive: true });
  writeFileSync(`${out}.json`, `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(`${out}.md`, markdown);
  console.log(`written: ${out}.md, ${out}.json`);
  const failures = [...(results.runtime?.failures ?? []), ...(results.endpoint?.failureExamples ?? [])];
  if (failures.length > 0 || (results.endpoint && results.endpoint.failures > 0)) {
    console.error(`soak FAILED:\n${failures.slice(0, 20).join('\n')}`);
    process.exit(1);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared

/** mulberry32: a small seeded generator, so a run can be repeated. */
function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function machine() {
  let cpu = cpus()[0]?.model ?? 'unknown';
  try {
    cpu = readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpu;
  } catch {
    // Not Linux: os.cpus() says enough.
  }
  return { cpu, cores: cpus().length, memoryGiB: Number((totalmem() / 2 ** 30).toFixed(1)), node: process.version, niceness: getPriority(), loadavgStart: loadavg().map((x) => Number(x.toFixed(2))) };
}

/** numpy's logits per registry version, by reference item (tests/reference/mnist_reference.py). */
function references(ref) {
  return { '1.0.0': ref.items.map((item) => item.logits), '1.1.0': ref.variant.logits };
}

/** Largest |Δ| of `rows` (indexes into the reference items) against `expected[row]`, or a failure message. */
function checkLogits(data, dims, rows, expected, tolerance) {
  if (dims.length !== 2 || dims[0] !== rows.length || dims[1] !== 10 || data.length !== rows.length * 10) {
    return { error: `logits dims ${JSON.stringify(dims)} (${data.length} values) for ${rows.length} rows` };
  }
  let worst = 0;
  for (let r = 0; r < rows.length; r++) {
    const want = expected[rows[r]];
    for (let k = 0; k < 10; k++) {
      const got = data[r * 10 + k];
      if (!Number.isFinite(got)) return { error: `row ${r} logit ${k} is ${got}` };
      worst = Math.max(worst, Math.abs(got - want[k]));
    }
  }
  if (worst > tolerance) return { error: `max |Δ| vs numpy ${worst.toExponential(2)} > ${tolerance}` };
  return { worst };
}

/** Least-squares slope of y over x. */
function slope(points) {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

function percentile(sorted, q) {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function registryCli(support, dir) {
  return (...args) => execFileSync(support.CLI, ['registry', '--registry', dir, ...args], { stdio: 'pipe' });
}

// ---------------------------------------------------------------------------------------------
// 1. Runtime soak

async function runtimeSoak(support, packages, { iterations }, seed) {
  const brasa = await import('brasa');
  const mnist = (await import(pathToFileURL(join(packages, 'mnist/index.js')).href)).default;
  const expected = references(support.reference());
  const items = support.reference().items.map((item) => Float32Array.from(item.pixels));
  const weights = { '1.0.0': readFileSync(support.weightsPath()), '1.1.0': readFileSync(support.variantWeightsPath()) };
  const registry = support.makeRegistry();
  const cli = registryCli(support, registry.dir);
  const server = await support.serve(registry.dir);
  const cacheDir = mkdtempSync(join(tmpdir(), 'brasa-soak-cache-'));
  const random = rng(seed);
  const every = (fraction, min = 1) => Math.max(min, Math.round(iterations * fraction));
  const SAMPLE = every(0.01, 10);
  const WARM_UP = every(0.1);
  const SWAP = every(1 / 40); // 40 model swaps (2,500 runs apart in the full run)
  const CHECK = every(0.01, 10); // update checks
  const BAD = every(1 / 400, 10); // bad inputs
  const failures = [];
  const fail = (what) => {
    if (failures.length < 50) failures.push(what);
  };
  const counts = { rows: 0, canaryRuns: 0, badInputs: {}, swaps: {}, updateChecks: {}, events: {} };
  let worst = 0;
  const samples = [];
  const started = performance.now();
  let memorySource = null;

  try {
    const cache = new brasa.FileCache(cacheDir);
    const load = (spec) => brasa.loadModel(spec, { registry: server.url, build: mnist, backend: 'cpu', cache });
    const stable = await load('mnist@stable');
    const canary = await load('mnist@canary');
    for (const type of ['updated', 'update-available', 'rollback', 'update-check', 'offline']) {
      stable.addEventListener(type, () => {
        counts.events[type] = (counts.events[type] ?? 0) + 1;
      });
    }
    if (stable.version !== '1.0.0' || canary.version !== '1.1.0') fail(`loaded stable ${stable.version}, canary ${canary.version}`);
    // Which weights the stable model holds: its version after update(), or what setWeights put in.
    let stableWeights = stable.version;

    const sample = (i) => {
      globalThis.gc();
      const mem = process.memoryUsage();
      const wasm = stable.memoryBytes;
      memorySource ??= wasm === null ? 'process.memoryUsage().arrayBuffers (this build has no memoryBytes)' : 'model.memoryBytes';
      samples.push({ i, seconds: Number(((performance.now() - started) / 1000).toFixed(1)), wasm, heapUsed: mem.heapUsed, rss: mem.rss, arrayBuffers: mem.arrayBuffers, external: mem.external });
    };

    // Bad calls, in turn; each must reject with its code and leave the model as it was.
    const onePixelHuge = new Float32Array(784);
    onePixelHuge[300] = 1.2e37;
    const nan = new Float32Array(784).fill(0.5);
    nan[100] = NaN;
    const badCases = [
      ['nan', 'invalid_input', () => stable.run(nan)],
      ['short', 'invalid_input', () => stable.run(new Float32Array(783))],
      ['onePixelHuge', 'invalid_input', () => stable.run(onePixelHuge)],
      ['wrongDtype', 'invalid_input', () => stable.run({ pixels: { dtype: 'int32', dims: [1, 1, 28, 28], data: new Int32Array(784) } })],
      ['unknownInput', 'invalid_input', () => stable.run({ image: new Float32Array(784) })],
      ['string', 'invalid_input', () => stable.run('pixels')],
      ['overMaxBatch', 'invalid_input', () => stable.run(new Float32Array((stable.info.limits.maxBatch + 1) * 784))],
      ['truncatedWeights', 'invalid_weights', () => stable.setWeights(weights['1.0.0'].subarray(0, 100_000))],
    ];
    let badTurn = 0;

    // Model swaps, in turn: channel moves picked up by update(), and setWeights.
    const swaps = [
      ['promote+update', async () => {
        cli('promote', '--model', 'mnist', '--channel', 'stable', '--version', '1.1.0', '--reason', 'soak');
        const r = await stable.update();
        if (!r.updated || r.version !== '1.1.0' || stable.version !== '1.1.0') fail(`update after promote: ${JSON.stringify(r)}`);
        stableWeights = '1.1.0';
      }],
      ['setWeights 1.0.0', async () => {
        await stable.setWeights(weights['1.0.0']);
        stableWeights = '1.0.0';
      }],
      ['rollback+update', async () => {
        cli('rollback', '--model', 'mnist', '--channel', 'stable', '--reason', 'soak');
        const r = await stable.update();
        if (!r.updated || r.version !== '1.0.0' || stable.version !== '1.0.0') fail(`update after rollback: ${JSON.stringify(r)}`);
        stableWeights = '1.0.0';
      }],
      ['setWeights 1.1.0', async () => {
        await stable.setWeights(weights['1.1.0']);
        stableWeights = '1.1.0';
      }],
      ['update (nothing new)', async () => {
        const r = await stable.update();
        if (r.updated || r.version !== stable.version) fail(`update with nothing new: ${JSON.stringify(r)}`);
      }],
    ];
    let swapTurn = 0;

    sample(0);
    for (let i = 1; i <= iterations; i++) {
      const batch = 1 + Math.floor(random() * 32);
      const rows = Array.from({ length: batch }, () => Math.floor(random() * items.length));
      const pixels = new Float32Array(batch * 784);
      rows.forEach((row, r) => pixels.set(items[row], r * 784));
      const onCanary = random() < 1 / 8;
      const model = onCanary ? canary : stable;
      const version = onCanary ? '1.1.0' : stableWeights;
      try {
        const { logits } = await model.run(pixels);
        const check = checkLogits(logits.data, logits.dims, rows, expected[version], support.TOLERANCE);
        if (check.error) fail(`run ${i} (${onCanary ? 'canary' : 'stable'}, weights ${version}, batch ${batch}): ${check.error}`);
        else worst = Math.max(worst, check.worst);
      } catch (err) {
        fail(`run ${i} (batch ${batch}) threw ${err?.name} ${err?.code}: ${err?.message}`);
      }
      counts.rows += batch;
      if (onCanary) counts.canaryRuns++;

      if (i % BAD === 0) {
        const [name, code, call] = badCases[badTurn++ % badCases.length];
        try {
          await call();
          fail(`bad input ${name} at run ${i} was accepted`);
        } catch (err) {
          if (err?.name !== 'BrasaError' || err.code !== code) fail(`bad input ${name}: ${err?.name} ${err?.code} (want ${code}): ${err?.message}`);
          counts.badInputs[name] = (counts.badInputs[name] ?? 0) + 1;
        }
      }
      if (i % CHECK === Math.floor(CHECK / 2)) {
        try {
          const r = await stable.checkForUpdate();
          counts.updateChecks[r.outcome] = (counts.updateChecks[r.outcome] ?? 0) + 1;
          if (r.outcome !== 'current') fail(`update check at run ${i}: ${JSON.stringify(r)}`);
        } catch (err) {
          fail(`update check at run ${i} threw ${err?.code}: ${err?.message}`);
        }
      }
      if (i % SWAP === 0) {
        const [name, swap] = swaps[swapTurn++ % swaps.length];
        try {
          await swap();
          counts.swaps[name] = (counts.swaps[name] ?? 0) + 1;
        } catch (err) {
          fail(`swap ${name} at run ${i} threw ${err?.code}: ${err?.message}`);
        }
      }
      if (i % SAMPLE === 0) {
        sample(i);
        const s = samples.at(-1);
        if (i % (SAMPLE * 10) === 0) console.log(`soak runtime: ${i} runs, ${s.seconds} s, wasm ${s.wasm ?? '–'} B, heap ${s.heapUsed} B, rss ${s.rss} B, ${failures.length} failures`);
      }
    }
    stable.dispose();
    canary.dispose();
  } finally {
    server.stop();
    registry.remove();
    // Removed at exit, not now: the cache's lease renewal outlives dispose() by up to one
    // interval, and one that finds the folder gone retries its lock forever (and keeps Node
    // from exiting): seen in the first full run, reported.
    process.once('exit', () => rmSync(cacheDir, { recursive: true, force: true }));
  }

  const seconds = (performance.now() - started) / 1000;
  const after = samples.filter((s) => s.i >= WARM_UP);
  const wasmKey = samples[0]?.wasm === null ? 'arrayBuffers' : 'wasm';
  // Bounded: what the fitted line adds from warm-up to the end stays under a fixed budget;
  // a leak of even 16 bytes per run would add 1.4 MB over 90,000 runs.
  const judge = (key, budget) => {
    const perRun = slope(after.map((s) => ({ x: s.i, y: s[key] })));
    const span = (after.at(-1)?.i ?? 0) - (after[0]?.i ?? 0);
    const growth = perRun * span;
    return { perThousand: Math.round(perRun * 1000), growthAfterWarmUp: Math.round(growth), firstAfterWarmUp: after[0]?.[key] ?? null, last: after.at(-1)?.[key] ?? null, budget, bounded: growth <= budget };
  };
  return {
    iterations,
    seconds: Number(seconds.toFixed(1)),
    rows: counts.rows,
    canaryRuns: counts.canaryRuns,
    maxDiff: worst,
    tolerance: support.TOLERANCE,
    badInputs: counts.badInputs,
    swaps: counts.swaps,
    updateChecks: counts.updateChecks,
    events: counts.events,
    memorySource,
    warmUp: WARM_UP,
    verdict: {
      wasm: judge(wasmKey, 1 << 20),
      heapUsed: judge('heapUsed', 1 << 20),
      rss: judge('rss', 8 << 20),
    },
    samples,
    failures,
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Endpoint soak

/** Start examples/node/server.mjs as tests/serving/runtimes.mjs `startNode` does, keeping its pid. */
function startNodeEndpoint(support, packages, registryUrl) {
  const cacheHome = mkdtempSync(join(tmpdir(), 'brasa-soak-serve-'));
  return new Promise((resolve, reject) => {
    const child = spawn('node', ['examples/node/server.mjs'], {
      cwd: support.ROOT,
      env: { ...process.env, BRASA_REGISTRY: registryUrl, BRASA_PACKAGES: packages, BRASA_MODELS: 'mnist', BRASA_MAX_BATCH: '32', BRASA_MAX_QUEUE_ROWS: '512', PORT: '0', XDG_CACHE_HOME: cacheHome },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const stop = () => {
      child.kill();
      rmSync(cacheHome, { recursive: true, force: true });
    };
    const timer = setTimeout(() => { stop(); reject(new Error(`the Node endpoint did not start: ${out}`)); }, 60_000);
    const onData = (chunk) => {
      out += chunk;
      const match = out.match(/serving on (http:\/\/[\d.]+:\d+\/)/);
      if (match && /models ready/.test(out)) {
        clearTimeout(timer);
        resolve({ url: match[1], pid: child.pid, output: () => out, stop });
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`the Node endpoint exited with ${code}: ${out}`)); });
  });
}

/** VmRSS and VmHWM of a process, in bytes (Linux). */
function procMemory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (field) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), hwm: kib('VmHWM') };
}

/** What the soak reads from /metrics: requests by outcome, the version serving, wasm memory, how many series. */
function readMetrics(text) {
  const requests = {};
  let series = 0;
  let ready = null;
  let wasm = null;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    series++;
    const m = line.match(/^brasa_requests_total\{([^}]*)\} (\S+)$/);
    if (m) {
      const outcome = m[1].match(/outcome="([^"]*)"/)?.[1] ?? '?';
      requests[outcome] = (requests[outcome] ?? 0) + Number(m[2]);
    }
    const r = line.match(/^brasa_model_ready\{([^}]*)\} 1$/);
    if (r) ready = r[1].match(/version="([^"]*)"/)?.[1] ?? ready;
    const w = line.match(/^brasa_wasm_memory_bytes\{[^}]*\} (\S+)$/);
    if (w) wasm = Math.max(wasm ?? 0, Number(w[1]));
  }
  return { requests, series, ready, wasm };
}

async function endpointSoak(support, packages, { durationMs, clients, bucketMs, sampleMs, moveMs }, seed) {
  const ref = support.reference();
  const expected = references(ref);
  const random = rng(seed + 1);
  // A pool of request bodies, built once so the client's own cost stays small: three in four
  // single rows, the rest 2..16 rows.
  const pool = Array.from({ length: 96 }, (_, k) => {
    const batch = k % 4 === 3 ? 2 + Math.floor(random() * 15) : 1;
    const rows = Array.from({ length: batch }, () => Math.floor(random() * ref.items.length));
    const body = JSON.stringify({ inputs: [{ name: 'pixels', shape: [batch, 1, 28, 28], datatype: 'FP32', data: rows.flatMap((r) => ref.items[r].pixels) }], outputs: [{ name: 'logits' }] });
    return { rows, body };
  });
  const registry = support.makeRegistry();
  const cli = promisify(execFile);
  const upstream = await support.serve(registry.dir);
  const server = await startNodeEndpoint(support, packages, upstream.url);
  const buckets = [];
  const bucket = (t) => {
    const k = Math.floor(t / bucketMs);
    while (buckets.length <= k) buckets.push({ latencies: [], requests: 0, failures: 0, rows: 0, versions: {} });
    return buckets[k];
  };
  const failureExamples = [];
  let failures = 0;
  let requests = 0;
  let worst = 0;
  const fail = (b, what) => {
    failures++;
    b.failures++;
    if (failureExamples.length < 20) failureExamples.push(what);
  };
  const samples = [];
  const moves = [];
  const started = performance.now();
  const end = started + durationMs;
  const sample = async () => {
    const t = (performance.now() - started) / 1000;
    const memory = procMemory(server.pid);
    const metrics = readMetrics(await (await fetch(`${server.url}metrics`)).text());
    samples.push({ seconds: Number(t.toFixed(1)), rss: memory.rss, hwm: memory.hwm, ...metrics });
    console.log(`soak endpoint: ${t.toFixed(0)} s, ${requests} requests, ${failures} failed, VmRSS ${memory.rss} B`);
  };

  try {
    await sample();
    const client = async () => {
      while (performance.now() < end) {
        const { rows, body } = pool[Math.floor(random() * pool.length)];
        const t = performance.now();
        const b = bucket(t - started);
        requests++;
        try {
          const response = await fetch(`${server.url}v2/models/mnist/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          const text = await response.text();
          const latency = performance.now() - t;
          b.latencies.push(latency);
          b.requests++;
          b.rows += rows.length;
          if (response.status !== 200) {
            fail(b, `HTTP ${response.status}: ${text.slice(0, 200)}`);
            continue;
          }
          const answer = JSON.parse(text);
          const version = answer.model_version;
          b.versions[version] = (b.versions[version] ?? 0) + 1;
          const out = answer.outputs?.[0];
          if (!expected[version]) {
            fail(b, `answer names version ${version}`);
            continue;
          }
          const check = checkLogits(out?.data ?? [], out?.shape ?? [], rows, expected[version], support.TOLERANCE);
          if (check.error) fail(b, `version ${version}, ${rows.length} rows: ${check.error}`);
          else worst = Math.max(worst, check.worst);
        } catch (err) {
          fail(b, `request failed: ${err.message}`);
        }
      }
    };
    // Move `stable` 1.0.0 → 1.1.0 → 1.0.0 … ; the endpoint's own minute-by-minute check
    // picks each move up under load.
    let promoted = false;
    // The move in flight, awaited before the registry folder is removed (a CLI still
    // writing into it made the removal fail with ENOTEMPTY).
    let moving = Promise.resolve();
    const mover = setInterval(() => {
      const args = promoted ? ['rollback', '--model', 'mnist', '--channel', 'stable', '--reason', 'soak'] : ['promote', '--model', 'mnist', '--channel', 'stable', '--version', '1.1.0', '--reason', 'soak'];
      promoted = !promoted;
      const move = { seconds: Number(((performance.now() - started) / 1000).toFixed(1)), to: promoted ? '1.1.0' : '1.0.0' };
      // Chained, so two moves never write the channel at once.
      moving = moving.then(() => cli(support.CLI, ['registry', '--registry', registry.dir, ...args])).then(
        () => moves.push(move),
        (err) => fail(bucket(performance.now() - started), `channel move failed: ${err.message}`),
      );
    }, moveMs);
    const sampler = setInterval(() => void sample().catch((err) => fail(bucket(performance.now() - started), `sampling failed: ${err.message}`)), sampleMs);
    try {
      await Promise.all(Array.from({ length: clients }, client));
    } finally {
      clearInterval(mover);
      clearInterval(sampler);
      await moving;
    }
    await sample();
  } finally {
    server.stop();
    upstream.stop();
    registry.remove();
  }

  const seconds = (performance.now() - started) / 1000;
  const perBucket = buckets.map((b, k) => {
    const sorted = b.latencies.sort((x, y) => x - y);
    return { from: (k * bucketMs) / 1000, requests: b.requests, rows: b.rows, failures: b.failures, p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), versions: b.versions };
  });
  // RSS after the first minute (or the first fifth of a shorter run): the fitted growth per minute.
  const warm = samples.filter((s) => s.seconds >= Math.min(60, durationMs / 5000));
  const rssPerMinute = slope(warm.map((s) => ({ x: s.seconds / 60, y: s.rss })));
  const minutes = (warm.at(-1)?.seconds ?? 0) / 60 - (warm[0]?.seconds ?? 0) / 60;
  return {
    durationSeconds: Number(seconds.toFixed(1)),
    clients,
    requests,
    rps: Number((requests / seconds).toFixed(1)),
    failures,
    failureExamples,
    maxDiff: worst,
    moves,
    buckets: perBucket,
    bucketSeconds: bucketMs / 1000,
    samples,
    rss: { perMinute: Math.round(rssPerMinute), growthAfterWarmUp: Math.round(rssPerMinute * minutes), budget: 16 << 20, bounded: rssPerMinute * minutes <= 16 << 20 },
  };
}

// ---------------------------------------------------------------------------------------------
// Report

function report(r) {
  const mib = (b) => (b === null || b === undefined || Number.isNaN(b) ? '–' : (b / 2 ** 20).toFixed(2));
  const kib = (b) => `${(b / 1024).toFixed(1)} KiB`;
  // A smoke run is too short to tell warm-up from growth.
  const verdict = (bounded) => (r.smoke ? 'not judged (smoke)' : bounded ? 'bounded' : 'GROWING');
  const lines = [];
  const m = r.machine;
  lines.push(`# Soak${r.smoke ? ' (SMOKE: checks the harness, measures nothing)' : ''}`, '');
  lines.push(`${r.date.slice(0, 10)} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB · Node ${m.node} · niceness ${m.niceness} · load average ${m.loadavgStart.join(' / ')} at the start, ${m.loadavgEnd.join(' / ')} at the end${m.niceness > 0 ? ' (run with `nice`: other work shared the cores, so throughput and latency are lower bounds; memory figures do not depend on it)' : ''}.`, '');
  lines.push(`\`node bench/soak.mjs\` (\`cargo xtask bench\`; the method is described at the top of the script) on the MNIST package whose CPU build is ${(r.package.cpuWasmBytes / 2 ** 20).toFixed(2)} MiB of wasm (sha256 ${r.package.sha256.slice(0, 12)}…).${r.note ? ` ${r.note}` : ''}`, '');
  if (r.runtime) {
    const rt = r.runtime;
    lines.push('## Runtime (Node, CPU build)', '');
    lines.push(`${rt.iterations.toLocaleString('en')} runs of the MNIST model from a registry (\`brasa serve\`) in ${rt.seconds} s: ${rt.rows.toLocaleString('en')} images, batch 1..32 (seed ${r.plan.seed}), ${rt.canaryRuns.toLocaleString('en')} of the runs on a second model following \`canary\` in the same wasm instance. ` +
      `Model swaps: ${Object.entries(rt.swaps).map(([k, v]) => `${v} × ${k}`).join(', ') || 'none'}. Update checks: ${Object.entries(rt.updateChecks).map(([k, v]) => `${v} × ${k}`).join(', ') || 'none'}. ` +
      `Bad calls, each rejected with its typed code: ${Object.entries(rt.badInputs).map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}. ` +
      `Every output checked (dims, finite, numpy's logits of the weights in place): max |Δ| ${rt.maxDiff.toExponential(1)} (tolerance ${rt.tolerance}); failures: ${rt.failures.length}.`, '');
    lines.push(`Memory after a forced GC; wasm linear memory from ${rt.memorySource}.`, '');
    lines.push('| runs | wasm MiB | JS heap MiB | RSS MiB | arrayBuffers MiB | s |', '|---|---|---|---|---|---|');
    const step = Math.max(1, Math.round(rt.iterations / 10));
    for (const s of rt.samples.filter((s) => s.i % step === 0 || s.i === rt.samples[1]?.i)) {
      lines.push(`| ${s.i.toLocaleString('en')} | ${mib(s.wasm)} | ${mib(s.heapUsed)} | ${mib(s.rss)} | ${mib(s.arrayBuffers)} | ${s.seconds} |`);
    }
    lines.push('');
    const v = rt.verdict;
    const line = (name, j) => `- ${name}: ${mib(j.firstAfterWarmUp)} → ${mib(j.last)} MiB; fitted slope ${j.perThousand >= 0 ? '+' : ''}${kib(j.perThousand)} per 1,000 runs, ${j.growthAfterWarmUp >= 0 ? '+' : ''}${mib(j.growthAfterWarmUp)} MiB from run ${rt.warmUp.toLocaleString('en')} to the end (budget ${mib(j.budget)} MiB): **${verdict(j.bounded)}**`;
    lines.push(`After warm-up (run ${rt.warmUp.toLocaleString('en')} on):`, '');
    lines.push(line(rt.memorySource === 'model.memoryBytes' ? 'wasm linear memory' : 'arrayBuffers (stand-in for wasm memory)', v.wasm), line('JS heap', v.heapUsed), line('RSS', v.rss), '');
    if (rt.failures.length) lines.push('Failures:', '', ...rt.failures.slice(0, 10).map((f) => `- ${f}`), '');
  }
  if (r.endpoint) {
    const e = r.endpoint;
    lines.push('## Endpoint (examples/node, KServe v2)', '');
    lines.push(`${e.clients} keep-alive clients for ${e.durationSeconds} s, three in four requests one image, the rest 2..16; every answer checked against numpy for the version it names (max |Δ| ${e.maxDiff.toExponential(1)}). ` +
      `\`stable\` moved ${e.moves.length} times (${e.moves.map((mv) => `${mv.seconds} s → ${mv.to}`).join(', ') || 'none'}); the endpoint checks the registry every 60 s. ` +
      `**${e.requests.toLocaleString('en')} requests, ${e.failures} failed**, ${e.rps} req/s.`, '');
    lines.push(`| from s | requests | images | failed | p50 ms | p99 ms | answered by |`, '|---|---|---|---|---|---|---|');
    for (const b of e.buckets) {
      lines.push(`| ${b.from} | ${b.requests} | ${b.rows} | ${b.failures} | ${b.p50?.toFixed(1) ?? '–'} | ${b.p99?.toFixed(1) ?? '–'} | ${Object.entries(b.versions).map(([k, n]) => `${k}: ${n}`).join(', ')} |`);
    }
    lines.push('', 'Server process (VmRSS from /proc, the rest from its /metrics):', '');
    lines.push('| s | VmRSS MiB | VmHWM MiB | wasm MiB (`brasa_wasm_memory_bytes`) | requests counted (ok / other) | metric series | version ready |', '|---|---|---|---|---|---|---|');
    for (const s of e.samples) {
      const ok = s.requests.ok ?? 0;
      const other = Object.entries(s.requests).filter(([k]) => k !== 'ok').reduce((n, [, v]) => n + v, 0);
      lines.push(`| ${s.seconds} | ${mib(s.rss)} | ${mib(s.hwm)} | ${mib(s.wasm)} | ${ok} / ${other} | ${s.series} | ${s.ready ?? '–'} |`);
    }
    lines.push('', `RSS after warm-up: fitted slope ${e.rss.perMinute >= 0 ? '+' : ''}${kib(e.rss.perMinute)} per minute, ${mib(e.rss.growthAfterWarmUp)} MiB in all (budget ${mib(e.rss.budget)} MiB): **${verdict(e.rss.bounded)}**.`, '');
    lines.push('Deno and workerd endpoints are not soaked here (the endpoint suites and bench/serving.mjs run them).', '');
    if (e.failureExamples.length) lines.push('Failures:', '', ...e.failureExamples.slice(0, 10).map((f) => `- ${f}`), '');
  }
  return `${lines.join('\n')}\n`;
}
