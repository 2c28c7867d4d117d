// The wasm builds a package may carry (`brasa build --backend`): the list the loader, the
// option checks and the `BuildName` type read. Defined once, in Rust (`brasa_types::BUILD_NAMES`,
// which `brasa build` reads too), and generated into ./generated/types.ts.
import { BUILD_NAMES } from './generated/types.js';

export { BUILD_NAMES };

/** The CPU builds a package may carry, best last. */
export const CPU_BUILDS = BUILD_NAMES.filter((b): b is Exclude<(typeof BUILD_NAMES)[number], 'webgpu'> => b !== 'webgpu');

/** Whether `build` is a threaded build (it runs in a Worker brasa starts). */
export function isThreaded(build: string): boolean {
  return build.startsWith('cpu-threads');
}
