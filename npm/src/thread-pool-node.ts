/**
 * One Worker of a threaded build's rayon pool under Node: wasm-bindgen-rayon's own helper
 * module (handed over as a `data:` URL by `node-threads.ts`) in a Web Worker's scope.
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';

import { installWorkerScope } from './node-threads.js';

installWorkerScope(parentPort!);
// The helper initialises the glue the way wasm-bindgen deprecated (positional arguments), and
// the glue says so once per pool thread: not the user's to act on.
const warn = console.warn;
console.warn = (...args: unknown[]) => {
  if (typeof args[0] === 'string' && args[0].startsWith('using deprecated parameters for the initialization function')) return;
  warn(...args);
};
await import(/* @vite-ignore */ (workerData as { module: string }).module);
