// The registry logic as the JS fetcher calls it: compiled into every model build (here the
// MNIST package's CPU build), fed a manifest written by `brasa registry`.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { CLI, goldenPath, packageDir, publishArgs, weightsPath } from '../support.mjs';

const glue = await import(pathToFileURL(join(packageDir('mnist'), 'cpu/model.js')).href);
glue.initSync({ module: readFileSync(join(packageDir('mnist'), 'cpu/model_bg.wasm')) });

const dir = mkdtempSync(join(tmpdir(), 'brasa-registry-wasm-'));
let manifest;
const cli = (...args) => execFileSync(CLI, ['registry', '--registry', dir, ...args], { stdio: 'pipe' });

before(() => {
  // Every version carries 1.0.0's weights, so 1.0.0's golden check holds for all of them.
  const publish = (version, channel) => {
    const args = publishArgs('1.0.0', weightsPath(), { channel });
    args[args.indexOf('--version') + 1] = version;
    cli(...args);
  };
  publish('1.0.0', 'stable');
  publish('1.1.0', 'canary');
  publish('2.0.0-rc.1');
  cli('rollout', '--model', 'mnist', '--channel', 'stable', '--version', '1.1.0', '--percent', '25');
  manifest = readFileSync(join(dir, 'mnist/manifest.json'), 'utf8');
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('the manifest is schema 2 and records each version\'s golden check by tensor name', () => {
  const m = JSON.parse(manifest);
  assert.equal(m.schema, 2);
  const golden = m.versions['1.0.0'].golden;
  assert.deepEqual(golden.inputs.map((t) => t.name), ['pixels']);
  assert.deepEqual(golden.outputs.map((t) => t.name), ['logits']);
  assert.equal(golden.inputs[0].dtype, 'float32');
  assert.equal(golden.outputs[0].dtype, 'float32');
  assert.ok(golden.tolerance > 0, `tolerance ${golden.tolerance}`);
  assert.equal(typeof golden.source, 'string');
  // What was published is the golden file given.
  const given = JSON.parse(readFileSync(goldenPath('1.0.0'), 'utf8'));
  assert.deepEqual(golden.outputs[0].data, given.outputs[0].data);
});

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
  const logits = stable.golden.outputs.find((t) => t.name === 'logits');
  assert.equal(logits.dims.at(-1), 10);
  assert.equal(logits.data.length, logits.dims.reduce((a, b) => a * b, 1));
  const pixels = stable.golden.inputs.find((t) => t.name === 'pixels');
  assert.deepEqual(pixels.dims.slice(1), [1, 28, 28]);
  assert.equal(pixels.dims[0], logits.dims[0]);
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
  assert.deepEqual(code(() => glue.registryResolve('{"schema":2', 'mnist', 'c')), ['BrasaError', 'invalid_manifest']);
  const dangling = JSON.parse(manifest);
  dangling.channels.stable.version = '9.9.9';
  assert.deepEqual(code(() => glue.registryResolve(JSON.stringify(dangling), 'mnist', 'c')), ['BrasaError', 'invalid_manifest']);
  // A file no wasm32 instance can hold (4 GiB or more) is refused with the manifest, naming it.
  const huge = JSON.parse(manifest);
  huge.versions['1.0.0'].files[0].size = 10 ** 12;
  assert.throws(
    () => glue.registryResolve(JSON.stringify(huge), 'mnist@1.0.0', 'c'),
    (e) => e.code === 'invalid_manifest' && e.message.includes(huge.versions['1.0.0'].files[0].path) && /4 GiB/.test(e.message),
  );
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

test('golden checks: the feeds run on the model, its fetches pass; wrong, missing or misshapen outputs fail', async () => {
  const golden = glue.registryResolve(manifest, 'mnist@1.0.0', 'c').golden;
  const feeds = glue.registryGoldenFeeds(golden);
  assert.deepEqual(feeds.map((t) => t.name), ['pixels']);
  assert.ok(feeds[0].data instanceof Float32Array);
  const model = await glue.loadModel(new Uint8Array(readFileSync(weightsPath())), 'cpu');
  try {
    const fetches = await model.run(feeds);
    const pass = glue.registryGoldenCheck(golden, fetches);
    assert.equal(pass.passed, true, pass.reason);
    assert.ok(pass.maxAbsDiff <= golden.tolerance);
    assert.equal(pass.reason, '');

    const logits = fetches.find((t) => t.name === 'logits');
    const moved = { ...logits, data: Float32Array.from(logits.data, (v, i) => (i === 0 ? v + 0.5 : v)) };
    const wrong = glue.registryGoldenCheck(golden, fetches.map((t) => (t.name === 'logits' ? moved : t)));
    assert.equal(wrong.passed, false);
    assert.ok(wrong.maxAbsDiff >= 0.4, String(wrong.maxAbsDiff));
    assert.match(wrong.reason, /tolerance/);

    const missing = glue.registryGoldenCheck(golden, []);
    assert.equal(missing.passed, false);
    assert.match(missing.reason, /`logits`/);

    const misshapen = glue.registryGoldenCheck(golden, [{ ...logits, dims: [logits.data.length] }]);
    assert.equal(misshapen.passed, false);
    assert.match(misshapen.reason, /dims/);
  } finally {
    model.free();
  }
  // The recalibrated weights (1.1.0) do not give 1.0.0's golden outputs.
  const golden110 = JSON.parse(readFileSync(goldenPath('1.1.0'), 'utf8'));
  assert.notDeepEqual(golden110.outputs[0].data, golden.outputs[0].data);
});
