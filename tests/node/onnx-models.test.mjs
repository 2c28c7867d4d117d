// Real ONNX models built straight from their files by `brasa build --onnx`, under Node,
// against onnxruntime (tests/reference/onnx_reference.py):
// - PP-OCRv4 text detection (rapidocr-onnxruntime): images of two sizes (dynamic H and W);
// - silero-vad (the op18 graph): 32 consecutive chunks, the recurrent state carried by brasa
//   itself from one chunk to the next, every probability and state compared.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { pathToFileURL } from 'node:url';

import { loadModel } from '../../npm/dist/node.js';
import { CACHE } from '../support.mjs';

const TOLERANCE = 1e-4;

async function load(name) {
  const dir = join(CACHE, 'packages', name);
  const pkg = (await import(pathToFileURL(join(dir, 'index.js')).href)).default;
  const model = await loadModel(pkg, { weights: join(dir, 'weights.bpk'), backend: 'cpu' });
  return { pkg, model };
}

function reference(name) {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures', `${name}-reference.json`), 'utf8'));
}

function maxDiff(got, want) {
  assert.equal(got.length, want.length);
  let worst = 0;
  for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i] - want[i]));
  return worst;
}

test('PP-OCRv4 detection: two image sizes agree with onnxruntime', async () => {
  const { pkg, model } = await load('ocr-det');
  const [input] = pkg.signature.inputs;
  assert.equal(input.name, 'x');
  assert.deepEqual(input.dims.slice(0, 2), ['batch', 3]);
  assert.ok(input.dims.slice(2).every((d) => typeof d === 'string'), 'height and width are dynamic');
  const ref = reference('ocr-det');
  for (const c of ref.cases) {
    const x = c.inputs[0];
    const out = await model.run({ x: { dtype: 'float32', dims: x.dims, data: Float32Array.from(x.data) } });
    const want = c.outputs[0];
    const got = out[want.name];
    assert.deepEqual(got.dims, want.dims);
    const worst = maxDiff(got.data, want.data);
    console.log(`ocr-det ${x.dims.join('x')}: max |brasa - onnxruntime| = ${worst.toExponential(2)}`);
    assert.ok(worst <= TOLERANCE, `${x.dims}: ${worst}`);
  }
  // A 3-channel image of a height the graph cannot take is refused before the model runs.
  await assert.rejects(model.run({ x: { dtype: 'float32', dims: [1, 4, 64, 64], data: new Float32Array(4 * 64 * 64) } }), (e) => e.code === 'invalid_input' && /`x`/.test(e.message));
  model.dispose();
});

test('silero-vad: 32 chunks with the state carried agree with onnxruntime', async () => {
  const { pkg, model } = await load('silero-vad');
  assert.deepEqual(pkg.signature.inputs.map((t) => [t.name, t.dtype]), [['input', 'float32'], ['sr', 'int64'], ['state', 'float32']]);
  const ref = reference('silero-vad');
  let state = { dtype: 'float32', dims: ref.state.dims, data: Float32Array.from(ref.state.data) };
  const sr = { dtype: 'int64', dims: [], data: BigInt64Array.from([BigInt(ref.sr)]) };
  let worstOut = 0;
  let worstState = 0;
  for (const chunk of ref.chunks) {
    const input = { dtype: 'float32', dims: chunk.input.dims, data: Float32Array.from(chunk.input.data) };
    const out = await model.run({ input, sr, state });
    worstOut = Math.max(worstOut, maxDiff(out.output.data, chunk.output.data));
    worstState = Math.max(worstState, maxDiff(out.stateN.data, chunk.stateN.data));
    state = out.stateN;
  }
  console.log(`silero-vad, ${ref.chunks.length} chunks: max |Δ| output ${worstOut.toExponential(2)}, state ${worstState.toExponential(2)}`);
  // The state accumulates 32 chunks of float32 rounding (measured 8.4e-5 on AMD EPYC).
  assert.ok(worstOut <= TOLERANCE && worstState <= 5e-4, `${worstOut} ${worstState}`);
  // The state has a fixed layout: a wrong one is refused naming the tensor.
  await assert.rejects(model.run({ input: { dtype: 'float32', dims: [1, 512], data: new Float32Array(512) }, sr, state: { dtype: 'float32', dims: [2, 1, 64], data: new Float32Array(128) } }), (e) => e.code === 'invalid_input' && /`state`/.test(e.message));
  model.dispose();
});
