/**
 * `loadModel`'s options, checked before any work: a value that cannot mean anything (a
 * budget of `'abc'`, a timeout of 0, an empty registry) is refused naming the option, rather
 * than turned into a default, the current folder or a timer that fires at once.
 * @module
 */
import { BUILD_NAMES } from './builds.js';
import { BrasaError, describe } from './errors.js';
import { WEIGHTS_DTYPES } from './generated/types.js';
import { MAX_THREADS } from './threads.js';
import type { LoadOptions } from './types.js';

/** Timers take a signed 32-bit delay: a longer one fires at once (Node warns; browsers do not). */
export const MAX_DELAY_MS = 2 ** 31 - 1;
/** The shortest period between update checks: a registry is polled, not hammered. */
export const MIN_UPDATE_INTERVAL_MS = 1000;

const FRESHNESS = ['cache-first', 'network-first'];
const BUILDS: readonly string[] = BUILD_NAMES;
const SIMD = ['auto', 'relaxed', 'simd128'];
const WEIGHTS_DTYPES_OR_AUTO: readonly string[] = [...WEIGHTS_DTYPES, 'auto'];

function invalid(option: string, what: string, value: unknown): BrasaError {
  const shown = typeof value === 'string' ? `the string ${JSON.stringify(value.slice(0, 40))}` : describe(value);
  return new BrasaError('invalid_spec', `invalid option \`${option}\`: must be ${what}; got ${shown}`);
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isFunction = (v: unknown): boolean => typeof v === 'function';

function isWasmSource(v: unknown): boolean {
  if (typeof v === 'string') return v.trim() !== '';
  if (v instanceof URL || v instanceof ArrayBuffer || ArrayBuffer.isView(v)) return true;
  return typeof WebAssembly !== 'undefined' && v instanceof WebAssembly.Module;
}

/**
 * Refuse nonsense in `options` with `invalid_spec`, naming the option and what it must be.
 * `weights`, `build`, `backend` and `deviceLost` are checked where they are used, with their
 * own codes (`invalid_weights`, `unknown_model`/`incompatible`, `backend_unavailable`);
 * options brasa does not know are ignored.
 */
export function checkLoadOptions(options: LoadOptions): void {
  const o = options as Record<keyof LoadOptions, unknown>;
  const { registry, cache, cacheBudget, freshness, autoUpdate, updateInterval, clientId, timeoutMs, signal, wasm, weights, dtype, threads, simd } = o;
  if (typeof weights === 'string' && weights.trim() === '') {
    // An empty string would resolve to the page (or the current folder) and fail as "not a burnpack".
    throw new BrasaError('invalid_weights', 'invalid option `weights`: an empty string names no file; give a URL, a path, bytes or a Response');
  }
  if (registry !== undefined && !(registry instanceof URL) && !(typeof registry === 'string' && registry.trim() !== '')) {
    // An empty string would resolve to the page, or the current folder.
    throw invalid('registry', 'a URL or a non-empty string (a URL; on Node and Deno also a folder)', registry);
  }
  if (cache !== undefined) {
    const c = cache as Record<string, unknown> | null;
    if (typeof c !== 'object' || c === null || !isFunction(c.get) || !isFunction(c.put) || !isFunction(c.delete)) {
      throw invalid('cache', 'a ModelCache (an object with get, put and delete methods)', cache);
    }
  }
  if (cacheBudget !== undefined && !(isNumber(cacheBudget) && cacheBudget >= 0)) {
    throw invalid('cacheBudget', 'a number of bytes, 0 or more', cacheBudget);
  }
  if (freshness !== undefined && !FRESHNESS.includes(freshness as string)) {
    throw invalid('freshness', "'cache-first' or 'network-first'", freshness);
  }
  if (dtype !== undefined && !WEIGHTS_DTYPES_OR_AUTO.includes(dtype as string)) {
    throw invalid('dtype', `one of ${WEIGHTS_DTYPES_OR_AUTO.map((d) => `'${d}'`).join(', ')}`, dtype);
  }
  if (autoUpdate !== undefined && typeof autoUpdate !== 'boolean') throw invalid('autoUpdate', 'true or false', autoUpdate);
  if (threads !== undefined && threads !== 'auto' && threads !== false && !(Number.isInteger(threads) && (threads as number) >= 1 && (threads as number) <= MAX_THREADS)) {
    throw invalid('threads', `'auto', false or a whole number from 1 to ${MAX_THREADS}`, threads);
  }
  if (simd !== undefined && !SIMD.includes(simd as string)) throw invalid('simd', "'auto', 'relaxed' or 'simd128'", simd);
  if (updateInterval !== undefined && !(isNumber(updateInterval) && (updateInterval === 0 || (updateInterval >= MIN_UPDATE_INTERVAL_MS && updateInterval <= MAX_DELAY_MS)))) {
    throw invalid('updateInterval', `a number of milliseconds from ${MIN_UPDATE_INTERVAL_MS} to ${MAX_DELAY_MS} (0: no periodic checks)`, updateInterval);
  }
  if (clientId !== undefined && !(typeof clientId === 'string' && clientId !== '')) throw invalid('clientId', 'a non-empty string', clientId);
  if (timeoutMs !== undefined && !(isNumber(timeoutMs) && timeoutMs >= 1 && timeoutMs <= MAX_DELAY_MS)) {
    throw invalid('timeoutMs', `a number of milliseconds from 1 to ${MAX_DELAY_MS}`, timeoutMs);
  }
  for (const name of ['onProgress', 'onEvent', 'onFallback'] as const) {
    if (o[name] !== undefined && !isFunction(o[name])) throw invalid(name, 'a function', o[name]);
  }
  if (signal !== undefined) {
    const s = signal as Partial<AbortSignal> | null;
    if (typeof s !== 'object' || s === null || typeof s.aborted !== 'boolean' || !isFunction(s.addEventListener)) {
      throw invalid('signal', 'an AbortSignal', signal);
    }
  }
  if (wasm !== undefined) {
    if (typeof wasm !== 'object' || wasm === null || Array.isArray(wasm)) {
      throw invalid('wasm', 'an object of wasm modules by build ({ cpu, webgpu, … })', wasm);
    }
    for (const [build, source] of Object.entries(wasm)) {
      if (!BUILDS.includes(build)) throw invalid('wasm', `an object of wasm modules by build (${BUILDS.join(', ')}), not \`${build}\``, wasm);
      if (source !== undefined && !isWasmSource(source)) {
        throw invalid(`wasm.${build}`, 'a WebAssembly.Module, bytes, a URL or a non-empty path', source);
      }
    }
  }
}
