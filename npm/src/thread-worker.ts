/**
 * The dedicated Worker a threaded CPU build runs in: brasa's loader starts one per model
 * (`threads.ts`), and it holds the build's wasm instance and its rayon pool
 * (wasm-bindgen-rayon's `initThreadPool`: Workers of its own sharing the memory, started by
 * brasa's pool helper in the glue). A forward pass
 * blocks this Worker while the pool works, which a page's main thread could not do.
 *
 * Protocol: requests `{ brasa: 'thread', id, op, ... }`, answers `{ brasa: 'thread', id, ok,
 * value | error }`; output tensors are transferred. An error keeps its `name`, `message` and
 * `code`; a trap (the instance aborted) is flagged `trap`, and the Worker takes no more work.
 * A trap on a thread of the pool cannot be answered from here (this thread is blocked waiting
 * for it): the pool's Worker posts it on the `BroadcastChannel` named in `init`.
 * @module
 */
import type { WasmModel, WasmTensor } from './glue.js';

/** The glue of a threaded build, as this Worker uses it. */
interface ThreadedGlue {
  default(init: { module_or_path: WebAssembly.Module }): Promise<unknown>;
  initThreadPool(threads: number): Promise<unknown>;
  threadPoolStarted?(): void;
  threadCount?(): number;
  relaxedSimd?(): boolean;
  loadModel(weights: Uint8Array, backend: string): Promise<WasmModel>;
  memoryBytes?(): number;
}

/** A request from the loader. */
export type ThreadRequest =
  | { brasa: 'thread'; id: number; op: 'init'; glue: string; module: WebAssembly.Module; threads: number; channel?: string }
  | { brasa: 'thread'; id: number; op: 'load'; weights: Uint8Array }
  | { brasa: 'thread'; id: number; op: 'run'; model: number; feeds: WasmTensor[] }
  | { brasa: 'thread'; id: number; op: 'setWeights'; model: number; weights: Uint8Array }
  | { brasa: 'thread'; id: number; op: 'free'; model: number };

/** An error as it crosses to the loader. */
export interface ThreadError {
  name: string;
  message: string;
  code?: string;
  /** The wasm instance aborted (a `WebAssembly.RuntimeError`). */
  trap: boolean;
}

/** An answer to the loader; `memoryBytes`: the instance's linear memory after the call. */
export type ThreadReply = { brasa: 'thread'; id: number; memoryBytes: number } & ({ ok: true; value: unknown } | { ok: false; error: ThreadError });

const scope = globalThis as unknown as {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: 'message', listener: (event: { data: unknown }) => void): void;
};

let glue: ThreadedGlue | null = null;
const models = new Map<number, WasmModel>();
let nextModel = 1;
/** Set once the instance aborted: nothing runs here any more. */
let aborted: ThreadError | null = null;

function isTrap(err: unknown): boolean {
  return err instanceof WebAssembly.RuntimeError || (err instanceof Error && err.name === 'RuntimeError');
}

function errorOf(err: unknown): ThreadError {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, code: typeof code === 'string' ? code : undefined, trap: isTrap(err) };
  }
  return { name: 'Error', message: String(err), trap: false };
}

function modelOf(id: number): WasmModel {
  const model = models.get(id);
  if (!model) throw Object.assign(new Error(`no model ${id} in this worker (freed)`), { name: 'BrasaError', code: 'disposed' });
  return model;
}

async function handle(request: ThreadRequest): Promise<{ value: unknown; transfer: Transferable[] }> {
  if (aborted) throw aborted;
  if (request.op === 'init') {
    const imported = (await import(/* @vite-ignore */ request.glue)) as ThreadedGlue;
    if (typeof imported.initThreadPool !== 'function') throw new Error(`${request.glue} is not a threaded build (it exports no initThreadPool)`);
    await imported.default({ module_or_path: request.module });
    // Where the pool's threads report a trap (brasa's pool helper in the glue reads it when it
    // starts them): this thread is blocked in wasm while they work, the loader listens.
    (globalThis as { __brasaPoolChannel?: string }).__brasaPoolChannel = request.channel;
    await imported.initThreadPool(request.threads);
    imported.threadPoolStarted?.();
    glue = imported;
    return { value: { threads: imported.threadCount?.() ?? request.threads, relaxedSimd: imported.relaxedSimd?.() ?? false }, transfer: [] };
  }
  if (!glue) throw new Error('the worker was not initialised');
  switch (request.op) {
    case 'load': {
      const model = await glue.loadModel(request.weights, 'cpu');
      const id = nextModel++;
      models.set(id, model);
      return { value: { model: id, info: model.info() }, transfer: [] };
    }
    case 'run': {
      const outputs = await modelOf(request.model).run(request.feeds);
      // Fresh copies out of the instance: hand them over rather than copy them again.
      const transfer = outputs.flatMap((t) => (ArrayBuffer.isView(t.data) ? [t.data.buffer as ArrayBuffer] : []));
      return { value: outputs, transfer };
    }
    case 'setWeights': {
      const model = modelOf(request.model);
      await model.setWeights(request.weights);
      return { value: model.info(), transfer: [] };
    }
    case 'free': {
      models.get(request.model)?.free();
      models.delete(request.model);
      return { value: null, transfer: [] };
    }
  }
}

scope.addEventListener('message', (event) => {
  const request = event.data as ThreadRequest | null;
  // The glue's pool helper listens on this scope too (for its own Workers' start message).
  if (request?.brasa !== 'thread') return;
  const fail = (err: unknown) => {
    const error = aborted ?? errorOf(err);
    if (error.trap) aborted = error;
    scope.postMessage({ brasa: 'thread', id: request.id, ok: false, error, memoryBytes: glue?.memoryBytes?.() ?? 0 } satisfies ThreadReply);
  };
  // A reply that cannot be posted (a value the structured clone refuses) is still a reply:
  // the caller's promise must settle.
  void handle(request)
    .then(({ value, transfer }) => scope.postMessage({ brasa: 'thread', id: request.id, ok: true, value, memoryBytes: glue?.memoryBytes?.() ?? 0 } satisfies ThreadReply, transfer), fail)
    .catch(fail);
});

// Ready for requests (module Workers may miss messages posted before their first evaluation).
scope.postMessage({ brasa: 'thread', id: 0, ok: true, value: 'ready', memoryBytes: 0 } satisfies ThreadReply);
