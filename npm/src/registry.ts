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
import type { Backend, FileEntry, ProgressInfo, RegistryEvent, ResolvedVersion } from './types.js';

/** The wasm exports of the registry logic. */
export interface RegistryWasm {
  registryResolve(manifest: string, spec: string, clientId: string, dtype?: string): unknown;
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

/**
 * How fetches are made on this platform. `init.cache` is `'reload'` for a second try that must
 * get past every HTTP cache (the browser's, proxies', CDNs'); a platform whose `fetch` ignores or
 * refuses the `cache` option passes {@link withoutCacheMode}'s request instead.
 */
export type Fetcher = (url: URL, init: RequestInit, kind: 'manifest' | 'file') => Promise<Response>;

/**
 * `init` for a `fetch` without an HTTP cache of its own (Node, Deno, workerd; Deno ignores
 * `cache` and workerd refuses it): a reload becomes the request headers that tell proxies and
 * CDNs not to answer from their caches (RFC 9111 §5.2.1.4; `Pragma` for HTTP/1.0 caches).
 */
export function withoutCacheMode(init: RequestInit): RequestInit {
  const { cache, ...rest } = init;
  if (cache !== 'reload') return rest;
  const headers = new Headers(rest.headers);
  headers.set('cache-control', 'no-cache');
  headers.set('pragma', 'no-cache');
  return { ...rest, headers };
}

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
  /** Versions this client refused, and why: per `manifestUrl#version` what was proven bad on
   * every backend (a file the registry contradicted twice, weights that do not load), per
   * `manifestUrl#version@backend` a golden check that failed on that backend. */
  rejected: Record<string, Refusal>;
  /** Per cache key: size and last use, for LRU eviction. */
  files: Record<string, { size: number; lastUsed: number }>;
  /**
   * Per process (with a cache that has `lock`): the cache keys its running models use, and
   * until when (ms since the epoch) that claim holds unless renewed. Eviction skips them.
   */
  leases?: Record<string, Lease>;
}

interface Lease {
  keys: string[];
  expires: number;
}

/** A version refused for what was proven about it. */
export interface Refusal {
  code: string;
  reason: string;
  at: number;
  /** Where it was proven: a golden check fails on one backend; `null` for every backend.
   * Absent in entries written by earlier brasa versions (which also recorded transient
   * faults): only their backend-independent verdicts are kept. */
  backend?: Backend | null;
}

const STATE_KEY = 'state.json';
/** A file the registry contradicted twice is refused this long: a CDN serving a corrupt copy
 * may be repaired without a new version. Weights that do not load and failed golden checks
 * are final (versions are immutable). */
const INTEGRITY_REFUSAL_MS = 10 * 60 * 1000;
/** The largest file a manifest may list, as the manifest rules in Rust say (`MAX_FILE_SIZE`,
 * crates/brasa-registry): under 4 GiB, what a wasm32 instance can hold. */
const MAX_FILE_BYTES = 2 ** 32 - 1;

function freshState(clientId: string): State {
  return { schema: 1, clientId, manifests: {}, good: {}, pending: {}, rejected: {}, files: {} };
}

// Kept apart from the state, so that a damaged `state.json` loses less: the rollout identity,
// and each manifest that resolved (what an offline load resolves its spec in, to find the
// version's files in the cache by their hashes).
const CLIENT_ID_KEY = 'client-id';

/** The cache key of the copy of the manifest at `url`: `manifest-<hash of the URL>.json`. */
function manifestKey(url: string): string {
  // cyrb53: a short, stable name (the copy holds its URL, checked on reading).
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < url.length; i++) {
    const c = url.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return `manifest-${(h2 >>> 0).toString(16).padStart(8, '0')}${(h1 >>> 0).toString(16).padStart(8, '0')}.json`;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function isVersion(v: unknown): boolean {
  return (
    isRecord(v) &&
    isText(v.version) &&
    isText(v.model) &&
    Array.isArray(v.files) &&
    v.files.every((f) => isRecord(f) && isText(f.path) && isText(f.sha256) && isCount(f.size))
  );
}

/** What each record of the state must hold; entries that do not are dropped. */
const ENTRY_RULES: Record<'manifests' | 'good' | 'pending' | 'rejected' | 'files', (v: unknown) => boolean> = {
  manifests: (v) => isRecord(v) && isText(v.body) && (v.etag === null || isText(v.etag)),
  good: isVersion,
  pending: isVersion,
  rejected: (v) => isRecord(v) && isText(v.code) && isText(v.reason) && isCount(v.at),
  files: (v) => isRecord(v) && isCount(v.size) && isCount(v.lastUsed),
};

/**
 * A parsed `state.json` as a {@link State}: `null` when nothing of it can be used (not an
 * object, another schema, no client id), else with what is malformed dropped; `damage` says
 * what was wrong.
 */
function checkState(value: unknown): { state: State | null; damage: string | null } {
  if (!isRecord(value)) return { state: null, damage: 'it is not a JSON object' };
  if (value.schema !== 1) return { state: null, damage: `its schema is ${JSON.stringify(value.schema)?.slice(0, 20)}, not 1` };
  if (!isText(value.clientId) || value.clientId === '') return { state: null, damage: 'it has no client id' };
  const dropped: string[] = [];
  for (const [field, valid] of Object.entries(ENTRY_RULES)) {
    const record = value[field];
    if (!isRecord(record)) {
      if (record !== undefined) dropped.push(`\`${field}\` (not an object)`);
      value[field] = {};
      continue;
    }
    const bad = Object.keys(record).filter((key) => !valid(record[key]));
    for (const key of bad) delete record[key];
    if (bad.length > 0) dropped.push(`${bad.length} malformed entr${bad.length === 1 ? 'y' : 'ies'} of \`${field}\``);
  }
  if (value.leases !== undefined) {
    const leases = value.leases;
    if (!isRecord(leases)) delete value.leases;
    else for (const [id, l] of Object.entries(leases)) if (!isRecord(l) || !Array.isArray(l.keys) || !l.keys.every(isText) || !isCount(l.expires)) delete leases[id];
  }
  return { state: value as unknown as State, damage: dropped.length > 0 ? `it held ${dropped.join(', ')}; the rest is kept` : null };
}

const DEFAULT_LEASE_MS = 60_000;

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
 *
 * A cache with `lock` is shared with other processes: every change then reads the stored
 * state, changes it and writes it back (temporary file, rename) under that lock, so changes
 * by other processes are merged, never overwritten; and this realm's lease in the state
 * lists the files its models use, so no other process evicts them while it runs.
 */
export class Store {
  readonly cache: ModelCache;
  #lock: Promise<unknown> = Promise.resolve();
  // Without `lock`, the state lives in memory once read; writes are coalesced and go out in
  // the background (`flush` waits for them). Another tab writing the same cache meanwhile
  // loses its changes to ours: the state is bookkeeping (files are content-addressed and
  // verified on every read), so the worst outcome is a re-download or a network-first resolution.
  #state: State | null = null;
  #dirty = false;
  #writes: Promise<void> = Promise.resolve();
  #downloads = new Map<string, Download>();
  #inUse = new Map<string, number>();
  /** The client id of a state this store creates (one per store, so every read agrees). */
  #clientId = randomId();
  readonly #shared: boolean;
  readonly #leaseId = randomId();
  readonly #leaseMs: number;
  /** Keys released, and when: they stay in the lease for one renewal interval (a model
   * that read its files holds them only once it is created). */
  #released = new Map<string, number>();
  /** Keys the lease listed when last written; a held key missing from it needs a write. */
  #leased = new Set<string>();
  #renewal: ReturnType<typeof setInterval> | undefined;
  /** The client id kept apart from the state: `undefined` until read, `null` when none. */
  #savedClientId: string | null | undefined = undefined;
  /** Damage found in the state and not reported yet; the last finding (not repeated). */
  #unreported: string[] = [];
  #lastDamage: string | null = null;

  constructor(cache: ModelCache) {
    this.cache = cache;
    this.#shared = typeof cache.lock === 'function';
    this.#leaseMs = cache.leaseMs && cache.leaseMs > 0 ? cache.leaseMs : DEFAULT_LEASE_MS;
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

  async #read(): Promise<{ state: State; stored: boolean }> {
    let damage: string;
    try {
      const bytes = await this.cache.get(STATE_KEY);
      if (!bytes) return { state: await this.#fresh(), stored: false };
      const checked = checkState(JSON.parse(new TextDecoder().decode(bytes)));
      if (checked.state) {
        this.#damaged(checked.damage);
        return { state: checked.state, stored: true };
      }
      damage = checked.damage!;
    } catch (err) {
      damage = `it could not be read (${err instanceof Error ? err.message : String(err)})`;
    }
    // A damaged state costs bookkeeping, never a failed load: the files are found by their
    // hashes and verified, the manifests and the client id are kept apart too.
    this.#damaged(`${damage}; started afresh`);
    return { state: await this.#fresh(), stored: false };
  }

  /** A new state, with the client id kept apart when there is one (the rollout identity). */
  async #fresh(): Promise<State> {
    if (this.#savedClientId === undefined) {
      try {
        const bytes = await this.cache.get(CLIENT_ID_KEY);
        const id = bytes ? new TextDecoder().decode(bytes) : '';
        this.#savedClientId = /^[\x21-\x7e]{1,200}$/.test(id) ? id : null;
      } catch {
        this.#savedClientId = null;
      }
    }
    return freshState(this.#savedClientId ?? this.#clientId);
  }

  /** Keep the client id of a state written apart from it (once per store). */
  async #keepClientId(id: string): Promise<void> {
    if (this.#savedClientId === id) return;
    try {
      const bytes = await this.cache.get(CLIENT_ID_KEY);
      if (!bytes || new TextDecoder().decode(bytes) !== id) await this.cache.put(CLIENT_ID_KEY, new TextEncoder().encode(id));
      this.#savedClientId = id;
    } catch {
      // Bookkeeping: the state itself holds the id.
    }
  }

  /** Note what a read found wrong with the state (`null`: nothing), each finding once. */
  #damaged(damage: string | null): void {
    if (damage !== null && damage !== this.#lastDamage) this.#unreported.push(`the fetcher's state (${STATE_KEY}) was damaged: ${damage}`);
    this.#lastDamage = damage;
  }

  /** What reads found wrong with the state since the last call (for `state-reset` events). */
  takeDamage(): string[] {
    return this.#unreported.splice(0);
  }

  /** The state, read-only (change it through {@link update}). */
  read(): Promise<State> {
    return this.update((state) => state, false);
  }

  /**
   * Modify the state, one change at a time in this realm: with a shared cache (`lock`) read,
   * changed and written under its lock before this resolves, else persisted in the background.
   */
  update<T>(change: (state: State) => T | Promise<T>, write = true): Promise<T> {
    const run = this.#lock.then(() => (this.#shared ? this.#sharedUpdate(change, write) : this.#localUpdate(change, write)));
    this.#lock = run.catch(() => undefined);
    return run;
  }

  async #localUpdate<T>(change: (state: State) => T | Promise<T>, write: boolean): Promise<T> {
    this.#state ??= (await this.#read()).state;
    const result = await change(this.#state);
    if (write) this.#scheduleWrite();
    return result;
  }

  async #sharedUpdate<T>(change: (state: State) => T | Promise<T>, write: boolean): Promise<T> {
    if (!write) {
      // Writes replace the file whole, so a read without the lock sees one complete state.
      const { state, stored } = await this.#read();
      if (stored) return change(state);
      // No state yet: create it under the lock, so that every process uses one client id.
    }
    let locked = false;
    try {
      return await this.cache.lock!(async () => {
        locked = true;
        const { state } = await this.#read(); // with every other process's changes so far
        const result = await change(state);
        this.#stampLease(state);
        try {
          await this.cache.put(STATE_KEY, new TextEncoder().encode(JSON.stringify(state)));
          this.#lastDamage = null;
        } catch {
          // Storage full or unavailable: the state is bookkeeping, the model still loads.
        }
        await this.#keepClientId(state.clientId);
        return result;
      });
    } catch (err) {
      if (locked) throw err;
      // The lock cannot be had (a read-only folder, a holder that never lets go): go on
      // unrecorded rather than fail a load over bookkeeping (the lease bookkeeping too, so
      // that its renewal stops once nothing is held).
      const { state } = await this.#read();
      const result = await change(state);
      this.#stampLease(state);
      return result;
    }
  }

  /** Write this realm's lease into `state` (and drop the expired leases of others). */
  /** Whether a lease renewal is in flight (one at a time). */
  #renewing = false;

  #stampLease(state: State): void {
    const now = Date.now();
    const leases = (state.leases ??= {});
    for (const [id, lease] of Object.entries(leases)) if (!(lease.expires > now)) delete leases[id];
    const grace = this.#leaseMs / 3;
    for (const [key, at] of this.#released) if (now - at >= grace) this.#released.delete(key);
    const keys = [...new Set([...this.#inUse.keys(), ...this.#released.keys()])];
    if (keys.length > 0) leases[this.#leaseId] = { keys, expires: now + this.#leaseMs };
    else delete leases[this.#leaseId];
    if (Object.keys(leases).length === 0) delete state.leases;
    this.#leased = new Set(keys);
    if (keys.length > 0 && this.#renewal === undefined) {
      // Renewed while anything is held; unref'd, so it never keeps a process alive.
      this.#renewal = setInterval(() => {
        if (this.#renewing) return; // the last renewal still waits for the lock
        if (this.#inUse.size === 0 && [...this.#released.values()].every((at) => Date.now() - at >= grace)) {
          // Nothing held any more: the lease in the state runs out by itself.
          clearInterval(this.#renewal);
          this.#renewal = undefined;
          return;
        }
        this.#renewing = true;
        void this.update(() => undefined)
          .catch(() => undefined)
          .finally(() => (this.#renewing = false));
      }, grace);
      (this.#renewal as { unref?: () => void }).unref?.();
    } else if (keys.length === 0 && this.#renewal !== undefined) {
      clearInterval(this.#renewal);
      this.#renewal = undefined;
    }
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
        this.#lastDamage = null;
      } catch {
        // Storage full or unavailable: the state is bookkeeping, the model still loads.
      }
      if (this.#state) await this.#keepClientId(this.#state.clientId);
    });
  }

  /**
   * Mark files as used by a running model (never evicted, by this realm nor, with a shared
   * cache, by another process once the lease is written: with the next state change, which
   * this schedules if needed); returns the release function.
   */
  hold(keys: string[]): () => void {
    for (const key of keys) {
      this.#inUse.set(key, (this.#inUse.get(key) ?? 0) + 1);
      this.#released.delete(key);
    }
    if (this.#shared && keys.some((key) => !this.#leased.has(key))) {
      // Queued after this turn, and written only if no change made meanwhile (a caller's
      // right after this call) wrote the lease already.
      void Promise.resolve().then(() => {
        const run = this.#lock.then(() => (keys.some((key) => !this.#leased.has(key)) ? this.#sharedUpdate(() => undefined, true) : undefined));
        this.#lock = run.catch(() => undefined);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const now = Date.now();
      for (const key of keys) {
        const n = (this.#inUse.get(key) ?? 1) - 1;
        if (n <= 0) {
          this.#inUse.delete(key);
          if (this.#shared) this.#released.set(key, now);
        } else this.#inUse.set(key, n);
      }
    };
  }

  inUse(): string[] {
    return [...this.#inUse.keys()];
  }

  /** Keys that other processes' running models use: their leases in `state` still live at `now`. */
  leasedElsewhere(state: State, now = Date.now()): string[] {
    return Object.entries(state.leases ?? {}).flatMap(([id, lease]) => (id !== this.#leaseId && lease.expires > now ? lease.keys : []));
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
  /** The `dtype` load option (`undefined` and `'auto'`: the smallest listed). */
  dtype?: string;
  /** The signature hash of the client's build: versions that record another are `incompatible`. */
  signatureHash: string;
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
  readonly #dtypeTag: string;

  constructor(options: RegistryClientOptions) {
    this.o = options;
    // A client asking for one dtype keeps its own last good version and refusals: a refused q8
    // file says nothing about the f32 one.
    this.#dtypeTag = options.dtype && options.dtype !== 'auto' ? `~${options.dtype}` : '';
    this.key = `${options.manifestUrl.href}#${options.spec.canonical}${this.#dtypeTag}`;
  }

  /** The state (read-only), saying what was found damaged in it. */
  async #read(): Promise<State> {
    const state = await this.o.store.read();
    this.#report();
    return state;
  }

  /** Change the state, saying what was found damaged in it. */
  async #update<T>(change: (state: State) => T | Promise<T>): Promise<T> {
    const result = await this.o.store.update(change);
    this.#report();
    return result;
  }

  #report(): void {
    for (const reason of this.o.store.takeDamage()) this.o.emit({ type: 'state-reset', kind: this.o.store.cache.kind, reason });
  }

  /**
   * GET the manifest, conditional on the cached ETag; validated and parsed by the caller. The
   * tag goes back exactly as it came (a proxy that compresses turns strong tags weak, `W/"…"`,
   * and `If-None-Match` compares weakly). In a browser, for a registry on another origin, the
   * platform drops the header (it would need a CORS preflight) and lets the browser's HTTP
   * cache revalidate instead.
   */
  async fetchManifest(signal?: AbortSignal): Promise<ManifestResult> {
    const url = this.o.manifestUrl;
    const cached = (await this.#read()).manifests[url.href];
    const headers: Record<string, string> = { accept: 'application/json' };
    if (cached?.etag) headers['if-none-match'] = cached.etag;
    try {
      const response = await withTimeout(this.o.timeoutMs, signal, (s) => this.o.fetch(url, { headers, signal: s }, 'manifest'), `GET ${url.href}`);
      if (response.status === 304 && cached) {
        await response.body?.cancel();
        // A 304 updates the stored response's validator (RFC 9111 §4.3.4).
        return { ok: true, body: cached.body, status: 304, etag: response.headers.get('etag') ?? cached.etag };
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
      return this.o.wasm.registryResolve(body, this.o.spec.canonical, this.o.clientId, this.o.dtype) as ResolvedVersion;
    } catch (err) {
      throw BrasaError.from(err, 'invalid_manifest');
    }
  }

  /**
   * Ask the registry which version the spec gives now: the manifest fetched (or revalidated),
   * resolved, and remembered when it resolves. `version` is `null` when it cannot be had, and
   * `error` says why (the fetch's error, or `invalid_manifest`/`not_found` from resolving).
   */
  async ask(signal?: AbortSignal): Promise<{ version: ResolvedVersion | null; error: BrasaError | null; status: 200 | 304 | null }> {
    const answer = await this.fetchManifest(signal);
    if (!answer.ok) return { version: null, error: answer.error, status: null };
    try {
      const version = this.resolve(answer.body);
      await this.rememberManifest(answer.body, answer.etag);
      return { version, error: null, status: answer.status };
    } catch (err) {
      return { version: null, error: BrasaError.from(err, 'invalid_manifest'), status: answer.status };
    }
  }

  /**
   * Remember a manifest that resolved, with its ETag, for revalidation and offline use: in the
   * state, and (when it changed) in an entry of its own, which outlives a damaged state.
   */
  async rememberManifest(body: string, etag: string | null): Promise<void> {
    const url = this.o.manifestUrl.href;
    const changed = await this.#update((state) => {
      const before = state.manifests[url]?.body;
      state.manifests[url] = { body, etag, at: Date.now() };
      return before !== body;
    });
    if (changed) await this.o.store.cache.put(manifestKey(url), new TextEncoder().encode(JSON.stringify({ url, body }))).catch(() => undefined);
  }

  /** Cached manifest body, for resolving offline: the state's, else the copy kept apart. */
  async cachedManifest(): Promise<string | null> {
    const url = this.o.manifestUrl.href;
    const body = (await this.#read()).manifests[url]?.body;
    if (body !== undefined) return body;
    try {
      const bytes = await this.o.store.cache.get(manifestKey(url));
      const copy: unknown = bytes ? JSON.parse(new TextDecoder().decode(bytes)) : null;
      return isRecord(copy) && copy.url === url && isText(copy.body) ? copy.body : null;
    } catch {
      return null;
    }
  }

  /** Was every file of `version` cached? (Reading it verifies it again.) */
  async isCached(version: ResolvedVersion): Promise<boolean> {
    const files = (await this.#read()).files;
    for (const file of version.files) {
      const key = cacheKey(file);
      if (key in files) continue;
      // Not in the state (one that was damaged lost it): the cache may hold it all the same.
      if ((await this.o.store.cache.get(key).catch(() => undefined)) === undefined) return false;
    }
    return true;
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

  #refusalKey(version: string, backend: Backend | null): string {
    return `${this.o.manifestUrl.href}#${version}${this.#dtypeTag}${backend ? `@${backend}` : ''}`;
  }

  /**
   * Why this client refused `version` before, if it did and still does: on every backend, or
   * (given `backend`) on that one.
   */
  async rejection(version: string, backend: Backend | null): Promise<Refusal | null> {
    const rejected = (await this.#read()).rejected;
    for (const key of backend ? [this.#refusalKey(version, null), this.#refusalKey(version, backend)] : [this.#refusalKey(version, null)]) {
      const refusal = rejected[key];
      if (!refusal) continue;
      if (refusal.backend === undefined) {
        // Written by an earlier brasa, which refused versions for transient faults (a truncated
        // download) and golden checks without saying on which backend: keep only what holds
        // everywhere.
        if (refusal.code !== 'invalid_weights' && refusal.code !== 'incompatible') continue;
        return { ...refusal, backend: null };
      }
      if (refusal.code === 'integrity' && Date.now() - refusal.at > INTEGRITY_REFUSAL_MS) continue;
      return refusal;
    }
    return null;
  }

  /**
   * Remember that `version` is bad, and say so (`refused` event): a failed golden check only
   * for `backend` (where it ran), anything else for every backend. Callers pass only errors
   * that prove something about the version (`integrity` after a retry, `invalid_weights`,
   * `incompatible`, `golden_check`), never a network fault.
   */
  async reject(version: string, error: BrasaError, backend: Backend | null): Promise<void> {
    // Another signature says nothing against the version: a client with its build (or its
    // code from the registry) can load it.
    if (clientMismatches.has(error)) return;
    const on = error.code === 'golden_check' ? backend : null;
    await this.#update((state) => {
      state.rejected[this.#refusalKey(version, on)] = { code: error.code, reason: error.message, at: Date.now(), backend: on };
      if (on === null && state.pending[this.key]?.version === version) delete state.pending[this.key];
    });
    this.o.emit({ type: 'refused', version, backend: on, code: error.code, reason: error.message });
  }

  /**
   * The bytes of a version's weights: each file from the cache when there and intact, else
   * downloaded (once per file across concurrent loads), verified, then cached.
   */
  async weights(version: ResolvedVersion, signal?: AbortSignal): Promise<{ bytes: Uint8Array; downloaded: number }> {
    // Before any download: weights of another architecture could never load in this build.
    if (version.signatureHash && version.signatureHash !== this.o.signatureHash) {
      const error = new BrasaError(
        'incompatible',
        `version ${version.version} of ${version.model} implements another signature (${version.signatureHash.slice(0, 12)}…) than the build this model runs (${this.o.signatureHash.slice(0, 12)}…): a client with its build, or a new load of a model whose code comes from the registry, runs it`,
      );
      clientMismatches.add(error);
      throw error;
    }
    const burnpack = version.files.find((f) => f.format === 'burnpack');
    if (!burnpack) {
      throw new BrasaError('invalid_manifest', `version ${version.version} of ${version.model} has no burnpack file`);
    }
    const { bytes, downloaded } = await this.files(version, version.files, signal);
    return { bytes: bytes.get(burnpack)!, downloaded };
  }

  /**
   * The bytes of `files` of `version` (its weights and assets, or a build's glue and wasm):
   * each from the cache when there and intact, else downloaded (once per file across
   * concurrent loads), verified, then cached and tracked for eviction.
   */
  async files(version: ResolvedVersion, files: FileEntry[], signal?: AbortSignal): Promise<{ bytes: Map<FileEntry, Uint8Array>; downloaded: number }> {
    for (const file of files) {
      // Checked before any allocation or download (the manifest rules in Rust say the same).
      if (!Number.isSafeInteger(file.size) || file.size < 0 || file.size > MAX_FILE_BYTES) {
        throw new BrasaError(
          'invalid_manifest',
          `version ${version.version} of ${version.model} lists ${file.size} bytes for ${file.path}: a file's size must be a whole number of bytes under 4 GiB (what a wasm32 instance can hold)`,
        );
      }
    }
    let downloaded = 0;
    const out = new Map<FileEntry, Uint8Array>();
    const keys = files.map(cacheKey);
    // Held before they are read: with a shared cache, the lease that the touch writes keeps
    // other processes from evicting them from now on (the model holds them once created).
    const release = this.o.store.hold(keys);
    try {
      const untracked = await this.touch(keys);
      const found: string[] = [];
      for (const file of files) {
        let bytes = await this.#fromCache(file);
        if (bytes) {
          if (untracked.has(cacheKey(file))) found.push(cacheKey(file));
          this.o.onProgress?.({ file: file.path, version: version.version, loaded: file.size, total: file.size, fromCache: true });
        } else {
          bytes = await this.#download(file, version.version, signal);
          downloaded += bytes.length;
        }
        out.set(file, bytes);
      }
      if (found.length > 0) {
        // Cached, verified, and unknown to the state (one that was damaged lost them): tracked
        // again, for eviction.
        await this.#update((state) => {
          for (const file of files) if (found.includes(cacheKey(file))) state.files[cacheKey(file)] ??= { size: file.size, lastUsed: Date.now() };
        });
      }
    } finally {
      release();
    }
    return { bytes: out, downloaded };
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
      await this.#update((state) => {
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
    const download = this.o.store.download(key, (progress) => this.#fetchVerified(url, file, version, progress));
    download.listeners.add(report);
    if (download.last) report(...download.last);
    const done = download.promise.finally(() => download.listeners.delete(report));
    return signal ? raceAbort(done, signal) : done;
  }

  /**
   * Download and verify a file; a failed try (cut short, stalled, an HTTP error, bytes that do
   * not match) is tried once more, past every HTTP cache (`cache: 'reload'`): a transient fault
   * must fail neither the load nor, above all, the version. Only bytes that contradict the
   * manifest on that second try too are an `integrity` error, which refuses the version.
   */
  async #fetchVerified(url: URL, file: FileEntry, version: string, progress: (loaded: number, total: number) => void): Promise<Uint8Array> {
    const attempt = async (reload: boolean) => {
      const bytes = await fetchBody(this.o.fetch, url, file.size, this.o.timeoutMs, progress, reload);
      await this.verify(file, bytes);
      return bytes;
    };
    let bytes: Uint8Array;
    try {
      bytes = await attempt(false);
    } catch (err) {
      const first = BrasaError.from(err, 'network');
      this.o.emit({ type: 'retry', version, file: file.path, code: first.code, reason: first.message });
      try {
        bytes = await attempt(true);
      } catch (err2) {
        const second = BrasaError.from(err2, 'network');
        if (second.code !== 'integrity') throw second;
        throw new BrasaError('integrity', `${second.message}, again when downloaded a second time past HTTP caches: the registry contradicts its manifest`, { cause: second });
      }
    }
    try {
      await this.o.store.cache.put(cacheKey(file), bytes);
      await this.#update((state) => {
        state.files[cacheKey(file)] = { size: bytes.length, lastUsed: Date.now() };
      });
    } catch {
      // A full or failing cache must not fail the load; the bytes are verified.
    }
    return bytes;
  }

  /** Record use of cache keys (for LRU); returns those the state does not track. */
  touch(keys: string[]): Promise<Set<string>> {
    return this.#update((state) => {
      const now = Date.now();
      const untracked = new Set<string>();
      for (const key of keys) {
        const file = state.files[key];
        if (file) file.lastUsed = now;
        else untracked.add(key);
      }
      return untracked;
    });
  }

  /** Record `version` as this spec's last good version, then evict past the budget. */
  async adopt(version: ResolvedVersion): Promise<void> {
    const keep = new Set(version.files.map(cacheKey));
    // Its code too, where the client took it from the registry (whichever builds it fetched).
    for (const build of Object.values(version.builds ?? {})) for (const file of [build.glue, build.wasm]) keep.add(cacheKey(file));
    await this.#update(async (state) => {
      const now = Date.now();
      state.good[this.key] = { ...version, at: now };
      if (state.pending[this.key]?.version === version.version) delete state.pending[this.key];
      const pending = state.pending[this.key];
      for (const key of [...this.o.store.inUse(), ...(pending?.files.map(cacheKey) ?? [])]) keep.add(key);
      // What other processes' running models use (their live leases) is never evicted.
      for (const key of this.o.store.leasedElsewhere(state, now)) keep.add(key);
      const files = Object.entries(state.files).map(([key, f]) => ({ key, size: f.size, lastUsed: f.lastUsed }));
      const evict = this.o.wasm.registryPlanEviction(files, [...keep], this.o.cacheBudget);
      // Deleted inside the change: with a shared cache, under the lock, so no process claims
      // a file between this plan and its deletion.
      for (const key of evict) {
        delete state.files[key];
        await this.o.store.cache.delete(key).catch(() => undefined);
      }
    });
    // The version that works is what offline loads fall back to: make it durable now.
    await this.o.store.flush();
  }

  /** Remember a verified, downloaded version for `update()` or the next load. */
  setPending(version: ResolvedVersion | null): Promise<void> {
    return this.#update((state) => {
      if (version) state.pending[this.key] = { ...version, at: Date.now() };
      else delete state.pending[this.key];
    });
  }

  async lastGood(): Promise<Adopted | null> {
    return (await this.#read()).good[this.key] ?? null;
  }

  async pending(): Promise<Adopted | null> {
    return (await this.#read()).pending[this.key] ?? null;
  }

}

/** Errors that say a version is not for this client's build (never remembered as refusals). */
const clientMismatches = new WeakSet<BrasaError>();

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
  reload = false,
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
    const response = await fetcher(url, reload ? { signal: controller.signal, cache: 'reload' } : { signal: controller.signal }, 'file');
    if (!response.ok) {
      await response.body?.cancel().catch(() => undefined);
      throw new BrasaError('network', `${label}: HTTP ${response.status} ${response.statusText}`.trim());
    }
    let out: Uint8Array;
    let loaded = 0;
    progress(0, expected);
    if (!response.body) {
      out = new Uint8Array(await response.arrayBuffer());
      if (out.length > expected) throw tooLong(url, expected);
      loaded = out.length;
    } else {
      // Memory follows the bytes that arrive (the length the response gives, grown as needed),
      // never more than the manifest lists, and never that size up front: a manifest that
      // overstates a size costs nothing before the body runs out.
      const length = Number(response.headers.get('content-length') ?? NaN);
      out = allocate(Number.isSafeInteger(length) && length > 0 && length <= expected ? length : Math.min(expected, 1 << 20), label);
      const reader = response.body.getReader();
      for (;;) {
        arm();
        const { done, value } = await reader.read();
        if (done) break;
        if (loaded + value.length > expected) {
          await reader.cancel().catch(() => undefined);
          throw tooLong(url, expected);
        }
        if (loaded + value.length > out.length) {
          const grown = allocate(Math.min(expected, Math.max(loaded + value.length, out.length * 2)), label);
          grown.set(out.subarray(0, loaded));
          out = grown;
        }
        out.set(value, loaded);
        loaded += value.length;
        progress(loaded, expected);
      }
    }
    // A body that ends early says nothing about the file (a cut connection, a proxy that gave
    // up): a network failure, never proof against the version.
    if (loaded < expected) throw new BrasaError('network', `${label}: the body ended after ${loaded} of the ${expected} bytes the manifest lists`);
    return out.length === loaded ? out : out.subarray(0, loaded);
  } catch (err) {
    if (stalled) throw new BrasaError('network', `${label}: no data for ${stallMs} ms; gave up`, { cause: err });
    throw asNetworkError(err, label);
  } finally {
    clearTimeout(timer);
  }
}

/** `size` zeroed bytes, or a typed error saying this runtime has no room for them. */
function allocate(size: number, label: string): Uint8Array {
  try {
    return new Uint8Array(size);
  } catch (err) {
    throw new BrasaError('internal', `${label}: no memory for ${size} bytes (${err instanceof Error ? err.message : String(err)})`, { cause: err });
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
