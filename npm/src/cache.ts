/**
 * Where the registry fetcher keeps verified weight files and its own small state. Keys are
 * short, flat names (`sha256-<hex>`, `state.json`). Pass your own {@link ModelCache} to keep
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

  constructor(name = 'brasa-models', storage: CacheStorage = globalThis.caches) {
    this.#name = name;
    this.#storage = storage;
  }

  get kind(): string {
    return this.fallbackReason === null ? 'cache-storage' : 'memory';
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
  }

  async delete(key: string): Promise<void> {
    const cache = await this.#open();
    if (!cache) return this.#memory.delete(key);
    await cache.delete(CACHE_ORIGIN + key);
  }
}
