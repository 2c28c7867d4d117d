/**
 * The platform of pages, Web Workers, service workers, Deno and Cloudflare Workers: `fetch`,
 * Cache Storage, wasm from URLs. The entries (`index.ts`, `workerd.ts`) build their loaders on it.
 * @module
 */
import { CacheStorageCache, MemoryCache, type ModelCache } from './cache.js';
import type { Glue } from './glue.js';
import { responseBytes, type Platform } from './loader.js';
import { withoutCacheMode } from './registry.js';
import type { ModelBuild, WasmSource } from './types.js';

// A page or a Web Worker: there the browser's HTTP cache stays out of the way. brasa revalidates
// manifests itself, and keeps verified weights in its own cache: a second copy in the HTTP
// cache would double the storage of every model. (workerd refuses the `cache` option; there
// and in Deno no HTTP cache sits in between.)
const inBrowser = typeof document !== 'undefined' || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

/**
 * The fetcher's requests in a browser. Files: `no-store` (which also sends `Cache-Control:
 * no-cache`, so proxies and CDNs answer fresh, as a retry needs). Manifests from this origin:
 * `no-store` with brasa's own `If-None-Match`. Manifests from another origin: that header is
 * not CORS-safelisted, so it would cost a preflight, which a plain static host or bucket does
 * not answer (and `ETag` is readable only where exposed); `no-cache` has the browser's HTTP
 * cache revalidate with the validators it stored (`ETag` or `Last-Modified`) instead, and a
 * 304 reaches brasa as the cached 200.
 */
function browserRequest(url: URL, init: RequestInit, kind: 'manifest' | 'file'): RequestInit {
  const origin = (globalThis as { location?: { origin?: string } }).location?.origin;
  if (kind === 'manifest' && origin && url.origin !== origin) {
    const headers = new Headers(init.headers);
    headers.delete('if-none-match');
    return { ...init, headers, cache: 'no-cache' };
  }
  return { ...init, cache: 'no-store' };
}

let sharedCache: ModelCache | null = null;

/** The `file:` URL of directory `path` (POSIX or Windows), ending in `/`. */
function directoryUrl(path: string): string {
  const posix = path.replace(/\\/g, '/');
  const encoded = posix.split('/').map(encodeURIComponent).join('/').replace(/^([A-Za-z])%3A/, '$1:');
  return `file://${encoded.startsWith('/') ? '' : '/'}${encoded}${encoded.endsWith('/') ? '' : '/'}`;
}

/** The web platform (no code from registries: entries that allow it add `packageFromRegistry`). */
export const web: Platform = {
  async instantiate(glue: Glue, build: ModelBuild, source: WasmSource | undefined) {
    source ??= await build.wasmBytes?.();
    if (source instanceof WebAssembly.Module) {
      glue.initSync({ module: source });
    } else {
      await glue.default({ module_or_path: source ?? build.wasm });
    }
  },
  async fetchBytes(url: URL, signal?: AbortSignal) {
    return responseBytes(await fetch(url, { signal }), url.href);
  },
  baseUrl() {
    // A page's or a worker's own URL (a worker's is its script's). Deno without `--location`
    // has none: there relative paths are files in the working directory, as with Deno.readFile
    // (and as on Node). Workers (workerd) have neither: give absolute URLs there.
    const href = (globalThis as { location?: { href: string } }).location?.href;
    if (href) return href;
    const cwd = (globalThis as { Deno?: { cwd?(): string } }).Deno?.cwd?.();
    return cwd === undefined ? undefined : directoryUrl(cwd);
  },
  fetch(url: URL, init: RequestInit, kind) {
    return fetch(url, inBrowser ? browserRequest(url, init, kind) : withoutCacheMode(init));
  },
  defaultCache() {
    sharedCache ??= typeof globalThis.caches?.open === 'function' ? new CacheStorageCache() : new MemoryCache();
    return sharedCache;
  },
};

