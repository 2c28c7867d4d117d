import type { ModelCache } from './cache.js';
import { BrasaError } from './errors.js';
import { RegistryClient, Store, cacheKey, type Fetcher, type ParsedSpec, type RegistryWasm } from './registry.js';
import type {
  AdapterInfo,
  Backend,
  BackendPreference,
  FallbackInfo,
  LoadOptions,
  ModelInfo,
  ModelInput,
  Prediction,
  ModelEvent,
  ProgressInfo,
  RegistryEvent,
  ResolvedVersion,
  UpdateCheck,
  UpdateResult,
  WasmSource,
  WeightsSource,
} from './types.js';
import type * as Bindings from '../wasm/cpu/brasa_wasm.js';

/** The wasm-bindgen exports both builds share. */
export type WasmBindings = Pick<
  typeof Bindings,
  'loadModel' | 'compiledBackends' | 'modelNames' | 'kserveParseInfer' | 'kserveInferResponse' | 'kserveModelMetadata' | 'WasmBatchPolicy' | 'WasmMetrics'
> &
  RegistryWasm;
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
  /** GET for the registry fetcher (manifests must bypass any HTTP cache: brasa revalidates). */
  fetch: Fetcher;
  /** The cache registry-backed models use unless told otherwise. */
  defaultCache(): ModelCache;
}

const DEFAULT_CACHE_BUDGET = 256 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS = 30_000;

// The architectures compiled into the wasm builds (`modelNames()` of the glue says the same).
const MODELS = ['mnist', 'squeezenet'] as const;

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

  /** A model on the best acceptable backend, falling back from WebGPU to CPU. */
  async function instantiate(name: string, weights: Uint8Array, preference: BackendPreference, probe: Probe | null, options: LoadOptions): Promise<Loaded> {
    let fallbackReason: string | null = null;
    let adapter: AdapterInfo | null = null;
    if (preference !== 'cpu' && probe) {
      let gpuError: BrasaError | null = null;
      if (probe.ok) {
        try {
          const wasm = await bindings('webgpu', options.wasm?.webgpu);
          const inner = await wasm.loadModel(name, weights, 'webgpu');
          return { inner, wasm, backend: 'webgpu', fallbackReason: null, adapter: probe.adapter };
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
    try {
      const inner = await wasm.loadModel(name, weights, 'cpu');
      return { inner, wasm, backend: 'cpu', fallbackReason, adapter };
    } catch (err) {
      const error = BrasaError.from(err);
      if (error.code === 'internal') instances.delete('cpu');
      throw error;
    }
  }

  function reportFallback(name: string, loaded: Loaded, options: LoadOptions): void {
    if (loaded.fallbackReason === null) return;
    const info: FallbackInfo = { from: 'webgpu', to: 'cpu', reason: loaded.fallbackReason };
    // Where a GPU could have been expected (a browser, Deno), say so in the console too.
    if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) console.warn(`brasa: running ${name} on CPU: ${loaded.fallbackReason}`);
    options.onFallback?.(info);
  }

  function checkPreference(options: LoadOptions): BackendPreference {
    const preference: BackendPreference = options.backend ?? 'auto';
    if (!['auto', 'webgpu', 'cpu'].includes(preference)) {
      throw new BrasaError('backend_unavailable', `unknown backend \`${String(preference)}\`; use 'auto', 'webgpu' or 'cpu'`);
    }
    return preference;
  }

  /** Load a spec from a registry: resolve, fetch or read the cache, verify, load, golden-check. */
  async function loadVersioned(specText: string, options: LoadOptions): Promise<BrasaModel> {
    const preference = checkPreference(options);
    let registry: URL;
    try {
      registry = new URL(String(options.registry), platform.baseUrl());
    } catch (err) {
      throw new BrasaError('network', `registry ${String(options.registry)} is not a valid URL`, { cause: err });
    }
    if (!registry.pathname.endsWith('/')) registry = new URL(`${registry.pathname}/${registry.search}`, registry);
    const probe = preference === 'cpu' ? null : await probeWebGpu();
    // The registry logic is in both builds: use the one the model will most likely run on.
    const logic = await bindings(probe?.ok ? 'webgpu' : 'cpu', probe?.ok ? options.wasm?.webgpu : options.wasm?.cpu).catch(() =>
      bindings('cpu', options.wasm?.cpu),
    );
    let spec: ParsedSpec;
    try {
      spec = logic.registryParseSpec(String(specText)) as ParsedSpec;
    } catch (err) {
      throw BrasaError.from(err, 'invalid_spec');
    }
    if (!(MODELS as readonly string[]).includes(spec.name)) {
      throw new BrasaError('unknown_model', `unknown model \`${spec.name}\`; brasa serves: ${MODELS.join(', ')}`);
    }
    const store = Store.of(options.cache ?? platform.defaultCache());
    const clientId = options.clientId ?? (await store.read()).clientId; // persisted with the first adopted version
    let model: BrasaModel | null = null;
    const early: RegistryEvent[] = [];
    const files: ProgressInfo[] = [];
    const client = new RegistryClient({
      registry,
      manifestUrl: new URL(`${spec.name}/manifest.json`, registry),
      spec,
      store,
      wasm: logic,
      fetch: platform.fetch,
      clientId,
      timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      cacheBudget: options.cacheBudget ?? DEFAULT_CACHE_BUDGET,
      onProgress(progress: ProgressInfo) {
        options.onProgress?.(progress);
        if (progress.loaded !== progress.total) return;
        if (model) model._recordFile(progress.version, progress.fromCache, progress.total);
        else files.push(progress);
      },
      emit(event) {
        options.onEvent?.(event);
        if (model) model.dispatchEvent(new BrasaEvent(event));
        else early.push(event);
      },
    });

    /** Load one version; a version that fails integrity, loading or its golden check is refused for good. */
    async function tryVersion(version: ResolvedVersion): Promise<Loaded> {
      const refused = await client.rejection(version.version);
      if (refused) {
        throw new BrasaError(refused.code as BrasaError['code'], `version ${version.version} was refused earlier: ${refused.reason}`);
      }
      try {
        const { bytes } = await client.weights(version, options.signal);
        const loaded = await instantiate(spec.name, bytes, preference, probe, options);
        try {
          if (version.golden) await runGolden(loaded.inner, version.golden, client);
        } catch (err) {
          loaded.inner.free();
          throw err;
        }
        return loaded;
      } catch (err) {
        const error = BrasaError.from(err);
        if (REFUSALS.has(error.code)) await client.reject(version.version, error);
        throw error;
      }
    }

    function finish(loaded: Loaded, version: ResolvedVersion, check: Promise<UpdateCheck> | null): BrasaModel {
      const versioned = new Versioned(client, version, options);
      model = new BrasaModel(spec.name, loaded.inner, loaded.backend, preference, loaded.fallbackReason, loaded.adapter, loaded.wasm, versioned);
      reportFallback(spec.name, loaded, options);
      for (const event of early.splice(0)) model.dispatchEvent(new BrasaEvent(event));
      for (const f of files.splice(0)) model._recordFile(f.version, f.fromCache, f.total);
      versioned.start(model, check);
      return model;
    }

    // Cache first: start on the last version that worked (or a verified pending update).
    const good = await client.lastGood();
    if ((options.freshness ?? 'cache-first') === 'cache-first' && good && (await client.isCached(good))) {
      const pending = await client.pending();
      if (pending && pending.version !== good.version && (await client.isCached(pending))) {
        try {
          const loaded = await tryVersion(pending);
          await client.adopt(pending);
          client.o.emit({ type: 'updated', from: good.version, to: pending.version });
          return finish(loaded, pending, null);
        } catch (err) {
          const error = BrasaError.from(err);
          client.o.emit({ type: 'rollback', rejected: pending.version, version: good.version, code: error.code, reason: error.message });
        }
      }
      try {
        const loaded = await tryVersion(good);
        await client.adopt(good);
        return finish(loaded, good, null);
      } catch {
        // Fall through to the registry.
      }
    }

    // Network first (or nothing usable cached): ask the registry.
    const answer = await client.fetchManifest(options.signal);
    let target: ResolvedVersion | null = null;
    let registryError: BrasaError | null = answer.ok ? null : answer.error;
    if (answer.ok) {
      try {
        target = client.resolve(answer.body);
        await client.rememberManifest(answer.body, answer.etag);
      } catch (err) {
        registryError = BrasaError.from(err, 'invalid_manifest');
      }
    }
    if (target) {
      const current: UpdateCheck = { outcome: 'current', version: target.version, status: answer.ok ? answer.status : null, reason: null };
      try {
        const loaded = await tryVersion(target);
        await client.adopt(target);
        return finish(loaded, target, Promise.resolve(current));
      } catch (err) {
        const error = BrasaError.from(err);
        if (!good || good.version === target.version || !(await client.isCached(good))) throw error;
        client.o.emit({ type: 'rollback', rejected: target.version, version: good.version, code: error.code, reason: error.message });
        const loaded = await tryVersion(good);
        await client.adopt(good);
        return finish(loaded, good, Promise.resolve({ ...current, outcome: 'rejected', reason: error.message }));
      }
    }

    // The registry cannot answer: the last good version, or what the last good manifest says.
    const error = registryError!;
    let fallback: ResolvedVersion | null = good && (await client.isCached(good)) ? good : null;
    if (!fallback) {
      const body = await client.cachedManifest();
      if (body) {
        try {
          const resolved = client.resolve(body);
          if (await client.isCached(resolved)) fallback = resolved;
        } catch {
          // An old manifest that no longer resolves this spec: nothing to fall back on.
        }
      }
    }
    if (!fallback) {
      throw new BrasaError(error.code, `${error.message} (and no version of ${spec.canonical} is cached)`, { cause: error });
    }
    client.o.emit({ type: 'offline', version: fallback.version, reason: error.message, code: error.code });
    const loaded = await tryVersion(fallback);
    await client.adopt(fallback);
    const failed: UpdateCheck = { outcome: 'failed', version: fallback.version, status: null, reason: error.message };
    return finish(loaded, fallback, Promise.resolve(failed));
  }

  /**
   * Load a model on the best (or the requested) backend.
   *
   * With `weights`, those bytes are loaded. With `registry`, `name` is a spec (`mnist`,
   * `mnist@canary`, `mnist@1.2.0`, `mnist@^1`) resolved against the registry's manifest; files
   * are verified (sha256) before use and cached, and the model follows its channel
   * (`model.version`, `update-available`, `model.update()`).
   *
   * With `backend: 'auto'` brasa uses WebGPU when `navigator.gpu` gives an adapter and the GPU
   * initialises; otherwise it runs on the CPU build and says why (`onFallback`,
   * `model.fallbackReason`). With `backend: 'webgpu'` a missing GPU is an error.
   */
  return async function loadModel(name: string, options: LoadOptions): Promise<BrasaModel> {
    if (!options || typeof options !== 'object') {
      throw new BrasaError('invalid_weights', 'loadModel(name, options) needs an options object with `weights` or `registry`');
    }
    if (options.registry !== undefined) {
      if (options.weights !== undefined) throw new BrasaError('invalid_weights', 'give either `weights` or `registry`, not both');
      return loadVersioned(name, options);
    }
    if (options.weights === undefined) {
      throw new BrasaError('invalid_weights', 'loadModel(name, options) needs `weights` (bytes or a URL) or a `registry`');
    }
    if (!(MODELS as readonly string[]).includes(name)) {
      throw new BrasaError('unknown_model', `unknown model \`${name}\`; brasa serves: ${MODELS.join(', ')}`);
    }
    const preference = checkPreference(options);
    const weights = await weightBytes(options.weights, options.signal);
    const probe = preference === 'cpu' ? null : await probeWebGpu();
    const loaded = await instantiate(name, weights, preference, probe, options);
    const model = new BrasaModel(name, loaded.inner, loaded.backend, preference, loaded.fallbackReason, loaded.adapter, loaded.wasm, null);
    reportFallback(name, loaded, options);
    return model;
  };
}

/** Error codes that mean "this version is bad", as opposed to "the network is". */
const REFUSALS = new Set<string>(['integrity', 'invalid_weights', 'golden_check']);

interface Loaded {
  inner: WasmModel;
  wasm: WasmBindings;
  backend: Backend;
  fallbackReason: string | null;
  adapter: AdapterInfo | null;
}

/** Run a version's golden input through `inner` and judge the output. */
async function runGolden(inner: WasmModel, golden: NonNullable<ResolvedVersion['golden']>, client: RegistryClient): Promise<void> {
  let logits: Float32Array;
  try {
    logits = (await inner.run(Float32Array.from(golden.input))).logits;
  } catch (err) {
    throw new BrasaError('golden_check', `golden check failed: the golden input does not run (${BrasaError.from(err).message})`, { cause: err });
  }
  client.judgeGolden(golden, logits);
}

/** An event of a model; `detail` is the {@link ModelEvent}. */
export class BrasaEvent<E extends ModelEvent = ModelEvent> extends Event {
  readonly detail: E;
  constructor(detail: E) {
    super(detail.type);
    this.detail = detail;
  }
}

/** A model's link to its registry: the version it runs, update checks and switches. */
class Versioned {
  readonly client: RegistryClient;
  current: ResolvedVersion;
  check: Promise<UpdateCheck> | null = null;
  #options: LoadOptions;
  #release: () => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(client: RegistryClient, current: ResolvedVersion, options: LoadOptions) {
    this.client = client;
    this.current = current;
    this.#options = options;
    this.#release = client.o.store.hold(current.files.map(cacheKey));
  }

  start(model: BrasaModel, check: Promise<UpdateCheck> | null): void {
    // Served from the cache: check the registry in the background.
    this.check = check ?? model.checkForUpdate();
    this.check.catch(() => undefined);
    const every = this.#options.updateInterval;
    if (every && every > 0) {
      this.#timer = setInterval(() => void model.checkForUpdate().catch(() => undefined), every);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** One update check or switch at a time per model. */
  serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(task);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async checkForUpdate(model: BrasaModel): Promise<UpdateCheck> {
    const client = this.client;
    const from = this.current.version;
    const done = (result: UpdateCheck): UpdateCheck => {
      client.o.emit({ type: 'update-check', outcome: result.outcome, version: result.version, status: result.status, reason: result.reason });
      return result;
    };
    const answer = await client.fetchManifest();
    if (!answer.ok) return done({ outcome: 'failed', version: from, status: null, reason: answer.error.message });
    let target: ResolvedVersion;
    try {
      target = client.resolve(answer.body);
    } catch (err) {
      return done({ outcome: 'failed', version: from, status: answer.status, reason: BrasaError.from(err).message });
    }
    await client.rememberManifest(answer.body, answer.etag);
    if (target.version === from) {
      await client.setPending(null);
      return done({ outcome: 'current', version: from, status: answer.status, reason: null });
    }
    const refused = await client.rejection(target.version);
    if (refused) return done({ outcome: 'rejected', version: target.version, status: answer.status, reason: refused.reason });
    try {
      // Download and verify now, so update() (or the next load) switches without waiting.
      await client.weights(target);
    } catch (err) {
      const error = BrasaError.from(err);
      if (REFUSALS.has(error.code)) {
        await client.reject(target.version, error);
        client.o.emit({ type: 'rollback', rejected: target.version, version: from, code: error.code, reason: error.message });
        return done({ outcome: 'rejected', version: target.version, status: answer.status, reason: error.message });
      }
      return done({ outcome: 'failed', version: target.version, status: answer.status, reason: error.message });
    }
    await client.setPending(target);
    client.o.emit({ type: 'update-available', from, to: target.version, channel: target.channel, viaRollout: target.viaRollout, notes: target.notes });
    const result = done({ outcome: 'available', version: target.version, status: answer.status, reason: null });
    if (this.#options.autoUpdate) await this.update(model);
    return result;
  }

  async update(model: BrasaModel): Promise<UpdateResult> {
    const client = this.client;
    let pending = await client.pending();
    if (!pending || pending.version === this.current.version) {
      await this.checkForUpdate(model);
      pending = await client.pending();
    }
    const from = this.current.version;
    if (!pending || pending.version === from) return { updated: false, version: from, reason: null };
    try {
      const { bytes } = await client.weights(pending);
      const inner = await model._wasm.loadModel(model.name, bytes, model.backend);
      try {
        if (pending.golden) await runGolden(inner, pending.golden, client);
      } catch (err) {
        inner.free();
        throw err;
      }
      const release = client.o.store.hold(pending.files.map(cacheKey));
      model._swap(inner);
      this.#release();
      this.#release = release;
      this.current = pending;
      await client.adopt(pending);
      client.o.emit({ type: 'updated', from, to: pending.version });
      return { updated: true, version: pending.version, reason: null };
    } catch (err) {
      const error = BrasaError.from(err);
      if (REFUSALS.has(error.code)) await client.reject(pending.version, error);
      client.o.emit({ type: 'rollback', rejected: pending.version, version: from, code: error.code, reason: error.message });
      return { updated: false, version: from, reason: error.message };
    }
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#release();
  }
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
  #versioned: Versioned | null;
  #metrics: InstanceType<WasmBindings['WasmMetrics']>;
  /** @internal The wasm build the model runs in. */
  readonly _wasm: WasmBindings;

  /** @internal */
  constructor(
    name: string,
    inner: WasmModel,
    backend: Backend,
    requested: BackendPreference,
    fallbackReason: string | null,
    adapter: AdapterInfo | null,
    wasm: WasmBindings,
    versioned: Versioned | null,
  ) {
    super();
    this.name = name;
    this.#inner = inner;
    this.backend = backend;
    this.requestedBackend = requested;
    this.fallbackReason = fallbackReason;
    this.adapter = adapter;
    this._wasm = wasm;
    this.#versioned = versioned;
    this.#info = inner.info() as ModelInfo;
    this.#metrics = new wasm.WasmMetrics();
  }

  /** The registry version running (`null` for a model loaded from `weights`). */
  get version(): string | null {
    return this.#versioned?.current.version ?? null;
  }

  /** The channel it came through (`null` for exact versions, ranges and plain weights). */
  get channel(): string | null {
    return this.#versioned?.current.channel ?? null;
  }

  /** Everything the registry says about the running version (files, rollout, notes). */
  get release(): ResolvedVersion | null {
    return this.#versioned?.current ?? null;
  }

  /** The spec it follows, e.g. `mnist@stable` (`null` without a registry). */
  get spec(): string | null {
    return this.#versioned?.client.o.spec.canonical ?? null;
  }

  /** The most recent update check (started in the background after a load from cache). */
  get updateCheck(): Promise<UpdateCheck> | null {
    return this.#versioned?.check ?? null;
  }

  /**
   * Ask the registry whether the spec now resolves to another version (revalidating the
   * manifest with its ETag). A new version is downloaded and verified, then announced with
   * `update-available`; nothing switches until {@link update} (or the next load).
   */
  checkForUpdate(): Promise<UpdateCheck> {
    const versioned = this.#registryLink();
    const check = versioned.serial(() => versioned.checkForUpdate(this));
    versioned.check = check;
    return check;
  }

  /**
   * Switch to the version the last update check found (checking first if none is pending).
   * The new weights must load and pass the version's golden check; otherwise the model stays
   * on its version and emits `rollback`. Runs in flight finish on the old weights.
   */
  update(): Promise<UpdateResult> {
    const versioned = this.#registryLink();
    return versioned.serial(() => versioned.update(this));
  }

  /** @internal Replace the wasm model (after an update passed its checks). */
  _swap(inner: WasmModel): void {
    const old = this.#live();
    this.#inner = inner;
    this.#info = inner.info() as ModelInfo;
    old.free();
  }

  #registryLink(): Versioned {
    this.#live();
    if (!this.#versioned) throw new BrasaError('invalid_spec', `model ${this.name} was loaded from weights, not from a registry: it has no versions`);
    return this.#versioned;
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
    const started = performance.now();
    let raw: { batch: number; classes: number; logits: Float32Array; probabilities: Float32Array; labels: Uint32Array };
    try {
      const inner = this.#live();
      raw = await inner.run(toFloat32(input));
    } catch (err) {
      const error = BrasaError.from(err, 'execution');
      this.#record(error.code, 0, performance.now() - started);
      throw error;
    }
    const latencyMs = performance.now() - started;
    this.#record('ok', raw.batch, latencyMs);
    this.dispatchEvent(new BrasaEvent({ type: 'run', batch: raw.batch, latencyMs, backend: this.backend, version: this.version }));
    return { ...raw, label: raw.labels[0] ?? -1, backend: this.backend, latencyMs };
  }

  #labels(): Record<string, string> {
    return { model: this.name, version: this.version ?? '', backend: this.backend };
  }

  #record(outcome: string, batch: number, latencyMs: number): void {
    const labels = this.#labels();
    try {
      this.#metrics.inc('brasa_requests_total', { ...labels, outcome }, 1);
      this.#metrics.observe('brasa_request_duration_seconds', labels, latencyMs / 1000);
      if (outcome === 'ok') {
        this.#metrics.observe('brasa_compute_seconds', labels, latencyMs / 1000);
        this.#metrics.observe('brasa_batch_size', labels, batch);
        this.#metrics.inc('brasa_inferences_total', labels, batch);
      } else {
        this.#metrics.inc('brasa_request_errors_total', { model: this.name, code: outcome }, 1);
      }
    } catch {
      // An aborted wasm instance cannot record; the run's own error says why.
    }
  }

  /** @internal A model file of `version` came from the cache, or was downloaded. */
  _recordFile(version: string, fromCache: boolean, bytes: number): void {
    const labels = { model: this.name, version };
    if (fromCache) this.#metrics.inc('brasa_cache_hits_total', labels, 1);
    else {
      this.#metrics.inc('brasa_cache_misses_total', labels, 1);
      this.#metrics.inc('brasa_fetched_bytes_total', labels, bytes);
    }
  }

  /**
   * This model's metrics: runs and errors by outcome, latency and batch-size histograms,
   * cache hits and misses, bytes fetched, labelled by model, version and backend. Every run
   * also dispatches a `run` event (`e.detail`: batch, latencyMs, backend, version).
   */
  metrics(): Record<string, unknown> {
    return this.#metrics.snapshot() as Record<string, unknown>;
  }

  /** {@link metrics} in Prometheus' text format. */
  metricsText(): string {
    return this.#metrics.render();
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
    this.#versioned?.stop();
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
