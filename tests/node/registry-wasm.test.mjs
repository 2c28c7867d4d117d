// The registry logic as the JS fetcher will call it: compiled into the wasm build, fed a
// manifest written by `brasa registry`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CLI, ROOT, weightsPath } from '../support.mjs';

const glue = await import(join(ROOT, 'npm/wasm/cpu/brasa_wasm.js'));
glue.initSync({ module: readFileSync(join(ROOT, 'npm/wasm/cpu/brasa_wasm_bg.wasm')) });

const dir = mkdtempSync(join(tmpdir(), 'brasa-registry-wasm-'));
let manifest;
const cli = (...args) => execFileSync(CLI, ['registry', '--registry', dir, ...args]);

before(() => {
  cli('publish', '--version', '1.0.0', '--weights', weightsPath(), '--channel', 'stable');
  cli('publish', '--version', '1.1.0', '--weights', weightsPath(), '--channel', 'canary');
  cli('publish', '--version', '2.0.0-rc.1', '--weights', weightsPath());
  cli('rollout', '--channel', 'stable', '--version', '1.1.0', '--percent', '25');
  manifest = readFileSync(join(dir, 'mnist/manifest.json'), 'utf8');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('specs resolve as the Rust registry logic says', () => {
  const r = (spec, id = 'client-a') => glue.registryResolve(manifest, spec, id);
  assert.equal(r('mnist@canary').version, '1.1.0');
  assert.equal(r('mnist@1.0.0').version, '1.0.0');
  assert.equal(r('mnist@^1').version, '1.1.0');
  assert.equal(r('mnist@2.0.0-rc.1').version, '2.0.0-rc.1');
  const stable = r('mnist');
  assert.equal(stable.channel, 'stable');
  assert.equal(stable.version, stable.viaRollout ? '1.1.0' : '1.0.0');
  assert.equal(stable.viaRollout, stable.bucket < 25);
  assert.equal(stable.files[0].size, readFileSync(weightsPath()).length);
  assert.equal(stable.golden.expected.length, 10);
});

test('a rollout reaches its share of clients, each always the same way', () => {
  let inside = 0;
  for (let i = 0; i < 4000; i++) {
    const first = glue.registryResolve(manifest, 'mnist@stable', `client-${i}`);
    const again = glue.registryResolve(manifest, 'mnist@stable', `client-${i}`);
    assert.equal(first.version, again.version);
    if (first.viaRollout) inside++;
  }
  assert.ok(Math.abs(inside / 4000 - 0.25) < 0.03, `${inside} of 4000 in a 25% rollout`);
});

test('bad specs, unknown channels and broken manifests are typed errors', () => {
  const code = (fn) => { try { fn(); return null; } catch (e) { return [e.name, e.code]; } };
  assert.deepEqual(code(() => glue.registryResolve(manifest, 'mnist@', 'c')), ['BrasaError', 'invalid_spec']);
  assert.deepEqual(code(() => glue.registryResolve(manifest, 'mnist@beta', 'c')), ['BrasaError', 'not_found']);
  assert.deepEqual(code(() => glue.registryResolve(manifest, 'mnist@^3', 'c')), ['BrasaError', 'not_found']);
  assert.deepEqual(code(() => glue.registryResolve('{"schema":1', 'mnist', 'c')), ['BrasaError', 'invalid_manifest']);
  const dangling = JSON.parse(manifest);
  dangling.channels.stable.version = '9.9.9';
  assert.deepEqual(code(() => glue.registryResolve(JSON.stringify(dangling), 'mnist', 'c')), ['BrasaError', 'invalid_manifest']);
});

test('file integrity: intact bytes pass, truncated or tampered bytes do not', () => {
  const entry = glue.registryResolve(manifest, 'mnist@1.0.0', 'c').files[0];
  const bytes = new Uint8Array(readFileSync(weightsPath()));
  glue.registryVerify(entry, bytes);
  assert.throws(() => glue.registryVerify(entry, bytes.subarray(0, 100)), (e) => e.code === 'integrity');
  const tampered = bytes.slice();
  tampered[5000] ^= 1;
  assert.throws(() => glue.registryVerify(entry, tampered), (e) => e.code === 'integrity' && /sha256/.test(e.message));
});
