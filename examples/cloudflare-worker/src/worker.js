// A KServe v2 endpoint for brasa model packages on Cloudflare Workers: mnist and two-heads.
// Each package's CPU wasm ships in the bundle (Workers refuse to compile fetched wasm; wrangler
// turns a `.wasm` import into a compiled WebAssembly.Module), weights come from a brasa
// registry through the Cache API. The packages are the folders `brasa build` wrote, in
// ./models/ next to this folder (in an app: `import mnist from 'mnist-model'` and
// `import mnistWasm from 'mnist-model/cpu.wasm'`).
import { createHandler } from 'brasa';

import mnist from '../models/mnist/index.js';
import mnistWasm from '../models/mnist/cpu/model_bg.wasm';
import twoHeads from '../models/two-heads/index.js';
import twoHeadsWasm from '../models/two-heads/cpu/model_bg.wasm';

/**
 * The package with its CPU build's wasm given as the bundled module. `load: { wasm: { cpu } }`
 * would hand one module to every served model, and each package needs its own; a build's
 * `wasm` may be a WebAssembly.Module, which brasa instantiates as it is.
 */
function withCpuWasm(pkg, module) {
  return { ...pkg, builds: { cpu: { glue: pkg.builds.cpu.glue, wasm: module } } };
}

let handler;

export default {
  fetch(request, env, ctx) {
    const limits = { maxBatch: Number(env.BRASA_MAX_BATCH ?? 32), maxQueueRows: Number(env.BRASA_MAX_QUEUE_ROWS ?? 512) };
    handler ??= createHandler({
      models: [
        { model: withCpuWasm(mnist, mnistWasm), ...limits },
        { model: withCpuWasm(twoHeads, twoHeadsWasm), ...limits },
      ],
      registry: env.BRASA_REGISTRY,
    });
    return handler.fetch(request, env, ctx);
  },
};
