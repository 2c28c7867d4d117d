// The KServe v2 endpoint in its three homes, each a real server on 127.0.0.1: the worker in
// workerd (Miniflare, bundled by wrangler), the Deno example under Deno, the Node example
// under Node. Each serves two model packages (mnist, two-heads); weights come from a real
// `brasa serve` registry. Same checks for each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { TOLERANCE, maxDiff, reference, serve } from '../support.mjs';
import { batchSizes, checkBadRequests, checkBasics, checkOverload, checkTritonExtensions, checkTwoHeads, infer, loadTest, request } from './checks.mjs';
import { makeServingRegistry, twoHeadsReference } from './models.mjs';
import { bundleWorker, startDeno, startNode, startWorkerd } from './runtimes.mjs';

const REF = reference();
const TWO_HEADS = twoHeadsReference();
const QUEUE_ROWS = 64; // small, so a burst overflows it
const MAX_BATCH = 32;
let registry;
let upstream;
let bundle;
const answers = {};
const twoHeadsAnswers = {};
const report = {};

before(async () => {
  registry = makeServingRegistry();
  upstream = await serve(registry.dir);
  bundle = bundleWorker();
});
after(() => {
  upstream?.stop();
  registry?.remove();
  bundle?.remove();
  console.log(`# serving report: ${JSON.stringify({ workerBundle: bundle?.sizes, ...report })}`);
});

const START = {
  workerd: (registryUrl, config) => startWorkerd(bundle, registryUrl, config),
  deno: startDeno,
  node: startNode,
};
const RUNTIMES = Object.fromEntries(Object.entries(START).map(([name, start]) => [name, (config) => start(upstream.url, config)]));

test('the worker bundle fits the free plan (3 MB gzip)', () => {
  assert.ok(bundle.sizes.gzip < 3 * 1000 * 1000, JSON.stringify(bundle.sizes));
});

for (const [runtime, start] of Object.entries(RUNTIMES)) {
  describe(runtime, () => {
    let server;
    let cold;
    before(async () => {
      const t = performance.now();
      server = await start({ maxBatch: MAX_BATCH, maxQueueRows: QUEUE_ROWS });
      const up = performance.now();
      // The first request loads the wasm and the weights (from the registry), then answers.
      const first = await infer(server.url, request(REF.items[0].pixels));
      assert.equal(first.status, 200, await first.text());
      cold = { startMs: Math.round(up - t), firstResponseMs: Math.round(performance.now() - up) };
    });
    after(() => server?.stop());

    test('health, metadata, numpy agreement, tritonclient requests (JSON and binary)', async () => {
      answers[runtime] = await checkBasics(server.url, REF);
    });

    test('every bad request gets its 4xx', async () => {
      await checkBadRequests(server.url, { maxBatch: MAX_BATCH, maxQueueRows: QUEUE_ROWS });
    });

    test('two-heads: FP32 + INT64 in, FP32 + INT64 out, JSON and binary, FP16, output selection, refusals, concurrent seq lengths', async () => {
      twoHeadsAnswers[runtime] = await checkTwoHeads(server.url, TWO_HEADS, { maxBatch: MAX_BATCH, maxQueueRows: QUEUE_ROWS });
    });

    test("Triton's model configuration and statistics", async () => {
      await checkTritonExtensions(server.url, { maxBatch: MAX_BATCH });
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
      report[runtime] = { cold, batched: { ...round(batched), meanBatch: +mean.toFixed(1) } };
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

for (const [runtime, start] of Object.entries(START)) {
  test(`${runtime}: a registry outage after the first load stops nothing, a restart included`, async () => {
    const own = await serve(registry.dir);
    const cacheDir = mkdtempSync(join(tmpdir(), `brasa-outage-${runtime}-`));
    let server = await start(own.url, { cacheDir });
    try {
      assert.equal((await infer(server.url, request(REF.items[0].pixels))).status, 200);
      own.stop();
      const during = await infer(server.url, request(REF.items[1].pixels));
      assert.equal(during.status, 200, await during.text());
      await server.stop();
      // A fresh process (or isolate) with the registry still down: the cache serves.
      server = await start(own.url, { cacheDir });
      const restarted = await infer(server.url, request(REF.items[2].pixels));
      const body = await restarted.json();
      assert.equal(restarted.status, 200, JSON.stringify(body));
      assert.ok(maxDiff(body.outputs[0].data, REF.items[2].logits) <= TOLERANCE);
      assert.equal((await fetch(`${server.url}v2/health/ready`)).status, 200);
      assert.match(await (await fetch(`${server.url}metrics`)).text(), /^brasa_cache_hits_total\{model="mnist",version="1.0.0"\} 1$/m);
    } finally {
      await server.stop();
      own.stop();
      rmSync(cacheDir, { recursive: true, force: true });
    }
  });
}

test('a model that cannot be loaded yet (registry down, nothing cached) is loaded by a later request', async () => {
  const port = await freePort();
  const server = await startNode(`http://127.0.0.1:${port}/`);
  let registryServer = null;
  try {
    const before = await fetch(`${server.url}v2/health/ready`);
    assert.equal(before.status, 503);
    const body = await before.json();
    assert.match(body.reasons[0], /mnist: .*(network|fetch|ECONNREFUSED|cached)/i, JSON.stringify(body));
    assert.equal((await infer(server.url, request(REF.items[0].pixels))).status, 503);
    registryServer = await serve(registry.dir, port);
    let status = 0;
    for (let i = 0; i < 40 && status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await fetch(`${server.url}v2/health/ready`)).status;
    }
    assert.equal(status, 200, 'never became ready');
    assert.equal((await infer(server.url, request(REF.items[0].pixels))).status, 200);
  } finally {
    await server.stop();
    registryServer?.stop();
  }
});

function freePort() {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

test('the three runtimes give the same answers', () => {
  assert.deepEqual(answers.deno, answers.node);
  assert.deepEqual(answers.workerd, answers.node);
  assert.deepEqual(twoHeadsAnswers.deno, twoHeadsAnswers.node);
  assert.deepEqual(twoHeadsAnswers.workerd, twoHeadsAnswers.node);
  // And each agrees with numpy (checked per runtime; here once more on the shared answer).
  REF.items.forEach((item, i) => assert.ok(maxDiff(answers.node.slice(i * 10, i * 10 + 10), item.logits) <= TOLERANCE, item.name));
});

function round(r) {
  return { rps: Math.round(r.rps), p50: +r.p50.toFixed(2), p99: +r.p99.toFixed(2), requests: r.requests, concurrency: r.concurrency };
}
