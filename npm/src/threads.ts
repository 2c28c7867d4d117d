/**
 * Threaded CPU builds, on the loader's side: each model loaded on one runs in a dedicated
 * Worker (`thread-worker.ts`) that holds the build's wasm instance and its rayon pool. The
 * model's `WasmModel` here is a proxy: runs, weight swaps and frees go to the Worker over
 * `postMessage` (outputs transferred back), errors keep their `BrasaError` code and message,
 * and a trap in the Worker is a trap here (the loader's instance tracking marks the model
 * dead). The last model freed ends the Worker, and with it its pool.
 *
 * Platforms supply the Worker ({@link ThreadSupport}): the web entry a module Worker, Node a
 * `worker_threads` one; Cloudflare Workers have none.
 * @module
 */
import { BrasaError, message } from './errors.js';
import type { Bindings, Glue, WasmModel, WasmTensor, WasmModelInfo } from './glue.js';
import type { ThreadReply, ThreadRequest } from './thread-worker.js';

/** A started Worker, as the loader talks to it. */
export interface ThreadPort {
  post(message: ThreadRequest, transfer?: Transferable[]): void;
  /** `onMessage` gets every reply; `onError` the Worker's own failure (it could not start, an
   * uncaught error). */
  listen(onMessage: (data: unknown) => void, onError: (error: unknown) => void): void;
  /** Told whether calls are in flight (Node: only then does the Worker keep the process alive). */
  busy?(busy: boolean): void;
  terminate(): void;
}

/** What a platform offers threaded builds. */
export interface ThreadSupport {
  /** Why a threaded build cannot run here (not cross-origin isolated, no Worker), or `null`. */
  unavailable(): string | null;
  /** Logical cores (`navigator.hardwareConcurrency`, `os.availableParallelism()`). */
  cores(): number;
  /** Why `threads: 'auto'` stays single-threaded here although threads could run (Deno), or
   * `null`. */
  notByDefault?(): string | null;
  /** Start a Worker running `thread-worker.js`. */
  spawn(): ThreadPort;
  /** Import a threaded build's glue module on this thread (from its URL). */
  importGlue(url: string): Promise<Glue>;
  /** Whether this realm may import a threaded build's glue itself (for the registry and
   * serving logic, which are in every build). Neither does: in Node the glue's worker helper
   * needs `self`; on a page it would listen to every frame's messages. The logic comes from
   * the single-threaded `cpu` build, which every package with a threaded build has. */
  importsThreadedGlue: boolean;
}

/** Threads `'auto'` starts at most: past 4, gains shrink and the page needs its cores too. */
export const AUTO_THREADS_MAX = 4;
/** The most threads `threads` may ask for. */
export const MAX_THREADS = 64;

type Pending = { resolve: (value: unknown) => void; reject: (error: unknown) => void };

/** The error a Worker's reply carries, as the loader's callers expect it. */
function errorFromWorker(error: { name: string; message: string; code?: string; trap: boolean }): Error {
  // A trap is a trap here too: `guardCall` marks the instance dead.
  if (error.trap) return new WebAssembly.RuntimeError(error.message);
  if (error.name === 'BrasaError' && error.code) return new BrasaError(error.code as BrasaError['code'], error.message);
  const err = new Error(error.message);
  err.name = error.name;
  return err;
}

/** A typed array the structured clone copies alone (a view clones its whole buffer). */
function compact(t: WasmTensor): WasmTensor {
  const data = t.data;
  if (!ArrayBuffer.isView(data) || (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength)) return t;
  return { ...t, data: data.slice() as typeof data };
}

/** One Worker with a threaded build's instance, and the models loaded in it. */
export class ThreadedWorker {
  /** Threads of its pool (what the build's rayon reports). */
  threads = 0;
  /** Whether its build says it was compiled with relaxed SIMD (only such builds export `relaxedSimd`). */
  relaxedSimd = false;
  /** The instance's linear memory, as of the last reply. */
  memoryBytes = 0;
  readonly #port: ThreadPort;
  readonly #pending = new Map<number, Pending>();
  #next = 1;
  #models = 0;
  #closed: BrasaError | null = null;
  #ready: Promise<unknown>;
  readonly #label: string;
  /** Where the pool's threads report a trap (`null` where the platform has no BroadcastChannel). */
  readonly #traps: BroadcastChannel | null;

  private constructor(port: ThreadPort, label: string) {
    this.#port = port;
    this.#label = label;
    let ready!: Pending;
    this.#ready = new Promise((resolve, reject) => (ready = { resolve, reject }));
    this.#pending.set(0, ready);
    this.#traps = poolTraps((text) => this.#poolTrap(text));
    port.busy?.(true);
    port.listen(
      (data) => this.#reply(data as ThreadReply),
      (error) => this.#fail(new BrasaError('wasm_load', `the Worker of ${label} failed: ${message(error)}`, { cause: error })),
    );
  }

  /** Start a Worker with `module` (the compiled threaded build, `glue` its glue's URL) and a
   * pool of `threads`. */
  static async start(support: ThreadSupport, glue: string, module: WebAssembly.Module, threads: number, label: string): Promise<ThreadedWorker> {
    let port: ThreadPort;
    try {
      port = support.spawn();
    } catch (err) {
      throw new BrasaError('wasm_load', `could not start a Worker for ${label}: ${message(err)}`, { cause: err });
    }
    const worker = new ThreadedWorker(port, label);
    try {
      await worker.#ready;
      const channel = worker.#traps?.name;
      const started = (await worker.call({ op: 'init', glue, module, threads, channel })) as { threads: number; relaxedSimd: boolean };
      worker.threads = started.threads;
      worker.relaxedSimd = started.relaxedSimd;
    } catch (err) {
      worker.terminate();
      // What blocks a page's pool most often, and what the browser's error event does not say.
      const hint = /a thread of the pool could not start/.test(message(err)) ? " (where a Content-Security-Policy applies, its worker-src must allow blob:, from which the pool's Workers start)" : '';
      throw new BrasaError('wasm_load', `could not start ${label} with ${threads} threads: ${message(err)}${hint}`, { cause: err });
    }
    return worker;
  }

  #reply(data: ThreadReply): void {
    if (data?.brasa !== 'thread') return;
    const pending = this.#pending.get(data.id);
    if (!pending) return;
    this.#pending.delete(data.id);
    if (data.memoryBytes) this.memoryBytes = data.memoryBytes;
    if (data.ok) pending.resolve(data.value);
    else {
      pending.reject(errorFromWorker(data.error));
      // Its instance aborted: nothing will run there again.
      if (data.error.trap) this.#fail(new BrasaError('internal', `the wasm instance of ${this.#label} aborted: ${data.error.message}`), false);
    }
    this.#endIfIdle();
  }

  /** A thread of the pool trapped: the Worker's own thread, blocked waiting for it, cannot
   * answer. Calls in flight reject as a trap there would (the loader marks the model dead). */
  #poolTrap(text: string): void {
    if (this.#closed) return;
    const trap = new WebAssembly.RuntimeError(`a thread of the pool aborted: ${text}`);
    for (const p of this.#pending.values()) p.reject(trap);
    this.#pending.clear();
    this.#fail(new BrasaError('internal', `the wasm instance of ${this.#label} aborted on a thread of its pool: ${text}`), false);
    this.#endIfIdle();
  }

  #fail(error: BrasaError, rejectPending = true): void {
    if (this.#closed) return;
    this.#closed = error;
    this.#traps?.close();
    if (rejectPending) for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#port.terminate();
  }

  /** Send a request; resolves with the Worker's answer. */
  call(request: DistributiveOmit<ThreadRequest, 'brasa' | 'id'>, transfer: Transferable[] = []): Promise<unknown> {
    if (this.#closed) return Promise.reject(this.#closed);
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#port.busy?.(true);
      try {
        this.#port.post({ ...request, brasa: 'thread', id } as ThreadRequest, transfer);
      } catch (err) {
        this.#pending.delete(id);
        reject(err);
      }
    });
  }

  /** A model with `weights`, loaded in this Worker. */
  async load(weights: Uint8Array): Promise<WasmModel> {
    // Counted before the answer: the reply must not find the Worker idle and end it.
    this.#models += 1;
    let reply: { model: number; info: WasmModelInfo };
    try {
      reply = (await this.call({ op: 'load', weights })) as typeof reply;
    } catch (err) {
      this.#models -= 1;
      this.#endIfIdle();
      throw err;
    }
    const { model, info } = reply;
    let current = info;
    let freed = false;
    return {
      run: (feeds: WasmTensor[]) => this.call({ op: 'run', model, feeds: feeds.map(compact) }) as Promise<WasmTensor[]>,
      setWeights: async (bytes: Uint8Array) => {
        current = (await this.call({ op: 'setWeights', model, weights: bytes })) as WasmModelInfo;
      },
      info: () => current,
      free: () => {
        if (freed) return;
        freed = true;
        this.#models -= 1;
        this.call({ op: 'free', model }).catch(() => undefined);
      },
    };
  }

  /** No models left and nothing in flight: end the Worker (and its pool). */
  #endIfIdle(): void {
    if (this.#pending.size === 0) this.#port.busy?.(false);
    if (this.#models === 0 && this.#pending.size === 0 && this.threads > 0) this.terminate();
  }

  /** End the Worker now; calls in flight reject with `disposed`. */
  terminate(): void {
    this.#fail(new BrasaError('disposed', `the Worker of ${this.#label} was ended`));
  }
}

/** A `BroadcastChannel` of its own, on which a pool thread's trap (brasa's pool helper in the
 * glue) reaches `onTrap`; `null` where there is none. It keeps no Node process alive. */
function poolTraps(onTrap: (text: string) => void): BroadcastChannel | null {
  if (typeof BroadcastChannel !== 'function') return null;
  const id = typeof crypto?.randomUUID === 'function' ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
  const channel = new BroadcastChannel(`brasa-pool-${id}`);
  channel.addEventListener('message', (event) => {
    const data = (event as MessageEvent).data as { type?: unknown; message?: unknown } | null;
    if (data?.type === 'brasa_pool_trap') onTrap(String(data.message));
  });
  (channel as { unref?(): void }).unref?.();
  return channel;
}

/** `Omit` over each member of a union. */
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/**
 * The bindings a model in `worker` is given: the build's logic (registry, serving, metrics)
 * from `logic`, an instance on this thread, and `loadModel` into the Worker. One per Worker,
 * so an abort there marks only its models dead; such an instance is never reset (the next
 * load starts another Worker).
 */
export function threadedBindings(logic: Bindings, worker: ThreadedWorker): Bindings {
  return Object.create(logic, {
    loadModel: { value: (weights: Uint8Array) => worker.load(weights) },
    memoryBytes: { value: () => worker.memoryBytes },
    __wbg_reset_state: { value: undefined },
  }) as Bindings;
}
