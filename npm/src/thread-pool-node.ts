/**
 * One Worker of a threaded build's rayon pool under Node: the glue with brasa's pool helper
 * (handed over as a `data:` URL by `node-threads.ts`) in a Web Worker's scope.
 * @module
 */
import { parentPort, workerData } from 'node:worker_threads';

import { installWorkerScope } from './node-threads.js';

installWorkerScope(parentPort!);
await import(/* @vite-ignore */ (workerData as { module: string }).module);
