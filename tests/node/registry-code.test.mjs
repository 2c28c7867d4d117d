// A model's code versioned with its weights: `brasa registry publish --code` lists the
// package's compiled builds (and `--asset` named files such as a tokenizer) in the version,
// and `loadModel('name@channel', { registry })` with no package fetches, verifies, caches and
// runs the build it needs — under Node (the real CLI, a registry folder, a file cache), against
// the numpy references.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';

import * as brasa from 'brasa';

import { CACHE, CLI, expectedLogits, publishArgs, variantWeightsPath } from '../support.mjs';

const scratch = mkdtempSync(join(tmpdir(), 'brasa-code-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A registry with mnist 1.0.0 (with its code) on `stable`, 1.1.0 (weights only) on `canary`. */
function registry(name) {
  const dir = join(scratch, name);
  const cli = (args) => execFileSync(CLI, ['registry', '--registry', dir, ...args], { stdio: 'pipe' });
  cli(publishArgs('1.0.0', join(CACHE, 'models/mnist.bpk'), { channel: 'stable', code: true }));
  cli(publishArgs('1.1.0', variantWeightsPath(), { channel: 'canary' }));
  return { dir, manifest: () => JSON.parse(readFileSync(join(dir, 'mnist/manifest.json'), 'utf8')) };
}

const blank = { pixels: { dtype: 'float32', dims: [1, 1, 28, 28], data: new Float32Array(784) } };

function maxDiff(a, b) {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

test('no package: the version’s CPU build comes from the registry, verified and cached; nothing else is fetched; offline it runs from the cache', async () => {
  const reg = registry('plain');
  const v = reg.manifest().versions['1.0.0'];
  assert.deepEqual(Object.keys(v.builds).sort(), ['cpu', 'webgpu']);
  assert.equal(v.package.name, 'mnist');
  const cacheDir = join(scratch, 'cache-plain');
  const progress = [];
  const model = await brasa.loadModel('mnist@stable', { registry: reg.dir, cache: new brasa.FileCache(cacheDir), backend: 'cpu', onProgress: (p) => progress.push(p) });
  assert.equal(model.version, '1.0.0');
  assert.equal(model.backend, 'cpu');
  assert.deepEqual(model.signature, v.signature);
  const { input, v100 } = expectedLogits();
  const out = await model.run({ pixels: { dtype: 'float32', dims: [1, 1, 28, 28], data: Float32Array.from(input) } });
  assert.ok(maxDiff(out.logits.data, v100) < 1e-3, 'numpy logits');
  const files = new Set(progress.filter((p) => !p.fromCache).map((p) => p.file));
  assert.deepEqual([...files].sort(), [v.builds.cpu.glue.path, v.builds.cpu.wasm.path, v.files[0].path].sort(), 'the CPU build and the weights, nothing of WebGPU');
  model.dispose();

  // The registry gone: the cached version, code included, still loads.
  renameSync(reg.dir, `${reg.dir}-gone`);
  try {
    const offline = await brasa.loadModel('mnist@stable', { registry: reg.dir, cache: new brasa.FileCache(cacheDir), backend: 'cpu' });
    assert.equal(offline.version, '1.0.0');
    assert.deepEqual((await offline.run(blank)).logits.dims, [1, 10]);
    offline.dispose();
  } finally {
    renameSync(`${reg.dir}-gone`, reg.dir);
  }
});

test('tampered code is an integrity error; a version without code names --code; a bundled package still works beside', async () => {
  const reg = registry('tampered');
  const v = reg.manifest().versions['1.0.0'];
  const wasm = join(reg.dir, 'mnist', v.builds.cpu.wasm.path);
  const good = readFileSync(wasm);
  const bad = Buffer.from(good);
  bad[bad.length >> 1] ^= 0xff;
  writeFileSync(wasm, bad);
  await assert.rejects(brasa.loadModel('mnist@stable', { registry: reg.dir, cache: new brasa.MemoryCache(), backend: 'cpu' }), (e) => e.code === 'integrity' && e.message.includes(v.builds.cpu.wasm.path));
  writeFileSync(wasm, good);
  await assert.rejects(brasa.loadModel('mnist@canary', { registry: reg.dir, cache: new brasa.MemoryCache(), backend: 'cpu' }), (e) => e.code === 'unknown_model' && /--code/.test(e.message) && /1\.1\.0/.test(e.message));
  const model = await brasa.loadModel('mnist@stable', { registry: reg.dir, cache: new brasa.MemoryCache(), backend: 'cpu' });
  assert.deepEqual((await model.run(blank)).logits.dims, [1, 10]);
  model.dispose();
});

test('assets: MiniLM from the registry alone, its tokenizer the version’s asset, q8 by default, f32 on request', async () => {
  const registryDir = join(CACHE, 'site/registry');
  const reference = JSON.parse(readFileSync(join(CACHE, 'fixtures/minilm-reference.json'), 'utf8'));
  const check = async (options, floor) => {
    const model = await brasa.loadModel('minilm@stable', { registry: registryDir, cache: new brasa.MemoryCache(), backend: 'cpu', ...options });
    try {
      assert.deepEqual(model.assets.sort(), ['tokenizer', 'tokenizer_config']);
      const embedder = await brasa.createEmbedder(model);
      const sentences = reference.sentences.slice(0, 6);
      const { data } = await embedder.embed(sentences);
      let worst = 1;
      sentences.forEach((_, k) => {
        const row = data.subarray(k * 384, (k + 1) * 384);
        worst = Math.min(worst, row.reduce((s, x, i) => s + x * reference.embeddings[k][i], 0));
      });
      assert.ok(worst >= floor, `${model.release.dtype}: worst cosine ${worst}`);
      await assert.rejects(model.asset('vocab'), (e) => e.code === 'not_found' && /tokenizer/.test(e.message));
      return model.release.dtype;
    } finally {
      model.dispose();
    }
  };
  assert.equal(await check({}, 0.999), 'q8');
  assert.equal(await check({ dtype: 'f32' }, 0.9999), 'f32');
});
