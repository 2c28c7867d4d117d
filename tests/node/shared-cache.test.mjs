// Separate Node processes sharing one FileCache folder (issue 12, kind 7): one process's
// eviction never removes the files another live process serves, the fetcher's state is
// merged (not overwritten) across processes, and a crashed process's lock or lease never
// blocks the others for good. Each process is a real `node` running
// tests/node/shared-cache-process.mjs against a real `brasa serve` registry; answers are
// compared with the numpy reference logits.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

import { FileCache, loadModel } from 'brasa';

import { TOLERANCE, expectedLogits, loadPackage, makeRegistry, maxDiff, serve } from '../support.mjs';

const PROCESS = fileURLToPath(new URL('./shared-cache-process.mjs', import.meta.url));
const mnist = await loadPackage('mnist');
const expected = expectedLogits();
const temp = mkdtempSync(join(tmpdir(), 'brasa-shared-cache-'));
after(() => rmSync(temp, { recursive: true, force: true }));
let dirs = 0;
const cacheDir = () => join(temp, `cache-${dirs++}`);

/** A registry (1.0.0 on stable, 1.1.0 on canary) served by `brasa serve`, and each version's file name in the cache. */
async function registry() {
  const reg = makeRegistry(join(temp, `registry-${dirs++}`));
  const server = await serve(reg.dir);
  const manifest = JSON.parse(readFileSync(join(reg.dir, 'mnist/manifest.json'), 'utf8'));
  const file = (version) => `sha256-${manifest.versions[version].files[0].sha256}`;
  return { url: server.url, stop: server.stop, file };
}

/** Start a process with `plan`; `next()` resolves to its next message, `send()` writes a line to it. */
function start(plan) {
  const child = spawn(process.execPath, [PROCESS, JSON.stringify(plan)], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  return {
    child,
    exited,
    async next() {
      const { value, done } = await lines.next();
      if (done) throw new Error(`the process ended without answering: ${JSON.stringify(await exited)}`);
      const message = JSON.parse(value);
      if (message.error) throw new Error(`the process failed: ${message.error}: ${message.message}`);
      return message;
    },
    send: () => child.stdin.write('go\n'),
    stop() {
      child.kill();
      return exited;
    },
  };
}

function assertAnswers(message, version) {
  assert.equal(message.version, version, JSON.stringify(message));
  const want = version === '1.0.0' ? expected.v100 : expected.v110;
  assert.ok(maxDiff(message.logits, want) < TOLERANCE, `${message.spec}: logits ${message.logits} vs numpy ${want}`);
}

test("a small cache budget in one process never evicts what another serves; restarted during an outage it serves 1.0.0 from the cache", async () => {
  const reg = await registry();
  const dir = cacheDir();
  const a = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@stable', keep: true }], stay: true });
  try {
    assertAnswers(await a.next(), '1.0.0');
    // B, with room for almost nothing, adopts 1.1.0 and evicts what nobody holds.
    const b = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@canary', cacheBudget: 1 }] });
    assertAnswers(await b.next(), '1.1.0');
    assert.deepEqual(await b.exited, { code: 0, signal: null });
    assert.ok(existsSync(join(dir, reg.file('1.0.0'))), 'the file process A serves was evicted by process B');
  } finally {
    await a.stop();
    reg.stop();
  }
  // The registry is down: A, restarted, starts from the cache.
  const restarted = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@stable' }] });
  assertAnswers(await restarted.next(), '1.0.0');
  assert.deepEqual(await restarted.exited, { code: 0, signal: null });
});

test("two processes changing the fetcher's state at once: every process's versions are there afterwards", async () => {
  const reg = await registry();
  const dir = cacheDir();
  // Each loads one spec, waits until both have, then loads another: both change the state
  // while holding what they read of it before.
  const a = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@stable' }, { wait: true }, { spec: 'mnist@1.0.0' }] });
  const b = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@canary' }, { wait: true }, { spec: 'mnist@1.1.0' }] });
  try {
    assertAnswers(await a.next(), '1.0.0');
    assertAnswers(await b.next(), '1.1.0');
    a.send();
    b.send();
    assertAnswers(await a.next(), '1.0.0');
    assertAnswers(await b.next(), '1.1.0');
    assert.deepEqual(await a.exited, { code: 0, signal: null });
    assert.deepEqual(await b.exited, { code: 0, signal: null });
  } finally {
    a.child.kill();
    b.child.kill();
    reg.stop();
  }
  // Offline, each spec either process adopted loads its version from the cache.
  const offline = start({ dir, registry: reg.url, steps: ['mnist@stable', 'mnist@canary', 'mnist@1.0.0', 'mnist@1.1.0'].map((spec) => ({ spec })) });
  for (const version of ['1.0.0', '1.1.0', '1.0.0', '1.1.0']) {
    assertAnswers(await offline.next(), version);
  }
  assert.deepEqual(await offline.exited, { code: 0, signal: null });
});

test('a process killed while holding the cache lock does not block the others', async () => {
  const reg = await registry();
  const dir = cacheDir();
  try {
    const crashed = start({ dir, registry: reg.url, cacheOptions: { staleLockMs: 2000 }, steps: [{ crashInLock: true }] });
    assert.deepEqual(await crashed.next(), { locked: true });
    assert.deepEqual(await crashed.exited, { code: null, signal: 'SIGKILL' });
    // Loading takes the lock to record what it adopts: it waits out the dead holder's lock.
    const model = await loadModel('mnist@stable', { registry: reg.url, build: mnist, cache: new FileCache(dir, { staleLockMs: 2000 }), backend: 'cpu' });
    assert.equal(model.version, '1.0.0');
    assert.ok(maxDiff((await model.run(new Float32Array(expected.input))).logits.data, expected.v100) < TOLERANCE);
    model.dispose();
  } finally {
    reg.stop();
  }
  // It recorded what it adopted (under the lock it took over): offline, another process finds it.
  const offline = start({ dir, registry: reg.url, steps: [{ spec: 'mnist@stable' }] });
  assertAnswers(await offline.next(), '1.0.0');
  assert.deepEqual(await offline.exited, { code: 0, signal: null });
});

test("a killed process's lease on its files expires: then a small budget evicts them", async () => {
  const reg = await registry();
  const dir = cacheDir();
  try {
    const a = start({ dir, registry: reg.url, cacheOptions: { leaseMs: 1500 }, steps: [{ spec: 'mnist@stable', keep: true }], stay: true });
    assertAnswers(await a.next(), '1.0.0');
    a.child.kill('SIGKILL');
    await a.exited;
    // Its lease stays in the state, but only until it expires.
    let evicted = false;
    for (let attempt = 0; attempt < 60 && !evicted; attempt++) {
      const model = await loadModel('mnist@canary', { registry: reg.url, build: mnist, cache: new FileCache(dir), cacheBudget: 1, backend: 'cpu' });
      model.dispose();
      evicted = !existsSync(join(dir, reg.file('1.0.0')));
      if (!evicted) await sleep(250);
    }
    assert.ok(evicted, "the dead process's files were never evicted");
    assert.ok(existsSync(join(dir, reg.file('1.1.0'))));
  } finally {
    reg.stop();
  }
});

test('a process whose cache folder is removed after its models are disposed still exits when its work ends', async () => {
  const reg = await registry();
  try {
    const dir = cacheDir();
    // Lease renewals every second; the process's own work ends 3 s after the folder is gone.
    const code = `
      import { rmSync } from 'node:fs';
      import { FileCache, loadModel } from 'brasa';
      import { loadPackage } from ${JSON.stringify(new URL('../support.mjs', import.meta.url).href)};
      const cache = new FileCache(${JSON.stringify(dir)}, { leaseMs: 3000 });
      const model = await loadModel('mnist@stable', { registry: ${JSON.stringify(reg.url)}, build: await loadPackage('mnist'), cache, backend: 'cpu' });
      model.dispose();
      rmSync(${JSON.stringify(dir)}, { recursive: true, force: true });
      setTimeout(() => console.log('done'), 3000);`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    const started = Date.now();
    const exited = await Promise.race([new Promise((resolve) => child.on('exit', (c) => resolve(c))), sleep(25_000).then(() => 'still running')]);
    if (exited === 'still running') child.kill();
    // Before: a lease renewal polled for a lock in the missing folder, holding the process open.
    assert.equal(exited, 0, `the process did not exit (${Date.now() - started} ms): ${out}`);
    assert.match(out, /done/);
  } finally {
    await reg.stop();
  }
});
