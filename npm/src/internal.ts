/**
 * What brasa's own modules (the server, the registry lifecycle) reach behind a
 * {@link BrasaModel}: its wasm instance and hooks. Not exported from the package.
 *
 * It is also the one place that knows whether a build's wasm instance aborted. A trap
 * (`WebAssembly.RuntimeError`: burn panicking on a shape its graph cannot compute, with
 * `panic = "abort"`) leaves the instance's state undefined (its stack pointer, `RefCell`
 * flags), so nothing may call into it again. Every call brasa makes into a glue's wasm goes
 * through {@link guardCall} with the {@link Ticket} of the instance it means: a trap marks that
 * instance dead, and a dead instance is never called again. The loader's next
 * `bindings(pkg, backend)` (or a call through {@link logicOf}) starts a fresh instance of
 * the same compiled module (wasm-bindgen's `__wbg_reset_state`); objects of the dead one
 * (models, metrics, batch policies) stay dead: their owners reject with `internal`.
 * @module
 */
import { BrasaError, message } from './errors.js';
import type { Bindings, WasmModel } from './glue.js';
import type { BuildName, ModelPackage } from './types.js';

/** A loaded model's runtime bindings. */
export interface Runtime {
  /** The instantiated build the model runs in (also the registry and KServe logic). */
  readonly bindings: Bindings;
  /** The wasm instance of `bindings` the model's objects belong to. */
  readonly instance: Ticket;
  /** The package it came from. */
  readonly pkg: ModelPackage;
  /** Replace the wasm model (after an update passed its checks); frees the old one. */
  swap(inner: WasmModel): void;
  /** A model file of `version` came from the cache, or was downloaded. */
  recordFile(version: string, fromCache: boolean, bytes: number): void;
  /** The bytes at a URL (a path under Node), resolved as weights are. */
  fetchBytes(source: string | URL, what: string, signal?: AbortSignal): Promise<Uint8Array>;
}

const runtimes = new WeakMap<object, Runtime>();

/** Register `model`'s runtime (done by its constructor). */
export function bindRuntime(model: object, runtime: Runtime): void {
  runtimes.set(model, runtime);
}

/** The runtime of a model brasa loaded. */
export function runtimeOf(model: object): Runtime {
  const runtime = runtimes.get(model);
  if (!runtime) throw new BrasaError('internal', 'not a model loaded by brasa');
  return runtime;
}

// ---------------------------------------------------------------------------------------------
// Wasm instances: which are alive, which aborted.

/** One wasm instance of a glue module: the glue and its generation (0, then one per reset). */
export interface Ticket {
  readonly glue: object;
  readonly generation: number;
}

interface GlueState {
  /** `ocr-det (cpu)`, for messages. */
  label: string;
  /** The generation of the instance the glue uses now. */
  generation: number;
  /** Generations that aborted, with the error their objects now reject with. */
  aborted: Map<number, BrasaError>;
  /** Calls in flight on the current generation: told when it aborts. */
  waiters: Set<(error: BrasaError) => void>;
}

const glues = new WeakMap<object, GlueState>();

function stateOf(glue: object): GlueState {
  let state = glues.get(glue);
  if (!state) glues.set(glue, (state = { label: 'a model', generation: 0, aborted: new Map(), waiters: new Set() }));
  return state;
}

/** Name a glue module for messages (the loader does, once it instantiated it). */
export function registerGlue(glue: object, pkg: string, backend: BuildName): void {
  stateOf(glue).label = `${pkg} (${backend})`;
}

/** The glue's current wasm instance. */
export function ticket(glue: object): Ticket {
  return { glue, generation: stateOf(glue).generation };
}

/** Whether `err` is a wasm trap: the instance that threw it aborted. */
export function isTrap(err: unknown): boolean {
  if (typeof WebAssembly !== 'undefined' && typeof WebAssembly.RuntimeError === 'function' && err instanceof WebAssembly.RuntimeError) return true;
  // Another realm's RuntimeError (a worker, a vm context).
  return err instanceof Error && err.name === 'RuntimeError' && err.constructor?.name === 'RuntimeError';
}

/**
 * Why the instance of `t` may not be used: the `internal` error it aborted with, or one
 * saying it was replaced; `null` while it is the glue's live instance.
 */
export function abortOf(t: Ticket): BrasaError | null {
  const state = stateOf(t.glue);
  const aborted = state.aborted.get(t.generation);
  if (aborted) return aborted;
  if (t.generation !== state.generation) {
    return new BrasaError('internal', `the wasm instance of ${state.label} this object belongs to was replaced; load the model again`);
  }
  return null;
}

/** Record that the instance of `t` trapped with `trap`; the error its users get from now on. */
function markAborted(t: Ticket, trap: unknown): BrasaError {
  const state = stateOf(t.glue);
  const known = abortOf(t);
  if (known) return known;
  const error = new BrasaError('internal', `the wasm instance of ${state.label} aborted while running: ${message(trap)}; load the model again`, { cause: trap });
  state.aborted.set(t.generation, error);
  const waiters = [...state.waiters];
  state.waiters.clear();
  for (const tell of waiters) tell(error);
  return error;
}

/**
 * Call into the instance of `t`: refused with its `internal` error (without calling) when it
 * aborted; a trap thrown by `call`, or rejecting the promise it returns, marks it aborted and
 * becomes that error. A promise still pending when the instance aborts (a GPU run) rejects
 * then too. Anything else is rethrown as it is.
 */
export function guardCall<T>(t: Ticket, call: () => T): T {
  const dead = abortOf(t);
  if (dead) throw dead;
  let result: T;
  try {
    result = call();
  } catch (err) {
    throw isTrap(err) ? markAborted(t, err) : err;
  }
  if (!(result instanceof Promise)) return result;
  const state = stateOf(t.glue);
  return new Promise((resolve, reject) => {
    const waiter = (error: BrasaError) => reject(error);
    state.waiters.add(waiter);
    (result as Promise<unknown>).then(
      (value) => {
        state.waiters.delete(waiter);
        resolve(value);
      },
      (err: unknown) => {
        state.waiters.delete(waiter);
        reject(isTrap(err) ? markAborted(t, err) : err);
      },
    );
  }) as T;
}

/** Free `object` of the instance of `t`, unless that instance is gone (its memory with it). */
export function release(t: Ticket, object: { free(): void } | null | undefined): void {
  if (!object || abortOf(t)) return;
  try {
    object.free();
  } catch {
    // Already freed.
  }
}

/**
 * Make sure `glue` runs on a live instance: after an abort, start a fresh one from the same
 * compiled module (`__wbg_reset_state`, from wasm-bindgen's
 * `--experimental-reset-state-function`). Objects of the old instance stay dead.
 * @throws BrasaError `internal` when the build cannot start a new instance.
 */
export function revive(glue: object): void {
  const state = stateOf(glue);
  const aborted = state.aborted.get(state.generation);
  if (!aborted) return;
  const reset = (glue as { __wbg_reset_state?: unknown }).__wbg_reset_state;
  if (typeof reset !== 'function') {
    throw new BrasaError(
      'internal',
      `${aborted.message.replace(/; load the model again$/, '')}, and this build cannot start a new instance (rebuild it with this brasa's \`brasa build\`): reload the page or restart the process`,
      { cause: aborted },
    );
  }
  try {
    (reset as () => void).call(glue);
  } catch (err) {
    throw new BrasaError('internal', `the wasm instance of ${state.label} aborted and a new one could not be started (${message(err)}): reload the page or restart the process`, { cause: err });
  }
  state.generation += 1;
}

const logics = new WeakMap<object, object>();

/**
 * `glue` for its stateless functions (registry, KServe, golden logic): each call revives the
 * glue first if its instance aborted, and goes through {@link guardCall}. Classes (and other
 * values) are the glue's own.
 */
export function logicOf<T extends object>(glue: T): T {
  let view = logics.get(glue);
  if (!view) {
    view = new Proxy(
      {},
      {
        get(_target, prop) {
          const value = Reflect.get(glue, prop) as unknown;
          if (typeof value !== 'function' || typeof prop !== 'string' || /^[A-Z]/.test(prop)) return value;
          return (...args: unknown[]) => {
            revive(glue);
            return guardCall(ticket(glue), () => (value as (...a: unknown[]) => unknown).apply(glue, args));
          };
        },
        has(_target, prop) {
          return Reflect.has(glue, prop);
        },
      },
    );
    logics.set(glue, view);
  }
  return view as T;
}

// ---------------------------------------------------------------------------------------------
// GPU devices: a WebGPU build's models run on the device current when they loaded; the
// browser may lose it (`GPUDevice.lost`). The build then gives later loads a new device in the
// same instance, so losing a device kills its models, never the instance.

/** The GPU device a model runs on. */
export interface GpuDevice {
  readonly id: number;
  /** Resolves with the browser's reason once the device is lost. */
  readonly lost: Promise<string>;
  /** The reason, once lost (read synchronously: a run may fail before `lost` resolves). */
  reason(): string | undefined;
}

const gpuDevices = new WeakMap<object, Map<string, GpuDevice>>();

/**
 * The GPU device `inner` (of the instance `t` of `bindings`) runs on; `null` on the CPU and for
 * builds from before device ids. One watch per device, shared by its models.
 */
export function gpuDeviceOf(bindings: Bindings, t: Ticket, inner: WasmModel): GpuDevice | null {
  if (typeof inner.gpuDevice !== 'function' || typeof bindings.gpuDeviceLost !== 'function') return null;
  const id = guardCall(t, () => inner.gpuDevice!());
  if (typeof id !== 'number') return null;
  let devices = gpuDevices.get(t.glue);
  if (!devices) gpuDevices.set(t.glue, (devices = new Map()));
  const key = `${t.generation}:${id}`;
  let device = devices.get(key);
  if (!device) {
    // Not through guardCall: it stays pending while the device works, and a waiter would
    // turn an abort of the instance into a "lost" device.
    const lost = bindings.gpuDeviceLost(id);
    lost.catch(() => undefined);
    device = {
      id,
      lost,
      reason: () => (abortOf(t) ? undefined : (guardCall(t, () => bindings.gpuDeviceLostReason?.(id)) ?? undefined)),
    };
    devices.set(key, device);
  }
  return device;
}
