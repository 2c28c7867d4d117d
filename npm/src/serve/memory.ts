/**
 * Limits derived from a platform's memory limit (Cloudflare Workers: 128 MB per isolate), so
 * that a request the endpoint accepts cannot exhaust it: how many rows one forward pass may
 * hold, and how many may wait in the queue.
 *
 * A wasm instance's memory only grows, so its size after a run is the high-water mark of
 * everything held so far. Running zeros at batch 1, 2 and 4 measures what one more row adds
 * to the peak (weights and the first row's activations are in the batch-1 figure), taking
 * the steepest step; the rows that fit are those whose peak stays under the limit, less a
 * reserve for the JS side.
 * @module
 */
import type { BrasaModel } from '../model.js';
import type { Dim, Signature, TensorSpec, TypedArray } from '../types.js';

/** What the JS side (bundle, heap, request bodies in flight) is left of the limit. */
const JS_RESERVE_BYTES = 24 * 1024 * 1024;
/** The share of the limit queued requests' inputs may hold. */
const QUEUE_SHARE = 0.25;

/** The outcome of {@link memoryPlan}. */
export interface MemoryPlan {
  /** Most rows in one forward pass within the limit (at least 1). */
  maxBatch: number;
  /** Most rows whose inputs may wait in the queue within its share of the limit. */
  maxQueueRows: number;
  /** Measured growth of the instance's peak per row (bytes). */
  bytesPerRow: number;
  /** The limit (bytes). */
  limit: number;
  /** Memory of the instance after the batch-1 run (bytes). */
  base: number;
}

/** The most a wasm32 instance can address (64 Ki pages of 64 KiB). */
export const WASM32_MAX_BYTES = 4 * 1024 * 1024 * 1024;

/** The default limit on this platform: Cloudflare Workers' 128 MB per isolate, else what a
 * wasm32 instance can address (past it, a run traps and the instance is lost). */
export function platformMemoryLimit(): number {
  const agent = (globalThis as { navigator?: { userAgent?: string } }).navigator?.userAgent;
  return agent === 'Cloudflare-Workers' ? 128 * 1024 * 1024 : WASM32_MAX_BYTES;
}

/**
 * Measure `model` (CPU build, batch first on every tensor) and plan its rows within `limit`
 * bytes. `null` when it cannot be measured: a build without `memoryBytes`, a dim other than
 * the batch without an upper bound (its memory is not bounded by rows), or a GPU backend.
 * `longest`: sizes of named dims to measure at instead of their bounds (a text endpoint's
 * sequence: the tokens its embedder keeps); `queuedRowBytes`: what a queued request row holds
 * when that is not the model's inputs (a text's bytes).
 */
export async function memoryPlan(model: BrasaModel, limit: number, longest: Record<string, number> = {}, queuedRowBytes?: number): Promise<MemoryPlan | null> {
  if (model.backend !== 'cpu' || model.memoryBytes === null) return null;
  const inputs = model.signature.inputs;
  const size = (d: Dim) => (typeof d === 'string' ? longest[d] : typeof d === 'object' && d !== null ? longest[d.name] : undefined) ?? largest(d);
  const rowDims = inputs.map((t) => t.dims.slice(1).map(size));
  if (rowDims.some((dims) => dims.some((d) => d === null))) return null;
  const rowElements = rowDims.map((dims) => (dims as number[]).reduce((a, b) => a * b, 1));
  const feeds = (rows: number) =>
    Object.fromEntries(inputs.map((t, i) => [t.name, { dtype: t.dtype, dims: [rows, ...(rowDims[i] as number[])], data: filled(t, rows * rowElements[i]) }]));
  const peaks: number[] = [];
  for (const rows of [1, 2, 4]) {
    await model.run(feeds(rows) as never);
    peaks.push(model.memoryBytes ?? 0);
  }
  const inputBytesPerRow = queuedRowBytes ?? rowSize(model.signature)?.bytes ?? 0;
  // The steepest step: the allocator's slack from earlier runs can hide part of a step, and
  // fragmentation makes later batches need more than the slope (measured on SqueezeNet:
  // +18 MiB from 1 to 2 rows, +12 MiB a row after). Never less than the row's inputs.
  const steepest = Math.max(peaks[1] - peaks[0], (peaks[2] - peaks[1]) / 2);
  const bytesPerRow = Math.max(steepest, inputBytesPerRow);
  const base = peaks[0];
  const maxBatch = Math.max(1, 1 + Math.floor((limit - JS_RESERVE_BYTES - base) / bytesPerRow));
  const maxQueueRows = Math.max(1, Math.floor((limit * QUEUE_SHARE) / inputBytesPerRow));
  return { maxBatch, maxQueueRows, bytesPerRow, limit, base };
}

/**
 * How many versions of one model may be loaded at once in one wasm instance (they share its
 * memory): `plan` measured with one loaded, each further version holding `weightBytes` more
 * (its weights), while a batch of `maxBatch` rows still fits beside them. At least 1 (that
 * one's batch is then lowered by its plan, as for a single version).
 */
export function versionsThatFit(plan: MemoryPlan, weightBytes: number, maxBatch: number): number {
  const room = plan.limit - JS_RESERVE_BYTES - plan.base - Math.max(0, maxBatch - 1) * plan.bytesPerRow;
  if (weightBytes <= 0 || room < 0) return 1;
  return 1 + Math.floor(room / weightBytes);
}

/**
 * One row of every input at its largest (dims at their upper bound): its elements, and its
 * bytes in the binary format. `null` when a dim besides the batch has no upper bound.
 */
export function rowSize(signature: Signature): { elements: number; bytes: number } | null {
  let elements = 0;
  let bytes = 0;
  for (const t of signature.inputs) {
    let n = 1;
    for (const d of t.dims.slice(1)) {
      const size = largest(d);
      if (size === null) return null;
      n *= size;
    }
    elements += n;
    bytes += n * bytesOf(t.dtype);
  }
  return { elements, bytes };
}

/** A dim's largest size: fixed, or a named dim's upper bound; `null` when unbounded. */
function largest(dim: Dim): number | null {
  if (typeof dim === 'number') return dim;
  if (typeof dim === 'object' && dim !== null && typeof dim.max === 'number') return dim.max;
  return null;
}

const BYTES: Record<string, number> = { float32: 4, float16: 2, int64: 8, int32: 4, uint8: 1, bool: 1 };

function bytesOf(dtype: string): number {
  return BYTES[dtype] ?? 8;
}

/** `n` values the input accepts: zeros, or its range's lower end when 0 is outside it. */
function filled(spec: TensorSpec, n: number): TypedArray {
  const low = spec.range && (spec.range[0] > 0 || spec.range[1] < 0) ? spec.range[0] : 0;
  switch (spec.dtype) {
    case 'float32':
      return new Float32Array(n).fill(low);
    case 'float16':
      return new Float32Array(n).fill(low);
    case 'int64':
      return new BigInt64Array(n).fill(BigInt(Math.ceil(low)));
    case 'int32':
      return new Int32Array(n).fill(Math.ceil(low));
    default:
      return new Uint8Array(n).fill(Math.ceil(low));
  }
}
