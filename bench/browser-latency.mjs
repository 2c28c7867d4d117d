// Latency of brasa in headless Chromium, per backend: median and p90 ms per call at batch 1
// and 32 (input copy-in and result copy-out included), after a warm-up long enough for V8
// to tier up; plus time from navigation to the first prediction with an empty cache (cold:
// the MNIST package's wasm build, the manifest and the weights come over HTTP) and on a reload (warm: the weights
// come from Cache Storage, the manifest is revalidated in the background).
//
// `cargo xtask bench` runs this. SwiftShader's WebGPU is a CPU emulation: its numbers are a
// smoke check, not a GPU measurement.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { ROOT, chromium, demoSite, open, serve } from '../tests/support.mjs';
import { machine, stats } from './harness.mjs';

const smoke = process.argv.includes('--smoke');
const PLAN = smoke
  ? { b1: { warm: 20, runs: 20 }, b32: { warm: 3, runs: 5 } }
  : { b1: { warm: 500, runs: 300 }, b32: { warm: 50, runs: 40 } };

// A private copy of the demo site with a fresh registry (1.0.0 on stable).
const site = demoSite();
const server = await serve(site.dir);
const firstPrediction = () => window.brasaDemo.ready.then(async () => {
  await window.brasaDemo.run(new Float32Array(784));
  return performance.now(); // since navigation start
});
const results = { date: new Date().toISOString(), machine: machine().description, plan: PLAN, backends: {} };
try {
  for (const backend of ['cpu', 'webgpu']) {
    const browser = await chromium({ webgpu: backend === 'webgpu' });
    try {
      const { page } = await open(browser.context, `${server.url}?backend=${backend}`);
      const version = browser.context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent));
      const coldMs = await page.evaluate(firstPrediction);
      const warm = [];
      for (let i = 0; i < (smoke ? 1 : 5); i++) {
        await page.reload();
        warm.push(await page.evaluate(firstPrediction));
      }
      const timings = await page.evaluate(async (plan) => {
        const model = window.brasaDemo.model;
        const out = {};
        for (const [name, batch] of [['b1', 1], ['b32', 32]]) {
          const input = new Float32Array(784 * batch).map((_, i) => ((i * 7919) % 255) / 255);
          for (let i = 0; i < plan[name].warm; i++) await model.run(input);
          const samples = [];
          for (let i = 0; i < plan[name].runs; i++) {
            const t = performance.now();
            await model.run(input);
            samples.push(performance.now() - t);
          }
          out[name] = samples;
        }
        // The build the demo's options picked (brasa ≥ issue 13: `model.build`).
        return { out, backend: model.backend, build: model.build?.name ?? model.backend, threads: model.build?.threads ?? 1 };
      }, PLAN);
      if (timings.backend !== backend) throw new Error(`asked for ${backend}, ran on ${timings.backend}`);
      results.browser = version;
      results.backends[backend] = { build: timings.build, threads: timings.threads, coldStartMs: coldMs, warmStartMs: stats(warm).median, batch1: stats(timings.out.b1), batch32: stats(timings.out.b32) };
    } finally {
      await browser.close();
    }
  }
} finally {
  server.stop();
  site.remove();
}

const dir = join(ROOT, 'bench/out');
mkdirSync(dir, { recursive: true });
writeFileSync(join(dir, 'latency.json'), JSON.stringify(results, null, 2));
console.log(`\nbrasa latency, headless Chromium ${results.browser}; CPU: ${results.machine}${smoke ? ' (SMOKE: too few runs to mean anything)' : ''}\n`);
console.log('| backend | build (threads) | batch 1 median | batch 1 p90 | batch 32 median | batch 32 p90 | navigation → first prediction, cold | warm (median of reloads) |');
console.log('|---|---|---|---|---|---|---|---|');
for (const [name, r] of Object.entries(results.backends)) {
  const ms = (v) => `${v.toFixed(3)} ms`;
  console.log(`| ${name} | ${r.build} (${r.threads}) | ${ms(r.batch1.median)} | ${ms(r.batch1.p90)} | ${ms(r.batch32.median)} | ${ms(r.batch32.p90)} | ${r.coldStartMs.toFixed(0)} ms | ${r.warmStartMs.toFixed(0)} ms |`);
}
