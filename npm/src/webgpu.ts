/**
 * Is there a WebGPU adapter? Checked in JS before any WebGPU build is fetched: wgpu inside
 * wasm aborts the instance where there is none.
 * @module
 */
import { message } from './errors.js';
import type { AdapterInfo } from './types.js';

/** The outcome of {@link probeWebGpu}. */
export type Probe = { ok: true; adapter: AdapterInfo } | { ok: false; reason: string };

interface GPULike {
  requestAdapter(): Promise<null | {
    info?: { vendor?: string; architecture?: string; device?: string; description?: string; isFallbackAdapter?: boolean };
    isFallbackAdapter?: boolean;
  }>;
}

/** `navigator.gpu` and a non-null `requestAdapter()`, or why not. */
export async function probeWebGpu(): Promise<Probe> {
  const gpu = (globalThis as { navigator?: { gpu?: GPULike } }).navigator?.gpu;
  if (!gpu) {
    return { ok: false, reason: 'WebGPU is not available here (navigator.gpu is undefined: no WebGPU support, or not a secure context)' };
  }
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { ok: false, reason: 'WebGPU is present but navigator.gpu.requestAdapter() returned no adapter' };
    const info = adapter.info ?? {};
    return {
      ok: true,
      adapter: {
        vendor: info.vendor ?? '',
        architecture: info.architecture ?? '',
        device: info.device ?? '',
        description: info.description ?? '',
        isFallbackAdapter: Boolean(info.isFallbackAdapter ?? adapter.isFallbackAdapter),
      },
    };
  } catch (err) {
    return { ok: false, reason: `navigator.gpu.requestAdapter() failed: ${message(err)}` };
  }
}
