/**
 * The registry fetcher's I/O: manifests (revalidated with If-None-Match), weight files
 * (deduplicated, streamed with progress, verified before use or caching), the cache and the
 * fetcher's persisted state. What a manifest means, which version a client gets, whether
 * bytes are intact, whether a golden check passed and what to evict are decided by the Rust
 * registry logic inside the wasm build ({@link RegistryWasm}).
 * @module
 */
import type { ModelCache } from './cache.js';
import { BrasaError } from './errors.js';
import type { FileEntry, ProgressInfo, RegistryEvent, ResolvedVersion } from './types.js';

/** The wasm exports of the registry logic. */
export interface RegistryWasm {
  registryResolve(manifest: string, spec: string, clientId: string): unknown;
  registryVerify(entry: unknown, bytes: Uint8Array): void;
  registryVerifyDigest(entry: unknown, size: number, sha256: string): void;
  registryParseSpec(spec: string): unknown;
  registryPlanEviction(files: unknown, keep: string[], budget: number): string[];
}

/** A parsed spec, from Rust. */
export interface ParsedSpec {
  name: string;
  canonical: string;
  kind: 'channel' | 'exact' | 'range';
  channel: string | null;
}

/** How fetches are made on this platform. */
export type Fetcher = (url: URL, init: RequestInit, kind: 'manifest' | 'file') => Promise<Response>;

/** A version this client adopted (or downloaded and verified, for `pending`). */
export interface Adopted extends ResolvedVersion {
  at: number;
}

interface State {
  schema: 1;
  clientId: string;
  /** Per manifest URL: the last good body and its ETag. */
  manifests: Record<string, { etag: string | null; body: string; at: number }>;
  /** Per `manifestUrl#canonical spec`: the last version that worked. */
  good: Record<string, Adopted>;
  /** Per spec key: a verified, downloaded version waiting for `update()` or the next load. */
  pending: Record<string, Adopted>;
  /** Per `manifestUrl#version`: versions this client refused, and why. */
  rejected: Record<string, { code: string; reason: string; at: number }>;
  /** Per cache key: size and last use, for LRU eviction. */
  files: Record<string, { size: number; lastUsed: number }>;
}

const STATE_KEY = 'state.json';
/** Rejections for reasons that may pass (a truncated download) are retried after this long. */
const TRANSIENT_REJECTION_MS = 10 * 60 * 1000;

function freshState(): State {
  return { schema: 1, clientId: randomId(), manifests: {}, good: {}, pending: {}, rejected: {}, files: {} };
}

function randomId(): string {
  const c = globalThis.crypto;
  if (c?.randomUUID) return c.randomUUID();
  const bytes = new Uint8Array(16);
  c.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join('');
}

interface Download {
  promise: Promise<Uint8Array>;
  listeners: Set<(loaded: number, total: number) => void>;
  /** The latest progress, replayed to a load that joins late. */
  last: [number, number] | null;
}

/**
 * One cache's fetcher state, shared by every model in this realm that uses the cache: one
 * state writer at a time, one download per file, and which files running models use.
 */
export class Store {
  readonly cache: ModelCache;
  #lock: Promise<unknown> = Promise.resolve();
  // The state lives in memory once read; writes are coalesced and go out in the background
  // (`flush` waits for them). Another tab or process writing the same cache meanwhile loses
  // its changes to ours: the state is bookkeeping (files are content-addressed and verified
  // on every read), so the worst outcome is a re-download or a network-first resolution.
  #state: State | null = null;
  #dirty = false;
  #writes: Promise<void> = Promise.resolve();
  #downloads = new Map<string, Download>();
  #inUse = new Map<string, number>();

  constructor(cache: ModelCache) {
    this.cache = cache;
  }

  static #stores = new WeakMap<ModelCache, Store>();

  /** The store of `cache` (one per cache object). */
  static of(cache: ModelCache): Store {
    let store = Store.#stores.get(cache);
    if (!store) {
      store = new Store(cache);
      Store.#stores.set(cache, store);
    }
    return store;
  }

  async #read(): Promise<State> {
    try {
      const bytes = await this.cache.get(STATE_KEY);
      if (bytes) {
        const state = JSON.parse(new TextDecoder().decode(bytes)) as State;
        if (state?.schema === 1 && typeof state.clientId === 'string') return state;
      }
    } catch {
      // A corrupt state file costs re-downloads, never a failed load.
    }
    return freshState();
  }

  /** The state, read-only (change it through {@link update}). */
  read(): Promise<State> {
    return this.update((state) => state, false);
  }

  /** Modify the state, one change at a time in this realm; persisted in the background. */
  update<T>(change: (state: State) => T | Promise<T>, write = true): Promise<T> {
    const run = this.#lock.then(async () => {
      this.#state ??= await this.#read();
      const result = await change(this.#state);
      if (write) this.#scheduleWrite();
      return result;
    });
    this.#lock = run.catch(() => undefined);
    return run;
  }

  /** Resolves once every change so far is written. */
  flush(): Promise<void> {
    return this.#writes;
  }

  #scheduleWrite(): void {
    if (this.#dirty) return;
    this.#dirty = true;
    this.#writes = this.#writes.then(async () => {
      this.#dirty = false;
      try {
        await this.cache.put(STATE_KEY, new TextEncoder().encode(JSON.stringify(this.#state)));
      } catch {
        // Storage full or unavailable: the state is bookkeeping, the model still loads.
      }
    });
  }

  /** Mark files as used by a running model (never evicted); returns the release function. */
  hold(keys: string[]): () => void {
    for (const key of keys) this.#inUse.set(key, (this.#inUse.get(key) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const key of keys) {
        const n = (this.#inUse.get(key) ?? 1) - 1;
        if (n <= 0) this.#inUse.delete(key);
        else this.#inUse.set(key, n);
      }
    };
  }

  inUse(): string[] {
    return [...this.#inUse.keys()];
  }

  /** The running download of `key`, or a new one started by `start`. */
  download(key: string, start: (progress: (loaded: number, total: number) => void) => Promise<Uint8Array>): Download {
    let download = this.#downloads.get(key);
    if (!download) {
      const listeners = new Set<(loaded: number, total: number) => void>();
      const entry: Download = { promise: Promise.resolve(new Uint8Array()), listeners, last: null };
      entry.promise = start((loaded, total) => {
        entry.last = [loaded, total];
        listeners.forEach((l) => l(loaded, total));
      }).finally(() => this.#downloads.delete(key));
      download = entry;
      this.#downloads.set(key, download);
    }
    return download;
  }
}

/** Everything one registry-backed model needs to fetch, verify and cache. */
export interface RegistryClientOptions {
  registry: URL;
  manifestUrl: URL;
  spec: ParsedSpec;
  store: Store;
  wasm: RegistryWasm;
  fetch: Fetcher;
  clientId: string;
  timeoutMs: number;
  cacheBudget: number;
  emit: (event: RegistryEvent) => void;
  onProgress?: (progress: ProgressInfo) => void;
}

/** The outcome of fetching a manifest. */
export type ManifestResult =
  | { ok: true; body: string; status: 200 | 304; etag: string | null }
  | { ok: false; error: BrasaError };

/** Fetches, resolves, verifies and caches for one spec against one registry. */
export class RegistryClient {
  readonly o: RegistryClientOptions;
  /** The key of this spec in the persisted state. */
  readonly key: string;

  constructor(options: RegistryClientOptions) {
    this.o = options;
    this.key = `${options.manifestUrl.href}#${options.spec.canonical}`;
  }

  /** GET the manifest, conditional on the cached ETag; validated and parsed by the caller. */
  async fetchManifest(signal?: AbortSignal): Promise<ManifestResult> {
    const url = this.o.manifestUrl;
    const cached = (await this.o.store.read()).manifests[url.href];
    const headers: Record<string, string> = { accept: 'application/json' };
    if (cached?.etag) headers['if-none-match'] = cached.etag;
    try {
      const response = await withTimeout(this.o.timeoutMs, signal, (s) => this.o.fetch(url, { headers, signal: s }, 'manifest'), `GET ${url.href}`);
      if (response.status === 304 && cached) {
        await response.body?.cancel();
        return { ok: true, body: cached.body, status: 304, etag: cached.etag };
      }
      if (!response.ok) {
        await response.body?.cancel().catch(() => undefined);
        return { ok: false, error: new BrasaError('network', `GET ${url.href}: HTTP ${response.status} ${response.statusText}`.trim()) };
      }
      const body = await withTimeout(this.o.timeoutMs, signal, () => response.text(), `reading ${url.href}`);
      return { ok: true, body, status: 200, etag: response.headers.get('etag') };
    } catch (err) {
      return { ok: false, error: asNetworkError(err, `GET ${url.href}`) };
    }
  }

  /** Resolve this spec in a manifest body (validated by Rust). Throws a typed BrasaError. */
  resolve(body: string): ResolvedVersion {
    try {
      return this.o.wasm.registryResolve(body, this.o.spec.canonical, this.o.clientId) as ResolvedVersion;
    } catch (err) {
      throw BrasaError.from(err, 'invalid_manifest');
    }
  }

  /** Remember a manifest that resolved, with its ETag, for revalidation and offline use. */
  rememberManifest(body: string, etag: string | null): Promise<void> {
    return this.o.store.update((state) => {
      state.manifests[this.o.manifestUrl.href] = { body, etag, at: Date.now() };
    });
  }

  /** Cached manifest body, for resolving offline. */
  async cachedManifest(): Promise<string | null> {
    return (await this.o.store.read()).manifests[this.o.manifestUrl.href]?.body ?? null;
  }

  /** Was every file of `version` cached? (Reading it verifies it again.) */
  async isCached(version: ResolvedVersion): Promise<boolean> {
    const files = (await this.o.store.read()).files;
    return version.files.every((file) => cacheKey(file) in files);
  }

  /** Size and sha256 of `bytes` against the manifest entry: hashed by WebCrypto where there
   * is one (natively, several times faster than in wasm), judged by the Rust logic. */
  async verify(file: FileEntry, bytes: Uint8Array): Promise<void> {
    const subtle = globalThis.crypto?.subtle;
    let digest: string | null = null;
    if (subtle && bytes.length === file.size) {
      try {
        digest = hex(await subtle.digest('SHA-256', bytes as Uint8Array<ArrayBuffer>));
      } catch {
        digest = null; // e.g. no WebCrypto in an insecure context: hash in wasm.
      }
    }
    try {
      if (digest === null) this.o.wasm.registryVerify(file, bytes);
      else this.o.wasm.registryVerifyDigest(file, bytes.length, digest);
    } catch (err) {
      throw BrasaError.from(err, 'integrity');
    }
  }

  /** Why this client refused `version` before, if it did and still does. */
  async rejection(version: string): Promise<{ code: string; reason: string } | null> {
    const rejected = (await this.o.store.read()).rejected[`${this.o.manifestUrl.href}#${version}`];
    if (!rejected) return null;
    // Versions are immutable, so a load or golden failure is final; a bad download may pass.
    if (rejected.code === 'integrity' || rejected.code === 'network') {
      if (Date.now() - rejected.at > TRANSIENT_REJECTION_MS) return null;
    }
    return rejected;
  }

  reject(version: string, error: BrasaError): Promise<void> {
    return this.o.store.update((state) => {
      state.rejected[`${this.o.manifestUrl.href}#${version}`] = { code: error.code, reason: error.message, at: Date.now() };
      if (state.pending[this.key]?.version === version) delete state.pending[this.key];
    });
  }

  /**
   * The bytes of a version's weights: each file from the cache when there and intact, else
   * downloaded (once per file across concurrent loads), verified, then cached.
   */
  async weights(version: ResolvedVersion, signal?: AbortSignal): Promise<{ bytes: Uint8Array; downloaded: number }> {
    const burnpack = version.files.find((f) => f.format === 'burnpack');
    if (!burnpack) {
      throw new BrasaError('invalid_manifest', `version ${version.version} of ${version.model} has no burnpack file`);
    }
    let downloaded = 0;
    let weights: Uint8Array | null = null;
    for (const file of version.files) {
      let bytes = await this.#fromCache(file);
      if (bytes) {
        this.o.onProgress?.({ file: file.path, version: version.version, loaded: file.size, total: file.size, fromCache: true });
      } else {
        bytes = await this.#download(file, version.version, signal);
        downloaded += bytes.length;
      }
      if (file === burnpack) weights = bytes;
    }
    await this.touch(version.files.map(cacheKey));
    return { bytes: weights!, downloaded };
  }

  async #fromCache(file: FileEntry): Promise<Uint8Array | null> {
    const key = cacheKey(file);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.o.store.cache.get(key);
    } catch {
      return null;
    }
    if (!bytes) return null;
    try {
      await this.verify(file, bytes);
      return bytes;
    } catch {
      // Corrupted at rest: drop it and download again.
      await this.o.store.cache.delete(key).catch(() => undefined);
      await this.o.store.update((state) => {
        delete state.files[key];
      });
      return null;
    }
  }

  #download(file: FileEntry, version: string, signal?: AbortSignal): Promise<Uint8Array> {
    const url = new URL(file.path, this.o.manifestUrl);
    const key = cacheKey(file);
    const report = (loaded: number, total: number) =>
      this.o.onProgress?.({ file: file.path, version, loaded, total, fromCache: false });
    // Not tied to one caller's signal: another load may be waiting on the same bytes.
    const download = this.o.store.download(key, (progress) => this.#fetchVerified(url, file, progress));
    download.listeners.add(report);
    if (download.last) report(...download.last);
    const done = download.promise.finally(() => download.listeners.delete(report));
    return signal ? raceAbort(done, signal) : done;
  }

  async #fetchVerified(url: URL, file: FileEntry, progress: (loaded: number, total: number) => void): Promise<Uint8Array> {
    const bytes = await fetchBody(this.o.fetch, url, file.size, this.o.timeoutMs, progress);
    await this.verify(file, bytes);
    try {
      await this.o.store.cache.put(cacheKey(file), bytes);
      await this.o.store.update((state) => {
        state.files[cacheKey(file)] = { size: bytes.length, lastUsed: Date.now() };
      });
    } catch {
      // A full or failing cache must not fail the load; the bytes are verified.
    }
    return bytes;
  }

  /** Record use of cache keys (for LRU). */
  touch(keys: string[]): Promise<void> {
    return this.o.store.update((state) => {
      const now = Date.now();
      for (const key of keys) {
        const file = state.files[key];
        if (file) file.lastUsed = now;
      }
    });
  }

  /** Record `version` as this spec's last good version, then evict past the budget. */
  async adopt(version: ResolvedVersion): Promise<void> {
    const keep = new Set(version.files.map(cacheKey));
    const evicted = await this.o.store.update((state) => {
      state.good[this.key] = { ...version, at: Date.now() };
      if (state.pending[this.key]?.version === version.version) delete state.pending[this.key];
      const pending = state.pending[this.key];
      for (const key of [...this.o.store.inUse(), ...(pending?.files.map(cacheKey) ?? [])]) keep.add(key);
      const files = Object.entries(state.files).map(([key, f]) => ({ key, size: f.size, lastUsed: f.lastUsed }));
      const evict = this.o.wasm.registryPlanEviction(files, [...keep], this.o.cacheBudget);
      for (const key of evict) delete state.files[key];
      return evict;
    });
    for (const key of evicted) await this.o.store.cache.delete(key).catch(() => undefined);
    // The version that works is what offline loads fall back to: make it durable now.
    await this.o.store.flush();
  }

  /** Remember a verified, downloaded version for `update()` or the next load. */
  setPending(version: ResolvedVersion | null): Promise<void> {
    return this.o.store.update((state) => {
      if (version) state.pending[this.key] = { ...version, at: Date.now() };
      else delete state.pending[this.key];
    });
  }

  async lastGood(): Promise<Adopted | null> {
    return (await this.o.store.read()).good[this.key] ?? null;
  }

  async pending(): Promise<Adopted | null> {
    return (await this.o.store.read()).pending[this.key] ?? null;
  }

}

function hex(buffer: ArrayBuffer): string {
  return Array.from(new Uint8Array(buffer), (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The cache key of a file: its content address. */
export function cacheKey(file: FileEntry): string {
  return `sha256-${file.sha256}`;
}

/**
 * GET `url` and read its body, reporting progress; refuses a body longer than `expected`
 * (a wrong or hostile server cannot fill memory) and gives up when no byte arrives for
 * `stallMs`.
 */
async function fetchBody(
  fetcher: Fetcher,
  url: URL,
  expected: number,
  stallMs: number,
  progress: (loaded: number, total: number) => void,
): Promise<Uint8Array> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stalled = false;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      stalled = true;
      controller.abort();
    }, stallMs);
  };
  const label = `GET ${url.href}`;
  try {
    arm();
    const response = await fetcher(url, { signal: controller.signal }, 'file');
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new BrasaError('network', `${label}: HTTP ${response.status} ${response.statusText}`.trim());
    }
    const out = new Uint8Array(expected);
    let loaded = 0;
    progress(0, expected);
    if (!response.body) {
      const all = new Uint8Array(await response.arrayBuffer());
      if (all.length > expected) throw tooLong(url, expected);
      out.set(all);
      loaded = all.length;
    } else {
      const reader = response.body.getReader();
      for (;;) {
        arm();
        const { done, value } = await reader.read();
        if (done) break;
        if (loaded + value.length > expected) {
          await reader.cancel().catch(() => undefined);
          throw tooLong(url, expected);
        }
        out.set(value, loaded);
        loaded += value.length;
        progress(loaded, expected);
      }
    }
    // A short body is caught by the integrity check with the exact sizes.
    return loaded === expected ? out : out.subarray(0, loaded);
  } catch (err) {
    if (stalled) throw new BrasaError('network', `${label}: no data for ${stallMs} ms; gave up`, { cause: err });
    throw asNetworkError(err, label);
  } finally {
    clearTimeout(timer);
  }
}

function tooLong(url: URL, expected: number): BrasaError {
  return new BrasaError('integrity', `integrity check failed for ${url.href}: the body is longer than the ${expected} bytes the manifest lists`);
}

/** Run `task` with an abort signal that fires on `signal` or after `ms`. */
async function withTimeout<T>(ms: number, signal: AbortSignal | undefined, task: (signal: AbortSignal) => Promise<T>, label: string): Promise<T> {
  const controller = new AbortController();
  const onAbort = () => controller.abort(signal?.reason);
  signal?.addEventListener('abort', onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, ms);
  try {
    return await raceAbort(task(controller.signal), controller.signal);
  } catch (err) {
    if (timedOut) throw new BrasaError('network', `${label}: no answer within ${ms} ms`, { cause: err });
    throw err;
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
  }
}

/** `promise`, or a rejection as soon as `signal` aborts. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

function abortError(signal: AbortSignal): BrasaError {
  return new BrasaError('network', 'aborted', { cause: signal.reason });
}

function asNetworkError(err: unknown, label: string): BrasaError {
  if (err instanceof BrasaError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new BrasaError('network', `${label}: ${message}`, { cause: err });
}
