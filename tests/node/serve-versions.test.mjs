// Versions side by side at the edge (Triton's version policies): the KServe endpoint in
// process (handler.fetch), MNIST 1.0.0 and 1.1.0 from a registry the real CLI wrote, served by
// the real `brasa serve`; every answer checked against numpy's logits of its own version.
// Policies: a pinned list, the latest N (following a new publication), the channel's (the
// default); a memory limit that fits one version only (least recently used unloads, a request
// loads its version again); a version that fails its integrity check is not served while the
// other is.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { MemoryCache, createHandler } from '../../npm/dist/node.js';
import { CLI, TOLERANCE, expectedLogits, goldenPath, loadPackage, makeRegistry, maxDiff, publishArgs, serve, weightsPath } from '../support.mjs';

const { input, v100, v110 } = expectedLogits();
const BASE = 'http://endpoint.test';
let registry;
let upstream;
let mnist;

before(async () => {
  registry = makeRegistry();
  upstream = await serve(registry.dir);
  mnist = await loadPackage('mnist');
});

after(() => {
  upstream?.stop();
  registry?.remove();
});

/** A handler over `registryUrl` serving `served` (mnist's options), started; `get`/`infer` helpers. */
async function endpoint(served, options = {}, registryUrl = upstream.url) {
  const handler = createHandler({ models: [{ model: mnist, ...served }], registry: registryUrl, load: { cache: new MemoryCache() }, updateInterval: 0, ...options });
  const started = await handler.start().then(
    () => null,
    (err) => err,
  );
  const get = async (path) => {
    const r = await handler.fetch(new Request(`${BASE}${path}`));
    return { status: r.status, headers: r.headers, body: await r.json().catch(() => null) };
  };
  const text = async (path) => (await handler.fetch(new Request(`${BASE}${path}`))).text();
  const infer = async (version, pixels = input) => {
    const path = version ? `/v2/models/mnist/versions/${version}/infer` : '/v2/models/mnist/infer';
    const body = JSON.stringify({ inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: pixels }] });
    const r = await handler.fetch(new Request(`${BASE}${path}`, { method: 'POST', body }));
    return { status: r.status, headers: r.headers, body: await r.json() };
  };
  return { handler, started, get, text, infer, close: () => handler.close() };
}

/** Assert an answer of `version` with numpy's logits of that version. */
function assertAnswer(answer, version, what = version) {
  assert.equal(answer.status, 200, `${what}: ${JSON.stringify(answer.body)}`);
  assert.equal(answer.body.model_version, version, what);
  const expected = version === '1.0.0' ? v100 : v110;
  const diff = maxDiff(answer.body.outputs[0].data, expected);
  assert.ok(diff <= TOLERANCE, `${what}: |endpoint - numpy ${version}| = ${diff}`);
}

/** The value of the series of `family` whose labels include all of `labels`. */
function series(metrics, family, labels) {
  for (const m of metrics.matchAll(new RegExp(`^${family}\\{([^}]*)\\} (\\S+)$`, 'gm'))) {
    if (Object.entries(labels).every(([k, v]) => m[1].includes(`${k}="${v}"`))) return Number(m[2]);
  }
  return null;
}

test('a pinned list: each version answers with its own logits, concurrently; the default is the newest', async () => {
  const e = await endpoint({ versions: ['1.1.0', '1.0.0'] });
  try {
    assert.equal(e.started, null, String(e.started));
    const meta = await e.get('/v2/models/mnist');
    assert.deepEqual(meta.body.versions, ['1.0.0', '1.1.0']);
    for (const v of ['1.0.0', '1.1.0']) {
      assert.equal((await e.get(`/v2/models/mnist/versions/${v}`)).status, 200, v);
      const ready = await e.get(`/v2/models/mnist/versions/${v}/ready`);
      assert.deepEqual([ready.status, ready.body.ready], [200, true], v);
    }
    // Interleaved, all at once: each request is answered by its version's own model and queue.
    const order = Array.from({ length: 40 }, (_, i) => (i % 2 ? '1.1.0' : '1.0.0'));
    const answers = await Promise.all(order.map((v) => e.infer(v)));
    answers.forEach((a, i) => assertAnswer(a, order[i], `concurrent request ${i} (${order[i]})`));
    assertAnswer(await e.infer(null), '1.1.0', 'no version: the newest of the list');
    const unknown = await e.infer('9.9.9');
    assert.deepEqual([unknown.status, unknown.body.code], [404, 'unknown_version']);
    assert.match(unknown.body.error, /no version 9\.9\.9.*1\.0\.0, 1\.1\.0/);
    for (const path of ['/v2/models/mnist/versions/1.2.0/ready', '/v2/models/mnist/versions/1.2.0/config', '/v2/models/mnist/versions/1.2.0']) {
      const r = await e.get(path);
      assert.deepEqual([r.status, r.body.code], [404, 'unknown_version'], path);
    }
    // Triton's configuration states the policy, at every version's route.
    for (const path of ['/v2/models/mnist/config', '/v2/models/mnist/versions/1.0.0/config']) {
      const config = await e.get(path);
      assert.equal(config.status, 200, path);
      assert.deepEqual(config.body.version_policy, { specific: { versions: ['1.0.0', '1.1.0'] } }, path);
    }
    // Every per-model series is labelled by the version that answered.
    const metrics = await e.text('/metrics');
    for (const v of ['1.0.0', '1.1.0']) {
      const labels = { model: 'mnist', version: v };
      assert.equal(series(metrics, 'brasa_requests_total', { ...labels, outcome: 'ok' }), v === '1.1.0' ? 21 : 20, `${v}:\n${metrics}`);
      assert.equal(series(metrics, 'brasa_inferences_total', labels), v === '1.1.0' ? 21 : 20, v);
      assert.equal(series(metrics, 'brasa_model_ready', labels), 1, v);
      for (const family of ['brasa_compute_seconds_count', 'brasa_batch_size_count', 'brasa_queue_wait_seconds_count', 'brasa_request_duration_seconds_count']) {
        assert.ok(series(metrics, family, labels) > 0, `${family} ${v}`);
      }
      assert.ok(series(metrics, 'brasa_queue_rows', labels) !== null, `brasa_queue_rows ${v}`);
      assert.ok(series(metrics, 'brasa_cache_misses_total', labels) >= 1, `brasa_cache_misses_total ${v}`);
    }
    // The unknown version counts against the model, under no version.
    assert.equal(series(metrics, 'brasa_requests_total', { model: 'mnist', version: '', outcome: 'unknown_version' }), 1, metrics);
    // Triton's statistics, per version.
    const stats = await e.get('/v2/models/mnist/stats');
    assert.deepEqual(stats.body.model_stats.map((s) => [s.version, s.inference_count]), [['1.0.0', 20], ['1.1.0', 21]]);
    const one = await e.get('/v2/models/mnist/versions/1.0.0/stats');
    assert.deepEqual(one.body.model_stats.map((s) => s.version), ['1.0.0']);
  } finally {
    e.close();
  }
});

test('the latest N published: 1 serves the newest only, 2 both; a new publication moves the list', async () => {
  const one = await endpoint({ latest: 1 });
  try {
    assert.equal(one.started, null, String(one.started));
    assert.deepEqual((await one.get('/v2/models/mnist')).body.versions, ['1.1.0']);
    assertAnswer(await one.infer(null), '1.1.0');
    assertAnswer(await one.infer('1.1.0'), '1.1.0');
    assert.equal((await one.infer('1.0.0')).status, 404);
    assert.deepEqual((await one.get('/v2/models/mnist/config')).body.version_policy, { latest: { num_versions: 1 } });
  } finally {
    one.close();
  }
  // A registry of its own, to publish into.
  const dir = mkdtempSync(join(tmpdir(), 'brasa-versions-latest-'));
  cpSync(registry.dir, dir, { recursive: true });
  const own = await serve(dir);
  const two = await endpoint({ latest: 2 }, { updateInterval: 1 }, own.url);
  try {
    assert.equal(two.started, null, String(two.started));
    assert.deepEqual((await two.get('/v2/models/mnist')).body.versions, ['1.0.0', '1.1.0']);
    const [a, b] = await Promise.all([two.infer('1.0.0'), two.infer('1.1.0')]);
    assertAnswer(a, '1.0.0');
    assertAnswer(b, '1.1.0');
    assert.deepEqual((await two.get('/v2/models/mnist/versions/1.0.0/config')).body.version_policy, { latest: { num_versions: 2 } });
    // 1.2.0 (1.0.0's weights again, so numpy's 1.0.0 logits) is published: the next update
    // check reads the list, loads 1.2.0 and retires 1.0.0.
    const args = publishArgs('1.2.0', weightsPath(), { notes: 'republished' }).map((arg) => (arg === goldenPath('1.2.0') ? goldenPath('1.0.0') : arg));
    execFileSync(CLI, ['registry', '--registry', dir, ...args], { stdio: 'pipe' });
    let versions = [];
    for (let i = 0; i < 80 && versions.join() !== '1.1.0,1.2.0'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      versions = (await two.get('/v2/models/mnist')).body.versions;
    }
    assert.deepEqual(versions, ['1.1.0', '1.2.0']);
    const moved = await two.infer(null);
    assert.equal(moved.body.model_version, '1.2.0', JSON.stringify(moved.body));
    assert.ok(maxDiff(moved.body.outputs[0].data, v100) <= TOLERANCE);
    assertAnswer(await two.infer('1.1.0'), '1.1.0');
    const gone = await two.infer('1.0.0');
    assert.deepEqual([gone.status, gone.body.code], [404, 'unknown_version']);
  } finally {
    two.close();
    own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("no policy: the channel's one version, as before", async () => {
  const e = await endpoint({});
  try {
    assert.equal(e.started, null, String(e.started));
    assert.deepEqual((await e.get('/v2/models/mnist')).body.versions, ['1.0.0']);
    assertAnswer(await e.infer(null), '1.0.0');
    assert.deepEqual((await e.get('/v2/models/mnist/config')).body.version_policy, { latest: { num_versions: 1 } });
    assert.equal((await e.infer('1.1.0')).status, 404);
  } finally {
    e.close();
  }
});

test('a memory limit that fits one version: the least recently used unloads, a request loads its version again', async () => {
  // The instance's memory after a run of one version (it only grows, and all versions share
  // the instance), plus half a version's weights: one version fits beside a batch of 4, two do not.
  const probe = await endpoint({ versions: ['1.0.0'], maxBatch: 4 });
  assertAnswer(await probe.infer('1.0.0'), '1.0.0');
  const memory = series(await probe.text('/metrics'), 'brasa_wasm_memory_bytes', { version: '1.0.0' });
  probe.close();
  const manifest = JSON.parse(readFileSync(join(registry.dir, 'mnist/manifest.json'), 'utf8'));
  const weights = manifest.versions['1.0.0'].files[0].size;
  const limit = 24 * 1024 * 1024 + memory + Math.floor(weights / 2);
  const e = await endpoint({ versions: ['1.0.0', '1.1.0'], maxBatch: 4 }, { memoryLimitBytes: limit });
  try {
    assert.equal(e.started, null, String(e.started));
    // The newest is loaded first; the other waits to be asked for.
    assert.equal((await e.get('/v2/models/mnist/versions/1.1.0/ready')).status, 200);
    const parked = await e.get('/v2/models/mnist/versions/1.0.0/ready');
    assert.deepEqual([parked.status, parked.body.code], [503, 'not_ready'], JSON.stringify(parked.body));
    assert.match(parked.body.error, /1\.0\.0 is not loaded: 1 version of 1\.6 MiB of weights fit/);
    assert.equal((await e.get('/v2/health/ready')).status, 200, 'a version loaded on demand leaves the server ready');
    // Its metadata and configuration are stated all the same.
    assert.equal((await e.get('/v2/models/mnist/versions/1.0.0')).status, 200);
    assert.deepEqual((await e.get('/v2/models/mnist/versions/1.0.0/config')).body.version_policy, { specific: { versions: ['1.0.0', '1.1.0'] } });

    // Asked for, 1.0.0 is loaded in place of 1.1.0 (least recently used), and back.
    let t = performance.now();
    assertAnswer(await e.infer('1.0.0'), '1.0.0', '1.0.0 loaded on demand');
    const onDemandMs = performance.now() - t;
    const unloaded = await e.get('/v2/models/mnist/versions/1.1.0/ready');
    assert.equal(unloaded.status, 503);
    assert.match(unloaded.body.error, /1\.1\.0 was unloaded \(least recently used\) to make room/);
    assert.equal((await e.get('/v2/models/mnist/versions/1.0.0/ready')).status, 200);
    let metrics = await e.text('/metrics');
    assert.equal(series(metrics, 'brasa_model_ready', { version: '1.1.0' }), 0, metrics);
    assert.equal(series(metrics, 'brasa_model_ready', { version: '1.0.0' }), 1, metrics);
    t = performance.now();
    assertAnswer(await e.infer('1.0.0'), '1.0.0', '1.0.0 loaded');
    const loadedMs = performance.now() - t;
    // Reported, not asserted: the on-demand load shows in the latency of its request.
    console.log(`# versions report: ${JSON.stringify({ memoryLimitBytes: limit, weightsBytes: weights, onDemandMs: +onDemandMs.toFixed(1), loadedMs: +loadedMs.toFixed(1) })}`);
    assertAnswer(await e.infer('1.1.0'), '1.1.0', '1.1.0 loaded again');
    assertAnswer(await e.infer(null), '1.1.0', 'the default');
    assert.equal((await e.get('/v2/models/mnist/versions/1.0.0/ready')).status, 503);
    // Requests for both at once: each gets its own version's answer, or 503 with Retry-After
    // while the one loaded is busy; never another version's logits.
    const order = Array.from({ length: 12 }, (_, i) => (i % 2 ? '1.1.0' : '1.0.0'));
    const answers = await Promise.all(order.map((v) => e.infer(v)));
    answers.forEach((a, i) => {
      if (a.status === 503) {
        assert.equal(a.body.code, 'not_ready', JSON.stringify(a.body));
        assert.equal(a.headers.get('retry-after'), '1');
      } else assertAnswer(a, order[i], `mixed request ${i}`);
    });
    assert.ok(answers.some((a) => a.status === 200));
    metrics = await e.text('/metrics');
    for (const v of ['1.0.0', '1.1.0']) {
      assert.ok(series(metrics, 'brasa_requests_total', { version: v, outcome: 'ok' }) >= 2, `${v}:\n${metrics}`);
      // The on-demand loads are in the request latencies (histograms per version).
      assert.ok(series(metrics, 'brasa_request_duration_seconds_count', { version: v }) >= 2, v);
    }
    // The statistics of an unloaded version are kept.
    const stats = (await e.get('/v2/models/mnist/stats')).body.model_stats;
    assert.deepEqual(stats.map((s) => s.version), ['1.0.0', '1.1.0']);
    assert.ok(stats.every((s) => s.inference_count >= 2), JSON.stringify(stats));
  } finally {
    e.close();
  }
});

test('a version that fails its integrity check is not served, with the reason; the other is', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brasa-versions-bad-'));
  cpSync(registry.dir, dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'mnist/manifest.json'), 'utf8'));
  const file = join(dir, 'mnist', manifest.versions['1.1.0'].files[0].path);
  const bytes = readFileSync(file);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(file, bytes);
  const own = await serve(dir);
  const e = await endpoint({ versions: ['1.0.0', '1.1.0'] }, {}, own.url);
  try {
    assert.equal(e.started?.code, 'integrity', String(e.started));
    const bad = await e.infer('1.1.0');
    assert.deepEqual([bad.status, bad.body.code], [503, 'not_ready'], JSON.stringify(bad.body));
    assert.match(bad.body.error, /version 1\.1\.0 could not be loaded: .*(sha-?256|integrity)/i);
    assertAnswer(await e.infer('1.0.0'), '1.0.0');
    // The default leaves the refused version to the one before it.
    assertAnswer(await e.infer(null), '1.0.0', 'the default');
    const ready = await e.get('/v2/models/mnist/versions/1.1.0/ready');
    assert.equal(ready.status, 503);
    const health = await e.get('/v2/health/ready');
    assert.equal(health.status, 503);
    assert.match(health.body.reasons.join('\n'), /mnist 1\.1\.0: /);
  } finally {
    e.close();
    own.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad version policies are refused with invalid_spec', () => {
  const cases = [
    [{ versions: ['1.0.0'], latest: 2 }, /not both/],
    [{ versions: [] }, /non-empty list/],
    [{ versions: ['1.0'] }, /"1\.0", which is not a version/],
    [{ versions: ['1.0.0', '1.0.0'] }, /twice/],
    [{ latest: 0 }, /whole number/],
    [{ latest: 1, spec: 'mnist@canary' }, /leave it out/],
  ];
  for (const [served, message] of cases) {
    assert.throws(
      () => createHandler({ models: [{ model: mnist, ...served }], registry: upstream.url }),
      (err) => err.name === 'BrasaError' && err.code === 'invalid_spec' && message.test(err.message),
      JSON.stringify(served),
    );
  }
});
