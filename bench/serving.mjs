// Throughput and latency of the KServe v2 endpoint in workerd (the Cloudflare Worker bundle,
// via Miniflare), Deno and Node, with dynamic batching on (max batch 32) and off (max batch
// 1), from a load-generating client on 127.0.0.1 (the same machine: the client's cost is in
// every figure alike). Rounds alternate batching on/off so drift hits both; medians of the
// rounds are reported. Every answer is checked against numpy. Also the worker bundle size
// and the cold start (process or isolate up, then the first answer, weights from the
// registry).
//
// `cargo xtask bench` runs this; `--smoke` runs one short round.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';

import { ROOT, reference, serve } from '../tests/support.mjs';
import { batchSizes, infer, loadTest, request } from '../tests/serving/checks.mjs';
import { makeServingRegistry } from '../tests/serving/models.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from '../tests/serving/runtimes.mjs';

const smoke = process.argv.includes('--smoke');
const ROUNDS = smoke ? 1 : 3;
const LOAD = smoke ? { concurrency: 16, requests: 100 } : { concurrency: 48, requests: 1500 };
const REF = reference();
const registry = makeServingRegistry(); // mnist (measured) and two-heads (served beside it)
const upstream = await serve(registry.dir);
const bundle = bundleWorker();
const START = {
  workerd: (config) => startWorkerd(bundle, upstream.url, config),
  deno: (config) => startDeno(upstream.url, config),
  node: (config) => startNode(upstream.url, config),
};
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const results = { date: new Date().toISOString(), machine: `${cpus().length} x ${cpus()[0].model}`, load: LOAD, rounds: ROUNDS, workerBundle: bundle.sizes, runtimes: {} };

try {
  for (const [runtime, start] of Object.entries(START)) {
    const rounds = { on: [], off: [] };
    let cold = null;
    let meanBatch = null;
    for (let round = 0; round < ROUNDS; round++) {
      for (const mode of round % 2 ? ['off', 'on'] : ['on', 'off']) {
        const t = performance.now();
        const server = await start({ maxBatch: mode === 'on' ? 32 : 1, maxQueueRows: 4096 });
        const up = performance.now();
        const first = await infer(server.url, request(REF.items[0].pixels));
        if (first.status !== 200) throw new Error(`${runtime}: first request ${first.status}: ${await first.text()}`);
        cold ??= { startMs: up - t, firstResponseMs: performance.now() - up };
        try {
          const result = await loadTest(server.url, REF, LOAD);
          if (result.statuses[200] !== LOAD.requests) throw new Error(`${runtime} ${mode}: ${JSON.stringify(result.statuses)}`);
          rounds[mode].push(result);
          if (mode === 'on') meanBatch = batchSizes(await (await fetch(`${server.url}metrics`)).text()).mean;
        } finally {
          await server.stop();
        }
      }
    }
    const summary = (rs) => ({ rps: median(rs.map((r) => r.rps)), p50: median(rs.map((r) => r.p50)), p99: median(rs.map((r) => r.p99)) });
    results.runtimes[runtime] = { cold, batching: { ...summary(rounds.on), meanBatch }, noBatching: summary(rounds.off) };
  }
} finally {
  upstream.stop();
  registry.remove();
  bundle.remove();
}

const dir = join(ROOT, 'bench/out');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'serving.json'), JSON.stringify(results, null, 2));
const mib = (b) => `${(b / 1048576).toFixed(2)} MiB`;
console.log(`\nbrasa KServe v2 endpoint, ${results.machine}, ${LOAD.concurrency} clients × ${LOAD.requests} single-item requests, median of ${ROUNDS} rounds${smoke ? ' (SMOKE)' : ''}`);
console.log(`worker bundle (JS + both models' CPU wasm): ${mib(bundle.sizes.raw)} raw, ${mib(bundle.sizes.gzip)} gzip (Cloudflare free plan: 3 MB gzip)\n`);
console.log('| runtime | start | first answer | req/s batching | p50 / p99 ms | mean batch | req/s no batching | p50 / p99 ms | speed-up |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results.runtimes)) {
  const f = (v) => v.toFixed(0);
  console.log(`| ${name} | ${f(r.cold.startMs)} ms | ${f(r.cold.firstResponseMs)} ms | ${f(r.batching.rps)} | ${r.batching.p50.toFixed(1)} / ${r.batching.p99.toFixed(1)} | ${r.batching.meanBatch.toFixed(1)} | ${f(r.noBatching.rps)} | ${r.noBatching.p50.toFixed(1)} / ${r.noBatching.p99.toFixed(1)} | ${(r.batching.rps / r.noBatching.rps).toFixed(2)}× |`);
}
