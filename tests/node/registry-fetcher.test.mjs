// The registry fetcher under Node 20: the package's Node entry, its file cache, the MNIST
// model package, against the fault proxy in front of the real `brasa serve`.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as brasa from 'brasa';

import { useFaultProxy } from '../fault-proxy.mjs';
import { runScenarios, SCENARIO_NAMES } from '../registry/scenarios.js';
import { expectedLogits, loadPackage } from '../support.mjs';

const mnist = await loadPackage('mnist');
const under = useFaultProxy();
const caches = mkdtempSync(join(tmpdir(), 'brasa-node-caches-'));
after(() => rmSync(caches, { recursive: true, force: true }));

test('registry scenarios in Node (file cache)', async () => {
  const result = await runScenarios({
    brasa,
    mnist,
    registry: under.proxy.registry,
    control: under.proxy.control,
    newCache: (name) => new brasa.FileCache(join(caches, name.replace(/[^a-z0-9]+/gi, '-'))),
    expected: expectedLogits(),
    options: { backend: 'cpu' },
  });
  assert.deepEqual(result.failed, [], result.failed.map((f) => `${f.name}: ${f.error}`).join('\n\n'));
  assert.deepEqual(result.passed, SCENARIO_NAMES);
});

test('the default Node cache is a folder under XDG_CACHE_HOME, and a local folder works as a registry', async () => {
  const home = mkdtempSync(join(tmpdir(), 'brasa-xdg-'));
  const saved = process.env.XDG_CACHE_HOME;
  process.env.XDG_CACHE_HOME = home;
  try {
    // A registry on disk: no server at all.
    const model = await brasa.loadModel('mnist@canary', { registry: under.registry.dir, build: mnist });
    assert.equal(model.version, '1.1.0');
    // The package alone follows its stable channel.
    const stable = await brasa.loadModel(mnist, { registry: under.registry.dir });
    assert.equal(stable.version, '1.0.0');
    assert.equal(stable.channel, 'stable');
    stable.dispose();
    const files = readdirSync(join(home, 'brasa/models'));
    assert.ok(files.includes('state.json'), files.join(','));
    assert.ok(files.some((f) => /^sha256-[0-9a-f]{64}$/.test(f)), files.join(','));
    model.dispose();
  } finally {
    if (saved === undefined) delete process.env.XDG_CACHE_HOME;
    else process.env.XDG_CACHE_HOME = saved;
    rmSync(home, { recursive: true, force: true });
  }
});

test('a manifest naming a file larger than a wasm32 instance can hold is invalid_manifest, not a failed download', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brasa-huge-'));
  try {
    cpSync(under.registry.dir, dir, { recursive: true });
    const path = join(dir, 'mnist/manifest.json');
    const m = JSON.parse(readFileSync(path, 'utf8'));
    const file = m.versions['1.0.0'].files[0];
    file.size = 10 ** 12;
    writeFileSync(path, JSON.stringify(m));
    await assert.rejects(
      brasa.loadModel('mnist@1.0.0', { registry: dir, build: mnist, cache: new brasa.MemoryCache(), backend: 'cpu' }),
      (e) => e.code === 'invalid_manifest' && e.message.includes(file.path) && /4 GiB/.test(e.message),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('model.metrics(): runs, errors, latency and batch histograms, cache hits and misses; a run event per run', async () => {
  const cache = new brasa.MemoryCache();
  const cold = await brasa.loadModel('mnist@stable', { registry: under.proxy.registry, build: mnist, cache, backend: 'cpu' });
  const warm = await brasa.loadModel('mnist@stable', { registry: under.proxy.registry, build: mnist, cache, backend: 'cpu' });
  const runs = [];
  warm.addEventListener('run', (e) => runs.push(e.detail));
  await warm.run(new Float32Array(784 * 3));
  await warm.run(new Float32Array(784));
  await assert.rejects(warm.run(new Float32Array(5)), { code: 'invalid_input' });
  const m = warm.metrics();
  const value = (name, pred = () => true) => (m[name] ?? []).filter((s) => pred(s.labels)).reduce((sum, s) => sum + (s.value ?? s.count), 0);
  assert.equal(value('brasa_requests_total', (l) => l.outcome === 'ok' && l.version === '1.0.0' && l.backend === 'cpu'), 2);
  assert.equal(value('brasa_request_errors_total', (l) => l.code === 'invalid_input'), 1);
  assert.equal(value('brasa_inferences_total'), 4);
  assert.equal(m.brasa_batch_size[0].sum, 4);
  assert.equal(value('brasa_cache_hits_total'), 1);
  assert.equal(value('brasa_cache_misses_total'), 0);
  assert.equal(cold.metrics().brasa_fetched_bytes_total[0].value, cold.release.files[0].size);
  assert.deepEqual(runs.map((r) => r.batch), [3, 1]);
  assert.match(warm.metricsText(), /^brasa_compute_seconds_count\{backend="cpu",model="mnist",version="1.0.0"\} 2$/m);
  cold.dispose();
  warm.dispose();
});

test('a version of another architecture on the channel is refused as incompatible before any download; the client stays on its last good version', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'brasa-arch-'));
  try {
    cpSync(under.registry.dir, dir, { recursive: true });
    const path = join(dir, 'mnist/manifest.json');
    const m = JSON.parse(readFileSync(path, 'utf8'));
    assert.ok(m.versions['1.0.0'].signature, 'publish --build records the signature');
    const cache = new brasa.MemoryCache();
    const events = [];
    const progress = [];
    const model = await brasa.loadModel('mnist@stable', { registry: dir, build: mnist, cache, backend: 'cpu', onEvent: (e) => events.push(e), onProgress: (p) => progress.push(p) });
    assert.equal(model.version, '1.0.0');

    // 2.0.0: a new architecture (twelve classes) published on `stable`. Its weights file
    // does not even exist: a client that tried to download it would fail with `network`.
    const next = structuredClone(m.versions['1.0.0']);
    next.signature.outputs[0].dims = ['batch', 12];
    next.files[0].path = 'files/never-fetched.bpk';
    // Its code would be another build (this test's client bundles the old one).
    delete next.builds;
    delete next.package;
    m.versions['2.0.0'] = next;
    m.channels.stable.version = '2.0.0';
    writeFileSync(path, JSON.stringify(m));

    const check = await model.checkForUpdate();
    assert.equal(check.outcome, 'rejected');
    assert.match(check.reason, /another signature/);
    assert.equal(model.version, '1.0.0');
    const rollback = events.find((e) => e.type === 'rollback');
    assert.equal(rollback?.code, 'incompatible');
    assert.ok(!progress.some((p) => p.version === '2.0.0'), 'nothing of 2.0.0 was downloaded');
    const answer = await model.run({ pixels: { dtype: 'float32', dims: [1, 1, 28, 28], data: new Float32Array(784) } });
    assert.deepEqual(answer.logits.dims, [1, 10]);
    model.dispose();

    // A new client asking the registry first (no cached version to start from) gets the
    // typed error; one that has the old version cached stays on it, saying why.
    await assert.rejects(
      brasa.loadModel('mnist@stable', { registry: dir, build: mnist, cache: new brasa.MemoryCache(), backend: 'cpu' }),
      (e) => e.code === 'incompatible' && /2\.0\.0/.test(e.message),
    );
    const later = [];
    const again = await brasa.loadModel('mnist@stable', { registry: dir, build: mnist, cache, backend: 'cpu', freshness: 'network-first', onEvent: (e) => later.push(e) });
    assert.equal(again.version, '1.0.0');
    assert.ok(later.some((e) => (e.type === 'rollback' && e.code === 'incompatible') || (e.type === 'update-check' && e.outcome === 'rejected')), JSON.stringify(later));
    again.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
