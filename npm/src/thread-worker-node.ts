/**
 * `thread-worker.js` under Node: a `worker_threads` Worker given a Web Worker's scope first.
 * @module
 */
import { parentPort } from 'node:worker_threads';

import { installWorkerScope } from './node-threads.js';

installWorkerScope(parentPort!);
await import('./thread-worker.js');
