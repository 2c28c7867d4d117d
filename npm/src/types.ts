import type { ModelCache } from './cache.js';

/** A backend brasa can run on. */
export type Backend = 'webgpu' | 'cpu';

/** What the caller asks for: a backend, or `auto` for WebGPU when present, else CPU. */
export type BackendPreference = Backend | 'auto';

/** Where weights come from: a URL (relative URLs resolve against the page) or the bytes. */
export type WeightsSource = string | URL | ArrayBuffer | ArrayBufferView | Response;

/** The wasm module of one build, for runtimes that must bundle it (Cloudflare Workers). */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

/** Options of {@link loadModel}. Give either `weights` or `registry`. */
export interface LoadOptions {
  /** The model's weights (burnpack), loaded as they are: no versions, no cache. */
  weights?: WeightsSource;
  /**
   * A brasa registry (a folder any static host serves: `<model>/manifest.json` plus
   * content-addressed files). The first argument of `loadModel` is then a spec: `mnist`
   * (the `stable` channel), `mnist@canary`, `mnist@1.2.0` or `mnist@^1`.
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
  /** Override where each build's wasm comes from (e.g. a bundled `WebAssembly.Module`). */
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

/** One tensor of a model's signature; `shape` excludes the batch dimension. */
export interface TensorInfo {
  name: string;
  shape: number[];
  datatype: string;
  description: string;
}

/** What a loaded model is. */
export interface ModelInfo {
  name: string;
  backend: Backend;
  input: TensorInfo;
  output: TensorInfo;
  /** What `Prediction.logits` holds: raw scores, or probabilities when the model ends in a softmax. */
  outputKind: 'logits' | 'probabilities';
  labels: string[];
  parameters: number;
  weightBytes: number;
  maxBatch: number;
}

/** Anything {@link BrasaModel.run} accepts: a flat, row-major batch. */
export type ModelInput = Float32Array | Float64Array | readonly number[];

/** The result of one {@link BrasaModel.run}. Arrays are row-major `[batch, classes]`. */
export interface Prediction {
  batch: number;
  classes: number;
  /** The model's outputs (probabilities already when `info.outputKind` is `'probabilities'`). */
  logits: Float32Array;
  /** Softmax of `logits`, or `logits` themselves when the model outputs probabilities. */
  probabilities: Float32Array;
  /** The arg-max class of each item. */
  labels: Uint32Array;
  /** `labels[0]`: the answer for a single item. */
  label: number;
  backend: Backend;
  /** Wall time of this call, input copy-in and result copy-out included. */
  latencyMs: number;
}

/** A file of a published version, as the manifest lists it. */
export interface FileEntry {
  /** Relative to the model's manifest. */
  path: string;
  size: number;
  sha256: string;
  format: string;
  dtype: string;
}

/** A known input, the expected output and the tolerance. */
export interface GoldenCheck {
  input: number[];
  expected: number[];
  tolerance: number;
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
