/**
 * brasa for Cloudflare Workers (workerd): the web entry less what Workers cannot do. They
 * compile no code at run time, so a model's code never comes from a registry here: bundle the
 * model's package (its CPU wasm imported as a module) and pass it as `build`.
 * @module
 */
import { createLoader } from './loader.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';
import { web } from './web-platform.js';

/** `loadModel` of Workers: as the web entry's, with packages given (`build`), never fetched. */
export const loadModel = createLoader({ ...web, noThreads: 'Cloudflare Workers run no threads (no Web Workers, no shared memory)' });

/** A KServe v2 endpoint as a `fetch(request)` handler for a Worker (see the web entry's). */
export function createHandler(options: HandlerOptions): Handler {
  return createHandlerFor(loadModel, options);
}

export * from './exports.js';
