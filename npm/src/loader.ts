/**
 * Loading models from model packages: platforms, instantiating a package's builds, choosing
 * the backend (WebGPU with a fallback to CPU), reading weights.
 * @module
 */
import type { ModelCache } from './cache.js';
import { BrasaError, describe, message } from './errors.js';
import type { Bindings, Glue, WasmModel } from './glue.js';
import { guardCall, registerGlue, revive, ticket, type Ticket } from './internal.js';
import { BrasaModel } from './model.js';
import { checkLoadOptions } from './options.js';
import type { Fetcher } from './registry.js';
import type { AdapterInfo, Backend, BackendPreference, FallbackInfo, LoadOptions, ModelBuild, ModelPackage, TensorTypes, WasmSource, WeightsSource } from './types.js';
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
}

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
  if (!p.builds.cpu && !p.builds.webgpu) throw new BrasaError('incompatible', `the model package ${p.name} has no builds`);
  return p as ModelPackage;
}

/** A model name as specs have them (`crates/brasa-registry/src/spec.rs`). */
const MODEL_NAME = /^[a-z0-9._-]{1,64}$/;

/** The model name of a registry spec (`mnist@canary` -> `mnist`). */
function specName(spec: string): string {
  const at = spec.indexOf('@');
  return at < 0 ? spec : spec.slice(0, at);
}

/** Builds a `loadModel` for one platform. */
export function createLoader(platform: Platform): LoadModel {
  // One glue per package and build per realm; a failed one is forgotten so a retry can work.
  // A glue whose wasm instance aborted (a trap) is given a fresh instance by the next call:
  // models of the old instance reject with `internal`, new loads get the new one.
  const instances = new WeakMap<ModelPackage, Map<Backend, Promise<Bindings>>>();

  function bindings(pkg: ModelPackage, backend: Backend, options: LoadOptions): Promise<Bindings> {
    let perPackage = instances.get(pkg);
    if (!perPackage) instances.set(pkg, (perPackage = new Map()));
    const cache = perPackage;
    let instance = cache.get(backend);
    if (!instance) {
      instance = (async () => {
        const build = pkg.builds[backend];
        if (!build) throw new BrasaError('backend_unavailable', `the model package ${pkg.name} has no ${backend} build`);
        let glue: Glue;
        try {
          glue = (await build.glue()) as Glue;
          if (typeof glue?.loadModel !== 'function' || typeof glue.initSync !== 'function') throw new Error('its glue module does not export loadModel and initSync');
          await platform.instantiate(glue, build, options.wasm?.[backend]);
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
      })().catch((err: unknown) => {
        cache.delete(backend);
        throw BrasaError.from(err, 'wasm_load');
      });
      cache.set(backend, instance);
    }
    return instance.then((glue) => {
      revive(glue);
      return glue;
    });
  }

  function forget(pkg: ModelPackage, backend: Backend): void {
    instances.get(pkg)?.delete(backend);
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
    if (source instanceof Uint8Array) return source;
    if (source instanceof ArrayBuffer) return new Uint8Array(source);
    if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
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
          return { inner, bindings: wasm, instance, backend: 'webgpu', fallbackReason: null, adapter: probe.adapter };
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
      if (!pkg.builds.cpu) {
        throw new BrasaError('backend_unavailable', `WebGPU is unavailable (${reason}) and the model package ${pkg.name} has no cpu build`, { cause: gpuError ?? undefined });
      }
      fallbackReason = reason;
      gpuFailure = cause;
    }
    if (!pkg.builds.cpu) throw new BrasaError('backend_unavailable', `backend 'cpu' is unavailable: the model package ${pkg.name} has no cpu build`);
    const wasm = await bindings(pkg, 'cpu', options);
    try {
      const instance = ticket(wasm);
      const inner = await guardCall(instance, () => wasm.loadModel(weights, 'cpu'));
      return { inner, bindings: wasm, instance, backend: 'cpu', fallbackReason, adapter, gpuFailure };
    } catch (err) {
      const error = BrasaError.from(err);
      if (error.code === 'internal') forget(pkg, 'cpu');
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
