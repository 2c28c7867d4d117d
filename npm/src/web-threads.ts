/**
 * Threaded builds in browsers (pages and dedicated Workers) and Deno: each model's Worker is a
 * module Worker running `thread-worker.js`, whose rayon pool (wasm-bindgen-rayon, with brasa's
 * pool helper in the glue) starts Workers of its own from a blob URL, which COEP
 * `require-corp` allows.
 * @module
 */
import type { Glue } from './glue.js';
import type { ThreadPort, ThreadSupport } from './threads.js';

const scope = globalThis as unknown as {
  crossOriginIsolated?: boolean;
  Deno?: unknown;
  navigator?: { hardwareConcurrency?: number };
};

/** A module Worker as a {@link ThreadPort}. */
function port(worker: Worker): ThreadPort {
  return {
    post: (message, transfer = []) => worker.postMessage(message, transfer),
    listen(onMessage, onError) {
      worker.addEventListener('message', (e) => onMessage(e.data));
      worker.addEventListener('error', (e) => {
        e.preventDefault?.();
        onError(e.error ?? new Error(e.message || 'the Worker script failed to load'));
      });
      worker.addEventListener('messageerror', () => onError(new Error('a message could not be read')));
    },
    terminate: () => worker.terminate(),
  };
}

export const webThreads: ThreadSupport = {
  unavailable() {
    if (typeof Worker !== 'function') return 'there is no Worker here (a service worker cannot start one)';
    if (typeof SharedArrayBuffer !== 'function' || scope.crossOriginIsolated === false || (scope.crossOriginIsolated === undefined && !scope.Deno)) {
      return 'the page is not cross-origin isolated (crossOriginIsolated is false): serve it with Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp';
    }
    return null;
  },
  cores: () => scope.navigator?.hardwareConcurrency ?? 1,
  // Deno runs the threaded builds, but a live Worker keeps it from exiting and its Workers
  // cannot be unref'd: a script that forgot `dispose()` would never end.
  notByDefault: () => (scope.Deno ? "in Deno a Worker keeps the process running (threads: N runs the threaded build; dispose the model to let Deno exit)" : null),
  spawn: () => port(new Worker(new URL('./thread-worker.js', import.meta.url), { type: 'module', name: 'brasa-threads' })),
  importGlue: async (url) => (await import(/* @vite-ignore */ url)) as Glue,
  // Not on a page either: the threaded glue carries a pool helper, which in a Worker imports
  // the module its start message names. It ignores messages on a window (which any frame can
  // post to), but the page has no use for that glue: the logic comes from the cpu build.
  importsThreadedGlue: false,
};
