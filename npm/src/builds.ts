// The wasm builds a package may carry (`brasa build --backend`): the one list the loader, the
// option checks and the `BuildName` type read.

/** Every build name, the CPU ones best last, then WebGPU. */
export const BUILD_NAMES = ['cpu', 'cpu-relaxed', 'cpu-threads', 'cpu-threads-relaxed', 'webgpu'] as const;

/** The CPU builds a package may carry, best last. */
export const CPU_BUILDS = BUILD_NAMES.filter((b): b is Exclude<(typeof BUILD_NAMES)[number], 'webgpu'> => b !== 'webgpu');

/** Whether `build` is a threaded build (it runs in a Worker brasa starts). */
export function isThreaded(build: string): boolean {
  return build.startsWith('cpu-threads');
}
