import { BrasaError } from './errors.js';
import type {
  AdapterInfo,
  Backend,
  BackendPreference,
  FallbackInfo,
  LoadOptions,
  ModelInfo,
  ModelInput,
  Prediction,
  WasmSource,
  WeightsSource,
} from './types.js';
import type * as Bindings from '../wasm/cpu/brasa_wasm.js';

/** The wasm-bindgen exports both builds share. */
export type WasmBindings = Pick<typeof Bindings, 'loadModel' | 'compiledBackends' | 'modelNames'>;
type WasmModel = Bindings.WasmModel;

/** A build's glue module: its exports plus wasm-bindgen's two initialisers. */
export type Glue = WasmBindings & {
  initSync(init: { module: BufferSource | WebAssembly.Module }): unknown;
  default(init?: { module_or_path: unknown }): Promise<unknown>;
};

/** What differs between browsers, workers, Deno and Node. */
export interface Platform {
  /** Instantiate one build of the wasm module. */
  instantiate(build: Backend, source: WasmSource | undefined): Promise<WasmBindings>;
  /** Read the bytes behind a URL. */
  fetchBytes(url: URL, signal?: AbortSignal): Promise<Uint8Array>;
  /** The base relative URLs resolve against. */
  baseUrl(): string | undefined;
}

const MODELS = ['mnist'] as const;

/** The wasm-bindgen glue of one build. Literal specifiers, so bundlers see both builds and
 * split them into their own chunks; only the one needed is ever fetched. */
export function importGlue(build: Backend): Promise<Glue> {
  return build === 'webgpu' ? import('../wasm/webgpu/brasa_wasm.js') : import('../wasm/cpu/brasa_wasm.js');
}

/** The body of a successful response; an HTTP error status is a `network` error. */
export async function responseBytes(response: Response, url: string): Promise<Uint8Array> {
  if (!response.ok) throw new BrasaError('network', `GET ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

/** Builds a `loadModel` for one platform. */
export function createLoader(platform: Platform) {
  // One instance per build per realm; a failed or aborted one is forgotten so a retry can work.
  const instances = new Map<Backend, Promise<WasmBindings>>();

  function bindings(build: Backend, source: WasmSource | undefined): Promise<WasmBindings> {
    let instance = instances.get(build);
    if (!instance) {
      instance = platform.instantiate(build, source).catch((err: unknown) => {
        instances.delete(build);
        throw new BrasaError('wasm_load', `could not load brasa's ${build} wasm build: ${message(err)}`, { cause: err });
      });
      instances.set(build, instance);
    }
    return instance;
  }

  async function weightBytes(source: WeightsSource, signal?: AbortSignal): Promise<Uint8Array> {
    if (source instanceof Uint8Array) return source;
    if (source instanceof ArrayBuffer) return new Uint8Array(source);
    if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
    if (typeof Response !== 'undefined' && source instanceof Response) return responseBytes(source, source.url);
    if (typeof source === 'string' || source instanceof URL) {
      let url: URL;
      try {
        url = new URL(source, platform.baseUrl());
      } catch (err) {
        throw new BrasaError('network', `weights URL ${String(source)} is not a valid URL`, { cause: err });
      }
      try {
        return await platform.fetchBytes(url, signal);
      } catch (err) {
        if (err instanceof BrasaError) throw err;
        throw new BrasaError('network', `could not fetch weights from ${url.href}: ${message(err)}`, { cause: err });
      }
    }
    throw new BrasaError('invalid_weights', `weights must be a URL, ArrayBuffer, typed array or Response; got ${describe(source)}`);
  }

  /**
   * Load a model and its weights on the best (or the requested) backend.
   *
   * With `backend: 'auto'` brasa uses WebGPU when `navigator.gpu` gives an adapter and the GPU
   * initialises; otherwise it runs on the CPU build and says why (`onFallback`,
   * `model.fallbackReason`). With `backend: 'webgpu'` a missing GPU is an error.
   */
  return async function loadModel(name: string, options: LoadOptions): Promise<BrasaModel> {
    if (!options || typeof options !== 'object') {
      throw new BrasaError('invalid_weights', 'loadModel(name, { weights }) needs an options object with weights');
    }
    if (!(MODELS as readonly string[]).includes(name)) {
      throw new BrasaError('unknown_model', `unknown model \`${name}\`; brasa serves: ${MODELS.join(', ')}`);
    }
    const preference: BackendPreference = options.backend ?? 'auto';
    if (!['auto', 'webgpu', 'cpu'].includes(preference)) {
      throw new BrasaError('backend_unavailable', `unknown backend \`${String(preference)}\`; use 'auto', 'webgpu' or 'cpu'`);
    }
    const weights = await weightBytes(options.weights, options.signal);

    let fallbackReason: string | null = null;
    let adapter: AdapterInfo | null = null;
    if (preference !== 'cpu') {
      const probe = await probeWebGpu();
      let gpuError: BrasaError | null = null;
      if (probe.ok) {
        try {
          const wasm = await bindings('webgpu', options.wasm?.webgpu);
          const inner = await wasm.loadModel(name, weights, 'webgpu');
          return new BrasaModel(name, inner, 'webgpu', preference, null, probe.adapter);
        } catch (err) {
          gpuError = BrasaError.from(err);
          // Bad weights are bad on every backend: no fallback hides them.
          if (gpuError.code === 'invalid_weights' || gpuError.code === 'unknown_model') throw gpuError;
          if (gpuError.code === 'internal') instances.delete('webgpu');
          adapter = probe.adapter;
        }
      }
      const reason = probe.ok ? `WebGPU initialisation failed: ${gpuError?.message}` : probe.reason;
      if (preference === 'webgpu') {
        throw new BrasaError('backend_unavailable', `backend 'webgpu' is unavailable: ${reason}`, { cause: gpuError ?? undefined });
      }
      fallbackReason = reason;
    }

    const wasm = await bindings('cpu', options.wasm?.cpu);
    let inner: WasmModel;
    try {
      inner = await wasm.loadModel(name, weights, 'cpu');
    } catch (err) {
      const error = BrasaError.from(err);
      if (error.code === 'internal') instances.delete('cpu');
      throw error;
    }
    const model = new BrasaModel(name, inner, 'cpu', preference, fallbackReason, adapter);
    if (fallbackReason !== null) {
      const info: FallbackInfo = { from: 'webgpu', to: 'cpu', reason: fallbackReason };
      // Where a GPU could have been expected (a browser, Deno), say so in the console too.
      if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) console.warn(`brasa: running ${name} on CPU: ${fallbackReason}`);
      options.onFallback?.(info);
    }
    return model;
  };
}

type Probe = { ok: true; adapter: AdapterInfo } | { ok: false; reason: string };

/** Is there a WebGPU adapter? Checked in JS first: wgpu inside wasm aborts where there is none. */
async function probeWebGpu(): Promise<Probe> {
  const gpu = (globalThis as { navigator?: { gpu?: GPULike } }).navigator?.gpu;
  if (!gpu) {
    return { ok: false, reason: 'WebGPU is not available here (navigator.gpu is undefined: no WebGPU support, or not a secure context)' };
  }
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, reason: 'WebGPU is present but navigator.gpu.requestAdapter() returned no adapter' };
    const info = adapter.info ?? {};
    return {
      ok: true,
      adapter: {
        vendor: info.vendor ?? '',
        architecture: info.architecture ?? '',
        device: info.device ?? '',
        description: info.description ?? '',
        isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
      },
    };
  } catch (err) {
    return { ok: false, reason: `navigator.gpu.requestAdapter() failed: ${message(err)}` };
  }
}

interface GPULike {
  requestAdapter(): Promise<null | {
    info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
    isFallbackAdapter?: boolean;
  }>;
}

/** A model with weights, on one backend. Dispose of it to free its memory. */
export class BrasaModel extends EventTarget {
  /** The model's name. */
  readonly name: string;
  /** The backend it runs on. */
  readonly backend: Backend;
  /** The backend that was asked for. */
  readonly requestedBackend: BackendPreference;
  /** Why it runs on CPU although WebGPU was acceptable; `null` when it did not fall back. */
  readonly fallbackReason: string | null;
  /** The GPU adapter (also set after a fallback caused by a failing GPU). */
  readonly adapter: AdapterInfo | null;
  #inner: WasmModel | null;
  #info: ModelInfo;

  /** @internal */
  constructor(
    name: string,
    inner: WasmModel,
    backend: Backend,
    requested: BackendPreference,
    fallbackReason: string | null,
    adapter: AdapterInfo | null,
  ) {
    super();
    this.name = name;
    this.#inner = inner;
    this.backend = backend;
    this.requestedBackend = requested;
    this.fallbackReason = fallbackReason;
    this.adapter = adapter;
    this.#info = inner.info() as ModelInfo;
  }

  /** Signature, parameter count and weight size. */
  get info(): ModelInfo {
    return this.#info;
  }

  /** Whether {@link dispose} was called. */
  get disposed(): boolean {
    return this.#inner === null;
  }

  /**
   * Run a batch: `input` holds `batch × item` values, row-major (MNIST: 784 per image, values
   * in [0, 1], 1 = ink). Bad input rejects with a `BrasaError` of code `invalid_input` and
   * leaves the model usable.
   */
  async run(input: ModelInput): Promise<Prediction> {
    const inner = this.#live();
    const data = toFloat32(input);
    const started = performance.now();
    let raw: { batch: number; classes: number; logits: Float32Array; probabilities: Float32Array; labels: Uint32Array };
    try {
      raw = await inner.run(data);
    } catch (err) {
      throw BrasaError.from(err, 'execution');
    }
    return { ...raw, label: raw.labels[0] ?? -1, backend: this.backend, latencyMs: performance.now() - started };
  }

  /** Swap in other weights (same architecture). Validated before the swap; on error nothing changes. */
  async setWeights(weights: ArrayBuffer | ArrayBufferView): Promise<void> {
    const inner = this.#live();
    const bytes = weights instanceof ArrayBuffer ? new Uint8Array(weights) : ArrayBuffer.isView(weights) ? new Uint8Array(weights.buffer, weights.byteOffset, weights.byteLength) : null;
    if (!bytes) throw new BrasaError('invalid_weights', `weights must be an ArrayBuffer or typed array; got ${describe(weights)}`);
    try {
      inner.setWeights(bytes);
    } catch (err) {
      throw BrasaError.from(err, 'invalid_weights');
    }
    this.#info = inner.info() as ModelInfo;
  }

  /** Free the model's memory. Runs already started finish; later calls reject with `disposed`. */
  dispose(): void {
    const inner = this.#inner;
    this.#inner = null;
    inner?.free();
  }

  #live(): WasmModel {
    if (!this.#inner) throw new BrasaError('disposed', `model ${this.name} was disposed`);
    return this.#inner;
  }
}

function toFloat32(input: unknown): Float32Array {
  if (input instanceof Float32Array) return input;
  if (input instanceof Float64Array) return Float32Array.from(input);
  if (Array.isArray(input)) {
    const bad = input.findIndex((v) => typeof v !== 'number');
    if (bad >= 0) throw new BrasaError('invalid_input', `input[${bad}] is ${describe(input[bad])}; every value must be a number`);
    return Float32Array.from(input as number[]);
  }
  if (ArrayBuffer.isView(input)) {
    throw new BrasaError(
      'invalid_input',
      `input is a ${input.constructor.name}; brasa takes a Float32Array (or array of numbers) of values in [0, 1]. For 8-bit pixels, divide by 255.`,
    );
  }
  throw new BrasaError('invalid_input', `input must be a Float32Array or an array of numbers; got ${describe(input)}`);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `a ${(value as object).constructor?.name ?? 'object'}`;
  return `${typeof value} ${String(value).slice(0, 40)}`;
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
