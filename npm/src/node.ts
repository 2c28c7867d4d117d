/**
 * brasa for Node.js (20+): the CPU build, wasm and weights from files, `file:` URLs or HTTP.
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';

import type { ModelCache } from './cache.js';
import { BrasaError } from './errors.js';
import { FileCache } from './file-cache.js';
import type { Glue } from './glue.js';
import { createLoader, responseBytes, type Platform } from './loader.js';
import { packageFromRegistry } from './remote.js';
import { nodeThreads } from './node-threads.js';
import { withoutCacheMode } from './registry.js';
import { createHandlerFor, type Handler, type HandlerOptions } from './serve.js';
import type { ModelBuild, WasmSource } from './types.js';

let sharedCache: ModelCache | null = null;

const node: Platform = {
  async instantiate(glue: Glue, build: ModelBuild, source: WasmSource | undefined) {
    source ??= await build.wasmBytes?.();
    let module: WebAssembly.Module | BufferSource;
    if (source instanceof WebAssembly.Module || source instanceof ArrayBuffer || ArrayBuffer.isView(source)) {
      module = source as WebAssembly.Module | BufferSource;
    } else {
      // Node's fetch does not read file: URLs (a package's wasm URL is one), so read it from disk.
      const url = new URL(String(source ?? build.wasm), pathToFileURL(process.cwd() + '/'));
      module = url.protocol === 'file:' ? await readFile(url) : await responseBytes(await fetch(url), url.href);
    }
    glue.initSync({ module });
  },
  async fetchBytes(url: URL, signal?: AbortSignal) {
    if (url.protocol === 'file:') {
      try {
        return new Uint8Array(await readFile(url, { signal }));
      } catch (err) {
        throw new BrasaError('network', `could not read ${url.pathname}: ${(err as Error).message}`, { cause: err });
      }
    }
    return responseBytes(await fetch(url, { signal }), url.href);
  },
  baseUrl() {
    // Relative paths are files relative to the working directory, as with fs.
    return pathToFileURL(process.cwd() + '/').href;
  },
  async fetch(url: URL, init: RequestInit) {
    // A registry may be a local folder: serve its files as responses (no ETags: always fresh).
    if (url.protocol === 'file:') {
      try {
        return new Response(await readFile(url, { signal: init.signal ?? undefined }), { status: 200 });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Response(null, { status: 404, statusText: 'Not Found' });
        throw err;
      }
    }
    return fetch(url, withoutCacheMode(init));
  },
  defaultCache() {
    sharedCache ??= new FileCache();
    return sharedCache;
  },
};

/**
 * Load a model from its package: `loadModel(pkg, { weights })`, `loadModel(pkg, { registry })`
 * or `loadModel('name@channel', { registry, build: pkg })`. See {@link LoadModel}.
 */
export const loadModel = createLoader({ ...node, packageFromRegistry, threads: nodeThreads });

/** A KServe v2 endpoint as a `fetch(request)` handler; serve it with {@link toNodeListener}. */
export function createHandler(options: HandlerOptions): Handler {
  return createHandlerFor(loadModel, options);
}

/**
 * Adapt a `fetch(request)` handler to `node:http`:
 * `http.createServer(toNodeListener(createHandler({ models: [mnist], registry }))).listen(8000)`.
 * Request and response bodies pass through as bytes (binary KServe tensors included).
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
      const out: Record<string, string | string[]> = {};
      response.headers.forEach((value, key) => {
        out[key] = value;
      });
      const cookies = response.headers.getSetCookie?.() ?? [];
      if (cookies.length > 0) out['set-cookie'] = cookies;
      res.writeHead(response.status, out);
      if (response.body && req.method !== 'HEAD') {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          // Bytes as they are: never re-encoded as text.
          if (!res.write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength))) await new Promise((r) => res.once('drain', r));
        }
      } else {
        await response.body?.cancel().catch(() => undefined);
      }
      res.end();
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: String(err), code: 'internal' }));
    });
  };
}

export { FileCache, type FileCacheOptions } from './file-cache.js';
export * from './exports.js';
