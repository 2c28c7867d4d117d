/**
 * A loaded model: {@link BrasaModel}.
 * @module
 */
import { BrasaError, describe } from './errors.js';
import type { Bindings, WasmMetrics, WasmModel, WasmTensor } from './glue.js';
import { abortOf, bindRuntime, gpuDeviceOf, guardCall, release, runtimeOf, type GpuDevice, type Ticket } from './internal.js';
import { fromWasm, toWasmFeeds, weightsView } from './tensor.js';
import type {
  AdapterInfo,
  Backend,
  BackendPreference,
  BuildInfo,
  DeviceLostEvent,
  Feed,
  Feeds,
  Fetches,
  ModelEvent,
  ModelInfo,
  ModelPackage,
  ResolvedVersion,
  Signature,
  TensorTypes,
  UpdateCheck,
  UpdateResult,
} from './types.js';
import type { Versioned } from './versioned.js';

/** How long a run that failed the way a lost GPU device fails it waits to hear of the loss. */
const LOSS_GRACE_MS = 1000;

/** How many times a run is answered again after its GPU device was lost under it (the model
 * recovering each time); one more loss fails it. Bounds a run on a GPU that keeps failing. */
const RETRIES_AFTER_LOSS = 3;

/** An event of a model; `detail` is the {@link ModelEvent}. */
export class BrasaEvent<E extends ModelEvent = ModelEvent> extends Event {
  readonly detail: E;
  constructor(detail: E) {
    super(detail.type);
    this.detail = detail;
  }
}

/** @internal What the loader hands a new model. */
export interface ModelInit {
  pkg: ModelPackage;
  inner: WasmModel;
  bindings: Bindings;
  /** The wasm instance of `bindings` that `inner` lives in. */
  instance: Ticket;
  backend: Backend;
  build: BuildInfo;
  requested: BackendPreference;
  fallbackReason: string | null;
  adapter: AdapterInfo | null;
  versioned: Versioned | null;
  /** `LoadOptions.deviceLost`. */
  deviceLost: 'fail' | 'cpu' | 'reload';
  /** Load the model again on `preference` after its GPU device was lost: `weights` when given
   * (set with `setWeights`), else the weights it was loaded with. */
  recover: (preference: BackendPreference, weights: Uint8Array | null, reason: string) => Promise<Recovered>;
  /** Fetch a file the model's tasks need (a tokenizer), as the loader fetches weights. */
  fetchBytes: (source: string | URL, what: string, signal?: AbortSignal) => Promise<Uint8Array>;
}

/** @internal A model loaded again by {@link ModelInit.recover}. */
export interface Recovered {
  inner: WasmModel;
  bindings: Bindings;
  instance: Ticket;
  backend: Backend;
  build: BuildInfo;
  fallbackReason: string | null;
}

/**
 * A model with weights, on one backend: `I` and `O` name its inputs and outputs with their
 * dtypes (from its package's types). Dispose of it to free its memory.
 *
 * Events (`addEventListener(type, (e) => e.detail)`): `run` after every successful run
 * ({@link RunEvent}), `lost` when its GPU device was lost ({@link DeviceLostEvent}), and for
 * registry-backed models `update-available`, `updated`, `rollback`, `offline`,
 * `update-check` ({@link RegistryEvent}).
 */
export class BrasaModel<I extends TensorTypes = TensorTypes, O extends TensorTypes = TensorTypes> extends EventTarget {
  /** The model's name. */
  readonly name: string;
  /** The backend that was asked for. */
  readonly requestedBackend: BackendPreference;
  /** The GPU adapter (also set after a fallback caused by a failing GPU). */
  readonly adapter: AdapterInfo | null;
  /** Wall time of the last successful {@link run} (ms), input copy-in and result copy-out included. */
  lastLatencyMs: number | null = null;
  #inner: WasmModel | null;
  #info: ModelInfo;
  #versioned: Versioned | null;
  #metrics: WasmMetrics;
  /** The wasm instance `#metrics` lives in (the one the model loaded in: a switch to another
   * backend after a lost GPU device keeps its metrics there). */
  #metricsInstance: Ticket;
  /** The wasm instance `#inner` lives in; once it aborted, nothing calls it. */
  #instance: Ticket;
  #bindings: Bindings;
  #backend: Backend;
  #build: BuildInfo;
  #fallbackReason: string | null;
  #dead = false;
  /** The GPU device `#inner` runs on (`null` on the CPU). */
  #gpu: GpuDevice | null = null;
  /** Why the model cannot run: its GPU device was lost (and it has not recovered). */
  #lost: BrasaError | null = null;
  /** The switch to another device or backend after a loss, while it runs. */
  #recovering: Promise<void> | null = null;
  #deviceLost: ModelInit['deviceLost'];
  #recover: ModelInit['recover'];
  /** Weights given to {@link setWeights}, kept for a recovery (`deviceLost` not `fail`). */
  #weights: Uint8Array | null = null;

  /** @internal Use `loadModel`. */
  constructor(init: ModelInit) {
    super();
    this.name = init.pkg.name;
    this.#inner = init.inner;
    this.#backend = init.backend;
    this.#build = init.build;
    this.requestedBackend = init.requested;
    this.#fallbackReason = init.fallbackReason;
    this.adapter = init.adapter;
    this.#versioned = init.versioned;
    this.#instance = init.instance;
    this.#metricsInstance = init.instance;
    this.#bindings = init.bindings;
    this.#deviceLost = init.deviceLost;
    this.#recover = init.recover;
    this.#info = guardCall(init.instance, () => infoOf(init.inner, init.pkg));
    this.#metrics = guardCall(init.instance, () => new init.bindings.WasmMetrics());
    this.#watchGpu(init.inner);
    const self = this;
    bindRuntime(this, {
      // Getters: after a lost GPU device the model may run in another build's instance.
      get bindings() {
        return self.#bindings;
      },
      get instance() {
        return self.#instance;
      },
      pkg: init.pkg,
      swap: (inner) => {
        const instance = this.#instance;
        let old: WasmModel;
        try {
          old = this.#live();
        } catch (err) {
          // Disposed, its instance aborted meanwhile (then `inner` is of it too), or its GPU
          // device lost.
          release(instance, inner);
          throw err;
        }
        this.#info = guardCall(instance, () => infoOf(inner, init.pkg));
        this.#inner = inner;
        this.#watchGpu(inner);
        release(instance, old);
      },
      recordFile: (version, fromCache, bytes) => this.#recordFile(version, fromCache, bytes),
      fetchBytes: init.fetchBytes,
    });
  }

  /** The backend it runs on (after a lost GPU device with `deviceLost: 'cpu'`, the CPU). */
  get backend(): Backend {
    return this.#backend;
  }

  /**
   * The wasm build it runs: `webgpu`, or which CPU build (`cpu`, `cpu-relaxed`,
   * `cpu-threads`, `cpu-threads-relaxed`), with how many threads, whether it uses relaxed
   * SIMD, and why a faster CPU build of the package was passed over (`reason`).
   */
  get build(): BuildInfo {
    return Object.freeze({ ...this.#build });
  }

  /** Why it runs on CPU although WebGPU was acceptable (WebGPU unavailable, or its device
   * lost); `null` when it did not fall back. */
  get fallbackReason(): string | null {
    return this.#fallbackReason;
  }

  /** Watch the GPU device `inner` runs on, if any. */
  #watchGpu(inner: WasmModel): void {
    const gpu = this.#backend === 'webgpu' ? gpuDeviceOf(this.#bindings, this.#instance, inner) : null;
    this.#gpu = gpu;
    if (gpu) void gpu.lost.then((reason) => this.#onDeviceLost(gpu, reason));
  }

  /** The GPU device `gpu` was lost: stop using it, and recover where the caller allowed it. */
  #onDeviceLost(gpu: GpuDevice, reason: string): void {
    // Already handled (a failed run saw it first), moved on to another device, or disposed.
    if (this.#gpu !== gpu || this.#inner === null) return;
    this.#gpu = null;
    const recovery = this.#deviceLost;
    const lost = (error: string | null) =>
      new BrasaError(
        'execution',
        `the WebGPU device ${this.name} ran on was lost (${reason})${error ? ` and it could not recover: ${error}` : ''}; load the model again (a new load gets a new device)${recovery === 'fail' ? ", or load it with deviceLost: 'cpu' or 'reload' to recover by itself" : ''}`,
      );
    this.#lost = lost(null);
    const emit = (state: DeviceLostEvent['state'], error: string | null) =>
      this.dispatchEvent(new BrasaEvent({ type: 'lost', reason, state, recovery, backend: state === 'recovered' ? this.#backend : null, error }));
    if (recovery === 'fail') {
      // No more update checks: it cannot switch versions any more.
      this.#versioned?.stop();
      emit('lost', null);
      return;
    }
    const old = { inner: this.#inner, instance: this.#instance };
    // Set before the event: a listener's run waits for the switch.
    this.#recovering = (async () => {
      try {
        const next = await this.#recover(recovery === 'cpu' ? 'cpu' : this.requestedBackend, this.#weights, reason);
        if (this.#inner === null) {
          // Disposed meanwhile.
          release(next.instance, next.inner);
          return;
        }
        this.#bindings = next.bindings;
        this.#instance = next.instance;
        this.#backend = next.backend;
        this.#build = next.build;
        this.#info = guardCall(next.instance, () => infoOf(next.inner, runtimeOf(this).pkg));
        this.#inner = next.inner;
        if (next.backend === 'cpu') this.#fallbackReason = next.fallbackReason;
        this.#lost = null;
        this.#watchGpu(next.inner);
        emit('recovered', null);
      } catch (err) {
        const error = BrasaError.from(err);
        this.#lost = lost(error.message);
        this.#versioned?.stop();
        emit('failed', error.message);
        return;
      } finally {
        this.#recovering = null;
      }
      // Its tensors were on the lost device: nothing to give back but the wasm objects.
      try {
        release(old.instance, old.inner);
      } catch {
        // A lost device may refuse; the memory is gone with it.
      }
    })();
    emit('lost', null);
  }

  /**
   * After a run on `gpu` failed with `error`: was the device lost? Then start the recovery and
   * say whether to run again. The browser may fail the run (a buffer that cannot be mapped)
   * before it resolves `GPUDevice.lost`: for errors of that kind, wait for it a little.
   */
  async #lostDuring(gpu: GpuDevice, error: BrasaError): Promise<boolean> {
    let reason = gpu.reason();
    if (reason === undefined && /poison|lost|destroy|map/i.test(error.message)) {
      let timer: Parameters<typeof clearTimeout>[0];
      const grace = new Promise<undefined>((resolve) => {
        timer = setTimeout(resolve, LOSS_GRACE_MS);
      });
      reason = await Promise.race([gpu.lost, grace]);
      clearTimeout(timer);
    }
    if (reason !== undefined) this.#onDeviceLost(gpu, reason);
    if (this.#recovering) await this.#recovering;
    return gpu !== null && this.#gpu !== gpu && this.#lost === null && this.#inner !== null;
  }

  /**
   * Name, backend, signature, the package's metadata, parameter count, weight size and the
   * limits of one run (`maxBatch` rows, `maxElements` values over all feeds).
   */
  get info(): ModelInfo {
    return this.#info;
  }

  /** What the model takes and gives: each tensor's name, dtype and dims. */
  get signature(): Signature {
    return this.#info.signature;
  }

  /** The names of its inputs, in signature order. */
  get inputNames(): string[] {
    return this.#info.signature.inputs.map((t) => t.name);
  }

  /** The names of its outputs, in signature order. */
  get outputNames(): string[] {
    return this.#info.signature.outputs.map((t) => t.name);
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

  /** Names of the running version's assets (files tasks read, e.g. `tokenizer`); empty without a registry. */
  get assets(): string[] {
    return (this.#versioned?.current.files ?? []).flatMap((f) => (f.name ? [f.name] : []));
  }

  /**
   * The bytes of the running version's asset `name` (published with `--asset name=PATH`,
   * e.g. a tokenizer.json): verified against the manifest, from the cache when there.
   * @throws BrasaError `not_found` when the version has no such asset (or the model was loaded
   * from weights); as the fetcher (`network`, `integrity`).
   */
  async asset(name: string): Promise<Uint8Array> {
    const versioned = this.#versioned;
    const file = versioned?.current.files.find((f) => f.name === name);
    if (!versioned || !file) {
      throw new BrasaError('not_found', `model ${this.name}${versioned ? ` ${versioned.current.version}` : ' (loaded from weights)'} has no asset \`${name}\`${this.assets.length ? `; it has: ${this.assets.join(', ')}` : ''}`);
    }
    const { bytes } = await versioned.client.files(versioned.current, [file]);
    return bytes.get(file)!;
  }

  /** The most recent update check (started in the background after a load from cache). */
  get updateCheck(): Promise<UpdateCheck> | null {
    return this.#versioned?.check ?? null;
  }

  /** Whether {@link dispose} was called. */
  get disposed(): boolean {
    return this.#inner === null;
  }

  /**
   * Bytes of linear memory of the wasm instance the model runs in (shared by the models of
   * the same build in this realm; a WebGPU build's tensors live on the GPU instead). It
   * never shrinks: the high-water mark, which platform memory limits apply to. `null` for a
   * build from before brasa 0.1's `memoryBytes` export, or once the instance aborted.
   */
  get memoryBytes(): number | null {
    const runtime = runtimeOf(this);
    if (abortOf(runtime.instance) || typeof runtime.bindings.memoryBytes !== 'function') return null;
    return runtime.bindings.memoryBytes();
  }

  /**
   * Run the model once.
   *
   * `feeds` names every input: `{ pixels: tensor }`, where a tensor is a {@link Tensor} or a
   * plain `{ dtype, dims, data }` (`data` the dtype's typed array: float32 `Float32Array`,
   * float16 `Uint16Array` bits (or a `Float32Array`, converted), int64 `BigInt64Array`, int32
   * `Int32Array`, uint8 and bool `Uint8Array`), or a bare typed array / array of numbers whose
   * dims are the input's fixed dims with its one variable dim (usually the batch) derived from
   * the length. A single-input model also takes the tensor or array itself: `run(pixels)`.
   *
   * Resolves to every output by name, as {@link Tensor}s.
   *
   * @throws BrasaError `invalid_input` (an unknown or missing input, wrong dtype, a dimension
   *   that does not match, wrong element count, NaN/Infinity, a value out of range, a batch
   *   over `info.limits`; the message names the tensor and dimension), `execution`,
   *   `disposed`. A rejected call leaves the model usable, except for `internal`: the wasm
   *   instance aborted (a trap, e.g. burn panicking on a shape the graph cannot compute).
   *   Then this model, and every other model of the package on that backend loaded before,
   *   rejects every later call with `internal` ("load the model again"); a new `loadModel`
   *   of the package runs on a fresh instance. A lost GPU device rejects with `execution`
   *   naming the loss, unless the model was loaded with `deviceLost: 'cpu'` or `'reload'`:
   *   then the run is answered after the switch (after each of up to 3 losses; a 4th
   *   rejects it with `execution`).
   */
  async run(feeds: Feeds<I> | Feed<I[keyof I]>): Promise<Fetches<O>> {
    const started = performance.now();
    let outputs!: WasmTensor[];
    let batch = 1;
    for (let losses = 0; ; ) {
      // A switch after a lost GPU device: runs wait for it, then go where it went.
      if (this.#recovering) await this.#recovering;
      const gpu = this.#gpu;
      try {
        const inner = this.#live();
        const tensors = toWasmFeeds(this.#info.signature, feeds);
        batch = batchOf(this.#info.signature, tensors);
        outputs = await guardCall(this.#instance, () => inner.run(tensors));
        break;
      } catch (err) {
        let error = BrasaError.from(err, 'execution');
        // Its device was lost under this run: once the model recovered, run it there (again,
        // should the new device be lost too, up to a bound).
        if (error.code === 'execution' && gpu && (await this.#lostDuring(gpu, error))) {
          losses += 1;
          if (losses <= RETRIES_AFTER_LOSS) continue;
          error = new BrasaError('execution', `the WebGPU device ${this.name} ran on was lost ${losses} times during this run (last: ${gpu.reason() ?? 'unknown'}); it recovered: run it again`, { cause: err });
        }
        this.#record(error.code, 0, performance.now() - started);
        // The loss says more than wgpu's "device is poisoned".
        throw error.code === 'execution' && gpu && this.#lost ? this.#lost : error;
      }
    }
    const result: Record<string, unknown> = {};
    for (const t of outputs) result[t.name] = fromWasm(t);
    const latencyMs = performance.now() - started;
    this.lastLatencyMs = latencyMs;
    this.#record('ok', batch, latencyMs);
    this.dispatchEvent(new BrasaEvent({ type: 'run', batch, latencyMs, backend: this.backend, version: this.version }));
    return result as Fetches<O>;
  }

  /**
   * Ask the registry whether the spec now resolves to another version (revalidating the
   * manifest with its ETag). A new version is downloaded and verified, then announced with
   * `update-available`; nothing switches until {@link update} (or the next load).
   * @throws BrasaError `invalid_spec` for a model loaded from `weights`.
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

  #registryLink(): Versioned {
    this.#live();
    if (!this.#versioned) throw new BrasaError('invalid_spec', `model ${this.name} was loaded from weights, not from a registry: it has no versions`);
    return this.#versioned;
  }

  #labels(): Record<string, string> {
    return { model: this.name, version: this.version ?? '', backend: this.backend };
  }

  #record(outcome: string, batch: number, latencyMs: number): void {
    // An aborted wasm instance cannot record; the run's own error says why.
    if (abortOf(this.#metricsInstance)) return;
    const labels = this.#labels();
    try {
      this.#metrics.inc('brasa_requests_total', { ...labels, outcome }, 1);
      this.#metrics.observe('brasa_request_duration_seconds', labels, latencyMs / 1000);
      if (outcome === 'ok') {
        this.#metrics.observe('brasa_compute_seconds', labels, latencyMs / 1000);
        this.#metrics.observe('brasa_batch_size', labels, batch);
        this.#metrics.inc('brasa_inferences_total', labels, batch);
      } else {
        this.#metrics.inc('brasa_request_errors_total', { ...labels, code: outcome }, 1);
      }
    } catch {
      // Metrics never stop a run.
    }
  }

  #recordFile(version: string, fromCache: boolean, bytes: number): void {
    if (abortOf(this.#metricsInstance)) return;
    const labels = { model: this.name, version };
    try {
      if (fromCache) this.#metrics.inc('brasa_cache_hits_total', labels, 1);
      else {
        this.#metrics.inc('brasa_cache_misses_total', labels, 1);
        this.#metrics.inc('brasa_fetched_bytes_total', labels, bytes);
      }
    } catch {
      // As above.
    }
  }

  /**
   * This model's metrics: runs and errors by outcome, latency and batch-size histograms,
   * cache hits and misses, bytes fetched, labelled by model, version and backend.
   * @throws BrasaError `internal` once its wasm instance aborted (the metrics were in it).
   */
  metrics(): Record<string, unknown> {
    return guardCall(this.#metricsInstance, () => this.#metrics.snapshot()) as Record<string, unknown>;
  }

  /** {@link metrics} in Prometheus' text format. */
  metricsText(): string {
    return guardCall(this.#metricsInstance, () => this.#metrics.render());
  }

  /**
   * Swap in other weights for the same model. Validated completely before the swap.
   * @throws BrasaError `invalid_weights` (corrupt, truncated, non-finite, another model's, a
   *   detached buffer); nothing changes then. `disposed` after {@link dispose}.
   */
  async setWeights(weights: ArrayBuffer | ArrayBufferView): Promise<void> {
    const inner = this.#live();
    const bytes = weightsView(weights);
    if (!bytes) throw new BrasaError('invalid_weights', `weights must be an ArrayBuffer or typed array; got ${describe(weights)}`);
    try {
      // A threaded build's model answers from its Worker: a promise.
      await guardCall(this.#instance, () => inner.setWeights(bytes));
    } catch (err) {
      throw BrasaError.from(err, 'invalid_weights');
    }
    // What a recovery after a lost GPU device loads again.
    if (this.#deviceLost !== 'fail' && this.#backend === 'webgpu') this.#weights = bytes.slice();
    this.#info = { ...this.#info, ...(guardCall(this.#instance, () => inner.info()) as Partial<ModelInfo>) };
  }

  /** Free the model's memory. Runs already started finish; later calls reject with `disposed`. */
  dispose(): void {
    const inner = this.#inner;
    this.#inner = null;
    this.#versioned?.stop();
    // An aborted instance is gone with its memory: nothing to free there (and its objects'
    // `free` would free in the glue's new instance).
    release(this.#instance, inner);
  }

  /** The wasm model, while it is neither disposed nor dead with its wasm instance. */
  #live(): WasmModel {
    if (!this.#inner) throw new BrasaError('disposed', `model ${this.name} was disposed`);
    const dead = abortOf(this.#instance);
    if (dead) {
      if (!this.#dead) {
        this.#dead = true;
        // No more update checks: it cannot switch versions any more.
        this.#versioned?.stop();
      }
      throw dead;
    }
    if (this.#lost) throw this.#lost;
    return this.#inner;
  }
}

/** `info()` of a wasm model, with the package's metadata where the build gives none. */
function infoOf(inner: WasmModel, pkg: ModelPackage): ModelInfo {
  const info = inner.info();
  return {
    name: info.name ?? pkg.name,
    backend: info.backend,
    signature: info.signature ?? pkg.signature,
    metadata: info.metadata ?? pkg.metadata ?? null,
    parameters: info.parameters,
    weightBytes: info.weightBytes,
    limits: info.limits,
  };
}

/** Rows in a run: the batch dim of the first batched input, else 1. */
function batchOf(signature: Signature, tensors: WasmTensor[]): number {
  for (const spec of signature.inputs) {
    const axis = spec.dims.indexOf('batch');
    if (axis < 0) continue;
    const t = tensors.find((x) => x.name === spec.name);
    if (t && t.dims.length > axis) return t.dims[axis];
  }
  return 1;
}
