// f16 and q8 weights (`brasa quantize`, `brasa registry publish --dtype`) under Node 20: the
// MNIST and SqueezeNet packages' CPU builds load them through the public API and answer like
// the independent references (numpy; onnx's evaluator) within measured tolerances, with the
// same top-1; tampered q8 files are `invalid_weights` naming the tensor; a registry version
// lists several dtypes and a client downloads only the one it chooses (`dtype` option).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { BrasaError, FileCache, Tensor, loadModel } from 'brasa';
import { CACHE, CLI, goldenPath, loadPackage, packageDir, reference, weightsPath } from '../support.mjs';

const mnist = await loadPackage('mnist');
const squeezenet = await loadPackage('squeezenet');
const work = mkdtempSync(join(tmpdir(), 'brasa-quantized-'));
after(() => rmSync(work, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 }));

const isCode = (code, pattern) => (e) => e instanceof BrasaError && e.code === code && (!pattern || pattern.test(e.message));
const argmax = (a) => a.reduce((best, v, i) => (v > a[best] ? i : best), 0);

/** `brasa quantize` (the real CLI) of `input` to `dtype`; the path it wrote. */
function quantize(input, dtype, name) {
  const out = join(work, `${name}-${dtype}.bpk`);
  execFileSync(CLI, ['quantize', input, '--dtype', dtype, '-o', out], { stdio: 'pipe' });
  return out;
}

/** Largest |Δ| against the reference and how many items keep their top-1, over `items`. */
async function compare(model, items) {
  let maxAbsDiff = 0;
  let agree = 0;
  for (const { feeds, expected } of items) {
    const got = Array.from(Object.values(await model.run(feeds))[0].data);
    for (let i = 0; i < got.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(got[i] - expected[i]));
    if (argmax(got) === argmax(expected)) agree++;
  }
  return { maxAbsDiff, agree };
}

const MNIST_ITEMS = reference().items.map((item) => ({
  feeds: { pixels: new Tensor('float32', Float32Array.from(item.pixels.flat(3)), [1, 1, 28, 28]) },
  expected: item.logits.flat(),
}));

// Measured on this project's machine (22 MNIST items with logits up to ±270; SqueezeNet's 1000
// softmax probabilities on two seeded images): f16 0.027 and 4.7e-4, q8 0.57 and 0.015. The
// tolerances leave about 3x headroom; f32 agrees to 7e-5.
const TOLERANCE = { mnist: { f16: 0.1, q8: 1.5 }, squeezenet: { f16: 2e-3, q8: 0.05 } };

for (const dtype of ['f16', 'q8']) {
  test(`MNIST ${dtype} weights answer like numpy's f32 forward pass, top-1 on every item`, async () => {
    const path = quantize(weightsPath(), dtype, 'mnist');
    const size = readFileSync(path).length;
    assert.ok(size < readFileSync(weightsPath()).length * (dtype === 'f16' ? 0.51 : 0.28), `${dtype}: ${size} bytes`);
    const model = await loadModel(mnist, { weights: path, backend: 'cpu' });
    const { maxAbsDiff, agree } = await compare(model, MNIST_ITEMS);
    assert.ok(maxAbsDiff <= TOLERANCE.mnist[dtype], `max |Δ| ${maxAbsDiff}`);
    assert.ok(maxAbsDiff > 0, 'quantised weights cannot give f32 outputs bit for bit: were they quantised?');
    assert.equal(agree, MNIST_ITEMS.length);
    // setWeights takes them too, and back to f32 gives the reference again.
    await model.setWeights(readFileSync(weightsPath()));
    assert.ok((await compare(model, MNIST_ITEMS)).maxAbsDiff < 1e-4);
    await model.setWeights(readFileSync(path));
    assert.equal((await compare(model, MNIST_ITEMS)).maxAbsDiff, maxAbsDiff);
    model.dispose();
  });

  test(`SqueezeNet ${dtype} weights answer like onnx's reference evaluator, same top-1`, async () => {
    const dir = join(CACHE, 'models/squeezenet');
    const ref = JSON.parse(readFileSync(join(dir, 'squeezenet-reference.json'), 'utf8'));
    const items = ref.inputs.map((x, i) => ({
      feeds: { [squeezenet.signature.inputs[0].name]: new Tensor('float32', Float32Array.from(x.flat(Infinity)), [1, ...ref.input_shape]) },
      expected: ref.outputs[i].flat(Infinity),
    }));
    const model = await loadModel(squeezenet, { weights: quantize(join(dir, 'squeezenet.bpk'), dtype, 'squeezenet'), backend: 'cpu' });
    const { maxAbsDiff, agree } = await compare(model, items);
    assert.ok(maxAbsDiff <= TOLERANCE.squeezenet[dtype] && maxAbsDiff > 0, `max |Δ| ${maxAbsDiff}`);
    assert.equal(agree, items.length);
    model.dispose();
  });
}

test('tampered q8 weights are invalid_weights naming the tensor; the model keeps its weights', async () => {
  const q8 = readFileSync(quantize(weightsPath(), 'q8', 'mnist-tamper'));
  // The data section ends with the last tensor by name, fc2.weight (q8): its last scale.
  const tampered = (value) => {
    const bytes = Uint8Array.from(q8);
    new DataView(bytes.buffer).setFloat32(bytes.length - 4, value, true);
    return bytes;
  };
  const model = await loadModel(mnist, { weights: q8, backend: 'cpu' });
  const before = await compare(model, MNIST_ITEMS);
  for (const [value, pattern] of [[NaN, /non-finite value in tensor `fc2.weight`/], [Infinity, /`fc2.weight`/], [-0.25, /q8 tensor `fc2.weight`.*scales must be positive/]]) {
    await assert.rejects(loadModel(mnist, { weights: tampered(value), backend: 'cpu' }), isCode('invalid_weights', pattern));
    await assert.rejects(model.setWeights(tampered(value)), isCode('invalid_weights', pattern));
  }
  // Cut short by one scale: the tensor no longer fits its layout (or the container says so).
  await assert.rejects(loadModel(mnist, { weights: q8.subarray(0, q8.length - 4), backend: 'cpu' }), isCode('invalid_weights'));
  assert.deepEqual(await compare(model, MNIST_ITEMS), before);
  model.dispose();
});

test('brasa quantize refuses what it cannot do, naming it', () => {
  const q8 = quantize(weightsPath(), 'q8', 'mnist-again');
  const again = spawnSync(CLI, ['quantize', q8, '--dtype', 'f16', '-o', join(work, 'x.bpk')], { encoding: 'utf8' });
  assert.notEqual(again.status, 0);
  assert.match(again.stderr, /holds q8 weights already: quantise the f32 weights/);
  const unknown = spawnSync(CLI, ['quantize', weightsPath(), '--dtype', 'int4', '-o', join(work, 'x.bpk')], { encoding: 'utf8' });
  assert.notEqual(unknown.status, 0);
  assert.match(unknown.stderr, /unknown weights dtype `int4`: expected f32, f16 or q8/);
  const inspect = execFileSync(CLI, ['inspect', q8], { encoding: 'utf8' });
  assert.match(inspect, /fc1\.weight\s+\[3136, 128\]\s+q8 \(block \[64\]\)/);
  assert.match(inspect, /fc1\.bias\s+\[128\]\s+float32/);
  assert.match(inspect, /421642 parameters, \d+ bytes, q8/);
});

/** A registry with mnist 1.0.0 published as f32, f16 and q8 (golden check, --build). */
function publishAll(dir, extra = []) {
  const args = ['registry', '--registry', dir, 'publish', '--model', 'mnist', '--version', '1.0.0', '--weights', weightsPath(),
    '--golden', goldenPath('1.0.0'), '--build', packageDir('mnist'), '--channel', 'stable', ...extra];
  return spawnSync(CLI, args, { encoding: 'utf8' });
}

test('publish --dtype lists each encoding with a measured golden tolerance; a client loads only the one it chooses', async () => {
  const dir = join(work, 'registry');
  const published = publishAll(dir, ['--dtype', 'f32,f16,q8']);
  assert.equal(published.status, 0, published.stderr);
  const manifest = JSON.parse(readFileSync(join(dir, 'mnist/manifest.json'), 'utf8'));
  const files = manifest.versions['1.0.0'].files;
  assert.deepEqual(files.map((f) => f.dtype), ['f32', 'f16', 'q8']);
  const golden = manifest.versions['1.0.0'].golden.tolerance;
  assert.equal(files[0].tolerance, undefined, 'f32 uses the version tolerance');
  for (const f of files.slice(1)) assert.ok(f.tolerance >= golden && f.tolerance <= 1, `${f.dtype}: ${f.tolerance}`);
  assert.ok(files[2].size < files[1].size && files[1].size < files[0].size);
  assert.match(published.stderr, /q8: largest golden difference [\d.e-]+, tolerance/);

  const load = async (dtype) => {
    const progress = [];
    const model = await loadModel('mnist@stable', {
      registry: dir, build: mnist, backend: 'cpu', cache: new FileCache(join(work, `cache-${dtype}`)),
      onProgress: (p) => progress.push(p.file), ...(dtype === 'default' ? {} : { dtype }),
    });
    return { model, fetched: [...new Set(progress)] };
  };
  for (const [dtype, want] of [['q8', 'q8'], ['f16', 'f16'], ['f32', 'f32'], ['auto', 'q8'], ['default', 'q8']]) {
    const { model, fetched } = await load(dtype);
    const file = files.find((f) => f.dtype === want);
    assert.equal(model.release.dtype, want, dtype);
    assert.deepEqual(fetched, [file.path], `${dtype}: only the chosen file is fetched`);
    assert.deepEqual(model.release.files.map((f) => f.dtype), [want]);
    assert.equal(Math.fround(model.release.golden.tolerance), Math.fround(file.tolerance ?? golden));
    const { maxAbsDiff, agree } = await compare(model, MNIST_ITEMS);
    assert.ok(maxAbsDiff <= (want === 'f32' ? 1e-4 : TOLERANCE.mnist[want]), `${dtype}: ${maxAbsDiff}`);
    assert.equal(agree, MNIST_ITEMS.length);
    model.dispose();
  }
  await assert.rejects(loadModel('mnist@stable', { registry: dir, build: mnist, dtype: 'int4', cache: new FileCache(join(work, 'cache-x')) }),
    isCode('invalid_spec', /invalid option `dtype`: must be one of 'f32', 'f16', 'q8', 'auto'/));

  // A version without the asked dtype: not_found, naming what it has.
  const only = join(work, 'registry-f32');
  assert.equal(publishAll(only).status, 0);
  await assert.rejects(loadModel('mnist@stable', { registry: only, build: mnist, dtype: 'q8', cache: new FileCache(join(work, 'cache-only')) }),
    isCode('not_found', /mnist@1\.0\.0 has no q8 weights; it has f32/));
  // A manifest from before dtypes (no `dtype`) reads as f32.
  const path = join(only, 'mnist/manifest.json');
  writeFileSync(path, readFileSync(path, 'utf8').replace(/,\s*"dtype": "f32"/, ''));
  assert.doesNotMatch(readFileSync(path, 'utf8'), /"dtype": "f32"/);
  const old = await loadModel('mnist@stable', { registry: only, build: mnist, cache: new FileCache(join(work, 'cache-old')) });
  assert.equal(old.release.dtype, 'f32');
  assert.ok((await compare(old, MNIST_ITEMS)).maxAbsDiff < 1e-4);
  old.dispose();
});

test('a tampered q8 file is an integrity error for q8 clients; f32 clients of the same version load', async () => {
  const dir = join(work, 'registry-tampered');
  assert.equal(publishAll(dir, ['--dtype', 'f32,q8']).status, 0);
  const manifest = JSON.parse(readFileSync(join(dir, 'mnist/manifest.json'), 'utf8'));
  const q8 = manifest.versions['1.0.0'].files.find((f) => f.dtype === 'q8');
  const file = join(dir, 'mnist', q8.path);
  const bytes = readFileSync(file);
  bytes[bytes.length - 2] ^= 0x40; // a scale's exponent: same size, another hash
  writeFileSync(file, bytes);
  const events = [];
  await assert.rejects(
    loadModel('mnist@stable', { registry: dir, build: mnist, dtype: 'q8', cache: new FileCache(join(work, 'cache-t')), onEvent: (e) => events.push(e) }),
    isCode('integrity', new RegExp(q8.sha256.slice(0, 12))),
  );
  assert.ok(events.some((e) => e.type === 'refused' && e.code === 'integrity'), JSON.stringify(events));
  // The same cache, the f32 weights of that version: not refused (the refusal is the q8 file's).
  const model = await loadModel('mnist@stable', { registry: dir, build: mnist, dtype: 'f32', cache: new FileCache(join(work, 'cache-t')) });
  assert.equal(model.release.dtype, 'f32');
  assert.ok((await compare(model, MNIST_ITEMS)).maxAbsDiff < 1e-4);
  model.dispose();
});

test('publish --dtype: a tolerance the quantised weights fail is refused, and without --build one must be given', () => {
  const tight = publishAll(join(work, 'registry-tight'), ['--dtype', 'q8', '--golden-tolerance', '1e-6']);
  assert.notEqual(tight.status, 0);
  assert.match(tight.stderr, /the q8 weights fail the golden check with --golden-tolerance: output `logits` element \d+ .* off by/);
  const noBuild = spawnSync(CLI, ['registry', '--registry', join(work, 'registry-nobuild'), 'publish', '--model', 'mnist', '--version', '1.0.0',
    '--weights', weightsPath(), '--golden', goldenPath('1.0.0'), '--dtype', 'q8'], { encoding: 'utf8' });
  assert.notEqual(noBuild.status, 0);
  assert.match(noBuild.stderr, /the q8 weights need their own golden tolerance: pass --build DIR to measure it, or --golden-tolerance/);
  for (const name of ['registry-tight', 'registry-nobuild']) {
    assert.ok(!readdirSync(work).includes(name) || !readdirSync(join(work, name)).length || !readdirSync(join(work, name, 'mnist')).includes('manifest.json'));
  }
});
