/**
 * What the JS engine can run, asked once: relaxed SIMD and wasm threads, with the
 * well-kept `wasm-feature-detect` (each a tiny module checked with `WebAssembly.validate`).
 * @module
 */
import { relaxedSimd, threads } from './vendor/wasm-feature-detect.js';

let relaxed: Promise<boolean> | null = null;
let atomics: Promise<boolean> | null = null;

/** Whether the engine validates relaxed SIMD (`f32x4.relaxed_madd`). */
export function hasRelaxedSimd(): Promise<boolean> {
  relaxed ??= relaxedSimd().catch(() => false);
  return relaxed;
}

/** Whether the engine validates wasm threads (atomics) and can send a `SharedArrayBuffer`. */
export function hasWasmThreads(): Promise<boolean> {
  atomics ??= threads().catch(() => false);
  return atomics;
}
