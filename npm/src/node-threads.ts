/**
 * Threaded builds under Node: each model's Worker is a `worker_threads` Worker. The build's
 * glue and its pool helper (brasa's, in place of wasm-bindgen-rayon's) are written for Web Workers (`self`, `postMessage`, a
 * global `Worker`, `fetch` of their own `file:` URL); {@link installWorkerScope} gives a
 * `worker_threads` Worker that much of a Web Worker's scope, and the pool's Workers run the
 * helper's own code in Workers started the same way (`thread-pool-node.js`).
 * @module
 */
import { availableParallelism } from 'node:os';
import { Worker as NodeWorker, type MessagePort } from 'node:worker_threads';
import { readFile } from 'node:fs/promises';
import { resolveObjectURL } from 'node:buffer';

import type { Glue } from './glue.js';
import type { ThreadPort, ThreadSupport } from './threads.js';

type Listener = (event: { data?: unknown; message?: string; error?: unknown }) => void;
/**
 * A `worker_threads` Worker with the process's Node flags (`--experimental-wasm-…` ones
 * included) but those a Worker refuses: `--input-type` (a process started with
 * `node --input-type=module -e …`; the Worker is a file), and the per-process ones Node names
 * when it refuses them (`--expose-gc`).
 */
function startWorker(url: URL, options: ConstructorParameters<typeof NodeWorker>[1] = {}): NodeWorker {
  let execArgv: string[] = [];
  for (let i = 0; i < process.execArgv.length; i++) {
    const arg = process.execArgv[i];
    if (arg === '--input-type') i += 1;
    else if (!arg.startsWith('--input-type=')) execArgv.push(arg);
  }
  for (;;) {
    try {
      return new NodeWorker(url, { ...options, execArgv });
    } catch (err) {
      const refused = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_INVALID_EXEC_ARGV' ? /flags: (.*)$/.exec((err as Error).message)?.[1]?.split(', ') : undefined;
      const left = refused ? execArgv.filter((a) => !refused.includes(a) && !refused.includes(a.split('=')[0])) : execArgv;
      if (left.length === execArgv.length) throw err;
      execArgv = left;
    }
  }
}

/** Web Worker events over a `worker_threads` port or Worker: `message`, and `error` (a
 * Worker's uncaught error or failure to start). */
function events(target: Pick<NodeWorker, 'on' | 'off'>) {
  const handlers = new Map<string, Map<Listener, (value: unknown) => void>>();
  return {
    addEventListener(type: string, listener: Listener) {
      if (type !== 'message' && type !== 'error') return;
      const ofType = handlers.get(type) ?? new Map<Listener, (value: unknown) => void>();
      handlers.set(type, ofType);
      if (ofType.has(listener)) return;
      const handler = type === 'message' ? (data: unknown) => listener({ data }) : (error: unknown) => listener({ message: error instanceof Error ? error.message : String(error), error });
      ofType.set(listener, handler);
      target.on(type, handler);
    },
    removeEventListener(type: string, listener: Listener) {
      const handler = handlers.get(type)?.get(listener);
      if (!handler) return;
      handlers.get(type)!.delete(listener);
      target.off(type, handler);
    },
  };
}

/**
 * A global `Worker` for the pool helper: it starts its pool's Workers from a `blob:` URL of
 * its own module, which `worker_threads` cannot start; read the blob, and run its code (as a
 * `data:` module) in `thread-pool-node.js` with this scope installed.
 */
class PoolWorker {
  readonly #worker: Promise<NodeWorker>;
  readonly #events: ReturnType<typeof events>;
  readonly #queued: Listener[] = [];
  #started: NodeWorker | null = null;

  constructor(url: string | URL) {
    const blob = resolveObjectURL(String(url));
    if (!blob) throw new Error(`no blob behind ${String(url)}`);
    this.#worker = blob.text().then((code) => {
      const worker = startWorker(new URL('./thread-pool-node.js', import.meta.url), {
        workerData: { module: `data:text/javascript;base64,${Buffer.from(code).toString('base64')}` },
      });
      this.#started = worker;
      return worker;
    });
    // Listeners added before the Worker exists are attached once it does; a blob that cannot be
    // read or a Worker that cannot start is an `error` event, as a Web Worker's would be.
    const failed = this.#worker.then(
      () => null,
      (err: unknown) => err,
    );
    const pending = {
      on: (type: string, h: (value: unknown) => void) => {
        void this.#worker.then((w) => w.on(type, h), () => undefined);
        if (type === 'error') void failed.then((err) => err && h(err));
      },
      off: (type: string, h: (value: unknown) => void) => void this.#worker.then((w) => w.off(type, h), () => undefined),
    };
    this.#events = events(pending as unknown as Pick<NodeWorker, 'on' | 'off'>);
  }

  postMessage(message: unknown, transfer?: readonly unknown[]) {
    void this.#worker.then((w) => w.postMessage(message, transfer as never), () => undefined);
  }

  addEventListener(type: string, listener: Listener) {
    this.#events.addEventListener(type, listener);
  }

  removeEventListener(type: string, listener: Listener) {
    this.#events.removeEventListener(type, listener);
  }

  terminate() {
    void this.#worker.then((w) => w.terminate(), () => undefined);
  }
}

/** Give this `worker_threads` Worker the parts of a Web Worker's scope the glue uses. */
export function installWorkerScope(port: MessagePort): void {
  const g = globalThis as Record<string, unknown>;
  const { addEventListener, removeEventListener } = events(port as unknown as Pick<NodeWorker, 'on' | 'off'>);
  g.self = g;
  g.addEventListener = addEventListener;
  g.removeEventListener = removeEventListener;
  g.postMessage = (message: unknown, transfer?: readonly unknown[]) => port.postMessage(message, transfer as never);
  g.Worker = PoolWorker;
  // Node 20's fetch reads no `file:` URLs; the helper fetches its own module by one.
  const fetched = globalThis.fetch;
  g.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : String(input));
    if (url.protocol === 'file:') return new Response(await readFile(url), { headers: { 'content-type': 'text/javascript' } });
    return fetched(input, init);
  };
}

/** A `worker_threads` Worker as a {@link ThreadPort}: it keeps the process alive only while a
 * call to it is in flight. */
function port(worker: NodeWorker): ThreadPort {
  worker.unref();
  return {
    post: (message, transfer = []) => worker.postMessage(message, transfer as never),
    listen(onMessage, onError) {
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', (code) => onError(new Error(`the Worker exited (${code})`)));
    },
    busy: (busy) => (busy ? worker.ref() : worker.unref()),
    terminate: () => void worker.terminate(),
  };
}

export const nodeThreads: ThreadSupport = {
  unavailable: () => null,
  cores: () => availableParallelism(),
  spawn: () => port(startWorker(new URL('./thread-worker-node.js', import.meta.url))),
  importGlue: async () => {
    throw new Error("Node imports no threaded glue on its main thread (the logic comes from the package's cpu build)");
  },
  importsThreadedGlue: false,
};

export type { Glue };
