/**
 * Loading models from model packages: platforms, instantiating a package's builds, choosing
 * the backend (WebGPU with a fallback to CPU), reading weights.
 * @module
 */
import { CPU_BUILDS, isThreaded } from './builds.js';
import type { ModelCache } from './cache.js';
import { BrasaError, describe, message } from './errors.js';
import { hasRelaxedSimd, hasWasmThreads } from './features.js';
import type { Bindings, Glue, WasmModel } from './glue.js';
import { guardCall, registerGlue, revive, ticket, type Ticket } from './internal.js';
import { BrasaModel } from './model.js';
import { checkLoadOptions } from './options.js';
import { weightsView } from './tensor.js';
import type { Fetcher } from './registry.js';
import { AUTO_THREADS_MAX, ThreadedWorker, threadedBindings, type ThreadSupport } from './threads.js';
import type { AdapterInfo, Backend, BackendPreference, BuildInfo, BuildName, CpuBuildName, FallbackInfo, LoadOptions, ModelBuild, ModelPackage, TensorTypes, WasmSource, WeightsSource } from './types.js';
import { loadVersioned, registryUrl, type Versioned } from './versioned.js';
import { probeWebGpu, type Probe } from './webgpu.js';

/** What differs between browsers, workers, Deno and Node. */
export interface Platform {
  /** Initialise a build's glue with its wasm: `source` when given, else `build.wasm`. */
  instantiate(glue: Glue, build: ModelBuild, source: WasmSource | undefined): Promise<void>;
  /** Read the bytes behind a URL. */
  fetchBytes(url: URL, signal?: AbortSignal): Promise<Uint8Array>;
  /** The base relative URLs resolve against. */
  baseUrl(): string | undefined;
  /** GET for the registry fetcher (manifests must bypass any HTTP cache: brasa revalidates). */
  fetch: Fetcher;
  /** The cache registry-backed models use unless told otherwise. */
  defaultCache(): ModelCache;
  /**
   * The package of a registry version whose code is in the registry (`publish --code`), for
   * loads given no package; absent where code cannot be loaded at run time (Workers).
   */
  packageFromRegistry?: (ctx: LoaderContext, spec: string, registry: URL, options: LoadOptions) => Promise<ModelPackage>;
  /** Threaded CPU builds' Workers; absent where there are none (Cloudflare Workers). */
  threads?: ThreadSupport;
  /** Why there are no threads here, where `threads` is absent. */
  noThreads?: string;
}


/** The build of a WebGPU model. */
const WEBGPU_BUILD: BuildInfo = { name: 'webgpu', threads: 1, relaxedSimd: false, reason: null };

/** The format of model packages this brasa reads. */
export const PACKAGE_FORMAT = 'brasa-model@1';

/**
 * `loadModel` of one platform.
 *
 * - `loadModel(pkg, { weights })`: the package's model with these weights (a URL, bytes or a
 *   `Response`), as they are: no versions, no cache.
 * - `loadModel(pkg, { registry })`: the package's model following the `stable` channel of its
 *   folder in a brasa registry.
 * - `loadModel('mnist@canary', { registry, build: pkg })`: a spec (`mnist`, `mnist@canary`,
 *   `mnist@1.2.0`, `mnist@^1`) of a registry; the package's `name` must be the spec's.
 *
 * With a registry, files are verified (sha256) before use and cached, the version's golden
 * check must pass, and the model follows its channel (`model.version`, `update-available`,
 * `model.update()`).
 *
 * With `backend: 'auto'` brasa uses WebGPU when the package has a WebGPU build,
 * `navigator.gpu` gives an adapter and the GPU initialises (and, from a registry, the version
 * passes its golden check there); otherwise it runs on the CPU build and says why
 * (`onFallback`, `model.fallbackReason`). With `backend: 'webgpu'` a missing GPU is an error.
 * After the browser lost a GPU device, the next load gets a new one; a model on the lost one
 * emits `lost` and fails, or recovers as `deviceLost` allows.
 *
 * @throws BrasaError `invalid_spec` (an option of the wrong type or out of range, named in
 *   the message, before any work; with a registry, a spec that does not parse),
 *   `unknown_model` (no package given, or its name is not the spec's), `incompatible` (not a
 *   `brasa-model@1` package, or a build that is not the package's model), `invalid_weights`,
 *   `backend_unavailable`, `network`, `wasm_load`, and from a registry `not_found`,
 *   `invalid_manifest`, `integrity`, `golden_check`.
 */
export interface LoadModel {
  <I extends TensorTypes, O extends TensorTypes>(model: ModelPackage<I, O>, options: LoadOptions): Promise<BrasaModel<I, O>>;
  <I extends TensorTypes, O extends TensorTypes>(spec: string, options: LoadOptions & { build: ModelPackage<I, O> }): Promise<BrasaModel<I, O>>;
}

/** A model on its backend, before it is wrapped. */
export interface Loaded {
  inner: WasmModel;
  bindings: Bindings;
  /** The wasm instance of `bindings` that `inner` lives in. */
  instance: Ticket;
  backend: Backend;
  /** The wasm build it runs, its threads, and why a faster CPU build was passed over. */
  build: BuildInfo;
  fallbackReason: string | null;
  adapter: AdapterInfo | null;
  /** What stopped WebGPU, when it fell back: the cause alone (`requestDevice() failed: …`). */
  gpuFailure?: string | null;
}

/** The cause behind each `backend_unavailable` error of {@link LoaderContext.instantiate} for WebGPU. */
const gpuCauses = new WeakMap<BrasaError, string>();

/** Why a WebGPU build could not load: the build's own reason (the cause alone) when it gives
 * one, else its message. */
function gpuCause(error: BrasaError | null): string {
  const reason = (error?.cause as { reason?: unknown } | undefined)?.reason;
  return typeof reason === 'string' ? reason : (error?.message ?? 'unknown error');
}

/** What the registry lifecycle needs of the loader. */
export interface LoaderContext {
  platform: Platform;
  /** The instantiated build `backend` of `pkg` (one per package and build per realm), on a
   * live wasm instance: a fresh one if the last aborted. */
  bindings(pkg: ModelPackage, backend: Backend, options: LoadOptions): Promise<Bindings>;
  /** Load weights on the best acceptable backend. */
  instantiate(pkg: ModelPackage, weights: Uint8Array, preference: BackendPreference, probe: Probe | null, options: LoadOptions): Promise<Loaded>;
  /** The WebGPU probe, or `null` where WebGPU is not wanted or not built. */
  probe(pkg: ModelPackage, preference: BackendPreference): Promise<Probe | null>;
  checkPreference(options: LoadOptions): BackendPreference;
  /** Wrap a loaded model (and report a fallback). `weights`: what it was loaded with, for a
   * recovery after a lost GPU device (registry-backed models read theirs from the cache). */
  create(pkg: ModelPackage, loaded: Loaded, preference: BackendPreference, versioned: Versioned | null, options: LoadOptions, weights?: Uint8Array): BrasaModel;
}

/** The body of a successful response; an HTTP error status is a `network` error. */
export async function responseBytes(response: Response, url: string): Promise<Uint8Array> {
  if (!response.ok) throw new BrasaError('network', `GET ${url}: HTTP ${response.status} ${response.statusText}`.trim());
  return new Uint8Array(await response.arrayBuffer());
}

/** `pkg` if it is a model package this brasa reads. */
export function checkPackage(pkg: unknown): ModelPackage {
  if (typeof pkg !== 'object' || pkg === null) {
    throw new BrasaError(
      'unknown_model',
      `no model package given (got ${describe(pkg)}): pass the package \`brasa build\` made, e.g. \`import mnist from './mnist/index.js'; loadModel(mnist, …)\` or \`loadModel('mnist@stable', { registry, build: mnist })\``,
    );
  }
  const p = pkg as Partial<ModelPackage>;
  if (p.format !== PACKAGE_FORMAT) {
    throw new BrasaError('incompatible', `not a brasa model package of format ${PACKAGE_FORMAT} (format: ${JSON.stringify(p.format)}); rebuild it with this brasa's \`brasa build\``);
  }
  if (typeof p.name !== 'string' || typeof p.builds !== 'object' || p.builds === null || !Array.isArray(p.signature?.inputs) || !Array.isArray(p.signature?.outputs)) {
    throw new BrasaError('incompatible', 'the model package lacks its name, signature or builds');
  }
  if (!Object.values(p.builds).some(Boolean)) throw new BrasaError('incompatible', `the model package ${p.name} has no builds`);
  return p as ModelPackage;
}

/** A model name as specs have them (`crates/brasa-registry/src/spec.rs`). */
const MODEL_NAME = /^[a-z0-9._-]{1,64}$/;

/** The model name of a registry spec (`mnist@canary` -> `mnist`). */
function specName(spec: string): string {
  const at = spec.indexOf('@');
  return at < 0 ? spec : spec.slice(0, at);
}

/** `make()`'s promise, made once per package and build in `store`; a rejected one is
 * forgotten, so a retry can work. */
function memo<T>(store: WeakMap<ModelPackage, Map<BuildName, Promise<T>>>, pkg: ModelPackage, name: BuildName, make: () => Promise<T>): Promise<T> {
  let perPackage = store.get(pkg);
  if (!perPackage) store.set(pkg, (perPackage = new Map()));
  const cache = perPackage;
  let made = cache.get(name);
  if (!made) {
    made = make().catch((err: unknown) => {
      cache.delete(name);
      throw err;
    });
    cache.set(name, made);
  }
  return made;
}

/** Builds a `loadModel` for one platform. */
export function createLoader(platform: Platform): LoadModel {
  // One glue per package and build per realm; a failed one is forgotten so a retry can work.
  // A glue whose wasm instance aborted (a trap) is given a fresh instance by the next call:
  // models of the old instance reject with `internal`, new loads get the new one.
  const instances = new WeakMap<ModelPackage, Map<BuildName, Promise<Bindings>>>();
  // A threaded build's compiled module, per package: each of its Workers instantiates it.
  const modules = new WeakMap<ModelPackage, Map<BuildName, Promise<WebAssembly.Module>>>();

  /** The bindings of `backend` on this thread: for `cpu`, those of the CPU build `options`
   * pick here (for a threaded one, an instance for its registry and serving logic). */
  async function bindings(pkg: ModelPackage, backend: Backend, options: LoadOptions): Promise<Bindings> {
    if (backend === 'webgpu') return buildBindings(pkg, 'webgpu', options);
    return buildBindings(pkg, logicBuild(await chooseCpu(pkg, options)), options);
  }

  /** The build whose instance on this thread serves a CPU model's logic. */
  function logicBuild(choice: BuildInfo): BuildName {
    return isThreaded(choice.name) && !platform.threads?.importsThreadedGlue ? 'cpu' : choice.name;
  }

  /** The compiled module of a threaded build (what its Workers instantiate): the package's,
   * compiled once per realm, or the one `options.wasm` gives (compiled for this load alone: a
   * wrong one must not stay behind for later loads). */
  function threadedModule(pkg: ModelPackage, name: BuildName, options: LoadOptions): Promise<WebAssembly.Module> {
    const compile = async (source: WasmSource) => {
      if (source instanceof WebAssembly.Module) return source;
      const given = source as unknown;
      const bytes = given instanceof ArrayBuffer || ArrayBuffer.isView(given) ? given : await urlBytes(source as string | URL, `the ${name} build's wasm`);
      return WebAssembly.compile(bytes as BufferSource);
    };
    const given = options.wasm?.[name];
    if (given !== undefined) return compile(given);
    return memo(modules, pkg, name, async () => {
      const build = pkg.builds[name]!;
      return compile((await build.wasmBytes?.()) ?? build.wasm);
    });
  }

  function buildBindings(pkg: ModelPackage, backend: BuildName, options: LoadOptions): Promise<Bindings> {
    const instance = memo(instances, pkg, backend, async () => {
      try {
        return await makeBindings(pkg, backend, options);
      } catch (err) {
        throw BrasaError.from(err, 'wasm_load');
      }
    });
    return instance.then((glue) => {
      revive(glue);
      return glue;
    });
  }

  /** `backend`'s glue for `pkg`, instantiated and checked against the package. */
  async function makeBindings(pkg: ModelPackage, backend: BuildName, options: LoadOptions): Promise<Bindings> {
    const build = pkg.builds[backend];
    if (!build) throw new BrasaError('backend_unavailable', `the model package ${pkg.name} has no ${backend} build`);
    let glue: Glue;
    try {
      if (build.threads) {
        // Imported by URL (the package's index.js does not import it: Node and Workers
        // cannot load it), instantiated from the module its Workers get too.
        if (build.glueUrl === undefined) throw new Error('the package names no glue for it (glueUrl)');
        if (!platform.threads) throw new Error(platform.noThreads ?? 'this platform runs no threaded builds');
        glue = await platform.threads.importGlue(String(new URL(build.glueUrl, platform.baseUrl())));
        await platform.instantiate(glue, build, await threadedModule(pkg, backend, options));
      } else {
        if (!build.glue) throw new Error('the package names no glue for it');
        glue = (await build.glue()) as Glue;
      }
      if (typeof glue?.loadModel !== 'function' || typeof glue.initSync !== 'function') throw new Error('its glue module does not export loadModel and initSync');
      if (!build.threads) await platform.instantiate(glue, build, options.wasm?.[backend]);
    } catch (err) {
      // A build from a registry: what its fetcher said (`network`, `integrity`) stands.
      if (err instanceof BrasaError && (err.code === 'network' || err.code === 'integrity' || err.code === 'backend_unavailable')) throw err;
      // A package from before `index.js` imported its glue statically, in a service worker.
      const hint = /import\(\) is disallowed/i.test(message(err)) ? "; this package's index.js imports its glue with import(): rebuild it with this brasa's `brasa build`" : '';
      throw new BrasaError('wasm_load', `could not load the ${backend} build of ${pkg.name}: ${message(err)}${hint}`, { cause: err });
    }
    registerGlue(glue, pkg.name, backend);
    // Instantiated before (the module is one per realm) and aborted since: a new instance.
    revive(glue);
    let card;
    try {
      card = guardCall(ticket(glue), () => glue.modelCard());
    } catch (err) {
      throw BrasaError.from(err);
    }
    if (card.signatureHash !== pkg.signatureHash || card.name !== pkg.name) {
      throw new BrasaError(
        'incompatible',
        `the ${backend} build serves ${card.name} with signature ${card.signatureHash}, not the package's ${pkg.name} (${pkg.signatureHash}); the package is inconsistent`,
      );
    }
    return glue as Bindings;
  }

  function forget(pkg: ModelPackage, backend: BuildName): void {
    instances.get(pkg)?.delete(backend);
  }

  /**
   * The CPU build for `options` here: threads (`threads`), relaxed SIMD (`simd`), among the
   * package's builds (those `wasm` names, when it names CPU builds), and why a faster one the
   * package has was passed over.
   * @throws BrasaError `backend_unavailable` when `threads` > 1 or `simd: 'relaxed'` was asked
   *   for and cannot be had here, naming why.
   */
  async function chooseCpu(pkg: ModelPackage, options: LoadOptions): Promise<BuildInfo> {
    const named = CPU_BUILDS.filter((b) => options.wasm?.[b] !== undefined);
    const among = named.length ? ` among the wasm modules given (${named.join(', ')})` : '';
    const has = (b: CpuBuildName) => pkg.builds[b] !== undefined && (named.length === 0 || named.includes(b));
    const relaxedBuilds = CPU_BUILDS.filter((b) => b.endsWith('-relaxed') && has(b));
    // SIMD: which builds `simd` and the engine allow.
    const simd = options.simd ?? 'auto';
    const relaxedOk = simd !== 'simd128' && relaxedBuilds.length > 0 && (await hasRelaxedSimd());
    if (simd === 'relaxed' && !relaxedOk) {
      const why = relaxedBuilds.length === 0 ? `the model package ${pkg.name} has no relaxed-SIMD build${among} (brasa build --backend cpu-relaxed)` : 'the engine does not validate relaxed SIMD';
      throw new BrasaError('backend_unavailable', `simd: 'relaxed' cannot run here: ${why}`);
    }
    const allowed = (b: CpuBuildName) => has(b) && (b.endsWith('-relaxed') ? relaxedOk : simd !== 'relaxed');
    const reasons: string[] = [];
    if (simd === 'auto' && !relaxedOk && relaxedBuilds.length > 0) reasons.push('simd128: the engine does not validate relaxed SIMD');
    // Threads.
    const support = platform.threads;
    const asked = options.threads ?? 'auto';
    const cores = support?.cores() ?? 1;
    const wanted = asked === false ? 1 : asked === 'auto' ? Math.min(cores, AUTO_THREADS_MAX) : asked;
    const threadedHere = CPU_BUILDS.filter((b) => isThreaded(b) && allowed(b));
    let threads = 1;
    if (asked === 'auto' ? CPU_BUILDS.some((b) => isThreaded(b) && has(b)) : wanted > 1) {
      let why: string | null = null;
      if (threadedHere.length === 0) {
        why = CPU_BUILDS.some((b) => isThreaded(b) && has(b))
          ? `its threaded builds are not of the SIMD allowed here (simd: '${simd}'${relaxedOk || simd === 'simd128' ? '' : '; the engine does not validate relaxed SIMD'})`
          : `the model package ${pkg.name} has no threaded build${among} (brasa build --backend cpu-threads)`;
      } else if (!support) why = platform.noThreads ?? 'this platform runs no Workers';
      else why = support.unavailable() ?? ((await hasWasmThreads()) ? null : 'the engine does not validate wasm threads (atomics)');
      if (why === null && asked === 'auto') why = support?.notByDefault?.() ?? null;
      if (why === null && wanted < 2) why = `${cores} logical core${cores === 1 ? '' : 's'} here: a pool would not help`;
      if (why === null) threads = wanted;
      else if (asked !== 'auto') throw new BrasaError('backend_unavailable', `threads: ${asked} cannot run here: ${why}`);
      else reasons.push(`single-threaded: ${why}`);
    }
    // The best build of that thread count: relaxed SIMD where allowed.
    const candidates = CPU_BUILDS.filter((b) => allowed(b) && isThreaded(b) === threads > 1);
    const name = candidates.find((b) => b.endsWith('-relaxed')) ?? candidates[0];
    if (!name) {
      throw new BrasaError('backend_unavailable', `backend 'cpu' is unavailable: the model package ${pkg.name} has no CPU build that runs here${among}${simd !== 'auto' ? ` with simd: '${simd}'` : ''}`);
    }
    return { name, threads, relaxedSimd: name.endsWith('-relaxed'), reason: reasons.length ? reasons.join('; ') : null };
  }

  /** A model with `weights` on the threaded build `choice`, in a Worker of its own. */
  async function threaded(pkg: ModelPackage, choice: BuildInfo, weights: Uint8Array, options: LoadOptions): Promise<Pick<Loaded, 'inner' | 'bindings' | 'instance' | 'build'>> {
    const build = pkg.builds[choice.name]!;
    const logic = await buildBindings(pkg, logicBuild(choice), options);
    let module: WebAssembly.Module;
    try {
      module = await threadedModule(pkg, choice.name, options);
    } catch (err) {
      if (err instanceof BrasaError) throw err;
      throw new BrasaError('wasm_load', `could not load the ${choice.name} build of ${pkg.name}: ${message(err)}`, { cause: err });
    }
    const glueUrl = String(new URL(build.glueUrl!, platform.baseUrl()));
    const worker = await ThreadedWorker.start(platform.threads!, glueUrl, module, choice.threads, `${pkg.name} (${choice.name})`);
    const wasm = threadedBindings(logic, worker);
    registerGlue(wasm, pkg.name, choice.name);
    const instance = ticket(wasm);
    try {
      const inner = await guardCall(instance, () => wasm.loadModel(weights, 'cpu'));
      return { inner, bindings: wasm, instance, build: { ...choice, threads: worker.threads, relaxedSimd: worker.relaxedSimd } };
    } catch (err) {
      worker.terminate();
      throw BrasaError.from(err);
    }
  }

  /** The bytes at `source`, resolved against the platform's base (`what` names them in errors). */
  async function urlBytes(source: string | URL, what: string, signal?: AbortSignal): Promise<Uint8Array> {
    let url: URL;
    try {
      url = new URL(source, platform.baseUrl());
    } catch (err) {
      throw new BrasaError('network', `${what} URL ${String(source)} is not a valid URL`, { cause: err });
    }
    try {
      return await platform.fetchBytes(url, signal);
    } catch (err) {
      if (err instanceof BrasaError) throw err;
      throw new BrasaError('network', `could not fetch ${what} from ${url.href}: ${message(err)}`, { cause: err });
    }
  }

  async function weightBytes(source: WeightsSource, signal?: AbortSignal): Promise<Uint8Array> {
    const view = weightsView(source);
    if (view) return view;
    if (typeof Response !== 'undefined' && source instanceof Response) return responseBytes(source, source.url);
    if (typeof source === 'string' || source instanceof URL) return urlBytes(source, 'weights', signal);
    throw new BrasaError('invalid_weights', `weights must be a URL, ArrayBuffer, typed array or Response; got ${describe(source)}`);
  }

  async function probe(pkg: ModelPackage, preference: BackendPreference): Promise<Probe | null> {
    if (preference === 'cpu') return null;
    if (!pkg.builds.webgpu) {
      if (preference === 'webgpu') throw new BrasaError('backend_unavailable', `backend 'webgpu' is unavailable: the model package ${pkg.name} has no webgpu build`);
      return null;
    }
    return probeWebGpu();
  }

  /** A model on the best acceptable backend, falling back from WebGPU to CPU. */
  async function instantiate(pkg: ModelPackage, weights: Uint8Array, preference: BackendPreference, probe: Probe | null, options: LoadOptions): Promise<Loaded> {
    let fallbackReason: string | null = null;
    let gpuFailure: string | null = null;
    let adapter: AdapterInfo | null = null;
    if (preference !== 'cpu' && probe) {
      let gpuError: BrasaError | null = null;
      if (probe.ok) {
        try {
          const wasm = await bindings(pkg, 'webgpu', options);
          const instance = ticket(wasm);
          const inner = await guardCall(instance, () => wasm.loadModel(weights, 'webgpu'));
          return { inner, bindings: wasm, instance, backend: 'webgpu', build: WEBGPU_BUILD, fallbackReason: null, adapter: probe.adapter };
        } catch (err) {
          gpuError = BrasaError.from(err);
          // Bad weights are bad on every backend: no fallback hides them.
          if (gpuError.code === 'invalid_weights' || gpuError.code === 'unknown_model' || gpuError.code === 'incompatible') throw gpuError;
          if (gpuError.code === 'internal') forget(pkg, 'webgpu');
          adapter = probe.adapter;
        }
      }
      // Each cause said once: the build's error already begins "backend `webgpu` is unavailable".
      const cause = probe.ok ? gpuCause(gpuError) : probe.reason;
      const reason = probe.ok ? `WebGPU initialisation failed: ${cause}` : probe.reason;
      if (preference === 'webgpu') {
        const error = new BrasaError('backend_unavailable', `backend 'webgpu' is unavailable: ${reason}`, { cause: gpuError ?? undefined });
        gpuCauses.set(error, cause);
        throw error;
      }
      if (!CPU_BUILDS.some((b) => pkg.builds[b])) {
        throw new BrasaError('backend_unavailable', `WebGPU is unavailable (${reason}) and the model package ${pkg.name} has no cpu build`, { cause: gpuError ?? undefined });
      }
      fallbackReason = reason;
      gpuFailure = cause;
    }
    if (!CPU_BUILDS.some((b) => pkg.builds[b])) throw new BrasaError('backend_unavailable', `backend 'cpu' is unavailable: the model package ${pkg.name} has no cpu build`);
    let choice = await chooseCpu(pkg, options);
    if (isThreaded(choice.name)) {
      try {
        return { ...(await threaded(pkg, choice, weights, options)), backend: 'cpu', fallbackReason, adapter, gpuFailure };
      } catch (err) {
        // `threads: 'auto'` runs where the threaded build cannot start (a CSP without `blob:`
        // Workers, Node's permission model without `--allow-worker`): single-threaded, saying why.
        const error = BrasaError.from(err);
        if ((options.threads ?? 'auto') !== 'auto' || error.code !== 'wasm_load') throw error;
        const single = await chooseCpu(pkg, { ...options, threads: false });
        const why = `single-threaded: the threaded build could not start (${error.message})`;
        choice = { ...single, reason: single.reason ? `${single.reason}; ${why}` : why };
      }
    }
    const wasm = await buildBindings(pkg, choice.name, options);
    try {
      const instance = ticket(wasm);
      const inner = await guardCall(instance, () => wasm.loadModel(weights, 'cpu'));
      // What the build says of itself: only a build compiled with relaxed SIMD exports it.
      const relaxedSimd = typeof wasm.relaxedSimd === 'function' && guardCall(instance, () => wasm.relaxedSimd!());
      return { inner, bindings: wasm, instance, backend: 'cpu', build: { ...choice, relaxedSimd }, fallbackReason, adapter, gpuFailure };
    } catch (err) {
      const error = BrasaError.from(err);
      if (error.code === 'internal') forget(pkg, choice.name);
      throw error;
    }
  }

  function checkPreference(options: LoadOptions): BackendPreference {
    const preference: BackendPreference = options.backend ?? 'auto';
    if (!['auto', 'webgpu', 'cpu'].includes(preference)) {
      throw new BrasaError('backend_unavailable', `unknown backend \`${String(preference)}\`; use 'auto', 'webgpu' or 'cpu'`);
    }
    if (options.deviceLost !== undefined && !['fail', 'cpu', 'reload'].includes(options.deviceLost)) {
      throw new BrasaError('backend_unavailable', `unknown deviceLost \`${String(options.deviceLost)}\`; use 'fail', 'cpu' or 'reload'`);
    }
    return preference;
  }

  function create(pkg: ModelPackage, loaded: Loaded, preference: BackendPreference, versioned: Versioned | null, options: LoadOptions, weights?: Uint8Array): BrasaModel {
    const deviceLost = options.deviceLost ?? 'fail';
    // Weights kept for a recovery only where one may happen; a copy of bytes the caller owns.
    const given = options.weights;
    const theirs = given instanceof ArrayBuffer || ArrayBuffer.isView(given);
    let kept = deviceLost !== 'fail' && loaded.backend === 'webgpu' && weights ? (theirs ? weights.slice() : weights) : null;
    const recover = async (to: BackendPreference, latest: Uint8Array | null, lost: string) => {
      kept = latest ?? kept;
      const bytes = kept ?? (versioned ? (await versioned.client.weights(versioned.current)).bytes : null);
      if (!bytes) throw new BrasaError('internal', 'the weights to load again were not kept');
      let recovered: Loaded;
      try {
        recovered = await instantiate(pkg, bytes, to, await probe(pkg, to), options);
      } catch (err) {
        const cause = err instanceof BrasaError ? gpuCauses.get(err) : undefined;
        if (cause !== undefined) throw new BrasaError('backend_unavailable', `a new WebGPU device could not be had: ${cause}`, { cause: err });
        throw err;
      }
      if (recovered.backend === 'cpu') {
        const reason = `the WebGPU device was lost (${lost})${recovered.gpuFailure ? ` and a new one could not be had: ${recovered.gpuFailure}` : ''}`;
        options.onFallback?.({ from: 'webgpu', to: 'cpu', reason });
        return { ...recovered, fallbackReason: reason };
      }
      return recovered;
    };
    const model = new BrasaModel({
      pkg,
      inner: loaded.inner,
      bindings: loaded.bindings,
      instance: loaded.instance,
      backend: loaded.backend,
      build: loaded.build,
      requested: preference,
      fallbackReason: loaded.fallbackReason,
      adapter: loaded.adapter,
      versioned,
      deviceLost,
      recover,
      fetchBytes: urlBytes,
    });
    if (loaded.fallbackReason !== null) {
      const info: FallbackInfo = { from: 'webgpu', to: 'cpu', reason: loaded.fallbackReason };
      // Where a GPU could have been expected (a browser, Deno), say so in the console too.
      if ((globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu) console.warn(`brasa: running ${pkg.name} on CPU: ${loaded.fallbackReason}`);
      options.onFallback?.(info);
    }
    return model;
  }

  const context: LoaderContext = { platform, bindings, instantiate, probe, checkPreference, create };

  async function loadModel(first: ModelPackage | string, options: LoadOptions): Promise<BrasaModel> {
    if (!options || typeof options !== 'object') {
      throw new BrasaError('invalid_weights', 'loadModel(model, options) needs an options object with `weights` or `registry`');
    }
    checkLoadOptions(options);
    const given = typeof first === 'string' ? options.build : first;
    if (typeof first !== 'string' && (typeof first !== 'object' || first === null)) {
      throw new BrasaError('unknown_model', `loadModel's first argument must be a model package or a registry spec; got ${describe(first)}`);
    }
    if (given === undefined && (typeof first !== 'string' || options.registry === undefined)) {
      throw new BrasaError(
        'unknown_model',
        `no model package for \`${String(first)}\`: brasa holds no models; pass the package \`brasa build\` made: loadModel('${String(first)}', { registry, build: pkg }) or loadModel(pkg, { weights })`,
      );
    }
    if (given === undefined && options.weights !== undefined) throw new BrasaError('invalid_weights', 'give either `weights` or `registry`, not both');
    // No package: the version's code comes from the registry too (published with `--code`).
    let pkg: ModelPackage;
    if (given !== undefined) {
      pkg = checkPackage(given);
    } else if (platform.packageFromRegistry) {
      pkg = checkPackage(await platform.packageFromRegistry(context, first as string, registryUrl(context, options), options));
    } else {
      throw new BrasaError('unknown_model', `no model package for \`${String(first)}\`: code from a registry cannot run here (Workers compile no code at run time); bundle the package and pass it: loadModel('${String(first)}', { registry, build: pkg })`);
    }
    // Another model's name is refused here, before any wasm is instantiated; with a registry,
    // what is no model name at all (``, `@stable`, `../mnist`) goes on to the spec parser (in
    // Rust, by loadVersioned): `invalid_spec`, not another model.
    const named = typeof first === 'string' ? specName(first) : pkg.name;
    if (named !== pkg.name && (options.registry === undefined || MODEL_NAME.test(named))) {
      throw new BrasaError('unknown_model', `the spec \`${first}\` names model \`${named}\`, but the package given (build) is \`${pkg.name}\``);
    }
    if (options.registry !== undefined) {
      if (options.weights !== undefined) throw new BrasaError('invalid_weights', 'give either `weights` or `registry`, not both');
      return loadVersioned(context, pkg, typeof first === 'string' ? first : pkg.name, options);
    }
    if (options.weights === undefined) {
      throw new BrasaError('invalid_weights', 'loadModel(model, options) needs `weights` (bytes or a URL) or a `registry`');
    }
    const preference = checkPreference(options);
    const weights = await weightBytes(options.weights, options.signal);
    const probed = await probe(pkg, preference);
    const loaded = await instantiate(pkg, weights, preference, probed, options);
    return create(pkg, loaded, preference, null, options, weights);
  }

  return loadModel as LoadModel;
}
