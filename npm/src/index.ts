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
import { createLoader, type Platform } from './core.js';
import { BrasaError } from './errors.js';
import type { Backend, WasmSource } from './types.js';

const web: Platform = {
  async instantiate(build: Backend, source: WasmSource | undefined) {
    // Literal specifiers, so bundlers see both builds and split them into their own chunks;
    // only the one needed is ever fetched.
    const glue = build === 'webgpu' ? await import('../wasm/webgpu/brasa_wasm.js') : await import('../wasm/cpu/brasa_wasm.js');
    if (source instanceof WebAssembly.Module) {
      glue.initSync({ module: source });
    } else {
      await glue.default(source === undefined ? undefined : { module_or_path: source });
    }
    return glue;
  },
  async fetchBytes(url: URL, signal?: AbortSignal) {
    const response = await fetch(url, { signal });
    if (!response.ok) throw new BrasaError('network', `GET ${url.href}: HTTP ${response.status} ${response.statusText}`.trim());
    return new Uint8Array(await response.arrayBuffer());
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
