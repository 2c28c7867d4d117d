// "Any model": the two-heads fixture (tests/fixtures/two-heads), a Burn model brasa knows
// nothing about, built into a package by `brasa build`. Two inputs of different dtypes (float32
// `features` [batch, seq 1..=64, 4], int64 `token_ids` [batch, 3] in [0, 15]) and two outputs
// (float32 `pooled` [batch, 6], int64 `class_id` [batch]), checked against the float64 numpy
// reference of tests/fixtures/two_heads_reference.py.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';

import { BrasaError, Tensor, loadModel } from 'brasa';
import { fixturePath, loadPackage, maxDiff } from '../support.mjs';

const REF = JSON.parse(readFileSync(fixturePath('two-heads-reference.json'), 'utf8'));
const WEIGHTS = readFileSync(fixturePath('two-heads.bpk'));
const twoHeads = await loadPackage('two-heads');
const POOLED_TOLERANCE = 1e-5;
let model;

before(async () => { model = await loadModel(twoHeads, { weights: WEIGHTS, backend: 'cpu' }); });
after(() => model?.dispose());

/** A reference case's feeds as Tensors. */
function tensors(c) {
  return {
    features: new Tensor('float32', Float32Array.from(c.features.data), c.features.dims),
    token_ids: new Tensor('int64', BigInt64Array.from(c.token_ids.data, BigInt), c.token_ids.dims),
  };
}

/** The outputs agree with the reference: pooled within 1e-5, class_id exactly; dims right. */
function checkCase(out, c, what, tolerance = POOLED_TOLERANCE) {
  const batch = c.features.dims[0];
  assert.deepEqual(Object.keys(out).sort(), ['class_id', 'pooled'], what);
  assert.ok(out.pooled instanceof Tensor, what);
  assert.equal(out.pooled.dtype, 'float32', what);
  assert.deepEqual(out.pooled.dims, [batch, 6], what);
  assert.deepEqual(out.pooled.dims, c.pooled.dims, what);
  const diff = maxDiff(out.pooled.data, c.pooled.data);
  assert.ok(diff <= tolerance, `${what}: pooled differs from numpy by ${diff}`);
  assert.equal(out.class_id.dtype, 'int64', what);
  assert.ok(out.class_id.data instanceof BigInt64Array, what);
  assert.deepEqual(out.class_id.dims, [batch], what);
  assert.deepEqual(out.class_id.dims, c.class_id.dims, what);
  if (tolerance === POOLED_TOLERANCE) assert.deepEqual(Array.from(out.class_id.data, Number), c.class_id.data, `${what}: class_id`);
}

/** The model still answers the first reference case as numpy does. */
async function stillAnswers(what) {
  checkCase(await model.run(tensors(REF.cases[0])), REF.cases[0], `after ${what}`);
}

test('the package: its signature, from the fixture crate alone', () => {
  assert.equal(twoHeads.format, 'brasa-model@1');
  assert.equal(twoHeads.name, 'two-heads');
  assert.deepEqual(model.inputNames, ['features', 'token_ids']);
  assert.deepEqual(model.outputNames, ['pooled', 'class_id']);
  const [features, tokenIds] = model.signature.inputs;
  assert.equal(features.dtype, 'float32');
  assert.equal(tokenIds.dtype, 'int64');
  assert.deepEqual(tokenIds.range, [0, 15]);
  assert.deepEqual(model.signature.outputs.map((o) => o.dtype), ['float32', 'int64']);
  assert.equal(model.backend, 'cpu');
});

test('every reference case matches numpy: pooled within 1e-5, class_id exactly', async () => {
  assert.ok(REF.cases.length >= 5, `${REF.cases.length} cases`);
  const seqs = new Set(REF.cases.map((c) => c.features.dims[1]));
  assert.ok(seqs.has(1) && seqs.has(64), 'the reference covers seq 1 and 64');
  for (const [i, c] of REF.cases.entries()) {
    checkCase(await model.run(tensors(c)), c, `case ${i} (batch ${c.features.dims[0]}, seq ${c.features.dims[1]})`);
  }
  // Concurrently, too.
  const outs = await Promise.all(REF.cases.map((c) => model.run(tensors(c))));
  outs.forEach((out, i) => checkCase(out, REF.cases[i], `concurrent case ${i}`));
});

test('feeds as plain { dtype, dims, data } objects, with numbers or typed arrays', async () => {
  for (const [i, c] of REF.cases.entries()) {
    // Plain arrays of numbers, converted to the dtype.
    const numbers = await model.run({
      features: { dtype: 'float32', dims: c.features.dims, data: c.features.data },
      token_ids: { dtype: 'int64', dims: c.token_ids.dims, data: c.token_ids.data },
    });
    checkCase(numbers, c, `case ${i}, numbers`);
    // Typed arrays in plain objects; token ids as bigints.
    const typed = await model.run({
      token_ids: { dtype: 'int64', dims: c.token_ids.dims, data: c.token_ids.data.map(BigInt) },
      features: { dtype: 'float32', dims: [...c.features.dims], data: Float32Array.from(c.features.data) },
    });
    checkCase(typed, c, `case ${i}, typed`);
  }
});

test('float16 features (Uint16Array bits) agree within 1e-2', async () => {
  for (const [i, c] of REF.cases.entries()) {
    const half = new Tensor('float16', Float32Array.from(c.features.data), c.features.dims); // converted to half bits
    assert.ok(half.data instanceof Uint16Array);
    const out = await model.run({
      features: { dtype: 'float16', dims: c.features.dims, data: half.data },
      token_ids: tensors(c).token_ids,
    });
    checkCase(out, c, `case ${i}, float16`, 1e-2);
  }
});

test('bad feeds are typed errors naming the tensor; the model answers after each', async () => {
  const c = REF.cases[2]; // batch 2, seq 5
  const [batch, seq] = c.features.dims;
  const good = tensors(c);
  const features = (b, s, fill = 0.5) => new Tensor('float32', new Float32Array(b * s * 4).fill(fill), [b, s, 4]);
  const tokens = (b, id = 1) => new Tensor('int64', new BigInt64Array(b * 3).fill(BigInt(id)), [b, 3]);
  const nan = Float32Array.from(c.features.data);
  nan[7] = NaN;
  const outOfRange = BigInt64Array.from(c.token_ids.data, BigInt);
  outOfRange[4] = 16n;
  const cases = {
    'missing input': [{ features: good.features }, /`token_ids`/],
    'unknown input': [{ ...good, mask: new Tensor('float32', new Float32Array(batch), [batch]) }, /`mask`/],
    'wrong dtype (Int32Array token ids)': [{ features: good.features, token_ids: { dtype: 'int32', dims: [batch, 3], data: Int32Array.from(c.token_ids.data) } }, /`token_ids`.*int32.*int64/],
    'wrong dtype (Int32Array said to be int64)': [{ features: good.features, token_ids: { dtype: 'int64', dims: [batch, 3], data: Int32Array.from(c.token_ids.data) } }, /`token_ids`/],
    'seq 0': [{ features: features(batch, 0), token_ids: good.token_ids }, /`features`/],
    'seq 65': [{ features: features(batch, 65), token_ids: good.token_ids }, /`features`.*65/],
    'batch mismatch': [{ features: features(batch, seq), token_ids: tokens(batch + 1) }, /`token_ids`|`features`/],
    'token id 16': [{ features: good.features, token_ids: new Tensor('int64', outOfRange, [batch, 3]) }, /`token_ids`.*16/],
    // Finite inputs, no declared range, a result that overflows: refused naming the output.
    'overflowing result': [{ features: features(batch, seq, 3.4e38), token_ids: good.token_ids }, /output `pooled`.*not finite/],
    'NaN in features': [{ features: { dtype: 'float32', dims: [batch, seq, 4], data: nan }, token_ids: good.token_ids }, /`features`.*element 7 is NaN/],
    'wrong element count': [{ features: { dtype: 'float32', dims: [batch, seq, 4], data: new Float32Array(batch * seq * 4 - 1) }, token_ids: good.token_ids }, /`features`/],
    'bare array for a two-input model': [Float32Array.from(c.features.data), /features|token_ids/],
    'bare array with two variable dims': [{ features: Float32Array.from(c.features.data), token_ids: good.token_ids }, /`features`/],
  };
  for (const [what, [feeds, names]] of Object.entries(cases)) {
    await assert.rejects(model.run(feeds), (e) => {
      assert.ok(e instanceof BrasaError, `${what}: ${e}`);
      assert.equal(e.code, 'invalid_input', `${what}: ${e.code}: ${e.message}`);
      assert.match(e.message, names, what);
      return true;
    }, what);
    await stillAnswers(what);
  }
});

test('two-heads needs its package: a name alone is unknown_model', async () => {
  await assert.rejects(loadModel('two-heads', { weights: WEIGHTS }), (e) => e instanceof BrasaError && e.code === 'unknown_model');
  // MNIST's package with two-heads' weights: refused, not run.
  const mnist = await loadPackage('mnist');
  await assert.rejects(loadModel(mnist, { weights: WEIGHTS, backend: 'cpu' }), BrasaError);
  await stillAnswers('the refused loads');
});
