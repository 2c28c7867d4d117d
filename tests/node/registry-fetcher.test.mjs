// The registry fetcher under Node 20: the package's Node entry, its file cache, against the
// fault proxy in front of the real `brasa serve`.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import * as brasa from 'brasa';

import { useFaultProxy } from '../fault-proxy.mjs';
import { runScenarios, SCENARIO_NAMES } from '../registry/scenarios.js';
import { expectedLogits } from '../support.mjs';

const under = useFaultProxy();
const caches = mkdtempSync(join(tmpdir(), 'brasa-node-caches-'));
after(() => rmSync(caches, { recursive: true, force: true }));

test('registry scenarios in Node (file cache)', async () => {
  const result = await runScenarios({
    brasa,
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
    const model = await brasa.loadModel('mnist@canary', { registry: under.registry.dir });
    assert.equal(model.version, '1.1.0');
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
