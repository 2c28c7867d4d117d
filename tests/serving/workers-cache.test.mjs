// What cannot persist on Workers is visible, and rollout identity can be pinned there.
//
// On workers.dev, Cloudflare's Cache API accepts every write and keeps nothing. Miniflare's
// `cache: false` does the same, so each start of workerd below is a cold isolate with an
// empty cache: the endpoint must say so (`brasa_cache_persistent` 0, a warning), and with a
// staged rollout on `stable` an isolate must not flip between versions when the worker pins
// its rollout identity (`BRASA_CLIENT_ID` → `load.clientId`).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { CLI, publishArgs, variantWeightsPath } from '../support.mjs';
import { makeServingRegistry } from './models.mjs';
import { bundleWorker, startWorkerd } from './runtimes.mjs';
import { serve } from '../support.mjs';

let registry;
let server;
let bundle;

before(async () => {
  registry = makeServingRegistry();
  const cli = (args) => execFileSync(CLI, ['registry', '--registry', registry.dir, ...args], { stdio: 'pipe' });
  // mnist 1.1.0 (other logits) to half of `stable`'s clients.
  cli(publishArgs('1.1.0', variantWeightsPath(), { notes: 'recalibrated output layer' }));
  cli(['rollout', '--model', 'mnist', '--channel', 'stable', '--version', '1.1.0', '--percent', '50']);
  server = await serve(registry.dir);
  bundle = bundleWorker();
});

after(async () => {
  await server?.stop();
  bundle?.remove();
  registry?.remove();
});

/** Start a cold isolate, ask which mnist version it serves and what /metrics says; stop it. */
async function coldStart(config) {
  const worker = await startWorkerd(bundle, server.url, config);
  try {
    const pixels = new Array(784).fill(0.5);
    const response = await fetch(`${worker.url}v2/models/mnist/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'pixels', shape: [1, 1, 28, 28], datatype: 'FP32', data: pixels }] }),
    });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    const metrics = await (await fetch(`${worker.url}metrics`)).text();
    const persistent = /^brasa_cache_persistent\{model="mnist"\} (\S+)$/m.exec(metrics)?.[1];
    return { version: body.model_version, persistent: persistent === undefined ? undefined : Number(persistent), metrics };
  } finally {
    await worker.stop();
  }
}

test('a Cache API that keeps nothing (workers.dev) is reported: brasa_cache_persistent 0', async () => {
  const lost = await coldStart({ cache: false });
  assert.equal(lost.persistent, 0, lost.metrics);
  // Where the cache keeps what it is given (a zone's cache), the gauge says so.
  const kept = await coldStart({});
  assert.equal(kept.persistent, 1, kept.metrics);
});

test('a pinned clientId keeps every cold isolate on the same side of a 50% rollout', async () => {
  const seen = new Map();
  // Different pinned ids land on both sides of the rollout (so the check below can fail)...
  for (const id of ['edge-a', 'edge-b', 'edge-c', 'edge-d', 'edge-e', 'edge-f', 'edge-g', 'edge-h']) {
    seen.set(id, (await coldStart({ cache: false, clientId: id })).version);
    if (new Set(seen.values()).size === 2) break;
  }
  assert.deepEqual(new Set(seen.values()), new Set(['1.0.0', '1.1.0']), `pinned ids all landed on one version: ${JSON.stringify([...seen])}`);
  // ...and each id gives its version again on every cold start, with nothing cached.
  for (const [id, version] of seen) {
    for (let i = 0; i < 2; i++) assert.equal((await coldStart({ cache: false, clientId: id })).version, version, `clientId ${id}, cold start ${i + 2}`);
  }
});
