/** A backend brasa can run on. */
export type Backend = 'webgpu' | 'cpu';

/** What the caller asks for: a backend, or `auto` for WebGPU when present, else CPU. */
export type BackendPreference = Backend | 'auto';

/** Where weights come from: a URL (relative URLs resolve against the page) or the bytes. */
export type WeightsSource = string | URL | ArrayBuffer | ArrayBufferView | Response;

/** The wasm module of one build, for runtimes that must bundle it (Cloudflare Workers). */
export type WasmSource = WebAssembly.Module | ArrayBuffer | ArrayBufferView | URL | string;

/** Options of {@link loadModel}. */
export interface LoadOptions {
  /** The model's weights (burnpack). */
  weights: WeightsSource;
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
  logits: Float32Array;
  probabilities: Float32Array;
  /** The arg-max class of each item. */
  labels: Uint32Array;
  /** `labels[0]`: the answer for a single item. */
  label: number;
  backend: Backend;
  /** Wall time of this call, input copy-in and result copy-out included. */
  latencyMs: number;
}
