// A transient fault never poisons a version, across processes (issue 12, kind 1): two real
// `node` processes, one after the other, load `mnist@stable` through the fault proxy in front
// of `brasa serve` with one FileCache folder. A download cut short on both of the first
// process's tries fails that load only: the second process downloads the file again and runs
// it (against the numpy reference). A file the registry serves tampered on both tries is
// refused, and the second process is told why without downloading it again.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { useFaultProxy } from '../fault-proxy.mjs';
import { ROOT, TOLERANCE, expectedLogits, maxDiff, packageDir } from '../support.mjs';

const under = useFaultProxy();
const temp = mkdtempSync(join(tmpdir(), 'brasa-transient-'));
after(() => rmSync(temp, { recursive: true, force: true }));

// One process: load, run the reference digit, print what happened as one JSON line.
const CHILD = `
const [brasaUrl, mnistUrl, argsJson] = process.argv.slice(1);
const { FileCache, loadModel } = await import(brasaUrl);
const mnist = (await import(mnistUrl)).default;
const { registry, dir, input } = JSON.parse(argsJson);
const events = [];
try {
  const model = await loadModel('mnist@stable', { registry, build: mnist, cache: new FileCache(dir), backend: 'cpu', onEvent: (e) => events.push(e) });
  const logits = [...(await model.run(Float32Array.from(input))).logits.data];
  console.log(JSON.stringify({ ok: true, version: model.version, logits, events }));
} catch (err) {
  console.log(JSON.stringify({ ok: false, code: err.code, message: err.message, events }));
}
`;

function loadInProcess(dir) {
  const args = [
    '--input-type=module',
    '-e',
    CHILD,
    pathToFileURL(join(ROOT, 'npm/dist/node.js')).href,
    pathToFileURL(join(packageDir('mnist'), 'index.js')).href,
    JSON.stringify({ registry: under.proxy.registry, dir, input: expectedLogits().input }),
  ];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: 120_000 }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout.trim().split('\n').at(-1))));
  });
}

const control = async (path, body) =>
  (await fetch(under.proxy.control + path, { method: path === 'log' ? 'GET' : 'POST', body: body && JSON.stringify(body) })).json();
const weightGets = async () => (await control('log')).filter((e) => e.method === 'GET' && e.path.includes('/files/'));

test('a download cut short in one process does not stop the next process on the same cache', async () => {
  const dir = join(temp, 'cut');
  await control('reset');
  await control('fault', { path: '/files/', truncate: 100_000, times: 2 });
  const first = await loadInProcess(dir);
  assert.equal(first.ok, false, JSON.stringify(first));
  assert.equal(first.code, 'network', first.message);
  assert.match(first.message, /100000 of the \d+ bytes/);
  assert.deepEqual(first.events.filter((e) => e.type === 'refused'), []);
  assert.equal((await weightGets()).length, 2);

  const second = await loadInProcess(dir);
  assert.equal(second.ok, true, JSON.stringify(second));
  assert.equal(second.version, '1.0.0');
  assert.ok(maxDiff(second.logits, expectedLogits().v100) < TOLERANCE, `logits ${second.logits}`);
  assert.equal((await weightGets()).length, 3, 'the second process did not download the file again');
});

test('a file the registry serves tampered is refused, and the next process is told why', async () => {
  const dir = join(temp, 'tampered');
  await control('reset');
  await control('fault', { path: '/files/', tamper: true });
  const first = await loadInProcess(dir);
  assert.equal(first.code, 'integrity', JSON.stringify(first));
  assert.match(first.message, /sha256 is [0-9a-f]{64}/);
  const refused = first.events.find((e) => e.type === 'refused');
  assert.equal(refused?.reason, first.message);

  await control('reset');
  const second = await loadInProcess(dir);
  assert.equal(second.code, 'integrity', JSON.stringify(second));
  assert.match(second.message, /refused earlier: .*sha256 is [0-9a-f]{64}/);
  assert.deepEqual(await weightGets(), [], 'a refused version was downloaded again');
});

test('refusals an earlier brasa wrote (a truncated download, a golden check on no named backend) no longer refuse; its invalid_weights still does', async () => {
  const { FileCache, loadModel } = await import(pathToFileURL(join(ROOT, 'npm/dist/node.js')).href);
  const mnist = (await import(pathToFileURL(join(packageDir('mnist'), 'index.js')).href)).default;
  const manifestUrl = `${under.proxy.registry}mnist/manifest.json`;
  const now = Date.now();
  const dir = join(temp, 'old-state');
  const old = {
    schema: 1,
    clientId: 'old-client',
    manifests: {},
    good: {},
    pending: {},
    rejected: {
      [`${manifestUrl}#1.0.0`]: { code: 'integrity', reason: 'integrity check failed for files/x.bpk: expected 1687592 bytes, got 100000', at: now },
      [`${manifestUrl}#1.1.0`]: { code: 'golden_check', reason: 'golden check failed: output differs by 7.6e-6 (tolerance 1e-7)', at: now },
    },
    files: {},
  };
  await new FileCache(dir).put('state.json', new TextEncoder().encode(JSON.stringify(old)));
  await control('reset');
  for (const spec of ['mnist@stable', 'mnist@canary']) {
    const model = await loadModel(spec, { registry: under.proxy.registry, build: mnist, cache: new FileCache(dir), backend: 'cpu' });
    assert.equal(model.version, spec.endsWith('stable') ? '1.0.0' : '1.1.0');
    model.dispose();
  }
  // A version whose weights did not load is bad everywhere, whoever wrote that down.
  const other = join(temp, 'old-state-weights');
  old.rejected = { [`${manifestUrl}#1.0.0`]: { code: 'invalid_weights', reason: 'the weights are not this model', at: now } };
  await new FileCache(other).put('state.json', new TextEncoder().encode(JSON.stringify(old)));
  await assert.rejects(loadModel('mnist@stable', { registry: under.proxy.registry, build: mnist, cache: new FileCache(other), backend: 'cpu' }), {
    code: 'invalid_weights',
    message: /refused earlier: the weights are not this model/,
  });
});

test('periodic update checks never pile up behind a slow registry, and stop with dispose', async () => {
  const { MemoryCache, loadModel } = await import(pathToFileURL(join(ROOT, 'npm/dist/node.js')).href);
  const mnist = (await import(pathToFileURL(join(packageDir('mnist'), 'index.js')).href)).default;
  await control('reset');
  let checks = 0;
  const onEvent = (e) => e.type === 'update-check' && checks++;
  const model = await loadModel('mnist@stable', { registry: under.proxy.registry, build: mnist, cache: new MemoryCache(), backend: 'cpu', updateInterval: 1000, onEvent });
  await model.updateCheck;
  // From now on the manifest takes 1.5 s to come while a tick comes every second: queued
  // ticks would run one check after another, on and on, after the model is gone too.
  await control('fault', { path: '/manifest.json', delayMs: 1500 });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(6000);
  model.dispose();
  const atDispose = checks;
  await sleep(4000);
  // Only the check in flight at dispose may still finish.
  assert.ok(checks - atDispose <= 1, `${checks - atDispose} update checks finished after dispose`);
  await assert.rejects(async () => model.checkForUpdate(), (e) => e.code === 'disposed');
});
