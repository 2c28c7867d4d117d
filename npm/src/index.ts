/**
 * brasa for browsers, Web Workers, Deno and Cloudflare Workers.
 *
 * ```js
 * import { loadModel, createClassifier } from 'brasa';
 * import mnist from 'mnist-model';          // a model package made by `brasa build`
 *
 * const model = await loadModel(mnist, { weights: '/models/mnist.bpk' });
 * const { logits } = await model.run({ pixels: new Tensor('float32', data, [1, 1, 28, 28]) });
 * const { label } = await createClassifier(model).run(pixels);
 *
 * // Versioned, cached, verified, following a channel:
 * const m = await loadModel('mnist@stable', { registry: 'https://cdn.example.com/models/', build: mnist });
 * m.addEventListener('update-available', () => m.update());
 * ```
 * @module
 */
import { CacheStorageCache, MemoryCache, type ModelCache } from './cache.js';
import type { Glue } from './glue.js';
import { createLoader, responseBytes, type Platform } from './loader.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';
import type { ModelBuild, WasmSource } from './types.js';

// A page or a Web Worker: there the browser's HTTP cache stays out of the way. brasa revalidates
// manifests itself, and keeps verified weights in its own cache: a second copy in the HTTP
// cache would double the storage of every model. (workerd refuses the `cache` option; there
// and in Deno no HTTP cache sits in between.)
const inBrowser = typeof document !== 'undefined' || typeof (globalThis as { WorkerGlobalScope?: unknown }).WorkerGlobalScope !== 'undefined';

let sharedCache: ModelCache | null = null;

const web: Platform = {
  async instantiate(glue: Glue, build: ModelBuild, source: WasmSource | undefined) {
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
    return (globalThis as { location?: { href: string } }).location?.href;
  },
  fetch(url: URL, init: RequestInit) {
    return fetch(url, inBrowser ? { ...init, cache: 'no-store' } : init);
  },
  defaultCache() {
    sharedCache ??= typeof globalThis.caches?.open === 'function' ? new CacheStorageCache() : new MemoryCache();
    return sharedCache;
  },
};

/**
 * Load a model from its package: `loadModel(pkg, { weights })`, `loadModel(pkg, { registry })`
 * or `loadModel('name@channel', { registry, build: pkg })`. See {@link LoadModel}.
 */
export const loadModel = createLoader(web);

/**
 * A KServe v2 endpoint as a `fetch(request)` handler, for Cloudflare Workers, Deno and
 * browsers' service workers.
 *
 * ```js
 * import { createHandler } from 'brasa';
 * import mnist from 'mnist-model';
 * const handler = createHandler({ models: [{ name: 'mnist', model: mnist }], registry: 'https://models.example.com/' });
 * export default { fetch: (request) => handler.fetch(request) };
 * ```
 */
export function createHandler(options: HandlerOptions): Handler {
  return createHandlerFor(loadModel, options);
}

export * from './exports.js';
