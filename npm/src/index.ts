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
import { web } from './web-platform.js';
import { createLoader } from './loader.js';
import { packageFromRegistry } from './remote.js';
import { webThreads } from './web-threads.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';

/**
 * Load a model from its package: `loadModel(pkg, { weights })`, `loadModel(pkg, { registry })`
 * or `loadModel('name@channel', { registry, build: pkg })`. See {@link LoadModel}.
 */
export const loadModel = createLoader({ ...web, packageFromRegistry, threads: webThreads });

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
