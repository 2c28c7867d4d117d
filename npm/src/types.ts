/**
 * The public types of brasa. Signature types (`DType`, `Dim`, `TensorSpec`, `Signature`,
 * `TypedArrayOf`, `BrasaErrorCode`) are generated from Rust (`./generated/types.ts`).
 * @module
 */
import type { BUILD_NAMES } from './builds.js';
import type { ModelCache } from './cache.js';
import type { DType, Signature, TypedArrayOf, WeightsDtype } from './generated/types.js';

export type { DType, Dim, Signature, TensorSpec, TypedArrayOf, WeightsDtype } from './generated/types.js';

/** A backend brasa can run on. */
export type Backend = 'webgpu' | 'cpu';

/** What the caller asks for: a backend, or `auto` for WebGPU when present, else CPU. */
export type BackendPreference = Backend | 'auto';

/**
 * The wasm builds a package may carry (`brasa build --backend`): the CPU build (`simd128`, one
 * thread), with relaxed SIMD (`f32x4.relaxed_madd`), threaded (wasm threads, run in a Worker
 * brasa manages), threaded with relaxed SIMD, and the WebGPU build.
 */
export type BuildName = (typeof BUILD_NAMES)[number];

/** The CPU builds, best last. */
export type CpuBuildName = Exclude<BuildName, 'webgpu'>;

/** Which wasm build a model runs (`model.build`). */
export interface BuildInfo {
  /** The build: `'webgpu'`, or the CPU build picked (see {@link LoadOptions.threads}, {@link LoadOptions.simd}). */
  name: BuildName;
  /** Threads a run uses: the size of the build's worker pool, 1 for single-threaded builds. */
  threads: number;
  /** Whether the build uses relaxed SIMD (fused multiply-add where the CPU has it). */
  relaxedSimd: boolean;
  /** Why a faster CPU build the package has was not picked (no cross-origin isolation, one
   * core, an engine without relaxed SIMD, the options); `null` when none was passed over. */
  reason: string | null;
}

/** Where weights come from: a URL or the bytes. A relative URL resolves against the page, or
 * a worker's script (Web Workers, service workers); under Node, and Deno without
 * `--location`, it is a path in the working directory. Cloudflare Workers need absolute URLs. */
export type WeightsSource = string | URL | ArrayBuffer | ArrayBufferView | Response;

/** The wasm module of one build, for runtimes that must bundle it (Cloudflare Workers). */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

/** Names of a model's tensors and their dtypes, e.g. `{ pixels: 'float32' }`. */
export type TensorTypes = Record<string, DType>;

// ---------------------------------------------------------------------------------------------
// Model packages (the output of `brasa build`)

/** One build of a model package: its wasm-bindgen glue (`--target web`) and its wasm file. */
export interface ModelBuild {
  /** The build's glue module (`./cpu/model.js`). The `index.js` of `brasa build` imports it
   * statically, as service workers allow no `import()`; importing it fetches no wasm. Absent
   * from threaded builds, whose glue brasa imports by {@link glueUrl}. */
  glue?: () => Promise<unknown>;
  /** A threaded build's glue module, by URL: brasa imports it in the Worker the model runs
   * in (and once on the page, for the registry and serving logic). */
  glueUrl?: URL | string;
  /** Whether the build uses wasm threads (its memory is shared; it runs in a Worker). */
  threads?: boolean;
  /** The build's wasm file (`new URL('./cpu/model_bg.wasm', import.meta.url)`): fetched in
   * browsers, Deno and workers, read from disk under Node. `loadModel`'s `wasm` option
   * overrides it. */
  wasm: URL | string;
  /** @internal The wasm's verified bytes, when they do not come from `wasm` (a build from a registry). */
  wasmBytes?: () => Promise<Uint8Array>;
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
  /** The builds it ships; any may be absent (a CPU-only package; one without variants). */
  readonly builds: Partial<Record<BuildName, ModelBuild>>;
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

/**
 * Options of {@link loadModel}. Give either `weights` or `registry`. A value of the wrong type
 * or out of range (`cacheBudget: 'abc'`, `timeoutMs: 0`, `registry: ''`) is refused before
 * any work with a `BrasaError` of code `invalid_spec` naming the option and what it must be.
 */
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
   * `mnist@1.2.0`, `mnist@^1`) that spec. Relative URLs resolve as `weights` do (on Node and
   * Deno a relative folder is a local registry). Not empty: `''` is refused, not taken as the
   * current page or folder.
   */
  registry?: string | URL;
  /**
   * Where verified files and the fetcher's state live. Default: Cache Storage where there is
   * one (browsers, workers, Deno), a folder on Node (`$XDG_CACHE_HOME/brasa/models`), else
   * memory.
   */
  cache?: ModelCache;
  /** Bytes of weights to keep cached (a number, 0 or more); older versions are evicted least
   * recently used first, never one in use. Default 256 MiB. */
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
  /** Check the registry every this many milliseconds (1000 to 2^31 - 1, about 24.8 days)
   * while the model lives: one check at a time, none after `dispose()`. Default (and `0`):
   * only at load. */
  updateInterval?: number;
  /** A stable id for staged rollouts (e.g. a user id). Default: a random id persisted in the
   * cache — which changes on every cold start where the cache keeps nothing (Cloudflare
   * Workers on `workers.dev`: see the `cache-not-persisted` event); pin it there (e.g. from a
   * Worker variable) so an isolate does not flip between a rollout's versions. */
  clientId?: string;
  /** Give up on a manifest request, or on a file that sends no data, after this long (ms,
   * from 1 to 2^31 - 1). Default 30000. */
  timeoutMs?: number;
  /**
   * Which of a version's weights files to load, as the manifest lists them: `'f32'`, `'f16'`
   * or `'q8'` (as Transformers.js' `dtype`). Only that file is downloaded; a version without
   * it is `not_found`, naming the dtypes it has. Default `'auto'`: the smallest listed (q8,
   * then f16, then f32), on the CPU and the WebGPU build alike — both widen f16 and q8 to f32
   * at load, so the choice changes the download, not the speed, and each quantised file's
   * golden check (with its own tolerance) runs before it is adopted.
   */
  dtype?: WeightsDtype | 'auto';
  /** Download progress, per file. */
  onProgress?: (progress: ProgressInfo) => void;
  /** Every registry event of this model, those during the load included. */
  onEvent?: (event: RegistryEvent) => void;
  /** Backend to use; default `auto`. */
  backend?: BackendPreference;
  /** Called when `auto` could not use WebGPU and runs on CPU instead; also on `model.fallbackReason`. */
  onFallback?: (event: FallbackInfo) => void;
  /**
   * What a model on WebGPU does when the browser loses its GPU device (`GPUDevice.lost`: a
   * driver reset or update, the GPU process restarting, `device.destroy()`). Either way the
   * model emits a `lost` event ({@link DeviceLostEvent}), and the next `loadModel` gets a new
   * device.
   *
   * - `'fail'` (default): the model stays on the lost device; every later call rejects with
   *   `execution` naming the loss. Load it again to run on a new device.
   * - `'cpu'`: the model reloads the same weights on the package's CPU build and carries on
   *   there (`backend` becomes `'cpu'`, `fallbackReason` says why, `onFallback` is called).
   *   Runs that the loss failed, and runs made while it switches, are answered by the CPU
   *   build: no failed request.
   * - `'reload'`: as `'cpu'`, but onto what `backend` asks for: a new WebGPU device (one per
   *   loss, shared by the models on the lost one), and with `backend: 'auto'` the CPU build
   *   when none can be had. Should the new device be lost too, it recovers again; a run is
   *   answered after up to 3 losses, and a 4th fails it with `execution`.
   *
   * `'cpu'` and `'reload'` keep a copy of weights given as `weights` (registry-backed models
   * read theirs from the cache again). A model whose recovery fails stays lost; its `lost`
   * event carries the error.
   */
  deviceLost?: 'fail' | 'cpu' | 'reload';
  /** Aborts fetching the weights. */
  signal?: AbortSignal;
  /** Override where each build's wasm comes from (e.g. a bundled `WebAssembly.Module` in
   * Cloudflare Workers); default: the package's `builds[build].wasm`. When it names CPU
   * builds, the CPU build is picked among those (a Worker bundling `cpu` runs `cpu`). A
   * single-threaded build has one instance per package in a realm: the first load's `wasm`
   * makes it, later loads share it. A threaded build given here is compiled for that load. */
  wasm?: Partial<Record<BuildName, WasmSource>>;
  /**
   * Threads for the CPU build. `'auto'` (default): the package's threaded build with
   * min(`navigator.hardwareConcurrency`, 4) threads where it can run — a page or Worker that is
   * cross-origin isolated (`crossOriginIsolated`: COOP `same-origin` and COEP `require-corp`),
   * wasm threads validate, more than one core, and not Cloudflare Workers — else the
   * single-threaded build (`model.build.reason` says why). A number from 1 to 64: that many
   * (1: the single-threaded build); more than 1 where threads cannot run is
   * `backend_unavailable` naming why. `false`: as 1. The threaded build runs in a dedicated
   * Worker brasa starts (a page's main thread cannot wait for a pool, so threads would not
   * help there), behind the same `run`/`setWeights`/`dispose`; `dispose` ends the Worker.
   * Under Node it runs in a `worker_threads` Worker. Ignored on WebGPU.
   */
  threads?: number | 'auto' | false;
  /**
   * SIMD of the CPU build: `'auto'` (default) the relaxed-SIMD build where the engine
   * validates relaxed SIMD (Chrome 114+, Firefox 146+; not Node 20) and the package has one,
   * else `simd128`; `'relaxed'` requires it (`backend_unavailable` naming why where it cannot
   * run); `'simd128'` never uses it. Relaxed SIMD's fused multiply-add rounds once where the
   * plain build rounds twice: results differ in the last bits.
   */
  simd?: 'auto' | 'relaxed' | 'simd128';
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
  /** How the weights store their floats; `f32` when the manifest predates dtypes. */
  dtype: WeightsDtype;
  /** This file's golden tolerance, when it differs from the version's. */
  tolerance?: number;
  /** An asset's name (`tokenizer`); weights have none. */
  name?: string;
}

/** A version's compiled build in a registry: its wasm-bindgen glue and its wasm. */
export interface RegistryBuild {
  glue: FileEntry;
  wasm: FileEntry;
}

/** The model card of a version's builds in a registry (a package's fields but its builds). */
export interface RegistryPackageCard {
  format: string;
  name: string;
  version: string;
  brasa: string;
  signatureHash: string;
  metadata: unknown;
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
  /** What this client fetches: the chosen weights file, then any others. */
  files: FileEntry[];
  /** The dtype of the chosen weights (`dtype` option). */
  dtype: WeightsDtype;
  /** The golden check, with the chosen weights' tolerance. */
  golden: GoldenCheck | null;
  /**
   * The hash of the signature the version implements (a package's `signatureHash`), when the
   * manifest records one (`brasa registry publish --build` does); absent from builds older
   * than this field.
   */
  signatureHash?: string | null;
  /** The signature the version implements, when the manifest records it. */
  signature?: Signature | null;
  publishedAt: string;
  notes: string;
  /** Its compiled builds by backend, when the version ships its code (`publish --code`). */
  builds?: Partial<Record<Backend, RegistryBuild>>;
  /** The model card of those builds. */
  package?: RegistryPackageCard | null;
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
  /** A download failed (`code`, `reason`: cut short, stalled, an HTTP error, bytes that do not
   * match the manifest) and is tried once more, past every HTTP cache. */
  | { type: 'retry'; version: string; file: string; code: string; reason: string }
  /** `version` was proven bad and is remembered as refused: on `backend` for a failed golden
   * check (another backend may still run it), on every backend (`null`) for a file the
   * registry served contradicting its manifest twice (refused for 10 minutes), or weights that
   * do not load. */
  | { type: 'refused'; version: string; backend: Backend | null; code: string; reason: string }
  /** An update check finished. */
  | { type: 'update-check'; outcome: UpdateCheck['outcome']; version: string; status: number | null; reason: string | null }
  /** The cache (`kind`) did not keep what was written to it: files are downloaded again after
   * a restart, and the random rollout identity changes (pin it with `clientId`). */
  | { type: 'cache-not-persisted'; kind: string; reason: string }
  /** The fetcher's state in the cache (`kind`) — `state.json`: last good and pending
   * versions, refusals, manifests, which files are cached — was damaged (`reason`: not JSON,
   * cut short, another schema, malformed fields) and was started afresh, or kept without what
   * was malformed, and written back whole. Loads go on: cached files are found by their
   * hashes and verified, and each manifest and the rollout id are also kept apart, so a
   * cached version still loads with the registry down. What is lost: refusals (a refused
   * version is checked again) and which version was last good (a load resolves the spec
   * again). Said once per finding, on the model whose load or check found it. */
  | { type: 'state-reset'; kind: string; reason: string };

/** Dispatched after every successful `model.run`. */
export interface RunEvent {
  type: 'run';
  /** Rows in the batch (the first dim of the first input when the signature is batched, else 1). */
  batch: number;
  latencyMs: number;
  backend: Backend;
  version: string | null;
}

/**
 * Dispatched when the GPU device a model ran on was lost (see `LoadOptions.deviceLost`), and
 * again once it recovered (or failed to).
 */
export interface DeviceLostEvent {
  type: 'lost';
  /** What the browser said (`Destroyed: …`, `Unknown: …`). */
  reason: string;
  /** `lost`: the device is gone (every model on it gets this one); `recovered`: the model
   * runs on `backend` now; `failed`: it could not recover (`error` says why) and stays lost. */
  state: 'lost' | 'recovered' | 'failed';
  /** The `deviceLost` option in force. */
  recovery: 'fail' | 'cpu' | 'reload';
  /** The backend the model runs on now; `null` while it runs nowhere. */
  backend: Backend | null;
  /** Why the recovery failed (`failed` only). */
  error: string | null;
}

/** Any event a model dispatches (`model.addEventListener(type, e => e.detail)`). */
export type ModelEvent = RegistryEvent | RunEvent | DeviceLostEvent;

/** The result of `model.checkForUpdate()`. */
export interface UpdateCheck {
  /** `current`: nothing to do; `available`: `update()` will switch; `rejected`: the registry
   * points at a version this client refused; `failed`: the registry could not be asked. */
  outcome: 'current' | 'available' | 'rejected' | 'failed';
  /** The version the registry resolved to (or the current one when it could not be asked). */
  version: string;
  /** HTTP status of the manifest request (304 when unchanged). In a browser, a registry on
   * another origin is revalidated by the browser's HTTP cache (no CORS preflight), which
   * answers 200 from its copy when the server said 304. */
  status: number | null;
  reason: string | null;
}

/** The result of `model.update()`. */
export interface UpdateResult {
  updated: boolean;
  /** The version running afterwards. */
  version: string;
  /** Why it did not switch: the update check failed (the registry could not be asked, or
   * the new version's download failed: the `update-check` event's `reason`), found a version
   * this client refused, or the new version was refused now (its `rollback` event's
   * `reason`). `null` when it switched, or when there was nothing newer. */
  reason: string | null;
}
