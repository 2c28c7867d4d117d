/**
 * brasa for browsers, Web Workers, Deno and Cloudflare Workers.
 *
 * ```js
 * import { loadModel } from 'brasa';
 * const model = await loadModel('mnist', { weights: '/models/mnist.bpk' });
 * const { label, probabilities } = await model.run(pixels);
 * ```
 * @module
 */
import { createLoader, importGlue, responseBytes, type Platform } from './core.js';
import type { Backend, WasmSource } from './types.js';

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
};

/** Load a model; see {@link createLoader}. */
export const loadModel = createLoader(web);
export { BrasaModel } from './core.js';
export { BrasaError, type BrasaErrorCode } from './errors.js';
export type * from './types.js';
