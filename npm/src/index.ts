/**
 * brasa for browsers, Web Workers, Deno and Cloudflare Workers.
 *
 * ```js
 * import { loadModel } from 'brasa';
 * const model = await loadModel('mnist', { weights: '/models/mnist.bpk' });
 * const { label, probabilities } = await model.run(pixels);
 *
 * // Versioned, cached, verified, following a channel:
 * const m = await loadModel('mnist@stable', { registry: 'https://cdn.example.com/models/' });
 * m.addEventListener('update-available', () => m.update());
 * ```
 * @module
 */
import { CacheStorageCache, MemoryCache, type ModelCache } from './cache.js';
import { createLoader, importGlue, responseBytes, type Platform } from './core.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';
import type { Backend, WasmSource } from './types.js';

// A page or a Web Worker: there the browser's HTTP cache stays out of the way. brasa revalidates
// manifests itself, and keeps verified weights in its own cache: a second copy in the HTTP
// cache would double the storage of every model. (workerd refuses the `cache` option; there
// and in Deno no HTTP cache sits in between.)
const inBrowser = typeof document !== 'undefined' || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

let sharedCache: ModelCache | null = null;

const web: Platform = {
  async instantiate(build: Backend, source: WasmSource | undefined) {
    const glue = await importGlue(build);
    if (source instanceof WebAssembly.Module) {
      glue.initSync({ module: source });
    } else {
      await glue.default(source === undefined ? undefined : { module_or_path: source });
    }
    return glue;
  },
  async fetchBytes(url: URL, signal?: AbortSignal) {
    return responseBytes(await fetch(url, { signal }), url.href);
  },
  baseUrl() {
    return (globalThis as { location?: { href: string } }).location?.href;
  },
  fetch(url, init) {
    return fetch(url, inBrowser ? { ...init, cache: 'no-store' } : init);
  },
  defaultCache() {
    sharedCache ??= typeof globalThis.caches?.open === 'function' ? new CacheStorageCache() : new MemoryCache();
    return sharedCache;
  },
};

/** Load a model; see {@link createLoader}. */
export const loadModel = createLoader(web);

/**
 * A KServe v2 endpoint as a `fetch(request)` handler, for Cloudflare Workers, Deno and
 * browsers' service workers.
 *
 * ```js
 * import { createHandler } from 'brasa';
 * const handler = createHandler({ models: ['mnist'], registry: 'https://models.example.com/' });
 * export default { fetch: (request) => handler.fetch(request) };
 * ```
 */
export function createHandler(options: HandlerOptions): Handler {
  return createHandlerFor(loadModel, options);
}
export { BrasaEvent, BrasaModel } from './core.js';
export { CacheStorageCache, MemoryCache, type ModelCache } from './cache.js';
export type { Handler, HandlerOptions, ServedModel } from './serve.js';
export { BrasaError, type BrasaErrorCode } from './errors.js';
export type * from './types.js';
