/**
 * Registry-backed models: loading a spec (resolve, fetch or read the cache, verify, load,
 * golden-check, fall back) and the lifecycle after (update checks, switches, rollbacks).
 * @module
 */
import { BrasaError } from './errors.js';
import type { GoldenWasm, WasmModel } from './glue.js';
import { guardCall, logicOf, release as releaseObject, runtimeOf, type Ticket } from './internal.js';
import type { Loaded, LoaderContext } from './loader.js';
import { BrasaEvent, type BrasaModel } from './model.js';
import { RegistryClient, Store, cacheKey, type ParsedSpec, type Refusal, type RegistryClientOptions, type RegistryWasm } from './registry.js';
import type { GoldenCheck, GoldenOutcome, LoadOptions, ModelPackage, ProgressInfo, RegistryEvent, ResolvedVersion, UpdateCheck, UpdateResult } from './types.js';

/** The `cacheBudget` load option's default, in bytes. */
export const DEFAULT_CACHE_BUDGET = 256 * 1024 * 1024;
/** The `timeoutMs` load option's default. */
export const DEFAULT_TIMEOUT_MS = 30_000;

/** Error codes that mean "this version is bad", as opposed to "the network is" (`integrity`
 * only after a retry: the fetcher turns a body cut short into `network`). */
const REFUSALS = new Set<string>(['integrity', 'invalid_weights', 'golden_check', 'incompatible']);

/** The `registry` option as a folder URL (ending in `/`), resolved as `fetch` would. */
export function registryUrl(ctx: LoaderContext, options: LoadOptions): URL {
  let registry: URL;
  try {
    registry = new URL(String(options.registry), ctx.platform.baseUrl());
  } catch (err) {
    throw new BrasaError('network', `registry ${String(options.registry)} is not a valid URL`, { cause: err });
  }
  if (!registry.pathname.endsWith('/')) registry = new URL(`${registry.pathname}/${registry.search}`, registry);
  return registry;
}

/**
 * The fetcher of `spec` in `registry` for a load with `options`, deciding with `logic`; the
 * cache and client id are the options' (or the platform's default cache and its persisted id).
 */
export async function registryClient(
  ctx: LoaderContext,
  options: LoadOptions,
  registry: URL,
  spec: ParsedSpec,
  logic: RegistryWasm,
  rest: Pick<RegistryClientOptions, 'signatureHash' | 'onProgress' | 'emit'>,
): Promise<RegistryClient> {
  const store = Store.of(options.cache ?? ctx.platform.defaultCache());
  return new RegistryClient({
    registry,
    manifestUrl: new URL(`${spec.name}/manifest.json`, registry),
    spec,
    store,
    wasm: logic,
    fetch: ctx.platform.fetch,
    // Persisted with the first adopted version.
    clientId: options.clientId ?? (await store.read()).clientId,
    timeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    cacheBudget: options.cacheBudget ?? DEFAULT_CACHE_BUDGET,
    dtype: options.dtype,
    ...rest,
  });
}

/**
 * Call a user's callback; what it throws is its own fault, said in the console naming it,
 * never a failed load or update.
 */
export function callback<T>(name: string, fn: ((value: T) => void) | undefined, value: T): void {
  try {
    fn?.(value);
  } catch (err) {
    console.error(`brasa: the ${name} callback threw (ignored):`, err);
  }
}

/** Load a spec from a registry: resolve, fetch or read the cache, verify, load, golden-check. */
export async function loadVersioned(ctx: LoaderContext, pkg: ModelPackage, specText: string, options: LoadOptions): Promise<BrasaModel> {
  const { platform } = ctx;
  const preference = ctx.checkPreference(options);
  const registry = registryUrl(ctx, options);
  const probe = await ctx.probe(pkg, preference);
  // The registry logic is in every build: use the one the model will most likely run on.
  const first = probe?.ok || !pkg.builds.cpu ? 'webgpu' : 'cpu';
  // Through logicOf: the client lives as long as the model, and calls made after the
  // instance aborted go to a fresh one.
  const logic = logicOf(
    await ctx.bindings(pkg, first, options).catch((err: unknown) => {
      if (first === 'cpu' || !pkg.builds.cpu) throw err;
      return ctx.bindings(pkg, 'cpu', options);
    }),
  );
  let spec: ParsedSpec;
  try {
    spec = logic.registryParseSpec(String(specText)) as ParsedSpec;
  } catch (err) {
    throw BrasaError.from(err, 'invalid_spec');
  }
  if (spec.name !== pkg.name) {
    throw new BrasaError('unknown_model', `the spec \`${specText}\` names model \`${spec.name}\`, but the package given is \`${pkg.name}\``);
  }
  let model: BrasaModel | null = null;
  const early: RegistryEvent[] = [];
  const files: ProgressInfo[] = [];
  const client = await registryClient(ctx, options, registry, spec, logic, {
    signatureHash: pkg.signatureHash,
    onProgress(progress: ProgressInfo) {
      callback('onProgress', options.onProgress, progress);
      if (progress.loaded !== progress.total) return;
      if (model) runtimeOf(model).recordFile(progress.version, progress.fromCache, progress.total);
      else files.push(progress);
    },
    emit(event: RegistryEvent) {
      callback('onEvent', options.onEvent, event);
      if (model) model.dispatchEvent(new BrasaEvent(event));
      else early.push(event);
    },
  });

  /** Errors that repeat a remembered refusal (not to be remembered again, which would extend it). */
  const remembered = new WeakSet<BrasaError>();
  /** A refusal remembered from an earlier load, as the error to throw. */
  function refusedEarlier(version: string, refusal: Refusal): BrasaError {
    const where = refusal.backend ? ` on ${refusal.backend}` : '';
    const error = new BrasaError(refusal.code as BrasaError['code'], `version ${version} was refused earlier${where}: ${refusal.reason}`);
    remembered.add(error);
    return error;
  }

  /** Run `version`'s golden check on `loaded`; if it fails, release the model and refuse the version on that backend. */
  async function passGolden(version: ResolvedVersion, loaded: Loaded): Promise<void> {
    if (!version.golden) return;
    try {
      await runGolden(loaded.inner, loaded.bindings, loaded.instance, version.golden);
    } catch (err) {
      releaseObject(loaded.instance, loaded.inner);
      const error = BrasaError.from(err);
      await client.reject(version.version, error, loaded.backend);
      throw error;
    }
  }

  /**
   * Load one version. What it is proven to fail is refused: bytes that contradict the manifest
   * after a retry, and weights that do not load, everywhere; a golden check, on the backend it
   * failed on, from which `auto` falls back to the CPU build (saying why). Network faults are
   * never remembered.
   */
  async function tryVersion(version: ResolvedVersion): Promise<Loaded> {
    const v = version.version;
    const everywhere = await client.rejection(v, null);
    if (everywhere) throw refusedEarlier(v, everywhere);
    const onGpu = await client.rejection(v, 'webgpu');
    const onCpu = await client.rejection(v, 'cpu');
    let target = preference;
    let fallbackReason: string | null = null;
    if (preference === 'webgpu' && onGpu) throw refusedEarlier(v, onGpu);
    if (preference === 'cpu' && onCpu) throw refusedEarlier(v, onCpu);
    if (preference === 'auto' && onGpu && probe?.ok) {
      if (!pkg.builds.cpu || onCpu) throw refusedEarlier(v, onGpu);
      target = 'cpu';
      fallbackReason = `version ${v} failed its golden check on WebGPU earlier (${onGpu.reason})`;
    }
    try {
      const { bytes } = await client.weights(version, options.signal);
      let loaded = await ctx.instantiate(pkg, bytes, target, target === 'cpu' ? null : probe, options);
      if (loaded.backend === 'cpu' && onCpu) {
        // `auto` fell back to the CPU build (no GPU after all), where the version failed before.
        releaseObject(loaded.instance, loaded.inner);
        throw refusedEarlier(v, onCpu);
      }
      try {
        await passGolden(version, loaded);
      } catch (err) {
        const error = BrasaError.from(err);
        if (error.code !== 'golden_check' || preference !== 'auto' || loaded.backend !== 'webgpu' || !pkg.builds.cpu || onCpu) throw error;
        // The WebGPU build is off by more than the tolerance; the CPU build may not be.
        fallbackReason = `version ${v} failed its golden check on WebGPU (${error.message}); the CPU build passed it`;
        loaded = await ctx.instantiate(pkg, bytes, 'cpu', null, options);
        await passGolden(version, loaded);
      }
      return fallbackReason === null ? loaded : { ...loaded, fallbackReason, adapter: loaded.adapter ?? (probe?.ok ? probe.adapter : null) };
    } catch (err) {
      const error = BrasaError.from(err);
      // Golden checks were refused where they ran, earlier refusals stand as they were.
      if (REFUSALS.has(error.code) && error.code !== 'golden_check' && !remembered.has(error)) await client.reject(v, error, null);
      throw error;
    }
  }

  function finish(loaded: Loaded, version: ResolvedVersion, check: Promise<UpdateCheck> | null): BrasaModel {
    const versioned = new Versioned(client, version, options);
    const created = ctx.create(pkg, loaded, preference, versioned, options);
    model = created;
    for (const event of early.splice(0)) created.dispatchEvent(new BrasaEvent(event));
    for (const f of files.splice(0)) runtimeOf(created).recordFile(f.version, f.fromCache, f.total);
    // Said after the load, once its writes had their chance to stick.
    const cache = client.o.store.cache;
    if (cache.persistent === false) {
      client.o.emit({ type: 'cache-not-persisted', kind: cache.kind, reason: cache.persistenceReason ?? `the ${cache.kind} cache keeps nothing` });
    }
    versioned.start(created, check);
    return created;
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
  const { version: target, error: registryError, status } = await client.ask(options.signal);
  if (target) {
    const current: UpdateCheck = { outcome: 'current', version: target.version, status, reason: null };
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
 * Run a version's golden feeds through `inner` and judge its fetches, both in Rust: the feeds
 * come from `registryGoldenFeeds`, the verdict from `registryGoldenCheck` (every expected
 * output present, same dims, within the tolerance). Any failure is `golden_check`.
 */
async function runGolden(inner: WasmModel, bindings: GoldenWasm, instance: Ticket, golden: GoldenCheck): Promise<void> {
  let outcome: GoldenOutcome;
  try {
    const feeds = guardCall(instance, () => bindings.registryGoldenFeeds(golden));
    const fetches = await guardCall(instance, () => inner.run(feeds));
    if (fetches.length === 0) throw new BrasaError('golden_check', 'the model gave no output');
    outcome = guardCall(instance, () => bindings.registryGoldenCheck(golden, fetches));
  } catch (err) {
    throw new BrasaError('golden_check', `golden check failed: the golden input does not run (${BrasaError.from(err).message})`, { cause: err });
  }
  if (!outcome.passed) throw new BrasaError('golden_check', `golden check failed: ${outcome.reason}`);
}

/** A model's link to its registry: the version it runs, update checks and switches. */
export class Versioned {
  readonly client: RegistryClient;
  current: ResolvedVersion;
  check: Promise<UpdateCheck> | null = null;
  #options: LoadOptions;
  #release: () => void;
  #timer: ReturnType<typeof setInterval> | undefined;
  #queue: Promise<unknown> = Promise.resolve();
  #stopped = false;

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
      let pending = false;
      this.#timer = setInterval(() => {
        // One periodic check at a time: a registry slower than the interval gets no pile-up.
        if (pending || this.#stopped) return;
        try {
          pending = true;
          void model
            .checkForUpdate()
            .catch(() => undefined)
            .finally(() => (pending = false));
        } catch {
          // Disposed, or its wasm instance aborted: the model stopped this timer.
          pending = false;
        }
      }, every);
      (this.#timer as { unref?: () => void }).unref?.();
    }
  }

  /** One update check or switch at a time per model; none once the model is disposed. */
  serial<T>(task: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(() => {
      if (this.#stopped) throw new BrasaError('disposed', 'the model was disposed');
      return task();
    });
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
    const answer = await client.ask();
    const target = answer.version;
    if (!target) return done({ outcome: 'failed', version: from, status: answer.status, reason: answer.error!.message });
    if (target.version === from) {
      await client.setPending(null);
      return done({ outcome: 'current', version: from, status: answer.status, reason: null });
    }
    const refused = await client.rejection(target.version, model.backend);
    if (refused) return done({ outcome: 'rejected', version: target.version, status: answer.status, reason: refused.reason });
    try {
      // Download and verify now, so update() (or the next load) switches without waiting.
      await client.weights(target);
    } catch (err) {
      const error = BrasaError.from(err);
      if (REFUSALS.has(error.code)) {
        await client.reject(target.version, error, null);
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
    // Why there is nothing to switch to, when the check says: it failed, or found a refused version.
    let why: string | null = null;
    if (!pending || pending.version === this.current.version) {
      const before = this.current.version;
      why = (await this.checkForUpdate(model)).reason;
      // With autoUpdate, the check switched already.
      if (this.current.version !== before) return { updated: true, version: this.current.version, reason: null };
      pending = await client.pending();
    }
    const from = this.current.version;
    if (!pending || pending.version === from) return { updated: false, version: from, reason: why };
    try {
      const { bytes } = await client.weights(pending);
      const runtime = runtimeOf(model);
      // Into the model's own instance (refused, without a call, once that aborted).
      const inner = await guardCall(runtime.instance, () => runtime.bindings.loadModel(bytes, model.backend));
      try {
        if (pending.golden) await runGolden(inner, runtime.bindings, runtime.instance, pending.golden);
      } catch (err) {
        releaseObject(runtime.instance, inner);
        throw err;
      }
      const release = client.o.store.hold(pending.files.map(cacheKey));
      runtime.swap(inner);
      this.#release();
      this.#release = release;
      this.current = pending;
      await client.adopt(pending);
      client.o.emit({ type: 'updated', from, to: pending.version });
      return { updated: true, version: pending.version, reason: null };
    } catch (err) {
      const error = BrasaError.from(err);
      // A golden check failed on this model's backend only.
      if (REFUSALS.has(error.code)) await client.reject(pending.version, error, model.backend);
      client.o.emit({ type: 'rollback', rejected: pending.version, version: from, code: error.code, reason: error.message });
      return { updated: false, version: from, reason: error.message };
    }
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#release();
  }
}
