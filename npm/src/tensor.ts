/**
 * Tensors: the {@link Tensor} class, and how feeds given in JS become the tensors the wasm
 * takes. JS checks only what Rust cannot see (the JS types); shapes, dtypes, element counts,
 * finiteness and ranges are validated in Rust against the signature.
 * @module
 */
import { BrasaError, describe } from './errors.js';
import { DTYPES } from './generated/types.js';
import type { WasmTensor } from './glue.js';
import type { DType, Feed, Signature, TensorSpec, TypedArray, TypedArrayOf } from './types.js';

/**
 * A tensor: `dtype`, row-major `data` in the dtype's typed array ({@link TypedArrayOf}:
 * float32 `Float32Array`, float16 `Uint16Array` of IEEE half bits, int64 `BigInt64Array`,
 * int32 `Int32Array`, uint8 `Uint8Array`, bool `Uint8Array` of 0/1, string an Array of
 * strings), and `dims`.
 * onnxruntime-web's argument order: `new Tensor('float32', data, [1, 784])`.
 */
export class Tensor<D extends DType = DType> {
  readonly dtype: D;
  readonly data: TypedArrayOf[D];
  readonly dims: readonly number[];

  /**
   * @param dtype one of `float32`, `float16`, `int64`, `int32`, `uint8`, `bool`, `string`
   *   (only models that declare a string input take one).
   * @param data the dtype's typed array, or plain numbers (converted; for float16 also a
   *   `Float32Array` or `Float64Array`, converted to half bits).
   * @param dims the shape; default `[data.length]`.
   * @throws BrasaError `invalid_input` when the dtype is unknown, `data` is not of the dtype,
   *   or the dims do not multiply to `data.length`.
   */
  constructor(dtype: D, data: TypedArrayOf[D] | readonly number[] | readonly string[], dims?: readonly number[]) {
    if (!(DTYPES as readonly string[]).includes(dtype)) {
      throw new BrasaError('invalid_input', `unknown dtype ${JSON.stringify(dtype)}; use one of ${DTYPES.join(', ')}`);
    }
    let array = toDType('tensor', dtype, data);
    if (dtype === 'float16' && array instanceof Float32Array) array = f32ToF16(array);
    if (dtypeFor(dtype, array) !== dtype) {
      throw new BrasaError('invalid_input', `a ${dtype} tensor takes a ${ARRAY_TYPES[dtype].name}; got a ${array.constructor.name}`);
    }
    const shape = dims === undefined ? [array.length] : checkDims('tensor', dims);
    const size = shape.reduce((a, b) => a * b, 1);
    if (size !== array.length) {
      throw new BrasaError('invalid_input', `tensor dims [${shape.join(', ')}] hold ${size} values, but data has ${array.length}`);
    }
    this.dtype = dtype;
    this.data = array as TypedArrayOf[D];
    this.dims = Object.freeze(shape);
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }
}

const ARRAY_TYPES: Record<DType, new (n: number) => TypedArray> = {
  float32: Float32Array,
  float16: Uint16Array,
  int64: BigInt64Array,
  int32: Int32Array,
  uint8: Uint8Array,
  bool: Uint8Array,
  string: Array as unknown as new (n: number) => TypedArray,
};

/** The dtype a typed array carries on its own (`null` for kinds brasa has no dtype for). */
function dtypeOfArray(data: ArrayBufferView): DType | null {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Uint16Array) return 'float16';
  if (data instanceof BigInt64Array) return 'int64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof Uint8Array) return 'uint8';
  return null;
}

function checkDims(name: string, dims: unknown): number[] {
  if (!Array.isArray(dims) && !(ArrayBuffer.isView(dims) && !(dims instanceof DataView))) {
    throw new BrasaError('invalid_input', `${name}: dims must be an array of sizes; got ${describe(dims)}`);
  }
  const out = Array.from(dims as ArrayLike<number | bigint>, Number);
  const bad = out.findIndex((d) => !Number.isSafeInteger(d) || d < 0);
  if (bad >= 0) throw new BrasaError('invalid_input', `${name}: dims[${bad}] is ${String(out[bad])}; sizes are non-negative integers`);
  return out;
}

/**
 * `data` as the typed array of `dtype`, converting where the meaning is unambiguous: numbers
 * and Float64Array to floats, integer numbers to integer arrays, Uint8ClampedArray to uint8.
 * Returns typed arrays of another dtype unchanged when Rust converts them (float32 data for a
 * float16 input): the caller passes the array's own dtype then.
 */
function toDType(name: string, dtype: DType, data: unknown): TypedArray {
  if (dtype === 'string') {
    if (!Array.isArray(data)) throw new BrasaError('invalid_input', `${name}: a string tensor's data is an Array of strings; got ${describe(data)}`);
    const bad = data.findIndex((v) => typeof v !== 'string');
    if (bad >= 0) throw new BrasaError('invalid_input', `${name}[${bad}] is ${describe(data[bad])}; a string tensor holds strings`);
    return [...(data as string[])];
  }
  if (Array.isArray(data)) {
    if (dtype === 'float32' || dtype === 'float16') {
      const bad = data.findIndex((v) => typeof v !== 'number');
      if (bad >= 0) throw new BrasaError('invalid_input', `${name}[${bad}] is ${describe(data[bad])}; every value must be a number`);
      const f32 = Float32Array.from(data as number[]);
      return dtype === 'float16' ? f32ToF16(f32) : f32;
    }
    if (dtype === 'int64') {
      const out = new BigInt64Array(data.length);
      data.forEach((v, i) => {
        if (typeof v === 'bigint') out[i] = v;
        else if (typeof v === 'number' && Number.isSafeInteger(v)) out[i] = BigInt(v);
        else throw new BrasaError('invalid_input', `${name}[${i}] is ${describe(v)}; an int64 input takes integers`);
      });
      return out;
    }
    const out = new ARRAY_TYPES[dtype](data.length) as Int32Array | Uint8Array;
    data.forEach((v, i) => {
      const ok = typeof v === 'number' && Number.isInteger(v) && (dtype === 'int32' ? v >= -(2 ** 31) && v < 2 ** 31 : dtype === 'bool' ? v === 0 || v === 1 : v >= 0 && v < 256);
      const b = typeof v === 'boolean' && dtype === 'bool';
      if (!ok && !b) throw new BrasaError('invalid_input', `${name}[${i}] is ${describe(v)}; not a ${dtype} value`);
      out[i] = Number(v);
    });
    return out;
  }
  if (!ArrayBuffer.isView(data) || data instanceof DataView) {
    throw new BrasaError('invalid_input', `${name}: data must be a typed array or an array of numbers; got ${describe(data)}`);
  }
  if (isDetached(data.buffer)) {
    throw new BrasaError('invalid_input', `${name}: its ArrayBuffer is detached (transferred to a worker?); pass data you still own`);
  }
  if (data instanceof Float64Array) {
    if (dtype === 'float32' || dtype === 'float16') return Float32Array.from(data);
  }
  if (data instanceof Uint8ClampedArray) return new Uint8Array(data.buffer, data.byteOffset, data.length);
  const own = dtypeOfArray(data);
  if (own === null) {
    throw new BrasaError(
      'invalid_input',
      `${name}: a ${data.constructor.name} carries no brasa dtype; use ${Object.entries(ARRAY_TYPES).map(([d, c]) => `${c.name} (${d})`).join(', ')}`,
    );
  }
  return data as TypedArray;
}

/**
 * The bytes of weights given as an `ArrayBuffer` or a view (no copy), or `null` for anything
 * else.
 * @throws BrasaError `invalid_weights` when the buffer was detached (transferred).
 */
export function weightsView(weights: unknown): Uint8Array | null {
  const buffer = weights instanceof ArrayBuffer ? weights : ArrayBuffer.isView(weights) ? weights.buffer : null;
  if (buffer === null) return null;
  if (isDetached(buffer)) throw new BrasaError('invalid_weights', 'the weights\' ArrayBuffer is detached (transferred to a worker?); pass bytes you still own');
  if (weights instanceof Uint8Array) return weights;
  return weights instanceof ArrayBuffer ? new Uint8Array(weights) : new Uint8Array(buffer, (weights as ArrayBufferView).byteOffset, (weights as ArrayBufferView).byteLength);
}

/** Whether `buffer` was detached (transferred): a view on it can no longer be made. */
function isDetached(buffer: ArrayBufferLike): boolean {
  try {
    new Uint8Array(buffer, 0, 0);
    return false;
  } catch {
    return true;
  }
}

/** The dtype to tell Rust a converted array has: its own, except where it is ambiguous. */
function dtypeFor(declared: DType, data: TypedArray): DType {
  if (Array.isArray(data)) return 'string';
  const own = dtypeOfArray(data)!;
  // A Uint8Array is uint8 or bool, a Uint16Array float16: the declared dtype decides.
  if (own === 'uint8' && (declared === 'bool' || declared === 'uint8')) return declared;
  return own;
}

function isTensorLike(value: unknown): value is { dtype: unknown; dims: unknown; data: unknown } {
  return typeof value === 'object' && value !== null && !ArrayBuffer.isView(value) && !Array.isArray(value) && 'data' in value && 'dtype' in value;
}

function isBareArray(value: unknown): boolean {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

/** Whether a dim is a fixed size. */
function fixed(dim: TensorSpec['dims'][number]): dim is number {
  return typeof dim === 'number';
}

/**
 * Dims for a bare array fed to `spec`: fixed dims as declared, the single non-fixed dim (the
 * batch, `seq`…) from the length.
 */
export function inferDims(spec: TensorSpec, length: number): number[] {
  const free = spec.dims.filter((d) => !fixed(d));
  const known = spec.dims.filter(fixed).reduce((a, b) => a * b, 1);
  if (free.length === 0) return spec.dims as number[];
  const names = spec.dims.map((d) => (fixed(d) ? String(d) : typeof d === 'string' ? d : d.name));
  if (free.length > 1) {
    throw new BrasaError(
      'invalid_input',
      `input \`${spec.name}\` has dims [${names.join(', ')}], more than one of them variable: pass it as { dtype, dims, data }`,
    );
  }
  if (known === 0 ? length !== 0 : length % known !== 0) {
    throw new BrasaError(
      'invalid_input',
      `input \`${spec.name}\` has ${length} values, not a multiple of ${known} (its dims [${names.join(', ')}] fix ${known} values per ${names[spec.dims.indexOf(free[0])]})`,
    );
  }
  const n = known === 0 ? 0 : length / known;
  return spec.dims.map((d) => (fixed(d) ? d : n));
}

/** One feed, normalised for the wasm. */
export function toWasmTensor(name: string, value: unknown, spec: TensorSpec | undefined): WasmTensor {
  if (isTensorLike(value)) {
    const dtype = value.dtype as DType;
    if (!(DTYPES as readonly string[]).includes(dtype)) {
      throw new BrasaError('invalid_input', `input \`${name}\`: unknown dtype ${JSON.stringify(value.dtype)}; use one of ${DTYPES.join(', ')}`);
    }
    const data = toDType(`input \`${name}\``, dtype, value.data);
    const carried = dtypeFor(dtype, data);
    // The one conversion Rust makes on a tensor's own say-so: float32 values for float16.
    if (carried !== dtype && !(dtype === 'float16' && carried === 'float32')) {
      throw new BrasaError(
        'invalid_input',
        `input \`${name}\` says dtype ${dtype}, but its data is a ${data.constructor.name} (${carried}); ${dtype} is carried by ${ARRAY_TYPES[dtype].name}`,
      );
    }
    return { name, dtype: carried, dims: checkDims(`input \`${name}\``, value.dims), data };
  }
  if (isBareArray(value)) {
    // Unknown names are Rust's to refuse (it lists the signature's inputs). Numbers for a
    // float16 input go as float32: Rust converts.
    const declared = spec === undefined || (spec.dtype === 'float16' && Array.isArray(value)) ? 'float32' : spec.dtype;
    const data = toDType(`input \`${name}\``, declared, value);
    const dims = spec ? inferDims(spec, data.length) : [data.length];
    return { name, dtype: dtypeFor(declared, data), dims, data };
  }
  throw new BrasaError(
    'invalid_input',
    `input \`${name}\` must be a tensor ({ dtype, dims, data }), a typed array or an array of numbers; got ${describe(value)}`,
  );
}

/**
 * Feeds given to `run` as the wasm's list of tensors. A single-input model also takes the
 * bare array or tensor itself.
 */
export function toWasmFeeds(signature: Signature, feeds: unknown): WasmTensor[] {
  if (feeds instanceof DataView || feeds instanceof ArrayBuffer) {
    // Bytes carry no dtype (and no names): they would read as an object with no inputs.
    throw new BrasaError('invalid_input', `feeds: a ${feeds.constructor.name} carries no dtype; pass a typed array (e.g. new Float32Array(buffer)) or { ${signature.inputs.map((s) => `${s.name}: tensor`).join(', ')} }`);
  }
  const only = signature.inputs.length === 1 ? signature.inputs[0] : null;
  if (only && (isBareArray(feeds) || isTensorLike(feeds))) return [toWasmTensor(only.name, feeds, only)];
  if (typeof feeds !== 'object' || feeds === null || isBareArray(feeds)) {
    const names = signature.inputs.map((s) => s.name).join(', ');
    throw new BrasaError('invalid_input', `feeds must be an object of named inputs (${names}); got ${describe(feeds)}`);
  }
  return Object.entries(feeds as Record<string, Feed>).map(([name, value]) =>
    toWasmTensor(name, value, signature.inputs.find((s) => s.name === name)),
  );
}

/** A tensor from the wasm as a {@link Tensor} (no copy). */
export function fromWasm(t: { dtype: DType; dims: ArrayLike<number>; data: TypedArray }): Tensor {
  const tensor = Object.create(Tensor.prototype) as { dtype: DType; dims: readonly number[]; data: TypedArray };
  tensor.dtype = t.dtype;
  tensor.dims = Object.freeze(Array.from(t.dims, Number));
  tensor.data = t.data;
  return tensor as Tensor;
}

/** Concatenate typed arrays of one kind. */
export function concat<T extends TypedArray>(parts: T[]): T {
  if (parts.length === 1) return parts[0];
  const total = parts.reduce((n, p) => n + p.length, 0);
  const out = new (parts[0].constructor as new (n: number) => T)(total);
  let offset = 0;
  for (const p of parts) {
    (out as unknown as { set(a: T, o: number): void }).set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Any float or integer output as Float32Array values (float16 decoded; int64 as numbers). */
export function toFloat32(t: { dtype: DType; data: TypedArray }): Float32Array {
  if (t.dtype === 'float32') return t.data as Float32Array;
  if (t.dtype === 'float16') return f16ToF32(t.data as Uint16Array);
  if (t.data instanceof BigInt64Array) return Float32Array.from(t.data, Number);
  return Float32Array.from(t.data as Int32Array | Uint8Array);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE half bits to floats. */
export function f16ToF32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const h = bits[i];
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    out[i] = exp === 0 ? sign * 2 ** -14 * (frac / 1024) : exp === 31 ? (frac ? NaN : sign * Infinity) : sign * 2 ** (exp - 15) * (1 + frac / 1024);
  }
  return out;
}

/** Floats to IEEE half bits (round to nearest even). */
export function f32ToF16(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) {
    f32[0] = values[i];
    const x = u32[0];
    const sign = (x >>> 16) & 0x8000;
    const exp = (x >>> 23) & 0xff;
    let mant = x & 0x7fffff;
    if (exp === 0xff) {
      out[i] = sign | 0x7c00 | (mant ? 0x200 : 0);
      continue;
    }
    const e = exp - 127 + 15;
    if (e >= 31) {
      out[i] = sign | 0x7c00;
      continue;
    }
    if (e <= 0) {
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      mant |= 0x800000;
      const shift = 14 - e;
      let half = mant >> shift;
      const rem = mant & ((1 << shift) - 1);
      const mid = 1 << (shift - 1);
      if (rem > mid || (rem === mid && half & 1)) half++;
      out[i] = sign | half;
      continue;
    }
    let half = (e << 10) | (mant >> 13);
    const rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
    out[i] = sign | half;
  }
  return out;
}
