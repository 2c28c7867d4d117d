/**
 * Where the registry fetcher keeps verified weight files and its own small state. Keys are
 * short, flat names (`sha256-<hex>`, `state.json`, and apart from the state, so a damaged one
 * loses less: `manifest-<hash>.json`, `client-id`). Pass your own {@link ModelCache} to keep
 * models in IndexedDB, OPFS, KV or anything else.
 * @module
 */

/** A byte store for model files. Implementations must be safe to call concurrently. */
export interface ModelCache {
  /** The bytes stored under `key`, or `undefined`. */
  get(key: string): Promise<Uint8Array | undefined>;
  /** Store `bytes` under `key`, replacing what was there. */
  put(key: string, bytes: Uint8Array): Promise<void>;
  /** Remove `key`; no error when it is absent. */
  delete(key: string): Promise<void>;
  /** What kind of storage this is, for metrics and events (`cache-storage`, `file`, `memory`…). */
  readonly kind: string;
  /**
   * Optional, for storage that other processes share (a `FileCache` folder): run `task`
   * holding a lock that excludes every other process's `lock` on the same storage, released
   * when `task` settles and broken (after a while) when its holder died. With it, the fetcher
   * reads, changes and writes its state under the lock — merging what other processes wrote
   * instead of overwriting it — and records the files its running models use as a lease that
   * other processes' eviction respects. Without it (Cache Storage, memory), the state is kept
   * in memory and written in the background, as for a single realm.
   */
  lock?<T>(task: () => Promise<T>): Promise<T>;
  /**
   * With `lock`: how long (ms) a process's lease on the files it serves lasts unless renewed
   * (renewed every third of that while it runs); a crashed process's files are protected this
   * long. Default 60 000.
   */
  readonly leaseMs?: number;
  /**
   * Whether what is written here outlives this realm: `false` when writes are accepted but
   * not kept (Cloudflare's Cache API on `workers.dev`, a fall back to memory), `true` once a
   * write was read back, `undefined`/`null` when not known. The fetcher reports `false` (the
   * `cache-not-persisted` event; `brasa_cache_persistent` 0 on an endpoint).
   */
  readonly persistent?: boolean | null;
  /** Why {@link persistent} is `false`. */
  readonly persistenceReason?: string | null;
}

/** Keeps files in this realm's memory: gone with the page or process. The last resort. */
export class MemoryCache implements ModelCache {
  readonly kind = 'memory';
  #entries = new Map<string, Uint8Array>();

  async get(key: string): Promise<Uint8Array | undefined> {
    return this.#entries.get(key);
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    this.#entries.set(key, bytes.slice());
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(key);
  }
}

// Cache Storage is keyed by URL; this origin never resolves, so entries cannot collide with
// the page's own requests.
const CACHE_ORIGIN = 'https://brasa-cache.invalid/';

/**
 * The Cache Storage API (`caches`): browsers, Web Workers, Deno and Cloudflare Workers. Falls
 * back to memory, for good, where opening the cache fails (opaque origins, storage disabled).
 */
export class CacheStorageCache implements ModelCache {
  #name: string;
  #storage: CacheStorage;
  #opened: Promise<Cache | null> | null = null;
  #memory = new MemoryCache();
  /** Why it fell back to memory, if it did. */
  fallbackReason: string | null = null;
  #kept: boolean | null = null;
  #lostReason: string | null = null;

  constructor(name = 'brasa-models', storage: CacheStorage = globalThis.caches) {
    this.#name = name;
    this.#storage = storage;
  }

  get kind(): string {
    return this.fallbackReason === null ? 'cache-storage' : 'memory';
  }

  get persistent(): boolean | null {
    return this.fallbackReason === null ? this.#kept : false;
  }

  get persistenceReason(): string | null {
    return this.fallbackReason ?? this.#lostReason;
  }

  #open(): Promise<Cache | null> {
    this.#opened ??= this.#storage.open(this.#name).catch((err: unknown) => {
      this.fallbackReason = `Cache Storage is unavailable (${err instanceof Error ? err.message : String(err)}); keeping models in memory`;
      return null;
    });
    return this.#opened;
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const cache = await this.#open();
    if (!cache) return this.#memory.get(key);
    const response = await cache.match(CACHE_ORIGIN + key);
    return response ? new Uint8Array(await response.arrayBuffer()) : undefined;
  }

  async put(key: string, bytes: Uint8Array): Promise<void> {
    const cache = await this.#open();
    if (!cache) return this.#memory.put(key, bytes);
    // Cloudflare's cache stores only responses that say they may be cached.
    const headers = { 'content-type': 'application/octet-stream', 'cache-control': 'public, max-age=31536000, immutable' };
    await cache.put(CACHE_ORIGIN + key, new Response(bytes.slice(), { headers }));
    // Cloudflare's Cache API accepts and drops every write on workers.dev (and where a zone
    // bypasses the cache): read it back, so that a cache that keeps nothing is visible.
    const kept = await cache.match(CACHE_ORIGIN + key);
    await kept?.body?.cancel().catch(() => undefined);
    if (kept) {
      this.#kept ??= true;
    } else {
      this.#kept = false;
      this.#lostReason = `Cache Storage \`${this.#name}\` accepted a write but did not keep it (Cloudflare's Cache API does this on workers.dev): model files are downloaded again by every new isolate, and fetcher state (rollout identity included) does not survive one`;
    }
  }

  async delete(key: string): Promise<void> {
    const cache = await this.#open();
    if (!cache) return this.#memory.delete(key);
    await cache.delete(CACHE_ORIGIN + key);
  }
}
