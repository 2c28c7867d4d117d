// The KServe v2 endpoint in its three homes, each a real server on 127.0.0.1: the worker in
// workerd (Miniflare, bundled by wrangler), the Deno example under Deno, the Node example
// under Node. Weights come from a real `brasa serve` registry. Same checks for each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';

import { makeRegistry, reference, serve } from '../support.mjs';
import { batchSizes, checkBadRequests, checkBasics, checkOverload, infer, loadTest, request } from './checks.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from './runtimes.mjs';

const REF = reference();
const QUEUE_ROWS = 64; // small, so a burst overflows it
let registry;
let upstream;
let bundle;
const answers = {};
const report = {};

before(async () => {
  registry = makeRegistry();
  upstream = await serve(registry.dir);
  bundle = bundleWorker();
});
after(() => {
  upstream?.stop();
  registry?.remove();
  bundle?.remove();
  console.log(`# serving report: ${JSON.stringify({ workerBundle: bundle?.sizes, ...report })}`);
});

const RUNTIMES = {
  workerd: (config) => startWorkerd(bundle, upstream.url, config),
  deno: (config) => startDeno(upstream.url, config),
  node: (config) => startNode(upstream.url, config),
};

test('the worker bundle fits the free plan (3 MB gzip)', () => {
  assert.ok(bundle.sizes.gzip < 3 * 1000 * 1000, JSON.stringify(bundle.sizes));
});

for (const [runtime, start] of Object.entries(RUNTIMES)) {
  describe(runtime, () => {
    let server;
    let coldStartMs;
    before(async () => {
      const t = performance.now();
      server = await start({ maxBatch: 32, maxQueueRows: QUEUE_ROWS });
      // Cold start: process/isolate up, first request loads wasm + weights and answers.
      const first = await infer(server.url, request(REF.items[0].pixels));
      assert.equal(first.status, 200, await first.text());
      coldStartMs = performance.now() - t;
    });
    after(() => server?.stop());

    test('health, metadata, numpy agreement, a tritonclient request', async () => {
      answers[runtime] = await checkBasics(server.url, REF);
    });

    test('every bad request gets its 4xx', async () => {
      await checkBadRequests(server.url);
    });

    test('under concurrent load: all answers right, batches larger than one', async () => {
      const before = batchSizes(await (await fetch(`${server.url}metrics`)).text());
      const batched = await loadTest(server.url, REF, { concurrency: 48, requests: 600 });
      assert.deepEqual(batched.statuses, { 200: 600 });
      const metrics = await (await fetch(`${server.url}metrics`)).text();
      const sizes = batchSizes(metrics);
      const mean = (sizes.sum - before.sum) / (sizes.count - before.count);
      assert.ok(sizes.largerThanOne > before.largerThanOne, `no batch larger than one:\n${metrics}`);
      assert.match(metrics, /^brasa_requests_total\{backend="cpu",model="mnist",outcome="ok",version="1.0.0"\} \d+/m);
      assert.match(metrics, /^brasa_cache_(hits|misses)_total\{model="mnist",version="1.0.0"\} 1/m);
      report[runtime] = { coldStartMs: Math.round(coldStartMs), batched: { ...round(batched), meanBatch: +mean.toFixed(1) } };
    });

    test('overload: 503 with Retry-After, then it keeps answering', async () => {
      report[runtime].overload = await checkOverload(server.url, REF, 200);
    });

    test('throughput without batching, for comparison', async () => {
      const unbatched = await start({ maxBatch: 1, maxQueueRows: 512 });
      try {
        const result = await loadTest(unbatched.url, REF, { concurrency: 48, requests: 600 });
        assert.deepEqual(result.statuses, { 200: 600 });
        report[runtime].unbatched = round(result);
        report[runtime].batchingSpeedup = +(report[runtime].batched.rps / result.rps).toFixed(2);
      } finally {
        await unbatched.stop();
      }
    });
  });
}

test('the three runtimes give the same answers', () => {
  assert.deepEqual(answers.deno, answers.node);
  assert.deepEqual(answers.workerd, answers.node);
});

function round(r) {
  return { rps: Math.round(r.rps), p50: +r.p50.toFixed(2), p99: +r.p99.toFixed(2), requests: r.requests, concurrency: r.concurrency };
}
