/**
 * brasa for Node.js (20+): the CPU build, weights from files, `file:` URLs or HTTP.
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

import type { ModelCache } from './cache.js';
import { createLoader, importGlue, responseBytes, type Platform } from './core.js';
import { BrasaError } from './errors.js';
import { FileCache } from './file-cache.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';

let sharedCache: ModelCache | null = null;
import type { Backend, WasmSource } from './types.js';

const node: Platform = {
  async instantiate(build: Backend, source: WasmSource | undefined) {
    const glue = await importGlue(build);
    const dir = build === 'webgpu' ? '../wasm/webgpu/' : '../wasm/cpu/';
    let module: WebAssembly.Module | BufferSource;
    if (source instanceof WebAssembly.Module || source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      module = source;
    } else {
      // Node's fetch does not read file: URLs, so read the module from disk.
      const url = source === undefined ? new URL(`${dir}brasa_wasm_bg.wasm`, import.meta.url) : new URL(String(source), pathToFileURL(process.cwd() + '/'));
      module = url.protocol === 'file:' ? await readFile(url) : await responseBytes(await fetch(url), url.href);
    }
    glue.initSync({ module });
    return glue;
  },
  async fetchBytes(url: URL, signal?: AbortSignal) {
    if (url.protocol === 'file:') {
      try {
        return new Uint8Array(await readFile(url, { signal }));
      } catch (err) {
        throw new BrasaError('network', `could not read weights ${url.pathname}: ${(err as Error).message}`, { cause: err });
      }
    }
    return responseBytes(await fetch(url, { signal }), url.href);
  },
  baseUrl() {
    // Relative paths are files relative to the working directory, as with fs.
    return pathToFileURL(process.cwd() + '/').href;
  },
  async fetch(url, init) {
    // A registry may be a local folder: serve its files as responses (no ETags: always fresh).
    if (url.protocol === 'file:') {
      try {
        return new Response(await readFile(url, { signal: init.signal ?? undefined }), { status: 200 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Response(null, { status: 404, statusText: 'Not Found' });
        throw err;
      }
    }
    return fetch(url, init);
  },
  defaultCache() {
    sharedCache ??= new FileCache();
    return sharedCache;
  },
};

/** Load a model; see {@link createLoader}. */
export const loadModel = createLoader(node);

/** A KServe v2 endpoint as a `fetch(request)` handler; serve it with {@link toNodeListener}. */
export function createHandler(options: HandlerOptions): Handler {
  return createHandlerFor(loadModel, options);
}

/**
 * Adapt a `fetch(request)` handler to `node:http`:
 * `http.createServer(toNodeListener(createHandler({ models: ['mnist'], registry }))).listen(8000)`.
 */
export function toNodeListener(handler: Pick<Handler, 'fetch'>): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    void (async () => {
      const headers = new Headers();
      for (const [key, value] of Object.entries(req.headers)) {
        if (Array.isArray(value)) value.forEach((v) => headers.append(key, v));
        else if (value !== undefined) headers.set(key, value);
      }
      const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
      const request = new Request(`http://${req.headers.host ?? '127.0.0.1'}${req.url ?? '/'}`, {
        method: req.method,
        headers,
        body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
        duplex: 'half',
      } as RequestInit);
      const response = await handler.fetch(request);
      res.writeHead(response.status, Object.fromEntries(response.headers));
      if (response.body && req.method !== 'HEAD') {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
      }
      res.end();
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err), code: 'internal' }));
    });
  };
}
export { BrasaEvent, BrasaModel } from './core.js';
export { MemoryCache, CacheStorageCache, type ModelCache } from './cache.js';
export { FileCache } from './file-cache.js';
export type { Handler, HandlerOptions, ServedModel } from './serve.js';
export { BrasaError, type BrasaErrorCode } from './errors.js';
export type * from './types.js';
