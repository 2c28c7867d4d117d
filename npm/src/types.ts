/**
 * The public types of brasa. Signature types (`DType`, `Dim`, `TensorSpec`, `Signature`,
 * `TypedArrayOf`, `BrasaErrorCode`) are generated from Rust (`./generated/types.ts`).
 * @module
 */
import type { ModelCache } from './cache.js';
import type { DType, Signature, TypedArrayOf } from './generated/types.js';

export type { DType, Dim, Signature, TensorSpec, TypedArrayOf } from './generated/types.js';

/** A backend brasa can run on. */
export type Backend = 'webgpu' | 'cpu';

/** What the caller asks for: a backend, or `auto` for WebGPU when present, else CPU. */
export type BackendPreference = Backend | 'auto';

/** Where weights come from: a URL (relative URLs resolve against the page) or the bytes. */
export type WeightsSource = string | URL | ArrayBuffer | ArrayBufferView | Response;

/** The wasm module of one build, for runtimes that must bundle it (Cloudflare Workers). */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

/** Names of a model's tensors and their dtypes, e.g. `{ pixels: 'float32' }`. */
export type TensorTypes = Record<string, DType>;

// ---------------------------------------------------------------------------------------------
// Model packages (the output of `brasa build`)

/** One build of a model package: its wasm-bindgen glue (`--target web`) and its wasm file. */
export interface ModelBuild {
  /** Imports the build's glue module (`./cpu/model.js`). */
  glue: () => Promise<unknown>;
  /** The build's wasm file (`new URL('./cpu/model_bg.wasm', import.meta.url)`): fetched in
   * browsers, Deno and workers, read from disk under Node. `loadModel`'s `wasm` option
   * overrides it. */
  wasm: URL | string;
}

/**
 * A model package: the default export of the `index.js` of a folder `brasa build` wrote (an
 * npm package of its own). `I` and `O` name its inputs and outputs with their dtypes, so
 * `loadModel(pkg)` gives a typed {@link BrasaModel}:
 *
 * ```ts
 * // index.d.ts of a model package
 * import type { ModelPackage } from 'brasa';
 * declare const model: ModelPackage<{ pixels: 'float32' }, { logits: 'float32' }>;
 * export default model;
 * ```
 */
export interface ModelPackage<I extends TensorTypes = TensorTypes, O extends TensorTypes = TensorTypes> {
  /** `'brasa-model@1'`; another format is refused with `incompatible`. */
  readonly format: 'brasa-model@1';
  /** The model's name: its registry folder, its KServe name. */
  readonly name: string;
  /** The package's version. */
  readonly version: string;
  /** The brasa version that built it. */
  readonly brasa: string;
  /** What the model takes and gives. */
  readonly signature: Signature;
  /** Hash of the signature; the builds' `modelCard()` must give the same. */
  readonly signatureHash: string;
  /** Free-form facts for task layers (e.g. `{ task: 'classification', labels: [...] }`). */
  readonly metadata: unknown;
  /** The builds it ships; either may be absent (a CPU-only package). */
  readonly builds: Partial<Record<Backend, ModelBuild>>;
  /** Type-level only: the inputs' and outputs' dtypes. Never present at run time. */
  readonly __tensors?: { inputs: I; outputs: O };
}

/** The input types of a model package. */
export type InputsOf<P> = P extends ModelPackage<infer I, TensorTypes> ? I : TensorTypes;
/** The output types of a model package. */
export type OutputsOf<P> = P extends ModelPackage<TensorTypes, infer O> ? O : TensorTypes;

// ---------------------------------------------------------------------------------------------
// Tensors

/** Any typed array that carries a dtype (`Float32Array`, `Uint16Array` for float16 bits,
 * `BigInt64Array`, `Int32Array`, `Uint8Array`). */
export type TypedArray = TypedArrayOf[DType];

/**
 * A tensor as a plain object (a {@link Tensor} is one): `data` holds the values row-major,
 * `dims` the shape. `data` is the dtype's typed array ({@link TypedArrayOf}); a plain array of
 * numbers is converted to it.
 */
export interface TensorLike<D extends DType = DType> {
  dtype: D;
  dims: readonly number[];
  data: TypedArrayOf[D] | readonly number[];
}

/** A bare array for an input of dtype `D`: its typed array, or numbers (converted; for
 * floats also a `Float64Array` or, for float16, a `Float32Array` — brasa converts). */
export type ArrayFor<D extends DType> = D extends 'float32' | 'float16'
  ? Float32Array | Float64Array | Uint16Array | readonly number[]
  : D extends 'int64'
    ? BigInt64Array | readonly number[] | readonly bigint[]
    : D extends 'int32'
      ? Int32Array | readonly number[]
      : Uint8Array | Uint8ClampedArray | readonly number[];

/**
 * One input: a tensor (`{ dtype, dims, data }` or a {@link Tensor}), or a bare array whose
 * dims brasa derives from the signature (fixed dims as declared, the one non-fixed dim, e.g.
 * the batch, from the length).
 */
export type Feed<D extends DType = DType> = TensorLike | ArrayFor<D>;

/** The inputs of one run, by name. */
export type Feeds<I extends TensorTypes = TensorTypes> = { [K in keyof I]: Feed<I[K]> };

/** The outputs of one run, by name. */
export type Fetches<O extends TensorTypes = TensorTypes> = { [K in keyof O]: TensorOf<O[K]> };

/** A tensor brasa returns (a {@link Tensor} instance). */
export interface TensorOf<D extends DType> {
  readonly dtype: D;
  readonly dims: readonly number[];
  readonly data: TypedArrayOf[D];
  readonly size: number;
}

// ---------------------------------------------------------------------------------------------
// Loading

/** Options of {@link loadModel}. Give either `weights` or `registry`. */
export interface LoadOptions {
  /** The model's weights (burnpack), loaded as they are: no versions, no cache. */
  weights?: WeightsSource;
  /**
   * The model package, when the first argument of `loadModel` is a registry spec
   * (`loadModel('mnist@canary', { registry, build: mnist })`). Its `name` must be the spec's.
   */
  build?: ModelPackage<any, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /**
   * A brasa registry (a folder any static host serves: `<model>/manifest.json` plus
   * content-addressed files). With a package as the first argument of `loadModel`, brasa
   * follows its `stable` channel; with a spec string (`mnist`, `mnist@canary`,
   * `mnist@1.2.0`, `mnist@^1`) that spec.
   */
  registry?: string | URL;
  /**
   * Where verified files and the fetcher's state live. Default: Cache Storage where there is
   * one (browsers, workers, Deno), a folder on Node (`$XDG_CACHE_HOME/brasa/models`), else
   * memory.
   */
  cache?: ModelCache;
  /** Bytes of weights to keep cached; older versions are evicted least recently used first,
   * never one in use. Default 256 MiB. */
  cacheBudget?: number;
  /**
   * `cache-first` (default): start on the last version that worked for this spec when it is
   * cached and check the registry in the background (`update-available`). `network-first`:
   * ask the registry before loading; fall back to the cache only when it cannot answer.
   */
  freshness?: 'cache-first' | 'network-first';
  /** Switch to a new version as soon as an update check finds one (it still must pass
   * integrity, load and golden checks). Default false: call `model.update()`. */
  autoUpdate?: boolean;
  /** Check the registry every this many milliseconds while the model lives. Default: only
   * at load. */
  updateInterval?: number;
  /** A stable id for staged rollouts (e.g. a user id). Default: a random id persisted in the
   * cache. */
  clientId?: string;
  /** Give up on a manifest request, or on a file that sends no data, after this long (ms).
   * Default 30000. */
  timeoutMs?: number;
  /** Download progress, per file. */
  onProgress?: (progress: ProgressInfo) => void;
  /** Every registry event of this model, those during the load included. */
  onEvent?: (event: RegistryEvent) => void;
  /** Backend to use; default `auto`. */
  backend?: BackendPreference;
  /** Called when `auto` could not use WebGPU and runs on CPU instead; also on `model.fallbackReason`. */
  onFallback?: (event: FallbackInfo) => void;
  /** Aborts fetching the weights. */
  signal?: AbortSignal;
  /** Override where each build's wasm comes from (e.g. a bundled `WebAssembly.Module` in
   * Cloudflare Workers); default: the package's `builds[backend].wasm`. */
  wasm?: Partial<Record<Backend, WasmSource>>;
}

/** Why brasa runs on CPU although WebGPU was acceptable. */
export interface FallbackInfo {
  from: 'webgpu';
  to: 'cpu';
  reason: string;
}

/** The GPU adapter a WebGPU model runs on. */
export interface AdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

/** What one run may hold: most rows in the batch, most elements in all feeds together. */
export interface Limits {
  maxBatch: number;
  maxElements: number;
}

/** What a loaded model is (`model.info`). */
export interface ModelInfo {
  name: string;
  backend: Backend;
  signature: Signature;
  /** The package's free-form metadata (labels, task), `null` when it has none. */
  metadata: unknown;
  /** Number of parameters. */
  parameters: number;
  /** Bytes of weights loaded. */
  weightBytes: number;
  limits: Limits;
}

/** What a build says about the model compiled into it (`modelCard()` of its glue). */
export interface ModelCard {
  name: string;
  signature: Signature;
  metadata: unknown;
  signatureHash: string;
  brasaVersion: string;
}

// ---------------------------------------------------------------------------------------------
// Classification

/** Anything a classifier takes: a flat, row-major batch (or a tensor). */
export type ClassifierInput = Float32Array | Float64Array | readonly number[] | TensorLike | Feeds;

/** The result of one classifier run. Arrays are row-major `[batch, classes]`. */
export interface Prediction {
  batch: number;
  classes: number;
  /** The model's output (probabilities already when the activation is `'none'` because the
   * model ends in a softmax). */
  logits: Float32Array;
  /** Softmax of `logits` per row, or `logits` themselves with activation `'none'`. */
  probabilities: Float32Array;
  /** The arg-max class of each item. */
  labels: Uint32Array;
  /** `labels[0]`: the answer for a single item. */
  label: number;
  backend: Backend;
  /** Wall time of the model run, input copy-in and result copy-out included. */
  latencyMs: number;
}

// ---------------------------------------------------------------------------------------------
// Registry

/** A file of a published version, as the manifest lists it. */
export interface FileEntry {
  /** Relative to the model's manifest. */
  path: string;
  size: number;
  sha256: string;
  format: string;
  dtype: string;
}

/** One tensor of a golden check, as the manifest holds it: values as JSON numbers (int64
 * values within 2^53), row-major. */
export interface GoldenTensor {
  name: string;
  dtype: DType;
  dims: number[];
  data: number[];
}

/**
 * A version's golden check: known feeds, the outputs an independent reference gave for them,
 * and the tolerance. A client runs `inputs` through the new weights and every output in
 * `outputs` must come back with the same dims and every value within `tolerance`.
 */
export interface GoldenCheck {
  inputs: GoldenTensor[];
  outputs: GoldenTensor[];
  tolerance: number;
  /** Where the expected outputs came from (e.g. `numpy`, `onnx reference evaluator`). */
  source: string;
}

/** How a model's outputs compared with a golden check (computed in Rust). */
export interface GoldenOutcome {
  passed: boolean;
  /** Largest absolute difference (infinite for non-finite output or missing/misshapen outputs). */
  maxAbsDiff: number;
  /** Why it failed; empty when it passed. */
  reason: string;
}

/** What a spec resolved to. */
export interface ResolvedVersion {
  model: string;
  version: string;
  /** The channel it came through (`null` for an exact version or a range). */
  channel: string | null;
  /** Whether this client got it through the channel's staged rollout. */
  viaRollout: boolean;
  /** This client's rollout bucket in [0, 100). */
  bucket: number;
  files: FileEntry[];
  golden: GoldenCheck | null;
  publishedAt: string;
  notes: string;
}

/** Bytes of one file so far. */
export interface ProgressInfo {
  file: string;
  version: string;
  loaded: number;
  total: number;
  /** Served from the cache: no download. */
  fromCache: boolean;
}

/** Events of a registry-backed model (`model.addEventListener(type, e => e.detail)`). */
export type RegistryEvent =
  /** The registry could not be used; the model serves `version` from the cache. */
  | { type: 'offline'; version: string; reason: string; code: string }
  /** A newer (or, after a server-side rollback, older) version is downloaded, verified and
   * ready: `model.update()` or the next load switches to it. */
  | { type: 'update-available'; from: string; to: string; channel: string | null; viaRollout: boolean; notes: string }
  /** The model switched versions. */
  | { type: 'updated'; from: string; to: string }
  /** A version was refused (bad hash, weights that do not load, failed golden check); the
   * model stays on (or returned to) `version`. */
  | { type: 'rollback'; rejected: string; version: string | null; code: string; reason: string }
  /** An update check finished. */
  | { type: 'update-check'; outcome: UpdateCheck['outcome']; version: string; status: number | null; reason: string | null };

/** Dispatched after every successful `model.run`. */
export interface RunEvent {
  type: 'run';
  /** Rows in the batch (the first dim of the first input when the signature is batched, else 1). */
  batch: number;
  latencyMs: number;
  backend: Backend;
  version: string | null;
}

/** Any event a model dispatches (`model.addEventListener(type, e => e.detail)`). */
export type ModelEvent = RegistryEvent | RunEvent;

/** The result of `model.checkForUpdate()`. */
export interface UpdateCheck {
  /** `current`: nothing to do; `available`: `update()` will switch; `rejected`: the registry
   * points at a version this client refused; `failed`: the registry could not be asked. */
  outcome: 'current' | 'available' | 'rejected' | 'failed';
  /** The version the registry resolved to (or the current one when it could not be asked). */
  version: string;
  /** HTTP status of the manifest request (304 when unchanged). */
  status: number | null;
  reason: string | null;
}

/** The result of `model.update()`. */
export interface UpdateResult {
  updated: boolean;
  /** The version running afterwards. */
  version: string;
  reason: string | null;
}
